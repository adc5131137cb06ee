"""The lead page: record facts and one timeline of touchpoints, sales activities and stage changes."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from leadcockpit.leads.timeline import TimelineCursor

from .factories import LeadFactory, SalesActivityFactory, StageChangeFactory, TouchpointFactory

pytestmark = pytest.mark.django_db


def detail_url(lead):
    return reverse("leads:detail", args=[lead.pk])


def test_detail_shows_company_bant_and_consent(client_for, marketer):
    lead = LeadFactory(
        budget="approved",
        authority="decides",
        need="acute",
        timeframe="3m",
        tracking_consent=True,
        consent_basis="consent",
        job_title="Head of Sales",
    )
    response = client_for(marketer).get(detail_url(lead))
    assert response.status_code == 200
    for text in [
        lead.company.name,
        "Budget approved",
        "Decides",
        "Acute need",
        "Within 3 months",
        "Head of Sales",
        "Consent",
    ]:
        assert text in response.text


def test_timeline_merges_all_three_protocols_newest_first(client_for, marketer, rep):
    lead = LeadFactory()
    now = timezone.now()
    visit = TouchpointFactory(lead=lead, occurred_at=now - timedelta(hours=3), page_title="Pricing page")
    call = SalesActivityFactory(lead=lead, rep=rep, occurred_at=now - timedelta(hours=1), note="Called back")
    change = StageChangeFactory(
        lead=lead, from_stage_id="mgl", to_stage_id="mql", at=now - timedelta(hours=2)
    )
    response = client_for(marketer).get(detail_url(lead))
    assert [entry.obj for entry in response.context["timeline"]] == [call, change, visit]
    text = response.text
    assert text.index("Called back") < text.index("MQL") < text.index("Pricing page")


def test_older_timeline_entries_load_page_by_page_without_gaps(client_for, marketer):
    lead = LeadFactory()
    now = timezone.now()
    same_instant = now - timedelta(days=1)
    # Ties across streams and within a stream at one instant must neither repeat nor vanish across pages.
    made = [TouchpointFactory(lead=lead, occurred_at=same_instant) for _ in range(30)]
    made += [StageChangeFactory(lead=lead, at=same_instant) for _ in range(30)]
    made += [SalesActivityFactory(lead=lead, occurred_at=now - timedelta(minutes=i)) for i in range(15)]
    client = client_for(marketer)
    response = client.get(detail_url(lead))
    entries = response.text.count('<li class="tl tl--')
    more = re.search(r'hx-get="\?before=([^"]+)"', response.text)
    pages = 1
    while more:
        response = client.get(detail_url(lead) + "?before=" + more.group(1), HTTP_HX_REQUEST="true")
        assert response.status_code == 200
        assert "<html" not in response.text
        entries += response.text.count('<li class="tl tl--')
        more = re.search(r'hx-get="\?before=([^"]+)"', response.text)
        pages += 1
    assert pages == 2
    assert entries == len(made) == 75


def test_timeline_pages_hold_each_entry_once(marketer):
    lead = LeadFactory()
    now = timezone.now()
    made = {("touchpoint", TouchpointFactory(lead=lead, occurred_at=now).pk) for _ in range(7)}
    made |= {("stage", StageChangeFactory(lead=lead, at=now).pk) for _ in range(7)}
    made |= {("activity", SalesActivityFactory(lead=lead, occurred_at=now).pk) for _ in range(7)}
    seen, cursor = [], None
    while True:
        entries, cursor = lead.timeline(before=cursor, limit=4)
        seen += [(entry.stream, entry.obj.pk) for entry in entries]
        if cursor is None:
            break
        cursor = TimelineCursor.decode(cursor.encode())
    assert len(seen) == len(set(seen)) == 21
    assert set(seen) == made


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "2024-13-45T00:00:00~stage~1",
        "2024-01-01T00:00:00~evil~1",
        "2024-01-01T00:00:00~stage~x",
        "2024-01-01T00:00:00~stage~1",
    ],
)
def test_malformed_timeline_cursor_shows_the_newest_entries(client_for, marketer, cursor):
    lead = LeadFactory()
    TouchpointFactory(lead=lead)
    response = client_for(marketer).get(detail_url(lead), {"before": cursor})
    assert response.status_code == 200
    assert len(response.context["timeline"]) == 1


def test_tracked_data_on_the_timeline_is_escaped_and_never_a_link(client_for, marketer):
    lead = LeadFactory(first_name="<b>bold</b>")
    payload = "<script>alert(1)</script>"
    TouchpointFactory(
        lead=lead,
        url="javascript:alert(1)",
        referrer="https://x.example/" + payload,
        page_title=payload,
        search_terms='"><img src=x onerror=alert(1)>',
        kind="site_search",
    )
    SalesActivityFactory(lead=lead, note=payload)
    response = client_for(marketer).get(detail_url(lead))
    text = response.text
    assert payload not in text
    assert "<b>bold</b>" not in text
    assert "onerror=alert(1)>" not in text
    assert 'href="javascript:' not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text


def test_detail_stays_within_its_query_budget(client_for, marketer, rep, django_assert_max_num_queries):
    lead = LeadFactory(owner=rep)
    TouchpointFactory.create_batch(40, lead=lead)
    SalesActivityFactory.create_batch(10, lead=lead, rep=rep)
    StageChangeFactory.create_batch(5, lead=lead)
    client = client_for(marketer)
    client.get(detail_url(lead))
    with django_assert_max_num_queries(8):
        response = client.get(detail_url(lead))
    assert len(response.context["timeline"]) == 50
