"""Benchmark areas for `manage.py benchmark AREA`. Each returns a dict of figures; later issues add areas."""

import os
import time

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection, transaction

from leadcockpit.leads.models import Lead

from .seeding import DemoSeeder, wipe_demo_data

AREAS = {}


def area(name, help_text):
    def register(func):
        AREAS[name] = (func, help_text)
        return func

    return register


def database_mb() -> float:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return round(cursor.fetchone()[0] / 1024 / 1024, 1)
    if connection.vendor == "sqlite":
        name = settings.DATABASES["default"]["NAME"]
        return round(os.path.getsize(name) / 1024 / 1024, 1) if os.path.exists(str(name)) else 0.0
    return 0.0


@area("seed", "Time seed_demo at a given size (wipes existing leads with --reset).")
def seed(*, leads, touchpoints, seed, reset, out, **options):
    if Lead.objects.exists():
        if not reset:
            raise CommandError(
                "The database already holds leads; pass --reset to wipe them for the seed benchmark."
            )
        out(f"Wiping {Lead.objects.count():,} existing leads …")
        wipe_demo_data()
    out(f"Seeding {leads:,} leads with about {touchpoints:,} touchpoints on {connection.vendor} …")
    started = time.perf_counter()
    result = DemoSeeder(leads=leads, touchpoints=touchpoints, seed=seed).run()
    elapsed = time.perf_counter() - started
    size = database_mb()
    out(
        f"seed_demo: {elapsed:.1f} s ({result.leads / elapsed:,.0f} leads/s, {result.touchpoints / elapsed:,.0f} "
        f"touchpoints/s); database size {size:,.0f} MB"
    )
    return {
        "leads": result.leads,
        "touchpoints": result.touchpoints,
        "companies": result.companies,
        "stage_changes": result.stage_changes,
        "sales_activities": result.sales_activities,
        "seed_s": round(elapsed, 2),
        "db_mb": size,
    }


def _ensure_seeded(*, leads, touchpoints, seed, reset, out):
    """The benchmark's dataset: reuse the database's leads when their count matches (unless reset), else seed."""
    have = Lead.objects.count()
    if have == leads and not reset:
        out(f"Using the {have:,} leads already in the database.")
        return
    if have and not reset:
        raise CommandError(f"The database holds {have:,} leads, not {leads:,}; pass --reset to reseed.")
    if have:
        wipe_demo_data()
    out(f"Seeding {leads:,} leads with about {touchpoints:,} touchpoints …")
    started = time.perf_counter()
    DemoSeeder(leads=leads, touchpoints=touchpoints, seed=seed).run()
    out(f"  seeded in {time.perf_counter() - started:.1f} s")


def _peak_rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _start_worker():
    """A real Celery worker in its own process (solo pool), or None when tasks run in-process."""
    import subprocess
    import sys

    from leadcockpit.celery import app

    if app.conf.task_always_eager:
        return None
    worker = subprocess.Popen(  # noqa: S603 - our own worker, fixed arguments
        [
            sys.executable,
            "-m",
            "celery",
            "--app",
            "leadcockpit",
            "worker",
            "--pool",
            "solo",
            "--loglevel",
            "WARNING",
            "--without-heartbeat",
            "--without-gossip",
            "--without-mingle",
        ],
        cwd=settings.BASE_DIR,
    )
    time.sleep(3)  # let it connect before work is enqueued
    return worker


def _full_rescore_in_worker(version, out):
    """Activate `version` and let a real Celery worker run the full rescore; returns (job, seconds, peak RSS)."""
    from leadcockpit.scoring import actions
    from leadcockpit.scoring.models import RescoreJob

    worker = _start_worker()
    try:
        started = time.perf_counter()
        with transaction.atomic():
            job = actions.activate(version=version, reason="benchmark: full rescore")
        if worker is None:
            out("  (tasks run in-process: so does the rescore, and the RSS is this process's)")
            actions.run_rescore_job(job_id=job.pk)
        while True:
            job.refresh_from_db()
            if job.status in (RescoreJob.Status.DONE, RescoreJob.Status.FAILED):
                break
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        rss = _peak_rss_mb(worker.pid if worker else os.getpid())
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
    return job, elapsed, rss


