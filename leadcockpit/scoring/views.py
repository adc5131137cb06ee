from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from leadcockpit.accounts.decorators import role_required
from leadcockpit.leads.access import get_lead_for_user
from leadcockpit.leads.models import Lead
from leadcockpit.leads.views import is_fragment_request

from .evaluator import choose_version, evaluate
from .models import ScoringVersion


@require_GET
@vary_on_headers("HX-Request")
@login_required
@role_required
def lead_score(request, pk):
    """The explanation ledger: every criterion's contribution as of now, the knock-outs, what is missing to MQL."""
    lead = get_lead_for_user(request, pk, Lead.objects.select_related("company"))
    versions = list(
        ScoringVersion.objects.filter(status=ScoringVersion.Status.ACTIVE)
        .select_related("model")
        .prefetch_related("criteria")
        .order_by("model__priority", "model_id")
    )
    version = choose_version(lead, versions)
    evaluation = missing = None
    if version is not None:
        evaluation = evaluate(lead, version, as_of=timezone.now(), criteria=list(version.criteria.all()))
        missing = evaluation.missing_to_mql(version)
    context = {"lead": lead, "version": version, "evaluation": evaluation, "missing": missing}
    template = "scoring/lead_score.html"
    if is_fragment_request(request):
        template += "#score-ledger"
    return render(request, template, context)
