"""`manage.py benchmark dashboards`: every cockpit panel over HTTP with varied filters, and the rollups' cost.

Reports, per panel, the p95 of repeated requests (Django test client, htmx fragment, as a manager) with filters
drawn from a fixed list of shapes: no filter, one dimension, two dimensions, each period kind and funnel view.
Then the full rollup rebuild, and the incremental refresh after 10,000 new touchpoints with what they cause
(rescoring, new MQLs moved and routed, stage changes).
"""

import contextlib
import random
import statistics
import time
import uuid
from datetime import timedelta

from django.db import transaction
from django.test import Client
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from leadcockpit.accounts.models import User
from leadcockpit.handover.models import Handover
from leadcockpit.leads.models import Campaign, Channel, Lead, Touchpoint

from .benchmarks import _ensure_seeded, area

REQUESTS_PER_PANEL = 40
WARMUP = 3
NEW_TOUCHPOINTS = 10_000
# Panels of the attribution helper, requested when their URL names exist.
OTHER_PANELS = ["attribution", "costs"]


def filter_shapes(seed):
    """Query strings the benchmark cycles through: the filter combinations a manager uses, with varied values."""
    rng = random.Random(seed)
    channels = list(Channel.objects.values_list("code", flat=True))
    campaigns = list(Campaign.objects.values_list("pk", flat=True))
    reps = list(User.objects.filter(groups__name="sales rep").values_list("pk", flat=True))
    sources = [code for code, _label in Lead.Source.choices]
    today = timezone.localdate()
    shapes = []
    for i in range(60):
        query = {"period": ["month", "week", "quarter"][i % 3]}
        if query["period"] == "week":
            query["start"] = (today - timedelta(days=7 * 13)).isoformat()
        if i % 4 == 1:
            query["channel"] = rng.choice(channels)
        elif i % 4 == 2:
            query["source"] = rng.choice(sources)
            if campaigns:
                query["campaign"] = rng.choice(campaigns)
        elif i % 4 == 3 and reps:
            query["rep"] = rng.choice(reps)
            query["channel"] = rng.choice(channels)
        if i % 5 == 0:
            query["funnel"] = "cohort"
        shapes.append(query)
    return shapes


def panel_urls():
    from leadcockpit.insights.panels import PANELS

    urls = {name: reverse("insights:panel", args=[name]) for name in PANELS}
    for name in OTHER_PANELS:
        with contextlib.suppress(NoReverseMatch):
            urls[name] = reverse(f"insights:{name}")
    return urls


def time_panels(client, shapes, out):
    """p95 (and median) ms per panel over REQUESTS_PER_PANEL requests with the varied filters."""
    figures = {}
    for name, url in panel_urls().items():
        timings = []
        for i in range(WARMUP + REQUESTS_PER_PANEL):
            query = shapes[i % len(shapes)]
            started = time.perf_counter()
            response = client.get(url, query, HTTP_HX_REQUEST="true")
            elapsed = (time.perf_counter() - started) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"{name} answered {response.status_code} for {query}")
            if i >= WARMUP:
                timings.append(elapsed)
        timings.sort()
        p95 = timings[min(len(timings) - 1, int(round(0.95 * len(timings))) - 1)]
        figures[name] = (round(p95, 1), round(statistics.median(timings), 1))
        out(f"  {name:<12} p95 {p95:7.1f} ms   median {statistics.median(timings):7.1f} ms")
    return figures


