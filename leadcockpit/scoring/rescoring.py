"""Set-based rescoring: the same rules as evaluator.py, as SQL over a chunk of leads at a time.

For each chunk: one statement computes fit, interest (aggregated in float8 over the chunk's touchpoints) and
knock-outs into a temporary table; then, from that table, score changes are recorded, leads whose stored score
differs are updated (IS DISTINCT FROM guard: unchanged rows are not written), and leads whose score newly
reaches MQL move MGL/nurturing → MQL with a StageChange by the system. Every column name comes from the
allowlist in fields.py; every value is a bound parameter.

PostgreSQL is the production path; the same SQL runs on SQLite (the embedded default) through a few dialect
helpers, so the demo scores the same way.
"""

from dataclasses import dataclass

from django.db import connection, transaction
from django.utils import timezone

from leadcockpit.leads.models import Lead, StageChange, Touchpoint

from .fields import (
    CONTAINS,
    DOMAIN_IN,
    EQUALS,
    FIT_FIELDS,
    IN_LIST,
    IS_EMPTY,
    IS_SET,
    NUMBER,
    ascii_lower,
)
from .models import ScoreChange

LEAD = Lead._meta.db_table
TOUCHPOINT = Touchpoint._meta.db_table
SCORE_CHANGE = ScoreChange._meta.db_table
STAGE_CHANGE = StageChange._meta.db_table
COMPANY = Lead._meta.get_field("company").related_model._meta.db_table
MQL_FROM_STAGES = ("mgl", "nurturing")


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
            return f"(EXTRACT(EPOCH FROM ({as_of} - {sql}))::float8 / 86400.0)"
        return f"(julianday({as_of}) - julianday({sql}))"

    def clamp(self, sql):
        """sql limited to [%s, %s] (two parameters: the lower and the upper bound)."""
        return f"GREATEST(%s, LEAST(%s, {sql}))" if self.postgres else f"MAX(%s, MIN(%s, {sql}))"

    def distinct(self, left, right):
        return f"{left} IS DISTINCT FROM {right}" if self.postgres else f"{left} IS NOT {right}"

    def flag(self, sql):
        """An integer 0/1 column as the database's boolean."""
        return f"({sql} = 1)" if self.postgres else sql


def column(key):
    spec = FIT_FIELDS[key]
    return f'{"c" if spec.table == "company" else "l"}."{spec.column}"'


def condition_sql(d, key, operator, value, params):
    """SQL for one allowlisted condition, mirroring evaluator.condition_holds."""
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
    parts = []
    if criterion.touchpoint_kinds:
        parts.append(f"t.kind IN ({', '.join(['%s'] * len(criterion.touchpoint_kinds))})")
        params.extend(criterion.touchpoint_kinds)
    if criterion.url_contains:
        parts.append(d.contains(d.lower("t.url"), "%s"))
        params.append(ascii_lower(criterion.url_contains))
    if criterion.channel_id:
        parts.append("t.channel_id = %s")
        params.append(criterion.channel_id)
    if criterion.search_contains:
        parts.append(d.contains(d.lower("t.search_terms"), "%s"))
        params.append(ascii_lower(criterion.search_contains))
    return " AND ".join(parts) or "1=1"


@dataclass
class RescoreResult:
    scored: int = 0
    updated: int = 0
    changes: int = 0
    new_mqls: int = 0

    def add(self, other):
        self.scored += other.scored
        self.updated += other.updated
        self.changes += other.changes
        self.new_mqls += other.new_mqls


def compute_sql(d, version, criteria, *, as_of, scope_sql, scope_params, exclude_rules=()):
    """SELECT, for the leads in scope that this version scores: id, stored values, fit, interest, ko (0/1)."""
    interest_criteria = [c for c in criteria if c.kind == "interest"]

    where_params = []
    where = " AND ".join(
        [
            f"({scope_sql})",
            f"({rule_sql(d, version.model.rule, where_params)})",
            *[f"NOT ({rule_sql(d, rule, where_params)})" for rule in exclude_rules],
        ]
    )
    where_params = [*scope_params, *where_params]

    select_params, fit_terms, interest_terms, ko_terms = [], [], [], []
    for criterion in criteria:
        if criterion.kind == "fit":
            cond = condition_sql(d, criterion.field, criterion.operator, criterion.value, select_params)
            fit_terms.append(f"CASE WHEN {cond} THEN %s ELSE 0 END")
            select_params.append(criterion.points)
    for index, criterion in enumerate(interest_criteria):
        if criterion.cap is None:
            interest_terms.append(f"COALESCE(a.i{index}, 0)")
        else:
            interest_terms.append(d.clamp(f"COALESCE(a.i{index}, 0)"))
            select_params.extend([-criterion.cap, criterion.cap])
    for criterion in criteria:
        if criterion.kind == "knockout":
            ko_terms.append(
                condition_sql(d, criterion.field, criterion.operator, criterion.value, select_params)
            )
    fit_sql = " + ".join(f"({t})" for t in fit_terms) or "0"
    interest_sql = " + ".join(f"({t})" for t in interest_terms) or "0"
    ko_sql = f"CASE WHEN {' OR '.join(ko_terms)} THEN 1 ELSE 0 END" if ko_terms else "0"

    activity, activity_params = "", []
    if interest_criteria:
        sums = []
        for index, criterion in enumerate(interest_criteria):
            match = touch_match_sql(d, criterion, activity_params)
            if criterion.lookback_days:
                match += " AND t.occurred_at >= %s"
                activity_params.append(as_of - timezone.timedelta(days=criterion.lookback_days))
            if criterion.half_life_days:
                weight = f"%s * power(0.5, {d.age_days('%s', 't.occurred_at')} / %s)"
                activity_params.extend([criterion.points, as_of, criterion.half_life_days])
            else:
                weight = "%s"
                activity_params.append(criterion.points)
            sums.append(f"SUM(CASE WHEN {match} THEN {weight} ELSE 0 END) AS i{index}")
        activity = (
            f"LEFT JOIN (SELECT t.lead_id, {', '.join(sums)} FROM {TOUCHPOINT} t "
            f"WHERE t.lead_id IN (SELECT l.id FROM {LEAD} l LEFT JOIN {COMPANY} c ON c.id = l.company_id "
            f"WHERE {where}) AND t.occurred_at <= %s GROUP BY t.lead_id) a ON a.lead_id = l.id"
        )
        activity_params += [*where_params, as_of]

    sql = (
        "SELECT l.id AS id, l.band AS old_band, l.temperature AS old_temperature, l.score_is_mql AS old_mql, "
        "l.stage_id AS stage, l.fit_score AS old_fit, l.interest_score AS old_interest, l.grade AS old_grade, "
        "l.scored_at AS old_scored_at, "
        f"CAST({fit_sql} AS double precision) AS fit, CAST({interest_sql} AS double precision) AS interest, "
        f"{ko_sql} AS ko "
        f"FROM {LEAD} l LEFT JOIN {COMPANY} c ON c.id = l.company_id {activity} WHERE {where}"
    )
    return sql, [*select_params, *activity_params, *where_params]


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


