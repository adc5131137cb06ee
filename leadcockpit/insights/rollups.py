# ruff: noqa: S608 - SQL built from the model table names and fixed column lists below; values are bound.
"""Building the insight rollups, set-based, on PostgreSQL and SQLite.

rebuild() empties every rollup and fills it again from the record (INSERT … SELECT … GROUP BY).
refresh() finds what changed since the stored watermarks (stage changes, score changes, sales activities,
handovers, lead edits and merges), marks those leads stale, and recomputes the per-lead rows of a batch of
stale leads: the cubes take the difference between the batch's old and new rows (an upsert of +/- counts), so a
refresh costs what changed, not the size of the history. rebuild() and refresh() give the same tables (a test
holds them equal).

Dimensions of a lead (the same for every rollup): channel = first channel, campaign, source, rep = owner, team =
the owner's team, industry and country of the company. A handover's team and rep are the handover's own.

Every statement names its tables from the models' db_table and binds its values; the column lists are fixed
here, nothing from a request reaches this module.
"""

import logging
import time

from django.conf import settings
from django.core.cache import cache
from django.db import OperationalError, connection, transaction
from django.utils import timezone

from leadcockpit.accounts.models import User
from leadcockpit.handover.models import Handover
from leadcockpit.leads.models import Company, Lead, LeadMerge, SalesActivity, StageChange
from leadcockpit.scoring.models import ScoreChange

from .models import (
    DIMENSIONS,
    BandInterval,
    FunnelDaily,
    HandoverDaily,
    HandoverFact,
    LeadFact,
    LightDaily,
    RollupState,
    StageInterval,
    StaleLead,
    VelocityMonthly,
)

log = logging.getLogger(__name__)

STATE = "insights"
BATCH = 20_000
# Stages whose reach the cohort funnel counts (MGL: every lead).
REACHED = ("mql", "sal", "sql", "won")
# Stages whose reach the conversion per rep counts.
REP_STAGES = ("sal", "sql", "won")
# Sales activities that count as contact (a note is not).
CONTACT_KINDS = ("call", "email", "meeting", "demo", "quote")
# Time-based watermarks look back this far: a row written by a transaction that committed late is still seen.
TIME_OVERLAP_S = 300

T = {
    "lead": Lead._meta.db_table,
    "company": Company._meta.db_table,
    "user": User._meta.db_table,
    "stagechange": StageChange._meta.db_table,
    "scorechange": ScoreChange._meta.db_table,
    "activity": SalesActivity._meta.db_table,
    "handover": Handover._meta.db_table,
    "merge": LeadMerge._meta.db_table,
    "leadfact": LeadFact._meta.db_table,
    "interval": StageInterval._meta.db_table,
    "band": BandInterval._meta.db_table,
    "handoverfact": HandoverFact._meta.db_table,
    "funnel": FunnelDaily._meta.db_table,
    "light": LightDaily._meta.db_table,
    "velocity": VelocityMonthly._meta.db_table,
    "handoverday": HandoverDaily._meta.db_table,
    "stale": StaleLead._meta.db_table,
}
DIM_COLUMNS = ", ".join(DIMENSIONS)
BATCH_TABLE = "insights_batch"
# Where each id-ordered source names the leads it touches.
LEAD_COLUMNS = {
    "stagechange": ["lead_id"],
    "scorechange": ["lead_id"],
    "activity": ["lead_id"],
    "handover": ["lead_id"],
    "merge": ["merged_lead_id", "lead_id"],
    "lead": ["id"],
}
FUNNEL_DELTA = "insights_funnel_delta"
LIGHT_DELTA = "insights_light_delta"
VELOCITY_DELTA = "insights_velocity_delta"
HANDOVER_DELTA = "insights_handover_delta"


# -- SQL that differs between PostgreSQL and SQLite ------------------------------------------------------------


def local_date(column):
    """The calendar day (in the cockpit's time zone) of a timestamp column, as SQL with no parameters left."""
    tz = settings.TIME_ZONE
    if connection.vendor == "postgresql":
        return f"(({column}) AT TIME ZONE '{tz}')::date"
    return f"django_datetime_cast_date({column}, '{tz}', 'UTC')"


