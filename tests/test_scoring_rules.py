"""Criteria pass the allowlist before anything reaches the ORM; the reference evaluator follows the rules."""

from datetime import UTC, datetime, timedelta

import pytest
from django.core.exceptions import ValidationError

from leadcockpit.scoring.evaluator import choose_version, evaluate
from leadcockpit.scoring.fields import clean_condition
from leadcockpit.scoring.models import Criterion, ScoringModel, ScoringVersion, clean_conditions

from .factories import CompanyFactory, LeadFactory, TouchpointFactory

AS_OF = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("field", "operator", "value"),
    [
        ("_connector", "equals", "OR"),
        ("owner__password", "contains", "pbkdf2"),
        ("company__name", "equals", "x"),
        ("email'; DROP TABLE leads_lead;--", "equals", "x"),
        ("industry", "__in", ["software"]),
        ("industry", "contains", "soft"),  # choices take equals/in list only
        ("employee_count", "contains", "1"),
        ("industry", "equals", "not-an-industry"),
        ("employee_count", "range", {"min": 500, "max": 10}),
        ("employee_count", "range", {}),
        ("employee_count", "range", {"min": "lots"}),
        ("employee_count", "equals", float("nan")),
        ("job_title", "in_list", []),
        ("job_title", "in_list", ["x"] * 201),
        ("job_title", "contains", "x\x00y"),
        (None, "equals", "x"),
        (["industry"], "equals", "x"),
    ],
)
def test_hostile_or_invalid_conditions_are_refused(field, operator, value):
    with pytest.raises(ValidationError):
        clean_condition(field, operator, value)


def test_valid_conditions_are_normalised():
    assert clean_condition("email", "domain_in_list", ["@Gmail.com", "web.de", "web.de"]) == (
        "email",
        "domain_in_list",
        ["gmail.com", "web.de"],
    )
    assert clean_condition("employee_count", "range", {"min": "50", "max": None}) == (
        "employee_count",
        "range",
        {"min": 50.0, "max": None},
    )
    assert clean_condition("phone", "is_set", "ignored") == ("phone", "is_set", None)


def test_model_rule_is_validated_as_a_list_of_conditions():
    assert clean_conditions([{"field": "country", "operator": "in_list", "value": ["DE", "AT"]}]) == [
        {"field": "country", "operator": "in_list", "value": ["AT", "DE"]}
    ]
    for bad in [
        "x",
        [{"field": "country"}],
        [{"field": "country", "operator": "equals", "value": "DE", "x": 1}],
    ]:
        with pytest.raises(ValidationError):
            clean_conditions(bad)


@pytest.mark.django_db
def test_criterion_clean_rejects_unknown_fields_and_empty_interest_matchers():
    version = ScoringVersion.objects.create(model=ScoringModel.objects.create(name="M"), number=1)
    with pytest.raises(ValidationError) as error:
        Criterion(
            version=version, kind="fit", label="x", field="__class__", operator="equals", value="x"
        ).full_clean()
    assert "field" in error.value.message_dict
    with pytest.raises(ValidationError):
        Criterion(version=version, kind="interest", label="x", points=5).full_clean()
    with pytest.raises(ValidationError):
        Criterion(
            version=version,
            kind="knockout",
            label="x",
            field="contact_role",
            operator="equals",
            value="student",
        ).full_clean()


@pytest.fixture
def version(db):
    model = ScoringModel.objects.create(name="Default")
    version = ScoringVersion.objects.create(model=model, number=1, status="active")
    add = version.criteria.create
    add(
        kind="fit",
        label="Manufacturing",
        field="industry",
        operator="in_list",
        value=["manufacturing"],
        points=20,
    )
    add(
        kind="fit",
        label="Mid-size",
        field="employee_count",
        operator="range",
        value={"min": 50, "max": 5000},
        points=15,
    )
    add(
        kind="fit",
        label="Free mail",
        field="email",
        operator="domain_in_list",
        value=["gmail.com"],
        points=-5,
    )
    add(
        kind="interest",
        label="Pricing page",
        touchpoint_kinds=["page_view"],
        url_contains="/PRICING",
        points=10,
        cap=30,
        half_life_days=10,
    )
    add(kind="interest", label="Demo request", touchpoint_kinds=["demo_request"], points=40, lookback_days=30)
    add(
        kind="knockout",
        label="Student",
        field="contact_role",
        operator="equals",
        value="student",
        reason="student",
    )
    return version


def test_evaluation_matches_a_hand_computed_score(version):
    lead = LeadFactory(
        email="anna@gmail.com", company=CompanyFactory(industry="manufacturing", employee_count=250)
    )
    for days in (0, 10, 20, 40):  # 10 × (1 + 0.5 + 0.25 + 0.0625) = 18.125
        TouchpointFactory(
            lead=lead,
            kind="page_view",
            url="https://x.example/pricing",
            occurred_at=AS_OF - timedelta(days=days),
        )
    TouchpointFactory(lead=lead, kind="demo_request", occurred_at=AS_OF - timedelta(days=29))
    TouchpointFactory(
        lead=lead, kind="demo_request", occurred_at=AS_OF - timedelta(days=31)
    )  # outside look-back
    TouchpointFactory(lead=lead, kind="demo_request", occurred_at=AS_OF + timedelta(days=1))  # in the future
    result = evaluate(lead, version, as_of=AS_OF)
    assert result.fit == 30
    assert result.interest == pytest.approx(18.125 + 40)
    assert result.score == pytest.approx(88.125)
    assert (result.band, result.temperature, result.grade, result.is_mql) == ("yellow", "warm", "C2", False)
    assert result.missing_to_mql(version) == [("points", pytest.approx(11.875))]
    assert {c.label for c in result.contributions} == {
        "Manufacturing",
        "Mid-size",
        "Free mail",
        "Pricing page",
        "Demo request",
    }


def test_interest_cap_limits_a_criterion(version):
    lead = LeadFactory(company=None)
    for _ in range(8):
        TouchpointFactory(lead=lead, kind="page_view", url="https://x.example/pricing", occurred_at=AS_OF)
    assert evaluate(lead, version, as_of=AS_OF).interest == 30


def test_knockout_forces_red_and_blocks_mql_whatever_the_points(version):
    lead = LeadFactory(
        contact_role="student", company=CompanyFactory(industry="manufacturing", employee_count=100)
    )
    for _ in range(3):
        TouchpointFactory(lead=lead, kind="demo_request", occurred_at=AS_OF)
    result = evaluate(lead, version, as_of=AS_OF)
    assert result.score >= 100
    assert (result.band, result.temperature, result.is_mql) == ("red", "cold", False)
    assert result.knockouts[0][2] == "student"
    assert ("knockout", None) in result.missing_to_mql(version)


def test_a_lead_is_scored_by_the_first_model_whose_rule_holds(version, db):
    dach = ScoringModel.objects.create(
        name="DACH",
        priority=1,
        rule=[{"field": "country", "operator": "in_list", "value": ["AT", "CH", "DE"]}],
    )
    dach_version = ScoringVersion.objects.create(model=dach, number=1, status="active")
    active = [dach_version, version]
    assert choose_version(LeadFactory(company=CompanyFactory(country="AT")), active) == dach_version
    assert choose_version(LeadFactory(company=CompanyFactory(country="FR")), active) == version
    assert choose_version(LeadFactory(company=None), active) == version


def test_only_one_active_version_per_model(version):
    from django.db import IntegrityError, transaction

    with pytest.raises(IntegrityError), transaction.atomic():
        ScoringVersion.objects.create(model=version.model, number=2, status="active")
