from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db.models import Count, Prefetch
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET, require_POST
from django.views.decorators.vary import vary_on_headers

from leadcockpit.accounts.decorators import role_required
from leadcockpit.leads.access import get_lead_for_user
from leadcockpit.leads.models import Lead
from leadcockpit.leads.views import is_fragment_request

from . import actions
from .forms import ScoreAsOfForm
from .models import RescoreJob, ScoreChange, ScoringModel, ScoringVersion


@require_GET
@vary_on_headers("HX-Request")
@login_required
@role_required
def lead_score(request, pk):
    """The explanation ledger: every criterion's contribution as of now, the knock-outs, what is missing to MQL."""
    lead = get_lead_for_user(request, pk, Lead.objects.select_related("company"))
    context = actions.explain(lead=lead)
    # "Score as of": the recorded state at a past moment (at handover, say).
    as_of_form = ScoreAsOfForm(request.GET if "at" in request.GET else None)
    context["as_of_form"] = as_of_form
    if as_of_form.is_valid():
        context["at"] = as_of_form.cleaned_data["at"]
        context["state_at"] = ScoreChange.objects.as_of(lead, context["at"])
    template = "scoring/lead_score.html"
    if is_fragment_request(request):
        template += "#score-ledger"
    return render(request, template, context)


def _can_manage(user):
    from leadcockpit.accounts.roles import Role

    return user.role in (Role.ADMIN, Role.MARKETING)


@require_GET
@login_required
@role_required
def overview(request):
    """Models and their versions, approvals, and the latest full rescore."""
    models = ScoringModel.objects.prefetch_related(
        Prefetch(
            "versions",
            queryset=ScoringVersion.objects.prefetch_related("approvals__user").annotate(
                criteria_count=Count("criteria")
            ),
        )
    )
    context = {
        "models": models,
        "job": RescoreJob.objects.first(),
        "my_side": actions.side_of(request.user),
        "can_manage": _can_manage(request.user),
    }
    return render(request, "scoring/overview.html", context)


@require_POST
@login_required
@role_required
def version_step(request, pk, step):
    """Propose, approve or roll back a version; errors come back as a message, never a 500."""
    version = get_object_or_404(ScoringVersion.objects.select_related("model"), pk=pk)
    steps = {"propose": actions.propose, "approve": actions.approve, "rollback": actions.rollback}
    if step not in steps or (step != "approve" and not _can_manage(request.user)):
        raise PermissionDenied
    try:
        steps[step](version=version, by=request.user)
    except actions.WorkflowError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, DONE_MESSAGES[step] % {"version": version})
    return redirect("scoring:overview")


DONE_MESSAGES = {
    "propose": _("%(version)s is proposed; marketing and sales can now approve it."),
    "approve": _("Your approval of %(version)s is recorded."),
    "rollback": _("%(version)s is active again; every lead is being rescored."),
}


@require_GET
@vary_on_headers("HX-Request")
@login_required
@role_required
def job_progress(request, pk):
    """The progress bar alone (htmx polls it while the job runs); without htmx, the overview shows it."""
    if not is_fragment_request(request):
        return redirect("scoring:overview")
    job = get_object_or_404(RescoreJob, pk=pk)
    return render(request, "scoring/overview.html#rescore-progress", {"job": job})
