# ruff: noqa: S608 - SQL built from model table names and fixed column lists; values are bound.
"""Stored attribution credits: computed set-based in SQL, refreshed for changed leads, read by the panels.

The SQL follows attribution.py rule for rule (a property test holds the two equal): for each conversion of a
lead in scope (created, MQL, SAL, SQL, won), its touchpoints up to the conversion moment are numbered with window
functions, each gets its weight under every model, and the weights are summed per credited (channel, campaign)
into CreditFact rows. A touchpoint's channel is its campaign's channel when it has a campaign, else its own; the
same holds for the lead's own campaign ("own" model) and for the fallback of a conversion without touchpoints.

CreditDaily sums the facts per day, for all leads and per value of one lead dimension. A refresh recomputes the
facts of the changed leads, then every (day, outcome) cube slice the old or new facts fall on, from the facts:
exact, no running sums that drift. One refresh at a time (it holds the state row).

Runs on PostgreSQL and, for the embedded demo, SQLite (the same SQL through a few dialect helpers).
"""

import hashlib
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Case, Count, F, FloatField, Q, Sum, Value, When
from django.utils import timezone

from leadcockpit.accounts.models import User
from leadcockpit.leads.models import Campaign, Company, Lead, LeadMerge, StageChange, Touchpoint

from . import attribution
from .attribution import MAX_HALF_LIVES
from .models import RollupState
from .models_attribution import MODEL_COLUMNS, CreditDaily, CreditFact, CreditMonthly, Outcome

log = logging.getLogger(__name__)

LEAD = Lead._meta.db_table
TOUCHPOINT = Touchpoint._meta.db_table
CAMPAIGN = Campaign._meta.db_table
COMPANY = Company._meta.db_table
USER = User._meta.db_table
FACT = CreditFact._meta.db_table
DAILY = CreditDaily._meta.db_table
MONTHLY = CreditMonthly._meta.db_table

STATE = "attribution"
WON_STAGES = ("won", "customer_care", "upsell")  # a won lead stays won in customer care and upsell
# Lead dimensions the cube is cut by (channel and campaign are the credited ones, in the key of every row).
CUBE_DIMENSIONS = ("source", "team", "rep", "industry", "country")
LEAD_DIMENSIONS = ("channel", "campaign", *CUBE_DIMENSIONS)
# When each conversion happened, as SQL over the lead row `l`.
CONVERSIONS = {
    Outcome.LEAD: "l.created_at",
    Outcome.MQL: "l.mql_at",
    Outcome.SAL: "l.sal_at",
    Outcome.SQL: "l.sql_at",
    # A lead in a won stage converted when it closed (its last stage change, if the close went unrecorded).
    Outcome.WON: (
        f"CASE WHEN l.stage_id IN ({', '.join(repr(s) for s in WON_STAGES)}) "
        "THEN COALESCE(l.closed_at, l.stage_changed_at) END"
    ),
}
REBUILD_CHUNK = 50_000
REFRESH_BATCH = 5_000
FACTS_CACHE_S = (
    600  # answers from the facts, kept until the credits change (the key holds their refresh time)
)


def half_life_days() -> float:
    """The time-decay half-life in days: settings.INSIGHTS_HALF_LIFE_DAYS, else 7."""
    return float(getattr(settings, "INSIGHTS_HALF_LIFE_DAYS", attribution.DEFAULT_HALF_LIFE_DAYS))


class Dialect:
    def __init__(self, vendor):
        self.postgres = vendor == "postgresql"

    def seconds_between(self, later, earlier):
        if self.postgres:
            return f"date_part('epoch', {later} - {earlier})"  # float8; EXTRACT gives numeric
        return f"((julianday({later}) - julianday({earlier})) * 86400.0)"

    def local_date(self, sql):
        """The calendar day of a timestamp in the site's time zone."""
        if self.postgres:
            return f"CAST(({sql} AT TIME ZONE '{_tz()}') AS date)"
        return f"django_datetime_cast_date({sql}, '{_tz()}', 'UTC')"

    @property
    def float(self):
        return "double precision" if self.postgres else "REAL"

    def in_ids(self, column, ids, params):
        if self.postgres:
            params.append(list(ids))
            return f"{column} = ANY(%s)"
        params.extend(ids)
        return f"{column} IN ({', '.join(['%s'] * len(ids))})"


