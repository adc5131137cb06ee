"""Handover workflows: route an MQL to a team and rep, accept or reject it, notify. Called by views and tasks."""

import logging
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, Q
from django.utils import timezone
from django.utils.translation import gettext as _

from leadcockpit.accounts.models import User
from leadcockpit.accounts.roles import Role, role_of
from leadcockpit.leads.models import Lead, StageNotAllowed, Touchpoint
from leadcockpit.scoring.evaluator import rule_holds

from .models import Handover, Notification, RepAvailability, RoutingRule, TeamRouting

log = logging.getLogger(__name__)
DEFAULT_SLA = timedelta(hours=24)


class HandoverConflict(Exception):
    """Someone else decided this handover first, or the lead moved on; the message says what happened."""


def choose_rule(lead, rules, interested=None):
    """The first active rule whose conditions, grades and product interest match the lead, or None (the
    fallback queue). interested: {rule id: ids of leads that visited the rule's product pages}."""
    for rule in rules:
        if rule.grades and lead.grade not in rule.grades:
            continue
        if rule.product_interest and lead.pk not in (interested or {}).get(rule.pk, ()):
            continue
        if rule_holds(lead, rule.conditions):
            return rule
    return None


def product_interest(rules, lead_ids):
    """For each rule with a product interest, which of these leads visited a page whose URL contains it."""
    return {
        rule.pk: set(
            Touchpoint.objects.filter(lead_id__in=lead_ids, url__icontains=rule.product_interest)
            .values_list("lead_id", flat=True)
            .distinct()
        )
        for rule in rules
        if rule.product_interest
    }


def available_reps(team, *, today):
    """The team's active reps who are not away today, each with .open_count and .capacity, by id."""
    away = Q(availability__absent_from__lte=today) & (
        Q(availability__absent_until__isnull=True) | Q(availability__absent_until__gte=today)
    )
    reps = list(
        User.objects.filter(team=team, is_active=True, groups__name=Role.SALES_REP.value)
        .exclude(away)
        .annotate(
            open_count=Count("handovers", filter=Q(handovers__status=Handover.Status.OPEN), distinct=True)
        )
        .order_by("pk")
    )
    capacity = dict(RepAvailability.objects.filter(rep__in=reps).values_list("rep_id", "capacity"))
    default = RepAvailability._meta.get_field("capacity").default
    for rep in reps:
        rep.capacity = capacity.get(rep.pk, default)
    return reps


def pick_rep(routing, reps):
    """Among reps with room under their capacity: round robin takes the next by id after the last one assigned;
    least loaded the fewest open handovers, ties broken the round-robin way so equal reps take turns."""
    reps = [rep for rep in reps if rep.open_count < rep.capacity]
    if not reps:
        return None
    after = [rep for rep in reps if routing.last_rep_id is None or rep.pk > routing.last_rep_id]
    in_turn = after + [rep for rep in reps if rep not in after]
    if routing.strategy == TeamRouting.Strategy.LEAST_LOADED:
        fewest = min(rep.open_count for rep in reps)
        return next(rep for rep in in_turn if rep.open_count == fewest)
    return in_turn[0]


def route_lead(*, lead_id, now=None):
    """Hand one MQL to a team and rep (see route_batch); the handover, or None if it needs no routing."""
    handovers = route_batch(lead_ids=[lead_id], now=now)
    return handovers[0] if handovers else None


@transaction.atomic
def route_batch(*, lead_ids=None, limit=500, now=None):
    """Hand MQLs without an open handover to the team of the first matching rule and a rep there, in one go.

    Safe under concurrency and idempotent: the leads are locked (ones another router holds are skipped) and a
    lead with an open handover is left alone (a unique constraint backs that up); each team's routing row is
    locked, in team order, while its reps are picked from their current loads, so two routers cannot both take
    a rep's last free place or the same round-robin turn. Set-based: one insert each for handovers, stage
    changes and notifications, one update per rep for owners.
    """
    now = now or timezone.now()
    leads = (
        Lead.objects.select_for_update(skip_locked=True, of=("self",))
        .select_related("company")
        .filter(stage_id="mql")
        .exclude(handovers__status=Handover.Status.OPEN)
        .order_by("mql_at", "pk")
    )
    if lead_ids is not None:
        leads = leads.filter(pk__in=lead_ids)
    leads = list(leads[:limit])
    if not leads:
        return []
    rules = list(RoutingRule.objects.filter(active=True).select_related("team"))
    interested = product_interest(rules, [lead.pk for lead in leads])
    by_team = {}
    for lead in leads:
        rule = choose_rule(lead, rules, interested)
        by_team.setdefault(rule.team if rule else None, []).append((lead, rule))
    today = timezone.localdate(now)
    handovers = []
    for team in sorted(by_team, key=lambda t: (t is not None, t.pk if t else 0)):
        if team is None:
            handovers += [
                Handover(lead=lead, rule=rule, created_at=now, due_at=now + DEFAULT_SLA)
                for lead, rule in by_team[team]
            ]
            continue
        routing = _locked_routing(team)
        reps, due_at = available_reps(team, today=today), routing.deadline(now)
        for lead, rule in by_team[team]:
            rep = pick_rep(routing, reps)
            if rep is not None:
                rep.open_count += 1
                routing.last_rep = rep
            handovers.append(
                Handover(lead=lead, team=team, rep=rep, rule=rule, created_at=now, due_at=due_at)
            )
        routing.save(update_fields=["last_rep"])
    Handover.objects.bulk_create(handovers)
    owners = {}
    for handover in handovers:
        owners.setdefault(handover.rep_id, []).append(handover.lead_id)
    for rep_id, ids in owners.items():
        Lead.objects.filter(pk__in=ids).update(owner_id=rep_id)
    for team, items in by_team.items():
        where = team or _("the fallback queue")
        Lead.objects.filter(pk__in=[lead.pk for lead, _rule in items]).move_to(
            "handed_over", system="routing", reason=_("routed to %(where)s") % {"where": where}, at=now
        )
    notifications = [
        Notification(user_id=h.rep_id, kind=Notification.Kind.NEW_LEAD, handover=h, created_at=now)
        for h in handovers
        if h.rep_id is not None
    ]
    if notifications:
        Notification.objects.bulk_create(notifications)
        transaction.on_commit(_enqueue_mail)
    return handovers


