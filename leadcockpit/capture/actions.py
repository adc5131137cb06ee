"""Ingest: store tracked events exactly once, attach them to their leads, and have those leads rescored."""

import logging
from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from leadcockpit.leads.actions import MergeRefused, leads_by_email, leads_by_external_id, merge_into_oldest
from leadcockpit.leads.models import Lead, StageChange, Touchpoint, canonical_email, normalise_email
from leadcockpit.scoring.actions import mark_dirty

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0


@transaction.atomic
def ingest(*, events, now=None) -> IngestResult:
    """Store validated events (EventIn) once each, by client event id, in one transaction.

    An event names its lead by email (an unknown address becomes a new lead, an MGL) or by external id; a
    visitor id alone makes an anonymous touchpoint. When a visitor is identified, their anonymous touchpoints
    join the lead. An address is also recognised by another spelling of the same mailbox (canonical_email) or
    as a merged lead's former one; an event naming the address of one lead and the external id of another
    merges the two (leads.actions.merge_leads). The leads touched are marked for rescoring (enqueued after commit; Redis being away only
    delays it). Returns how many were new and how many were replays.
    """
    now = now or timezone.now()
    result = IngestResult()
    ids = [e.event_id for e in events]
    seen = set(Touchpoint.objects.filter(client_event_id__in=ids).values_list("client_event_id", flat=True))
    fresh, batch_ids = [], set()
    for event in events:
        if event.event_id in seen or event.event_id in batch_ids:
            result.duplicates += 1
        else:
            batch_ids.add(event.event_id)
            fresh.append(event)
    if not fresh:
        return result

    emails = {normalise_email(e.email) for e in fresh if e.email}
    # Known addresses, other spellings of them (canonical_email), and former addresses of merged leads.
    by_email = leads_by_email(emails)
    by_external = leads_by_external_id({e.external_id for e in fresh if e.external_id})
    for event in fresh:
        email = normalise_email(event.email)
        if email and email not in by_email and event.external_id in by_external:
            # A new address for a lead known by its external id: the same person, not a new lead.
            by_email[email] = by_external[event.external_id]
            _give_address(lead_id=by_external[event.external_id], email=email)
    spellings = {}  # one new lead per mailbox, even if a batch spells it two ways
    for email in sorted(emails - set(by_email)):
        spellings.setdefault(canonical_email(email), email)
    new = sorted(spellings.values())
    if new:
        Lead.objects.bulk_create(
            [Lead(email=email, stage_id="mgl", source=Lead.Source.WEB_FORM, created_at=now) for email in new],
            ignore_conflicts=True,  # a concurrent request may create the same address: it is one lead either way
        )
        created = dict(Lead.objects.filter(email__in=new).values_list("email", "pk"))
        recorded = set(
            StageChange.objects.filter(lead_id__in=created.values()).values_list("lead_id", flat=True)
        )
        StageChange.objects.bulk_create(
            StageChange(
                lead_id=pk, to_stage_id="mgl", system_actor="capture", reason="first tracked event", at=now
            )
            for pk in created.values()
            if pk not in recorded  # a concurrent request created and recorded it already
        )
        by_email.update(created)
        by_email.update({e: created[spellings[canonical_email(e)]] for e in emails - set(by_email)})
    merged_into = _merge_named_pairs(events=fresh, by_email=by_email, by_external=by_external)
    by_email = {email: merged_into.get(pk, pk) for email, pk in by_email.items()}
    by_external = {external_id: merged_into.get(pk, pk) for external_id, pk in by_external.items()}

    touchpoints, touched, identified = [], set(), {}
    for event in fresh:
        lead_id = (
            by_email.get(normalise_email(event.email)) if event.email else by_external.get(event.external_id)
        )
        if lead_id:
            touched.add(lead_id)
            if event.visitor_id:
                identified[event.visitor_id] = lead_id
        touchpoints.append(
            Touchpoint(
                client_event_id=event.event_id,
                lead_id=lead_id,
                visitor_id=event.visitor_id,
                session_id=event.session_id,
                kind=event.type,
                url=event.url,
                referrer=event.referrer,
                page_title=event.title,
                search_terms=event.search_terms,
                utm_source=event.utm_source,
                utm_medium=event.utm_medium,
                utm_campaign=event.utm_campaign,
                occurred_at=event.occurred_at,
                received_at=now,
                properties=event.properties,
            )
        )
    Touchpoint.objects.bulk_create(touchpoints, ignore_conflicts=True)  # a concurrent replay is one row too
    # The visitors are known now: their anonymous history joins their leads. One query finds the few that have
    # any (a CASE over every visitor of a batch would cost more to build than the per-visitor updates it saves).
    anonymous = Touchpoint.objects.filter(visitor_id__in=identified, lead__isnull=True)
    waiting = set(anonymous.values_list("visitor_id", flat=True).distinct()) if identified else set()
    if waiting:
        anonymous.filter(visitor_id__in=waiting).update(
            lead_id=Case(*(When(visitor_id=v, then=Value(identified[v])) for v in sorted(waiting)))
        )
    mark_dirty(lead_ids=touched)
    result.accepted = len(touchpoints)
    return result


def _give_address(*, lead_id, email):
    """A lead known only by its external id gets the address an event named with it (if no lead has it)."""
    try:
        with transaction.atomic():
            Lead.objects.filter(pk=lead_id, email="").update(email=email)
    except IntegrityError:
        pass  # a concurrent request made a lead with this address; the next event naming both merges them


def _merge_named_pairs(*, events, by_email, by_external):
    """An event naming an address and an external id of two different leads says they are one person: merge
    them into the older. Returns {merged lead id: kept lead id}. A refused merge (both have an open handover)
    leaves them apart, the event going to the address's lead, for a person to settle."""
    pairs = {
        (by_email[normalise_email(e.email)], by_external[e.external_id])
        for e in events
        if e.email and e.external_id in by_external
    }
    merged_into = {}
    for pair in sorted(pairs):
        a, b = (merged_into.get(pk, pk) for pk in pair)
        if a == b:
            continue
        try:
            merges = merge_into_oldest(lead_ids=[a, b], system="capture", reason="one event named both")
        except MergeRefused as exc:
            log.warning("leads %s and %s were named by one event but not merged: %s", a, b, exc.message)
            continue
        for merge in merges:
            for pk, kept in merged_into.items():
                if kept == merge.merged_lead_id:
                    merged_into[pk] = merge.lead_id
            merged_into[merge.merged_lead_id] = merge.lead_id
    return merged_into
