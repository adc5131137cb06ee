"""Rescoring in the background: dirty leads, resumable full rescores, the decay tick, a real worker."""

import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from leadcockpit.leads.models import Lead
from leadcockpit.scoring import actions
from leadcockpit.scoring.defaults import create_default_model
from leadcockpit.scoring.models import DirtyLead, RescoreJob
from leadcockpit.scoring.rescoring import rescore_all

from .factories import CompanyFactory, LeadFactory, TouchpointFactory, UserFactory

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def model(db):
    return create_default_model(
        marketing_user=UserFactory(role="marketing"), sales_user=UserFactory(role="sales manager")
    )


def snapshot():
    """Scores per lead; floats to 1e-6, since parallel aggregation may sum in another order (last-bit noise)."""
    rows = Lead.objects.order_by("pk").values_list(
        "pk", "fit_score", "interest_score", "band", "grade", "stage_id"
    )
    return [(pk, round(fit, 6), round(interest, 6), *rest) for pk, fit, interest, *rest in rows]


@pytest.mark.django_db
def test_new_activity_marks_a_lead_dirty_and_the_task_rescores_it(
    model, django_capture_on_commit_callbacks, tasks_in_process
):
    lead = LeadFactory(company=CompanyFactory(industry="manufacturing"))
    TouchpointFactory(lead=lead, kind="demo_request", occurred_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        actions.mark_dirty(lead_ids=[lead.pk, lead.pk])
    assert len(callbacks) == 1  # the task runs in-process on the embedded default
    lead.refresh_from_db()
    assert lead.score == pytest.approx(75, abs=0.1)  # industry 20 + size 15 + demo 40
    assert not DirtyLead.objects.exists()


@pytest.mark.django_db
def test_rescoring_dirty_leads_twice_does_nothing_more(model):
    lead = LeadFactory()
    actions.mark_dirty(lead_ids=[lead.pk])
    assert actions.rescore_dirty().scored == 1
    assert actions.rescore_dirty().scored == 0


@pytest.mark.django_db
def test_a_lead_marked_again_while_it_is_rescored_stays_marked_for_the_next_run(model, monkeypatch):
    """The worker's claim commits before it rescores; a mark made meanwhile (the rescore may not have seen the
    new activity) flags the claimed mark, which no second worker takes while the first is at it, and which the
    first releases, rather than forgets, when it is done."""
    lead = LeadFactory()
    actions.mark_dirty(lead_ids=[lead.pk])
    rescore = actions.rescore
    seen = []

    def rescore_while_new_activity_arrives(**kwargs):
        assert DirtyLead.objects.get(lead=lead).claimed_at is not None  # claimed, and committed
        actions.mark_dirty(lead_ids=[lead.pk])
        mark = DirtyLead.objects.get(lead=lead)
        seen.append((mark.claimed_at is not None, mark.remarked))
        monkeypatch.setattr(actions, "rescore", rescore)
        seen.append(actions.rescore_dirty().scored)  # a second worker: the lead is not its to take
        return rescore(**kwargs)

    monkeypatch.setattr(actions, "rescore", rescore_while_new_activity_arrives)
    assert actions.rescore_dirty().scored == 1
    assert seen == [(True, True), 0]
    mark = DirtyLead.objects.get(lead=lead)
    assert (mark.claimed_at, mark.remarked) == (None, False)  # released for the next run
    assert actions.rescore_dirty().scored == 1
    assert not DirtyLead.objects.exists()


@pytest.mark.django_db
def test_a_failed_rescore_gives_its_claims_back_and_a_dead_workers_claim_is_taken_again(model, monkeypatch):
    lead = LeadFactory()
    actions.mark_dirty(lead_ids=[lead.pk])

    def fails(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(actions, "rescore", fails)
    with pytest.raises(RuntimeError):
        actions.rescore_dirty()
    assert DirtyLead.objects.get(lead=lead).claimed_at is None
    monkeypatch.undo()
    actions.mark_dirty(lead_ids=[lead.pk])  # marking an unclaimed lead again flags nothing
    assert not DirtyLead.objects.get(lead=lead).remarked

    # Claimed by a worker that is still at it: left alone. Claimed by one that died long ago: taken again.
    DirtyLead.objects.update(claimed_at=timezone.now() - timedelta(seconds=30))
    assert actions.rescore_dirty().scored == 0
    DirtyLead.objects.update(claimed_at=timezone.now() - actions.CLAIM_TIMEOUT - timedelta(seconds=1))
    assert actions.rescore_dirty().scored == 1
    assert not DirtyLead.objects.exists()


@pytest.mark.django_db
def test_a_full_rescore_stopped_after_one_chunk_resumes_to_the_same_result(model):
    for i in range(12):
        lead = LeadFactory(company=CompanyFactory(industry="manufacturing" if i % 2 else "retail"))
        TouchpointFactory(lead=lead, kind="demo_request", occurred_at=NOW - timedelta(days=i))
    job = actions.start_full_rescore(reason="test", as_of=NOW)
    actions.run_rescore_job(job_id=job.pk, chunk_size=5, max_chunks=1)  # the worker "dies" here
    job.refresh_from_db()
    assert job.status == "running"
    assert 0 < job.percent < 100
    actions.run_rescore_job(job_id=job.pk, chunk_size=5)
    job.refresh_from_db()
    assert (job.status, job.percent, job.scored) == ("done", 100, 12)
    resumed = snapshot()
    Lead.objects.update(fit_score=0, interest_score=0, score=0, band="red", grade="", scored_at=None)
    rescore_all(as_of=NOW)
    assert snapshot() == resumed
    actions.run_rescore_job(job_id=job.pk)  # a duplicate message after completion is a no-op
    job.refresh_from_db()
    assert job.status == "done"


@pytest.mark.django_db
def test_decay_tick_decays_accumulators_without_reading_touchpoints_and_writes_only_changed_leads(model):
    active = LeadFactory(company=CompanyFactory(industry="manufacturing"))
    TouchpointFactory(lead=active, kind="demo_request", occurred_at=NOW)
    quiet = LeadFactory(company=CompanyFactory(industry="manufacturing"))
    first = rescore_all(as_of=NOW)
    assert first.recomputed == 2  # no accumulators yet: both built from touchpoints
    result = actions.decay_tick(as_of=NOW + timedelta(days=45))
    assert (result.scored, result.recomputed, result.updated) == (2, 0, 1)
    active.refresh_from_db()
    quiet.refresh_from_db()
    assert active.interest_score == pytest.approx(20)  # 40 halved after one half-life
    assert quiet.scored_at == NOW


@pytest.mark.django_db
def test_sweep_reenqueues_what_a_lost_message_left(model, tasks_in_process):
    lead = LeadFactory()
    DirtyLead.objects.create(lead=lead)  # marked, but its message never arrived
    job = RescoreJob.objects.create(
        reason="lost", as_of=NOW, first_id=lead.pk, next_id=lead.pk, last_id=lead.pk
    )
    actions.sweep()  # tasks run in-process on the embedded default
    job.refresh_from_db()
    assert job.status == "done"
    assert not DirtyLead.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_killing_the_worker_mid_job_and_starting_again_gives_the_same_result():
    from leadcockpit.demo.seeding import DemoSeeder

    DemoSeeder(leads=3000, touchpoints=30000, seed=9, today=NOW.date()).run()
    low, high = Lead.objects.order_by("pk").first().pk, Lead.objects.order_by("pk").last().pk
    # The job row alone, not enqueued: only the process below works on it.
    job = RescoreJob.objects.create(reason="kill test", as_of=NOW, first_id=low, next_id=low, last_id=high)
    env = {**os.environ, "DATABASE_URL": _database_url()}
    # Each chunk lingers inside its transaction, so the kill lands while one holds lead rows.
    code = (
        "import time, django; django.setup(); from leadcockpit.scoring import actions; "
        "score = actions.rescore; "
        "actions.rescore = lambda **kw: (score(**kw), time.sleep(0.3))[0]; "
        f"actions.run_rescore_job(job_id={job.pk}, chunk_size=100)"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env={**env, "DJANGO_SETTINGS_MODULE": "leadcockpit.settings"}
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        job.refresh_from_db()
        if job.next_id > job.first_id + 300:
            break
        time.sleep(0.05)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    job.refresh_from_db()
    assert job.status == "running"
    assert job.percent < 100, "the job finished before the kill; make it larger"
    # Until PostgreSQL notices the dead client, its backend still holds the job row; a resumer skips a locked
    # row instead of waiting (as the periodic sweep would, it simply tries again).
    deadline = time.monotonic() + 30
    while job.status != "done" and time.monotonic() < deadline:
        actions.run_rescore_job(job_id=job.pk, chunk_size=500)
        job.refresh_from_db()
        time.sleep(0.1)
    assert job.status == "done"
    resumed = snapshot()
    Lead.objects.update(fit_score=0, interest_score=0, score=0, band="red", grade="", scored_at=None)
    rescore_all(as_of=NOW, advance_stages=False)
    assert snapshot() == resumed


def _database_url():
    db = settings.DATABASES["default"]
    return f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{connection.settings_dict['NAME']}"


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_a_real_worker_rescores_a_lead_marked_dirty():
    from celery.contrib.testing.worker import start_worker

    from leadcockpit.celery import app
    from leadcockpit.demo.seeding import ensure_reference_data

    ensure_reference_data()  # transactional tests start from a flushed database

    model = create_default_model(
        marketing_user=UserFactory(role="marketing"), sales_user=UserFactory(role="sales manager")
    )
    assert model.status == "active"
    lead = LeadFactory(company=CompanyFactory(industry="manufacturing"))
    TouchpointFactory(lead=lead, kind="demo_request", occurred_at=timezone.now())
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        actions.mark_dirty(lead_ids=[lead.pk])  # autocommit: enqueued at once, through Redis
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            lead.refresh_from_db()
            if lead.scored_at:
                break
            time.sleep(0.1)
    assert lead.score == pytest.approx(75, abs=0.1)  # industry 20 + size 15 + demo 40
    assert not DirtyLead.objects.exists()


@pytest.mark.django_db
def test_decay_tick_leaves_a_lead_whose_interest_moved_less_than_the_tolerance(model):
    lead = LeadFactory(company=CompanyFactory(industry="manufacturing"))
    TouchpointFactory(lead=lead, kind="demo_request", occurred_at=NOW)
    rescore_all(as_of=NOW)
    # 40 points with a 45-day half-life lose 0.03 in an hour: below the tolerance, the lead is not rewritten and
    # its stored score stays exactly what it was as of its scored_at.
    assert actions.decay_tick(as_of=NOW + timedelta(hours=1)).updated == 0
    lead.refresh_from_db()
    assert (lead.scored_at, lead.interest_score) == (NOW, 40)
    # A day later it has lost 0.61 points: written.
    assert actions.decay_tick(as_of=NOW + timedelta(days=1)).updated == 1
    lead.refresh_from_db()
    assert lead.scored_at == NOW + timedelta(days=1)
    assert lead.interest_score == pytest.approx(40 * 0.5 ** (1 / 45))
