"""Ingest: store tracked events exactly once, attach them to their leads, and have those leads rescored."""

import logging
import weakref
from dataclasses import dataclass

import psycopg
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, Value, When
from django.utils import timezone
from psycopg.types.json import Jsonb

from leadcockpit.leads.actions import MergeRefused, leads_by_email, leads_by_external_id, merge_into_oldest
from leadcockpit.leads.models import Lead, StageChange, Touchpoint, canonical_email, normalise_email
from leadcockpit.scoring.actions import mark_dirty, rescore_soon

from .models import Visitor

log = logging.getLogger(__name__)


@dataclass
class IngestResult:
    accepted: int = 0
    duplicates: int = 0


def ingest(*, events, now=None) -> IngestResult:
    """Store validated events (EventIn) once each, by client event id; see _ingest for the rules.

    On PostgreSQL, events whose leads are already known by their exact address or external id (nearly all
    of them) are stored by one set-based statement (_ingest_known); anything else (a new or differently spelt
    address, a former one of a merged lead, an address and an external id naming two leads) goes the full way.
    """
    if connection.vendor == "postgresql" and events:
        result = _ingest_known(events=events, now=now or timezone.now())
        if result is not None:
            return result
    return _ingest(events=events, now=now)


# One statement, so atomic on its own (autocommit): resolve each event's lead by exact address or external id,
# refuse the whole set (inserting nothing) if any event needs more than that, else insert the touchpoints once
# each by client event id, join identified visitors' anonymous history to their leads, and mark the leads dirty.
# Mirrors _ingest: the first of an event id in a batch wins, the last identification of a visitor wins.
INGEST_KNOWN_SQL = """
WITH e AS (
    SELECT * FROM jsonb_to_recordset(%(events)s::jsonb) AS e(
        idx int, event_id uuid, kind text, occurred_at timestamptz, url text, referrer text, title text,
        search_terms text, utm_source text, utm_medium text, utm_campaign text, visitor_id text,
        session_id text, email text, external_id text, properties jsonb)
), r AS (
    SELECT e.*, by_email.id AS email_lead, by_external.id AS external_lead,
           CASE WHEN e.email <> '' THEN by_email.id WHEN e.external_id <> '' THEN by_external.id
                WHEN e.visitor_id <> '' THEN (
                    -- a scalar subquery: one index lookup per event (as a join the planner hashed the table)
                    SELECT lead_id FROM capture_visitor WHERE visitor_id = e.visitor_id
                ) END AS lead_id,
           EXISTS (SELECT 1 FROM leads_touchpoint t WHERE t.client_event_id = e.event_id) AS seen
    FROM e
    -- Index lookups per event: "email <> ''" lets the planner use the partial unique index on email.
    LEFT JOIN LATERAL (
        SELECT id FROM leads_lead WHERE e.email <> '' AND email <> '' AND email = e.email
    ) by_email ON TRUE
    LEFT JOIN LATERAL (
        SELECT id FROM leads_lead WHERE e.external_id <> '' AND external_id = e.external_id
    ) by_external ON TRUE
), needs_more AS (
    SELECT 1 FROM r
    WHERE (email <> '' AND email_lead IS NULL)
       OR (email <> '' AND external_lead IS NOT NULL AND external_lead <> email_lead)
       OR (email = '' AND external_id <> '' AND external_lead IS NULL)
       -- An address and the former id of a merged lead: the full path merges the two leads.
       OR (email <> '' AND external_id <> '' AND external_lead IS NULL
           AND EXISTS (SELECT 1 FROM leads_leadmerge m WHERE m.external_id <> '' AND m.external_id = r.external_id))
    LIMIT 1
), first AS (
    SELECT DISTINCT ON (event_id) * FROM r WHERE NOT seen ORDER BY event_id, idx
), identified AS (
    SELECT DISTINCT ON (visitor_id) visitor_id, lead_id FROM first
    WHERE visitor_id <> '' AND lead_id IS NOT NULL ORDER BY visitor_id, idx DESC
), fresh AS (
    SELECT first.*, COALESCE(first.lead_id, identified.lead_id) AS final_lead
    FROM first LEFT JOIN identified ON first.lead_id IS NULL AND identified.visitor_id = first.visitor_id
    WHERE NOT EXISTS (SELECT 1 FROM needs_more)
), inserted AS (
    INSERT INTO leads_touchpoint (
        client_event_id, lead_id, visitor_id, session_id, kind, url, referrer, page_title, search_terms,
        utm_source, utm_medium, utm_campaign, occurred_at, received_at, properties)
    SELECT event_id, final_lead, visitor_id, session_id, kind, url, referrer, title, search_terms,
           utm_source, utm_medium, utm_campaign, occurred_at, %(now)s, properties
    FROM fresh ORDER BY event_id  -- a fixed order: concurrent replays of one batch cannot deadlock
    ON CONFLICT (client_event_id) DO NOTHING
    RETURNING lead_id
), joined AS (
    -- Rows locked in id order, and dirty marks written in lead order: concurrent requests never deadlock.
    UPDATE leads_touchpoint t SET lead_id = waiting.lead_id
    FROM (
        SELECT anonymous.id, identified.lead_id
        FROM leads_touchpoint anonymous JOIN identified ON anonymous.visitor_id = identified.visitor_id
        WHERE anonymous.lead_id IS NULL AND NOT EXISTS (SELECT 1 FROM needs_more)
        ORDER BY anonymous.id FOR UPDATE OF anonymous
    ) waiting
    WHERE t.id = waiting.id
    RETURNING t.lead_id
), visitors AS (
    INSERT INTO capture_visitor (visitor_id, lead_id, identified_at)
    SELECT visitor_id, lead_id, %(now)s FROM identified
    WHERE NOT EXISTS (SELECT 1 FROM needs_more)
      -- Known already (most events of an identified visitor): a read, not an upsert that locks the row. A scalar
      -- subquery, so one index lookup per visitor: as NOT EXISTS the generic plan hashed the whole table.
      AND (SELECT v.lead_id FROM capture_visitor v WHERE v.visitor_id = identified.visitor_id)
          IS DISTINCT FROM identified.lead_id
    ORDER BY visitor_id
    ON CONFLICT (visitor_id) DO UPDATE SET lead_id = EXCLUDED.lead_id, identified_at = EXCLUDED.identified_at
    WHERE capture_visitor.lead_id <> EXCLUDED.lead_id
), dirty AS (
    INSERT INTO scoring_dirtylead (lead_id, marked_at)
    SELECT lead_id, %(now)s FROM (SELECT DISTINCT lead_id FROM inserted WHERE lead_id IS NOT NULL) touched
    ORDER BY lead_id
    -- A mark a worker holds is marked again: its rescore may not see this touchpoint (scoring.actions.mark_dirty).
    ON CONFLICT (lead_id) DO UPDATE SET remarked = TRUE
        WHERE scoring_dirtylead.claimed_at IS NOT NULL AND NOT scoring_dirtylead.remarked
)
SELECT EXISTS (SELECT 1 FROM needs_more), (SELECT count(*) FROM inserted),
       (SELECT count(*) FROM inserted WHERE lead_id IS NOT NULL), (SELECT count(*) FROM joined)
"""


