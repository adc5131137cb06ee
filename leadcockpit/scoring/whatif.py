"""What-if and backtest: what a version would do to every current lead, before anyone switches it on.

A version (usually a draft) is scored over all the leads its model scores, with the rescore's SQL building
blocks (rescoring.py), and compared with the values the leads carry now (what the active versions gave them);
nothing is written to the leads. One grouping pass over the leads (split over PostgreSQL's parallel workers)
yields the counts per band, temperature and grade, the MQLs, the band moves, the score distribution and the
expected MQL flow; the sample of changed leads and the backtest on the leads whose outcome is known then read
only the leads they need.

Per lead: fit is the stored fit less the active criteria that changed plus the version's (fit does not change
with time), interest comes from the lead's accumulators (LeadSignals) decayed to the moment of the preview
wherever the version counts the same activity as the active version; criteria with new matchers are counted
once from all touchpoints, and the few leads without fresh accumulators (new activity the worker has not
scored yet, never scored) from their own touchpoints in a second pass. So a change of points, caps, fit
criteria, knock-outs or thresholds previews in one pass over the leads, not over their touchpoints.

A preview runs in a worker (tasks.run_preview); the workbench polls its Preview row.
"""

import hashlib
import json
import logging
import math
import time
from collections import Counter
from datetime import UTC, timedelta

from django.apps import apps
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from leadcockpit.leads import lifecycle
from leadcockpit.leads.models import Lead

from .fields import FIT_FIELDS
from .models import Preview
from .rescoring import (
    COMPANY,
    LEAD,
    MQL_FROM_STAGES,
    NEED_TABLE,
    SIGNALS,
    Dialect,
    Sql,
    accumulate_sql,
    active_versions,
    classify_sql,
    condition_sql,
    fresh_signals_sql,
    interest_criteria_of,
    interest_signature,
    rule_sql,
)

log = logging.getLogger(__name__)

WINDOW_DAYS = 28  # the expected MQL flow is read off the leads that arrived in the last four weeks
SAMPLE = 20
SAMPLE_ALL_UP_TO = 50_000  # up to this many leads in scope, the sample is chosen among every changed lead
HISTOGRAM_BINS = 24
MIN_TRUST = 30  # fewer leads than this behind a backtest figure: shown, with a warning
PREVIEW_MAX_AGE = timedelta(minutes=10)  # a preview of the same criteria this recent is shown again
PREVIEW_STALE = timedelta(minutes=2)  # a preview queued this long without a worker taking it is given up
BANDS = [choice.value for choice in Lead.Band]
TEMPERATURES = [choice.value for choice in Lead.Temperature]
GRADES = [f"{letter}{number}" for letter in "ABCD" for number in "1234"]
# Converted: won or a customer; else, not lost, accepted by sales. Not converted: lost; else rejected by sales.
WON_STAGES = (lifecycle.WON, lifecycle.CUSTOMER_CARE, lifecycle.UPSELL)


def _criterion_spec(criterion):
    return [
        criterion.kind,
        criterion.field,
        criterion.operator,
        criterion.value,
        sorted(criterion.touchpoint_kinds or []),
        criterion.url_contains,
        criterion.channel_id,
        criterion.search_contains,
        float(criterion.points),
        None if criterion.cap is None else float(criterion.cap),
        criterion.lookback_days,
        None if criterion.half_life_days is None else float(criterion.half_life_days),
    ]


def _number(value):
    return None if value is None else float(value)


def fingerprint(version, criteria=None):
    """A hash of everything that decides the version's scores: criteria (in order), thresholds, the model's rule.

    Labels and notes are left out: renaming a criterion changes no figure.
    """
    from .actions import THRESHOLD_FIELDS

    criteria = list(version.criteria.all()) if criteria is None else criteria
    spec = {
        "criteria": [
            _criterion_spec(c) for c in sorted(criteria, key=lambda c: (c.kind, c.position, c.pk or 0))
        ],
        # As floats: a version just created or assigned holds ints (100), the same one loaded from the database
        # floats (100.0), and the two must not look like different criteria.
        "thresholds": [_number(getattr(version, name)) for name in THRESHOLD_FIELDS],
        "rule": version.model.rule,
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


# --- Requesting and running previews -------------------------------------------------------------------------


def request_preview(version, *, max_age=PREVIEW_MAX_AGE) -> Preview:
    """The preview of the version as it stands: a recent one of the same fingerprint, or a new one enqueued."""
    now = timezone.now()
    mark = fingerprint(version)
    # What the leads carry changes when a version goes live and its rescore finishes: a preview from before
    # then compares with the old state, however recent it is.
    since = max(now - max_age, _last_scoring_change() or now - max_age)
    recent = (
        Preview.objects.filter(version=version, fingerprint=mark, created_at__gte=since)
        .exclude(status=Preview.Status.FAILED)
        .order_by("-created_at", "-pk")
        .first()
    )
    if recent is not None and not (
        recent.status == Preview.Status.QUEUED and recent.created_at < now - PREVIEW_STALE
    ):
        return recent
    preview = Preview.objects.create(version=version, fingerprint=mark, as_of=now)
    transaction.on_commit(lambda: _enqueue(preview.pk))
    return preview


def _last_scoring_change():
    """When the stored scores last changed wholesale: the latest activation or finished full rescore (one query)."""
    from .models import RescoreJob, ScoringVersion

    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT (SELECT MAX(activated_at) FROM {ScoringVersion._meta.db_table} WHERE status = %s), "
            f"(SELECT MAX(finished_at) FROM {RescoreJob._meta.db_table})",
            [ScoringVersion.Status.ACTIVE],
        )
        moments = [moment for moment in cursor.fetchone() if moment is not None]
    if connection.vendor == "sqlite":  # raw SQL on SQLite gives the stored text: UTC, without a zone
        from django.utils.dateparse import parse_datetime

        moments = [parse_datetime(m) if isinstance(m, str) else m for m in moments]
        moments = [m.replace(tzinfo=UTC) if timezone.is_naive(m) else m for m in moments]
    return max(moments, default=None)


