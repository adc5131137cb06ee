from celery import shared_task

from . import actions


@shared_task(bind=True, ignore_result=True, soft_time_limit=20, time_limit=30)
def heartbeat(self):
    worker = "in-process" if self.request.is_eager else (self.request.hostname or "unknown")
    actions.record_heartbeat(worker=worker)
