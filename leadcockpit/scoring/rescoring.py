"""Set-based rescoring: the same rules as evaluator.py, as SQL over a chunk of leads at a time.

For each chunk: one statement computes fit, interest (aggregated in float8 over the chunk's touchpoints) and
knock-outs into a temporary table; then, from that table, score changes are recorded, leads whose stored score
differs are updated (IS DISTINCT FROM guard: unchanged rows are not written), and leads whose score newly
reaches MQL move MGL/nurturing → MQL with a StageChange by the system. Every column name comes from the
allowlist in fields.py; every value is a bound parameter.

PostgreSQL is the production path; the same SQL runs on SQLite (the embedded default) through a few dialect
helpers, so the demo scores the same way.
"""

import hashlib
import json
import time
from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from leadcockpit.leads import lifecycle
from leadcockpit.leads.models import Lead, StageChange, Touchpoint

from .fields import (
    BOOLEAN,
    CONTAINS,
    DOMAIN_IN,
    EQUALS,
    FIT_FIELDS,
    IN_LIST,
    IS_EMPTY,
    IS_SET,
    NUMBER,
    ascii_lower,
    attribute_of,
    attribute_value_kind,
)
from .models import LeadSignals, ScoreChange

LEAD = Lead._meta.db_table
TOUCHPOINT = Touchpoint._meta.db_table
SCORE_CHANGE = ScoreChange._meta.db_table
STAGE_CHANGE = StageChange._meta.db_table
COMPANY = Lead._meta.get_field("company").related_model._meta.db_table
# The stages from which the system may make a lead an MQL, as the lifecycle table says (mgl and nurturing).
MQL_FROM_STAGES = tuple(lifecycle.sources(lifecycle.MQL, lifecycle.SYSTEM))


class Dialect:
    def __init__(self, vendor):
        self.postgres = vendor == "postgresql"

    def lower(self, sql):
        # ASCII-only case folding on both databases, like fields.ascii_lower.
        return f'lower({sql} COLLATE "C")' if self.postgres else f"lower({sql})"

    def contains(self, haystack, needle):
        return f"strpos({haystack}, {needle}) > 0" if self.postgres else f"instr({haystack}, {needle}) > 0"

    def after_last_at(self, sql):
        if self.postgres:
            return f"split_part({sql}, '@', -1)"
        return f"substr({sql}, length(rtrim({sql}, replace({sql}, '@', ''))) + 1)"

    def number(self, sql):
        return f"CAST({sql} AS double precision)" if self.postgres else f"CAST({sql} AS REAL)"

    def age_days(self, as_of, sql):
        if self.postgres:
            # date_part gives float8; EXTRACT gives numeric, several times slower in bulk.
            return f"(date_part('epoch', {as_of} - {sql}) / 86400.0)"
        return f"(julianday({as_of}) - julianday({sql}))"

    def clamp(self, sql):
        """sql limited to [%s, %s] (two parameters: the lower and the upper bound)."""
        return f"GREATEST(%s, LEAST(%s, {sql}))" if self.postgres else f"MAX(%s, MIN(%s, {sql}))"

    def distinct(self, left, right):
        return f"{left} IS DISTINCT FROM {right}" if self.postgres else f"{left} IS NOT {right}"

    def flag(self, sql):
        """An integer 0/1 column as the database's boolean."""
        return f"({sql} = 1)" if self.postgres else sql

    @property
    def fence(self):
        """Ends a subquery so that the planner computes its columns once instead of inlining them."""
        return "OFFSET 0" if self.postgres else "LIMIT -1 OFFSET 0"

    def array(self, items):
        """A list of floats to store in a FloatArrayField."""
        if self.postgres:
            return f"ARRAY[{', '.join(items)}]::float8[]" if items else "'{}'::float8[]"
        return f"json_array({', '.join(items)})"

    def element(self, sql, index):
        """The index-th (from 0) float of a FloatArrayField."""
        return f"{sql}[{index + 1}]" if self.postgres else f"json_extract({sql}, '$[{index}]')"

    def json_type(self, name, params):
        """The JSON type of lead l's attribute `name` (a bound parameter): 'number', 'boolean', 'string',
        'null', or NULL where the lead has no such attribute."""
        if self.postgres:
            params.append(name)
            return "jsonb_typeof(l.attributes -> %s)"
        params.append(f'$."{name}"')
        return (
            "(CASE json_type(l.attributes, %s) WHEN 'integer' THEN 'number' WHEN 'real' THEN 'number' "
            "WHEN 'true' THEN 'boolean' WHEN 'false' THEN 'boolean' WHEN 'text' THEN 'string' ELSE 'null' END)"
        )

    def json_text(self, name, params):
        """Lead l's attribute `name` as text: numbers and true/false spelled as JSON spells them; NULL if none."""
        if self.postgres:
            params.append(name)
            return "(l.attributes ->> %s)"
        params.append(f'$."{name}"')
        # json_extract gives 1/0 for true/false: take those from json_type instead.
        params.append(f'$."{name}"')
        params.append(f'$."{name}"')
        return (
            "(CASE WHEN json_type(l.attributes, %s) IN ('true', 'false') THEN json_type(l.attributes, %s) "
            "ELSE json_extract(l.attributes, %s) END)"
        )

    def least(self, items, last):
        """The smallest of non-null items and `last` (SQLite's MIN() needs two or more arguments)."""
        return f"{'LEAST' if self.postgres else 'MIN'}({', '.join([*items, last])})"


