"""Thin adapters: take ids, call one action. Each is safe to run twice (see the actions)."""

from celery import shared_task

from . import importing


@shared_task(ignore_result=True, soft_time_limit=1700, time_limit=1800)
def run_import(job_id):
    importing.run_job(job_id=job_id)


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def sweep_imports():
    importing.sweep()
