from datetime import datetime

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Exists, OuterRef
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import trigger_client_event

from leadcockpit.accounts.decorators import role_required
from leadcockpit.accounts.models import Team, User
from leadcockpit.accounts.roles import Role, role_of
from leadcockpit.leads import lifecycle
from leadcockpit.leads.access import get_lead_for_user
from leadcockpit.leads.models import (
    Lead,
    LifecycleStage,
    SalesActivity,
    StageConflict,
    StageNotAllowed,
    actor_sides,
)
from leadcockpit.leads.views import is_fragment_request
from leadcockpit.lib.keyset import Sort, paginate
from leadcockpit.scoring.actions import mark_dirty

from . import actions
from .forms import (
    ActivityForm,
    BantForm,
    ConditionForm,
    ConditionFormSet,
    FeedbackFilter,
    RejectForm,
    RepAvailabilityForm,
    RoutingRuleForm,
    StageForm,
    TeamRoutingForm,
)
from .models import Handover, RepAvailability, RoutingRule, TeamRouting

INBOX_PAGE = 25  # the most urgent first; more on the next pages
INBOX_SORT = Sort("due_at", False, datetime)


def get_handover_for_user(request, pk):
    """The handover `pk` if its lead is in the user's scope; otherwise 404."""
    queryset = Handover.objects.visible_to(request.user).select_related("lead__company", "rep", "team")
    return get_object_or_404(queryset, pk=pk)


def inbox_context(request, **extra):
    """The open handovers a user works: a rep their own, a manager their team's, an admin all; most urgent first."""
    # A rep's own and a manager's team's handovers are in their scope by definition (Handover.visible_to), so
    # the inbox asks for them directly: the scope's lead subquery made the page 0.3 s slower at 1M leads.
    role = role_of(request.user)
    if role == Role.SALES_REP:
        open_handovers = Handover.objects.open().filter(rep=request.user)
    elif role == Role.SALES_MANAGER:
        open_handovers = Handover.objects.open().filter(team_id=request.user.team_id or 0)
    else:
        open_handovers = Handover.objects.visible_to(request.user).open()
    now = timezone.now()
    page = paginate(
        open_handovers.select_related("lead__company", "rep"),
        INBOX_SORT,
        after=request.GET.get("after"),
        before=request.GET.get("before"),
        size=INBOX_PAGE,
    )
    return {
        "handovers": page.items,
        "page": page,
        "open_count": open_handovers.count(),
        "overdue_count": open_handovers.filter(due_at__lt=now).count(),
        "now": now,
        "reject_form": RejectForm(),
        "follow_ups": due_follow_ups(request.user),
        "notifications": list(
            request.user.notifications.filter(read_at=None)
            .select_related("handover__lead")
            .order_by("-created_at")[:10]
        ),
        **extra,
    }


def due_follow_ups(user, *, limit=50):
    """Wiedervorlage: the user's logged activities whose follow-up date has come, unless a later entry exists."""
    later = SalesActivity.objects.filter(lead=OuterRef("lead"), occurred_at__gt=OuterRef("occurred_at"))
    return list(
        SalesActivity.objects.filter(rep=user, next_follow_up__lte=timezone.localdate())
        .filter(lead__in=Lead.objects.visible_to(user).values("pk"))
        .exclude(Exists(later))
        .select_related("lead")
        .order_by("next_follow_up", "pk")[:limit]
    )


@require_GET
@vary_on_headers("HX-Request")
@login_required
@role_required
def inbox(request):
    """The sales rep's main page: handed-over leads to accept or reject, most urgent first."""
    if role_of(request.user) not in (Role.SALES_REP, Role.SALES_MANAGER, Role.ADMIN):
        raise PermissionDenied
    template = "handover/inbox.html"
    if is_fragment_request(request):
        template += "#inbox-list"
    return render(request, template, inbox_context(request))


@require_POST
@login_required
@role_required
def decide(request, pk, decision):
    """Accept (→ SAL) or reject with a reason (→ nurturing). Of two people deciding at once, one wins."""
    handover = get_handover_for_user(request, pk)
    if decision not in ("accept", "reject") or not actions.can_decide(request.user, handover):
        raise PermissionDenied
    form = RejectForm(request.POST) if decision == "reject" else None
    if form is not None and not form.is_valid():
        return _answer(
            request, handover, error=_("Choose a reason to reject the lead."), status=422, form=form
        )
    try:
        if form is None:
            actions.accept(handover=handover, by=request.user)
        else:
            actions.reject(
                handover=handover,
                by=request.user,
                reason=form.cleaned_data["reason"],
                note=form.cleaned_data["note"],
            )
    except actions.HandoverConflict as exc:
        return _answer(request, handover, error=str(exc), status=409)
    lead = handover.lead.display_name
    done = _("%(lead)s accepted.") if form is None else _("%(lead)s sent back to marketing.")
    return _answer(request, handover, success=done % {"lead": lead})