def column(key):
    spec = FIT_FIELDS[key]
    return f'{"c" if spec.table == "company" else "l"}."{spec.column}"'


def attribute_condition_sql(d, name, operator, value, params):
    """SQL for a condition on lead l's imported attribute `name`, mirroring evaluator.condition_holds: empty is
    missing, null or ""; other operators test only values of the JSON type the condition's value implies."""
    if operator in (IS_EMPTY, IS_SET):
        empty = f"COALESCE({d.json_text(name, params)}, '') = ''"
        return f"({empty})" if operator == IS_EMPTY else f"(NOT ({empty}))"
    kind = attribute_value_kind(operator, value)
    if kind == BOOLEAN:
        typed = d.json_type(name, params)
        text = d.json_text(name, params)
        params.append("true" if value else "false")
        return f"({typed} = 'boolean' AND {text} = %s)"
    if kind == NUMBER:

        def number():
            # CASE, not AND: PostgreSQL may evaluate a cast before the type test beside it.
            typed = d.json_type(name, params)
            return f"(CASE WHEN {typed} = 'number' THEN {d.number(d.json_text(name, params))} END)"

        if operator == EQUALS:
            sql = f"({number()} = %s)"
            params.append(value)
            return sql
        parts = []
        if value["min"] is not None:
            parts.append(f"{number()} >= %s")
            params.append(value["min"])
        if value["max"] is not None:
            parts.append(f"{number()} <= %s")
            params.append(value["max"])
        return f"({' AND '.join(parts)})"
    typed = d.json_type(name, params)
    low = d.lower(d.json_text(name, params))
    if operator == EQUALS:
        params.append(ascii_lower(value))
        return f"({typed} = 'string' AND {low} = %s)"
    if operator == CONTAINS:
        params.append(ascii_lower(value))
        return f"({typed} = 'string' AND {d.contains(low, '%s')})"
    if operator == IN_LIST:
        items = [ascii_lower(item) for item in value]
        params.extend(items)
        return f"({typed} = 'string' AND {low} IN ({', '.join(['%s'] * len(items))}))"
    raise ValueError(operator)


def condition_sql(d, key, operator, value, params):
    """SQL for one allowlisted condition, mirroring evaluator.condition_holds."""
    name = attribute_of(key)
    if name is not None:
        return attribute_condition_sql(d, name, operator, value, params)
    spec = FIT_FIELDS[key]
    col = column(key)
    empty = f"{col} IS NULL" if spec.kind == NUMBER else f"({col} IS NULL OR {col} = '')"
    if operator == IS_EMPTY:
        return f"({empty})"
    if operator == IS_SET:
        return f"(NOT {empty})"
    if spec.kind == NUMBER:
        number = d.number(col)
        if operator == EQUALS:
            params.append(value)
            return f"({col} IS NOT NULL AND {number} = %s)"
        parts = [f"{col} IS NOT NULL"]
        if value["min"] is not None:
            parts.append(f"{number} >= %s")
            params.append(value["min"])
        if value["max"] is not None:
            parts.append(f"{number} <= %s")
            params.append(value["max"])
        return f"({' AND '.join(parts)})"
    low = d.lower(col)
    if operator == EQUALS:
        params.append(ascii_lower(value))
        return f"(NOT {empty} AND {low} = %s)"
    if operator == CONTAINS:
        params.append(ascii_lower(value))
        return f"(NOT {empty} AND {d.contains(low, '%s')})"
    if operator in (IN_LIST, DOMAIN_IN):
        items = [ascii_lower(item) for item in value]
        params.extend(items)
        target = d.after_last_at(low) if operator == DOMAIN_IN else low
        return f"(NOT {empty} AND {target} IN ({', '.join(['%s'] * len(items))}))"
    raise ValueError(operator)


