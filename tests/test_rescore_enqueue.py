"""Marking leads dirty sends one rescore message while one waits in the queue, and a new one once it started."""

import pytest
import redis
from django.conf import settings

from leadcockpit.celery import app
from leadcockpit.scoring import actions, tasks

from .factories import LeadFactory


@pytest.fixture
def queue(transactional_db):
    """The broker's default queue, emptied before and after, with the enqueued flag forgotten."""
    from leadcockpit.demo.seeding import ensure_reference_data

    ensure_reference_data()  # transactional tests start from a flushed database
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    name = app.conf.task_default_queue
    client.delete(name)
    actions.forget_dirty_enqueued()
    yield lambda: client.llen(name)
    client.delete(name)
    actions.forget_dirty_enqueued()


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_marks_while_a_rescore_is_queued_share_its_message_and_a_started_one_needs_a_new_one(queue):
    first, second, third = LeadFactory(), LeadFactory(), LeadFactory()

    actions.mark_dirty(lead_ids=[first.pk])  # autocommit: enqueued at once, through Redis
    actions.mark_dirty(lead_ids=[second.pk])
    assert queue() == 1

    tasks.rescore_dirty_leads()  # what the worker does with that message: it forgets the flag, then drains
    actions.mark_dirty(lead_ids=[third.pk])
    assert queue() == 2


@pytest.mark.redis
@pytest.mark.django_db(transaction=True)
def test_the_sweep_enqueues_even_when_the_flag_says_a_message_is_queued(queue):
    actions.mark_dirty(lead_ids=[LeadFactory().pk])
    assert queue() == 1

    actions.sweep()  # that message may be the one Redis lost

    assert queue() == 2
