"""Identity: finding a lead by any spelling of its address, and merging duplicate leads into one.

The merge rule, in one place:
- Every row that points at the duplicate (touchpoints, sales activities, stage changes, and whatever other apps
  hang on a lead: score changes, handovers, earlier merges, …) is re-pointed to the kept lead. Relations are
  found generically (leads imports no other app). A rule that allows a row only once per lead (a one-to-one row,
  or a unique constraint such as "one open handover per lead") is checked first:
  - one-to-one rows are per-lead state derived from the rest (scoring's accumulators and dirty marks): the kept
    lead's row stays and the duplicate's is dropped, or moves over if the kept lead has none. The merge then runs
    the LEADS_MERGED_HOOK setting on the kept lead (marking it for rescoring), which rebuilds that state;
  - any other unique rule that both leads' rows would break (both have an open handover) refuses the merge with
    MergeRefused and changes nothing: which rep keeps the person is a decision for a person.
- The kept lead's blank fields are filled from the duplicate: email, external id, names, phone, job title,
  company, an unknown contact role or BANT answer, an empty qualification, attribute keys it lacks.
- The earlier created_at wins, and with it the origin (source, first channel, campaign) when the duplicate is
  the older record: a lead's origin is where the person first came from.
- Consent is taken as a whole (both flags, basis and time) from whichever lead recorded it later: the person's
  latest statement wins, a withdrawal included; consent is never pieced together from two statements.
- The lifecycle is the kept lead's, as a whole (stage, owner, deal value, milestone times, score): moving a stage
  by merging would bypass the lifecycle table (invariant 3), and the duplicate's stage changes join the kept
  lead's trail, so nothing is lost. The duplicate's fields are kept in the LeadMerge snapshot.
"""

import logging
from collections.abc import Iterable
from itertools import groupby

from django.conf import settings
from django.db import IntegrityError, models, transaction
from django.db.models import Count
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

from .models import (
    GMAIL_DOMAINS,
    PLUS_TAG_DOMAINS,
    Lead,
    LeadMerge,
    canonical_email,
    canonical_email_domains_q,
    canonical_email_sql,
    normalise_email,
)

log = logging.getLogger(__name__)

FILL_IF_BLANK = ["first_name", "last_name", "phone", "job_title", "qualification"]
FILL_IF_UNKNOWN = {
    "contact_role": Lead.ContactRole.UNKNOWN,
    "budget": Lead.Budget.UNKNOWN,
    "authority": Lead.Authority.UNKNOWN,
    "need": Lead.Need.UNKNOWN,
    "timeframe": Lead.Timeframe.UNKNOWN,
}
ORIGIN = ["source", "first_channel_id", "campaign_id"]
CONSENT = ["tracking_consent", "marketing_consent", "consent_basis", "consent_at"]


class MergeRefused(Exception):
    """Two leads that cannot be merged as they are; the message says why (shown to the admin)."""

    def __init__(self, message):
        super().__init__(str(message))
        self.message = message


# --- Finding a lead by its address -------------------------------------------------------------------------


def _varies(email):
    return email.partition("@")[2] in GMAIL_DOMAINS + PLUS_TAG_DOMAINS


def leads_by_email(emails: Iterable[str]) -> dict[str, int]:
    """{normalised address: lead id} for the addresses some lead answers to.

    In this order: a lead with exactly that address; else the oldest lead with the same canonical address
    (another spelling of the same mailbox); else the lead that a merged lead with that address went into.
    """
    emails = {normalise_email(e) for e in emails} - {""}
    found = dict(Lead.objects.filter(email__in=emails).values_list("email", "pk"))
    wanted = {}
    for email in emails - set(found):
        if _varies(email):
            wanted.setdefault(canonical_email(email), []).append(email)
    if wanted:
        rows = (
            Lead.objects.filter(canonical_email_domains_q())
            .annotate(canonical=canonical_email_sql())
            .filter(canonical__in=list(wanted))
            .order_by("-created_at", "-pk")  # the oldest last: it wins below
            .values_list("canonical", "pk")
        )
        for canonical, pk in rows:
            for email in wanted[canonical]:
                found[email] = pk
    missing = emails - set(found)
    if missing:
        found.update(LeadMerge.objects.filter(email__in=missing).values_list("email", "lead_id"))
    return found


def leads_by_external_id(external_ids: Iterable[str]) -> dict[str, int]:
    """{external id: lead id}: the lead with that id, else the lead that a merged lead with that id went into."""
    external_ids = set(external_ids) - {""}
    found = dict(Lead.objects.filter(external_id__in=external_ids).values_list("external_id", "pk"))
    missing = external_ids - set(found)
    if missing:
        found.update(LeadMerge.objects.filter(external_id__in=missing).values_list("external_id", "lead_id"))
    return found