def rule_sql(d, rule, params):
    if not rule:
        return "1=1"
    return " AND ".join(condition_sql(d, c["field"], c["operator"], c["value"], params) for c in rule)


def touch_match_sql(d, criterion, params):
    """Whether touchpoint t (url_l and terms_l lower-cased, see accumulate_sql) counts for an interest criterion."""
    parts = []
    if criterion.touchpoint_kinds:
        parts.append(f"t.kind IN ({', '.join(['%s'] * len(criterion.touchpoint_kinds))})")
        params.extend(criterion.touchpoint_kinds)
    if criterion.url_contains:
        parts.append(d.contains("t.url_l", "%s"))
        params.append(ascii_lower(criterion.url_contains))
    if criterion.channel_id:
        parts.append("t.channel_id = %s")
        params.append(criterion.channel_id)
    if criterion.search_contains:
        parts.append(d.contains("t.terms_l", "%s"))
        params.append(ascii_lower(criterion.search_contains))
    return " AND ".join(parts) or "1=1"


@dataclass
class RescoreResult:
    scored: int = 0
    updated: int = 0
    changes: int = 0
    new_mqls: int = 0
    recomputed: int = 0  # leads whose interest came from their touchpoints, not from their accumulators
    longest_s: float = 0.0  # the longest a chunk's transaction held lead rows

    def add(self, other):
        self.longest_s = max(self.longest_s, other.longest_s)
        self.scored += other.scored
        self.updated += other.updated
        self.changes += other.changes
        self.new_mqls += other.new_mqls
        self.recomputed += other.recomputed


FOREVER_DAYS = 1e9  # fresh_days of accumulators that no passing time can invalidate
FRESH_MARGIN_DAYS = 1e-6  # recompute a hair early at a look-back boundary rather than a hair late


def interest_criteria_of(criteria):
    return [c for c in criteria if c.kind == "interest"]


def interest_signature(criteria):
    """What a version's accumulators depend on: its interest criteria's matchers, windows and half-lives, in order.

    Points and caps are left out: they are applied when scoring, so a version changing only those reuses them.
    """
    spec = [
        [
            sorted(c.touchpoint_kinds or []),
            c.url_contains,
            c.channel_id,
            c.search_contains,
            c.lookback_days,
            None if c.half_life_days is None else float(c.half_life_days),
        ]
        for c in interest_criteria_of(criteria)
    ]
    return hashlib.sha256(json.dumps(spec).encode()).hexdigest()[:32]


class Sql:
    """SQL text and its parameters, built up in order so the two cannot drift apart."""

    def __init__(self, text="", params=()):
        self.text, self.params = text, list(params)

    def __iadd__(self, other):
        if isinstance(other, Sql):
            self.text += other.text
            self.params += other.params
        else:
            self.text += other
        return self

    def add(self, text, *params):
        self.text += text
        self.params += params
        return self


def fit_and_knockout_sql(d, criteria):
    """Columns fit and ko (0/1) over l (lead) and c (company)."""
    sql = Sql()
    terms = []
    for criterion in criteria:
        if criterion.kind == "fit":
            params = []
            cond = condition_sql(d, criterion.field, criterion.operator, criterion.value, params)
            terms.append(Sql(f"(CASE WHEN {cond} THEN %s ELSE 0 END)", [*params, criterion.points]))
    sql += "CAST("
    for index, term in enumerate(terms):
        sql += " + " if index else ""
        sql += term
    if not terms:
        sql += "0"
    sql += " AS double precision) AS fit, "
    knockouts = []
    for criterion in criteria:
        if criterion.kind == "knockout":
            params = []
            knockouts.append(
                Sql(condition_sql(d, criterion.field, criterion.operator, criterion.value, params), params)
            )
    if knockouts:
        sql += "CASE WHEN "
        for index, term in enumerate(knockouts):
            sql += " OR " if index else ""
            sql += term
        sql += " THEN 1 ELSE 0 END AS ko"
    else:
        sql += "0 AS ko"
    return sql


