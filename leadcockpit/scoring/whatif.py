"""What-if and backtest: what a version would do to every current lead, before anyone switches it on.

A version (usually a draft) is scored over all the leads its model scores, with the rescore's SQL building
blocks (rescoring.py), and compared with the values the leads carry now (what the active versions gave them);
nothing is written to the leads. One pass over the leads (split over PostgreSQL's parallel workers) gives, per
lead, its stored score and classification, its outcome if known, and its fit and interest under the version,
each column as one array (the aggregate lc_collect_float8); numpy then classifies and counts them: bands,
temperatures, grades, MQLs, band moves, the score distribution, the expected MQL flow, the leads that change
most, and the backtest on the leads whose outcome is known. Evaluating criteria is SQL's part (as in the rescore,
so the two cannot disagree); everything done per lead afterwards is numpy's, at a few nanoseconds a lead.

Per lead: fit is the stored fit less the active criteria that changed plus the version's (fit does not change
with time), interest comes from the lead's accumulators (LeadSignals) decayed to the moment of the preview
wherever the version counts the same activity as the active version; criteria with new matchers are counted
once from all touchpoints, and the few leads without fresh accumulators (new activity the worker has not
scored yet, never scored) from their own touchpoints in a second pass. So a change of points, caps, fit
criteria, knock-outs or thresholds previews in one pass over the leads, not over their touchpoints.

A preview runs in a worker (tasks.run_preview); the workbench polls its Preview row.
"""

import functools
import hashlib
import json
import logging
import math
import time
from datetime import UTC, timedelta

import numpy as np
import psycopg
from django.apps import apps
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from leadcockpit.leads import lifecycle
from leadcockpit.leads.models import Lead
from leadcockpit.lib import logit

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
    condition_sql,
    fresh_signals_sql,
    interest_criteria_of,
    interest_signature,
    rule_sql,
)

log = logging.getLogger(__name__)

