"""The set-based SQL and the reference evaluator must agree on every lead (invariant 2)."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadcockpit.leads.models import Lead, Touchpoint
from leadcockpit.scoring.evaluator import evaluate
from leadcockpit.scoring.models import ScoreChange, ScoringModel, ScoringVersion
from leadcockpit.scoring.rescoring import rescore

from .factories import CompanyFactory, LeadFactory

AS_OF = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
KINDS = ["page_view", "content_download", "demo_request", "webinar_attendance", "site_search", "email_click"]
URLS = [
    "https://x.example/pricing",
    "https://x.example/PRICING/enterprise",
    "https://x.example/blog/ä-ö",
    "https://x.example/careers",
    "",
]
TERMS = ["Preise", "preise", "API", "Müller", "MÜLLER", ""]
CONDITIONS = [
    ("industry", "in_list", ["manufacturing", "software"]),
    ("industry", "equals", "logistics"),
    ("industry", "is_empty", None),
    ("employee_count", "range", {"min": 50.0, "max": 1000.0}),
    ("employee_count", "range", {"min": None, "max": 20.0}),
    ("employee_count", "equals", 250.0),
    ("employee_count", "is_set", None),
    ("contact_role", "equals", "student"),
    ("contact_role", "in_list", ["decision_maker", "influencer"]),
    ("job_title", "contains", "HEAD"),
    ("job_title", "equals", "ceo"),
    ("job_title", "is_empty", None),
    ("email", "domain_in_list", ["gmail.com", "web.de"]),
    ("email", "contains", "sales"),
    ("country", "in_list", ["DE", "AT"]),
    ("region", "contains", "Bay"),
    ("phone", "is_set", None),
    ("budget", "equals", "approved"),
]

fit_criterion = st.builds(
    lambda cond, points: {
        "kind": "fit",
        "field": cond[0],
        "operator": cond[1],
        "value": cond[2],
        "points": points,
    },
    st.sampled_from(CONDITIONS),
    st.integers(-30, 40).map(float),
)
knockout = st.builds(
    lambda cond: {
        "kind": "knockout",
        "field": cond[0],
        "operator": cond[1],
        "value": cond[2],
        "reason": "other",
    },
    st.sampled_from(CONDITIONS),
)
interest_criterion = st.builds(
    lambda kinds, url, term, points, cap, lookback, half_life: {
        "kind": "interest",
        "touchpoint_kinds": kinds,
        "url_contains": url,
        "search_contains": term,
        "points": points,
        "cap": cap,
        "lookback_days": lookback,
        "half_life_days": half_life,
    },
    st.lists(st.sampled_from(KINDS), min_size=1, max_size=2, unique=True),
    # Empty matchers weigh more, so that criteria often count touchpoints (and windows and decay matter).
    st.sampled_from(["", "", "", "pricing", "Pricing", "/blog/ä"]),
    st.sampled_from(["", "", "", "preise", "müller"]),
    st.sampled_from([-10.0, 3.5, 10.0, 25.0]),
    st.sampled_from([None, 15.0, 40.0]),
    st.sampled_from([None, 7, 90]),
    st.sampled_from([None, 3.0, 30.0]),
)
lead_spec = st.fixed_dictionaries(
    {
        "industry": st.sampled_from(["manufacturing", "software", "logistics", ""]),
        "employee_count": st.sampled_from([None, 10, 250, 5000]),
        "country": st.sampled_from(["DE", "AT", "FR", ""]),
        "region": st.sampled_from(["", "Bayern", "bayern"]),
        "has_company": st.booleans(),
        "contact_role": st.sampled_from(["student", "decision_maker", "user", "unknown"]),
        "job_title": st.sampled_from(["", "Head of Sales", "CEO", "ceo", "Werkstudent"]),
        "email_domain": st.sampled_from(["firma.de", "gmail.com", "web.de"]),
        "email_local": st.sampled_from(["anna", "sales.team", "SALES"]),
        "phone": st.sampled_from(["", "+49 30 1"]),
        "budget": st.sampled_from(["unknown", "approved"]),
        "touches": st.lists(
            st.tuples(
                st.sampled_from(KINDS),
                st.sampled_from(URLS),
                st.sampled_from(TERMS),
                st.floats(-2, 200, allow_nan=False),
            ),
            max_size=8,
        ),
    }
)


def build(version_spec, leads_spec):
    model = ScoringModel.objects.create(name="Property model")
    version = ScoringVersion.objects.create(model=model, number=1, status="active", min_fit_for_mql=10)
    for position, spec in enumerate(version_spec):
        version.criteria.create(position=position, label=f"c{position}", **spec)
    leads = []
    for index, spec in enumerate(leads_spec):
        company = (
            CompanyFactory(
                industry=spec["industry"],
                employee_count=spec["employee_count"],
                country=spec["country"],
                region=spec["region"],
            )
            if spec["has_company"]
            else None
        )
        lead = LeadFactory(
            email=f"{spec['email_local'].lower()}{index}@{spec['email_domain']}",
            company=company,
            contact_role=spec["contact_role"],
            job_title=spec["job_title"],
            phone=spec["phone"],
            budget=spec["budget"],
        )
        Touchpoint.objects.bulk_create(
            Touchpoint(
                lead=lead,
                kind=kind,
                url=url,
                search_terms=term,
                occurred_at=AS_OF - timedelta(days=days),
                received_at=AS_OF,
            )
            for kind, url, term, days in spec["touches"]
        )
        leads.append(lead)
    return version, leads


@pytest.mark.django_db
@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    version_spec=st.lists(st.one_of(fit_criterion, interest_criterion, knockout), min_size=1, max_size=7),
    leads_spec=st.lists(lead_spec, min_size=1, max_size=5),
    later_days=st.sampled_from([0.0, 0.5, 1.0, 2.5, 6.99, 30.0, 89.0, 120.0]),
)
def test_sql_rescoring_agrees_with_the_reference_evaluator(version_spec, leads_spec, later_days):
    ScoreChange.objects.all().delete()
    Lead.objects.all().delete()
    ScoringModel.objects.all().delete()
    version, leads = build(version_spec, leads_spec)
    ids = [lead.pk for lead in leads]
    # From the touchpoints (as after new activity) …
    rescore(lead_ids=ids, as_of=AS_OF, recompute=True)
    assert_agreement(version, ids, AS_OF)
    # … and later from the accumulators alone, decayed (leads whose look-back window lost a touchpoint, or
    # whose future-dated touchpoint now counts, are recomputed).
    later = AS_OF + timedelta(days=later_days)
    rescore(lead_ids=ids, as_of=later)
    assert_agreement(version, ids, later)


def assert_agreement(version, ids, as_of):
    """The stored scores are the reference evaluator's as of the rescore (unwritten when unchanged)."""
    for lead in Lead.objects.filter(pk__in=ids).select_related("company"):
        expected = evaluate(lead, version, as_of=as_of)
        assert lead.fit_score == pytest.approx(expected.fit, abs=0.01)
        assert lead.interest_score == pytest.approx(expected.interest, abs=0.01)
        assert lead.score == pytest.approx(expected.score, abs=0.01)
        thresholds = [
            version.yellow_from,
            version.green_from,
            version.warm_from,
            version.hot_from,
            version.mql_threshold,
        ]
        # Classification must agree except where float sums land within a hair of a threshold.
        if all(abs(expected.score - t) > 1e-6 for t in thresholds):
            assert (lead.band, lead.temperature, lead.score_is_mql) == (
                expected.band,
                expected.temperature,
                expected.is_mql,
            )
        grade_bounds = [
            version.fit_a_from,
            version.fit_b_from,
            version.fit_c_from,
            version.interest_1_from,
            version.interest_2_from,
            version.interest_3_from,
        ]
        if all(abs(v - t) > 1e-6 for t in grade_bounds for v in (expected.fit, expected.interest)):
            assert lead.grade == expected.grade
