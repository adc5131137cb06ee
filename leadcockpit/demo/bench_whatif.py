"""`manage.py benchmark whatif`: the what-if preview of a changed draft against every lead, and the backtest.

Three drafts are copied from the active version and previewed (whatif.compute) as the workbench's worker does:
the common edit (changed points, a changed fit criterion, a lower MQL threshold: every interest sum comes from
the leads' accumulators), a draft adding an interest criterion with a new matcher (its sums come from every
touchpoint of every lead), and the backtest alone (whatif.backtest) over the leads whose outcome is known. The
drafts are deleted afterwards, so the database is left as it was found.

Beside wall time, each figure has its CPU time in one serial run (the database backend's, read from /proc where
the server is local, plus this process's): on a shared machine the wall time includes waiting for a core.
"""

import os
import statistics
import time

from django.db import connection
from django.utils import timezone

from leadcockpit.leads.models import Lead, Touchpoint

from .benchmarks import _ensure_seeded, area

RUNS = 3  # each preview is timed this often; the median is the figure, every run is listed
TARGET_OUTCOMES = 100_000


def _backend_cpu():
    """CPU seconds the database backend serving this connection has used, where the server is local and its
    /proc readable; else None. On a shared machine wall time includes waiting for a core; CPU time does not."""
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        pid = cursor.fetchone()[0]
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _timed(func, runs=RUNS):
    """(median wall seconds, [each run's wall seconds], CPU seconds of one serial run or None, the last result).

    The CPU figure comes from one more run with parallel query off (the time of parallel workers is not the
    backend's): the database backend's CPU plus this process's, one core's worth of work.
    """
    seconds, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = func()
        seconds.append(time.perf_counter() - started)
    cpu = None
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SET max_parallel_workers_per_gather = 0")
        try:
            backend, python = _backend_cpu(), time.process_time()
            func()
            after = _backend_cpu()
            if backend is not None and after is not None:
                cpu = round(after - backend + time.process_time() - python, 2)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET max_parallel_workers_per_gather")
    return statistics.median(seconds), [round(s, 3) for s in seconds], cpu, result