WINDOW_DAYS = 28  # the expected MQL flow is read off the leads that arrived in the last four weeks
SAMPLE = 20
HISTOGRAM_BINS = 24
MIN_TRUST = 30  # fewer leads than this behind a backtest figure: shown, with a warning
PREVIEW_MAX_AGE = timedelta(minutes=10)  # a preview of the same criteria this recent is shown again
PREVIEW_STALE = timedelta(minutes=2)  # a preview queued this long without a worker taking it is given up
BANDS = [choice.value for choice in Lead.Band]
TEMPERATURES = [choice.value for choice in Lead.Temperature]
GRADES = [f"{letter}{number}" for letter in "ABCD" for number in "1234"]
# Converted: won or a customer; else, not lost, accepted by sales. Not converted: lost; else rejected by sales.
WON_STAGES = (lifecycle.WON, lifecycle.CUSTOMER_CARE, lifecycle.UPSELL)
HANDOVER = apps.get_model("handover", "Handover")._meta.db_table
# Per lead, its stored classification and flags packed into one number: (name, how many values it takes).
# outcome: 0 unknown, 1 not converted, 2 converted.
PACKED = [
    ("old_band", 3),
    ("old_temperature", 3),
    ("old_grade", 17),
    ("old_mql", 2),
    ("recent", 2),
    ("mql_stage", 2),
    ("waiting", 2),
    ("ko", 2),
    ("outcome", 3),
]


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
        # A criterion whose condition stayed and whose points changed: one condition, the difference of points.
        gone_by_key = {c.key: c for c in self.fit_gone}
        self.fit_repointed = [
            (gone_by_key[c.key], c)
            for c in self.fit_came
            if c.key in gone_by_key and _fit_spec(gone_by_key[c.key])[:4] == _fit_spec(c)[:4]
        ]
        repointed = {new.key for _old, new in self.fit_repointed}
        self.fit_gone = [c for c in self.fit_gone if c.key not in repointed]
        self.fit_came = [c for c in self.fit_came if c.key not in repointed]
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
        for old, new in self.fit_repointed:
            params = []
            condition = condition_sql(self.d, new.field, new.operator, new.value, params)
            delta += Sql(f" + (CASE WHEN {condition} THEN %s ELSE 0 END)", [*params, new.points - old.points])
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

    def columns_sql(self, *, since, waiting_only=False, outcomes_only=None):
        """One pass over the leads in scope: per lead its id, stored score, packed stored classification and flags
        (PACKED), and fit and interest under the version; each expression evaluated once per lead. On PostgreSQL
        each column comes back as one array (lc_collect_float8, aggregated in the parallel workers), else as rows."""
        d = self.d
        fit = Sql("CAST(")
        fit += self.fit_sql()
        fit += " AS double precision)"
        # (A lead without accumulators has no interest from them; the second pass counts it from wa.)
        interest = Sql("CAST(COALESCE(")
        interest += self.interest_sql(waiting_only=waiting_only)
        interest += ", 0) AS double precision)"
        parts = {
            "old_band": Sql("CASE l.band WHEN 'yellow' THEN 1 WHEN 'green' THEN 2 ELSE 0 END"),
            "old_temperature": Sql("CASE l.temperature WHEN 'warm' THEN 1 WHEN 'hot' THEN 2 ELSE 0 END"),
            # The grade's place in "A1A2…D4" (0–15), or 16 for none yet.
            "old_grade": Sql(
                f"CASE WHEN length(l.grade) = 2 THEN ({'strpos' if d.postgres else 'instr'}(%s, l.grade) - 1) / 2 "
                "ELSE 16 END",
                ["".join(GRADES)],
            ),
            "old_mql": Sql("CASE WHEN l.score_is_mql THEN 1 ELSE 0 END"),
            "recent": Sql("CASE WHEN l.created_at >= %s THEN 1 ELSE 0 END", [since]),
            "mql_stage": Sql(
                f"CASE WHEN l.stage_id IN ({', '.join(['%s'] * len(MQL_FROM_STAGES))}) THEN 1 ELSE 0 END",
                list(MQL_FROM_STAGES),
            ),
            "waiting": Sql("1" if waiting_only else self.waiting_sql()),
            "ko": _knockout(d, self.criteria),
            # Known by stage; else by a decided handover (_handover_outcomes, joined in numpy).
            "outcome": Sql(
                f"CASE WHEN l.stage_id IN ({', '.join(['%s'] * len(WON_STAGES))}) THEN 2 WHEN l.stage_id = %s "
                "THEN 1 ELSE 0 END",
                [*WON_STAGES, lifecycle.LOST],
            ),
        }
        packed = Sql("(")
        multiplier = 1
        for index, (name, radix) in enumerate(PACKED):
            packed += " + " if index else ""
            packed += Sql(f"{multiplier} * ({parts[name].text})", parts[name].params)
            multiplier *= radix
        packed += ")"
        sql = _select_columns(d, [Sql("l.id"), Sql("l.score"), packed, fit, interest])
        sql += " FROM "
        sql += self.from_sql(waiting_only=waiting_only, outcomes_only=outcomes_only)
        return sql

    def from_sql(self, *, waiting_only=False, outcomes_only=None):
        """FROM … WHERE: the leads in scope (those in wa only, or those with a known outcome only), joined to
        what the columns read: company, accumulators, the per-preview tables."""
        d = self.d
        stages = [*WON_STAGES, lifecycle.LOST]
        outcome_ids = None if outcomes_only is None else [int(pk) for pk in outcomes_only]
        if waiting_only:
            sql = Sql(f"scoring_whatif_all wa JOIN {LEAD} l ON l.id = wa.id ")
        else:
            sql = Sql(f"{LEAD} l ")
        if self.needs_company():
            sql += f"LEFT JOIN {COMPANY} c ON c.id = l.company_id "
        if self.uses_signals and not waiting_only:
            sql += f"LEFT JOIN {SIGNALS} s ON "
            sql += fresh_signals_sql(d, signature=self.signature, as_of=self.as_of)
        if self.with_new and not waiting_only:
            sql += " LEFT JOIN scoring_whatif_new wn ON wn.id = l.id"
        if self.with_all and not waiting_only:
            sql += " LEFT JOIN scoring_whatif_all wa ON wa.id = l.id"
        sql += " WHERE "
        sql += self.scope
        if outcomes_only is not None:
            # The leads with a known outcome: by stage, or among the given ids (those with a decided handover).
            sql += Sql(f" AND (l.stage_id IN ({', '.join(['%s'] * len(stages))}) OR ", stages)
            if d.postgres:  # one array parameter, hashed: PostgreSQL still splits the pass over its workers
                sql += Sql("l.id = ANY(%s))", [outcome_ids])
            else:
                sql += Sql(
                    f"l.id IN (SELECT lead_id FROM {HANDOVER} WHERE status IN ('accepted', 'rejected')))"
                )
        return sql

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


