"""Fast bulk writes for generated rows: COPY on PostgreSQL, executemany elsewhere.

Rows are tuples of str, int, float or None that the generator already formatted for the dialect
(timestamps, booleans, UUIDs differ between PostgreSQL and SQLite). Generated text never holds tabs,
newlines or backslashes, so COPY's text format needs no escaping.
"""

import queue
import threading
from contextlib import contextmanager
from datetime import UTC, date, datetime

from django.db import connection

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


class Dialect:
    def __init__(self, vendor):
        self.vendor = vendor
        self.postgres = vendor == "postgresql"
        self.true, self.false = ("t", "f") if self.postgres else (1, 0)
        self.null = r"\N" if self.postgres else None  # COPY's text format spells NULL as \N
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
    """Buffers rows per table and writes them in large batches.

    On PostgreSQL a background thread runs COPY on the same connection while the caller goes on generating
    rows: psycopg releases the GIL while PostgreSQL works, so the two cores share the load. The caller must not
    use the connection itself until flush() has returned; flush() also re-raises any error of the thread.
    Use it as `with writer.session():` inside the transaction: on any error the thread is stopped before the
    transaction rolls back, so no batch can land after the rollback.
    """

    def __init__(self, dialect: Dialect, batch_rows: int = 50_000):
        self.dialect = dialect
        self.batch_rows = batch_rows
        self.tables = {}
        self.counts = {}
        self._queue = None
        self._thread = None
        self._error = None
        self._cancelled = False

    def declare(self, table, columns):
        self.tables[table] = (columns, [])
        self.counts.setdefault(table, 0)

    def add(self, table, row):
        buffer = self.tables[table][1]
        buffer.append(row)
        if len(buffer) >= self.batch_rows:
            self._send(table)

    def flush(self):
        """Write everything buffered and wait until the database has it."""
        for table in self.tables:
            self._send(table)
        if self._queue is not None:
            self._queue.join()
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    @contextmanager
    def session(self):
        """Write everything on success; on failure drop what is queued and wait for the thread to stop."""
        try:
            yield self
            self.flush()
        except BaseException:
            self._cancelled = True
            raise
        finally:
            self._stop()

    def _stop(self):
        if self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = self._thread = None
        self._cancelled = False

    def _send(self, table):
        if self._error is not None:
            raise self._error  # fail fast instead of generating every remaining row first
        columns, rows = self.tables[table]
        if not rows:
            return
        self.counts[table] += len(rows)
        cols = ", ".join(f'"{c}"' for c in columns)
        if self.dialect.postgres:
            text = "".join(["\t".join(map(str, row)) + "\n" for row in rows])
            self._copy_queue().put((f'COPY "{table}" ({cols}) FROM STDIN', text))
        else:
            marks = ", ".join(["%s"] * len(columns))
            with connection.cursor() as cursor:
                cursor.executemany(f'INSERT INTO "{table}" ({cols}) VALUES ({marks})', rows)  # noqa: S608
        rows.clear()

    def _copy_queue(self):
        if self._queue is None:
            connection.ensure_connection()
            self._queue = queue.Queue(maxsize=2)  # bounded: memory stays flat however large the seed
            raw = connection.connection
            self._thread = threading.Thread(
                target=self._copy_worker, args=(raw,), daemon=True, name="bulk-copy"
            )
            self._thread.start()
        return self._queue

    def _copy_worker(self, raw):
        jobs = self._queue
        while True:
            job = jobs.get()
            if job is None:
                jobs.task_done()
                return
            sql, text = job
            try:
                if self._error is None and not self._cancelled:
                    with raw.cursor() as cursor, cursor.copy(sql) as copy:
                        copy.write(text)
            except Exception as exc:  # noqa: BLE001 - handed to the caller at flush()
                self._error = exc
            finally:
                jobs.task_done()


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