def find_duplicate_leads():
    """Groups of ids of leads that share a canonical address, each oldest first; set-based, one query each."""
    variable = Lead.objects.filter(canonical_email_domains_q()).annotate(canonical=canonical_email_sql())
    shared = variable.values("canonical").annotate(n=Count("pk")).filter(n__gt=1).values("canonical")
    rows = (
        variable.filter(canonical__in=shared)
        .order_by("canonical", "created_at", "pk")
        .values_list("canonical", "pk")
    )
    return [[pk for _, pk in group] for _, group in groupby(rows.iterator(), key=lambda row: row[0])]


# --- Merging -----------------------------------------------------------------------------------------------


def merge_into_oldest(*, lead_ids, by=None, system="", reason="") -> list[LeadMerge]:
    """Merge these leads into the oldest of them (earliest created, then lowest id); all or nothing."""
    ids = list(
        Lead.objects.filter(pk__in=set(lead_ids)).order_by("created_at", "pk").values_list("pk", flat=True)
    )
    if len(ids) < 2:
        return []
    keep, *duplicates = ids
    with transaction.atomic():
        return [
            merge_leads(keep=keep, duplicate=dup, by=by, system=system, reason=reason) for dup in duplicates
        ]


def merge_leads(*, keep, duplicate, by=None, system="", reason="") -> LeadMerge:
    """Fold the duplicate lead into the kept one (see the module docstring for the rule) and record it.

    keep and duplicate are leads or their ids; by: the user merging, or system: the component. One transaction,
    both rows locked in id order (so two merges over the same leads queue instead of deadlocking). Safe to run
    twice: if either was merged meanwhile (here or concurrently), this follows it to the lead it went into, and
    returns the existing record when both are one lead by now. Raises MergeRefused, changing nothing, when
    a lead is gone or a once-per-lead rule would break.
    """
    if by is None and not system:
        raise ValueError("a merge needs an actor: by=user or system=component")
    keep_id, dup_id = getattr(keep, "pk", keep), getattr(duplicate, "pk", duplicate)
    if keep_id == dup_id:
        raise MergeRefused(_("A lead cannot be merged into itself."))
    first_keep_id, first_dup_id = keep_id, dup_id
    # Each retry means another merge took one of them meanwhile (and so one lead fewer): this ends.
    for _attempt in range(100):
        try:
            with transaction.atomic():
                locked = {
                    lead.pk: lead
                    for lead in Lead.objects.select_for_update()
                    .filter(pk__in=[keep_id, dup_id])
                    .order_by("pk")
                }
                if len(locked) == 2:
                    return _merge_locked(locked[keep_id], locked[dup_id], by=by, system=system, reason=reason)
        except IntegrityError as exc:  # a rule the checks below do not know about; the savepoint undid it all
            raise MergeRefused(_("The database refused the merge: %(error)s") % {"error": exc}) from exc
        # One of them went away meanwhile: follow it to the lead it was merged into.
        keep_id, dup_id = _current(keep_id), _current(dup_id)
        if keep_id is None or dup_id is None:
            raise MergeRefused(_("One of the leads no longer exists."))
        if keep_id == dup_id:  # one lead by now: the record of how (either may have gone into the other)
            return (
                LeadMerge.objects.filter(merged_lead_id__in=[first_keep_id, first_dup_id])
                .order_by("-at")
                .first()
            )
    raise MergeRefused(_("The leads kept changing while merging; try again."))


def _current(lead_id):
    """The id of the lead this one is now: itself, or the lead it was merged into (merges are re-pointed too)."""
    if Lead.objects.filter(pk=lead_id).exists():
        return lead_id
    return LeadMerge.objects.filter(merged_lead_id=lead_id).values_list("lead_id", flat=True).first()


def _relations():
    """Every one-to-many and one-to-one relation that points at Lead, from any app, hidden ones included."""
    return [
        rel
        for rel in Lead._meta.get_fields(include_hidden=True)
        if rel.auto_created and not rel.concrete and (rel.one_to_many or rel.one_to_one)
    ]


