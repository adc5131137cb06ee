"""Validity of a version: how well its scores foretell the outcomes known now, tracked over time.

A report scores the leads the version covers whose outcome is known with the rescore's SQL builders (nothing is
written but a temporary table of their ids) and reads the outcome of each as learning does (learning.outcome_sql: won or lost, else an
imported outcome attribute). From the (score, outcome) pairs come:

- ROC AUC with its 95 % interval (Hanley & McNeil): the chance a converted lead outscores one that did not;
- lift per decile: conversion in each tenth of the leads by score over the overall conversion, with Wilson
  intervals and counts;
- calibration: predicted against observed conversion per band of predicted probability, and per traffic light.
  A version made from a learning run predicts with that run's scale (points → log-odds); any other version gets
  a one-variable logistic fit of its score on these very outcomes, which shows the shape but flatters the fit
  (marked "fitted").

Beside the figures over all outcomes stand those over outcomes of the last RECENT_DAYS days (closing dates;
imported outcomes have none). The periodic check (check_validity) writes a report per active version once a day
and flags a version whose validity dropped: recent (or overall) AUC at least DROP below its first report's and
beyond that report's reach by the confidence interval, or an AUC barely better than chance.
"""

import json
from datetime import timedelta

import numpy as np
from django.db import connection, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from leadcockpit.lib import logit

from . import whatif
from .fields import attribute_catalogue
from .learning import outcome_at_sql, outcome_sql
from .models import LearningRun, ScoringVersion, ValidityReport
from .rescoring import (
    COMPANY,
    LEAD,
    NEED_TABLE,
    Dialect,
    Sql,
    accumulate_sql,
    active_versions,
    classify_sql,
    fit_and_knockout_sql,
    interest_criteria_of,
    interest_sql,
    rule_sql,
)

RECENT_DAYS = 90
DROP = 0.05
CHANCE_AUC = 0.6
MIN_TRUST = whatif.MIN_TRUST
REPORT_EVERY = timedelta(hours=20)  # the daily check skips a version reported on this recently
CALIBRATION_EDGES = [k / 10 for k in range(11)]


def _scope(d, version, params):
    """WHERE over l and c: the leads the version's model scores, the active models before it taking theirs."""
    parts = [f"({rule_sql(d, version.model.rule, params)})"]
    mine = (version.model.priority, version.model_id)
    for other in active_versions()[0]:
        if other.model_id != version.model_id and (other.model.priority, other.model_id) < mine:
            parts.append(f"NOT ({rule_sql(d, other.model.rule, params)})")
    return " AND ".join(parts)


def outcome_rows(version, *, as_of, lead_ids=None):
    """(id, score, band, outcome, recent) of the leads the version scores whose outcome is known (of lead_ids,
    if given); recent: 1 when the outcome became known within RECENT_DAYS before as_of.

    The version's criteria are scored with the rescore's SQL builders (rescoring.py) over just these leads,
    interest counted from their touchpoints as of as_of; nothing is written but a temporary table of ids.
    """
    d = Dialect(connection.vendor)
    catalogue = attribute_catalogue()
    criteria = list(version.criteria.all())
    with transaction.atomic(), connection.cursor() as cursor:
        if d.postgres:
            cursor.execute("SET LOCAL jit = off")
            cursor.execute("SET LOCAL work_mem = '64MB'")
        cursor.execute(f"DROP TABLE IF EXISTS {NEED_TABLE}")
        params = []
        outcome = outcome_sql(d, params, catalogue)
        scope = _scope(d, version, params)
        need = (
            f"CREATE TEMPORARY TABLE {NEED_TABLE} AS SELECT l.id AS id FROM {LEAD} l "
            f"LEFT JOIN {COMPANY} c ON c.id = l.company_id WHERE {outcome} IS NOT NULL AND {scope}"
        )
        if lead_ids is not None:
            need += f" AND l.id IN (SELECT value FROM {_ids_source(d)})"
            params.append(_ids_param(d, lead_ids))
        cursor.execute(need, params)
        if d.postgres:
            cursor.execute(f"ANALYZE {NEED_TABLE}")
        select = Sql("SELECT x.id, x.fit + x.interest, ")
        classify, classify_params = classify_sql(version)
        select.add(classify, *classify_params)
        select += ", x.outcome, x.recent FROM (SELECT l.id AS id, "
        outcome_params = []
        select += Sql(f"{outcome_sql(d, outcome_params, catalogue)} AS outcome, ", outcome_params)
        at_params = []
        at = outcome_at_sql(at_params)
        select += Sql(
            f"CASE WHEN {at} >= %s THEN 1 ELSE 0 END AS recent, ",
            [*at_params, as_of - timedelta(days=RECENT_DAYS)],
        )
        select += fit_and_knockout_sql(d, criteria)
        select += ", "
        if interest_criteria_of(criteria):
            select += interest_sql(d, criteria, lambda index: f"a.i{index}")
            accumulate, _fresh = accumulate_sql(d, criteria, as_of=as_of)
            select += f" FROM {NEED_TABLE} n JOIN {LEAD} l ON l.id = n.id LEFT JOIN {COMPANY} c ON c.id = l.company_id "
            select += "LEFT JOIN ("
            select += accumulate
            select += ") a ON a.lead_id = l.id"
        else:
            select += "CAST(0 AS double precision) AS interest"
            select += f" FROM {NEED_TABLE} n JOIN {LEAD} l ON l.id = n.id LEFT JOIN {COMPANY} c ON c.id = l.company_id"
        select += f" {d.fence}) x ORDER BY x.id"
        cursor.execute(select.text, select.params)
        fetched = [(row[0], row[1], row[2], row[6], row[7]) for row in cursor.fetchall()]
        cursor.execute(f"DROP TABLE {NEED_TABLE}")
    return fetched


