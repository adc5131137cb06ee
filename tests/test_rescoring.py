"""Set-based rescoring: what it writes, what it leaves alone, and the MGL → MQL step."""

from datetime import UTC, datetime, timedelta

import pytest

from leadcockpit.leads.models import Lead, StageChange
from leadcockpit.scoring.models import ScoreChange, ScoringModel, ScoringVersion
from leadcockpit.scoring.rescoring import rescore

from .factories import CompanyFactory, LeadFactory, TouchpointFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def version():
    version = ScoringVersion.objects.create(
        model=ScoringModel.objects.create(name="Default"), number=1, status="active"
    )
    version.criteria.create(
        kind="fit",
        label="Manufacturing",
        field="industry",
        operator="equals",
        value="manufacturing",
        points=30,
    )
    version.criteria.create(
        kind="interest", label="Demo", touchpoint_kinds=["demo_request"], points=50, half_life_days=30
    )
    version.criteria.create(
        kind="knockout",
        label="Student",
        field="contact_role",
        operator="equals",
        value="student",
        reason="student",
    )
    return version


def test_first_scoring_writes_scores_history_and_moves_mqls(version):
    hot = LeadFactory(company=CompanyFactory(industry="manufacturing"))
    TouchpointFactory(lead=hot, kind="demo_request", occurred_at=NOW)
    TouchpointFactory(lead=hot, kind="demo_request", occurred_at=NOW)
    cold = LeadFactory(company=CompanyFactory(industry="retail"))
    result = rescore(lead_ids=[hot.pk, cold.pk], as_of=NOW)
    assert (result.scored, result.updated, result.changes, result.new_mqls) == (2, 2, 2, 1)
    hot.refresh_from_db()
    assert (hot.score, hot.band, hot.temperature, hot.grade, hot.score_is_mql) == (
        130,
        "green",
        "hot",
        "C1",
        True,
    )
    assert hot.stage_id == "mql"
    assert hot.mql_at == NOW
    change = StageChange.objects.get(lead=hot)
    assert (change.from_stage_id, change.to_stage_id, change.system_actor, change.actor) == (
        "mgl",
        "mql",
        "scoring",
        None,
    )
    cold.refresh_from_db()
    assert (cold.score, cold.band, cold.stage_id, cold.scored_at) == (0, "red", "mgl", NOW)
    assert ScoreChange.objects.filter(lead=hot, version=version, band="green", is_mql=True).exists()


def test_rescoring_unchanged_leads_writes_nothing(version):
    lead = LeadFactory(company=CompanyFactory(industry="manufacturing"))
    rescore(lead_ids=[lead.pk], as_of=NOW)
    result = rescore(lead_ids=[lead.pk], as_of=NOW + timedelta(hours=1))
    assert (result.scored, result.updated, result.changes) == (1, 0, 0)
    lead.refresh_from_db()
    assert lead.scored_at == NOW  # the stored score is still the score as of that moment


def test_decay_changes_the_score_but_history_only_records_band_changes(version):
    lead = LeadFactory(company=CompanyFactory(industry="manufacturing"))
    TouchpointFactory(lead=lead, kind="demo_request", occurred_at=NOW)
    rescore(lead_ids=[lead.pk], as_of=NOW)  # 30 + 50 = 80: yellow, warm
    rescore(lead_ids=[lead.pk], as_of=NOW + timedelta(days=1))  # 30 + 48.9: still yellow, warm
    lead.refresh_from_db()
    assert lead.score == pytest.approx(30 + 50 * 0.5 ** (1 / 30))
    assert ScoreChange.objects.filter(lead=lead).count() == 1
    rescore(lead_ids=[lead.pk], as_of=NOW + timedelta(days=60))  # 30 + 12.5 = 42.5: red
    assert list(ScoreChange.objects.filter(lead=lead).order_by("at").values_list("band", flat=True)) == [
        "yellow",
        "red",
    ]


def test_knocked_out_lead_never_becomes_mql(version):
    lead = LeadFactory(contact_role="student", company=CompanyFactory(industry="manufacturing"))
    for _ in range(3):
        TouchpointFactory(lead=lead, kind="demo_request", occurred_at=NOW)
    rescore(lead_ids=[lead.pk], as_of=NOW)
    lead.refresh_from_db()
    assert (lead.band, lead.score_is_mql, lead.stage_id) == ("red", False, "mgl")
    assert lead.score == 180


def test_only_mgl_and_nurturing_leads_move_to_mql(version):
    leads = {
        stage: LeadFactory(stage_id=stage, company=CompanyFactory(industry="manufacturing"))
        for stage in ["mgl", "nurturing", "sal", "won"]
    }
    for lead in leads.values():
        TouchpointFactory(lead=lead, kind="demo_request", occurred_at=NOW)
        TouchpointFactory(lead=lead, kind="demo_request", occurred_at=NOW)
    rescore(lead_ids=[lead.pk for lead in leads.values()], as_of=NOW)
    stages = dict(Lead.objects.values_list("email", "stage_id"))
    assert [stages[leads[s].email] for s in ["mgl", "nurturing", "sal", "won"]] == [
        "mql",
        "mql",
        "sal",
        "won",
    ]