def _tz():
    name = timezone.get_default_timezone_name()
    if not name.replace("/", "").replace("_", "").replace("-", "").replace("+", "").isalnum():
        raise ValueError(f"odd time zone name {name!r}")
    return name


def facts_select(d, scope_sql, *, half_life_s):
    """SELECT of CreditFact rows (in FACT_COLUMNS order) for the leads matching scope_sql, a condition on `l`.

    One sort and one window pass over the touchpoints that count: row number, count, how many come at or before
    the lead's creation and its SQL moment (= the positions of those milestones, as the order is by time), and
    the sum of the decay factors.
    """
    f = d.float
    touched = f"SELECT 1 FROM {TOUCHPOINT} tp WHERE tp.lead_id = l.id AND tp.occurred_at <= {{at}}"
    conversions = " UNION ALL ".join(
        f"SELECT l.id AS lead_id, '{outcome.value}' AS outcome, {sql} AS converted_at, l.created_at, l.sql_at, "
        "l.first_channel_id, l.campaign_id, "
        f"CASE WHEN EXISTS ({touched.format(at=sql)}) THEN 1 ELSE 0 END AS touched "
        f"FROM {LEAD} l WHERE ({scope_sql}) AND {sql} IS NOT NULL"
        for outcome, sql in CONVERSIONS.items()
    )
    age = f"{d.seconds_between('c.converted_at', 'tp.occurred_at')} / {float(half_life_s)!r}"
    decay = (
        f"POWER(CAST(0.5 AS {f}), CASE WHEN {age} > {MAX_HALF_LIVES} THEN {MAX_HALF_LIVES} ELSE {age} END)"
    )
    # How many distinct milestones (first, creation, opportunity), as a float for the divisions below.
    wm = (
        f"CAST(1 + CASE WHEN cpos <> 1 THEN 1 ELSE 0 END "
        f"+ CASE WHEN opos <> 1 AND opos <> cpos THEN 1 ELSE 0 END AS {f})"
    )
    weights = {
        "first_touch": "CASE WHEN rn = 1 THEN 1 ELSE 0 END",
        "last_touch": "CASE WHEN rn = n THEN 1 ELSE 0 END",
        "linear": "1 / n",
        # 40 % first, 40 % last, 20 % over the middle; with two touchpoints 50/50.
        "u_shaped": "CASE WHEN n <= 2 THEN 1 / n WHEN rn = 1 OR rn = n THEN 0.4 ELSE 0.2 / (n - 2) END",
        # wm distinct milestones share 90 %, the rest 10 %; with no rest the milestones share all.
        "w_shaped": (
            f"CASE WHEN n = {wm} THEN 1 / {wm} WHEN rn = 1 OR rn = cpos OR rn = opos THEN 0.9 / {wm} "
            f"ELSE 0.1 / (n - {wm}) END"
        ),
        "time_decay": "decay / decay_sum",
    }
    # float8 throughout: numeric maths (PostgreSQL's type for 0.4, or for 1 / n over an integer) is far slower.
    touch_weights = ", ".join(f"CAST({sql} AS {f}) AS w_{name}" for name, sql in weights.items())
    # The own campaign gets the "own" model's credit, and every model's when no touchpoint counts.
    own_weights = ", ".join(f"CAST(1 - touched AS {f})" for _name in weights)
    sums = ", ".join(f"SUM(w_{name}) AS w_{name}" for name in MODEL_COLUMNS)
    w_columns = ", ".join(f"s.w_{name}" for name in MODEL_COLUMNS)
    own_key = "COALESCE(lc.channel_id, l.first_channel_id, ''), COALESCE(l.campaign_id, 0)"
    won = CONVERSIONS[Outcome.WON]
    return f"""
WITH conv AS ({conversions}),
touch AS (
  SELECT c.lead_id, c.outcome, c.converted_at,
         COALESCE(tc.channel_id, tp.channel_id, '') AS channel, COALESCE(tp.campaign_id, 0) AS campaign,
         ROW_NUMBER() OVER (p ORDER BY tp.occurred_at, tp.id) AS rn,
         CAST(COUNT(*) OVER p AS {f}) AS n,
         COUNT(CASE WHEN tp.occurred_at <= c.created_at THEN 1 END) OVER p AS ccount,
         CASE WHEN c.sql_at IS NULL OR c.sql_at > c.converted_at THEN COUNT(*) OVER p
              ELSE COUNT(CASE WHEN tp.occurred_at <= c.sql_at THEN 1 END) OVER p END AS ocount,
         {decay} AS decay,
         SUM({decay}) OVER p AS decay_sum
  FROM conv c
  JOIN {TOUCHPOINT} tp ON tp.lead_id = c.lead_id AND tp.occurred_at <= c.converted_at
  LEFT JOIN {CAMPAIGN} tc ON tc.id = tp.campaign_id
  WHERE c.touched = 1
  WINDOW p AS (PARTITION BY c.lead_id, c.outcome)
),
placed AS (
  SELECT touch.*, CASE WHEN ccount = 0 THEN 1 ELSE ccount END AS cpos,
         CASE WHEN ocount = 0 THEN 1 ELSE ocount END AS opos
  FROM touch
),
credits AS (
  SELECT lead_id, outcome, converted_at, channel, campaign, CAST(0 AS {f}) AS w_own, {touch_weights}
  FROM placed
  UNION ALL
  SELECT c.lead_id, c.outcome, c.converted_at, {own_key.replace("l.", "c.")}, CAST(1 AS {f}), {own_weights}
  FROM conv c LEFT JOIN {CAMPAIGN} lc ON lc.id = c.campaign_id
),
summed AS (
  SELECT lead_id, outcome, MIN(converted_at) AS converted_at, channel, campaign, {sums}
  FROM credits GROUP BY lead_id, outcome, channel, campaign
)
SELECT s.lead_id, s.outcome, {d.local_date("s.converted_at")}, s.channel, s.campaign,
       ({won}) IS NOT NULL,
       CASE WHEN ({won}) IS NOT NULL THEN COALESCE(CAST(l.deal_value AS {f}), 0) ELSE CAST(0 AS {f}) END,
       {own_key}, l.source, COALESCE(u.team_id, 0), COALESCE(l.owner_id, 0),
       COALESCE(co.industry, ''), COALESCE(co.country, ''), {w_columns}
FROM summed s
JOIN {LEAD} l ON l.id = s.lead_id
LEFT JOIN {CAMPAIGN} lc ON lc.id = l.campaign_id
LEFT JOIN {USER} u ON u.id = l.owner_id
LEFT JOIN {COMPANY} co ON co.id = l.company_id
"""


