import csv
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import render
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers

from leadcockpit.lib.csv_safe import Echo, cell, csv_download

from .access import cockpit_required
from .filters import CockpitFilter
from .panels import PANELS
from .rollups import data_as_of, refresh_if_stale


def is_fragment_request(request):
    """htmx asking for a region; boosted links and history restores get the full page."""
    return bool(request.htmx) and not request.htmx.boosted and not request.htmx.history_restore_request


def _context(request, names):
    cockpit_filter = CockpitFilter(request.GET or None)
    criteria = cockpit_filter.criteria
    as_of = data_as_of()
    refresh_if_stale(as_of)
    if as_of is None:  # built just now (tasks in-process), or not yet
        as_of = data_as_of()
    return {
        "filter": cockpit_filter,
        "criteria": criteria,
        "query": urlencode(criteria.query_items()),
        "as_of": as_of,
        "panels": [PANELS[name](criteria) for name in names],
    }


@require_GET
@vary_on_headers("HX-Request")
@login_required
@cockpit_required
def cockpit(request):
    """The manager cockpit: the filter form and every panel; htmx swaps the panels when a filter changes."""
    template = "insights/cockpit.html"
    if is_fragment_request(request):
        template += "#panels"
    return render(request, template, _context(request, PANELS))


@require_GET
@vary_on_headers("HX-Request")
@login_required
@cockpit_required
def panel(request, name):
    """One panel alone (what the benchmark times, and a link to a panel can open)."""
    if name not in PANELS:
        raise Http404
    template = "insights/cockpit.html"
    template += "#panel-fragment" if is_fragment_request(request) else ""
    return render(request, template, _context(request, [name]))


@require_GET
@login_required
@cockpit_required
def panel_csv(request, name, table):
    """A panel's table as CSV, for the same filters; cells that a spreadsheet would run are quoted."""
    if name not in PANELS:
        raise Http404
    criteria = CockpitFilter(request.GET or None).criteria
    found = next((t for t in PANELS[name](criteria).tables if t.name == table), None)
    if found is None:
        raise Http404
    writer = csv.writer(Echo())

    def lines():
        yield writer.writerow([cell(value) for value in found.csv_header()])
        for row in found.csv_rows():
            yield writer.writerow([cell(value) for value in row])

    return csv_download(lines(), f"cockpit-{found.name}")
