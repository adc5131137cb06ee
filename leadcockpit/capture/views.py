import base64
import csv
import logging
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from leadcockpit.accounts.decorators import role_required
from leadcockpit.accounts.roles import Role, role_of
from leadcockpit.leads.models import Campaign, Lead, Touchpoint
from leadcockpit.leads.views import is_fragment_request
from leadcockpit.lib.csv_safe import Echo, cell, csv_download
from leadcockpit.lib.csvread import NotReadable
from leadcockpit.scoring.actions import mark_dirty

from . import importing
from .forms import MappingForm, UploadForm
from .links import allowed_target, read_token
from .models import ImportJob

log = logging.getLogger(__name__)
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


def _record(lead_id, campaign_id, kind, url=""):
    """A touchpoint for a lead that still exists (a campaign that no longer does is left out)."""
    if not Lead.objects.filter(pk=lead_id).exists():
        return
    if campaign_id and not Campaign.objects.filter(pk=campaign_id).exists():
        campaign_id = None
    now = timezone.now()
    with transaction.atomic():
        Touchpoint.objects.create(
            lead_id=lead_id,
            campaign_id=campaign_id,
            kind=kind,
            url=url[:2048],
            occurred_at=now,
            received_at=now,
        )
        mark_dirty(lead_ids=[lead_id])


@never_cache
@require_GET
def email_open(request, token):
    """The open pixel: always a 1×1 GIF; an open is recorded only for a good token."""
    found = read_token(token)
    if found:
        lead_id, campaign_id, _url = found
        _record(lead_id, campaign_id, Touchpoint.Kind.EMAIL_OPEN)
    return HttpResponse(PIXEL, content_type="image/gif")


@never_cache
@require_GET
def email_click(request, token):
    """A click: recorded and redirected only for a good token whose target is on the allowlist."""
    found = read_token(token)
    if not found or not allowed_target(found[2]):
        return render(request, "capture/link_invalid.html", status=404)
    lead_id, campaign_id, url = found
    _record(lead_id, campaign_id, Touchpoint.Kind.EMAIL_CLICK, url)
    return HttpResponseRedirect(url)


@require_GET
def snippet_demo(request):
    """A page that uses the tracking snippet, for trying it (and for its browser test). The key comes from the
    query: keys used in browsers are public and bound to origins."""
    return render(request, "capture/snippet_demo.html", {"key": request.GET.get("key", "")[:200]})


# --- CSV import ----------------------------------------------------------------------------------------------


def _importer_required(view):
    """Imports create and change leads: admins and marketing only (403 for other roles)."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if role_of(request.user) not in (Role.ADMIN, Role.MARKETING):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return login_required(role_required(wrapper))


def get_import_for_user(request, pk, queryset=None):
    """The import `pk` if the user may see it (admins and marketing see every import); otherwise 404."""
    base = queryset if queryset is not None else ImportJob.objects.defer("content")
    if role_of(request.user) not in (Role.ADMIN, Role.MARKETING):
        raise Http404
    return get_object_or_404(base, pk=pk)


@require_http_methods(["GET", "POST"])
@_importer_required
def import_list(request):
    """Upload a file (checked at once: a workbook, an empty file or junk gets a message and no job), and the
    imports so far."""
    form = UploadForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            job = importing.create_job(
                kind=form.cleaned_data["kind"],
                filename=upload.name,
                data=upload.read(),
                by=request.user,
                preset=form.cleaned_data["preset"],
            )
        except NotReadable as exc:
            form.add_error("file", str(exc))
        else:
            return redirect("capture:import_detail", job.pk)
    jobs = ImportJob.objects.defer("content", "mapping").select_related("created_by")[:50]
    status = 422 if form.errors else 200
    return render(request, "capture/imports.html", {"form": form, "jobs": jobs}, status=status)


@require_http_methods(["GET", "POST"])
@vary_on_headers("HX-Request")
@_importer_required
def import_detail(request, pk):
    """Map the columns with a preview of the first rows, then start; afterwards the progress and the results."""
    job = get_import_for_user(request, pk, ImportJob.objects.all())
    context = {"job": job}
    if job.status == ImportJob.Status.MAPPING:
        form = MappingForm(request.POST or None, job=job)
        mapping = job.mapping
        if request.method == "POST":
            if form.is_valid():
                mapping = form.cleaned_data["mapping"]
                if request.POST.get("action") == "start":
                    importing.queue_job(
                        job=job,
                        mapping=mapping,
                        by=request.user,
                        preset_name=form.cleaned_data["preset_name"],
                    )
                    return redirect("capture:import_detail", job.pk)
            elif "mapping" in form.cleaned_data:
                mapping = form.cleaned_data["mapping"]
        context.update(form=form, preview=_preview(job, mapping))
        if is_fragment_request(request):
            return render(request, "capture/import_detail.html#import-preview", context)
        status = 422 if request.method == "POST" else 200
        return render(request, "capture/import_detail.html", context, status=status)
    if request.method == "POST":
        return redirect("capture:import_detail", job.pk)
    context["rejections"] = job.rejections.all()[:20]
    return render(request, "capture/import_detail.html", context)


def _preview(job, mapping):
    allowed = importing.targets_of(job.kind)
    rows = []
    for row in importing.preview(job, mapping):
        shown = [(allowed[code].label, value) for code, value in row.values.items()]
        shown += list(row.attributes.items())  # kept attributes under their own names
        rows.append({"row": row, "values": shown[:8], "more": max(0, len(shown) - 8)})
    return rows


@require_POST
@_importer_required
def import_discard(request, pk):
    job = get_import_for_user(request, pk)
    if job.status == ImportJob.Status.MAPPING:
        job.delete()
        messages.success(request, _("The upload was discarded; nothing was imported."))
    return redirect("capture:imports")


@require_GET
@_importer_required
def import_progress(request, pk):
    """The progress bar alone (htmx polls it while the import runs); without htmx, the import's page."""
    job = get_import_for_user(request, pk)
    if not is_fragment_request(request):
        return redirect("capture:import_detail", job.pk)
    return render(request, "capture/import_detail.html#import-progress", {"job": job})


@require_GET
@_importer_required
def import_report(request, pk):
    """The rejected rows as CSV: row number, reason, then the row as it was; formula-safe, streamed."""
    job = get_import_for_user(request, pk)
    writer = csv.writer(Echo())

    def rows():
        yield "\ufeff" + writer.writerow([_("Row"), _("Reason"), *job.header])
        last = 0
        while True:
            batch = list(
                job.rejections.filter(row_number__gt=last)
                .order_by("row_number")
                .values_list("row_number", "reason", "cells")[:2000]
            )
            if not batch:
                return
            for number, reason, cells in batch:
                yield writer.writerow([number, cell(reason), *(cell(value) for value in cells)])
                last = number

    return csv_download(rows(), f"import-{job.pk}-rejected-rows")