FACT_COLUMNS = (
    "lead_id",
    "outcome",
    "converted_on",
    "credit_channel",
    "credit_campaign",
    "won",
    "deal_value",
    *LEAD_DIMENSIONS,
    *(f"w_{name}" for name in MODEL_COLUMNS),
)


def compute_facts(scope_sql, params=(), *, half_life_s=None):
    """Insert the CreditFact rows of the leads in scope (the caller deleted their old ones)."""
    d = Dialect(connection.vendor)
    half_life_s = half_life_s or half_life_days() * 86400
    sql = facts_select(d, scope_sql, half_life_s=half_life_s)
    with connection.cursor() as cursor:
        if d.postgres:
            # One-off statements: JIT compiling costs more than it saves; the window sorts fit in memory.
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL work_mem = '64MB'")
        # The scope appears once per conversion kind.
        cursor.execute(
            f"INSERT INTO {FACT} ({', '.join(FACT_COLUMNS)}) {sql}", list(params) * len(CONVERSIONS)
        )
        return cursor.rowcount


# -- the cubes --------------------------------------------------------------------------------------------------

SUM_COLUMNS = (
    *(f"c_{m}" for m in MODEL_COLUMNS),
    *(f"r_{m}" for m in MODEL_COLUMNS),
    "won",
    "n",
)
KEY_COLUMNS = ("dim", "value", "day", "outcome", "channel", "campaign")
CUBE_SUMS = ", ".join(
    [f"SUM(f.w_{m}) AS c_{m}" for m in MODEL_COLUMNS]
    + [f"SUM(f.w_{m} * f.deal_value) AS r_{m}" for m in MODEL_COLUMNS]
    + ["SUM(CASE WHEN f.won THEN f.w_own ELSE 0 END) AS won", "COUNT(*) AS n"]
)
INT_CUBE_DIMENSIONS = {"team", "rep"}
DELTA = "insights_credit_delta"
BATCH = "insights_credit_batch"