def _settings(d, cursor):
    if d.postgres:
        cursor.execute("SET LOCAL jit = off")  # compiling these one-off statements costs more than it saves
        cursor.execute("SET LOCAL work_mem = '128MB'")
        # The pass over every lead is worth splitting across workers even where the planner's cost model, which
        # underrates these expressions, would not.
        cursor.execute("SET LOCAL parallel_setup_cost = 0")
        cursor.execute("SET LOCAL parallel_tuple_cost = 0")


def _float_array(blob):
    """A float8[] without NULLs as array_send writes it: a header, then per element its length (8) and value."""
    blob = bytes(blob)
    dimensions, has_nulls = int.from_bytes(blob[0:4], "big"), int.from_bytes(blob[4:8], "big")
    if has_nulls:
        raise ValueError("a what-if column holds NULL")
    elements = np.frombuffer(blob, dtype=[("length", ">i4"), ("value", ">f8")], offset=12 + 8 * dimensions)
    return elements["value"].astype(np.float64)


def _select_columns(d, columns):
    """SELECT of these columns: on PostgreSQL each as one float8[] over all rows (see _read_columns)."""
    sql = Sql("SELECT ")
    for index, column in enumerate(columns):
        sql += ", " if index else ""
        if d.postgres:
            sql += "array_send(lc_collect_float8(CAST("
            sql += column
            sql += " AS double precision)))"
        else:
            sql += column
    return sql


def _read_columns(d, cursor, sql, width):
    """The columns of a _select_columns query as float arrays. On PostgreSQL in binary, on the cursor's
    connection and transaction: as text, the arrays (12 bytes a lead each) would travel hex-encoded, twice the
    size."""
    if d.postgres:
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as binary:

            def execute(text, params, many, context):
                return binary.execute(text, params, binary=True)

            # Through the connection's execute wrappers, as Django's own cursors go (instrumentation sees it).
            for wrapper in reversed(connection.execute_wrappers):
                execute = functools.partial(wrapper, execute)
            execute(sql.text, sql.params, False, {"connection": connection, "cursor": binary})
            return [_float_array(blob) for blob in binary.fetchone()]
    cursor.execute(sql.text, sql.params)
    table = np.array(cursor.fetchall(), dtype=np.float64).reshape(-1, width)
    return [table[:, index] for index in range(width)]


class _Leads:
    """The leads of a pass as columns (numpy arrays): id, stored score, the PACKED values, fit and interest."""

    def __init__(self, ids, old_score, packed, fit, interest):
        self.id = ids.astype(np.int64)
        self.old_score, self.fit, self.interest = old_score, fit, interest
        packed = packed.astype(np.int64)
        for name, radix in PACKED:
            packed, value = np.divmod(packed, radix)
            setattr(self, name, value)

    @classmethod
    def read(cls, d, cursor, sql):
        return cls(*_read_columns(d, cursor, sql, 5))

    def without(self, mask):
        """These leads but those where mask is true."""
        keep = ~mask
        return self._of({name: value[keep] for name, value in vars(self).items()})

    def plus(self, other):
        return self._of(
            {name: np.concatenate([value, getattr(other, name)]) for name, value in vars(self).items()}
        )

    @classmethod
    def _of(cls, values):
        leads = cls.__new__(cls)
        vars(leads).update(values)
        return leads

    def __len__(self):
        return len(self.id)