def seconds_between(start, end):
    if connection.vendor == "postgresql":
        return f"EXTRACT(EPOCH FROM ({end} - {start}))::float8"
    return f"((julianday({end}) - julianday({start})) * 86400.0)"


def as_text(column):
    return f"CAST({column} AS TEXT)" if connection.vendor == "sqlite" else f"({column})::text"


def truth(condition):
    """A boolean column value from an SQL condition (SQLite stores 0/1)."""
    return f"CASE WHEN {condition} THEN 1 ELSE 0 END" if connection.vendor == "sqlite" else f"({condition})"


def db_now():
    return connection.ops.adapt_datetimefield_value(timezone.now())


# -- the rows of the per-lead tables ----------------------------------------------------------------------------


def scope(column, scoped):
    """Restrict a statement to the leads of the current batch (or to every lead when not scoped)."""
    return f" AND {column} IN (SELECT lead_id FROM {BATCH_TABLE})" if scoped else ""


def dims_sql(scoped):
    """One row per lead: its id, its dimensions and what the lead facts copy."""
    return f"""
        SELECT l.id AS lead_id, COALESCE(l.first_channel_id, '') AS channel, COALESCE(l.campaign_id, 0) AS campaign,
               l.source AS source, COALESCE(u.team_id, 0) AS team, COALESCE(l.owner_id, 0) AS rep,
               COALESCE(c.industry, '') AS industry, COALESCE(c.country, '') AS country,
               l.created_at AS created_at, l.stage_id AS stage, l.band AS band, l.temperature AS temperature
        FROM {T["lead"]} l
        LEFT JOIN {T["company"]} c ON c.id = l.company_id
        LEFT JOIN {T["user"]} u ON u.id = l.owner_id
        WHERE 1 = 1{scope("l.id", scoped)}"""


def d_columns(alias="d"):
    return ", ".join(f"{alias}.{name}" for name in DIMENSIONS)


def insert_intervals(cursor, scoped):
    cursor.execute(f"""
        INSERT INTO {T["interval"]} (lead_id, stage, entered_at, entered_on, left_at, left_on, seconds, {DIM_COLUMNS})
        SELECT s.lead_id, s.stage, s.at, {local_date("s.at")}, s.next_at, {local_date("s.next_at")},
               {seconds_between("s.at", "s.next_at")}, {d_columns()}
        FROM (
            SELECT sc.lead_id, sc.to_stage_id AS stage, sc.at,
                   LEAD(sc.at) OVER (PARTITION BY sc.lead_id ORDER BY sc.at, sc.id) AS next_at
            FROM {T["stagechange"]} sc WHERE 1 = 1{scope("sc.lead_id", scoped)}
        ) s
        JOIN ({dims_sql(scoped)}) d ON d.lead_id = s.lead_id""")


def insert_lead_facts(cursor, scoped):
    reached = ", ".join(
        f"MAX(CASE WHEN i.stage = '{stage}' THEN 1 ELSE 0 END) AS r_{stage}" for stage in REACHED
    )
    cursor.execute(f"""
        INSERT INTO {T["leadfact"]} (lead_id, created_at, created_on, stage, band, temperature,
                                     {", ".join(f"reached_{stage}" for stage in REACHED)}, {DIM_COLUMNS})
        SELECT d.lead_id, d.created_at, {local_date("d.created_at")}, d.stage, d.band, d.temperature,
               {", ".join(truth(f"COALESCE(r.r_{stage}, 0) = 1") for stage in REACHED)}, {d_columns()}
        FROM ({dims_sql(scoped)}) d
        LEFT JOIN (
            SELECT i.lead_id, {reached} FROM {T["interval"]} i
            WHERE i.stage IN ({", ".join(f"'{s}'" for s in REACHED)}){scope("i.lead_id", scoped)}
            GROUP BY i.lead_id
        ) r ON r.lead_id = d.lead_id""")


