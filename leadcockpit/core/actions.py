from django.utils import timezone

from .models import WorkerHeartbeat


def record_heartbeat(*, worker: str, at=None) -> WorkerHeartbeat:
    """Upsert the worker's heartbeat row; running it twice just moves the timestamp."""
    heartbeat, _ = WorkerHeartbeat.objects.update_or_create(
        worker=worker[:200], defaults={"beat_at": at or timezone.now()}
    )
    return heartbeat