@area(
    "scoring", "Full, naive, incremental and decay rescoring; worker RSS; longest lock (seeds when needed)."
)
def scoring(*, leads, touchpoints, seed, reset, out, **options):
    import random

    from django.db.models import F
    from django.utils import timezone

    from leadcockpit.leads.models import Touchpoint
    from leadcockpit.scoring import actions
    from leadcockpit.scoring.evaluator import evaluate
    from leadcockpit.scoring.models import DirtyLead, ScoringVersion

    _ensure_seeded(leads=leads, touchpoints=touchpoints, seed=seed, reset=reset, out=out)
    n_leads = Lead.objects.count()
    n_touchpoints = Touchpoint.objects.count()
    active = ScoringVersion.objects.filter(status="active").select_related("model").first()
    if active is None:  # a dataset seeded before scoring existed
        from leadcockpit.accounts.models import User
        from leadcockpit.scoring.defaults import create_default_model
        from leadcockpit.scoring.rescoring import rescore_all

        out("No active scoring model: loading the default one and scoring every lead first …")
        active = create_default_model(
            marketing_user=User.objects.get(username="marketing"),
            sales_user=User.objects.get(username="manager"),
        )
        rescore_all(advance_stages=False)
    from leadcockpit.accounts.models import User

    by = active.created_by or User.objects.filter(groups__name="marketing").first()

    # A changed draft, activated: every lead is rescored by the new version (what a model change costs). Changed
    # points and thresholds reuse the leads' accumulators; a changed matcher rebuilds them from every touchpoint.
    draft = actions.new_draft(model=active.model, by=by)
    draft.criteria.filter(label="Demo request").update(points=45)
    draft.mql_threshold = 95
    draft.save(update_fields=["mql_threshold"])
    out("Full rescore after activating a version with changed points and MQL threshold …")
    job, full_s, rss = _full_rescore_in_worker(draft, out)
    out(
        f"  {full_s:.1f} s for {job.scored:,} leads ({job.scored / full_s:,.0f} leads/s), {job.updated:,} changed; "
        f"worker peak RSS {rss} MB; longest chunk transaction {job.longest_chunk_s:.2f} s"
    )
    cold = actions.new_draft(model=active.model, by=by)
    cold.criteria.filter(kind="interest", half_life_days__isnull=False).update(
        half_life_days=F("half_life_days") + 1
    )
    out("Full rescore after activating a version with changed half-lives (accumulators rebuilt) …")
    cold_job, cold_s, cold_rss = _full_rescore_in_worker(cold, out)
    out(
        f"  {cold_s:.1f} s for {cold_job.scored:,} leads ({cold_job.scored / cold_s:,.0f} leads/s); worker peak RSS "
        f"{cold_rss} MB; longest chunk transaction {cold_job.longest_chunk_s:.2f} s"
    )
    draft = cold

    rng = random.Random(seed)
    ids = list(Lead.objects.values_list("pk", flat=True))
    criteria = list(draft.criteria.all())
    sample = rng.sample(ids, min(10_000, len(ids)))
    out(f"Naive per-lead ORM loop over {len(sample):,} leads …")
    started = time.perf_counter()
    now = timezone.now()
    for lead in Lead.objects.filter(pk__in=sample).select_related("company").iterator(chunk_size=2000):
        result = evaluate(lead, draft, as_of=now, criteria=criteria)
        lead.fit_score, lead.interest_score, lead.score = result.fit, result.interest, result.score
        lead.band, lead.temperature, lead.grade, lead.scored_at = (
            result.band,
            result.temperature,
            result.grade,
            now,
        )
        lead.save(
            update_fields=[
                "fit_score",
                "interest_score",
                "score",
                "band",
                "temperature",
                "grade",
                "scored_at",
            ]
        )
    naive_sample_s = time.perf_counter() - started
    naive_full_s = naive_sample_s * n_leads / len(sample)
    out(
        f"  {naive_sample_s:.1f} s, extrapolated to {n_leads:,} leads: {naive_full_s:,.0f} s "
        f"({naive_full_s / full_s:.0f}× the set-based rescore)"
    )

    def mark(lead_ids):
        # The marks alone, without enqueueing: the timing below is the rescore a worker would do.
        DirtyLead.objects.bulk_create([DirtyLead(lead_id=pk) for pk in lead_ids], ignore_conflicts=True)

    def drain():
        """What the rescore_dirty_leads task does: batch after batch until no lead is dirty. (ms, longest batch s)"""
        started, longest = time.perf_counter(), 0.0
        while True:
            batch_started = time.perf_counter()
            if not actions.rescore_dirty().scored:
                break
            longest = max(longest, time.perf_counter() - batch_started)
        return (time.perf_counter() - started) * 1000, longest

    mark(rng.sample(ids, min(1000, len(ids))))
    incremental_1k, lock_1k = drain()
    mark(rng.sample(ids, min(10_000, len(ids))))
    incremental_10k, lock_10k = drain()
    out(
        f"Incremental rescore: 1k dirty leads {incremental_1k:.0f} ms, 10k {incremental_10k:.0f} ms "
        f"(batches of {actions.DIRTY_BATCH:,}, the longest {lock_10k:.2f} s)"
    )

    fold_leads = rng.sample(ids, min(5000, len(ids)))
    Touchpoint.objects.bulk_create(
        Touchpoint(
            lead_id=pk,
            kind="page_view",
            url="https://www.solvaro.example/pricing",
            occurred_at=now,
            received_at=now,
        )
        for pk in fold_leads
    )
    mark(fold_leads)
    fold_ms, lock_fold = drain()
    out(f"Folding 5k new touchpoints into scores: {fold_ms:.0f} ms")

    ticks = {}
    for label, later in [("an hour later, as scheduled", timezone.timedelta(hours=1)), ("a day later", None)]:
        as_of = timezone.now() + (later or timezone.timedelta(days=1))
        started = time.perf_counter()
        ticks[label] = decay = actions.decay_tick(as_of=as_of)
        decay.seconds = time.perf_counter() - started
        out(
            f"Decay tick ({label}): {decay.seconds:.1f} s, {decay.scored:,} leads, {decay.recomputed:,} recomputed "
            f"from touchpoints, {decay.updated:,} written; longest chunk transaction {decay.longest_s:.2f} s"
        )
    hourly, daily = ticks.values()
    lock_s = max(
        job.longest_chunk_s,
        cold_job.longest_chunk_s,
        hourly.longest_s,
        daily.longest_s,
        lock_1k,
        lock_10k,
        lock_fold,
    )
    return {
        "leads": n_leads,
        "touchpoints": n_touchpoints,
        "full_rescore_s": round(full_s, 2),
        "leads_per_s": round(job.scored / full_s),
        "full_rescore_rebuild_s": round(cold_s, 2),
        "naive_sample": len(sample),
        "naive_extrapolated_s": round(naive_full_s, 1),
        "naive_ratio": round(naive_full_s / full_s, 1),
        "incremental_1k_ms": round(incremental_1k),
        "incremental_10k_ms": round(incremental_10k),
        "fold_5k_ms": round(fold_ms),
        "decay_tick_s": round(hourly.seconds, 2),
        "decay_tick_written": hourly.updated,
        "decay_day_s": round(daily.seconds, 2),
        "decay_day_written": daily.updated,
        "worker_peak_rss_mb": max(rss or 0, cold_rss or 0),
        "max_lock_hold_s": round(lock_s, 2),
    }