def interest_sql(d, criteria, sum_sql, decay_sql=None):
    """Column interest: per criterion, points × its sum (decayed further by decay_sql(criterion)), capped."""
    sql = Sql("CAST(")
    interest = interest_criteria_of(criteria)
    for index, criterion in enumerate(interest):
        term = Sql(f"%s * COALESCE({sum_sql(index)}, 0)", [criterion.points])
        if decay_sql is not None and criterion.half_life_days:
            term += decay_sql(criterion)
        if criterion.cap is not None:
            term = Sql(d.clamp(term.text), [-criterion.cap, criterion.cap, *term.params])
        sql += " + " if index else ""
        sql += Sql(f"({term.text})", term.params)
    if not interest:
        sql += "0"
    sql += " AS double precision) AS interest"
    return sql


def accumulate_sql(d, criteria, *, as_of):
    """Per lead in the need table: each interest criterion's sum (without points) as of `as_of`, plus freshness.

    Columns: lead_id, i0..in, fresh (days after as_of that these sums stay right).
    """
    interest = interest_criteria_of(criteria)
    sql = Sql("SELECT t.lead_id")
    fresh = []
    for index, criterion in enumerate(interest):
        match = Sql()
        match.text = touch_match_sql(d, criterion, match.params)
        match.add(" AND t.occurred_at <= %s", as_of)
        if criterion.lookback_days:
            match.add(" AND t.occurred_at >= %s", as_of - timezone.timedelta(days=criterion.lookback_days))
        sql += ", SUM(CASE WHEN "
        sql += match
        if criterion.half_life_days:
            sql.add(f" THEN power(0.5, t.age / %s) ELSE 0 END) AS i{index}", criterion.half_life_days)
        else:
            sql += f" THEN 1 ELSE 0 END) AS i{index}"
        if criterion.lookback_days:
            # The oldest touchpoint counted leaves the window `lookback - its age` days from now.
            sql += ", MIN(CASE WHEN "
            sql += match
            sql += f" THEN t.occurred_at END) AS o{index}"
            fresh.append(Sql(f"%s - {d.age_days('%s', f'a.o{index}')}", [criterion.lookback_days, as_of]))
    # A touchpoint dated after as_of starts to count once its moment comes.
    sql.add(" , MIN(CASE WHEN t.occurred_at > %s THEN t.occurred_at END) AS nxt", as_of)
    fresh.append(Sql(f"0 - {d.age_days('%s', 'a.nxt')}", [as_of]))
    # Lower-case and age each touchpoint once, not once per criterion (the fence keeps the planner from inlining).
    sql.add(
        f" FROM (SELECT t.lead_id, t.kind, t.channel_id, t.occurred_at, {d.lower('t.url')} AS url_l, "
        f"{d.lower('t.search_terms')} AS terms_l, {d.age_days('%s', 't.occurred_at')} AS age "
        f"FROM {TOUCHPOINT} t JOIN {NEED_TABLE} n ON n.id = t.lead_id {d.fence}) t GROUP BY t.lead_id",
        as_of,
    )
    return sql, fresh


CHUNK_TABLE = "scoring_chunk"
NEED_TABLE = "scoring_need"
SIGNALS = LeadSignals._meta.db_table


def scope_where(d, version, *, scope_sql, scope_params, exclude_rules):
    params = []
    where = " AND ".join(
        [
            f"({scope_sql.format(id='l.id')})",
            f"({rule_sql(d, version.model.rule, params)})",
            *[f"NOT ({rule_sql(d, rule, params)})" for rule in exclude_rules],
        ]
    )
    sql = Sql(where, [*scope_params, *params])
    # The same scope on the lead signals: the planner does not carry a range from l.id over to s.lead_id, and
    # without it joins each chunk against every lead's signals.
    sql.signals = Sql(f" AND {scope_sql.format(id='s.lead_id')}", scope_params)
    sql.needs_company = any(
        condition["field"] in FIT_FIELDS and FIT_FIELDS[condition["field"]].table == "company"
        for rule in [version.model.rule, *exclude_rules]
        for condition in rule or []
    )
    return sql


def fresh_signals_sql(d, *, signature, as_of):
    """Join condition on s (lead signals): the accumulators can be decayed to as_of (those made as of that very
    moment always can, even when a touchpoint a microsecond later ends their freshness)."""
    return Sql(
        f"s.lead_id = l.id AND s.signature = %s AND (s.at = %s OR (s.at < %s "
        f"AND {d.age_days('%s', 's.at')} < s.fresh_days - %s))",
        [signature, as_of, as_of, as_of, FRESH_MARGIN_DAYS],
    )


