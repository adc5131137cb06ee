"""The two ingest paths agree: the set-based statement for events whose leads are known (PostgreSQL) and the
full path that also creates leads, recognises other spellings and merges. Random event mixes go through both,
from the same starting state, and must leave the same touchpoints, dirty marks and counts."""

import random
import uuid
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.utils import timezone

from leadcockpit.capture import actions
from leadcockpit.capture.api import EventIn
from leadcockpit.capture.models import Visitor
from leadcockpit.leads.models import Lead, Touchpoint
from leadcockpit.scoring.models import DirtyLead

from .factories import LeadFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]


def _state():
    """Leads named by their address (a rolled-back run still used up sequence numbers)."""
    touchpoints = sorted(
        Touchpoint.objects.values_list(
            "client_event_id", "lead__email", "visitor_id", "kind", "url", "properties"
        ),
        key=str,
    )
    dirty = sorted(DirtyLead.objects.values_list("lead__email", flat=True))
    visitors = sorted(Visitor.objects.values_list("visitor_id", "lead__email"))
    return touchpoints, dirty, sorted(Lead.objects.values_list("email", flat=True)), visitors


def _events(rng, leads, replays):
    now = timezone.now()
    visitors = [f"v{n}" for n in range(4)]
    events = []
    for _ in range(rng.randint(1, 12)):
        lead = rng.choice(leads)
        shape = rng.random()
        fields = {
            "event_id": str(uuid.uuid4()),
            "type": rng.choice(["page_view", "content_download", "demo_request"]),
            "occurred_at": (now - timedelta(minutes=rng.randint(0, 600))).isoformat(),
            "url": f"https://www.example.com/{rng.randint(1, 5)}",
            "properties": {"n": rng.randint(1, 9)},
        }
        if shape < 0.35:
            fields["email"] = lead.email.upper() if rng.random() < 0.3 else lead.email
        elif shape < 0.5:
            fields["external_id"] = lead.external_id
        elif shape < 0.6 and replays:
            fields = dict(rng.choice(replays))  # a replay of an earlier event
        elif shape < 0.65:
            fields["email"] = f"new{rng.randint(1, 3)}@firma.example"  # unknown: the full path
        else:
            pass
        if rng.random() < 0.6 or not (fields.get("email") or fields.get("external_id")):
            fields["visitor_id"] = rng.choice(visitors)
        events.append(fields)
    if rng.random() < 0.2:
        events.append(dict(events[0]))  # the same event twice in one batch
    return events


@pytest.mark.parametrize("seed", range(25))
def test_the_set_based_and_the_full_ingest_leave_the_same_state(seed):
    rng = random.Random(seed)
    leads = [LeadFactory(external_id=f"crm-{n}") for n in range(3)]
    replays, outcomes = [], []
    for _round in range(3):
        raw = _events(rng, leads, replays)
        events = [EventIn.model_validate(e) for e in raw]
        results = {}
        for name, run in [("fast", actions.ingest), ("full", actions._ingest)]:
            with transaction.atomic():
                result = run(events=events, now=timezone.now())
                results[name] = ((result.accepted, result.duplicates), _state())
                transaction.set_rollback(True)
        fast, full = results["fast"], results["full"]
        assert fast[0] == full[0], raw
        only_fast = {repr(t) for t in fast[1][0]} - {repr(t) for t in full[1][0]}
        only_full = {repr(t) for t in full[1][0]} - {repr(t) for t in fast[1][0]}
        assert (only_fast, only_full) == (set(), set()), raw
        assert fast == full, raw
        outcomes.append(results["fast"])
        actions._ingest(events=events)  # move on from the same state
        replays += raw
    assert any(o[0][0] for o in outcomes)


