"""CSV export of the current filter: the user's scope only, streamed, and safe to open in a spreadsheet."""

import csv
import io

import pytest
from django.urls import reverse

from .factories import CompanyFactory, LeadFactory

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
