"""What-if and backtest: what a version would do to every current lead, before anyone switches it on.

A version (usually a draft) is scored set-based over all the leads its model scores, with the same SQL as the
rescore (rescoring.py) but into a temporary table, never into the leads. Beside it stand the values the leads
carry now (what the active versions gave them). From that one table come the counts per band, temperature and
grade, the MQLs, the leads that would change band, the score distribution, the expected MQL flow, and the
backtest on the leads whose outcome is known.

Interest is taken from the leads' accumulators (LeadSignals) wherever the version counts the same activity as
the active version that made them; only criteria with new matchers, and leads without fresh accumulators, are
counted from their touchpoints. So a change of points, caps, fit criteria, knock-outs or thresholds previews in
one pass over the leads, not over their touchpoints.

A preview runs in a worker (tasks.run_preview); the workbench polls its Preview row.
"""

import hashlib
import json
import logging
import math
import time
from collections import Counter
from datetime import timedelta

from django.apps import apps
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from leadcockpit.leads import lifecycle
from leadcockpit.leads.models import Lead

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
    fit_and_knockout_sql,
    fresh_signals_sql,
    interest_criteria_of,
    interest_signature,
    rule_sql,
)

log = logging.getLogger(__name__)

ROWS_TABLE = "scoring_whatif"
WINDOW_DAYS = 28  # the expected MQL flow is read off the leads that arrived in the last four weeks
SAMPLE = 20
HISTOGRAM_BINS = 24
PERCENTILE_SAMPLE = 100_000  # the histogram's 1st and 99th percentiles come from about this many leads
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
    recent = (
        Preview.objects.filter(version=version, fingerprint=mark, created_at__gte=now - max_age)
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


# --- Scoring a version into a temporary table ----------------------------------------------------------------


def _same_matcher(a, b):
    return (
        sorted(a.touchpoint_kinds or []) == sorted(b.touchpoint_kinds or [])
        and a.url_contains == b.url_contains
        and a.channel_id == b.channel_id
        and a.search_contains == b.search_contains
        and a.lookback_days == b.lookback_days
        and (a.half_life_days or None) == (b.half_life_days or None)
    )


def _scope(d, version, versions):
    """WHERE over l (lead) and c (company): the leads this version's model scores, given the active models."""
    params = []
    parts = [f"({rule_sql(d, version.model.rule, params)})"]
    for other in versions:
        if other.model_id == version.model_id:
            break
        if (other.model.priority, other.model_id) < (version.model.priority, version.model_id):
            parts.append(f"NOT ({rule_sql(d, other.model.rule, params)})")
    return Sql(" AND ".join(parts), params)


def score_rows(version, *, as_of, only_outcomes=False):
    """Create ROWS_TABLE: per lead in scope, its stored (active) values and the version's, plus its outcome.

    Columns: id, old_score, old_band, old_temperature, old_grade, old_mql (bool), stage, created_at, outcome
    (1, 0 or NULL), fit, interest, ko, score, band, temperature, grade, mql (0/1). Returns how many rows.
    Runs inside the caller's transaction (the temporary tables go with it).
    """
    d = Dialect(connection.vendor)
    versions, all_criteria = active_versions()
    criteria = list(version.criteria.all())
    interest = interest_criteria_of(criteria)
    active = next((v for v in versions if v.model_id == version.model_id), None)
    active_interest = interest_criteria_of(all_criteria[active.pk]) if active else []
    # Each of the version's interest criteria: the index of the active version's criterion counting the same
    # activity (its accumulator can be reused), or None (counted from the touchpoints).
    mapped = [
        next((j for j, old in enumerate(active_interest) if _same_matcher(new, old)), None)
        for new in interest
    ]
    fresh_from = [i for i, j in enumerate(mapped) if j is None]
    scope = _scope(d, version, versions)
    handovers = apps.get_model("handover", "Handover")._meta.db_table
    # The leads' decided handovers, joined as ho. A join, not EXISTS subqueries in the outcome: those make the
    # scoring statement parallel-restricted, and PostgreSQL then computes every lead's score in one process.
    decided = (
        f"LEFT JOIN (SELECT h.lead_id, MAX(CASE WHEN h.status = 'accepted' THEN 1 ELSE 0 END) AS accepted, "
        f"MAX(CASE WHEN h.status = 'rejected' THEN 1 ELSE 0 END) AS rejected FROM {handovers} h "
        "WHERE h.status IN ('accepted', 'rejected') GROUP BY h.lead_id) ho ON ho.lead_id = l.id "
    )
    outcome = Sql(
        f"CASE WHEN l.stage_id IN ({', '.join(['%s'] * len(WON_STAGES))}) THEN 1 WHEN l.stage_id = %s THEN 0 "
        "WHEN ho.accepted = 1 THEN 1 WHEN ho.rejected = 1 THEN 0 END",
        [*WON_STAGES, lifecycle.LOST],
    )
    with connection.cursor() as cursor:
        if d.postgres:
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL work_mem = '64MB'")
        for table in (ROWS_TABLE, NEED_TABLE, "scoring_whatif_new", "scoring_whatif_all"):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        signature = interest_signature(all_criteria[active.pk]) if active else None
        fresh = fresh_signals_sql(d, signature=signature, as_of=as_of) if signature is not None else None

        def leads_in_scope(signals):
            """CREATE NEED_TABLE with the ids of the leads in scope: signals is 'with', 'without' or None."""
            sql = Sql(f"CREATE TEMPORARY TABLE {NEED_TABLE} AS SELECT l.id AS id FROM {LEAD} l ")
            sql += f"LEFT JOIN {COMPANY} c ON c.id = l.company_id "
            if only_outcomes:
                sql += decided
            if signals and fresh is not None:
                sql += f"{'JOIN' if signals == 'with' else 'LEFT JOIN'} {SIGNALS} s ON "
                sql += fresh
            sql += " WHERE "
            if only_outcomes:
                sql += "("
                sql += outcome
                sql += ") IS NOT NULL AND "
            sql += scope
            if signals == "without" and fresh is not None:
                sql += " AND s.lead_id IS NULL"
            cursor.execute(sql.text, sql.params)
            return _count(cursor, NEED_TABLE)

        need_all = need_new = 0
        if interest:
            # Leads lacking fresh accumulators: every interest criterion from their touchpoints.
            need_all = leads_in_scope("without")
            if need_all:
                _accumulate_into(d, cursor, "scoring_whatif_all", criteria, as_of)
            cursor.execute(f"DROP TABLE {NEED_TABLE}")
            if fresh_from and fresh is not None:
                # Criteria with new matchers, for the leads with accumulators: from their touchpoints.
                need_new = leads_in_scope("with")
                if need_new:
                    _accumulate_into(
                        d, cursor, "scoring_whatif_new", [interest[i] for i in fresh_from], as_of
                    )
                cursor.execute(f"DROP TABLE {NEED_TABLE}")

        def term(index):
            """The decayed sum of the version's index-th interest criterion for lead l."""
            criterion = interest[index]
            parts = []
            params = []
            if need_all:
                parts.append(f"WHEN wa.id IS NOT NULL THEN COALESCE(wa.i{index}, 0)")
            if mapped[index] is not None and signature is not None:
                decay = ""
                if criterion.half_life_days:
                    decay = f" * power(0.5, {d.age_days('%s', 's.at')} / %s)"
                    params += [as_of, criterion.half_life_days]
                parts.append(f"WHEN s.lead_id IS NOT NULL THEN {d.element('s.sums', mapped[index])}{decay}")
            elif need_new:
                parts.append(f"WHEN wn.id IS NOT NULL THEN COALESCE(wn.i{fresh_from.index(index)}, 0)")
            if not parts:
                return Sql("0")
            return Sql(f"(CASE {' '.join(parts)} ELSE 0 END)", params)

        select = Sql(f"CREATE TEMPORARY TABLE {ROWS_TABLE} AS SELECT x.*, x.fit + x.interest AS score, ")
        classify, classify_params = classify_sql(version)
        select.add(classify, *classify_params)
        select += (
            " FROM (SELECT l.id AS id, l.score AS old_score, l.band AS old_band, l.temperature AS old_temperature,"
            " l.grade AS old_grade, l.score_is_mql AS old_mql, l.stage_id AS stage, l.created_at AS created_at, "
        )
        select += outcome
        select += " AS outcome, "
        select += fit_and_knockout_sql(d, criteria)
        select += ", "
        select += _interest_sql(d, interest, term)
        select += f" FROM {LEAD} l LEFT JOIN {COMPANY} c ON c.id = l.company_id "
        select += decided
        if fresh is not None and interest:
            select += f"LEFT JOIN {SIGNALS} s ON "
            select += fresh
        if need_all:
            select += " LEFT JOIN scoring_whatif_all wa ON wa.id = l.id"
        if need_new:
            select += " LEFT JOIN scoring_whatif_new wn ON wn.id = l.id"
        select += " WHERE "
        if only_outcomes:
            select += "("
            select += outcome
            select += ") IS NOT NULL AND "
        select += scope
        select += f" {d.fence}) x"
        cursor.execute(select.text, select.params)
        rows = _count(cursor, ROWS_TABLE)
        for table in ("scoring_whatif_new", "scoring_whatif_all"):
            cursor.execute(f"DROP TABLE IF EXISTS {table}")
        if d.postgres:
            # Statistics for the aggregates over the table (without them the planner guesses a million groups
            # and sorts). A small sample does: the default 30,000 rows cost a tenth of the whole preview.
            cursor.execute("SET LOCAL default_statistics_target = 10")
            cursor.execute(f"ANALYZE {ROWS_TABLE}")
            cursor.execute("SET LOCAL default_statistics_target TO DEFAULT")
    return rows


def _interest_sql(d, interest, term):
    sql = Sql("CAST(")
    for index, criterion in enumerate(interest):
        part = Sql("%s * ", [criterion.points])
        part += term(index)
        if criterion.cap is not None:
            part = Sql(d.clamp(part.text), [-criterion.cap, criterion.cap, *part.params])
        sql += " + " if index else ""
        sql += Sql(f"({part.text})", part.params)
    if not interest:
        sql += "0"
    sql += " AS double precision) AS interest"
    return sql


def _accumulate_into(d, cursor, table, criteria, as_of):
    """table(id, i0..in): the criteria's sums as of as_of over the touchpoints of the leads in NEED_TABLE."""
    accumulate, _fresh = accumulate_sql(d, criteria, as_of=as_of)
    columns = ", ".join(f"a.i{index}" for index in range(len(interest_criteria_of(criteria))))
    sql = Sql(f"CREATE TEMPORARY TABLE {table} AS SELECT n.id AS id{', ' if columns else ''}{columns} ")
    sql += f"FROM {NEED_TABLE} n LEFT JOIN ("
    sql += accumulate
    sql += ") a ON a.lead_id = n.id"
    if d.postgres:
        cursor.execute(f"ANALYZE {NEED_TABLE}")
    cursor.execute(sql.text, sql.params)


def _count(cursor, table):
    cursor.execute(f"SELECT COUNT(*) FROM {table}")
    return cursor.fetchone()[0]


# --- The figures ---------------------------------------------------------------------------------------------


def compute(version, *, as_of=None) -> dict:
    """The what-if and backtest of `version` against what the leads carry now (see the module docstring)."""
    as_of = as_of or timezone.now()
    d = Dialect(connection.vendor)
    with transaction.atomic(), connection.cursor() as cursor:
        scope = score_rows(version, as_of=as_of)
        sides, moves, span = _sides_and_moves(d, cursor, as_of)
        result = {
            "scope": scope,
            "as_of": as_of.isoformat(),
            "window_days": WINDOW_DAYS,
            "sides": sides,
            "band_moves": moves,
            "changed_total": sum(move["count"] for move in moves),
            "changed": _changed(cursor),
            "histogram": _histogram(d, cursor, span),
            "capacity": _capacity(as_of),
            "backtest": _backtest(cursor, version),
        }
        cursor.execute(f"DROP TABLE {ROWS_TABLE}")
    return result


def backtest(version, *, as_of=None) -> dict:
    """The backtest alone, scoring only the leads with a known outcome."""
    as_of = as_of or timezone.now()
    with transaction.atomic(), connection.cursor() as cursor:
        score_rows(version, as_of=as_of, only_outcomes=True)
        result = _backtest(cursor, version)
        cursor.execute(f"DROP TABLE {ROWS_TABLE}")
    return result


def _sides_and_moves(d, cursor, as_of):
    """Both sides' counts, the band moves and the score range, from one pass over ROWS_TABLE (each pass over a
    million rows costs a good part of a second, so the figures share one GROUP BY of a few hundred groups)."""
    since = as_of - timedelta(days=WINDOW_DAYS)
    cursor.execute(
        "SELECT old_band, band, old_temperature, temperature, old_grade, grade, "
        f"CASE WHEN old_mql THEN 1 ELSE 0 END, mql, CASE WHEN created_at >= %s THEN 1 ELSE 0 END, "
        f"CASE WHEN stage IN ({', '.join(['%s'] * len(MQL_FROM_STAGES))}) THEN 1 ELSE 0 END, "
        f"COUNT(*), MIN(score), MAX(score), MIN(old_score), MAX(old_score) FROM {ROWS_TABLE} "
        "GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9, 10",
        [since, *MQL_FROM_STAGES],
    )
    sides = {
        side: {
            "bands": dict.fromkeys(BANDS, 0),
            "temperatures": dict.fromkeys(TEMPERATURES, 0),
            "grades": dict.fromkeys(GRADES, 0),
            "mql": 0,
            "recent": 0,
        }
        for side in ("draft", "active")
    }
    moves = {}
    activation = 0
    lows, highs = [], []
    for row in cursor.fetchall():
        old_band, band, old_temperature, temperature, old_grade, grade = row[:6]
        old_mql, mql, recent, movable, count, low, high, old_low, old_high = row[6:]
        lows += [low, old_low]
        highs += [high, old_high]
        for side, values in (
            ("draft", (band, temperature, grade, mql)),
            ("active", (old_band, old_temperature, old_grade, old_mql)),
        ):
            figures = sides[side]
            for key, value in zip(("bands", "temperatures", "grades"), values[:3], strict=True):
                figures[key][value] = figures[key].get(value, 0) + count
            if values[3]:
                figures["mql"] += count
                figures["recent"] += count * recent
        if old_band != band:
            moves[old_band, band] = moves.get((old_band, band), 0) + count
        # Leads the version would make MQLs the moment it went live (they are in a stage scoring may move on).
        if mql and not old_mql and movable:
            activation += count
    for figures in sides.values():
        figures["mql_per_week"] = round(figures.pop("recent") * 7 / WINDOW_DAYS, 1)
    sides["draft"]["mql_at_activation"] = activation
    order = {band: index for index, band in enumerate(BANDS)}
    moves = sorted(
        ({"from": old, "to": new, "count": count} for (old, new), count in moves.items()),
        key=lambda move: (order.get(move["from"], 9), order.get(move["to"], 9)),
    )
    span = (min(lows), max(highs)) if lows else None
    return sides, moves, span


def _changed(cursor):
    """The leads changing band whose score moves most (picked from ROWS_TABLE before their names are joined)."""
    cursor.execute(
        f"SELECT w.id, l.first_name, l.last_name, l.email, l.external_id, w.old_band, w.band, w.old_score, "
        f"w.score FROM (SELECT id, old_band, band, old_score, score FROM {ROWS_TABLE} WHERE old_band <> band "
        f"ORDER BY ABS(score - old_score) DESC, id LIMIT %s) w JOIN {LEAD} l ON l.id = w.id "
        f"ORDER BY ABS(w.score - w.old_score) DESC, w.id",
        [SAMPLE],
    )
    changed = []
    for pk, first, last, email, external_id, old_band, band, old_score, score in cursor.fetchall():
        name = f"{first} {last}".strip() or email or external_id or f"#{pk}"
        changed.append(
            {
                "id": pk,
                "name": name,
                "old_band": old_band,
                "band": band,
                "old_score": round(old_score, 1),
                "score": round(score, 1),
            }
        )
    return changed


def _nice_step(span, bins):
    raw = max(span / bins, 1e-9)
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def _histogram(d, cursor, span):
    """Both score distributions over the same bins; the outer 1 % on each side falls into the end bins.

    span: the lowest and highest score of either side, or None without rows.
    """
    if span is None:
        return {"edges": [], "draft": [], "active": []}
    low, high = span
    count = _count(cursor, ROWS_TABLE)
    if d.postgres and count > 200:
        # Outliers would squeeze everyone else into a bin or two: span the 1st to 99th percentile instead. Of a
        # large table, from every k-th lead: sorting two million scores would spill to disk, and the ends of the
        # bins need no more precision than a hundred thousand give.
        every = max(1, count // PERCENTILE_SAMPLE)
        cursor.execute(
            "SELECT percentile_disc(0.01) WITHIN GROUP (ORDER BY v), percentile_disc(0.99) WITHIN GROUP (ORDER BY v) "
            f"FROM (SELECT score AS v FROM {ROWS_TABLE} WHERE id %% %s = 0 "
            f"UNION ALL SELECT old_score FROM {ROWS_TABLE} WHERE id %% %s = 0) u",
            [every, every],
        )
        low, high = cursor.fetchone()
    step = _nice_step(high - low, HISTOGRAM_BINS)
    start = math.floor(low / step) * step
    bins = max(1, min(HISTOGRAM_BINS * 2, math.ceil((high - start) / step + 1e-9)))
    if start + bins * step <= high:
        bins += 1
    edges = [round(start + index * step, 6) for index in range(bins + 1)]
    bucket = "CAST(FLOOR(({} - %s) / %s) AS INTEGER)"
    cursor.execute(
        f"SELECT {bucket.format('score')}, {bucket.format('old_score')}, COUNT(*) FROM {ROWS_TABLE} GROUP BY 1, 2",
        [start, step, start, step],
    )
    result = {"edges": edges, "draft": [0] * bins, "active": [0] * bins}
    for new, old, number in cursor.fetchall():
        result["draft"][max(0, min(bins - 1, int(new)))] += number
        result["active"][max(0, min(bins - 1, int(old)))] += number
    return result


def _capacity(as_of):
    """The sales reps present today and the open handovers they can hold (handover settings)."""
    from django.contrib.auth import get_user_model
    from django.db.models import Q, Sum

    from leadcockpit.accounts.roles import Role

    today = timezone.localdate(as_of)
    reps = (
        get_user_model()
        .objects.filter(is_active=True, groups__name=Role.SALES_REP.value)
        .exclude(Q(availability__absent_from__lte=today) & Q(availability__absent_until__gte=today))
        .distinct()
    )
    from leadcockpit.handover.models import RepAvailability

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


def _backtest(cursor, version):
    d = Dialect(connection.vendor)
    cursor.execute(
        f"SELECT id, score, band, grade, {d.flag('mql')}, old_score, old_band, old_grade, old_mql, outcome "
        f"FROM {ROWS_TABLE} WHERE outcome IS NOT NULL ORDER BY id"
    )
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
