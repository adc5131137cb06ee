"""Invariant 5: every number on the cockpit equals the direct count over the record for the same filters.

One seeded history (with its handovers), the rollups built from it, then each panel's tables under many filter
combinations compared with queries over leads, stage changes, score changes, handovers and sales activities
written here independently of the rollups. Runs on SQLite and, with DATABASE_URL, on PostgreSQL.
"""

import io
from collections import Counter, defaultdict
from datetime import date
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db.models import Count, Exists, OuterRef
from django.db.models.functions import TruncDate

from leadcockpit.handover.models import Handover
from leadcockpit.insights import panels, rollups
from leadcockpit.insights.filters import CockpitFilter, period_label, period_start
from leadcockpit.leads.models import Campaign, Lead, LifecycleStage, SalesActivity, StageChange
from leadcockpit.scoring.models import ScoreChange

pytestmark = pytest.mark.django_db

LOCAL = ZoneInfo(settings.TIME_ZONE)
TODAY = date(2026, 11, 22)
# How each cockpit dimension reads on a lead.
LEAD_PATHS = {
    "channel": "first_channel_id",
    "campaign": "campaign_id",
    "source": "source",
    "team": "owner__team_id",
    "rep": "owner_id",
    "industry": "company__industry",
    "country": "company__country",
}


@pytest.fixture
def history(db):
    call_command("seed_demo", leads=500, seed=11, today=TODAY, stdout=io.StringIO())
    rollups.rebuild()


def local_day(moment):
    return moment.astimezone(LOCAL).date()


def lead_q(criteria, prefix=""):
    return {prefix + LEAD_PATHS[name]: value for name, value in criteria.dims.items()}


def handover_q(criteria):
    """Handovers carry their own team and rep; the other dimensions are the lead's."""
    lookups = {}
    for name, value in criteria.dims.items():
        lookups[{"team": "team_id", "rep": "rep_id"}.get(name, "lead__" + LEAD_PATHS[name])] = value
    return lookups


def bucket_labels(criteria):
    return [period_label(first, criteria.period) for first, _last in criteria.buckets]


def label_of(criteria, day):
    return period_label(period_start(day, criteria.period), criteria.period)


def criteria_for(query):
    cockpit_filter = CockpitFilter(query, today=TODAY)
    assert cockpit_filter.form.is_valid(), cockpit_filter.form.errors
    return cockpit_filter.criteria


def check_percentiles(row, values):
    """row = (count, median, p75) from duration classes: the count is exact, each percentile lies within one
    class (5 %) of the values around its rank (percentile_cont interpolates between those two)."""
    values = sorted(values)
    assert row[0] == len(values)
    for q, estimate in zip((0.5, 0.75), row[1:], strict=True):
        if not values:
            assert estimate is None
            continue
        rank = q * (len(values) - 1)
        low, high = values[int(rank)], values[min(int(rank) + 1, len(values) - 1)]
        assert max(low, 1) / 1.0501 <= estimate <= max(high, 1) * 1.0501, (q, estimate, low, high)


def table(panel, name):
    return next(t for t in panel.tables if t.name == name)


def in_range(criteria, day):
    return criteria.start <= day <= criteria.end


# -- the direct counts ------------------------------------------------------------------------------------------


def expected_flow(criteria):
    counts = defaultdict(Counter)
    rows = (
        StageChange.objects.filter(
            to_stage_id__in=["mgl", "mql", "sal", "sql", "won"], **lead_q(criteria, "lead__")
        )
        .annotate(day=TruncDate("at", tzinfo=LOCAL))
        .filter(day__gte=criteria.start, day__lte=criteria.end)
        .values("day", "to_stage_id")
        .annotate(n=Count("id"))
    )
    for row in rows:
        counts[label_of(criteria, row["day"])][row["to_stage_id"]] += row["n"]
    return counts


