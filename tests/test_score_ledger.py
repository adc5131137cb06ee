"""The explanation ledger on the lead page: contributions, knock-outs, what is missing to MQL."""

import pytest
from django.urls import reverse
from django.utils import timezone

from leadcockpit.scoring.defaults import create_default_model
from leadcockpit.scoring.rescoring import rescore

from .factories import CompanyFactory, LeadFactory, TouchpointFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def default_model(marketer, manager):
    return create_default_model(marketing_user=marketer, sales_user=manager)


def ledger_url(lead):
    return reverse("scoring:lead_score", args=[lead.pk])


def test_ledger_lists_each_contribution_and_what_is_missing(client_for, marketer, default_model):
    lead = LeadFactory(
        contact_role="decision_maker", company=CompanyFactory(industry="manufacturing", employee_count=300)
    )
    TouchpointFactory(
        lead=lead, kind="page_view", url="https://www.solvaro.example/pricing", occurred_at=timezone.now()
    )
    response = client_for(marketer).get(ledger_url(lead))
    assert response.status_code == 200
    text = response.text
    for label in ["Target industry", "Mid-sized company", "Decision maker", "Pricing page visit"]:
        assert label in text
    assert "more points" in text  # 55 + 9 of 100


def test_ledger_names_knockouts(client_for, marketer, default_model):
    lead = LeadFactory(contact_role="student")
    text = client_for(marketer).get(ledger_url(lead)).text
    assert "Knocked out:" in text
    assert "Student without decision power" in text
    assert "remove the knock-out" in text


def test_ledger_without_an_active_model_says_so(client_for, marketer):
    text = client_for(marketer).get(ledger_url(LeadFactory())).text
    assert "No active scoring model covers this lead." in text


def test_ledger_fragment_for_htmx_and_full_page_without_javascript(client_for, marketer, default_model):
    lead = LeadFactory()
    client = client_for(marketer)
    fragment = client.get(ledger_url(lead), HTTP_HX_REQUEST="true").text
    assert fragment.lstrip().startswith('<section id="score-ledger"')
    assert "<html" in client.get(ledger_url(lead)).text
    detail = client.get(reverse("leads:detail", args=[lead.pk])).text
    assert f'hx-get="{ledger_url(lead)}"' in detail
    assert f'href="{ledger_url(lead)}"' in detail


def test_rep_cannot_read_another_reps_ledger(client_for, rep, other_rep, default_model):
    foreign = LeadFactory(owner=other_rep)
    assert client_for(rep).get(ledger_url(foreign)).status_code == 404
    assert client_for(rep).get(ledger_url(foreign), HTTP_HX_REQUEST="true").status_code == 404


def test_ledger_query_budget(client_for, marketer, default_model, django_assert_max_num_queries):
    lead = LeadFactory()
    TouchpointFactory.create_batch(30, lead=lead)
    client = client_for(marketer)
    client.get(ledger_url(lead))
    with django_assert_max_num_queries(
        8
    ):  # session, user, role, lead, versions, criteria, touchpoints, history
        client.get(ledger_url(lead), HTTP_HX_REQUEST="true")


def test_lead_list_shows_scores_and_filters_by_band_and_grade(client_for, marketer, default_model):
    strong = LeadFactory(
        contact_role="decision_maker",
        budget="approved",
        authority="decides",
        company=CompanyFactory(industry="manufacturing", employee_count=300),
    )
    weak = LeadFactory(company=CompanyFactory(industry="retail", employee_count=3))
    rescore(lead_ids=[strong.pk, weak.pk])
    client = client_for(marketer)
    strong.refresh_from_db()
    assert strong.grade == "A4"
    response = client.get(reverse("leads:list"), {"grade": "A4"})
    assert [lead.pk for lead in response.context["page"].items] == [strong.pk]
    response = client.get(reverse("leads:list"), {"band": "yellow"})  # 80 fit points, no activity
    assert [lead.pk for lead in response.context["page"].items] == [strong.pk]
    assert "light--yellow" in response.text
    response = client.get(reverse("leads:list"), {"band": "red"})
    assert [lead.pk for lead in response.context["page"].items] == [weak.pk]


def test_score_as_of_a_past_moment_shows_the_recorded_state(client_for, marketer, default_model):
    from datetime import UTC, datetime

    lead = LeadFactory(company=CompanyFactory(industry="manufacturing", employee_count=300))
    rescore(lead_ids=[lead.pk], as_of=datetime(2026, 3, 1, 9, 0, tzinfo=UTC))  # first scored: red
    TouchpointFactory.create_batch(
        3, lead=lead, kind="demo_request", occurred_at=datetime(2026, 4, 1, tzinfo=UTC)
    )
    rescore(lead_ids=[lead.pk], as_of=datetime(2026, 4, 1, 9, 0, tzinfo=UTC), recompute=True)
    client = client_for(marketer)

    before = client.get(ledger_url(lead), {"at": "2026-02-01T12:00"}).text
    assert "this lead had no score yet" in before
    between = client.get(ledger_url(lead), {"at": "2026-03-15T12:00"}, HTTP_HX_REQUEST="true").text
    assert between.lstrip().startswith('<section id="score-ledger"')
    assert 'light--red"></span> 35 · B4' in between.split('id="score-at"')[1].split("</p>")[0]
    after = client.get(ledger_url(lead), {"at": "2026-05-01T12:00"})
    assert after.context["state_at"].band == "yellow"  # three demo requests on top


@pytest.mark.parametrize(
    "at", ["yesterday", "0001-01-01T00:00", "9999-12-31T23:59", "2026-02-30T10:00", "\x00"]
)
def test_score_as_of_refuses_bad_moments_with_a_message(client_for, marketer, default_model, at):
    lead = LeadFactory()
    response = client_for(marketer).get(ledger_url(lead), {"at": at})
    assert response.status_code == 200
    assert 'role="alert"' in response.text
    assert "state_at" not in response.context


def test_lead_admin_shows_the_ledger(client_for, admin_user, default_model):
    lead = LeadFactory(contact_role="student")
    response = client_for(admin_user).get(reverse("admin:leads_lead_change", args=[lead.pk]))
    assert response.status_code == 200
    assert "Why this score" in response.text
    assert "Student without decision power" in response.text
    assert "score-as-of" not in response.text  # no form nested in the admin's form
