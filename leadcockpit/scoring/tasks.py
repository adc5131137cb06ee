"""Thin adapters: take ids, call one action. Each is safe to run twice (see the actions)."""

from celery import shared_task
from django.conf import settings
from django.utils.module_loading import import_string

from . import actions


def _after(result):
    """Leads that became MQLs are handed on: scoring knows nothing of routing, settings name the next task."""
    if result.new_mqls and settings.SCORING_NEW_MQLS_TASK:
        import_string(settings.SCORING_NEW_MQLS_TASK).delay()
    return result


@shared_task(ignore_result=True, soft_time_limit=120, time_limit=150)
def rescore_dirty_leads():
    actions.forget_dirty_enqueued()  # before claiming: a mark committed after this asks for the next run
    # Drain in batches; a huge backlog is finished by the next sweep rather than by one endless task.
    for _ in range(20):
        if not _after(actions.rescore_dirty()).scored:
            return


@shared_task(ignore_result=True, soft_time_limit=3300, time_limit=3600)
def run_rescore_job(job_id):
    actions.run_rescore_job(job_id=job_id)


@shared_task(ignore_result=True, soft_time_limit=1700, time_limit=1800)
def decay_tick():
    actions.decay_tick()


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def sweep_rescoring():
    actions.sweep()


@shared_task(ignore_result=True, soft_time_limit=280, time_limit=300)
def run_preview(preview_id):
    from . import whatif

    whatif.run_preview(preview_id)


@shared_task(ignore_result=True, soft_time_limit=1700, time_limit=1800)
def run_learning(run_id):
    from . import learning

    learning.run_learning(run_id=run_id)


@shared_task(ignore_result=True, soft_time_limit=1700, time_limit=1800)
def check_evidence():
    from . import learning, validity

    learning.sweep_learning()
    validity.check_validity()


@shared_task(ignore_result=True, soft_time_limit=1700, time_limit=1800)
def compute_validity(version_id):
    """A validity report for one version on demand (the workbench asks for a draft's beside the active one)."""
    from . import validity
    from .models import ScoringVersion

    version = ScoringVersion.objects.filter(pk=version_id).select_related("model").first()
    if version is not None:
        validity.compute_report(version)
