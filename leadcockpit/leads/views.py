import csv
import heapq
from operator import itemgetter

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.db.models import Q
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from leadcockpit.accounts.decorators import role_required
from leadcockpit.lib.csv_safe import Echo, cell, csv_download
from leadcockpit.lib.keyset import paginate

from .access import get_lead_for_user
from .filters import DEFAULT_SORT, SORTS, LeadFilter
from .models import Lead, SalesActivity, Touchpoint
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
    # Translated now, in the request's language: the rows are written after the view has returned.
    header = [str(label) for _field, label in EXPORT_COLUMNS]
    writer = csv.writer(Echo())

    def rows():
        yield "\ufeff" + writer.writerow(header)  # BOM: Excel reads UTF-8
        last = 0
        while True:
            batch = list(lead_filter.qs.filter(pk__gt=last).order_by("pk").values_list("pk", *fields)[:2000])
            if not batch:
                return
            for pk, *values in batch:
                yield writer.writerow([cell(value) for value in values])
                last = pk

    return csv_download(rows(), "leads")


# Leads per batch of the activity export, and activities per query within a batch of leads.
ACTIVITY_EXPORT_LEADS = 500
ACTIVITY_EXPORT_ROWS = 2000

TOUCHPOINT_EXPORT_FIELDS = (
    "kind",
    "url",
    "referrer",
    "page_title",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "campaign__name",
    "channel__name_en",
    "channel__name_de",
    "visitor_id",
)
SALES_ACTIVITY_EXPORT_FIELDS = (
    "kind",
    "outcome",
    "note",
    "rep__username",
    "rep__first_name",
    "rep__last_name",
    "next_follow_up",
)


def _by_lead_then_time(queryset, fields, size):
    """(lead id, time, id, *fields) of `queryset` in that order, `size` rows a query, each after the last seen."""
    after = Q()
    while True:
        batch = list(
            queryset.filter(after)
            .order_by("lead_id", "occurred_at", "pk")
            .values_list("lead_id", "occurred_at", "pk", *fields)[:size]
        )
        yield from batch
        if len(batch) < size:
            return
        lead, at, pk = batch[-1][:3]
        # Written with a leading range (lead >= l) so the database can start the (lead, occurred_at) index scan there.
        after = Q(lead_id__gte=lead) & (
            Q(lead_id__gt=lead) | Q(occurred_at__gt=at) | Q(occurred_at=at, pk__gt=pk)
        )


@require_GET
@login_required
@role_required
def activity_export(request):
    """Touchpoints and sales activities of the current filter's leads as one CSV, lead by lead, oldest first.

    One row per activity, so a spreadsheet filter on lead or protocol shows a lead's journey top to bottom. Streamed
    in keyset batches of leads, and within them of activities: memory and queries per batch stay bounded.
    """
    user = request.user
    lead_filter = LeadFilter(request.GET, queryset=Lead.objects.visible_to(user), user=user)
    # Labels and the time zone are settled now, in the request's language: the rows are written after the view returns.
    online, sales = str(_("Online activity")), str(_("Sales activity"))
    touchpoint_kinds = {code: str(label) for code, label in Touchpoint.Kind.choices}
    sales_kinds = {code: str(label) for code, label in SalesActivity.Kind.choices}
    outcomes = {code: str(label) for code, label in SalesActivity.Outcome.choices}
    zone = timezone.get_current_timezone()
    german = (get_language() or "en").startswith("de")
    header = [
        str(label)
        for label in (
            _("Lead ID"),
            _("Email"),
            _("First name"),
            _("Last name"),
            _("Company"),
            _("Protocol"),
            _("When (%(zone)s)") % {"zone": zone},
            _("Kind"),
            _("URL"),
            _("Referrer"),
            _("Page title"),
            _("UTM source"),
            _("UTM medium"),
            _("UTM campaign"),
            _("Campaign"),
            _("Channel"),
            _("Visitor ID"),
            _("Outcome"),
            _("Note"),
            _("Rep"),
            _("Next follow-up"),
        )
    ]
    writer = csv.writer(Echo())

    def when(value):
        return value.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S")  # a text Excel reads as a date and time

    def touchpoint_rows(ids):
        scoped = Touchpoint.objects.visible_to(user).filter(lead_id__in=ids)
        for lead, at, pk, kind, *web, campaign, channel_en, channel_de, visitor in _by_lead_then_time(
            scoped, TOUCHPOINT_EXPORT_FIELDS, ACTIVITY_EXPORT_ROWS
        ):
            channel = channel_de if german else channel_en
            values = [online, when(at), touchpoint_kinds.get(kind, kind), *web, campaign, channel, visitor]
            yield (lead, at, 0, pk), values + ["", "", "", ""]

    def sales_rows(ids):
        scoped = SalesActivity.objects.visible_to(user).filter(lead_id__in=ids)
        for lead, at, pk, kind, outcome, note, username, first, last, follow_up in _by_lead_then_time(
            scoped, SALES_ACTIVITY_EXPORT_FIELDS, ACTIVITY_EXPORT_ROWS
        ):
            rep = f"{first or ''} {last or ''}".strip() or username
            values = [sales, when(at), sales_kinds.get(kind, kind)] + [""] * 9
            yield (lead, at, 1, pk), values + [outcomes.get(outcome, outcome), note, rep, follow_up]

    def rows():
        yield "\ufeff" + writer.writerow(header)  # BOM: Excel reads UTF-8
        last = 0
        while True:
            leads = {  # id → its first five cells, escaped once per lead rather than once per activity
                pk: [cell(value) for value in lead]
                for pk, *lead in lead_filter.qs.filter(pk__gt=last)
                .order_by("pk")
                .values_list("pk", "pk", "email", "first_name", "last_name", "company__name")[
                    :ACTIVITY_EXPORT_LEADS
                ]
            }
            if not leads:
                return
            ids = list(leads)
            # Lines go out in chunks: one chunk per line costs more in the response machinery than the line itself.
            chunk = []
            for (lead, *_key), values in heapq.merge(
                touchpoint_rows(ids), sales_rows(ids), key=itemgetter(0)
            ):
                chunk.append(writer.writerow(leads[lead] + [cell(value) for value in values]))
                if len(chunk) == 500:
                    yield "".join(chunk)
                    chunk = []
            if chunk:
                yield "".join(chunk)
            if len(ids) < ACTIVITY_EXPORT_LEADS:
                return
            last = ids[-1]

    return csv_download(rows(), "lead-activities")