def _locked_routing(team):
    """The team's routing row, locked until commit: one assignment at a time per team."""
    TeamRouting.objects.get_or_create(team=team)
    return TeamRouting.objects.select_for_update().get(team=team)


def _next_rep(routing, *, today, exclude=()):
    rep = pick_rep(routing, [r for r in available_reps(routing.team, today=today) if r.pk not in exclude])
    if rep is not None:
        routing.last_rep = rep
        routing.save(update_fields=["last_rep"])
    return rep


def route_pending(*, batch=500, now=None):
    """Route every MQL that has no open handover yet, batch by batch (also the sweep behind lost messages)."""
    routed = 0
    while handovers := route_batch(limit=batch, now=now):
        routed += len(handovers)
    return routed


def notify(*, user, kind, handover, now=None):
    """Record a notification (shown in the app) and have it emailed after commit. Callers make it happen once
    (a new handover, or a claimed reminder or escalation), so a lead handed back to a rep notifies them again."""
    notification = Notification.objects.create(
        user=user, kind=kind, handover=handover, created_at=now or timezone.now()
    )
    transaction.on_commit(_enqueue_mail)
    return notification


def _enqueue_mail():
    from . import tasks

    try:
        tasks.send_notification_emails.delay()
    except Exception:  # noqa: BLE001 - Redis may be away; the periodic sweep sends the mail
        log.warning("could not enqueue notification mail; the sweep will send it", exc_info=True)


def can_decide(user, handover):
    """Who may accept or reject: the rep it is assigned to, a manager of its team, an admin."""
    role = role_of(user)
    if role == Role.ADMIN:
        return True
    if role == Role.SALES_REP:
        return handover.rep_id == user.pk
    if role == Role.SALES_MANAGER:
        return user.team_id is not None and handover.team_id == user.team_id
    return False


def _decide(handover, *, by, status, now, **fields):
    """Close the handover if it is still open and still assigned as the decider saw it (a reassignment in
    between, by the SLA clock, makes the decision a conflict instead of letting the former rep take the lead)."""
    updated = Handover.objects.filter(
        pk=handover.pk, status=Handover.Status.OPEN, rep_id=handover.rep_id, team_id=handover.team_id
    ).update(status=status, decided_at=now, decided_by=by, **fields)
    if not updated:
        handover.refresh_from_db()
        if handover.status == Handover.Status.OPEN:
            raise HandoverConflict(_("This lead was handed to someone else meanwhile."))
        raise HandoverConflict(
            _("This lead was already %(status)s by %(who)s.")
            % {
                "status": handover.get_status_display().lower(),
                "who": handover.decided_by or _("someone else"),
            }
        )


@transaction.atomic
def accept(*, handover, by, now=None):
    """The rep takes the lead: SAL. Of two people deciding at once, exactly one wins."""
    now = now or timezone.now()
    _decide(handover, by=by, status=Handover.Status.ACCEPTED, now=now)
    try:
        handover.lead.move_to("sal", by=by, at=now)
    except StageNotAllowed as exc:
        raise HandoverConflict(_("The lead is no longer waiting for sales.")) from exc
    Lead.objects.filter(pk=handover.lead_id).update(owner=by if handover.rep_id is None else handover.rep_id)