def refresh_signals(d, version, criteria, *, as_of, where, recompute_all) -> int:
    """Rebuild from their touchpoints the accumulators of the leads in scope that lack fresh ones for this
    version (all of them with recompute_all, after new activity). Returns how many were rebuilt.

    Its own transaction, before scoring: it reads touchpoints and writes lead signals but locks no lead row, so
    the slow part of a rebuild never holds leads.
    """
    signature = interest_signature(criteria)
    interest = interest_criteria_of(criteria)
    with transaction.atomic(), connection.cursor() as cursor:
        if d.postgres:
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(f"DROP TABLE IF EXISTS {NEED_TABLE}")
        need = Sql(f"CREATE TEMPORARY TABLE {NEED_TABLE} AS SELECT l.id AS id FROM {LEAD} l ")
        if where.needs_company:
            need += f"LEFT JOIN {COMPANY} c ON c.id = l.company_id "
        if not recompute_all:
            need += f"LEFT JOIN {SIGNALS} s ON "
            need += fresh_signals_sql(d, signature=signature, as_of=as_of)
            need += where.signals
        need += " WHERE "
        need += where
        if not recompute_all:
            need += " AND s.lead_id IS NULL"
        cursor.execute(need.text, need.params)
        cursor.execute(f"SELECT COUNT(*) FROM {NEED_TABLE}")
        count = cursor.fetchone()[0]
        if count:
            if d.postgres:
                cursor.execute(f"ANALYZE {NEED_TABLE}")
            accumulate, fresh_terms = accumulate_sql(d, criteria, as_of=as_of)
            fresh = Sql(d.least([f"COALESCE({t.text}, %s)" for t in fresh_terms], "%s"))
            for term in fresh_terms:
                fresh.params += [*term.params, FOREVER_DAYS]
            fresh.params.append(FOREVER_DAYS)
            sums = d.array([f"COALESCE(a.i{index}, 0)" for index in range(len(interest))])
            upsert = Sql(
                f"INSERT INTO {SIGNALS} (lead_id, signature, at, fresh_days, sums) SELECT n.id, %s, %s, "
            )
            upsert.params += [signature, as_of]
            upsert += fresh
            upsert += f", {sums} FROM {NEED_TABLE} n LEFT JOIN ("
            upsert += accumulate
            upsert += (
                ") a ON a.lead_id = n.id WHERE 1=1 "  # WHERE: SQLite's parser needs it before ON CONFLICT
                "ON CONFLICT (lead_id) DO UPDATE SET signature = excluded.signature, at = excluded.at, "
                "fresh_days = excluded.fresh_days, sums = excluded.sums"
            )
            cursor.execute(upsert.text, upsert.params)
        cursor.execute(f"DROP TABLE {NEED_TABLE}")
    return count


def compute_chunk(d, cursor, version, criteria, *, as_of, where):
    """Fill CHUNK_TABLE with, per lead in scope with fresh accumulators: stored values, fit, interest (the
    accumulators decayed to as_of), ko, and the classification."""
    signature = interest_signature(criteria)

    def decayed(criterion):
        return Sql(f" * power(0.5, {d.age_days('%s', 's.at')} / %s)", [as_of, criterion.half_life_days])

    select = Sql(f"CREATE TEMPORARY TABLE {CHUNK_TABLE} AS SELECT x.*, ")
    classify, classify_params = classify_sql(version)
    select.add(classify, *classify_params)
    select += (
        " FROM (SELECT l.id AS id, l.band AS old_band, l.temperature AS old_temperature, "
        "l.score_is_mql AS old_mql, l.stage_id AS stage, l.fit_score AS old_fit, l.interest_score AS old_interest, "
        "l.grade AS old_grade, l.scored_at AS old_scored_at, "
    )
    select += fit_and_knockout_sql(d, criteria)
    select += ", "
    select += interest_sql(d, criteria, lambda index: d.element("s.sums", index), decayed)
    select += f" FROM {LEAD} l LEFT JOIN {COMPANY} c ON c.id = l.company_id JOIN {SIGNALS} s ON "
    select += fresh_signals_sql(d, signature=signature, as_of=as_of)
    select += where.signals
    select += " WHERE "
    select += where
    # The fence makes fit and interest columns computed once; inlined, classify would recompute them per use.
    select += f" {d.fence}) x"
    cursor.execute(f"DROP TABLE IF EXISTS {CHUNK_TABLE}")
    cursor.execute(select.text, select.params)


