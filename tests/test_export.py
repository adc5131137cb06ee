"""CSV export of the current filter: the user's scope only, streamed, and safe to open in a spreadsheet."""

import csv
import io
from datetime import UTC, date, datetime

import pytest
from django.http import StreamingHttpResponse
from django.urls import reverse

from leadcockpit.leads import views

from .factories import CampaignFactory, CompanyFactory, LeadFactory, SalesActivityFactory, TouchpointFactory

pytestmark = pytest.mark.django_db


def exported(response):
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    text = b"".join(response.streaming_content).decode("utf-8-sig")
    return list(csv.reader(io.StringIO(text)))


def test_a_rep_exports_only_their_leads_of_the_current_filter(client_for, rep, other_rep):
    mine = LeadFactory(owner=rep, stage_id="sal", email="mine@firma.example")
    LeadFactory(owner=rep, stage_id="mgl")
    LeadFactory(owner=other_rep, stage_id="sal", email="theirs@firma.example")
    rows = exported(client_for(rep).get(reverse("leads:export"), {"stage": "sal"}))
    assert rows[0][0] == "Email"
    assert [row[0] for row in rows[1:]] == [mine.email]


def test_formulas_and_markup_in_tracked_data_are_inert_in_the_file(client_for, marketer):
    LeadFactory(
        first_name='=HYPERLINK("http://evil.example","click")',
        last_name="+cmd|' /C calc'!A0",
        job_title="@SUM(1+1)",
        company=CompanyFactory(name='-2+3, "Quoted" <script>alert(1)</script>'),
    )
    rows = exported(client_for(marketer).get(reverse("leads:export")))
    first, last, title, company = rows[1][1], rows[1][2], rows[1][3], rows[1][4]
    assert first.startswith("'=HYPERLINK")
    assert last.startswith("'+cmd")
    assert title == "'@SUM(1+1)"
    assert company == '\'-2+3, "Quoted" <script>alert(1)</script>'  # CSV keeps text; quoting keeps the comma


def test_export_needs_a_login_and_ignores_filters_it_does_not_know(client, client_for, marketer):
    assert client.get(reverse("leads:export")).status_code == 302
    LeadFactory()
    rows = exported(
        client_for(marketer).get(reverse("leads:export"), {"stage": "'; DROP", "sort": "__class__"})
    )
    assert len(rows) >= 1


# The activity export: touchpoints and sales activities of the current filter's leads, one row per activity.

ACTIVITY_HEADER = [
    "Lead ID",
    "Email",
    "First name",
    "Last name",
    "Company",
    "Protocol",
    "When (Europe/Berlin)",
    "Kind",
    "URL",
    "Referrer",
    "Page title",
    "UTM source",
    "UTM medium",
    "UTM campaign",
    "Campaign",
    "Channel",
    "Visitor ID",
    "Outcome",
    "Note",
    "Rep",
    "Next follow-up",
]


def activities(client, **params):
    response = client.get(reverse("leads:export_activities"), params)
    assert isinstance(response, StreamingHttpResponse)
    rows = exported(response)
    assert rows[0] == ACTIVITY_HEADER
    return [dict(zip(ACTIVITY_HEADER, row, strict=True)) for row in rows[1:]]


def at(day, hour, minute=0):
    return datetime(2025, 3, day, hour, minute, tzinfo=UTC)