def _ids_source(d):
    return "json_each(%s)" if not d.postgres else "unnest(%s::bigint[]) AS value"


def _ids_param(d, lead_ids):
    ids = [int(pk) for pk in lead_ids]
    return json.dumps(ids) if not d.postgres else ids


def scores_of(version, *, as_of=None, lead_ids=None):
    """{lead id: score} of the version on the leads with a known outcome (of lead_ids, if given)."""
    rows = outcome_rows(version, as_of=as_of or timezone.now(), lead_ids=lead_ids)
    return {row[0]: row[1] for row in rows}


def predictor(version, scores, outcomes):
    """score → predicted conversion: the learning run's scale when the version came from one, else a logistic
    fit of the outcomes on the score (in-sample). Returns (function, source)."""
    run = (
        LearningRun.objects.filter(draft=version, status=LearningRun.Status.DONE)
        .order_by("-created_at")
        .first()
    )
    if run is not None and (run.result or {}).get("scale"):
        scale = run.result["scale"]
        intercept, per_logit = scale["intercept"], scale["points_per_logit"]
        return (lambda s: logit.sigmoid(intercept + np.asarray(s) / per_logit)), "learned"
    spread = float(np.std(scores)) or 1.0
    centre = float(np.mean(scores))
    if len(scores) and 0 < outcomes.sum() < len(outcomes):
        fit = logit.fit_logistic(((scores - centre) / spread)[:, None], outcomes, l2=1e-6)
        a, b = float(fit.coef[0]), float(fit.coef[1])
    else:
        a, b = 0.0, 0.0
    return (lambda s: logit.sigmoid(a + b * (np.asarray(s) - centre) / spread)), "fitted"


def figures(ids, scores, bands, outcomes, predict):
    """The validity figures of (score, outcome) pairs; see the module docstring."""
    n = len(outcomes)
    positives = int(outcomes.sum())
    negatives = n - positives
    auc = logit.roc_auc(scores, outcomes)
    low, high = logit.auc_interval(auc, positives, negatives)
    predicted = predict(scores) if n else np.zeros(0)
    by_band = {}
    for band in ("red", "yellow", "green"):
        members = bands == band
        size = int(members.sum())
        hits = int(outcomes[members].sum())
        rate_low, rate_high = logit.wilson(hits, size)
        by_band[band] = {
            "n": size,
            "positives": hits,
            "observed": hits / size if size else None,
            "observed_low": rate_low,
            "observed_high": rate_high,
            "predicted": float(predicted[members].mean()) if size else None,
        }
    decile_rows = logit.deciles(scores, outcomes, ids)
    return {
        "n": n,
        "positives": positives,
        "rate": positives / n if n else None,
        "auc": None if auc is None else round(auc, 4),
        "auc_low": None if low is None else round(low, 4),
        "auc_high": None if high is None else round(high, 4),
        "trusted": positives >= MIN_TRUST and negatives >= MIN_TRUST,
        "top_decile_lift": decile_rows[0]["lift"] if decile_rows else None,
        "deciles": decile_rows,
        "calibration": logit.calibration(predicted, outcomes, CALIBRATION_EDGES),
        "bands": by_band,
    }