def expected_cohort(criteria):
    counts = defaultdict(Counter)
    reached = {
        stage: Exists(StageChange.objects.filter(lead=OuterRef("pk"), to_stage_id=stage))
        for stage in ("mql", "sal", "sql", "won")
    }
    leads = (
        Lead.objects.filter(**lead_q(criteria))
        .annotate(day=TruncDate("created_at", tzinfo=LOCAL), **reached)
        .filter(day__gte=criteria.start, day__lte=criteria.end)
        .values("day", "mql", "sal", "sql", "won")
    )
    for lead in leads:
        label = label_of(criteria, lead["day"])
        counts[label]["mgl"] += 1
        for stage in ("mql", "sal", "sql", "won"):
            counts[label][stage] += bool(lead[stage])
    return counts


def check_funnel(criteria):
    panel = panels.funnel(criteria)
    expected = expected_cohort(criteria) if criteria.funnel == "cohort" else expected_flow(criteria)
    rows = table(panel, "funnel").rows
    assert [row[0] for row in rows] == bucket_labels(criteria)
    for row in rows:
        assert row[1:6] == [expected[row[0]][stage] for stage in ("mgl", "mql", "sal", "sql", "won")], row[0]
    if criteria.funnel == "cohort":
        now = table(panel, "funnel_now").rows
        phases = dict(LifecycleStage.objects.values_list("code", "phase"))
        direct = defaultdict(Counter)
        for day, stage in (
            Lead.objects.filter(**lead_q(criteria))
            .annotate(day=TruncDate("created_at", tzinfo=LOCAL))
            .filter(day__gte=criteria.start, day__lte=criteria.end)
            .values_list("day", "stage_id")
        ):
            group = stage if stage in ("won", "lost") else phases[stage]
            direct[label_of(criteria, day)][group] += 1
        for row in now:
            groups = ["marketing", "handover", "sales", "won", "lost", "customer"]
            assert row[1:] == [direct[row[0]][g] for g in groups], row[0]


def check_lights(criteria):
    panel = panels.lights(criteria)
    leads = Lead.objects.filter(**lead_q(criteria))
    now = Counter(leads.values_list("band", "temperature"))
    for row in table(panel, "lights_now").rows:
        band = {"Red": "red", "Yellow": "yellow", "Green": "green"}[str(row[0])]
        assert row[1:4] == [now[(band, t)] for t in ("cold", "warm", "hot")]
    # At the end of each period: each lead's last ledger entry by then (red and cold before the first), counted
    # from its creation; today the leads' stored lights.
    ledger = defaultdict(list)
    for lead_id, at, band, temperature in (
        ScoreChange.objects.filter(lead__in=leads)
        .values_list("lead_id", "at", "band", "temperature")
        .order_by("at", "pk")
    ):
        ledger[lead_id].append((local_day(at), band, temperature))
    stored = {pk: (band, temp) for pk, band, temp in leads.values_list("pk", "band", "temperature")}
    created = dict(leads.values_list("pk", "created_at"))
    rows = table(panel, "lights_over_time").rows
    for (_first, last), row in zip(criteria.buckets, rows, strict=True):
        bands, temps = Counter(), Counter()
        for pk, created_at in created.items():
            if local_day(created_at) > last:
                continue
            entries = ledger[pk]
            state = ("red", "cold") if entries else stored[pk]
            for day, band, temperature in entries:
                if day <= last:
                    state = (band, temperature)
            if entries and entries[-1][0] <= last:
                state = stored[pk]  # the last episode carries the stored light
            bands[state[0]] += 1
            temps[state[1]] += 1
        assert row[1:] == [
            bands["red"],
            bands["yellow"],
            bands["green"],
            temps["cold"],
            temps["warm"],
            temps["hot"],
        ]


