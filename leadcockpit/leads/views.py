from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from leadcockpit.accounts.decorators import role_required
from leadcockpit.lib.keyset import paginate

from .access import get_lead_for_user
from .filters import DEFAULT_SORT, SORTS, LeadFilter
from .models import Lead
from .timeline import TimelineCursor


def is_fragment_request(request):
    """htmx asking for a region; boosted links and history restores (a cache miss on back) get the full page."""
    return bool(request.htmx) and not request.htmx.boosted and not request.htmx.history_restore_request


@require_GET
@vary_on_headers("HX-Request")
@login_required
@role_required
def lead_list(request):
    leads = Lead.objects.visible_to(request.user).select_related("company", "owner", "stage")
    lead_filter = LeadFilter(request.GET, queryset=leads, user=request.user)
    sort_key = request.GET.get("sort") if request.GET.get("sort") in SORTS else DEFAULT_SORT
    page = paginate(
        lead_filter.qs,
        SORTS[sort_key][0],
        after=request.GET.get("after"),
        before=request.GET.get("before"),
        size=settings.LEAD_LIST_PAGE_SIZE,
    )
    limit = settings.LEAD_LIST_COUNT_LIMIT
    # Counting stops at the limit: "10,000+" is all a person needs, and a full count of a million rows is slow.
    total = lead_filter.qs.order_by()[: limit + 1].count()
    context = {
        "filter": lead_filter,
        "page": page,
        "sort": sort_key,
        "sorts": [(key, label) for key, (_, label) in SORTS.items()],
        "total": min(total, limit),
        "total_capped": total > limit,
    }
    template = "leads/lead_list.html"
    if is_fragment_request(request):
        template += "#lead-results"
    return render(request, template, context)


@require_GET
@vary_on_headers("HX-Request")
@login_required
@role_required
def lead_detail(request, pk):
    lead = get_lead_for_user(
        request, pk, Lead.objects.select_related("company", "owner", "stage", "campaign", "first_channel")
    )
    cursor = TimelineCursor.decode(request.GET.get("before"))
    entries, next_cursor = lead.timeline(before=cursor, limit=50)
    context = {"lead": lead, "timeline": entries, "timeline_next": next_cursor}
    template = "leads/lead_detail.html"
    if is_fragment_request(request) and cursor is not None:
        template += "#timeline-page"
    return render(request, template, context)