def compute_report(version, *, as_of=None) -> ValidityReport:
    """Score the version's leads with a known outcome, store the figures, and flag a drop against its first report."""
    as_of = as_of or timezone.now()
    fetched = outcome_rows(version, as_of=as_of)
    ids = np.array([row[0] for row in fetched], dtype=np.int64)
    scores = np.array([row[1] for row in fetched], dtype=float)
    bands = np.array([row[2] for row in fetched], dtype=object)
    outcomes = np.array([row[3] for row in fetched], dtype=float)
    predict, source = predictor(version, scores, outcomes)
    overall = figures(ids, scores, bands, outcomes, predict)
    recent_mask = np.array([bool(row[4]) for row in fetched], dtype=bool)
    recent = None
    if recent_mask.any():
        recent = figures(
            ids[recent_mask], scores[recent_mask], bands[recent_mask], outcomes[recent_mask], predict
        )
    result = {
        "as_of": as_of.isoformat(),
        "calibration_source": source,
        "recent_days": RECENT_DAYS,
        "all": overall,
        "recent": recent,
    }
    baseline = version.validity_reports.order_by("computed_at", "pk").first()
    flag = drop_flag(overall, recent, baseline)
    result["flag"] = flag
    return ValidityReport.objects.create(
        version=version,
        computed_at=as_of,
        n=overall["n"],
        positives=overall["positives"],
        auc=overall["auc"],
        auc_low=overall["auc_low"],
        auc_high=overall["auc_high"],
        result=result,
        flagged=flag is not None,
        flag_reason=describe_flag(flag) if flag else "",
    )


def drop_flag(overall, recent, baseline):
    """Why the validity looks dropped ({"code", …}), or None."""
    reference = (
        baseline.auc if baseline is not None and baseline.result.get("all", {}).get("trusted") else None
    )
    for window, figures_ in (("recent", recent), ("all", overall)):
        if not figures_ or not figures_["trusted"] or figures_["auc"] is None or reference is None:
            continue
        if figures_["auc"] <= reference - DROP and figures_["auc_high"] < reference:
            return {
                "code": "dropped",
                "window": window,
                "auc": figures_["auc"],
                "baseline": reference,
                "baseline_at": baseline.computed_at.isoformat(),
            }
    for window, figures_ in (("recent", recent), ("all", overall)):
        if figures_ and figures_["trusted"] and figures_["auc"] is not None and figures_["auc"] < CHANCE_AUC:
            return {"code": "chance", "window": window, "auc": figures_["auc"]}
    return None


def describe_flag(flag):
    """The flag in words, in the active language."""
    window = (
        _("on the outcomes of the last %(days)s days") % {"days": RECENT_DAYS}
        if flag["window"] == "recent"
        else _("on all known outcomes")
    )
    if flag["code"] == "dropped":
        return _("ROC AUC %(window)s fell to %(auc)s from %(baseline)s at its first report.") % {
            "window": window,
            "auc": flag["auc"],
            "baseline": flag["baseline"],
        }
    return _("ROC AUC %(window)s is %(auc)s: barely better than chance.") % {
        "window": window,
        "auc": flag["auc"],
    }


def check_validity(*, as_of=None):
    """A report for every active version not reported on within REPORT_EVERY; returns the new reports."""
    as_of = as_of or timezone.now()
    reports = []
    for version in ScoringVersion.objects.filter(status=ScoringVersion.Status.ACTIVE).select_related("model"):
        latest = version.validity_reports.order_by("-computed_at").first()
        if latest is not None and latest.computed_at > as_of - REPORT_EVERY:
            continue
        reports.append(compute_report(version, as_of=as_of))
    return reports


def history(version, limit=30):
    """The version's reports, oldest first, for a chart of validity over time: (computed_at, auc, low, high,
    flagged)."""
    reports = list(version.validity_reports.order_by("-computed_at", "-pk")[:limit])
    return [(r.computed_at, r.auc, r.auc_low, r.auc_high, r.flagged) for r in reversed(reports)]