def check_velocity(criteria):
    panel = panels.velocity(criteria)
    lead_ids = set(Lead.objects.filter(**lead_q(criteria)).values_list("pk", flat=True))
    trail = defaultdict(list)
    for lead_id, stage, at in (
        StageChange.objects.filter(lead_id__in=lead_ids)
        .order_by("at", "pk")
        .values_list("lead_id", "to_stage_id", "at")
    ):
        trail[lead_id].append((stage, at))
    durations = defaultdict(list)
    first_month = criteria.start.replace(day=1)
    for steps in trail.values():
        for (stage, at), (_next, next_at) in zip(steps, steps[1:], strict=False):
            left = local_day(next_at)
            if first_month <= left and left.replace(day=1) <= criteria.end.replace(day=1):  # whole months
                durations[stage].append((next_at - at).total_seconds())
    names = {s.code: s.name for s in LifecycleStage.objects.filter(phase__in=panels.VELOCITY_PHASES)}
    rows = {str(row[0]): row[1:] for row in table(panel, "velocity_stages").rows}
    assert set(rows) == {names[code] for code in durations if code in names}
    for code, values in durations.items():
        if code in names:
            check_percentiles(rows[names[code]], values)

    handovers = list(
        Handover.objects.filter(**handover_q(criteria))
        .annotate(day=TruncDate("created_at", tzinfo=LOCAL))
        .filter(day__gte=criteria.start, day__lte=criteria.end)
    )
    contacts = defaultdict(list)
    for lead_id, at, kind in SalesActivity.objects.values_list("lead_id", "occurred_at", "kind"):
        if kind != "note":
            contacts[lead_id].append(at)
    sql_at = defaultdict(list)
    for lead_id, at in StageChange.objects.filter(to_stage_id="sql").values_list("lead_id", "at"):
        sql_at[lead_id].append(at)
    accept = [(h.decided_at - h.created_at).total_seconds() for h in handovers if h.status == "accepted"]
    first = {}
    for h in handovers:
        later = [at for at in contacts[h.lead_id] if at >= h.created_at]
        first[h.pk] = (min(later) - h.created_at).total_seconds() if later else None
    speed = table(panel, "velocity_handover").rows
    for row, values in zip(speed, [accept, [v for v in first.values() if v is not None]], strict=True):
        check_percentiles(row[1:], values)
    buckets = Counter()
    became = Counter()
    for h in handovers:
        seconds = first[h.pk]
        key = (
            "none" if seconds is None else "1h" if seconds <= 3600 else "24h" if seconds <= 86400 else "later"
        )
        buckets[key] += 1
        became[key] += any(at >= h.created_at for at in sql_at[h.lead_id])
    contact_rows = table(panel, "velocity_contact").rows
    assert [(row[1], row[2]) for row in contact_rows] == [
        (buckets[k], became[k]) for k in ("1h", "24h", "later", "none")
    ]
    return handovers


def check_sla_and_quality(criteria, now):
    handovers = list(
        Handover.objects.filter(**handover_q(criteria))
        .annotate(day=TruncDate("created_at", tzinfo=LOCAL))
        .filter(day__gte=criteria.start, day__lte=criteria.end)
        .select_related("lead")
    )

    def sla_state(h):
        if h.decided_at is not None:
            return "met" if h.decided_at <= h.due_at else "breached"
        return "breached" if h.due_at < now else "pending"

    sla = panels.sla(criteria)
    for group, attr in (("team", "team_id"), ("rep", "rep_id")):
        direct = defaultdict(Counter)
        for h in handovers:
            direct[getattr(h, attr) or 0][sla_state(h)] += 1
        rows = table(sla, f"sla_{group}").rows
        assert sorted(row[1:5] for row in rows) == sorted(
            [sum(c.values()), c["met"], c["breached"], c["pending"]] for c in direct.values()
        )

    quality = panels.quality(criteria)
    names = dict(Lead.Source.choices)
    campaigns = dict(Campaign.objects.values_list("pk", "name"))
    reasons = [code for code, _label in Handover.RejectReason.choices]
    for group in ("source", "campaign"):
        direct = defaultdict(Counter)
        for h in handovers:
            key = h.lead.source if group == "source" else h.lead.campaign_id
            direct[key][h.status] += 1
            if h.status == "rejected":
                direct[key][h.reject_reason] += 1
        rows = {str(row[0]): row[1:] for row in table(quality, f"quality_{group}").rows}
        assert len(rows) == len(direct)
        for key, c in direct.items():
            label = str(names[key]) if group == "source" else campaigns.get(key, "No campaign")
            accepted, rejected, open_ = c["accepted"], c["rejected"], c["open"]
            assert rows[label][:4] == [accepted + rejected + open_, accepted, rejected, open_]
            assert rows[label][5:] == [c[r] for r in reasons]

    # SAL → SQL and SQL → won per rep, leads created in the range, by owner.
    reached = {
        stage: Exists(StageChange.objects.filter(lead=OuterRef("pk"), to_stage_id=stage))
        for stage in ("sal", "sql", "won")
    }
    per_rep = defaultdict(Counter)
    for lead in (
        Lead.objects.filter(**lead_q(criteria))
        .annotate(day=TruncDate("created_at", tzinfo=LOCAL), **reached)
        .filter(day__gte=criteria.start, day__lte=criteria.end)
        .values("owner_id", "sal", "sql", "won")
    ):
        for stage in ("sal", "sql", "won"):
            per_rep[lead["owner_id"] or 0][stage] += bool(lead[stage])
    rows = table(quality, "quality_rep").rows
    assert sorted(row[1:4] for row in rows) == sorted(
        [c["sal"], c["sql"], c["won"]] for c in per_rep.values() if any(c.values())
    )