def insert_band_intervals(cursor, scoped):
    """Score episodes from the ledger, after a first one from creation with the model defaults (red, cold); the
    last episode carries the lead's stored light, so the sum of the episodes open now is today's distribution."""
    cursor.execute(f"""
        INSERT INTO {T["band"]} (lead_id, band, temperature, started_on, ended_on, {DIM_COLUMNS})
        SELECT e.lead_id,
               CASE WHEN e.next_at IS NULL THEN d.band ELSE e.band END,
               CASE WHEN e.next_at IS NULL THEN d.temperature ELSE e.temperature END,
               {local_date("e.at")}, {local_date("e.next_at")}, {d_columns()}
        FROM (
            SELECT x.lead_id, x.at, x.band, x.temperature,
                   LEAD(x.at) OVER (PARTITION BY x.lead_id ORDER BY x.k, x.at, x.id) AS next_at
            FROM (
                SELECT l.id AS lead_id, l.created_at AS at, 'red' AS band, 'cold' AS temperature, 0 AS k, 0 AS id
                FROM {T["lead"]} l WHERE 1 = 1{scope("l.id", scoped)}
                UNION ALL
                SELECT sc.lead_id, sc.at, sc.band, sc.temperature, 1, sc.id
                FROM {T["scorechange"]} sc WHERE 1 = 1{scope("sc.lead_id", scoped)}
            ) x
        ) e
        JOIN ({dims_sql(scoped)}) d ON d.lead_id = e.lead_id""")


def insert_handover_facts(cursor, scoped, now):
    kinds = ", ".join(f"'{kind}'" for kind in CONTACT_KINDS)
    first_contact = (
        f"(SELECT MIN(a.occurred_at) FROM {T['activity']} a WHERE a.lead_id = h.lead_id "
        f"AND a.occurred_at >= h.created_at AND a.kind IN ({kinds}))"
    )

    def later(stage):
        return truth(
            f"EXISTS (SELECT 1 FROM {T['stagechange']} s WHERE s.lead_id = h.lead_id "
            f"AND s.to_stage_id = '{stage}' AND s.at >= h.created_at)"
        )

    cursor.execute(
        f"""
        INSERT INTO {T["handoverfact"]} (handover_id, lead_id, created_at, created_on, {DIM_COLUMNS}, status,
                                         reject_reason, decision_s, sla, first_contact_s, reached_sql, won)
        SELECT h.id, h.lead_id, h.created_at, {local_date("h.created_at")},
               d.channel, d.campaign, d.source, COALESCE(h.team_id, 0), COALESCE(h.rep_id, 0), d.industry, d.country,
               h.status, h.reject_reason,
               CASE WHEN h.decided_at IS NULL THEN NULL ELSE {seconds_between("h.created_at", "h.decided_at")} END,
               CASE WHEN h.decided_at IS NOT NULL AND h.decided_at <= h.due_at THEN 'met'
                    WHEN h.decided_at IS NOT NULL OR h.due_at < %s THEN 'breached'
                    ELSE 'pending' END,
               {seconds_between("h.created_at", first_contact)},
               {later("sql")}, {later("won")}
        FROM {T["handover"]} h
        JOIN ({dims_sql(scoped)}) d ON d.lead_id = h.lead_id
        WHERE 1 = 1{scope("h.lead_id", scoped)}""",
        [now],
    )


# -- the cubes --------------------------------------------------------------------------------------------------


def dim_value(dim, alias):
    return "''" if not dim else as_text(f"{alias}.{dim}")


def month_of(column):
    if connection.vendor == "postgresql":
        return f"date_trunc('month', {column})::date"
    return f"date({column}, 'start of month')"


def duration_class(column):
    """The 5 % wide class of a duration in seconds: floor(ln(s) / ln(1.05)), durations under a second in class 0.
    panels.duration_class_expression() is the same sum in the ORM."""
    return (
        f"CAST(floor(ln(CASE WHEN {column} < 1 THEN 1 ELSE {column} END) / ln({DURATION_RATIO})) AS INTEGER)"
    )


DURATION_RATIO = 1.05