def _passes(d, cursor, plan, *, since, outcomes_only=False):
    """Every lead in scope under the version (or only those with a known outcome): the pass over the leads, then,
    for those without fresh accumulators (or every lead, without an active version), a second one counting
    their interest from their touchpoints."""
    handed = _handover_outcomes(d, cursor)
    only = handed[0] if outcomes_only else None
    leads = None
    if not plan.all_from_touchpoints:
        leads = _Leads.read(d, cursor, plan.columns_sql(since=since, outcomes_only=only))
    if plan.all_from_touchpoints or leads.waiting.any():
        if not plan.with_all:
            plan.prepare_waiting(cursor)
        waiting = _Leads.read(d, cursor, plan.columns_sql(since=since, waiting_only=True, outcomes_only=only))
        leads = waiting if leads is None else leads.without(leads.waiting == 1).plus(waiting)
    # The stage decides where it tells (won, lost); else a decided handover does.
    ids, outcomes = handed
    by_handover = np.zeros(len(leads), dtype=np.int64)
    if len(ids):
        place = np.minimum(np.searchsorted(ids, leads.id), len(ids) - 1)
        found = ids[place] == leads.id
        by_handover[found] = outcomes[place[found]]
    leads.outcome = np.where(leads.outcome > 0, leads.outcome, by_handover)
    return leads


def _handover_outcomes(d, cursor):
    """(lead ids in order, outcome 2 or 1) of the leads with a decided handover: accepted beats rejected."""
    sql = _select_columns(d, [Sql("h.lead_id"), Sql("h.outcome")])
    sql += (
        " FROM (SELECT lead_id, MAX(CASE WHEN status = 'accepted' THEN 2 ELSE 1 END) AS outcome "
        f"FROM {HANDOVER} WHERE status IN ('accepted', 'rejected') GROUP BY lead_id) h"
    )
    ids, outcomes = _read_columns(d, cursor, sql, 2)
    order = np.argsort(ids, kind="stable")
    return ids[order].astype(np.int64), outcomes[order].astype(np.int64)


class _Classified:
    """The version's classification of each lead, as evaluator.classify makes it, beside the stored one."""

    def __init__(self, leads, version):
        v = version
        ko = leads.ko == 1
        self.score = leads.fit + leads.interest
        self.band = np.where(ko | (self.score < v.yellow_from), 0, np.where(self.score >= v.green_from, 2, 1))
        self.temperature = np.where(
            ko | (self.score < v.warm_from), 0, np.where(self.score >= v.hot_from, 2, 1)
        )
        letter = (
            (leads.fit >= v.fit_c_from).astype(int)
            + (leads.fit >= v.fit_b_from)
            + (leads.fit >= v.fit_a_from)
        )
        digit = (
            (leads.interest >= v.interest_3_from).astype(int)
            + (leads.interest >= v.interest_2_from)
            + (leads.interest >= v.interest_1_from)
        )
        # The grade's place in GRADES ("A1" … "D4"): letters A…D from fit, digits 1…4 from interest.
        self.grade = (3 - letter) * 4 + (3 - digit)
        self.mql = ~ko & (self.score >= v.mql_threshold)
        if v.min_fit_for_mql is not None:
            self.mql &= leads.fit >= v.min_fit_for_mql


def _histogram_edges(version):
    """Round-numbered bins around the version's thresholds; scores beyond them fall into the end bins."""
    top = max(version.green_from, version.mql_threshold, version.hot_from, 10.0)
    step = _nice_step(top * 1.5, HISTOGRAM_BINS - 4)
    start = -2 * step
    bins = HISTOGRAM_BINS
    return start, step, bins


def _plan_and_run(version, as_of, work):
    d = Dialect(connection.vendor)
    plan = _Plan(d, version, as_of=as_of)
    with transaction.atomic(), connection.cursor() as cursor:
        _settings(d, cursor)
        plan.prepare(cursor)
        result = work(d, cursor, plan)
        plan.finish(cursor)
    return result