QUERIES = [
    {"start": "2025-06-01", "end": "2026-11-22"},
    {"start": "2025-06-01", "end": "2026-11-22", "funnel": "cohort"},
    {"period": "week", "start": "2026-08-01", "end": "2026-11-22"},
    {"period": "quarter", "start": "2025-05-01", "end": "2026-11-22", "funnel": "cohort"},
]


def dimension_queries():
    lead = (
        Lead.objects.filter(owner__isnull=False, campaign__isnull=False)
        .select_related("company", "owner")
        .first()
    )
    base = {"start": "2025-06-01", "end": "2026-11-22"}
    one = [
        {"channel": lead.first_channel_id},
        {"campaign": str(lead.campaign_id)},
        {"source": lead.source},
        {"team": str(lead.owner.team_id)},
        {"rep": str(lead.owner_id)},
        {"industry": lead.company.industry},
        {"country": lead.company.country.code},
    ]
    two = [
        {"channel": lead.first_channel_id, "source": lead.source},
        {"rep": str(lead.owner_id), "industry": lead.company.industry, "funnel": "cohort"},
        {"team": str(lead.owner.team_id), "country": lead.company.country.code},
    ]
    return [{**base, **q} for q in one + two]


def test_every_panel_number_equals_the_direct_count_over_the_record(history):
    from django.utils import timezone

    now = timezone.now()
    assert Handover.objects.count() > 50, "the seeded history has handovers to count"
    for query in QUERIES + dimension_queries():
        criteria = criteria_for(query)
        check_funnel(criteria)
        check_lights(criteria)
        check_velocity(criteria)
        check_sla_and_quality(criteria, now)


def test_the_cube_and_the_per_lead_rollups_give_the_same_numbers(history):
    """A single dimension reads the cube; the same filter doubled up (two dimensions naming the same leads) reads
    the per-lead rows: both must agree."""
    lead = Lead.objects.filter(owner__isnull=False).select_related("owner").first()
    single = criteria_for({"start": "2025-06-01", "end": "2026-11-22", "rep": str(lead.owner_id)})
    assert single.cube_key == ("rep", str(lead.owner_id))
    team = lead.owner.team_id
    double = criteria_for(
        {"start": "2025-06-01", "end": "2026-11-22", "rep": str(lead.owner_id), "team": str(team)}
    )
    assert double.cube_key is None
    for name in ("funnel", "lights", "velocity", "sla", "quality"):
        a = [t.rows for t in panels.PANELS[name](single).tables]
        b = [t.rows for t in panels.PANELS[name](double).tables]
        assert a == b, name