def cube_selects(head, alias, keys, measure, from_where):
    """SELECTs of (head…, dim, value, keys…, measure) for all rows (dim '') and each dimension.

    PostgreSQL answers all eight groupings in one pass (GROUPING SETS); SQLite gets one SELECT per grouping.
    head: leading constant columns ("'flow' AS kind, " or ""); keys: [(name, expression)].
    """
    key_list = ", ".join(expr for _name, expr in keys)
    key_select = ", ".join(f"{expr} AS {name}" for name, expr in keys)
    if connection.vendor == "postgresql":
        dim_case = " ".join(f"WHEN GROUPING({alias}.{d}) = 0 THEN '{d}'" for d in DIMENSIONS)
        value_case = " ".join(
            f"WHEN GROUPING({alias}.{d}) = 0 THEN {as_text(f'{alias}.{d}')}" for d in DIMENSIONS
        )
        sets = ", ".join([f"({key_list})", *(f"({alias}.{d}, {key_list})" for d in DIMENSIONS)])
        return [
            f"""SELECT {head}CASE {dim_case} ELSE '' END AS dim, CASE {value_case} ELSE '' END AS value,
                       {key_select}, {measure} {from_where} GROUP BY GROUPING SETS ({sets})"""
        ]
    out = []
    for dim in ("", *DIMENSIONS):
        group = f"{dim_value(dim, alias)}, {key_list}" if dim else key_list
        out.append(
            f"SELECT {head}'{dim}' AS dim, {dim_value(dim, alias)} AS value, {key_select}, {measure} "
            f"{from_where} GROUP BY {group}"
        )
    return out


def funnel_selects(scoped):
    """SELECTs of (kind, dim, value, day, stage, n) from the per-lead tables."""
    stages = " UNION ALL ".join(f"SELECT '{stage}' AS stage" for stage in ("mgl", *REACHED))
    reach = " OR ".join(
        ["st.stage = 'mgl'"]
        + [f"(st.stage = '{stage}' AND f.reached_{stage} = {truth('1 = 1')})" for stage in REACHED]
    )
    rep_stages = ", ".join(f"'{stage}'" for stage in REP_STAGES)
    return [
        *cube_selects(
            "'flow' AS kind, ",
            "i",
            [("day", "i.entered_on"), ("stage", "i.stage")],
            "COUNT(*) AS n",
            f"FROM {T['interval']} i WHERE 1 = 1{scope('i.lead_id', scoped)}",
        ),
        *cube_selects(
            "'reached' AS kind, ",
            "f",
            [("day", "f.created_on"), ("stage", "st.stage")],
            "COUNT(*) AS n",
            f"FROM {T['leadfact']} f JOIN ({stages}) st ON {reach} WHERE 1 = 1{scope('f.lead_id', scoped)}",
        ),
        # The cohort's reach per owner (the conversion per rep): stage '<stage>:<rep id>', sales stages only.
        *cube_selects(
            "'rep' AS kind, ",
            "f",
            [("day", "f.created_on"), ("stage", f"st.stage || ':' || {as_text('f.rep')}")],
            "COUNT(*) AS n",
            f"FROM {T['leadfact']} f JOIN ({stages}) st ON {reach} "
            f"WHERE st.stage IN ({rep_stages}){scope('f.lead_id', scoped)}",
        ),
        *cube_selects(
            "'now' AS kind, ",
            "f",
            [("day", "f.created_on"), ("stage", "f.stage")],
            "COUNT(*) AS n",
            f"FROM {T['leadfact']} f WHERE 1 = 1{scope('f.lead_id', scoped)}",
        ),
    ]


def light_selects(scoped):
    """SELECTs of (dim, value, day, band, temperature, delta): +1 where an episode starts, −1 where it ends."""
    return [
        *cube_selects(
            "",
            "b",
            [("day", "b.started_on"), ("band", "b.band"), ("temperature", "b.temperature")],
            "COUNT(*) AS delta",
            f"FROM {T['band']} b WHERE 1 = 1{scope('b.lead_id', scoped)}",
        ),
        *cube_selects(
            "",
            "b",
            [("day", "b.ended_on"), ("band", "b.band"), ("temperature", "b.temperature")],
            "-COUNT(*) AS delta",
            f"FROM {T['band']} b WHERE b.ended_on IS NOT NULL{scope('b.lead_id', scoped)}",
        ),
    ]


def velocity_selects(scoped):
    """SELECTs of (dim, value, month, stage, bucket, n) over the stage visits that ended."""
    return cube_selects(
        "",
        "i",
        [("month", month_of("i.left_on")), ("stage", "i.stage"), ("bucket", duration_class("i.seconds"))],
        "COUNT(*) AS n",
        f"FROM {T['interval']} i WHERE i.left_on IS NOT NULL{scope('i.lead_id', scoped)}",
    )