def test_each_lead_is_scored_by_the_first_model_whose_rule_holds(version):
    dach = ScoringModel.objects.create(
        name="DACH", priority=1, rule=[{"field": "country", "operator": "in_list", "value": ["AT", "DE"]}]
    )
    dach_version = ScoringVersion.objects.create(model=dach, number=1, status="active")
    dach_version.criteria.create(kind="fit", label="Any", field="email", operator="is_set", points=7)
    german = LeadFactory(company=CompanyFactory(country="DE", industry="manufacturing"))
    french = LeadFactory(company=CompanyFactory(country="FR", industry="manufacturing"))
    rescore(id_range=(0, 10**9), as_of=NOW)
    german.refresh_from_db()
    french.refresh_from_db()
    assert german.score == 7
    assert french.score == 30
    assert ScoreChange.objects.get(lead=german).version == dach_version


def test_score_as_of_a_past_moment_comes_from_the_history(version):
    lead = LeadFactory(company=CompanyFactory(industry="manufacturing"))
    TouchpointFactory(lead=lead, kind="demo_request", occurred_at=NOW)
    rescore(lead_ids=[lead.pk], as_of=NOW)  # 80: yellow
    rescore(lead_ids=[lead.pk], as_of=NOW + timedelta(days=60))  # 42.5: red
    assert ScoreChange.objects.as_of(lead, NOW - timedelta(seconds=1)) is None
    assert ScoreChange.objects.as_of(lead, NOW + timedelta(days=59)).band == "yellow"
    at_handover = ScoreChange.objects.as_of(lead, NOW + timedelta(days=61))
    assert (at_handover.band, at_handover.version) == ("red", version)


def test_accumulators_are_recomputed_when_a_lookback_window_loses_a_touchpoint(version):
    version.criteria.create(
        kind="interest",
        label="Pricing, last week",
        touchpoint_kinds=["page_view"],
        points=10,
        lookback_days=7,
    )
    lead = LeadFactory(company=CompanyFactory(industry="retail"))
    TouchpointFactory(lead=lead, kind="page_view", occurred_at=NOW - timedelta(days=5))
    TouchpointFactory(lead=lead, kind="page_view", occurred_at=NOW - timedelta(days=1))
    assert rescore(lead_ids=[lead.pk], as_of=NOW).recomputed == 1
    assert rescore(lead_ids=[lead.pk], as_of=NOW + timedelta(days=1)).recomputed == 0  # both still in
    lead.refresh_from_db()
    assert lead.interest_score == 20
    result = rescore(lead_ids=[lead.pk], as_of=NOW + timedelta(days=3))  # the older one has left the window
    assert result.recomputed == 1
    lead.refresh_from_db()
    assert lead.interest_score == 10


def test_a_future_dated_touchpoint_counts_once_its_moment_comes(version):
    lead = LeadFactory(company=CompanyFactory(industry="retail"))
    TouchpointFactory(
        lead=lead, kind="demo_request", occurred_at=NOW + timedelta(hours=2)
    )  # a client clock ahead
    rescore(lead_ids=[lead.pk], as_of=NOW, recompute=True)
    lead.refresh_from_db()
    assert lead.interest_score == 0
    assert rescore(lead_ids=[lead.pk], as_of=NOW + timedelta(hours=1)).recomputed == 0
    assert rescore(lead_ids=[lead.pk], as_of=NOW + timedelta(hours=3)).recomputed == 1
    lead.refresh_from_db()
    assert lead.interest_score == pytest.approx(50 * 0.5 ** (1 / 24 / 30))


def test_a_version_changing_only_points_reuses_accumulators_and_a_new_matcher_rebuilds_them(version):
    lead = LeadFactory(company=CompanyFactory(industry="retail"))
    TouchpointFactory(lead=lead, kind="demo_request", occurred_at=NOW)
    rescore(lead_ids=[lead.pk], as_of=NOW)
    version.status = "retired"
    version.save()
    second = ScoringVersion.objects.create(model=version.model, number=2, status="active")
    for criterion in version.criteria.all():
        criterion.pk, criterion.version = None, second
        criterion.points = 2 * criterion.points
        criterion.save()
    result = rescore(lead_ids=[lead.pk], as_of=NOW + timedelta(days=30))
    assert result.recomputed == 0
    lead.refresh_from_db()
    assert lead.interest_score == pytest.approx(50)  # 100 points, one half-life ago
    second.criteria.filter(kind="interest").update(touchpoint_kinds=["demo_request", "trial_signup"])
    assert rescore(lead_ids=[lead.pk], as_of=NOW + timedelta(days=30)).recomputed == 1