@transaction.atomic
def reject(*, handover, by, reason, note="", now=None):
    """The rep sends the lead back to marketing for nurturing, with a reason marketing sees."""
    now = now or timezone.now()
    _decide(handover, by=by, status=Handover.Status.REJECTED, now=now, reject_reason=reason, note=note[:2000])
    label = Handover.RejectReason(reason).label
    try:
        handover.lead.move_to(
            "nurturing", by=by, reason=_("rejected: %(reason)s") % {"reason": label}, at=now
        )
    except StageNotAllowed as exc:
        raise HandoverConflict(_("The lead is no longer waiting for sales.")) from exc
    Lead.objects.filter(pk=handover.lead_id).update(owner=None)


def send_notification_emails(*, batch=200):
    """Email notifications not sent yet (an outbox: rows are claimed, so two workers never send one twice)."""
    from django.conf import settings
    from django.core.mail import send_mail
    from django.template.loader import render_to_string
    from django.urls import reverse

    from leadcockpit.scoring.actions import explain

    sent = 0
    for _attempt in range(batch):
        with transaction.atomic():
            notification = (
                Notification.objects.select_for_update(skip_locked=True, of=("self",))
                .filter(emailed_at=None)
                .select_related("user", "handover__lead__company")
                .order_by("created_at", "pk")
                .first()
            )
            if notification is None:
                break
            # Marked sent before sending: a failure loses this one mail (logged), never repeats the others.
            notification.emailed_at = timezone.now()
            notification.save(update_fields=["emailed_at"])
        if notification.user.email:
            lead = notification.handover.lead
            context = {
                "notification": notification,
                "lead": lead,
                "explanation": explain(lead=lead),
                "inbox_url": settings.SITE_URL + reverse("handover:inbox"),
            }
            # Names come from forms and imports: a line break must not reach a mail header.
            subject = " ".join(render_to_string("handover/notification_subject.txt", context).split())
            body = render_to_string("handover/notification_email.txt", context)
            try:
                send_mail(subject, body, None, [notification.user.email])
            except Exception:  # noqa: BLE001 - one bad address or server hiccup must not stop the outbox
                log.exception("could not mail notification %s", notification.pk)
                continue
        sent += 1
    return sent


def sla_tick(*, now=None):
    """Remind reps before the deadline, and at the deadline tell the team's managers (and, where the team says
    so, hand the lead to the next rep). Each step is claimed with a conditional update, so it happens once."""
    now = now or timezone.now()
    counts = {"reminded": 0, "escalated": 0, "reassigned": 0}
    due_soon = (
        Handover.objects.open()
        .filter(rep__isnull=False, reminded_at=None, due_at__gt=now, team__routing__isnull=False)
        .select_related("team__routing")
    )
    for handover in due_soon:
        if handover.due_at - timedelta(hours=handover.team.routing.remind_before_hours) > now:
            continue
        with transaction.atomic():
            claimed = Handover.objects.filter(
                pk=handover.pk,
                status="open",
                reminded_at=None,
                rep_id=handover.rep_id,
                due_at=handover.due_at,
            ).update(reminded_at=now)
            if claimed:
                notify(user=handover.rep, kind=Notification.Kind.REMINDER, handover=handover, now=now)
                counts["reminded"] += 1
    breached = (
        Handover.objects.open().filter(escalated_at=None, due_at__lte=now).select_related("team", "rep")
    )
    for handover in breached:
        with transaction.atomic():
            claimed = Handover.objects.filter(
                pk=handover.pk,
                status="open",
                escalated_at=None,
                rep_id=handover.rep_id,
                due_at=handover.due_at,
                due_at__lte=now,
            ).update(escalated_at=now)
            if not claimed:
                continue
            for manager in _escalation_recipients(handover):
                notify(user=manager, kind=Notification.Kind.ESCALATION, handover=handover, now=now)
            counts["escalated"] += 1
            if handover.team_id and _reassign(handover, now=now):
                counts["reassigned"] += 1
    return counts


def _escalation_recipients(handover):
    """Who hears of a missed deadline: the team's managers; for the fallback queue, the admins (who may act)."""
    active = User.objects.filter(is_active=True)
    if handover.team_id:
        return active.filter(team_id=handover.team_id, groups__name=Role.SALES_MANAGER.value)
    return active.filter(Q(is_superuser=True) | Q(groups__name=Role.ADMIN.value)).distinct()


def _reassign(handover, *, now):
    """Give a breached handover to the team's next available rep, with a fresh deadline, if the team says so."""
    routing = _locked_routing(handover.team)
    if not routing.reassign_on_breach:
        return False
    rep = _next_rep(routing, today=timezone.localdate(now), exclude={handover.rep_id})
    if rep is None:
        return False
    Handover.objects.filter(pk=handover.pk).update(
        rep=rep, due_at=routing.deadline(now), reminded_at=None, escalated_at=None
    )
    Lead.objects.filter(pk=handover.lead_id).update(owner=rep)
    handover.refresh_from_db()
    notify(user=rep, kind=Notification.Kind.NEW_LEAD, handover=handover, now=now)
    return True