def _enqueue(preview_id):
    from . import tasks

    try:
        tasks.run_preview.delay(preview_id)
    except Exception:  # noqa: BLE001 - Redis may be away: the preview is given up as stale and asked again
        log.warning("could not enqueue preview %s", preview_id, exc_info=True)


def run_preview(preview_id):
    """Compute a queued preview (safe to run twice: only one runner takes it from queued to running)."""
    taken = Preview.objects.filter(pk=preview_id, status=Preview.Status.QUEUED).update(
        status=Preview.Status.RUNNING
    )
    if not taken:
        return
    preview = Preview.objects.select_related("version__model").get(pk=preview_id)
    started = time.perf_counter()
    try:
        result = compute(preview.version, as_of=preview.as_of)
    except Exception as exc:
        log.exception("preview %s failed", preview_id)
        Preview.objects.filter(pk=preview_id).update(
            status=Preview.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        return
    Preview.objects.filter(pk=preview_id).update(
        status=Preview.Status.DONE,
        result=result,
        seconds=round(time.perf_counter() - started, 3),
        finished_at=timezone.now(),
    )


# --- Scoring a version, lead by lead, against what the leads carry --------------------------------------------


def _same_matcher(a, b):
    return (
        sorted(a.touchpoint_kinds or []) == sorted(b.touchpoint_kinds or [])
        and a.url_contains == b.url_contains
        and a.channel_id == b.channel_id
        and a.search_contains == b.search_contains
        and a.lookback_days == b.lookback_days
        and (a.half_life_days or None) == (b.half_life_days or None)
    )


def _fit_spec(c):
    return [c.kind, c.field, c.operator, c.value, float(c.points)]


def _interest_spec(c):
    return [
        sorted(c.touchpoint_kinds or []),
        c.url_contains,
        c.channel_id,
        c.search_contains,
        c.lookback_days,
        None if c.half_life_days is None else float(c.half_life_days),
        float(c.points),
        None if c.cap is None else float(c.cap),
    ]


def _differences(old, new, spec):
    """(criteria of `old` not in `new` as they were, criteria of `new` not in `old` as they are), by key."""
    old_by_key = {c.key: c for c in old}
    new_by_key = {c.key: c for c in new}
    gone = [c for c in old if c.key not in new_by_key or spec(new_by_key[c.key]) != spec(c)]
    came = [c for c in new if c.key not in old_by_key or spec(old_by_key[c.key]) != spec(c)]
    return gone, came


def _scope(d, version, versions):
    """WHERE over l (lead) and c (company): the leads this version's model scores, given the active models."""
    params = []
    parts = [f"({rule_sql(d, version.model.rule, params)})"]
    for other in versions:
        if other.model_id != version.model_id and (other.model.priority, other.model_id) < (
            version.model.priority,
            version.model_id,
        ):
            parts.append(f"NOT ({rule_sql(d, other.model.rule, params)})")
    return Sql(" AND ".join(parts), params)


def _total(terms):
    if not terms:
        return Sql("0")
    sql = Sql("(")
    for index, term in enumerate(terms):
        sql += " + " if index else ""
        sql += term
    sql += ")"
    return sql


def _fit_term(d, criterion):
    params = []
    condition = condition_sql(d, criterion.field, criterion.operator, criterion.value, params)
    return Sql(f"(CASE WHEN {condition} THEN %s ELSE 0 END)", [*params, criterion.points])


def _knockout(d, criteria):
    knockouts = [c for c in criteria if c.kind == "knockout"]
    if not knockouts:
        return Sql("0")
    sql = Sql("(CASE WHEN ")
    for index, criterion in enumerate(knockouts):
        params = []
        sql += " OR " if index else ""
        sql += Sql(condition_sql(d, criterion.field, criterion.operator, criterion.value, params), params)
    sql += " THEN 1 ELSE 0 END)"
    return sql


def _points(d, criterion, decayed_sum):
    """An interest criterion's contribution: points × its decayed sum, capped."""
    term = Sql("%s * ", [criterion.points])
    term += decayed_sum
    if criterion.cap is not None:
        term = Sql(d.clamp(term.text), [-criterion.cap, criterion.cap, *term.params])
    return Sql(f"({term.text})", term.params)


def _from_signals(d, index, criterion, as_of):
    """The criterion's sum as of as_of from the lead's accumulators s (index-th of the active version's)."""
    value = Sql(f"COALESCE({d.element('s.sums', index)}, 0)")
    if criterion.half_life_days:
        value += Sql(f" * power(0.5, {d.age_days('%s', 's.at')} / %s)", [as_of, criterion.half_life_days])
    return value


class _Plan:
    """How to compute each lead's fit, interest and knock-out under a version, as SQL over the lead l, its company
    c, its accumulators s, and the per-preview tables wn (sums of criteria with new matchers) and wa (every
    criterion's sums for the leads without fresh accumulators)."""

    def __init__(self, d, version, *, as_of):
        self.d, self.version, self.as_of = d, version, as_of
        versions, all_criteria = active_versions()
        self.versions = versions
        self.criteria = list(version.criteria.all())
        self.interest = interest_criteria_of(self.criteria)
        self.fit = [c for c in self.criteria if c.kind == "fit"]
        self.active = next((v for v in versions if v.model_id == version.model_id), None)
        active_criteria = all_criteria[self.active.pk] if self.active else []
        active_interest = interest_criteria_of(active_criteria)
        self.signature = interest_signature(active_criteria) if self.active else None
        # Each of the version's interest criteria: the index of the active criterion counting the same activity
        # (its accumulator serves), or None: counted from the touchpoints (the table wn, built per preview).
        self.mapped = [
            next((j for j, old in enumerate(active_interest) if _same_matcher(new, old)), None)
            for new in self.interest
        ]
        self.new_matchers = [i for i, j in enumerate(self.mapped) if j is None]
        # Fit does not change with time: a scored lead's stored fit, less the active criteria that changed, plus
        # the version's, is its fit under the version, and saves evaluating the unchanged conditions.
        if self.active:
            self.fit_gone, self.fit_came = _differences(
                [c for c in active_criteria if c.kind == "fit"], self.fit, _fit_spec
            )
        else:
            self.fit_gone, self.fit_came = [], self.fit
        self.scope = _scope(d, version, versions)
        self.uses_signals = self.active is not None and bool(self.interest)
        self.with_new = self.uses_signals and bool(self.new_matchers)
        # Without an active version there are no accumulators to start from: every lead counts from touchpoints.
        self.all_from_touchpoints = self.active is None and bool(self.interest)
        self.with_all = False  # set once the table wa is built

    def needs_company(self):
        """Whether any condition this plan evaluates reads the company (else the join is left out)."""
        evaluated = [*self.fit, *(c for c in self.criteria if c.kind == "knockout")]
        fields = [
            *(c.field for c in evaluated),
            *(cond["field"] for cond in self.version.model.rule or []),
            *(cond["field"] for v in self.versions for cond in v.model.rule or []),
        ]
        return any(FIT_FIELDS[field].table == "company" for field in fields if field in FIT_FIELDS)

    def fit_sql(self):
        full = _total([_fit_term(self.d, c) for c in self.fit])
        if not self.active:
            return full
        delta = Sql("l.fit_score")
        for criterion in self.fit_gone:
            delta += " - "
            delta += _fit_term(self.d, criterion)
        for criterion in self.fit_came:
            delta += " + "
            delta += _fit_term(self.d, criterion)
        sql = Sql("(CASE WHEN l.scored_at IS NULL THEN ")
        sql += full
        sql += " ELSE "
        sql += delta
        sql += " END)"
        return sql

    def interest_sql(self, *, waiting_only=False):
        """Per interest criterion: points × its sum decayed to as_of, capped; the sums from the accumulators (or
        wn), or, for the leads in wa, from their touchpoints."""
        if not self.interest:
            return Sql("0")
        from_all = _total(
            [_points(self.d, c, Sql(f"COALESCE(wa.i{i}, 0)")) for i, c in enumerate(self.interest)]
        )
        if self.all_from_touchpoints or waiting_only:
            return from_all
        terms = []
        for index, criterion in enumerate(self.interest):
            if self.mapped[index] is not None:
                value = _from_signals(self.d, self.mapped[index], criterion, self.as_of)
            else:
                value = Sql(f"COALESCE(wn.i{self.new_matchers.index(index)}, 0)")
            terms.append(_points(self.d, criterion, value))
        from_signals = _total(terms)
        if not self.with_all:
            return from_signals
        sql = Sql("(CASE WHEN wa.id IS NOT NULL THEN ")
        sql += from_all
        sql += " ELSE "
        sql += from_signals
        sql += " END)"
        return sql

    def waiting_sql(self):
        """1 for a lead whose interest cannot come from fresh accumulators (then from wa, in a second pass)."""
        if self.all_from_touchpoints:
            return "1"
        return "CASE WHEN s.lead_id IS NULL THEN 1 ELSE 0 END" if self.uses_signals else "0"

    def rows_sql(self, *, extra_columns=None, where=None, outcomes_only=False):
        """SELECT per lead in scope: stored values (old_*), fit, interest, ko, score and the classification."""
        classify, classify_params = classify_sql(self.version)
        sql = Sql("SELECT x.*, x.fit + x.interest AS score, ")
        sql.add(classify, *classify_params)
        sql += " FROM ("
        sql += self.inner_sql(extra_columns=extra_columns, where=where, outcomes_only=outcomes_only)
        # On SQLite, the fence computes fit and interest once per lead, not once per use of each.
        sql += ") x" if self.d.postgres else f" {self.d.fence}) x"
        return sql

    def inner_sql(self, *, extra_columns=None, where=None, outcomes_only=False, waiting_only=False):
        """SELECT per lead in scope: stored values (old_*), waiting, fit, interest and ko."""
        d = self.d
        inner = Sql(
            "SELECT l.id AS id, l.score AS old_score, l.band AS old_band, l.temperature AS old_temperature, "
            "l.grade AS old_grade, l.score_is_mql AS old_mql, l.stage_id AS stage, l.created_at AS created_at, "
        )
        inner += extra_columns or Sql()
        fit = Sql("CAST(")
        fit += self.fit_sql()
        fit += " AS double precision)"
        # (A lead without accumulators has no interest from them; the second pass counts it from wa.)
        interest = Sql("CAST(COALESCE(")
        interest += self.interest_sql(waiting_only=waiting_only)
        interest += ", 0) AS double precision)"
        knockout = _knockout(d, self.criteria)
        inner += f"{self.waiting_sql() if not waiting_only else '1'} AS waiting, "
        if d.postgres:
            # Computed once per lead in a LATERAL unnest, however often the caller uses them: a fence that, unlike
            # OFFSET 0, lets PostgreSQL split the pass over its parallel workers.
            inner += "v.fit AS fit, v.interest AS interest, v.ko AS ko FROM "
        else:
            inner += fit
            inner += " AS fit, "
            inner += interest
            inner += " AS interest, "
            inner += knockout
            inner += " AS ko FROM "
        if waiting_only:
            inner += f"scoring_whatif_all wa JOIN {LEAD} l ON l.id = wa.id "
        else:
            inner += f"{LEAD} l "
        if outcomes_only:
            # The leads with a known outcome, found by index (stage; decided handovers), not by reading every lead.
            handovers = apps.get_model("handover", "Handover")._meta.db_table
            inner += Sql(
                f"JOIN (SELECT id FROM {LEAD} WHERE stage_id IN ({', '.join(['%s'] * (len(WON_STAGES) + 1))}) "
                f"UNION SELECT lead_id FROM {handovers} WHERE status IN ('accepted', 'rejected')) o ON o.id = l.id ",
                [*WON_STAGES, lifecycle.LOST],
            )
        if self.needs_company():
            inner += f"LEFT JOIN {COMPANY} c ON c.id = l.company_id "
        if self.uses_signals and not waiting_only:
            inner += f"LEFT JOIN {SIGNALS} s ON "
            inner += fresh_signals_sql(d, signature=self.signature, as_of=self.as_of)
        if self.with_new and not waiting_only:
            inner += " LEFT JOIN scoring_whatif_new wn ON wn.id = l.id"
        if self.with_all and not waiting_only:
            inner += " LEFT JOIN scoring_whatif_all wa ON wa.id = l.id"
        if d.postgres:
            inner += " CROSS JOIN LATERAL unnest(ARRAY["
            inner += fit
            inner += "], ARRAY["
            inner += interest
            inner += "], ARRAY["
            inner += knockout
            inner += "]) AS v(fit, interest, ko)"
        inner += " WHERE "
        inner += self.scope
        inner += where or Sql()
        return inner

    def grouping_sql(self, *, since, start, step, bins, waiting_only=False):
        """One pass over the leads in scope, grouped by their stored classification and by where the version puts
        them: knock-out, and which side of each threshold their fit, interest and score fall (classified in
        Python, so that each lead's expressions are evaluated as few times as possible), plus score bins."""
        d, v = self.d, self.version

        def bucket(value, bounds):
            """How many of the ascending bounds the value reaches (0 … len(bounds))."""
            if d.postgres:
                return Sql(
                    f"width_bucket({value.text}, ARRAY[{', '.join(['%s'] * len(bounds))}]::float8[])",
                    [*value.params, *bounds],
                )
            sql = Sql("(0")
            for bound in bounds:
                sql += Sql(f" + CASE WHEN {value.text} >= %s THEN 1 ELSE 0 END", [*value.params, bound])
            sql += ")"
            return sql

        def binned(value):
            clamp = "GREATEST(0, LEAST(%s, {}))" if d.postgres else "MAX(0, MIN(%s, {}))"
            return Sql(
                clamp.format(f"CAST(FLOOR(({value.text} - %s) / %s) AS INTEGER)"),
                [bins - 1, *value.params, start, step],
            )

        fit, interest = Sql("x.fit"), Sql("x.interest")
        score = Sql("(x.fit + x.interest)")
        min_fit = -1e308 if v.min_fit_for_mql is None else v.min_fit_for_mql
        grades = "".join(GRADES)
        position = "strpos(%s, x.old_grade)" if d.postgres else "instr(%s, x.old_grade)"
        stages = ", ".join(["%s"] * len(MQL_FROM_STAGES))
        # (key, how many values it takes): packed into one number per lead, so that the planner, which cannot
        # estimate how few of the combinations occur, still aggregates in each parallel worker first.
        keys = [
            (Sql("CASE x.old_band WHEN 'yellow' THEN 1 WHEN 'green' THEN 2 ELSE 0 END"), 3),
            (Sql("CASE x.old_temperature WHEN 'warm' THEN 1 WHEN 'hot' THEN 2 ELSE 0 END"), 3),
            # The grade's place in "A1A2…D4" (0–15), or 16 for none yet.
            (Sql(f"CASE WHEN length(x.old_grade) = 2 THEN ({position} - 1) / 2 ELSE 16 END", [grades]), 17),
            (Sql("CASE WHEN x.old_mql THEN 1 ELSE 0 END"), 2),
            (binned(Sql("x.old_score")), bins),
            (Sql("CASE WHEN x.created_at >= %s THEN 1 ELSE 0 END", [since]), 2),
            (Sql(f"CASE WHEN x.stage IN ({stages}) THEN 1 ELSE 0 END", list(MQL_FROM_STAGES)), 2),
            (Sql("x.waiting"), 2),
            (Sql("x.ko"), 2),
            (bucket(score, [v.yellow_from, v.green_from]), 3),
            (bucket(score, [v.warm_from, v.hot_from]), 3),
            (bucket(fit, [v.fit_c_from, v.fit_b_from, v.fit_a_from]), 4),
            (bucket(interest, [v.interest_3_from, v.interest_2_from, v.interest_1_from]), 4),
            (
                Sql(
                    f"CASE WHEN {score.text} >= %s AND x.fit >= %s THEN 1 ELSE 0 END",
                    [v.mql_threshold, min_fit],
                ),
                2,
            ),
            (binned(score), bins),
        ]
        self.radices = [radix for _key, radix in keys]
        packed = Sql("(")
        multiplier = 1
        for index, (key, radix) in enumerate(reversed(keys)):
            packed += " + " if index else ""
            packed += Sql(f"CAST({key.text} AS bigint) * {multiplier}", key.params)
            multiplier *= radix
        packed += ")"
        changed = Sql(
            f"CASE WHEN x.ko = 1 OR {score.text} < %s THEN 'red' WHEN {score.text} >= %s THEN 'green' "
            "ELSE 'yellow' END <> x.old_band",
            [v.yellow_from, v.green_from],
        )
        # Grouped twice: so wrapped, PostgreSQL computes the key in its parallel workers, not in the leader.
        sql = Sql("SELECT k, SUM(n), MIN(low), MAX(high) FROM (SELECT ")
        sql += packed
        sql += " AS k, COUNT(*) AS n, MIN(CASE WHEN "
        sql += changed
        sql += " THEN x.id END) AS low, MAX(CASE WHEN "
        sql += changed
        sql += " THEN x.id END) AS high FROM ("
        sql += self.inner_sql(waiting_only=waiting_only)
        sql += ") x" if d.postgres else f" {d.fence}) x"
        sql += " GROUP BY k) u GROUP BY k"
        return sql

    def unpack(self, row):
        """(key values in order, count, lowest changed id, highest changed id) from a row of grouping_sql."""
        packed, count, low_id, high_id = row
        values = []
        for radix in reversed(self.radices):
            packed, value = divmod(packed, radix)
            values.append(value)
        return (*reversed(values), int(count), low_id, high_id)

    def _accumulate(self, cursor, table, criteria):
        """table(id, i0..in): the criteria's sums as of as_of over the touchpoints of the leads in NEED_TABLE."""
        d = self.d
        if d.postgres:
            cursor.execute(f"ANALYZE {NEED_TABLE}")
        accumulate, _fresh = accumulate_sql(d, criteria, as_of=self.as_of)
        columns = "".join(f", COALESCE(a.i{index}, 0) AS i{index}" for index in range(len(criteria)))
        sql = Sql(
            f"CREATE TEMPORARY TABLE {table} AS SELECT n.id AS id{columns} FROM {NEED_TABLE} n LEFT JOIN ("
        )
        sql += accumulate
        sql += ") a ON a.lead_id = n.id"
        cursor.execute(f"DROP TABLE IF EXISTS {table}")
        cursor.execute(sql.text, sql.params)
        cursor.execute(f"DROP TABLE {NEED_TABLE}")
        if d.postgres:
            cursor.execute(f"ALTER TABLE {table} ADD PRIMARY KEY (id)")
            cursor.execute(f"ANALYZE {table}")

    def _need(self, cursor, *, without_signals):
        sql = Sql(f"CREATE TEMPORARY TABLE {NEED_TABLE} AS SELECT l.id AS id FROM {LEAD} l ")
        if self.needs_company():
            sql += f"LEFT JOIN {COMPANY} c ON c.id = l.company_id "
        if without_signals:
            sql += f"LEFT JOIN {SIGNALS} s ON "
            sql += fresh_signals_sql(self.d, signature=self.signature, as_of=self.as_of)
        sql += " WHERE "
        sql += self.scope
        if without_signals:
            sql += " AND s.lead_id IS NULL"
        cursor.execute(f"DROP TABLE IF EXISTS {NEED_TABLE}")
        cursor.execute(sql.text, sql.params)

    def prepare(self, cursor):
        """Count the criteria with new matchers from every lead's touchpoints, once (table scoring_whatif_new)."""
        if self.with_new:
            self._need(cursor, without_signals=False)
            self._accumulate(cursor, "scoring_whatif_new", [self.interest[i] for i in self.new_matchers])
        if self.all_from_touchpoints:
            self.prepare_waiting(cursor)

    def prepare_waiting(self, cursor):
        """Count every interest criterion from the touchpoints of the leads without fresh accumulators (wa)."""
        self._need(cursor, without_signals=not self.all_from_touchpoints)
        self._accumulate(cursor, "scoring_whatif_all", self.interest)
        self.with_all = True

    def finish(self, cursor):
        for table in ("scoring_whatif_new", "scoring_whatif_all"):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")


def _outcome_sql():
    handovers = apps.get_model("handover", "Handover")._meta.db_table
    return Sql(
        f"CASE WHEN l.stage_id IN ({', '.join(['%s'] * len(WON_STAGES))}) THEN 1 WHEN l.stage_id = %s THEN 0 "
        f"WHEN EXISTS (SELECT 1 FROM {handovers} h WHERE h.lead_id = l.id AND h.status = 'accepted') THEN 1 "
        f"WHEN EXISTS (SELECT 1 FROM {handovers} h WHERE h.lead_id = l.id AND h.status = 'rejected') THEN 0 "
        "END",
        [*WON_STAGES, lifecycle.LOST],
    )


def _settings(d, cursor):
    if d.postgres:
        cursor.execute("SET LOCAL jit = off")  # compiling these one-off statements costs more than it saves
        cursor.execute("SET LOCAL work_mem = '128MB'")


def _grouping(d, cursor, sql):
    """Run a grouping pass (see _Plan.grouping_sql) with the planner settings it needs, and only it."""
    if d.postgres:
        # Few groups (a few hundred), though the planner cannot know it: hash them rather than sort 1M rows;
        # and the pass over every lead is worth splitting across workers even where the planner's cost model,
        # which underrates these expressions, would not.
        for setting in ("enable_sort = off", "parallel_setup_cost = 0", "parallel_tuple_cost = 0"):
            cursor.execute(f"SET LOCAL {setting}")
    cursor.execute(sql.text, sql.params)
    rows = cursor.fetchall()
    if d.postgres:
        for setting in ("enable_sort", "parallel_setup_cost", "parallel_tuple_cost"):
            cursor.execute(f"SET LOCAL {setting} TO DEFAULT")
    return rows


# --- The figures ---------------------------------------------------------------------------------------------


def _histogram_edges(version):
    """Round-numbered bins around the version's thresholds; scores beyond them fall into the end bins."""
    top = max(version.green_from, version.mql_threshold, version.hot_from, 10.0)
    step = _nice_step(top * 1.5, HISTOGRAM_BINS - 4)
    start = -2 * step
    bins = HISTOGRAM_BINS
    return start, step, bins


def compute(version, *, as_of=None) -> dict:
    """The what-if and backtest of `version` against what the leads carry now (see the module docstring).

    One pass over the leads groups them by their stored and their new classification (and score bin); a second
    pass covers the leads without fresh accumulators, if any; the sample of changed leads and the backtest read
    only the leads they need.
    """
    as_of = as_of or timezone.now()
    d = Dialect(connection.vendor)
    plan = _Plan(d, version, as_of=as_of)
    start, step, bins = _histogram_edges(version)
    since = as_of - timedelta(days=WINDOW_DAYS)
    with transaction.atomic(), connection.cursor() as cursor:
        _settings(d, cursor)
        plan.prepare(cursor)
        groups = []
        if not plan.all_from_touchpoints:
            grouped = plan.grouping_sql(since=since, start=start, step=step, bins=bins)
            groups = [_classified(plan.unpack(row)) for row in _grouping(d, cursor, grouped)]
        if plan.all_from_touchpoints or any(group["waiting"] for group in groups):
            if not plan.with_all:
                plan.prepare_waiting(cursor)
            grouped = plan.grouping_sql(since=since, start=start, step=step, bins=bins, waiting_only=True)
            groups = [group for group in groups if not group["waiting"]]
            groups += [_classified(plan.unpack(row)) for row in _grouping(d, cursor, grouped)]
        result = _figures(groups, as_of=as_of, edges=[round(start + i * step, 6) for i in range(bins + 1)])
        result["changed"] = _changed_sample(cursor, plan, groups)
        result["capacity"] = _capacity(as_of)
        result["backtest"] = _backtest(d, cursor, plan, version)
        plan.finish(cursor)
    return result


def backtest(version, *, as_of=None) -> dict:
    """The backtest alone: the version and the stored scores on the leads with a known outcome."""
    as_of = as_of or timezone.now()
    d = Dialect(connection.vendor)
    plan = _Plan(d, version, as_of=as_of)
    with transaction.atomic(), connection.cursor() as cursor:
        _settings(d, cursor)
        plan.prepare(cursor)
        if plan.uses_signals and not plan.with_all:
            plan.prepare_waiting(cursor)
        result = _backtest(d, cursor, plan, version)
        plan.finish(cursor)
    return result


FIT_LETTERS = "DCBA"  # by how many of the C, B and A boundaries a lead's fit reaches
INTEREST_DIGITS = "4321"


def _classified(row):
    """A group of the grouping pass with the version's classification, as evaluator.classify makes it."""
    old_band, old_temperature = BANDS[row[0]], TEMPERATURES[row[1]]
    old_grade = GRADES[row[2]] if row[2] < len(GRADES) else ""
    (
        _old_band,
        _old_temperature,
        _old_grade,
        old_mql,
        old_bin,
        recent,
        mql_stage,
        waiting,
        ko,
        band_i,
        temperature_i,
        fit_i,
        interest_i,
        mql_ok,
        bin_,
        count,
        low_id,
        high_id,
    ) = row
    band = "red" if ko else BANDS[band_i]
    temperature = "cold" if ko else TEMPERATURES[temperature_i]
    return {
        "old": (old_band, old_temperature, old_grade, bool(old_mql), old_bin),
        "new": (
            band,
            temperature,
            FIT_LETTERS[fit_i] + INTEREST_DIGITS[interest_i],
            bool(mql_ok and not ko),
            bin_,
        ),
        "recent": bool(recent),
        "mql_stage": bool(mql_stage),
        "waiting": bool(waiting),
        "count": count,
        "ids": (low_id, high_id),
    }


def _figures(groups, *, as_of, edges):
    bins = len(edges) - 1
    sides = {
        side: {
            "bands": dict.fromkeys(BANDS, 0),
            "temperatures": dict.fromkeys(TEMPERATURES, 0),
            "grades": dict.fromkeys(GRADES, 0),
            "mql": 0,
            "mql_per_week": 0,
        }
        for side in ("draft", "active")
    }
    recent = {"draft": 0, "active": 0}
    histogram = {"draft": [0] * bins, "active": [0] * bins}
    moves = {}
    at_activation = scope = waiting = 0
    for group in groups:
        n = group["count"]
        scope += n
        waiting += n if group["waiting"] else 0
        for side, key in (("draft", "new"), ("active", "old")):
            band, temperature, grade, mql, bin_ = group[key]
            figures = sides[side]
            figures["bands"][band] = figures["bands"].get(band, 0) + n
            figures["temperatures"][temperature] = figures["temperatures"].get(temperature, 0) + n
            figures["grades"][grade] = figures["grades"].get(grade, 0) + n
            if mql:
                figures["mql"] += n
                recent[side] += n if group["recent"] else 0
            histogram[side][bin_] += n
        if group["old"][0] != group["new"][0]:
            moves[(group["old"][0], group["new"][0])] = moves.get((group["old"][0], group["new"][0]), 0) + n
        if group["new"][3] and not group["old"][3] and group["mql_stage"]:
            at_activation += n
    for side in sides:
        sides[side]["mql_per_week"] = round(recent[side] * 7 / WINDOW_DAYS, 1)
    sides["draft"]["mql_at_activation"] = at_activation
    order = {band: index for index, band in enumerate(BANDS)}
    band_moves = [
        {"from": old, "to": new, "count": count}
        for (old, new), count in sorted(
            moves.items(), key=lambda item: (order.get(item[0][0], 9), order.get(item[0][1], 9))
        )
    ]
    return {
        "scope": scope,
        "as_of": as_of.isoformat(),
        "window_days": WINDOW_DAYS,
        "sides": sides,
        "band_moves": band_moves,
        "changed_total": sum(move["count"] for move in band_moves),
        "waiting": waiting,
        "histogram": {"edges": edges, **histogram} if scope else {"edges": [], "draft": [], "active": []},
    }


def _changed_sample(cursor, plan, groups):
    """Up to SAMPLE leads that change band, the largest score changes first. Over many leads, among candidates
    from every group of leads that changes band (the grouping pass names two of each: its lowest and highest
    id); over few, among all of them."""
    changed = [group for group in groups if group["old"][0] != group["new"][0]]
    if not changed:
        return []
    if sum(group["count"] for group in groups) <= SAMPLE_ALL_UP_TO:
        where = Sql()
        having = " WHERE r.old_band <> r.band"
    else:
        candidates = sorted(changed, key=lambda group: -abs(group["new"][4] - group["old"][4]))
        ids = sorted({pk for group in candidates[: SAMPLE * 3] for pk in group["ids"] if pk is not None})
        where = Sql(f" AND l.id IN ({', '.join(['%s'] * len(ids))})", ids)
        having = ""
    sql = Sql(
        "SELECT r.id, l.first_name, l.last_name, l.email, l.external_id, r.old_band, r.band, r.old_score, r.score "
        "FROM ("
    )
    sql += plan.rows_sql(where=where)
    sql += f") r JOIN {LEAD} l ON l.id = r.id{having}"
    cursor.execute(sql.text, sql.params)
    found = sorted(cursor.fetchall(), key=lambda row: (-abs(row[8] - row[7]), row[0]))[:SAMPLE]
    return [
        {
            "id": pk,
            "name": f"{first} {last}".strip() or email or external_id or f"#{pk}",
            "old_band": old_band,
            "band": band,
            "old_score": round(old_score, 1),
            "score": round(score, 1),
        }
        for pk, first, last, email, external_id, old_band, band, old_score, score in found
    ]


def _nice_step(span, bins):
    raw = max(span / bins, 1e-9)
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _capacity(as_of):
    """The sales reps present today and the open handovers they can hold (handover settings)."""
    from django.contrib.auth import get_user_model
    from django.db.models import Q, Sum

    from leadcockpit.accounts.roles import Role
    from leadcockpit.handover.models import RepAvailability

    today = timezone.localdate(as_of)
    reps = (
        get_user_model()
        .objects.filter(is_active=True, groups__name=Role.SALES_REP.value)
        .exclude(Q(availability__absent_from__lte=today) & Q(availability__absent_until__gte=today))
        .distinct()
    )
    default = RepAvailability._meta.get_field("capacity").default
    rep_ids = list(reps.values_list("pk", flat=True))
    configured = RepAvailability.objects.filter(rep_id__in=rep_ids)
    total = (configured.aggregate(total=Sum("capacity"))["total"] or 0) + default * (
        len(rep_ids) - configured.count()
    )
    return {"reps": len(rep_ids), "open_handovers": total}


# --- Backtest ------------------------------------------------------------------------------------------------


def _rate(positives, n):
    return round(positives / n, 4) if n else None


def roc_auc(pairs):
    """ROC AUC of (score, outcome) pairs: the chance that a converted lead outscores one that did not (ties: ½)."""
    positives = sum(1 for _, outcome in pairs if outcome)
    negatives = len(pairs) - positives
    if not positives or not negatives:
        return None
    ordered = sorted(pairs, key=lambda pair: pair[0])
    rank_sum = 0.0
    index = 0
    while index < len(ordered):
        end = index
        while end + 1 < len(ordered) and ordered[end + 1][0] == ordered[index][0]:
            end += 1
        average_rank = (index + end) / 2 + 1  # ranks from 1; ties share their average
        rank_sum += average_rank * sum(1 for k in range(index, end + 1) if ordered[k][1])
        index = end + 1
    return (rank_sum - positives * (positives + 1) / 2) / (positives * negatives)


def top_decile_lift(pairs):
    """Conversion in the top tenth by score (ties at the cut go in by lead order) over the overall rate."""
    if not pairs:
        return None
    base = sum(outcome for _, outcome in pairs) / len(pairs)
    if not base:
        return None
    size = max(1, math.ceil(len(pairs) / 10))
    top = sorted(pairs, key=lambda pair: -pair[0])[:size]
    return (sum(outcome for _, outcome in top) / size) / base


def _side_backtest(rows):
    """rows: (id, score, band, grade, mql, outcome) sorted by id."""
    pairs = [(score, outcome) for _, score, _, _, _, outcome in rows]
    by_band = {band: {"n": 0, "positives": 0} for band in BANDS}
    by_grade = {grade: {"n": 0, "positives": 0} for grade in GRADES}
    # Counted per (band or grade, outcome) first: a million leads bring 150,000 outcomes, and a dict update per
    # lead and table took half a second per side.
    for table, column in ((by_band, 2), (by_grade, 3)):
        for (key, outcome), count in Counter((row[column], row[5]) for row in rows).items():
            cell = table.setdefault(key, {"n": 0, "positives": 0})
            cell["n"] += count
            cell["positives"] += outcome * count
    flagged = [outcome for _id, _score, _band, _grade, mql, outcome in rows if mql]
    at_threshold, true_positive = len(flagged), sum(flagged)
    for table in (by_band, by_grade):
        for cell in table.values():
            cell["rate"] = _rate(cell["positives"], cell["n"])
    positives = sum(outcome for _, outcome in pairs)
    auc = roc_auc(pairs)
    lift = top_decile_lift(pairs)
    return {
        "auc": None if auc is None else round(auc, 4),
        "top_decile_lift": None if lift is None else round(lift, 3),
        "precision": _rate(true_positive, at_threshold),
        "recall": _rate(true_positive, positives),
        "at_threshold": at_threshold,
        "by_band": by_band,
        "by_grade": by_grade,
    }


def _backtest(d, cursor, plan, version):
    """The version's scores and the stored ones on the leads whose outcome is known."""
    outcome = _outcome_sql()
    extra = Sql("")
    extra += outcome
    extra += " AS outcome, "
    where = Sql("")
    sql = Sql(
        f"SELECT r.id, r.score, r.band, r.grade, {d.flag('r.mql')}, r.old_score, r.old_band, r.old_grade, "
    )
    sql += "r.old_mql, r.outcome FROM ("
    sql += plan.rows_sql(extra_columns=extra, where=where, outcomes_only=True)
    sql += ") r ORDER BY r.id"
    cursor.execute(sql.text, sql.params)
    rows = cursor.fetchall()
    draft = [(r[0], r[1], r[2], r[3], bool(r[4]), int(r[9])) for r in rows]
    active = [(r[0], r[5], r[6], r[7], bool(r[8]), int(r[9])) for r in rows]
    return {
        "n": len(rows),
        "positives": sum(row[5] for row in draft),
        "min_trust": MIN_TRUST,
        "outcome": _(
            "Converted: won, or accepted by sales and not lost. Not converted: lost, or rejected by sales."
        ),
        "draft": _side_backtest(draft),
        "active": _side_backtest(active),
    }


def preview_for_approval(version, preview_id):
    """The done preview an approver saw, if it still describes the version as it stands; else None."""
    try:
        preview = Preview.objects.get(pk=int(preview_id), version=version, status=Preview.Status.DONE)
    except (Preview.DoesNotExist, TypeError, ValueError):
        return None
    return preview if preview.fingerprint == fingerprint(version) else None