def compute(version, *, as_of=None) -> dict:
    """The what-if and backtest of `version` against what the leads carry now (see the module docstring).

    One pass over the leads gives each lead's stored values and its fit and interest under the version; a second
    pass covers the leads without fresh accumulators, if any. numpy classifies and counts; the backtest uses the
    leads among them whose outcome is known, and the sample of changed leads reads only their names.
    """
    as_of = as_of or timezone.now()
    since = as_of - timedelta(days=WINDOW_DAYS)

    def work(d, cursor, plan):
        leads = _passes(d, cursor, plan, since=since)
        new = _Classified(leads, version)
        start, step, bins = _histogram_edges(version)
        result = _figures(leads, new, as_of=as_of, start=start, step=step, bins=bins)
        result["changed"] = _changed_sample(cursor, leads, new)
        result["capacity"] = _capacity(as_of)
        result["backtest"] = _backtest(leads, new)
        return result

    return _plan_and_run(version, as_of, work)


def backtest(version, *, as_of=None) -> dict:
    """The backtest alone: the version and the stored scores on the leads with a known outcome."""
    as_of = as_of or timezone.now()
    since = as_of - timedelta(days=WINDOW_DAYS)

    def work(d, cursor, plan):
        leads = _passes(d, cursor, plan, since=since, outcomes_only=True)
        return _backtest(leads, _Classified(leads, version))

    return _plan_and_run(version, as_of, work)


def _counts(values, labels):
    counted = np.bincount(values, minlength=len(labels))
    return {label: int(counted[index]) for index, label in enumerate(labels)}