def handover_selects(scoped):
    """SELECTs of (kind, dim, value, day, k1, k2, k3, n) over the handover facts: see models.HandoverDaily."""
    contact_class = (
        f"CASE WHEN h.first_contact_s IS NULL THEN -1 ELSE {duration_class('h.first_contact_s')} END"
    )
    contact_group = (
        "CASE WHEN h.first_contact_s IS NULL THEN 'none' WHEN h.first_contact_s <= 3600 THEN '1h' "
        "WHEN h.first_contact_s <= 86400 THEN '24h' ELSE 'later' END"
    )
    kinds = [
        ("sla", [as_text("h.team"), as_text("h.rep"), "h.sla"], ""),
        # The source as an expression, not the column: GROUPING() would take the key for the source dimension.
        ("source", ["h.source || ''", "h.status", "h.reject_reason"], ""),
        ("campaign", [as_text("h.campaign"), "h.status", "h.reject_reason"], ""),
        (
            "accept",
            [as_text(duration_class("h.decision_s"))],
            " AND h.status = 'accepted' AND h.decision_s IS NOT NULL",
        ),
        (
            "contact",
            [as_text(contact_class), contact_group, "CASE WHEN h.reached_sql THEN '1' ELSE '0' END"],
            "",
        ),
    ]
    out = []
    for kind, keys, where in kinds:
        names = [f"k{i + 1}" for i in range(len(keys))]
        for select in cube_selects(
            "",
            "h",
            [("day", "h.created_on"), *zip(names, keys, strict=True)],
            "COUNT(*) AS n",
            f"FROM {T['handoverfact']} h WHERE 1 = 1{where}{scope('h.lead_id', scoped)}",
        ):
            padded = ", ".join(name if name in names else f"'' AS {name}" for name in ("k1", "k2", "k3"))
            out.append(f"SELECT '{kind}' AS kind, dim, value, day, {padded}, n FROM ({select}) x")
    return out


FUNNEL_COLUMNS = "kind, dim, value, day, stage"
LIGHT_COLUMNS = "dim, value, day, band, temperature"
VELOCITY_COLUMNS = "dim, value, month, stage, bucket"
HANDOVER_COLUMNS = "kind, dim, value, day, k1, k2, k3"


def fill_cubes(cursor):
    for select in funnel_selects(False):
        cursor.execute(f"INSERT INTO {T['funnel']} ({FUNNEL_COLUMNS}, n) {select}")
    # Starts and ends of one day net out: one row per key, zeros left out.
    union = " UNION ALL ".join(light_selects(False))
    cursor.execute(f"""
        INSERT INTO {T["light"]} ({LIGHT_COLUMNS}, delta)
        SELECT {LIGHT_COLUMNS}, SUM(delta) FROM ({union}) x
        GROUP BY {LIGHT_COLUMNS} HAVING SUM(delta) <> 0""")
    for select in velocity_selects(False):
        cursor.execute(f"INSERT INTO {T['velocity']} ({VELOCITY_COLUMNS}, n) {select}")
    for select in handover_selects(False):
        cursor.execute(f"INSERT INTO {T['handoverday']} ({HANDOVER_COLUMNS}, n) {select}")


def collect_deltas(cursor, sign):
    """Add the batch's current cube contributions, times `sign`, to the delta tables."""
    for delta_table, columns, measure, selects in (
        (FUNNEL_DELTA, FUNNEL_COLUMNS, "n", funnel_selects(True)),
        (LIGHT_DELTA, LIGHT_COLUMNS, "delta", light_selects(True)),
        (VELOCITY_DELTA, VELOCITY_COLUMNS, "n", velocity_selects(True)),
        (HANDOVER_DELTA, HANDOVER_COLUMNS, "n", handover_selects(True)),
    ):
        for select in selects:
            cursor.execute(
                f"INSERT INTO {delta_table} ({columns}, {measure}) "
                f"SELECT {columns}, {sign} * {measure} FROM ({select}) x"
            )