@area(
    "routing",
    "Routing a burst of 10k MQLs, the inbox with 500 open handovers, event-to-notification latency.",
)
def routing(*, leads, touchpoints, seed, reset, out, **options):
    import random
    import statistics
    import threading

    from django.db.models import Count
    from django.test import Client
    from django.utils import timezone

    from leadcockpit.accounts.models import User
    from leadcockpit.handover import actions
    from leadcockpit.handover.models import Handover, Notification, RepAvailability, TeamRouting
    from leadcockpit.leads.models import Touchpoint
    from leadcockpit.scoring.actions import mark_dirty

    from .seeding import demo_routing

    _ensure_seeded(leads=leads, touchpoints=touchpoints, seed=seed, reset=reset, out=out)
    demo_routing()  # a dataset seeded before routing existed has none
    rng = random.Random(seed)
    reps = list(User.objects.filter(groups__name="sales rep", team__isnull=False))
    for rep in reps:  # room for the whole burst: capacity is not what this measures
        RepAvailability.objects.update_or_create(rep=rep, defaults={"capacity": 30_000})
    TeamRouting.objects.update(strategy=TeamRouting.Strategy.ROUND_ROBIN)

    # A burst of 10k MQLs: marketing leads the scoring has just promoted, routed by two workers at once.
    burst = min(10_000, Lead.objects.filter(stage_id="mgl").count())
    ids = list(Lead.objects.filter(stage_id="mgl").order_by("?").values_list("pk", flat=True)[:burst])
    now = timezone.now()
    Lead.objects.filter(pk__in=ids).update(stage_id="mql", mql_at=now, stage_changed_at=now)
    before = set(Handover.objects.values_list("pk", flat=True))
    # Two routers at once where the database allows it (PostgreSQL, outside a test's transaction).
    parallel = 2 if connection.vendor == "postgresql" and not connection.in_atomic_block else 1
    out(f"Routing {burst:,} MQLs with {parallel} concurrent router(s) …")

    def router(part):
        # What the route_pending task does: batch after batch; locked leads are skipped, so routers share the work.
        try:
            actions.route_pending()
        finally:
            if parallel > 1:
                connection.close()

    started = time.perf_counter()
    if parallel == 1:
        router(0)
    else:
        threads = [threading.Thread(target=router, args=(part,)) for part in range(parallel)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    route_s = time.perf_counter() - started
    new = Handover.objects.exclude(pk__in=before)
    doubles = new.values("lead").annotate(n=Count("pk")).filter(n__gt=1).count()
    per_rep = {}
    for row in new.filter(rep__isnull=False).values("team", "rep").annotate(n=Count("pk")):
        per_rep.setdefault(row["team"], []).append(row["n"])
    spread = max((max(counts) - min(counts) for counts in per_rep.values()), default=0)
    routed = new.count()
    out(
        f"  {route_s:.1f} s ({routed / route_s:,.0f} leads/s), {routed:,} handovers, {doubles} leads assigned twice, "
        f"largest spread within a team {spread}"
    )

    # The inbox of a rep with 500 open handovers.
    rep = User.objects.get(username="rep")
    mine = list(
        Handover.objects.filter(rep=rep, status="open").order_by("due_at").values_list("pk", flat=True)
    )
    Handover.objects.filter(pk__in=mine[500:]).update(status="accepted", decided_at=now, decided_by=rep)
    client = Client(HTTP_HOST="localhost")
    client.force_login(rep)
    timings = []
    for index in range(210):
        started = time.perf_counter()
        response = client.get("/inbox/")
        if index >= 10:  # the first requests warm caches
            timings.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200
    timings.sort()
    inbox_p95 = timings[int(len(timings) * 0.95) - 1]
    out(
        f"Inbox with {min(len(mine), 500)} open handovers: median {statistics.median(timings):.0f} ms, "
        f"p95 {inbox_p95:.0f} ms over {len(timings)} requests ({Lead.objects.count():,} leads in the database)"
    )

    # Event -> score -> routed -> notification recorded, with a live worker. The burst's notification mails are
    # not part of that: they are marked sent and their queued tasks dropped, so the worker starts idle.
    from leadcockpit.celery import app

    Notification.objects.filter(emailed_at=None).update(emailed_at=timezone.now())
    if not app.conf.task_always_eager:
        app.control.purge()
    latencies = []
    worker = _start_worker()
    try:
        candidates = list(
            Lead.objects.filter(
                stage_id__in=["mgl", "nurturing"], band="yellow", score_is_mql=False, fit_score__gte=30
            )
            .exclude(pk__in=ids)
            .order_by("-score")
            .values_list("pk", flat=True)[:200]
        )
        out(f"Event to notification with {'a live worker' if worker else 'tasks in-process'} …")
        for lead_id in rng.sample(candidates, min(20, len(candidates))):
            started = time.perf_counter()
            at = timezone.now()
            with transaction.atomic():
                Touchpoint.objects.bulk_create(
                    Touchpoint(lead_id=lead_id, kind=kind, occurred_at=at, received_at=at)
                    for kind in ("demo_request", "demo_request", "trial_signup", "webinar_attendance")
                )
                mark_dirty(lead_ids=[lead_id])
            deadline = started + 30
            while time.perf_counter() < deadline:
                if Notification.objects.filter(handover__lead_id=lead_id).exists():
                    latencies.append(time.perf_counter() - started)
                    break
                if not worker:
                    break
                time.sleep(0.02)
    finally:
        if worker is not None:
            worker.terminate()
            worker.wait(timeout=30)
    latencies.sort()
    event_p95 = latencies[max(0, int(len(latencies) * 0.95) - 1)] if latencies else None
    out(
        f"  {len(latencies)} of 20 events reached a rep's notifications; p95 {event_p95 and round(event_p95, 2)} s"
    )
    return {
        "burst": burst,
        "route_10k_s": round(route_s, 2),
        "handovers": routed,
        "double_assignments": doubles,
        "team_spread": spread,
        "inbox_open_handovers": min(len(mine), 500),
        "inbox_p95_ms": round(inbox_p95, 1),
        "events_notified": len(latencies),
        "event_to_notified_p95_s": event_p95 and round(event_p95, 2),
    }


# The areas in modules of their own register themselves on import.
from . import bench_dashboards, bench_evidence, bench_import, bench_ingest, bench_whatif  # noqa: E402, F401