def _once_per_lead_rules(model, field_name):
    """The unique rules of a model that include the lead field: (name, other fields, condition, nulls distinct)."""
    rules = [
        (c.name, [f for f in c.fields if f != field_name], c.condition, c.nulls_distinct is not False)
        for c in model._meta.constraints
        if isinstance(c, models.UniqueConstraint) and field_name in c.fields
    ]
    rules += [
        (",".join(fields), [f for f in fields if f != field_name], None, True)
        for fields in model._meta.unique_together
        if field_name in fields
    ]
    return rules


def _check_conflicts(keep, dup):
    for rel in _relations():
        model, name = rel.related_model, rel.field.name
        if rel.field.unique:
            continue  # one-to-one: settled by keeping one row
        for rule, others, condition, nulls_distinct in _once_per_lead_rules(model, name):
            rows = (
                model._base_manager.filter(condition) if condition is not None else model._base_manager.all()
            )
            if others:
                keys = set(rows.filter(**{name: keep.pk}).values_list(*others))
                theirs = set(rows.filter(**{name: dup.pk}).values_list(*others))
                clash = {k for k in keys & theirs if not (nulls_distinct and None in k)}
            else:
                clash = rows.filter(**{name: keep.pk}).exists() and rows.filter(**{name: dup.pk}).exists()
            if clash:
                raise MergeRefused(
                    _(
                        "Both leads have a %(thing)s, and a lead may have only one (rule %(rule)s): "
                        "settle one of them first, then merge."
                    )
                    % {"thing": model._meta.verbose_name, "rule": rule}
                )


def _merge_locked(keep, dup, *, by, system, reason):
    _check_conflicts(keep, dup)
    moved = {}
    for rel in _relations():
        model, name = rel.related_model, rel.field.name
        theirs = model._base_manager.filter(**{name: dup.pk})
        if rel.field.unique and model._base_manager.filter(**{name: keep.pk}).exists():
            count, _detail = theirs.delete()
            label = f"{model._meta.label_lower} (dropped)"
        else:
            count, label = theirs.update(**{name: keep.pk}), model._meta.label_lower
        if count:
            moved[label] = count

    snapshot = {f.attname: f.value_from_object(dup) for f in Lead._meta.concrete_fields}
    Lead.objects.filter(pk=dup.pk).delete()  # first: its address and external id are free for the kept lead

    changed = []

    def take(field, value):
        setattr(keep, field, value)
        changed.append(field)

    if not keep.email and dup.email:
        take("email", dup.email)
    if not keep.external_id and dup.external_id:
        take("external_id", dup.external_id)
    for field in FILL_IF_BLANK:
        if not getattr(keep, field) and getattr(dup, field):
            take(field, getattr(dup, field))
    for field, unknown in FILL_IF_UNKNOWN.items():
        if getattr(keep, field) == unknown and getattr(dup, field) != unknown:
            take(field, getattr(dup, field))
    if keep.company_id is None and dup.company_id is not None:
        take("company_id", dup.company_id)
    if dup.created_at < keep.created_at:
        take("created_at", dup.created_at)
        for field in ORIGIN:
            take(field, getattr(dup, field))
    if dup.consent_at and (keep.consent_at is None or dup.consent_at > keep.consent_at):
        for field in CONSENT:
            take(field, getattr(dup, field))
    missing_keys = {k: v for k, v in (dup.attributes or {}).items() if k not in (keep.attributes or {})}
    if missing_keys:
        take("attributes", {**(keep.attributes or {}), **missing_keys})
    if changed:
        keep.save(update_fields=[*changed, "updated_at"])

    merge = LeadMerge.objects.create(
        lead=keep,
        merged_lead_id=dup.pk,
        email=dup.email,
        external_id=dup.external_id or "",
        snapshot=snapshot,
        moved=moved,
        actor=None if system else by,
        system_actor=system[:30],
        reason=reason[:500],
        at=timezone.now(),
    )
    if hook := getattr(settings, "LEADS_MERGED_HOOK", ""):
        import_string(hook)(lead_ids=[keep.pk])
    log.info("lead %s merged into %s by %s: %s", dup.pk, keep.pk, system or by, moved)
    return merge


def merge_duplicate_leads(*, by=None, system="", reason="", apply=False):
    """Find leads that share a canonical address and (with apply) merge each group into its oldest.

    Returns (groups, merged, refused): the groups found, how many leads were merged away, and the refusals as
    (group, message). Each group is its own transaction, so one refusal leaves the other groups merged.
    """
    groups = find_duplicate_leads()
    merged, refused = 0, []
    if apply:
        for group in groups:
            try:
                merged += len(merge_into_oldest(lead_ids=group, by=by, system=system, reason=reason))
            except MergeRefused as exc:
                refused.append((group, exc.message))
    return groups, merged, refused