def apply_deltas(cursor):
    for cube, delta_table, columns, measure in (
        (T["funnel"], FUNNEL_DELTA, FUNNEL_COLUMNS, "n"),
        (T["light"], LIGHT_DELTA, LIGHT_COLUMNS, "delta"),
        (T["velocity"], VELOCITY_DELTA, VELOCITY_COLUMNS, "n"),
        (T["handoverday"], HANDOVER_DELTA, HANDOVER_COLUMNS, "n"),
    ):
        cursor.execute(f"""
            INSERT INTO {cube} ({columns}, {measure})
            SELECT {columns}, SUM({measure}) FROM {delta_table} WHERE 1 = 1
            GROUP BY {columns} HAVING SUM({measure}) <> 0
            ON CONFLICT ({columns}) DO UPDATE SET {measure} = {cube}.{measure} + excluded.{measure}""")
        cursor.execute(f"DELETE FROM {cube} WHERE {measure} = 0")


# -- rebuild and refresh ------------------------------------------------------------------------------------------


class Busy(Exception):
    """Another refresh or rebuild holds the rollups."""


def _state(*, lock, wait=True):
    """The state row, locked for this transaction; without `wait`, Busy when someone else holds it."""
    state, _ = RollupState.objects.get_or_create(name=STATE)
    if lock:
        try:
            state = RollupState.objects.select_for_update(nowait=not wait).get(name=STATE)
        except OperationalError as exc:
            raise Busy from exc
    return state


def current_watermarks(cursor):
    """The high-water marks of the id-ordered sources, read before the rows they cover are read."""
    marks = {}
    for key in LEAD_COLUMNS:
        cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {T[key]}")  # the primary key's index, not a scan
        marks[key] = cursor.fetchone()[0]
    return marks


def rebuild():
    """Empty every rollup and fill it again from the record. Returns the seconds it took."""
    started = time.perf_counter()
    now = timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        state = _state(lock=True)
        marks = current_watermarks(cursor)
        if connection.vendor == "postgresql":  # room for the grouping sets' hash tables; gone at commit
            cursor.execute("SET LOCAL work_mem = '256MB'")
        for key in (
            "funnel",
            "light",
            "velocity",
            "handoverday",
            "handoverfact",
            "band",
            "leadfact",
            "interval",
            "stale",
        ):
            if connection.vendor == "postgresql":
                cursor.execute(f"TRUNCATE {T[key]}")
            else:
                cursor.execute(f"DELETE FROM {T[key]}")
        insert_intervals(cursor, False)
        insert_lead_facts(cursor, False)
        insert_band_intervals(cursor, False)
        insert_handover_facts(cursor, False, db_now())
        fill_cubes(cursor)
        if connection.vendor == "postgresql":
            for key in (
                "funnel",
                "light",
                "velocity",
                "handoverday",
                "handoverfact",
                "band",
                "leadfact",
                "interval",
            ):
                cursor.execute(f"ANALYZE {T[key]}")
        state.watermarks = {
            "ids": {key: [hi, hi] for key, hi in marks.items()},
            "time": now.isoformat(),
        }
        elapsed = time.perf_counter() - started
        state.rebuilt_at = state.refreshed_at = now
        state.last_rebuild_s = round(elapsed, 3)
        state.save()
    if connection.vendor == "postgresql" and not connection.in_atomic_block:
        # Mark the new rows all-visible: the panels' index-only scans (the stage visits of the leads two or more
        # filters select) then skip the table. VACUUM cannot run in a transaction; a rebuild inside one skips it.
        with connection.cursor() as cursor:
            for key in ("interval", "leadfact", "handoverfact", "band"):
                cursor.execute(f"VACUUM {T[key]}")
        elapsed = time.perf_counter() - started
        RollupState.objects.filter(name=STATE).update(last_rebuild_s=round(elapsed, 3))
    return elapsed


