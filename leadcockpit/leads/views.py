import csv

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from leadcockpit.accounts.decorators import role_required
from leadcockpit.lib.csv_safe import cell
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


class _Echo:
    """A file-like object whose write returns the line, so csv.writer can feed a streaming response."""

    def write(self, value):
        return value


EXPORT_COLUMNS = [
    ("email", _("Email")),
    ("first_name", _("First name")),
    ("last_name", _("Last name")),
    ("job_title", _("Job title")),
    ("company__name", _("Company")),
    ("company__country", _("Country")),
    ("stage_id", _("Stage")),
    ("score", _("Score")),
    ("band", _("Traffic light")),
    ("grade", _("Grade")),
    ("source", _("Source")),
    ("owner__username", _("Owner")),
    ("created_at", _("Created")),
]


@require_GET
@login_required
@role_required
def lead_export(request):
    """The leads of the current filter as CSV, streamed in keyset batches, formula-safe, from the user's scope."""
    leads = Lead.objects.visible_to(request.user)
    lead_filter = LeadFilter(request.GET, queryset=leads, user=request.user)
    fields = [field for field, _label in EXPORT_COLUMNS]
    writer = csv.writer(_Echo())

    def rows():
        yield "\ufeff" + writer.writerow(
            [str(label) for _field, label in EXPORT_COLUMNS]
        )  # BOM: Excel reads UTF-8
        last = 0
        while True:
            batch = list(lead_filter.qs.filter(pk__gt=last).order_by("pk").values_list("pk", *fields)[:2000])
            if not batch:
                return
            for pk, *values in batch:
                yield writer.writerow([cell(value) for value in values])
                last = pk

    response = StreamingHttpResponse(rows(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="leads-{timezone.localdate():%Y-%m-%d}.csv"'
    return response