def classify_sql(version):
    """Columns classifying a computed row x, mirroring evaluator.classify."""
    v = version
    sql = (
        "CASE WHEN x.ko = 1 OR x.fit + x.interest < %s THEN 'red' WHEN x.fit + x.interest >= %s THEN 'green' "
        "ELSE 'yellow' END AS band, "
        "CASE WHEN x.ko = 1 OR x.fit + x.interest < %s THEN 'cold' WHEN x.fit + x.interest >= %s THEN 'hot' "
        "ELSE 'warm' END AS temperature, "
        "(CASE WHEN x.fit >= %s THEN 'A' WHEN x.fit >= %s THEN 'B' WHEN x.fit >= %s THEN 'C' ELSE 'D' END) || "
        "(CASE WHEN x.interest >= %s THEN '1' WHEN x.interest >= %s THEN '2' WHEN x.interest >= %s THEN '3' "
        "ELSE '4' END) AS grade, "
        "CASE WHEN x.ko = 0 AND x.fit + x.interest >= %s AND (%s OR x.fit >= %s) THEN 1 ELSE 0 END AS mql"
    )
    no_min_fit = v.min_fit_for_mql is None
    params = [
        v.yellow_from,
        v.green_from,
        v.warm_from,
        v.hot_from,
        v.fit_a_from,
        v.fit_b_from,
        v.fit_c_from,
        v.interest_1_from,
        v.interest_2_from,
        v.interest_3_from,
        v.mql_threshold,
        no_min_fit,
        0.0 if no_min_fit else v.min_fit_for_mql,
    ]
    return sql, params


def rescore_chunk(
    version,
    criteria,
    *,
    as_of,
    scope_sql,
    scope_params,
    exclude_rules=(),
    advance_stages=True,
    recompute_all=False,
    interest_tolerance=0.0,
) -> RescoreResult:
    """Score the leads in scope with one version, set-based, in one short transaction.

    Interest comes from each lead's accumulators, decayed to as_of; leads without fresh ones for this version
    (all of them with recompute_all, i.e. after new activity) get them rebuilt from their touchpoints first.
    A lead is written when anything differs; with interest_tolerance, interest alone must move by that much
    (the decay tick: a lead left alone keeps a score that is exact as of its scored_at).
    """
    d = Dialect(connection.vendor)
    where = scope_where(
        d, version, scope_sql=scope_sql, scope_params=scope_params, exclude_rules=exclude_rules
    )
    result = RescoreResult()
    changed = (
        "t.old_scored_at IS NULL OR t.band <> t.old_band OR t.temperature <> t.old_temperature "
        f"OR {d.flag('t.mql')} <> t.old_mql"
    )
    differs = " OR ".join(
        [
            "t.old_scored_at IS NULL",
            d.distinct("t.old_fit", "t.fit"),
            f"ABS(t.old_interest - t.interest) >= {float(interest_tolerance)!r}"
            if interest_tolerance
            else d.distinct("t.old_interest", "t.interest"),
            d.distinct("t.old_band", "t.band"),
            d.distinct("t.old_temperature", "t.temperature"),
            d.distinct("t.old_grade", "t.grade"),
            d.distinct("t.old_mql", d.flag("t.mql")),
        ]
    )
    crossing = (
        f"t.mql = 1 AND NOT t.old_mql AND t.stage IN ({', '.join(repr(code) for code in MQL_FROM_STAGES)})"
    )
    if not advance_stages:
        crossing = "1=0"
    result.recomputed = refresh_signals(
        d, version, criteria, as_of=as_of, where=where, recompute_all=recompute_all
    )
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        if d.postgres:
            # JIT-compiling these one-off statements cost most of a chunk's time.
            cursor.execute("SET LOCAL jit = off")
        compute_chunk(d, cursor, version, criteria, as_of=as_of, where=where)
        cursor.execute(f"SELECT COUNT(*) FROM {CHUNK_TABLE}")
        result.scored = cursor.fetchone()[0]
        cursor.execute(
            f"INSERT INTO {SCORE_CHANGE} (lead_id, version_id, at, fit, interest, score, band, temperature, grade, "
            f"is_mql) SELECT t.id, %s, %s, t.fit, t.interest, t.fit + t.interest, t.band, t.temperature, t.grade, "
            f"{d.flag('t.mql')} FROM {CHUNK_TABLE} t WHERE {changed}",
            [version.pk, as_of],
        )
        result.changes = cursor.rowcount
        cursor.execute(
            f"INSERT INTO {STAGE_CHANGE} (lead_id, from_stage_id, to_stage_id, actor_id, system_actor, reason, at) "
            f"SELECT t.id, t.stage, 'mql', NULL, 'scoring', %s, %s FROM {CHUNK_TABLE} t WHERE {crossing}",
            [f"score reached the MQL threshold of {version}"[:500], as_of],
        )
        result.new_mqls = cursor.rowcount
        if result.new_mqls:
            cursor.execute(
                f"UPDATE {LEAD} SET stage_id = 'mql', stage_changed_at = %s, mql_at = %s "
                f"FROM {CHUNK_TABLE} t WHERE {LEAD}.id = t.id AND {crossing}",
                [as_of, as_of],
            )
        cursor.execute(
            f"UPDATE {LEAD} SET fit_score = t.fit, interest_score = t.interest, score = t.fit + t.interest, "
            f"band = t.band, temperature = t.temperature, grade = t.grade, score_is_mql = {d.flag('t.mql')}, "
            f"scored_at = %s FROM {CHUNK_TABLE} t WHERE {LEAD}.id = t.id AND ({differs})",
            [as_of],
        )
        result.updated = cursor.rowcount
        cursor.execute(f"DROP TABLE {CHUNK_TABLE}")
    result.longest_s = time.perf_counter() - started
    return result


