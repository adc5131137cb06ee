"""Fast bulk writes for generated rows: COPY on PostgreSQL, executemany elsewhere.

Rows are tuples of str, int, float or None that the generator already formatted for the dialect
(timestamps, booleans, UUIDs differ between PostgreSQL and SQLite). Generated text never holds tabs,
newlines or backslashes, so COPY's text format needs no escaping.
"""

from contextlib import contextmanager
from datetime import UTC, date, datetime

from django.db import connection

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class Dialect:
    def __init__(self, vendor):
        self.vendor = vendor
        self.postgres = vendor == "postgresql"
        self.true, self.false = ("t", "f") if self.postgres else (1, 0)
        self._suffix = "+00" if self.postgres else ""
        self._days = {}
        self._times = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(86400)]

    def day(self, epoch_day: int) -> str:
        text = self._days.get(epoch_day)
        if text is None:
            text = self._days[epoch_day] = date.fromordinal(EPOCH_ORDINAL + epoch_day).isoformat()
        return text

    def ts(self, epoch_s: int) -> str:
        """A UTC timestamp in the form the database reads fastest."""
        epoch_s = int(epoch_s)
        return f"{self.day(epoch_s // 86400)} {self._times[epoch_s % 86400]}{self._suffix}"

    def uuid(self, hex32: str) -> str:
        if not self.postgres:
            return hex32  # Django keeps UUIDs as 32 hex digits on SQLite
        return f"{hex32[:8]}-{hex32[8:12]}-{hex32[12:16]}-{hex32[16:20]}-{hex32[20:]}"


def epoch(dt: datetime) -> int:
    return int(dt.astimezone(UTC).timestamp())


class BulkWriter:
    """Buffers rows per table and writes them in large batches."""

    def __init__(self, dialect: Dialect, batch_rows: int = 50_000):
        self.dialect = dialect
        self.batch_rows = batch_rows
        self.tables = {}
        self.counts = {}

    def declare(self, table, columns):
        self.tables[table] = (columns, [])
        self.counts.setdefault(table, 0)

    def add(self, table, row):
        buffer = self.tables[table][1]
        buffer.append(row)
        if len(buffer) >= self.batch_rows:
            self.flush(table)

    def flush(self, table=None):
        for name in [table] if table else list(self.tables):
            columns, rows = self.tables[name]
            if rows:
                self._write(name, columns, rows)
                self.counts[name] += len(rows)
                rows.clear()

    def _write(self, table, columns, rows):
        cols = ", ".join(f'"{c}"' for c in columns)
        with connection.cursor() as cursor:
            if self.dialect.postgres:
                lines = "".join("\t".join(r"\N" if v is None else str(v) for v in row) + "\n" for row in rows)
                with cursor.cursor.copy(f'COPY "{table}" ({cols}) FROM STDIN') as copy:
                    copy.write(lines)
            else:
                marks = ", ".join(["%s"] * len(columns))
                cursor.executemany(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', rows)  # noqa: S608 - model tables


def next_id(model) -> int:
    last = model.objects.order_by("-pk").values_list("pk", flat=True).first()
    return (last or 0) + 1


def reset_sequences(models):
    """After writing explicit ids, move PostgreSQL's identity sequences past them (SQLite does this itself)."""
    if connection.vendor != "postgresql":
        return
    with connection.cursor() as cursor:
        for model in models:
            table = model._meta.db_table
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), "  # noqa: S608 - table names from models
                f'COALESCE((SELECT MAX(id) FROM "{table}"), 0) + 1, false)'
            )


@contextmanager
def deferred_indexes(models):
    """Load faster on PostgreSQL: drop the tables' foreign keys and secondary indexes, rebuild them afterwards.

    This is what pg_restore does: one sorted index build beats millions of random insertions, and one
    validating join beats a trigger per row. Definitions are read from the catalog, so what comes back is
    exactly what was there. Use inside a transaction: if the load fails, PostgreSQL rolls the DDL back too.
    Unique and primary-key indexes stay, so the load still cannot write duplicates.
    """
    if connection.vendor != "postgresql":
        yield
        return
    tables = [m._meta.db_table for m in models]
    with connection.cursor() as cursor:
        cursor.execute(
            """
            SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
            FROM pg_constraint c
            WHERE c.contype = 'f' AND c.conrelid::regclass::text = ANY(%s)
            """,
            [tables],
        )
        foreign_keys = cursor.fetchall()
        # Fire deferred checks queued earlier in this transaction; ALTER TABLE refuses to run past them.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(
            """
            SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
            FROM pg_index i
            WHERE i.indrelid::regclass::text = ANY(%s) AND NOT i.indisunique AND NOT i.indisprimary
            """,
            [tables],
        )
        indexes = cursor.fetchall()
        for table, name, _ in foreign_keys:
            cursor.execute(f'ALTER TABLE "{table}" DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            cursor.execute(f"DROP INDEX {name}")
    yield
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        for _, definition in indexes:
            cursor.execute(definition)
        for table, name, definition in foreign_keys:
            cursor.execute(f'ALTER TABLE "{table}" ADD CONSTRAINT "{name}" {definition}')
        cursor.execute("SET CONSTRAINTS ALL DEFERRED")