def test_the_activity_export_has_a_row_per_touchpoint_and_sales_activity_with_their_fields(
    client_for, marketer, rep
):
    lead = LeadFactory(
        email="anna@firma.example",
        first_name="Anna",
        last_name="Schmidt",
        company=CompanyFactory(name="Firma AG"),
    )
    TouchpointFactory(
        lead=lead,
        occurred_at=at(1, 9, 30),
        kind="content_download",
        url="https://www.solvaro.example/whitepaper",
        referrer="https://www.google.example/",
        page_title="Whitepaper: Lead scoring",
        utm_source="newsletter",
        utm_medium="email",
        utm_campaign="spring-25",
        campaign=CampaignFactory(name="Spring webinar"),
        channel_id="paid_search",
        visitor_id="v-123",
    )
    SalesActivityFactory(
        lead=lead,
        occurred_at=at(2, 14),
        kind="call",
        outcome="positive",
        note="Wants a demo\nnext week",
        rep=rep,
        next_follow_up=date(2025, 3, 9),
    )
    rep.first_name, rep.last_name = "Ralf", "Rep"
    rep.save()
    response = client_for(marketer).get(reverse("leads:export_activities"))
    assert response["Content-Disposition"].startswith('attachment; filename="lead-activities-')
    assert response["Content-Disposition"].endswith('.csv"')
    touchpoint, call = activities(client_for(marketer))
    assert touchpoint == {
        **dict.fromkeys(ACTIVITY_HEADER, ""),
        "Lead ID": str(lead.pk),
        "Email": "anna@firma.example",
        "First name": "Anna",
        "Last name": "Schmidt",
        "Company": "Firma AG",
        "Protocol": "Online activity",
        "When (Europe/Berlin)": "2025-03-01 10:30:00",
        "Kind": "Content download",
        "URL": "https://www.solvaro.example/whitepaper",
        "Referrer": "https://www.google.example/",
        "Page title": "Whitepaper: Lead scoring",
        "UTM source": "newsletter",
        "UTM medium": "email",
        "UTM campaign": "spring-25",
        "Campaign": "Spring webinar",
        "Channel": "Paid search",
        "Visitor ID": "v-123",
    }
    assert call == {
        **dict.fromkeys(ACTIVITY_HEADER, ""),
        "Lead ID": str(lead.pk),
        "Email": "anna@firma.example",
        "First name": "Anna",
        "Last name": "Schmidt",
        "Company": "Firma AG",
        "Protocol": "Sales activity",
        "When (Europe/Berlin)": "2025-03-02 15:00:00",
        "Kind": "Call",
        "Outcome": "Positive",
        "Note": "Wants a demo\nnext week",
        "Rep": "Ralf Rep",
        "Next follow-up": "2025-03-09",
    }


def test_the_activity_export_goes_lead_by_lead_and_oldest_first_within_a_lead(client_for, marketer):
    first, second = LeadFactory(), LeadFactory()
    TouchpointFactory(lead=second, occurred_at=at(1, 8), page_title="second 1")
    SalesActivityFactory(lead=first, occurred_at=at(3, 8), note="first 3")
    TouchpointFactory(lead=first, occurred_at=at(1, 9), page_title="first 1")
    SalesActivityFactory(lead=second, occurred_at=at(2, 8), note="second 2")
    TouchpointFactory(lead=first, occurred_at=at(2, 9), page_title="first 2")
    rows = activities(client_for(marketer))
    assert [row["Page title"] or row["Note"] for row in rows] == [
        "first 1",
        "first 2",
        "first 3",
        "second 1",
        "second 2",
    ]


def test_the_activity_export_keeps_to_the_current_filter(client_for, marketer):
    accepted = LeadFactory(stage_id="sal", email="accepted@firma.example")
    other = LeadFactory(stage_id="mgl", email="other@firma.example")
    TouchpointFactory(lead=accepted)
    SalesActivityFactory(lead=accepted)
    TouchpointFactory(lead=other)
    SalesActivityFactory(lead=other)
    TouchpointFactory(lead=None, visitor_id="anonymous")
    rows = activities(client_for(marketer), stage="sal")
    assert [(row["Email"], row["Protocol"]) for row in rows] == [
        ("accepted@firma.example", "Online activity"),
        ("accepted@firma.example", "Sales activity"),
    ]
    assert {row["Email"] for row in activities(client_for(marketer), q="other@")} == {"other@firma.example"}


def test_a_reps_activity_export_has_none_of_another_reps_leads(client_for, rep, other_rep):
    mine = LeadFactory(owner=rep, email="mine@firma.example")
    theirs = LeadFactory(owner=other_rep, email="theirs@firma.example")
    unowned = LeadFactory(owner=None, email="unowned@firma.example")
    for lead in (mine, theirs, unowned):
        TouchpointFactory(lead=lead)
        SalesActivityFactory(lead=lead, rep=other_rep)
    client = client_for(rep)
    rows = activities(client)
    assert {row["Email"] for row in rows} == {"mine@firma.example"}
    assert len(rows) == 2
    # Asking for the other rep's leads by filter is not understood (not an owner the rep may pick) and ignored.
    assert {row["Email"] for row in activities(client, owner=other_rep.pk)} == {"mine@firma.example"}


def test_marketing_exports_the_activities_of_every_lead(client_for, marketer, rep, other_rep):
    for owner in (rep, other_rep, None):
        TouchpointFactory(lead=LeadFactory(owner=owner))
    rows = activities(client_for(marketer))
    assert len(rows) == 3
    assert {row["Protocol"] for row in rows} == {"Online activity"}


