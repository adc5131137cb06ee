from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import trigger_client_event

from leadcockpit.accounts.decorators import role_required
from leadcockpit.accounts.roles import Role, role_of
from leadcockpit.leads.views import is_fragment_request

from . import actions
from .forms import RejectForm
from .models import Handover

INBOX_LIMIT = 200


def get_handover_for_user(request, pk):
    """The handover `pk` if its lead is in the user's scope; otherwise 404."""
    queryset = Handover.objects.visible_to(request.user).select_related("lead__company", "rep", "team")
    return get_object_or_404(queryset, pk=pk)


def inbox_context(request, **extra):
    """The open handovers a user works: a rep their own, a manager their team's, an admin all; most urgent first."""
    open_handovers = Handover.objects.visible_to(request.user).open()
    if role_of(request.user) == Role.SALES_REP:
        open_handovers = open_handovers.filter(rep=request.user)
    elif role_of(request.user) == Role.SALES_MANAGER:
        open_handovers = open_handovers.filter(team_id=request.user.team_id)
    now = timezone.now()
    rows = list(open_handovers.select_related("lead__company", "rep").order_by("due_at", "pk")[:INBOX_LIMIT])
    return {
        "handovers": rows,
        "open_count": open_handovers.count(),
        "overdue_count": open_handovers.filter(due_at__lt=now).count(),
        "now": now,
        "reject_form": RejectForm(),
        "notifications": list(
            request.user.notifications.filter(read_at=None)
            .select_related("handover__lead")
            .order_by("-created_at")[:10]
        ),
        **extra,
    }


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
    lead = handover.lead.full_name or handover.lead.email
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
