"""Ingest: store tracked events exactly once, attach them to their leads, and have those leads rescored."""

from dataclasses import dataclass

from django.db import transaction
from django.db.models import Case, Value, When
from django.utils import timezone

from leadcockpit.leads.models import Lead, StageChange, Touchpoint, normalise_email
from leadcockpit.scoring.actions import mark_dirty


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0


@transaction.atomic
def ingest(*, events, now=None) -> IngestResult:
    """Store validated events (EventIn) once each, by client event id, in one transaction.

    An event names its lead by email (an unknown address becomes a new lead, an MGL) or by external id; a
    visitor id alone makes an anonymous touchpoint. When a visitor is identified, their anonymous touchpoints
    join the lead. The leads touched are marked for rescoring (enqueued after commit; Redis being away only
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
    by_email = dict(Lead.objects.filter(email__in=emails).values_list("email", "pk"))
    new = sorted(emails - set(by_email))
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
    externals = {e.external_id for e in fresh if e.external_id and not e.email}
    by_external = dict(Lead.objects.filter(external_id__in=externals).values_list("external_id", "pk"))

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