def _as_text(d, sql):
    return f"CAST({sql} AS TEXT)"


def cube_selects(d, where_sql, table=FACT):
    """One SELECT per cube dimension ('' = all leads) summing the facts (of `table`) matching where_sql (over `f`)
    per day, in KEY_COLUMNS + SUM_COLUMNS order."""
    out = []
    for dim in ("", *CUBE_DIMENSIONS):
        if dim:
            value = _as_text(d, f"f.{dim}")
            present = f" AND f.{dim} <> {0 if dim in INT_CUBE_DIMENSIONS else repr('')}"
            group = f"f.{dim}, "
        else:
            value, present, group = "''", "", ""
        out.append(
            f"SELECT '{dim}' AS dim, {value} AS value, f.converted_on AS day, f.outcome AS outcome, "
            f"f.credit_channel AS channel, f.credit_campaign AS campaign, {CUBE_SUMS} "
            f"FROM {table} f WHERE ({where_sql}){present} "
            f"GROUP BY {group}f.converted_on, f.outcome, f.credit_channel, f.credit_campaign"
        )
    return out


def month_of(d, sql):
    return f"CAST(date_trunc('month', {sql}) AS date)" if d.postgres else f"date({sql}, 'start of month')"


def fill_cubes(cursor, d):
    """Empty both cubes and sum them again from every fact (days from facts, months from days)."""
    cursor.execute(f"DELETE FROM {DAILY}")
    cursor.execute(f"DELETE FROM {MONTHLY}")
    columns = ", ".join((*KEY_COLUMNS, *SUM_COLUMNS))
    for select in cube_selects(d, "1 = 1"):
        cursor.execute(f"INSERT INTO {DAILY} ({columns}) {select}")
    sums = ", ".join(f"SUM({c})" for c in SUM_COLUMNS)
    cursor.execute(
        f"INSERT INTO {MONTHLY} ({columns}) SELECT dim, value, {month_of(d, 'day')}, outcome, channel, campaign, "
        f"{sums} FROM {DAILY} GROUP BY dim, value, {month_of(d, 'day')}, outcome, channel, campaign"
    )


def _create_delta(cursor, d):
    sums = ", ".join(f"{c} {'integer' if c == 'n' else d.float}" for c in SUM_COLUMNS)
    cursor.execute(
        f"CREATE TEMP TABLE IF NOT EXISTS {DELTA} (dim varchar(10), value varchar(40), day date, "
        f"outcome varchar(4), channel varchar(40), campaign bigint, {sums})"
    )
    cursor.execute(f"DELETE FROM {DELTA}")


def collect_delta(cursor, d, sign):
    """Add the cube rows of the facts in the batch table, times sign, to the delta table."""
    columns = ", ".join((*KEY_COLUMNS, *SUM_COLUMNS))
    signed = ", ".join([*KEY_COLUMNS, *(f"{sign} * {c}" for c in SUM_COLUMNS)])
    for select in cube_selects(d, "1 = 1", table=BATCH):
        cursor.execute(f"INSERT INTO {DELTA} ({columns}) SELECT {signed} FROM ({select}) x")


def apply_delta(cursor, d):
    """Move both cubes by the delta table (keys whose old and new facts cancel out are left alone); rows left
    with no facts go."""
    columns = ", ".join((*KEY_COLUMNS, *SUM_COLUMNS))
    sums = ", ".join(f"SUM({c})" for c in SUM_COLUMNS)
    moved = " OR ".join(["SUM(n) <> 0"] + [f"ABS(SUM({c})) > 1e-9" for c in SUM_COLUMNS if c != "n"])
    for table, day in ((DAILY, "day"), (MONTHLY, month_of(d, "day"))):
        update = ", ".join(f"{c} = {table}.{c} + excluded.{c}" for c in SUM_COLUMNS)
        cursor.execute(
            f"INSERT INTO {table} ({columns}) "
            f"SELECT dim, value, {day}, outcome, channel, campaign, {sums} FROM {DELTA} WHERE 1 = 1 "
            f"GROUP BY dim, value, {day}, outcome, channel, campaign HAVING {moved} "
            f"ON CONFLICT ({', '.join(KEY_COLUMNS)}) DO UPDATE SET {update} RETURNING id, n"
        )
        empty = [pk for pk, n in cursor.fetchall() if n == 0]
        if empty:
            params = []
            cursor.execute(f"DELETE FROM {table} WHERE {d.in_ids('id', empty, params)}", params)