def test_a_visitor_identified_earlier_brings_later_anonymous_visits_to_their_lead():
    lead = LeadFactory()
    now = timezone.now().isoformat()

    def visit(**who):
        event = {
            "event_id": str(uuid.uuid4()),
            "type": "page_view",
            "occurred_at": now,
            "visitor_id": "v-7",
            **who,
        }
        return EventIn.model_validate(event)

    actions.ingest(events=[visit()])  # anonymous
    actions.ingest(events=[visit(email=lead.email)])  # identifies; the earlier visit joins
    actions.ingest(events=[visit()])  # a later page view: the lead's, not anonymous
    actions._ingest(events=[visit()])  # the full path agrees

    assert list(Touchpoint.objects.values_list("lead_id", flat=True).distinct()) == [lead.pk]
    assert Visitor.objects.get().lead == lead


def test_an_event_for_a_known_lead_is_one_prepared_statement_and_no_orm_query(django_assert_num_queries):
    lead = LeadFactory()
    event = EventIn.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "type": "page_view",
            "occurred_at": timezone.now().isoformat(),
            "email": lead.email,
            "visitor_id": "v1",
        }
    )
    assert connection.vendor == "postgresql"
    with django_assert_num_queries(0):  # the statement runs on a cursor of its own, outside Django's count
        result = actions.ingest(events=[event])
    assert (result.accepted, result.duplicates) == (1, 0)
    assert Touchpoint.objects.get().lead == lead
    assert DirtyLead.objects.filter(lead=lead).exists()
    with django_assert_num_queries(0):
        assert actions.ingest(events=[event]).duplicates == 1


def test_an_event_for_a_lead_a_worker_is_rescoring_flags_the_claimed_mark():
    """The worker may have read the lead's touchpoints before this event: its mark must outlive the rescore."""
    lead = LeadFactory()
    DirtyLead.objects.create(lead=lead, claimed_at=timezone.now())
    event = EventIn.model_validate(
        {"event_id": str(uuid.uuid4()), "type": "page_view", "occurred_at": timezone.now().isoformat(),
         "email": lead.email}
    )  # fmt: skip
    assert actions.ingest(events=[event]).accepted == 1
    mark = DirtyLead.objects.get(lead=lead)
    assert mark.claimed_at is not None  # still the worker's: no second worker takes it meanwhile
    assert mark.remarked  # ... which releases it for the next run instead of forgetting it


def test_events_naming_a_merged_leads_former_address_or_id_reach_the_kept_lead():
    from leadcockpit.leads.actions import merge_leads

    kept = LeadFactory(external_id="crm-kept")
    gone = LeadFactory(email="old@firma.example", external_id="crm-gone")
    merge_leads(keep=kept, duplicate=gone, system="test", reason="same person")
    now = timezone.now().isoformat()
    events = [
        EventIn.model_validate(
            {"event_id": str(uuid.uuid4()), "type": "page_view", "occurred_at": now, **who}
        )
        for who in [{"external_id": "crm-gone"}, {"email": "old@firma.example"}]
    ]
    for event in events:  # one at a time: either alone must find its way
        assert actions.ingest(events=[event]).accepted == 1

    assert set(Touchpoint.objects.values_list("lead_id", flat=True)) == {kept.pk}


def test_an_address_with_a_merged_leads_former_id_merges_the_leads_on_both_paths():
    from leadcockpit.leads.actions import merge_leads

    known = LeadFactory(email="anna@firma.example")
    kept = LeadFactory(external_id="crm-kept")
    gone = LeadFactory(email="old@firma.example", external_id="crm-gone")
    merge_leads(keep=kept, duplicate=gone, system="test", reason="same person")
    event = EventIn.model_validate(
        {
            "event_id": str(uuid.uuid4()),
            "type": "page_view",
            "occurred_at": timezone.now().isoformat(),
            "email": known.email,
            "external_id": "crm-gone",
        }
    )

    assert actions.ingest(events=[event]).accepted == 1

    survivor = Lead.objects.get(pk__in=[known.pk, kept.pk])  # the two are one lead now, as _ingest makes them
    assert Touchpoint.objects.get().lead_id == survivor.pk