CHUNK_TABLE = "scoring_chunk"


def rescore_chunk(
    version, criteria, *, as_of, scope_sql, scope_params, exclude_rules=(), advance_stages=True
) -> RescoreResult:
    """Score the leads in scope with one version, set-based, in one short transaction."""
    d = Dialect(connection.vendor)
    compute, compute_params = compute_sql(
        d,
        version,
        criteria,
        as_of=as_of,
        scope_sql=scope_sql,
        scope_params=scope_params,
        exclude_rules=exclude_rules,
    )
    classify, classify_params = classify_sql(version)
    result = RescoreResult()
    changed = (
        "t.old_scored_at IS NULL OR t.band <> t.old_band OR t.temperature <> t.old_temperature "
        f"OR {d.flag('t.mql')} <> t.old_mql"
    )
    differs = " OR ".join(
        [
            "t.old_scored_at IS NULL",
            d.distinct("t.old_fit", "t.fit"),
            d.distinct("t.old_interest", "t.interest"),
            d.distinct("t.old_band", "t.band"),
            d.distinct("t.old_temperature", "t.temperature"),
            d.distinct("t.old_grade", "t.grade"),
            d.distinct("t.old_mql", d.flag("t.mql")),
        ]
    )
    crossing = "t.mql = 1 AND NOT t.old_mql AND t.stage IN ('mgl', 'nurturing')"
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DROP TABLE IF EXISTS {CHUNK_TABLE}")
        cursor.execute(
            f"CREATE TEMPORARY TABLE {CHUNK_TABLE} AS SELECT x.*, {classify} FROM ({compute}) x",
            [*classify_params, *compute_params],
        )
        cursor.execute(f"SELECT COUNT(*) FROM {CHUNK_TABLE}")
        result.scored = cursor.fetchone()[0]
        cursor.execute(
            f"INSERT INTO {SCORE_CHANGE} (lead_id, version_id, at, fit, interest, score, band, temperature, grade, "
            f"is_mql) SELECT t.id, %s, %s, t.fit, t.interest, t.fit + t.interest, t.band, t.temperature, t.grade, "
            f"{d.flag('t.mql')} FROM {CHUNK_TABLE} t WHERE {changed}",
            [version.pk, as_of],
        )
        result.changes = cursor.rowcount
        if not advance_stages:
            crossing = "1=0"
        cursor.execute(
            f"INSERT INTO {STAGE_CHANGE} (lead_id, from_stage_id, to_stage_id, actor_id, system_actor, reason, at) "
            f"SELECT t.id, t.stage, 'mql', NULL, 'scoring', %s, %s FROM {CHUNK_TABLE} t WHERE {crossing}",
            [f"score reached the MQL threshold of {version}"[:500], as_of],
        )
        result.new_mqls = cursor.rowcount
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
    *, lead_ids=None, id_range=None, as_of=None, versions=None, advance_stages=True, decaying_only=False
) -> RescoreResult:
    """Score the given leads (ids, or an id range [low, high)) with the active version that owns each.

    advance_stages=False records scores and history but moves no lead to MQL (the demo seed keeps the
    lifecycle it simulated). decaying_only=True skips leads without interest points: time changes nothing
    else in a score.
    """
    as_of = as_of or timezone.now()
    versions, criteria = versions or active_versions()
    total = RescoreResult()
    if lead_ids is not None:
        lead_ids = sorted(set(lead_ids))
        if not lead_ids:
            return total
        batches = [lead_ids[i : i + 5000] for i in range(0, len(lead_ids), 5000)]
    for index, version in enumerate(versions):
        exclude = [v.model.rule for v in versions[:index]]
        if id_range is not None:
            scopes = [("l.id >= %s AND l.id < %s", list(id_range))]
        else:
            scopes = [(f"l.id IN ({', '.join(['%s'] * len(batch))})", batch) for batch in batches]
        if decaying_only:
            scopes = [(f"{sql} AND l.interest_score <> 0", params) for sql, params in scopes]
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