def test_formulas_in_activities_are_inert_and_markup_stays_literal_text(client_for, marketer):
    lead = LeadFactory(first_name="=1+1", last_name="@lead", company=CompanyFactory(name="+Firma"))
    TouchpointFactory(
        lead=lead,
        occurred_at=at(1, 9),
        page_title='=HYPERLINK("http://evil.example","click")',
        utm_source="+cmd|' /C calc'!A0",
        utm_medium="-2+3",
        utm_campaign="@SUM(1+1)",
        visitor_id="\t=1+1",
        referrer="\r=1+1",
    )
    SalesActivityFactory(
        lead=lead, occurred_at=at(2, 9), note='<script>alert(1)</script> "quoted", <b>bold</b>', rep=None
    )
    SalesActivityFactory(lead=lead, occurred_at=at(3, 9), note="=cmd()", rep=None)
    touchpoint, markup, formula = activities(client_for(marketer))
    assert (touchpoint["First name"], touchpoint["Last name"], touchpoint["Company"]) == (
        "'=1+1",
        "'@lead",
        "'+Firma",
    )
    assert touchpoint["Page title"] == '\'=HYPERLINK("http://evil.example","click")'
    assert touchpoint["UTM source"] == "'+cmd|' /C calc'!A0"
    assert touchpoint["UTM medium"] == "'-2+3"
    assert touchpoint["UTM campaign"] == "'@SUM(1+1)"
    assert touchpoint["Visitor ID"] == "'\t=1+1"
    assert touchpoint["Referrer"] == "'\r=1+1"
    assert (
        markup["Note"] == '<script>alert(1)</script> "quoted", <b>bold</b>'
    )  # CSV is text: not HTML-escaped
    assert formula["Note"] == "'=cmd()"


def test_the_activity_export_crosses_batch_boundaries_without_losing_or_repeating_rows(
    client_for, marketer, monkeypatch
):
    # Batches of two leads and three activities a query, so every kind of boundary is crossed, ties in time included.
    monkeypatch.setattr(views, "ACTIVITY_EXPORT_LEADS", 2)
    monkeypatch.setattr(views, "ACTIVITY_EXPORT_ROWS", 3)
    expected = []  # (lead, time, touchpoints before sales activities, id, the row's label)
    for n in range(5):
        lead = LeadFactory()
        for i, hour in enumerate((9, 9, 9, 10, 11) if n % 2 else (9,)):
            touchpoint = TouchpointFactory(lead=lead, occurred_at=at(1, hour), page_title=f"{n}-t{i}")
            expected.append((lead.pk, touchpoint.occurred_at, 0, touchpoint.pk, touchpoint.page_title))
        for i in range(4):
            activity = SalesActivityFactory(lead=lead, occurred_at=at(1, 10), note=f"{n}-s{i}")
            expected.append((lead.pk, activity.occurred_at, 1, activity.pk, activity.note))
    LeadFactory()  # a last lead without activities
    rows = activities(client_for(marketer))
    assert [row["Page title"] or row["Note"] for row in rows] == [label for *_key, label in sorted(expected)]


def test_the_activity_export_needs_a_constant_number_of_queries_however_many_activities(
    client_for, marketer, rep, django_assert_max_num_queries
):
    client = client_for(marketer)

    def export_with(activities_per_lead):
        for lead in LeadFactory.create_batch(15, owner=rep, stage_id="sal"):
            TouchpointFactory.create_batch(activities_per_lead, lead=lead, campaign=CampaignFactory())
            SalesActivityFactory.create_batch(activities_per_lead, lead=lead, rep=rep)
        # Session, user, role; the stage and owner the filter checks; then leads, touchpoints, sales activities.
        with django_assert_max_num_queries(8):
            return activities(client, stage="sal", owner=rep.pk)

    assert len(export_with(1)) == 30
    assert len(export_with(6)) == 30 + 180


def test_the_activity_export_names_channels_in_the_users_language(client_for, marketer):
    TouchpointFactory(lead=LeadFactory(), channel_id="paid_search")
    response = client_for(marketer).get(reverse("leads:export_activities"), HTTP_ACCEPT_LANGUAGE="de")
    rows = exported(response)
    assert "Bezahlte Suche" in rows[1]


def test_the_activity_export_needs_a_login(client):
    assert client.get(reverse("leads:export_activities")).status_code == 302


def test_the_lead_list_links_both_exports_with_the_current_filter(client_for, marketer):
    LeadFactory(stage_id="sal", band="green")
    response = client_for(marketer).get(reverse("leads:list"), {"stage": "sal", "band": "green"})
    text = response.content.decode()
    assert f'href="{reverse("leads:export")}?stage=sal&amp;band=green"' in text
    assert f'href="{reverse("leads:export_activities")}?stage=sal&amp;band=green"' in text
