"""The worker wiring: a real Celery worker consumes from the real Redis and records its heartbeat in the database."""

import time
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from leadcockpit.core.actions import record_heartbeat
from leadcockpit.core.models import WorkerHeartbeat


@pytest.mark.django_db
def test_health_reports_database_cache_and_worker(client):
    response = client.get(reverse("health"))
    assert response.status_code == 200
    assert response.json() == {
        "database": "ok",
        "cache": "ok",
        "worker": "unknown",
        "worker_last_seen_s": None,
    }
    record_heartbeat(worker="celery@a", at=timezone.now() - timedelta(seconds=30))
    assert client.get(reverse("health")).json()["worker"] == "ok"
    record_heartbeat(worker="celery@a", at=timezone.now() - timedelta(hours=1))
    assert client.get(reverse("health")).json()["worker"] == "stale"
    assert WorkerHeartbeat.objects.count() == 1  # an upsert, safe to run twice


@pytest.mark.django_db
def test_health_refuses_writes(client):
    assert client.post(reverse("health")).status_code == 405


@pytest.mark.django_db
def test_heartbeat_task_runs_in_process_on_the_embedded_default(settings):
    from leadcockpit.core.tasks import heartbeat

    heartbeat.apply()
    assert WorkerHeartbeat.objects.get().worker == "in-process"


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_real_worker_consumes_a_task_from_redis():
    from celery.contrib.testing.worker import start_worker

    from leadcockpit.celery import app
    from leadcockpit.core.tasks import heartbeat

    assert not app.conf.task_always_eager
    with start_worker(app, pool="solo", perform_ping_check=False, shutdown_timeout=10):
        heartbeat.delay()
        deadline = time.monotonic() + 20
        while not WorkerHeartbeat.objects.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
    beat = WorkerHeartbeat.objects.get()
    assert beat.worker != "in-process"  # it ran in the worker, not eagerly in this process
    assert timezone.now() - beat.beat_at < timedelta(minutes=1)
