"""The rollups: an incremental refresh leaves exactly what a full rebuild would; watermarks miss nothing."""

import io
import random
from datetime import date, timedelta

import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from leadcockpit.handover import actions as handover_actions
from leadcockpit.handover.models import Handover
from leadcockpit.insights import rollups
from leadcockpit.insights.models import (
    BandInterval,
    FunnelDaily,
    HandoverDaily,
    HandoverFact,
    LeadFact,
    LightDaily,
    RollupState,
    StageInterval,
    StaleLead,
    VelocityMonthly,
)
from leadcockpit.leads.actions import merge_leads
from leadcockpit.leads.models import Campaign, Lead, SalesActivity, StageChange
from leadcockpit.scoring.models import ScoreChange, ScoringVersion

from .factories import LeadFactory

pytestmark = pytest.mark.django_db

TABLES = [
    LeadFact,
    StageInterval,
    BandInterval,
    HandoverFact,
    FunnelDaily,
    LightDaily,
    VelocityMonthly,
    HandoverDaily,
]


def snapshot():
    """Every rollup row (without surrogate ids), sorted, per table."""
    out = {}
    for model in TABLES:
        fields = [f.attname for f in model._meta.concrete_fields if f.attname != "id"]
        out[model.__name__] = sorted(tuple(str(v) for v in row) for row in model.objects.values_list(*fields))
    return out


def assert_refresh_equals_rebuild():
    rollups.refresh()
    refreshed = snapshot()
    rollups.rebuild()
    rebuilt = snapshot()
    for name in refreshed:
        assert refreshed[name] == rebuilt[name], name


@pytest.fixture
def seeded(db):
    call_command("seed_demo", leads=300, seed=21, today=date(2026, 11, 22), stdout=io.StringIO())
    rollups.rebuild()
    rollups.refresh()


def test_a_refresh_after_everyday_changes_equals_a_rebuild(seeded):
    rng = random.Random(4)
    manager = Handover.objects.filter(rep__isnull=False).first().rep
    marketing_leads = list(Lead.objects.filter(stage_id="mgl").order_by("pk")[:40])
    for lead in marketing_leads[:8]:  # scoring makes MQLs, routing hands them over
        lead.move_to("mql", system="scoring", reason="score passed the MQL threshold")
        handover_actions.route_lead(lead_id=lead.pk)
    open_handovers = list(Handover.objects.filter(status="open").select_related("lead", "rep")[:6])
    for handover in open_handovers[:3]:
        handover_actions.accept(handover=handover, by=handover.rep)
        SalesActivity.objects.create(
            lead=handover.lead, rep=handover.rep, kind="call", occurred_at=timezone.now()
        )
    for handover in open_handovers[3:5]:
        handover_actions.reject(handover=handover, by=handover.rep, reason="no_budget")
    Handover.objects.filter(pk=open_handovers[5].pk).update(due_at=timezone.now() - timedelta(minutes=1))
    version = ScoringVersion.objects.filter(status="active").first()
    for lead in marketing_leads[10:16]:  # new score ledger entries, and the stored light that goes with them
        band, temperature = rng.choice([("green", "hot"), ("yellow", "warm")])
        ScoreChange.objects.create(
            lead=lead,
            version=version,
            at=timezone.now(),
            fit=1,
            interest=1,
            score=60,
            band=band,
            temperature=temperature,
            grade="B2",
            is_mql=False,
        )
        Lead.objects.filter(pk=lead.pk).update(band=band, temperature=temperature)
    for lead in marketing_leads[16:20]:  # edits of dimensions: campaign and owner
        lead.campaign = Campaign.objects.order_by("?").first()
        lead.owner = manager
        lead.save()
    merge_leads(keep=marketing_leads[20], duplicate=marketing_leads[21], system="test", reason="same person")
    Lead.objects.filter(pk=marketing_leads[22].pk).delete()  # gone without a trail
    new = LeadFactory(first_channel_id="webinar")
    StageChange.objects.create(lead=new, to_stage_id="mgl", system_actor="capture", at=timezone.now())

    assert_refresh_equals_rebuild()
    assert not StaleLead.objects.exists()
    assert LeadFact.objects.filter(lead_id=new.pk).exists()
    assert not LeadFact.objects.filter(lead_id=marketing_leads[21].pk).exists()
    assert not LeadFact.objects.filter(lead_id=marketing_leads[22].pk).exists()
    fact = HandoverFact.objects.get(handover_id=open_handovers[5].pk)
    assert fact.sla == "breached"  # a deadline that passed changes the SLA without any write


def test_a_refresh_recomputes_only_what_changed(seeded):
    lead = Lead.objects.filter(stage_id="mgl").first()
    lead.move_to("mql", system="scoring")
    recomputed, _seconds = rollups.refresh()
    assert recomputed == 1
    assert LeadFact.objects.get(lead_id=lead.pk).reached_mql


def test_a_row_committed_late_below_the_watermark_is_still_seen(seeded):
    """A transaction that drew its id before a refresh and committed after it: the next refresh notices the
    last window grew and takes its leads again."""
    a, b = Lead.objects.filter(stage_id="mgl").order_by("pk")[:2]
    first = StageChange.objects.create(lead=a, to_stage_id="mql", system_actor="scoring", at=timezone.now())
    Lead.objects.filter(pk=a.pk).update(stage_id="mql")
    StageChange.objects.create(
        pk=first.pk + 10, lead=a, to_stage_id="nurturing", system_actor="scoring", at=timezone.now()
    )
    Lead.objects.filter(pk=a.pk).update(stage_id="nurturing")
    rollups.refresh()
    late = StageChange.objects.create(
        pk=first.pk + 5, lead=b, to_stage_id="mql", system_actor="scoring", at=timezone.now()
    )
    Lead.objects.filter(pk=b.pk).update(stage_id="mql")
    assert late.pk < RollupState.objects.get(name="insights").watermarks["ids"]["stagechange"][1]
    rollups.refresh()
    assert LeadFact.objects.get(lead_id=b.pk).reached_mql
    assert_refresh_equals_rebuild()


@pytest.mark.django_db(transaction=True)
def test_a_second_refresh_leaves_while_the_first_holds_the_rollups():
    if connection.vendor != "postgresql":
        pytest.skip("SQLite has no row locks to wait on")
    import threading

    rollups.rebuild()

    from django.db import connections, transaction

    held, release = threading.Event(), threading.Event()

    def hold():
        with transaction.atomic():
            RollupState.objects.select_for_update().get(name="insights")
            held.set()
            release.wait(10)
        connections.close_all()

    thread = threading.Thread(target=hold)
    thread.start()
    assert held.wait(10)
    try:
        assert rollups.refresh() == (0, 0.0)
    finally:
        release.set()
        thread.join()


def test_the_rollups_command_rebuilds_and_refreshes(seeded):
    out = io.StringIO()
    call_command("rollups", "rebuild", stdout=out)
    call_command("rollups", "refresh", stdout=out)
    assert "rebuilt" in out.getvalue()
    assert "refreshed" in out.getvalue()
    assert RollupState.objects.get(name="insights").rebuilt_at is not None