# -- refresh and rebuild ----------------------------------------------------------------------------------------


def _state(*, lock):
    state, _ = RollupState.objects.get_or_create(name=STATE)
    if lock:
        state = RollupState.objects.select_for_update().get(name=STATE)
    return state


def recompute_leads(ids, *, half_life_s=None):
    """Recompute the facts of these leads and move the cubes by the difference (in the caller's transaction,
    which holds the state row)."""
    ids = sorted(set(ids))
    if not ids:
        return
    d = Dialect(connection.vendor)
    with connection.cursor() as cursor:
        _create_delta(cursor, d)
        params = []
        cond = d.in_ids("lead_id", ids, params)
        # The batch's facts are read once into a small table, before and after, and the cube rows summed there.
        cursor.execute(f"CREATE TEMP TABLE {BATCH} AS SELECT * FROM {FACT} WHERE {cond}", params)
        collect_delta(cursor, d, -1)
        cursor.execute(f"DELETE FROM {FACT} WHERE {cond}", params)
        scope_params = []
        compute_facts(d.in_ids("l.id", ids, scope_params), scope_params, half_life_s=half_life_s)
        cursor.execute(f"DELETE FROM {BATCH}")
        cursor.execute(f"INSERT INTO {BATCH} SELECT * FROM {FACT} WHERE {cond}", params)
        collect_delta(cursor, d, 1)
        apply_delta(cursor, d)
        cursor.execute(f"DROP TABLE {DELTA}")
        cursor.execute(f"DROP TABLE {BATCH}")


@dataclass
class Result:
    leads: int = 0
    seconds: float = 0.0
    rebuilt: bool = False


def rebuild(*, chunk=REBUILD_CHUNK) -> Result:
    """Recompute every lead's facts (chunk by chunk, each chunk its own transaction), then both cubes at once
    (readers see the old cubes until that commits)."""
    started = time.perf_counter()
    result = Result(rebuilt=True)
    d = Dialect(connection.vendor)
    with transaction.atomic(), connection.cursor() as cursor:
        _state(lock=True)
        marks = _current_marks()
        half_life = half_life_days()
        # Start from an empty table (no dead rows to wade through); the cubes keep the old numbers until the end.
        cursor.execute(f"TRUNCATE {FACT}" if d.postgres else f"DELETE FROM {FACT}")
        cursor.execute(f"SELECT MIN(id), MAX(id) FROM {LEAD}")
        low, high = cursor.fetchone()
    low = low or 0
    high = high if high is not None else -1
    for start in range(low, high + 1, chunk):
        with transaction.atomic(), connection.cursor() as cursor:
            _state(lock=True)
            cursor.execute(f"DELETE FROM {FACT} WHERE lead_id BETWEEN %s AND %s", [start, start + chunk - 1])
            compute_facts("l.id BETWEEN %s AND %s", [start, start + chunk - 1], half_life_s=half_life * 86400)
    with transaction.atomic(), connection.cursor() as cursor:
        state = _state(lock=True)
        # Facts of leads outside the id range rebuilt no longer have a lead.
        cursor.execute(f"DELETE FROM {FACT} WHERE lead_id < %s OR lead_id > %s", [low, high])
        if d.postgres:
            cursor.execute(f"ANALYZE {FACT}")  # the cubes are summed from it next
        fill_cubes(cursor, d)
        cursor.execute(f"SELECT COUNT(*) FROM {LEAD}")
        result.leads = cursor.fetchone()[0]
        state.watermarks = {**marks, "half_life_days": half_life}
        state.rebuilt_at = state.refreshed_at = timezone.now()
        result.seconds = time.perf_counter() - started
        state.last_rebuild_s = round(result.seconds, 3)
        state.save()
    if d.postgres and connection.get_autocommit():  # VACUUM cannot run in a transaction (tests run in one)
        with connection.cursor() as cursor:
            for table in (FACT, DAILY, MONTHLY):
                cursor.execute(f"VACUUM ANALYZE {table}")
    return result


