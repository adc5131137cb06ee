"""Thin adapters: take ids, call one action. Each is safe to run twice (see the actions)."""

from celery import shared_task

from . import actions


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def route_lead(lead_id):
    actions.route_lead(lead_id=lead_id)


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def route_pending():
    actions.route_pending()


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def send_notification_emails():
    while actions.send_notification_emails():
        pass


@shared_task(ignore_result=True, soft_time_limit=50, time_limit=60)
def sla_tick():
    actions.sla_tick()