def _answer(request, handover, *, success=None, error=None, status=200, form=None):
    if not is_fragment_request(request):
        if error:
            messages.error(request, error)
        else:
            messages.success(request, success)
        return redirect("handover:inbox")
    context = inbox_context(request, flash=success or error, flash_error=bool(error))
    if form is not None:
        context.update(failed_form=form, failed_pk=handover.pk)
    response = render(request, "handover/inbox.html#inbox-list", context, status=status)
    if success:
        trigger_client_event(response, "handoverDecided", {"handover": handover.pk})
    return response


@require_POST
@login_required
@role_required
def notifications_read(request):
    """Mark the user's notifications read (their own only)."""
    request.user.notifications.filter(read_at=None).update(read_at=timezone.now())
    return redirect("handover:inbox")


# --- sales work on a lead: protocol, stage moves, qualification -------------------------------------------------

SALES_ROLES = (Role.SALES_REP, Role.SALES_MANAGER, Role.ADMIN)


def _stage_choices(user, lead):
    """The stages this user may move the lead to here. Handed-over leads are decided in the inbox (accept or
    reject), SAL becomes SQL through the BANT questionnaire, so neither is offered as a plain move."""
    if lead.stage_id in ("handed_over", "mgl", "mql", "nurturing"):
        return []
    stages = list(LifecycleStage.objects.order_by("position", "code"))
    by_code = {stage.code: stage for stage in stages}
    choices = []
    for stage in stages:
        if lead.stage_id == "sal" and stage.code == "sql":
            continue
        for side in actor_sides(user):
            move = lifecycle.check(lead.stage_id, stage.code, side, by_code)
            if move.allowed:
                label = f"{stage.name} ({_('back')})" if move.backward else stage.name
                choices.append((stage.code, label))
                break
    return choices


def _sales_context(request, lead, **extra):
    can_work = role_of(request.user) in SALES_ROLES
    handover = lead.handovers.filter(status=Handover.Status.OPEN).select_related("rep").first()
    context = {
        "lead": lead,
        "can_work": can_work,
        "handover": handover,
        "now": timezone.now(),
        "activities": lead.sales_activities.select_related("rep").order_by("-occurred_at", "-pk")[:5],
        "activity_form": ActivityForm(
            initial={"occurred_at": timezone.localtime().replace(second=0, microsecond=0)}
        ),
        "stage_form": StageForm(choices=_stage_choices(request.user, lead)) if can_work else None,
        "bant_form": BantForm(instance=lead) if can_work and lead.stage_id == "sal" else None,
    }
    context.update(extra)
    return context


def _sales_answer(request, lead, *, message=None, status=200, **extra):
    """After a write: the fresh fragment for htmx, or back to the lead page with a message."""
    if not is_fragment_request(request):
        if status >= 400:
            return render(
                request, "handover/sales_work.html", _sales_context(request, lead, **extra), status=status
            )
        if message:
            messages.success(request, message)
        return redirect("leads:detail", pk=lead.pk)
    lead.refresh_from_db()
    context = _sales_context(request, lead, flash=message, **extra)
    response = render(request, "handover/sales_work.html#sales-work", context, status=status)
    if status < 400:
        trigger_client_event(response, "leadChanged", {"lead": lead.pk})
    return response


def _lead_for_sales_work(request, pk):
    lead = get_lead_for_user(request, pk, Lead.objects.select_related("stage", "owner", "company"))
    if role_of(request.user) not in SALES_ROLES:
        raise PermissionDenied  # marketing reads the sales protocol, never writes it
    return lead


@require_GET
@vary_on_headers("HX-Request")
@login_required
@role_required
def sales_work(request, pk):
    """The sales side of a lead: its open handover and time left, the protocol, stage moves, qualification."""
    lead = get_lead_for_user(request, pk, Lead.objects.select_related("stage", "owner", "company"))
    template = "handover/sales_work.html"
    if is_fragment_request(request):
        template += "#sales-work"
    return render(request, template, _sales_context(request, lead))