def _slowest_statements(func, top=4):
    """Run func once, recording each SQL statement's time: the `top` slowest as (seconds, start of the SQL)."""
    timings = []

    def record(execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            timings.append((time.perf_counter() - started, " ".join(sql.split())[:90]))

    with connection.execute_wrapper(record):
        func()
    return sorted(timings, reverse=True)[:top]


def _ensure_scored(out):
    """The active version, with every lead scored by it (the seed does that; an older dataset may need it)."""
    from leadcockpit.scoring.models import ScoringVersion
    from leadcockpit.scoring.rescoring import rescore_all

    active = ScoringVersion.objects.filter(status="active").select_related("model").first()
    if active is None:
        from leadcockpit.accounts.models import User
        from leadcockpit.scoring.defaults import create_default_model

        out("No active scoring model: loading the default one …")
        active = create_default_model(
            marketing_user=User.objects.filter(username="marketing").first(),
            sales_user=User.objects.filter(username="manager").first(),
        )
        if active.status != ScoringVersion.Status.ACTIVE:
            ScoringVersion.objects.filter(pk=active.pk).update(
                status=ScoringVersion.Status.ACTIVE, activated_at=timezone.now()
            )
            active.refresh_from_db()
    unscored = Lead.objects.filter(scored_at__isnull=True).count()
    if unscored:
        out(f"{unscored:,} leads are not scored yet: scoring every lead first …")
        rescore_all(advance_stages=False)
    return active, unscored


def _draft(active, edit):
    from leadcockpit.scoring import actions

    draft = actions.new_draft(model=active.model, by=None, from_version=active, note="benchmark: what-if")
    edit(draft)
    return draft


def common_edit(draft):
    """What marketing usually changes: points, a fit criterion's condition and points, the MQL threshold."""
    interest = draft.criteria.filter(kind="interest").order_by("position", "pk").first()
    fit = draft.criteria.filter(kind="fit").order_by("position", "pk")
    if interest is not None:
        interest.points = interest.points + 5
        interest.save(update_fields=["points"])
    for criterion in fit[:2]:
        criterion.points = criterion.points + 5
        criterion.save(update_fields=["points"])
    ranged = fit.filter(operator="range").first()
    if ranged is not None and ranged.value.get("min") is not None:
        ranged.value = {**ranged.value, "min": ranged.value["min"] * 2}
        ranged.save(update_fields=["value"])
    draft.mql_threshold = draft.mql_threshold - 5
    draft.save(update_fields=["mql_threshold"])


def new_matcher_edit(draft):
    """The common edit plus an interest criterion no active criterion counts: page views of customer stories."""
    common_edit(draft)
    position = max(draft.criteria.values_list("position", flat=True), default=0) + 1
    draft.criteria.create(
        kind="interest",
        position=position,
        label="Customer stories (benchmark)",
        touchpoint_kinds=["page_view"],
        url_contains="/customers",
        points=6,
        cap=24,
        half_life_days=20,
    )


@area(
    "whatif",
    "What-if preview of a changed draft (accumulators reused, and with a new matcher) and the backtest.",
)
def whatif_area(*, leads, touchpoints, seed, reset, out, **options):
    from leadcockpit.scoring import whatif
    from leadcockpit.scoring.models import LeadSignals
    from leadcockpit.scoring.rescoring import interest_signature

    _ensure_seeded(leads=leads, touchpoints=touchpoints, seed=seed, reset=reset, out=out)
    active, unscored = _ensure_scored(out)
    n_leads = Lead.objects.count()
    n_touchpoints = Touchpoint.objects.count()
    with_accumulators = LeadSignals.objects.filter(
        signature=interest_signature(active.criteria.all())
    ).count()
    out(
        f"{n_leads:,} leads, {n_touchpoints:,} touchpoints on {connection.vendor}; {with_accumulators:,} leads "
        f"have accumulators of the active version ({active})"
    )
    drafts = []
    try:
        common = _draft(active, common_edit)
        drafts.append(common)
        out(f"What-if of the common edit (points, a fit criterion, MQL threshold), {RUNS} runs …")
        whatif_s, whatif_runs, whatif_cpu, preview = _timed(lambda: whatif.compute(common))
        out(
            f"  median {whatif_s:.2f} s (runs {whatif_runs}; CPU {whatif_cpu} s); {preview['scope']:,} leads in scope, "
            f"{preview['changed_total']:,} would change band, {preview['sides']['draft']['mql_at_activation']:,} "
            f"would become MQLs at once"
        )
        for seconds, sql in _slowest_statements(lambda: whatif.compute(common)):
            out(f"    {seconds:6.3f} s  {sql}")

        fresh = _draft(active, new_matcher_edit)
        drafts.append(fresh)
        out(f"What-if of a draft with a new interest matcher (every touchpoint scanned), {RUNS} runs …")
        new_matcher_s, new_matcher_runs, new_matcher_cpu, fresh_preview = _timed(
            lambda: whatif.compute(fresh)
        )
        out(f"  median {new_matcher_s:.2f} s (runs {new_matcher_runs}; CPU {new_matcher_cpu} s)")
        for seconds, sql in _slowest_statements(lambda: whatif.compute(fresh)):
            out(f"    {seconds:6.3f} s  {sql}")

        out(f"Backtest alone over the leads with a known outcome, {RUNS} runs …")
        backtest_s, backtest_runs, backtest_cpu, backtest = _timed(lambda: whatif.backtest(common))
        outcomes = backtest["n"]
        if outcomes >= TARGET_OUTCOMES:
            backtest_100k_s = backtest_s
            basis = f"measured over {outcomes:,} outcome leads (at least 100k: an upper bound)"
        else:
            backtest_100k_s = backtest_s * TARGET_OUTCOMES / outcomes if outcomes else None
            basis = (
                f"EXTRAPOLATED linearly from {outcomes:,} outcome leads, not measured: seed about "
                f"{n_leads * TARGET_OUTCOMES // max(outcomes, 1):,} leads to measure it"
            )
        out(
            f"  median {backtest_s:.2f} s (CPU {backtest_cpu} s) for {outcomes:,} outcome leads ({backtest['positives']:,} converted); "
            f"AUC draft {backtest['draft']['auc']} vs active {backtest['active']['auc']}"
        )
        out(f"  100k outcome leads: {backtest_100k_s and round(backtest_100k_s, 2)} s, {basis}")
    finally:
        for draft in drafts:
            draft.delete()  # its criteria and previews go with it
    return {
        "scope": preview["scope"],
        "leads_in_db": n_leads,
        "touchpoints_in_db": n_touchpoints,
        "unscored_before": unscored,
        "leads_with_accumulators": with_accumulators,
        "whatif_s": round(whatif_s, 2),
        "whatif_runs_s": whatif_runs,
        "whatif_cpu_s": whatif_cpu,
        "changed_band": preview["changed_total"],
        "mql_at_activation": preview["sides"]["draft"]["mql_at_activation"],
        "whatif_new_matcher_s": round(new_matcher_s, 2),
        "whatif_new_matcher_runs_s": new_matcher_runs,
        "whatif_new_matcher_cpu_s": new_matcher_cpu,
        "new_matcher_changed_band": fresh_preview["changed_total"],
        "backtest_leads": outcomes,
        "backtest_positives": backtest["positives"],
        "backtest_s": round(backtest_s, 2),
        "backtest_runs_s": backtest_runs,
        "backtest_cpu_s": backtest_cpu,
        "backtest_100k_s": backtest_100k_s and round(backtest_100k_s, 2),
        "backtest_100k_basis": basis,
        "auc_draft": backtest["draft"]["auc"],
        "auc_active": backtest["active"]["auc"],
    }