# Id-ordered sources that name changed leads: new leads, stage changes (conversions), merges, touchpoints.
MARK_SOURCES = {
    "lead": (LEAD, ["id"]),
    "stagechange": (StageChange._meta.db_table, ["lead_id"]),
    "merge": (LeadMerge._meta.db_table, ["merged_lead_id", "lead_id"]),
    "touchpoint": (TOUCHPOINT, ["lead_id"]),
}
# Lead edits are found by updated_at, looking back this far (a transaction that committed late is still seen).
TIME_OVERLAP_S = 300


def _current_marks():
    marks = {}
    with connection.cursor() as cursor:
        for key, (table, _columns) in MARK_SOURCES.items():
            cursor.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")
            marks[key] = cursor.fetchone()[0]
    return {"ids": {key: [hi, hi] for key, hi in marks.items()}, "time": timezone.now().isoformat()}


def changed_leads(stored, current) -> set[int]:
    """Leads that may have changed since the stored marks.

    Each id-ordered source is read from the mark of the refresh before last: a row whose transaction took its id
    before the last refresh but committed after it is still seen (its leads are recomputed twice, harmlessly).
    A touchpoint counts only when it comes at or before one of its lead's conversions: later ones credit nothing
    until the next conversion, which a stage change announces.
    """
    ids = set()
    stored_ids = stored.get("ids", {})
    later = " OR ".join(f"tp.occurred_at <= {sql}" for sql in CONVERSIONS.values())
    with connection.cursor() as cursor:
        for key, (table, columns) in MARK_SOURCES.items():
            since = stored_ids.get(key, [0, 0])[0]
            until = current["ids"][key][1]
            for column in columns:
                if key == "touchpoint":
                    cursor.execute(
                        f"SELECT DISTINCT tp.lead_id FROM {TOUCHPOINT} tp JOIN {LEAD} l ON l.id = tp.lead_id "
                        f"WHERE tp.id > %s AND tp.id <= %s AND ({later})",
                        [since, until],
                    )
                else:
                    cursor.execute(
                        f"SELECT DISTINCT {column} FROM {table} WHERE id > %s AND id <= %s AND {column} IS NOT NULL",
                        [since, until],
                    )
                ids.update(row[0] for row in cursor.fetchall())
        if stored.get("time"):
            after = timezone.datetime.fromisoformat(stored["time"]) - timedelta(seconds=TIME_OVERLAP_S)
            cursor.execute(f"SELECT id FROM {LEAD} WHERE updated_at > %s", [after])
            ids.update(row[0] for row in cursor.fetchall())
    return ids


def _shifted(stored, current):
    """The marks to store after a refresh: this refresh's as the newer, the last one's as the older."""
    stored_ids = stored.get("ids", {})
    return {
        "ids": {key: [stored_ids.get(key, [0, 0])[1], current["ids"][key][1]] for key in current["ids"]},
        "time": current["time"],
        "half_life_days": stored.get("half_life_days", half_life_days()),
    }


def refresh(*, batch=REFRESH_BATCH) -> Result:
    """Bring the credits up to date: recompute the leads changed since the last refresh, batch by batch (each
    batch one transaction holding the state row). A first run, or a new half-life, rebuilds everything."""
    started = time.perf_counter()
    with transaction.atomic():
        state = _state(lock=True)
        stored = state.watermarks or {}
        if state.rebuilt_at is None or stored.get("half_life_days") != half_life_days():
            return rebuild()
        current = _current_marks()
        ids = sorted(changed_leads(stored, current))
    for offset in range(0, len(ids), batch):
        with transaction.atomic():
            _state(lock=True)
            recompute_leads(ids[offset : offset + batch])
    result = Result(leads=len(ids))
    with transaction.atomic():
        state = _state(lock=True)
        state.watermarks = _shifted(state.watermarks or {}, current)
        state.refreshed_at = timezone.now()
        result.seconds = time.perf_counter() - started
        state.last_refresh_s = round(result.seconds, 3)
        state.save()
    return result