@require_POST
@login_required
@role_required
def log_activity(request, pk):
    lead = _lead_for_sales_work(request, pk)
    form = ActivityForm(request.POST)
    if not form.is_valid():
        return _sales_answer(request, lead, status=422, activity_form=form)
    activity = form.save(commit=False)
    activity.lead, activity.rep = lead, request.user
    activity.save()
    return _sales_answer(request, lead, message=_("%(kind)s logged.") % {"kind": activity.get_kind_display()})


@require_POST
@login_required
@role_required
def move_stage(request, pk):
    lead = _lead_for_sales_work(request, pk)
    form = StageForm(request.POST, choices=_stage_choices(request.user, lead))
    if not form.is_valid():
        return _sales_answer(request, lead, status=422, stage_form=form)
    try:
        lead.move_to(form.cleaned_data["to_stage"], by=request.user, reason=form.cleaned_data["reason"])
    except StageConflict:
        return _sales_answer(request, lead, status=409, stage_error=_("Someone moved this lead meanwhile."))
    except StageNotAllowed as exc:
        why = _("Say why the lead goes back.") if "reason" in exc.why else _("That move is not allowed.")
        return _sales_answer(request, lead, status=422, stage_form=form, stage_error=why)
    return _sales_answer(request, lead, message=_("Moved to %(stage)s.") % {"stage": lead.stage.name})


@require_POST
@login_required
@role_required
def qualify(request, pk):
    """SAL → SQL through BANT: the answers update the lead and give cold, warm or hot; warm and hot qualify."""
    lead = _lead_for_sales_work(request, pk)
    if lead.stage_id != "sal":
        return _sales_answer(
            request, lead, status=409, bant_error=_("Only an accepted lead (SAL) is qualified.")
        )
    form = BantForm(request.POST, instance=lead)
    if not form.is_valid():
        return _sales_answer(request, lead, status=422, bant_form=form)
    try:
        with transaction.atomic():  # the answers and the move stand or fall together
            lead = form.save(commit=False)
            lead.qualification = lead.bant_temperature()
            lead.save(
                update_fields=["budget", "authority", "need", "timeframe", "qualification", "updated_at"]
            )
            mark_dirty(lead_ids=[lead.pk])  # BANT answers are fit criteria
            temperature = lead.get_qualification_display()
            if lead.qualification == Lead.Temperature.COLD:
                message = _("Qualified as %(t)s: the lead stays accepted (SAL) until more is known.") % {
                    "t": temperature
                }
            else:
                lead.move_to("sql", by=request.user, reason=f"BANT: {lead.qualification}")
                message = _("Qualified as %(t)s: the lead is now an SQL.") % {"t": temperature}
    except StageNotAllowed:
        lead.refresh_from_db()
        return _sales_answer(request, lead, status=409, bant_error=_("Someone moved this lead meanwhile."))
    return _sales_answer(request, lead, message=message)


# --- feedback to marketing --------------------------------------------------------------------------------------


@require_GET
@vary_on_headers("HX-Request")
@login_required
@role_required
def feedback(request):
    """Leads sales sent back, with the reasons, filterable by source, campaign and reason: what marketing learns."""
    if role_of(request.user) not in (Role.MARKETING, Role.SALES_MANAGER, Role.ADMIN):
        raise PermissionDenied
    rejected = Handover.objects.visible_to(request.user).filter(status=Handover.Status.REJECTED)
    form = FeedbackFilter(request.GET or None)
    if form.is_valid():
        if form.cleaned_data["source"]:
            rejected = rejected.filter(lead__source=form.cleaned_data["source"])
        if form.cleaned_data["campaign"]:
            rejected = rejected.filter(lead__campaign=form.cleaned_data["campaign"])
        if form.cleaned_data["reason"]:
            rejected = rejected.filter(reject_reason=form.cleaned_data["reason"])
    labels = dict(Handover.RejectReason.choices)
    by_reason = [
        (labels.get(row["reject_reason"], row["reject_reason"]), row["n"])
        for row in rejected.values("reject_reason").annotate(n=Count("pk")).order_by("-n", "reject_reason")
    ]
    context = {
        "form": form,
        "by_reason": by_reason,
        "total": sum(n for _label, n in by_reason),
        "rows": rejected.select_related("lead__campaign", "decided_by").order_by("-decided_at", "-pk")[:100],
    }
    template = "handover/feedback.html"
    if is_fragment_request(request):
        template += "#feedback-results"
    return render(request, template, context)