_PREPARED = weakref.WeakSet()  # connections set up to prepare the statement below once, with a generic plan


def _ingest_known(*, events, now):
    """The set-based path: an IngestResult, or None when some event needs the full path (nothing written)."""
    rows = [
        {
            "idx": index,
            "event_id": str(e.event_id),
            "kind": e.type,
            "occurred_at": e.occurred_at.isoformat(),
            "url": e.url,
            "referrer": e.referrer,
            "title": e.title,
            "search_terms": e.search_terms,
            "utm_source": e.utm_source,
            "utm_medium": e.utm_medium,
            "utm_campaign": e.utm_campaign,
            "visitor_id": e.visitor_id,
            "session_id": e.session_id,
            "email": normalise_email(e.email),
            "external_id": e.external_id,
            "properties": e.properties,
        }
        for index, e in enumerate(events)
    ]
    # A server-side prepared statement with one generic plan: planning it afresh (2.4 ms) cost twice as much
    # as running it. Django opens its connections with prepared statements off (prepare_threshold None) and
    # binds on the client, so its own queries are never prepared: turning them on here affects only ours.
    connection.ensure_connection()
    raw = connection.connection
    with connection.wrap_database_errors, psycopg.Cursor(raw) as cursor:
        if raw not in _PREPARED:
            raw.prepare_threshold = 0
            cursor.execute("SET plan_cache_mode = force_generic_plan")
            _PREPARED.add(raw)
        cursor.execute(INGEST_KNOWN_SQL, {"events": Jsonb(rows), "now": now}, prepare=True)
        needs_more, accepted, with_lead, _joined = cursor.fetchone()
    if needs_more:
        return None
    if with_lead:
        rescore_soon()
    return IngestResult(accepted=accepted, duplicates=len(events) - accepted)


@transaction.atomic
def _ingest(*, events, now=None) -> IngestResult:
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

    # Visitors that identified themselves in earlier requests: their anonymous visits are their leads'.
    known = dict(
        Visitor.objects.filter(
            visitor_id__in={e.visitor_id for e in fresh if e.visitor_id and not (e.email or e.external_id)}
        ).values_list("visitor_id", "lead_id")
    )
    touchpoints, touched, identified = [], set(), {}
    for event in fresh:
        if event.email:
            lead_id = by_email.get(normalise_email(event.email))
        elif event.external_id:
            lead_id = by_external.get(event.external_id)
        else:
            lead_id = known.get(event.visitor_id)
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
    if identified:
        Visitor.objects.bulk_create(
            [Visitor(visitor_id=v, lead_id=identified[v], identified_at=now) for v in sorted(identified)],
            update_conflicts=True,
            unique_fields=["visitor_id"],
            update_fields=["lead_id", "identified_at"],
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
    merged_into, _refused = merge_pairs(pairs=pairs, system="capture", reason="one event named both")
    return merged_into


def merge_pairs(*, pairs, system, reason):
    """Merge each pair of lead ids (one person named two ways) into the older lead, following earlier merges.
    Returns ({merged lead id: kept lead id}, {pair: why it was refused})."""
    merged_into, refused = {}, {}
    for pair in sorted(pairs):
        a, b = (merged_into.get(pk, pk) for pk in pair)
        if a == b:
            continue
        try:
            merges = merge_into_oldest(lead_ids=[a, b], system=system, reason=reason)
        except MergeRefused as exc:
            log.warning("leads %s and %s were named as one but not merged: %s", a, b, exc.message)
            refused[pair] = exc.message
            continue
        for merge in merges:
            for pk, kept in merged_into.items():
                if kept == merge.merged_lead_id:
                    merged_into[pk] = merge.lead_id
            merged_into[merge.merged_lead_id] = merge.lead_id
    return merged_into, refused