def mark_changed(cursor, state, now):
    """Mark the leads touched since the watermarks stale and move the watermarks on.

    Id-ordered sources: rows above the last mark, and, should rows have appeared below it since (a transaction
    that took its id before the last refresh and committed after it), the leads of the last window again.
    Time-ordered ones (decisions, deadlines passing, lead edits) look back TIME_OVERLAP_S.
    """
    marks = state.watermarks or {}
    ids = marks.get("ids", {})
    since = marks.get("time")
    since = timezone.datetime.fromisoformat(since) if since else None
    stamp = connection.ops.adapt_datetimefield_value(now)
    new_ids = {}
    for key, hi_now in current_watermarks(cursor).items():
        lo, hi = ids.get(key, [0, 0])
        # Rows committed late into the last window (ids between lo and hi that the last refresh did not see).
        cursor.execute(f"SELECT COUNT(*) FROM {T[key]} WHERE id > %s AND id <= %s", [lo, hi])
        window_count = cursor.fetchone()[0]
        start = hi if window_count == marks.get("counts", {}).get(key, window_count) else lo
        for column in LEAD_COLUMNS[key]:
            cursor.execute(
                f"INSERT INTO {T['stale']} (lead_id, marked_at) SELECT DISTINCT {column}, %s FROM {T[key]} "
                f"WHERE id > %s AND id <= %s AND {column} IS NOT NULL ON CONFLICT (lead_id) DO NOTHING",
                [stamp, start, hi_now],
            )
        new_ids[key] = [hi, hi_now]
    counts = {}
    for key, (lo, hi) in new_ids.items():
        cursor.execute(f"SELECT COUNT(*) FROM {T[key]} WHERE id > %s AND id <= %s", [lo, hi])
        counts[key] = cursor.fetchone()[0]
    if since is not None:
        after = connection.ops.adapt_datetimefield_value(since - timezone.timedelta(seconds=TIME_OVERLAP_S))
        # Decisions on handovers, and open handovers whose deadline passed (pending → breached).
        cursor.execute(
            f"INSERT INTO {T['stale']} (lead_id, marked_at) SELECT DISTINCT lead_id, %s FROM {T['handover']} "
            f"WHERE decided_at > %s OR escalated_at > %s OR (status = 'open' AND due_at > %s AND due_at <= %s) "
            f"ON CONFLICT (lead_id) DO NOTHING",
            [stamp, after, after, after, stamp],
        )
        # Edited leads (owner, campaign, company, …).
        cursor.execute(
            f"INSERT INTO {T['stale']} (lead_id, marked_at) SELECT id, %s FROM {T['lead']} "
            f"WHERE updated_at > %s ON CONFLICT (lead_id) DO NOTHING",
            [stamp, after],
        )
    state.watermarks = {"ids": new_ids, "counts": counts, "time": now.isoformat()}


def _create_work_tables(cursor):
    temp = "TEMP"
    cursor.execute(f"CREATE {temp} TABLE IF NOT EXISTS {BATCH_TABLE} (lead_id bigint PRIMARY KEY)")
    cursor.execute(
        f"CREATE {temp} TABLE IF NOT EXISTS {FUNNEL_DELTA} "
        "(kind varchar(8), dim varchar(10), value varchar(40), day date, stage varchar(40), n integer)"
    )
    cursor.execute(
        f"CREATE {temp} TABLE IF NOT EXISTS {LIGHT_DELTA} "
        "(dim varchar(10), value varchar(40), day date, band varchar(6), temperature varchar(4), delta integer)"
    )
    cursor.execute(
        f"CREATE {temp} TABLE IF NOT EXISTS {VELOCITY_DELTA} "
        "(dim varchar(10), value varchar(40), month date, stage varchar(40), bucket integer, n integer)"
    )
    cursor.execute(
        f"CREATE {temp} TABLE IF NOT EXISTS {HANDOVER_DELTA} (kind varchar(8), dim varchar(10), value varchar(40), "
        "day date, k1 varchar(40), k2 varchar(40), k3 varchar(40), n integer)"
    )
    for table in (BATCH_TABLE, FUNNEL_DELTA, LIGHT_DELTA, VELOCITY_DELTA, HANDOVER_DELTA):
        cursor.execute(f"DELETE FROM {table}")


def _drop_work_tables(cursor):
    for table in (BATCH_TABLE, FUNNEL_DELTA, LIGHT_DELTA, VELOCITY_DELTA, HANDOVER_DELTA):
        cursor.execute(f"DROP TABLE IF EXISTS {table}")


