from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from .access import cockpit_required
from .filters import CockpitFilter


@require_GET
@vary_on_headers("HX-Request")
@login_required
@cockpit_required
def cockpit(request):
    cockpit_filter = CockpitFilter(request.GET or None)
    return render(
        request, "insights/cockpit.html", {"filter": cockpit_filter, "criteria": cockpit_filter.criteria}
    )