def data_as_of():
    """When the credits last caught up with the record (None before the first build)."""
    return RollupState.objects.filter(name=STATE).values_list("refreshed_at", flat=True).first()


def lead_credits(lead, *, half_life_days_=None) -> dict:
    """The Python reference for one lead: {(outcome, channel, campaign): {model column: weight}}, as the facts
    should hold them (attribution.py's rules, the channel and fallback rules above)."""
    half_life = timedelta(days=half_life_days_ or half_life_days())
    campaigns = dict(Campaign.objects.values_list("pk", "channel_id"))
    touches = [
        attribution.Touch(at, campaigns.get(campaign) or channel or "", campaign or 0)
        for at, channel, campaign in lead.touchpoints.order_by("occurred_at", "pk").values_list(
            "occurred_at", "channel_id", "campaign_id"
        )
    ]
    own = (campaigns.get(lead.campaign_id) or lead.first_channel_id or "", lead.campaign_id or 0)
    won = lead.stage_id in WON_STAGES
    moments = {
        Outcome.LEAD: lead.created_at,
        Outcome.MQL: lead.mql_at,
        Outcome.SAL: lead.sal_at,
        Outcome.SQL: lead.sql_at,
        Outcome.WON: (lead.closed_at or lead.stage_changed_at) if won else None,
    }
    out = {}
    for outcome, moment in moments.items():
        if moment is None:
            continue
        out.setdefault((outcome.value, *own), {})["own"] = 1.0
        for model in attribution.MODELS:
            credit = attribution.credit(
                model,
                touches,
                converted_at=moment,
                created_at=lead.created_at,
                opportunity_at=lead.sql_at,
                half_life=half_life,
                fallback=own,
            )
            for (channel, campaign), weight in credit.items():
                out.setdefault((outcome.value, channel, campaign), {})[model] = weight
    return out


# -- reading: what the panels ask -------------------------------------------------------------------------------


@dataclass
class Sums:
    """Credits of one (outcome, channel, campaign): per model the summed weights and revenue, the own weight of
    leads that are won, and how many facts."""

    credit: dict = field(default_factory=lambda: dict.fromkeys(MODEL_COLUMNS, 0.0))
    revenue: dict = field(default_factory=lambda: dict.fromkeys(MODEL_COLUMNS, 0.0))
    won: float = 0.0
    n: int = 0

    def add(self, row):
        for m in MODEL_COLUMNS:
            self.credit[m] += row[f"c_{m}"] or 0.0
            self.revenue[m] += row[f"r_{m}"] or 0.0
        self.won += row["won"] or 0.0
        self.n += row["n"] or 0


def split_range(start, end):
    """(first month, last month, day ranges): the whole months inside [start, end] (as their first days; None,
    None when there is none) and the day ranges left over at the edges."""
    first = start if start.day == 1 else (start.replace(day=1) + timedelta(days=32)).replace(day=1)
    after_end = end + timedelta(days=1)
    last_end = end if after_end.day == 1 else end.replace(day=1) - timedelta(days=1)
    if first > last_end:
        return None, None, [(start, end)]
    days = []
    if start < first:
        days.append((start, first - timedelta(days=1)))
    if last_end < end:
        days.append((last_end + timedelta(days=1), end))
    return first, last_end.replace(day=1), days


def _credit_filters(criteria, prefix=""):
    """The credited channel and campaign chosen in the filters, as ORM keyword arguments."""
    out = {}
    if "channel" in criteria.dims:
        out[f"{prefix}channel"] = criteria.dims["channel"]
    if "campaign" in criteria.dims:
        out[f"{prefix}campaign"] = int(criteria.dims["campaign"])
    return out


def lead_dims(criteria):
    return {name: value for name, value in criteria.dims.items() if name in CUBE_DIMENSIONS}


NOTHING = ("", "-")  # a cube key no row has: filters that exclude each other


