"""Thin adapters around the rollup verbs. Each is safe to run twice: a refresh that finds another running leaves."""

from celery import shared_task

from . import credits, rollups


@shared_task(ignore_result=True, soft_time_limit=280, time_limit=300)
def refresh_rollups():
    rollups.refresh()


@shared_task(ignore_result=True, soft_time_limit=3300, time_limit=3600)
def rebuild_rollups():
    rollups.rebuild()


# Attribution credits (credits.py): refreshed like the rollups, on their own state row.
@shared_task(ignore_result=True, soft_time_limit=280, time_limit=300)
def refresh_credits():
    credits.refresh()


@shared_task(ignore_result=True, soft_time_limit=3300, time_limit=3600)
def rebuild_credits():
    credits.rebuild()
