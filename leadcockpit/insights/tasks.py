"""Thin adapters around the rollup verbs. Each is safe to run twice: a refresh that finds another running leaves."""

from celery import shared_task

from . import rollups


@shared_task(ignore_result=True, soft_time_limit=280, time_limit=300)
def refresh_rollups():
    rollups.refresh()


@shared_task(ignore_result=True, soft_time_limit=3300, time_limit=3600)
def rebuild_rollups():
    rollups.rebuild()