# --- routing set-up by managers -----------------------------------------------------------------------------------


def _managed_teams(user):
    """The teams a user sets routing up for: a manager their own, an admin every team."""
    role = role_of(user)
    if role == Role.ADMIN:
        return Team.objects.order_by("name")
    if role == Role.SALES_MANAGER and user.team_id:
        return Team.objects.filter(pk=user.team_id)
    raise PermissionDenied


def _routing_context(request, **extra):
    teams = list(_managed_teams(request.user))
    settings_by_team = {r.team_id: r for r in TeamRouting.objects.filter(team__in=teams)}
    reps = (
        User.objects.filter(team__in=teams, groups__name=Role.SALES_REP.value, is_active=True)
        .select_related("availability")
        .order_by("team__name", "last_name", "pk")
    )
    context = {
        "teams": [
            (
                team,
                extra.pop(f"team_form_{team.pk}", None)
                or TeamRoutingForm(instance=settings_by_team.get(team.pk) or TeamRouting(team=team)),
            )
            for team in teams
        ],
        "reps": [
            (
                rep,
                extra.pop(f"rep_form_{rep.pk}", None)
                or RepAvailabilityForm(
                    instance=getattr(rep, "availability", None) or RepAvailability(rep=rep)
                ),
            )
            for rep in reps
        ],
        "rules": RoutingRule.objects.filter(team__in=teams).select_related("team").order_by("position", "pk"),
    }
    context.update(extra)
    return context


@require_GET
@login_required
@role_required
def routing(request):
    """Where managers set up how leads reach their team: rules, strategy and clock, reps' capacity and absence."""
    return render(request, "handover/routing.html", _routing_context(request))


@require_POST
@login_required
@role_required
def team_settings(request, team_id):
    team = get_object_or_404(_managed_teams(request.user), pk=team_id)
    instance = TeamRouting.objects.filter(team=team).first() or TeamRouting(team=team)
    form = TeamRoutingForm(request.POST, instance=instance)
    return _save_setting(
        request, form, f"team_form_{team.pk}", _("Routing of %(team)s saved.") % {"team": team}
    )


@require_POST
@login_required
@role_required
def rep_availability(request, rep_id):
    teams = _managed_teams(request.user)
    rep = get_object_or_404(User.objects.filter(team__in=teams, groups__name=Role.SALES_REP.value), pk=rep_id)
    instance = RepAvailability.objects.filter(rep=rep).first() or RepAvailability(rep=rep)
    form = RepAvailabilityForm(request.POST, instance=instance)
    return _save_setting(
        request, form, f"rep_form_{rep.pk}", _("Availability of %(rep)s saved.") % {"rep": rep}
    )


def _save_setting(request, form, key, done):
    """Save a routing settings form, or show the page again with that form's errors in its place."""
    if not form.is_valid():
        return render(request, "handover/routing.html", _routing_context(request, **{key: form}), status=422)
    form.save()
    messages.success(request, done)
    return redirect("handover:routing")


@login_required
@role_required
def rule_edit(request, pk=None):
    """Create or change a routing rule; conditions are rows of field, operator and value (the allowlist)."""
    teams = _managed_teams(request.user)
    rule = get_object_or_404(RoutingRule.objects.filter(team__in=teams), pk=pk) if pk else None
    if request.method == "POST":
        form = RoutingRuleForm(request.POST, instance=rule, teams=teams)
        conditions = ConditionFormSet(request.POST, prefix="conditions")
        if form.is_valid() and conditions.is_valid():
            rule = form.save(commit=False)
            rule.conditions = [
                c.cleaned_data["condition"] for c in conditions if c.cleaned_data.get("condition")
            ]
            rule.save()
            messages.success(request, _("Rule %(rule)s saved.") % {"rule": rule})
            return redirect("handover:routing")
        status = 422
    else:
        form = RoutingRuleForm(instance=rule, teams=teams)
        initial = [ConditionForm.initial_for(c) for c in (rule.conditions if rule else [])]
        conditions = ConditionFormSet(prefix="conditions", initial=initial)
        status = 200
    return render(
        request,
        "handover/rule_form.html",
        {"form": form, "conditions": conditions, "rule": rule},
        status=status,
    )