def refresh_batch(cursor, batch):
    """Recompute every per-lead row of the next `batch` stale leads and move the cubes by the difference.
    Returns how many leads it recomputed."""
    _create_work_tables(cursor)
    cursor.execute(
        f"INSERT INTO {BATCH_TABLE} (lead_id) SELECT lead_id FROM {T['stale']} ORDER BY lead_id LIMIT %s",
        [batch],
    )
    cursor.execute(f"SELECT COUNT(*) FROM {BATCH_TABLE}")
    count = cursor.fetchone()[0]
    if not count:
        _drop_work_tables(cursor)
        return 0
    if connection.vendor == "postgresql":
        cursor.execute(f"ANALYZE {BATCH_TABLE}")
    collect_deltas(cursor, -1)
    for key in ("interval", "leadfact", "band", "handoverfact"):
        cursor.execute(f"DELETE FROM {T[key]} WHERE lead_id IN (SELECT lead_id FROM {BATCH_TABLE})")
    insert_intervals(cursor, True)
    insert_lead_facts(cursor, True)
    insert_band_intervals(cursor, True)
    insert_handover_facts(cursor, True, db_now())
    collect_deltas(cursor, 1)
    apply_deltas(cursor)
    cursor.execute(f"DELETE FROM {T['stale']} WHERE lead_id IN (SELECT lead_id FROM {BATCH_TABLE})")
    _drop_work_tables(cursor)
    return count


def mark_deleted():
    """Mark leads that were deleted (no trail says so) stale, so their rows go; cheap when nothing was deleted:
    the full comparison runs only when the lead facts outnumber the leads."""
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT (SELECT COUNT(*) FROM {T['leadfact']}) - (SELECT COUNT(*) FROM {T['lead']})")
        if cursor.fetchone()[0] <= 0:
            return 0
        cursor.execute(
            f"INSERT INTO {T['stale']} (lead_id, marked_at) SELECT f.lead_id, %s FROM {T['leadfact']} f "
            f"WHERE NOT EXISTS (SELECT 1 FROM {T['lead']} l WHERE l.id = f.lead_id) ON CONFLICT (lead_id) DO NOTHING",
            [db_now()],
        )
        return cursor.rowcount


def refresh(*, batch=BATCH, max_batches=50):
    """Bring the rollups up to date with the record: mark what changed, recompute it batch by batch.

    Runs under a lock on the state row, so two refreshes (or a refresh and a rebuild) never interleave; a refresh
    that finds the lock taken leaves at once (the running one, or the next, does the work). Before the first
    build it builds everything. Returns (leads recomputed, seconds).
    """
    started = time.perf_counter()
    done = 0
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            now = timezone.now()
            state = _state(lock=True, wait=False)
            if state.rebuilt_at is None:  # nothing to refresh from yet: build everything
                return 0, rebuild()
            mark_changed(cursor, state, now)
            state.save(update_fields=["watermarks"])
    except Busy:
        log.info("rollups busy: another refresh or rebuild is running")
        return 0, 0.0
    for _ in range(max_batches):
        with transaction.atomic(), connection.cursor() as cursor:
            _state(lock=True)
            count = refresh_batch(cursor, batch)
        done += count
        if count < batch and not mark_deleted():
            break
    elapsed = time.perf_counter() - started
    RollupState.objects.filter(name=STATE).update(
        refreshed_at=timezone.now(), last_refresh_s=round(elapsed, 3)
    )
    return done, elapsed


# How old the rollups may be before a reader asks for a refresh (the beat asks every minute anyway).
STALE_AFTER_S = 60
REFRESH_ASKED = "leadcockpit:insights:refresh-asked"


def refresh_if_stale(as_of):
    """Ask for a refresh when the rollups are older than STALE_AFTER_S, at most once a minute. Without a broker
    (the embedded default, no beat) this is what keeps the cockpit fresh: the refresh runs before the page."""
    if as_of is not None and (timezone.now() - as_of).total_seconds() < STALE_AFTER_S:
        return
    if not cache.add(REFRESH_ASKED, 1, STALE_AFTER_S):
        return
    from . import tasks

    try:
        tasks.refresh_rollups.delay()
    except Exception:  # a broker that is down must not break the page: the beat catches up
        log.warning("could not enqueue refresh_rollups", exc_info=True)


def data_as_of():
    """When the rollups last caught up with the record (None before the first build)."""
    return RollupState.objects.filter(name=STATE).values_list("refreshed_at", flat=True).first()