def cube_key(criteria):
    """(dim, value) of the cube rows answering the lead filters, or None when two or more are chosen.

    A rep and a team are one filter: a lead's team is its owner's, so the rep's cube rows answer when the rep is
    in that team, and nothing does otherwise."""
    dims = lead_dims(criteria)
    if set(dims) == {"rep", "team"}:
        in_team = User.objects.filter(pk=dims["rep"], team_id=dims["team"]).exists()
        return ("rep", str(dims["rep"])) if in_team else NOTHING
    if not dims:
        return "", ""
    if len(dims) == 1:
        ((name, value),) = dims.items()
        return name, str(value)
    return None


def _sum_annotations(prefix):
    if prefix == "w_":  # facts: sum the weights, weight × deal value, own weight of won leads
        out = {f"c_{m}": Sum(f"w_{m}") for m in MODEL_COLUMNS}
        out |= {f"r_{m}": Sum(F(f"w_{m}") * F("deal_value")) for m in MODEL_COLUMNS}
        out["won"] = Sum(Case(When(won=True, then=F("w_own")), default=Value(0.0), output_field=FloatField()))
        out["n"] = Count("*")
        return out
    return {name: Sum(name) for name in SUM_COLUMNS}


def credit_sums(criteria, outcomes=None) -> dict:
    """{(outcome, channel, campaign): Sums} for conversions on days in the criteria's range, the lead filters and
    the credited channel / campaign chosen. Cube months and days when no or one lead filter is set (a few thousand
    rows at any size), else the per-lead facts."""
    out = {}
    key = cube_key(criteria)
    outcome_q = Q(outcome__in=outcomes) if outcomes else Q()
    if key is NOTHING:
        return out
    if key is None:
        # Two or more lead filters: the facts answer, which costs more; the same question asked again before
        # the next refresh is answered from the cache.
        cache_key = (
            "leadcockpit:insights:credit-sums:"
            + hashlib.sha256(
                repr(
                    (
                        criteria.start,
                        criteria.end,
                        sorted(criteria.dims.items()),
                        sorted(outcomes or ()),
                        data_as_of(),
                    )
                ).encode()
            ).hexdigest()
        )
        cached = cache.get(cache_key)
        if cached is not None:
            return cached
        rows = (
            CreditFact.objects.filter(
                outcome_q,
                converted_on__gte=criteria.start,
                converted_on__lte=criteria.end,
                **lead_dims(criteria),
                **_credit_filters(criteria, "credit_"),
            )
            .values("outcome", "credit_channel", "credit_campaign")
            .annotate(**_sum_annotations("w_"))
        )
        for row in rows:
            out.setdefault((row["outcome"], row["credit_channel"], row["credit_campaign"]), Sums()).add(row)
        cache.set(cache_key, out, FACTS_CACHE_S)
        return out
    first, last, day_ranges = split_range(criteria.start, criteria.end)
    reads = []
    if first is not None:
        reads.append((CreditMonthly, Q(day__gte=first, day__lte=last)))
    if day_ranges:
        days_q = Q()
        for low, high in day_ranges:
            days_q |= Q(day__gte=low, day__lte=high)
        reads.append((CreditDaily, days_q))
    for model, days_q in reads:
        rows = (
            model.objects.filter(days_q, outcome_q, dim=key[0], value=key[1], **_credit_filters(criteria))
            .values("outcome", "channel", "campaign")
            .annotate(**_sum_annotations("c_"))
        )
        for row in rows:
            out.setdefault((row["outcome"], row["channel"], row["campaign"]), Sums()).add(row)
    return out


def refresh_if_stale(as_of, *, stale_after_s=60):
    """Ask for a refresh when the credits are older than stale_after_s, at most once per that time; with tasks
    in-process (the embedded default, no beat) the refresh runs before the page."""
    if as_of is not None and (timezone.now() - as_of).total_seconds() < stale_after_s:
        return
    if not cache.add("leadcockpit:insights:credits-refresh-asked", 1, stale_after_s):
        return
    from . import tasks

    try:
        tasks.refresh_credits.delay()
    except Exception:  # noqa: BLE001 - a broker that is down must not break the page; the next ask retries
        log.warning("could not enqueue refresh_credits", exc_info=True)
