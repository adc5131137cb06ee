"""The attribution and cost panels: the full page, its htmx fragment and the CSV of each table.

Same access as the cockpit (admin, marketing, sales managers). The cockpit filters come from the query string
through CockpitFilter; the panel's own options (prefixed attr- / cost-) through a small allowlisting form. Both
are kept in the URL: a change inside the panel pushes the page's URL with the new query.
"""

import csv
import time
from urllib.parse import urlencode, urlparse

from django.contrib.auth.decorators import login_required
from django.db import OperationalError, connection
from django.http import Http404
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET
from django.views.decorators.vary import vary_on_headers
from django_htmx.http import push_url

from leadcockpit.lib.csv_safe import Echo, cell, csv_download

from . import credits
from .access import cockpit_required
from .filters import CockpitFilter
from .panels_attribution import OPTIONS, PANELS
from .views import is_fragment_request

SQLITE_LOCK_RETRIES = 4


def _build(request, name):
    cockpit_filter = CockpitFilter(request.GET or None)
    criteria = cockpit_filter.criteria
    options = OPTIONS[name](request.GET or None)
    as_of = credits.data_as_of()
    credits.refresh_if_stale(as_of)
    if as_of is None:  # built just now (tasks in-process), or not yet
        as_of = credits.data_as_of()
    options_query = [(f"{options.prefix}-{key}", value) for key, value in options.values().items()]
    return {
        "filter": cockpit_filter,
        "criteria": criteria,
        "as_of": as_of,
        "panel": PANELS[name](criteria, options),
        "query": urlencode(criteria.query_items() + options_query),
        "filter_items": criteria.query_items(),
        "filter_query": urlencode(criteria.query_items()),
    }


def _page_url(request, name, query):
    """Where the browser's address should point after a change inside the panel: the page it is on (the cockpit
    or the panel's own page) with the new query."""
    own = reverse(f"insights:{name}")
    current = urlparse(request.htmx.current_url or "").path if request.htmx else ""
    path = current if current in (own, reverse("insights:cockpit")) else own
    return f"{path}?{query}"


def _build_waiting_for_sqlite(request, name):
    """_build, retried a few times while SQLite reports a table locked: with tasks in-process, one panel request
    may be refreshing the credits while the page's other panel reads them (PostgreSQL readers never wait)."""
    for attempt in range(SQLITE_LOCK_RETRIES + 1):
        try:
            return _build(request, name)
        except OperationalError as exc:
            if connection.vendor != "sqlite" or "locked" not in str(exc) or attempt == SQLITE_LOCK_RETRIES:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def _panel_view(request, name):
    context = _build_waiting_for_sqlite(request, name)
    if is_fragment_request(request):
        response = render(request, f"insights/{name}.html#{name}-panel", context)
        if request.GET.get("from") == "options":
            push_url(response, _page_url(request, name, context["query"]))
        return response
    return render(request, f"insights/{name}.html", context)


@require_GET
@vary_on_headers("HX-Request")
@login_required
@cockpit_required
def attribution(request):
    """Credit per channel or campaign for a conversion, every attribution model side by side."""
    return _panel_view(request, "attribution")


@require_GET
@vary_on_headers("HX-Request")
@login_required
@cockpit_required
def costs(request):
    """Cost per lead, MQL, SAL, SQL and won deal per channel and campaign, and the value of a lead per stage."""
    return _panel_view(request, "costs")


def _csv(request, name, table):
    criteria = CockpitFilter(request.GET or None).criteria
    panel = PANELS[name](criteria, OPTIONS[name](request.GET or None))
    found = next((t for t in panel.tables if t.name == table), None)
    if found is None:
        raise Http404
    writer = csv.writer(Echo())

    def lines():
        yield writer.writerow([cell(value) for value in found.csv_header()])
        for row in found.csv_rows():
            yield writer.writerow([cell(value) for value in row])

    return csv_download(lines(), f"cockpit-{found.name}")


@require_GET
@login_required
@cockpit_required
def attribution_csv(request, table):
    return _csv(request, "attribution", table)


@require_GET
@login_required
@cockpit_required
def costs_csv(request, table):
    return _csv(request, "costs", table)