def add_touchpoints(n, seed):
    """n new touchpoints on existing leads (a few engaged ones get a demo request), then what they cause: the
    leads are rescored (some become MQLs and move), new MQLs are routed. Returns the leads touched."""
    from leadcockpit.scoring import actions as scoring

    rng = random.Random(seed)
    max_id = Lead.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    lead_ids = sorted({rng.randint(1, max_id) for _ in range(n // 3)})
    lead_ids = list(Lead.objects.filter(pk__in=lead_ids).values_list("pk", flat=True))
    channels = list(Channel.objects.values_list("code", flat=True))
    now = timezone.now()
    kinds = [Touchpoint.Kind.PAGE_VIEW] * 6 + [Touchpoint.Kind.CONTENT_DOWNLOAD, Touchpoint.Kind.EMAIL_CLICK]
    touchpoints = []
    for i in range(n):
        lead_id = lead_ids[i % len(lead_ids)]
        kind = Touchpoint.Kind.DEMO_REQUEST if i % 97 == 0 else rng.choice(kinds)
        at = now - timedelta(minutes=rng.randint(0, 600))
        touchpoints.append(
            Touchpoint(
                lead_id=lead_id,
                visitor_id=f"bench-{lead_id}",
                kind=kind,
                url="https://www.solvaro.example/pricing",
                channel_id=rng.choice(channels),
                occurred_at=at,
                received_at=at,
                client_event_id=uuid.uuid4(),
            )
        )
    with transaction.atomic():
        Touchpoint.objects.bulk_create(touchpoints, batch_size=5000)
        scoring.mark_dirty(lead_ids=lead_ids)
    from leadcockpit.handover import actions as handover

    while scoring.rescore_dirty().scored:  # what the rescore task does; new MQLs move to MQL
        pass
    handover.route_pending(batch=2000)
    return len(lead_ids)


@area(
    "dashboards",
    "Every cockpit panel's p95 with varied filters; rollup rebuild and the refresh after 10k touchpoints.",
)
def dashboards(*, leads, touchpoints, seed, reset, out, **options):
    from leadcockpit.insights import credits, rollups

    _ensure_seeded(leads=leads, touchpoints=touchpoints, seed=seed, reset=reset, out=out)

    out("Full rollup rebuild …")
    rebuild_s = rollups.rebuild()
    out(f"  {rebuild_s:.1f} s")
    rollups.refresh()  # settle the watermarks on what the rebuild saw
    # The attribution and cost panels read the stored credits: built here, as the nightly job would, rather than
    # by the first panel request.
    out("Full attribution credit rebuild …")
    credits_rebuild = credits.rebuild()
    out(f"  {credits_rebuild.seconds:.1f} s for {credits_rebuild.leads:,} leads")
    credits.refresh()

    manager = User.objects.filter(groups__name="sales manager").order_by("pk").first()
    client = Client(HTTP_HOST="localhost")
    client.force_login(manager)
    out(f"Panels: {REQUESTS_PER_PANEL} requests each with varied filters, as {manager.username} …")
    panels = time_panels(client, filter_shapes(seed), out)

    out(f"Adding {NEW_TOUCHPOINTS:,} touchpoints and what they cause (rescoring, MQL moves, routing) …")
    started = time.perf_counter()
    touched = add_touchpoints(NEW_TOUCHPOINTS, seed)
    out(f"  {touched:,} leads touched in {time.perf_counter() - started:.1f} s")
    out("Incremental refresh …")
    recomputed, refresh_s = rollups.refresh()
    out(f"  {recomputed:,} leads recomputed in {refresh_s:.2f} s")
    credits_refresh = credits.refresh()
    out(f"  credits: {credits_refresh.leads:,} leads recomputed in {credits_refresh.seconds:.2f} s")
    return {
        "panel_p95_ms": {name: p95 for name, (p95, _median) in panels.items()},
        "panel_median_ms": {name: median for name, (_p95, median) in panels.items()},
        "requests_per_panel": REQUESTS_PER_PANEL,
        "rollup_rebuild_s": round(rebuild_s, 2),
        "refresh_10k_s": round(refresh_s, 2),
        "refresh_10k_leads": recomputed,
        "credits_rebuild_s": round(credits_rebuild.seconds, 2),
        "credits_refresh_10k_s": round(credits_refresh.seconds, 2),
        "handovers": Handover.objects.count(),
    }