def _figures(leads, new, *, as_of, start, step, bins):
    grades_or_none = [*GRADES, ""]  # a stored grade of 16: none yet

    def binned(scores):
        return np.clip(np.floor((scores - start) / step), 0, bins - 1).astype(np.int64)

    recent = leads.recent == 1
    old_mql = leads.old_mql == 1
    sides = {
        "draft": {
            "bands": _counts(new.band, BANDS),
            "temperatures": _counts(new.temperature, TEMPERATURES),
            "grades": _counts(new.grade, GRADES),
            "mql": int(new.mql.sum()),
            "mql_per_week": round(int((new.mql & recent).sum()) * 7 / WINDOW_DAYS, 1),
            "mql_at_activation": int((new.mql & ~old_mql & (leads.mql_stage == 1)).sum()),
        },
        "active": {
            "bands": _counts(leads.old_band, BANDS),
            "temperatures": _counts(leads.old_temperature, TEMPERATURES),
            "grades": {
                grade: n for grade, n in _counts(leads.old_grade, grades_or_none).items() if grade or n
            },
            "mql": int(old_mql.sum()),
            "mql_per_week": round(int((old_mql & recent).sum()) * 7 / WINDOW_DAYS, 1),
        },
    }
    moved = leads.old_band != new.band
    pairs = np.bincount(leads.old_band[moved] * 3 + new.band[moved], minlength=9)
    band_moves = [
        {"from": BANDS[index // 3], "to": BANDS[index % 3], "count": int(count)}
        for index, count in enumerate(pairs)
        if count
    ]
    scope = len(leads)
    edges = [round(start + i * step, 6) for i in range(bins + 1)]
    return {
        "scope": scope,
        "as_of": as_of.isoformat(),
        "window_days": WINDOW_DAYS,
        "sides": sides,
        "band_moves": band_moves,
        "changed_total": int(moved.sum()),
        "waiting": int((leads.waiting == 1).sum()),
        "histogram": {
            "edges": edges,
            "draft": np.bincount(binned(new.score), minlength=bins).tolist(),
            "active": np.bincount(binned(leads.old_score), minlength=bins).tolist(),
        }
        if scope
        else {"edges": [], "draft": [], "active": []},
    }


def _changed_sample(cursor, leads, new):
    """Up to SAMPLE leads that change band: the largest score changes first (then by id)."""
    moved = np.flatnonzero(leads.old_band != new.band)
    if not len(moved):
        return []
    change = np.abs(new.score[moved] - leads.old_score[moved])
    chosen = moved[np.lexsort((leads.id[moved], -change))[:SAMPLE]]
    ids = [int(pk) for pk in leads.id[chosen]]
    cursor.execute(
        f"SELECT id, first_name, last_name, email, external_id FROM {LEAD} "
        f"WHERE id IN ({', '.join(['%s'] * len(ids))})",
        ids,
    )
    names = {
        pk: f"{first} {last}".strip() or email or external_id or f"#{pk}"
        for pk, first, last, email, external_id in cursor.fetchall()
    }
    return [
        {
            "id": int(leads.id[index]),
            "name": names.get(int(leads.id[index]), f"#{int(leads.id[index])}"),
            "old_band": BANDS[leads.old_band[index]],
            "band": BANDS[new.band[index]],
            "old_score": round(float(leads.old_score[index]), 1),
            "score": round(float(new.score[index]), 1),
        }
        for index in chosen
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
    return logit.roc_auc([score for score, _ in pairs], [outcome for _, outcome in pairs])


def top_decile_lift(pairs):
    """Conversion in the top tenth by score (ties at the cut go in by lead order) over the overall rate."""
    return _top_decile_lift(np.array([score for score, _ in pairs], dtype=float), [o for _, o in pairs])


def _top_decile_lift(scores, outcomes):
    """As top_decile_lift, over scores and outcomes in lead order."""
    outcomes = np.asarray(outcomes, dtype=float)
    if not len(outcomes):
        return None
    base = outcomes.mean()
    if not base:
        return None
    size = max(1, math.ceil(len(outcomes) / 10))
    top = np.lexsort((np.arange(len(outcomes)), -scores))[:size]
    return (outcomes[top].sum() / size) / base


def _side_backtest(scores, bands, grades, mql, outcomes):
    """One side's figures over the leads with an outcome (in id order): outcomes 1 converted, 0 not."""
    by_band, by_grade = {}, {}
    # Grades: also "" (16), a stored grade of none yet, listed only where such a lead has an outcome.
    for table, values, labels in ((by_band, bands, BANDS), (by_grade, grades, [*GRADES, ""])):
        n = np.bincount(values, minlength=len(labels))
        positives = np.bincount(values, weights=outcomes, minlength=len(labels))
        for index, label in enumerate(labels):
            if label or n[index]:
                cell = table[label] = {"n": int(n[index]), "positives": int(positives[index])}
                cell["rate"] = _rate(cell["positives"], cell["n"])
    at_threshold, true_positive = int(mql.sum()), int(outcomes[mql].sum())
    auc = logit.roc_auc(scores, outcomes)
    lift = _top_decile_lift(scores, outcomes)
    return {
        "auc": None if auc is None else round(auc, 4),
        "top_decile_lift": None if lift is None else round(float(lift), 3),
        "precision": _rate(true_positive, at_threshold),
        "recall": _rate(true_positive, int(outcomes.sum())),
        "at_threshold": at_threshold,
        "by_band": by_band,
        "by_grade": by_grade,
    }


def _backtest(leads, new):
    """The version's scores and the stored ones on the leads whose outcome is known."""
    known = np.flatnonzero(leads.outcome > 0)
    known = known[np.argsort(leads.id[known], kind="stable")]
    outcomes = (leads.outcome[known] == 2).astype(np.int64)
    return {
        "n": int(len(known)),
        "positives": int(outcomes.sum()),
        "min_trust": MIN_TRUST,
        "outcome": _(
            "Converted: won, or accepted by sales and not lost. Not converted: lost, or rejected by sales."
        ),
        "draft": _side_backtest(
            new.score[known], new.band[known], new.grade[known], new.mql[known], outcomes
        ),
        "active": _side_backtest(
            leads.old_score[known],
            leads.old_band[known],
            leads.old_grade[known],
            leads.old_mql[known] == 1,
            outcomes,
        ),
    }


def preview_for_approval(version, preview_id):
    """The done preview an approver saw, if it still describes the version as it stands; else None."""
    try:
        preview = Preview.objects.get(pk=int(preview_id), version=version, status=Preview.Status.DONE)
    except (Preview.DoesNotExist, TypeError, ValueError):
        return None
    return preview if preview.fingerprint == fingerprint(version) else None
