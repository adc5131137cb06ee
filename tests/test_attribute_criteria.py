"""Criteria on imported attributes ("attribute:<name>"): the allowlist knows the attributes an import declared,
with the operators of their type; the reference evaluator and the scoring SQL agree on every kind of JSON value."""

from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadcockpit.capture.importing import attribute_name
from leadcockpit.capture.models import ImportJob
from leadcockpit.leads.models import Lead
from leadcockpit.scoring.evaluator import evaluate
from leadcockpit.scoring.fields import attribute_catalogue, attribute_name_of, clean_condition, field_choices
from leadcockpit.scoring.models import Criterion, ScoreChange, ScoringModel, ScoringVersion
from leadcockpit.scoring.rescoring import rescore

from .factories import LeadFactory

AS_OF = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
COLUMNS = {
    "Lead Origin": ("text", "marketing"),
    "Total Time Spent on Website": ("number", "marketing"),
    "Do Not Email": ("boolean", "marketing"),
    "Tags": ("text", "sales"),
    "Converted": ("boolean", "outcome"),
}


def declare(columns=COLUMNS, status="done"):
    """An import job that kept these columns as attributes (what the importer records)."""
    header = ["Prospect ID", *columns]
    mapping = {
        "columns": [
            {"target": "external_id"},
            *({"target": "attribute", "type": t, "provenance": p} for t, p in columns.values()),
        ]
    }
    return ImportJob.objects.create(
        kind="leads", filename="x.csv", content=b"", encoding="utf-8", delimiter=",", header=header,
        mapping=mapping, status=status,
    )  # fmt: skip


def test_attribute_names_follow_the_importers_rule():
    for header in [
        *COLUMNS,
        "What is your current occupation",
        "A free copy of Mastering The Interview",
        "ß-Ä x",
    ]:
        assert attribute_name_of(header) == attribute_name(header)


@pytest.mark.django_db
def test_the_catalogue_holds_what_imports_declared_with_type_and_provenance():
    declare(status="mapping")  # not started: declares nothing
    assert attribute_catalogue() == {}
    declare()
    catalogue = attribute_catalogue()
    assert catalogue["lead_origin"].type == "text"
    assert catalogue["tags"].provenance == "sales"
    assert catalogue["converted"].provenance == "outcome"
    keys = [key for key, _label in field_choices()]
    assert "attribute:lead_origin" in keys
    assert "attribute:tags" not in keys  # sales' own judgement is no scoring field
    assert "attribute:converted" not in keys


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("field", "operator", "value"),
    [
        ("attribute:unknown_column", "equals", "x"),
        ("attribute:", "equals", "x"),
        ("attribute:Lead Origin", "equals", "x"),
        ("attribute:lead_origin'--", "equals", "x"),
        ("attribute:lead_origin", "range", {"min": 1}),  # a text has no range
        ("attribute:total_time_spent_on_website", "contains", "1"),
        ("attribute:total_time_spent_on_website", "range", {"min": "lots"}),
        ("attribute:do_not_email", "equals", "maybe"),
        ("attribute:do_not_email", "in_list", ["yes"]),
        ("attribute:lead_origin", "equals", "x\x00"),
    ],
)
def test_hostile_or_invalid_attribute_conditions_are_refused(field, operator, value):
    declare()
    with pytest.raises(ValidationError):
        clean_condition(field, operator, value)


@pytest.mark.django_db
def test_attribute_conditions_are_normalised_by_type():
    declare()
    assert clean_condition("attribute:do_not_email", "equals", "Yes") == (
        "attribute:do_not_email",
        "equals",
        True,
    )
    assert clean_condition("attribute:total_time_spent_on_website", "range", {"min": "600"}) == (
        "attribute:total_time_spent_on_website",
        "range",
        {"min": 600.0, "max": None},
    )
    assert clean_condition("attribute:lead_origin", "in_list", ["API", " API ", "Lead Add Form"]) == (
        "attribute:lead_origin",
        "in_list",
        ["API", "Lead Add Form"],
    )
    version = ScoringVersion.objects.create(model=ScoringModel.objects.create(name="M"), number=1)
    criterion = Criterion(
        version=version, kind="fit", label="x", field="attribute:lead_origin", operator="equals", value="API"
    )
    criterion.full_clean()
    criterion.field = "attribute:nope"
    with pytest.raises(ValidationError) as error:
        criterion.full_clean()
    assert "field" in error.value.message_dict


CONDITIONS = [
    ("attribute:lead_origin", "equals", "api"),
    ("attribute:lead_origin", "in_list", ["Lead Add Form", "API"]),
    ("attribute:lead_origin", "contains", "FORM"),
    ("attribute:lead_origin", "is_empty", None),
    ("attribute:lead_origin", "is_set", None),
    ("attribute:total_time_spent_on_website", "range", {"min": 100.0, "max": None}),
    ("attribute:total_time_spent_on_website", "range", {"min": None, "max": 0.0}),
    ("attribute:total_time_spent_on_website", "range", {"min": -1.0, "max": 2.5}),
    ("attribute:total_time_spent_on_website", "equals", 0.0),
    ("attribute:total_time_spent_on_website", "is_empty", None),
    ("attribute:do_not_email", "equals", True),
    ("attribute:do_not_email", "equals", False),
    ("attribute:do_not_email", "is_set", None),
]
# Whatever JSON an attribute may hold: other types than the column's, null, "", missing.
JSON_VALUES = st.sampled_from(
    [
        None,
        "",
        "API",
        "api",
        "Lead Add Form",
        "Äpi",
        0,
        0.0,
        2.5,
        674,
        -3,
        True,
        False,
        "0",
        "true",
        "MISSING",
    ]
)


@pytest.mark.django_db
@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    picked=st.lists(st.tuples(st.sampled_from(CONDITIONS), st.integers(-20, 30)), min_size=1, max_size=6),
    leads=st.lists(st.tuples(JSON_VALUES, JSON_VALUES, JSON_VALUES), min_size=1, max_size=6),
)
def test_sql_and_reference_evaluator_agree_on_attribute_criteria(picked, leads):
    ScoreChange.objects.all().delete()
    Lead.objects.all().delete()
    ScoringModel.objects.all().delete()
    ImportJob.objects.all().delete()
    declare()
    version = ScoringVersion.objects.create(
        model=ScoringModel.objects.create(name="Attributes"), number=1, status="active"
    )
    for position, ((field, operator, value), points) in enumerate(picked):
        criterion = Criterion(
            version=version, kind="fit", position=position, label="c", field=field, operator=operator,
            value=value, points=float(points),
        )  # fmt: skip
        criterion.full_clean()
        criterion.save()
    version.criteria.create(
        kind="knockout",
        label="ko",
        field="attribute:lead_origin",
        operator="equals",
        value="Äpi",
        reason="other",
    )
    ids = []
    for origin, time_spent, no_email in leads:
        attributes = {
            name: value
            for name, value in (
                ("lead_origin", origin),
                ("total_time_spent_on_website", time_spent),
                ("do_not_email", no_email),
            )
            if value != "MISSING"
        }
        ids.append(LeadFactory(company=None, attributes=attributes).pk)
    rescore(lead_ids=ids, as_of=AS_OF, recompute=True)
    for lead in Lead.objects.filter(pk__in=ids):
        expected = evaluate(lead, version, as_of=AS_OF)
        assert lead.fit_score == pytest.approx(expected.fit, abs=1e-9), lead.attributes
        assert lead.band == expected.band