def active_versions():
    from .models import ScoringVersion

    versions = list(
        ScoringVersion.objects.filter(status=ScoringVersion.Status.ACTIVE)
        .select_related("model")
        .order_by("model__priority", "model_id")
    )
    criteria = {v.pk: list(v.criteria.all()) for v in versions}
    return versions, criteria


def rescore(
    *,
    lead_ids=None,
    id_range=None,
    as_of=None,
    versions=None,
    advance_stages=True,
    recompute=False,
    interest_tolerance=0.0,
) -> RescoreResult:
    """Score the given leads (ids, or an id range [low, high)) with the active version that owns each.

    recompute=True rebuilds every lead's interest from its touchpoints (after new activity); otherwise fresh
    accumulators are decayed to as_of. advance_stages=False records scores and history but moves no lead to
    MQL (the demo seed keeps the lifecycle it simulated).
    """
    as_of = as_of or timezone.now()
    versions, criteria = versions or active_versions()
    total = RescoreResult()
    if lead_ids is not None:
        lead_ids = sorted(set(lead_ids))
        if not lead_ids:
            return total
        scopes = [
            (f"{{id}} IN ({', '.join(['%s'] * len(batch))})", batch)
            for batch in (lead_ids[i : i + 5000] for i in range(0, len(lead_ids), 5000))
        ]
    else:
        scopes = [("{id} >= %s AND {id} < %s", list(id_range))]
    for index, version in enumerate(versions):
        exclude = [v.model.rule for v in versions[:index]]
        for scope_sql, scope_params in scopes:
            total.add(
                rescore_chunk(
                    version,
                    criteria[version.pk],
                    as_of=as_of,
                    scope_sql=scope_sql,
                    scope_params=scope_params,
                    exclude_rules=exclude,
                    advance_stages=advance_stages,
                    recompute_all=recompute,
                    interest_tolerance=interest_tolerance,
                )
            )
    return total


def lead_id_bounds():
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT MIN(id), MAX(id) FROM {LEAD}")
        return cursor.fetchone()


def rescore_all(*, as_of=None, chunk_size=50_000, advance_stages=True, progress=None) -> RescoreResult:
    """Every lead, in id ranges of chunk_size, each in its own short transaction."""
    as_of = as_of or timezone.now()
    low, high = lead_id_bounds()
    total = RescoreResult()
    if low is None:
        return total
    versions = active_versions()
    for start in range(low, high + 1, chunk_size):
        total.add(
            rescore(
                id_range=(start, start + chunk_size),
                as_of=as_of,
                versions=versions,
                advance_stages=advance_stages,
            )
        )
        if progress:
            progress(min(start + chunk_size, high + 1) - low, high + 1 - low)
    return total
