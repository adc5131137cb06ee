"""The lead list: filters, search, allowlisted sorting, keyset pages, htmx fragment, escaping, query budget."""

import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from leadcockpit.lib.keyset import encode_cursor

from .factories import CampaignFactory, CompanyFactory, LeadFactory

pytestmark = pytest.mark.django_db
URL = reverse("leads:list")


def emails(response):
    return [lead.email for lead in response.context["page"].items]


@pytest.fixture
def catalogue(rep, other_rep):
    now = timezone.now()
    webinar = CampaignFactory(name="Webinar Scoring", channel_id="webinar")
    fair = CampaignFactory(name="Hannover Messe", channel_id="trade_fair")
    at = CompanyFactory(name="Alpenwerk GmbH", country="AT", industry="manufacturing")
    fr = CompanyFactory(name="Logistique SA", country="FR", industry="logistics")
    return {
        "green": LeadFactory(
            email="green@alpenwerk.example",
            last_name="Gruber",
            company=at,
            band="green",
            score=120,
            stage_id="mql",
            owner=rep,
            source="webinar",
            campaign=webinar,
            first_channel_id="webinar",
            created_at=now - timedelta(days=1),
        ),
        "yellow": LeadFactory(
            email="yellow@logistique.example",
            last_name="Dubois",
            company=fr,
            band="yellow",
            score=60,
            stage_id="sal",
            owner=other_rep,
            source="trade_fair",
            campaign=fair,
            first_channel_id="trade_fair",
            created_at=now - timedelta(days=2),
        ),
        "red": LeadFactory(
            email="red@logistique.example",
            last_name="Martin",
            company=fr,
            band="red",
            score=5,
            stage_id="mgl",
            owner=None,
            source="web_form",
            first_channel_id="organic",
            created_at=now - timedelta(days=3),
        ),
    }


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["green", "yellow", "red"]),
        ({"stage": "mql"}, ["green"]),
        ({"band": "yellow"}, ["yellow"]),
        ({"industry": "logistics"}, ["yellow", "red"]),
        ({"country": "AT"}, ["green"]),
        ({"source": "trade_fair"}, ["yellow"]),
        ({"channel": "organic"}, ["red"]),
        ({"band": "red", "industry": "logistics"}, ["red"]),
        ({"q": "grub"}, ["green"]),
        ({"q": "YELLOW@logistique"}, ["yellow"]),
        ({"q": "Logistique"}, ["yellow", "red"]),
        ({"q": "nobody"}, []),
    ],
)
def test_filters_and_search_narrow_the_list(client_for, marketer, catalogue, params, expected):
    response = client_for(marketer).get(URL, params)
    assert response.status_code == 200
    assert emails(response) == [catalogue[key].email for key in expected]


def test_owner_and_campaign_filters(client_for, marketer, rep, catalogue):
    client = client_for(marketer)
    assert emails(client.get(URL, {"owner": rep.pk})) == [catalogue["green"].email]
    campaign = catalogue["yellow"].campaign
    assert emails(client.get(URL, {"campaign": campaign.pk})) == [catalogue["yellow"].email]


def test_rep_cannot_filter_by_another_reps_leads(client_for, rep, other_rep, catalogue):
    response = client_for(rep).get(URL, {"owner": other_rep.pk})
    assert response.status_code == 200
    assert catalogue["yellow"].email not in response.text
    assert "owner" in response.context["filter"].errors


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("-created", ["green", "yellow", "red"]),
        ("created", ["red", "yellow", "green"]),
        ("-score", ["green", "yellow", "red"]),
        ("score", ["red", "yellow", "green"]),
        ("name", ["yellow", "green", "red"]),
    ],
)
def test_sort_orders(client_for, marketer, catalogue, sort, expected):
    response = client_for(marketer).get(URL, {"sort": sort})
    assert emails(response) == [catalogue[key].email for key in expected]


@pytest.mark.parametrize(
    "hostile",
    ["password", "owner__password", "-email'; DROP TABLE leads_lead;--", "__class__", "_connector", "?", ""],
)
def test_unknown_sort_keys_fall_back_to_newest_first(client_for, marketer, catalogue, hostile):
    response = client_for(marketer).get(URL, {"sort": hostile})
    assert response.status_code == 200
    assert response.context["sort"] == "-created"
    assert emails(response) == [catalogue[key].email for key in ("green", "yellow", "red")]


@pytest.mark.parametrize(
    "params",
    [
        {"band": "purple"},
        {"stage": "no-such-stage"},
        {"owner": "not-a-number"},
        {"campaign": "-1"},
        {"country": "XX"},
        {"after": "%%%not-base64"},
        {"after": encode_cursor("not a date", 1)},
        {"before": encode_cursor(None, "x")},
        {"sort": "-score", "after": encode_cursor("2024-01-01T00:00:00+00:00", 1)},
        {"q": "x" * 500},
        {"sort": "name", "after": encode_cursor("Mül\x00ler", 1)},
        {"sort": "name", "after": encode_cursor("x" * 5000, 1)},
        {"after": encode_cursor("0001-01-01T00:00:00+01:00", 1)},
        {"before": encode_cursor("9999-12-31T23:59:00-01:00", 1)},
        {"q": "'\"<>%_\\"},
        {"_connector": "OR", "owner__password__startswith": "pbkdf2"},
    ],
)
def test_bad_parameters_never_cause_a_server_error(client_for, marketer, catalogue, params):
    response = client_for(marketer).get(URL, params)
    assert response.status_code == 200


def test_unknown_parameters_do_not_filter(client_for, marketer, catalogue):
    response = client_for(marketer).get(URL, {"_connector": "OR", "owner__password__startswith": "pbkdf2"})
    assert len(emails(response)) == 3


def test_keyset_pages_walk_every_lead_exactly_once_both_ways(client_for, marketer, settings):
    settings.LEAD_LIST_PAGE_SIZE = 4
    now = timezone.now()
    # Ties on score and created_at make the id tie-breaker matter.
    for i in range(11):
        LeadFactory(score=float(i % 3), created_at=now - timedelta(hours=i // 2))
    client = client_for(marketer)
    for sort in ["-created", "created", "-score", "score", "name"]:
        seen, pages, params = [], [], {"sort": sort}
        while True:
            page = client.get(URL, params).context["page"]
            pages.append([lead.pk for lead in page.items])
            seen += pages[-1]
            if not page.next_cursor:
                break
            params = {"sort": sort, "after": page.next_cursor}
        assert len(seen) == len(set(seen)) == 11, sort
        # Walking back from the last page gives the same pages in reverse.
        back = [pages[-1]]
        cursor = client.get(URL, params).context["page"].prev_cursor
        while cursor:
            page = client.get(URL, {"sort": sort, "before": cursor}).context["page"]
            back.append([lead.pk for lead in page.items])
            cursor = page.prev_cursor
        assert back[::-1] == pages, sort


def test_count_is_capped_for_large_results(client_for, marketer, settings):
    settings.LEAD_LIST_COUNT_LIMIT = 3
    LeadFactory.create_batch(5)
    response = client_for(marketer).get(URL)
    assert response.context["total_capped"] is True
    assert "More than 3 leads" in response.text


def test_htmx_request_gets_only_the_results_fragment(client_for, marketer, catalogue):
    response = client_for(marketer).get(URL, {"band": "green"}, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response.text.lstrip().startswith('<section id="lead-results"')
    assert "<html" not in response.text
    assert catalogue["green"].email in response.text


def test_full_page_has_filters_that_work_without_javascript(client_for, marketer, catalogue):
    response = client_for(marketer).get(URL)
    text = response.text
    assert '<form id="lead-filters" class="filters" method="get" action="/leads/"' in text
    assert 'id="lead-results"' in text
    assert "htmx" in text  # served from our static files, never a CDN
    assert 'src="/static/django_htmx/htmx-2.min.js"' in text
    sources = re.findall(r'<(?:script|link)[^>]+(?:src|href)="([^"]+)"', text)
    assert sources
    assert all(source.startswith("/static/") for source in sources), sources


def test_list_stays_within_its_query_budget(client_for, marketer, django_assert_max_num_queries):
    company = CompanyFactory()
    LeadFactory.create_batch(60, company=company)
    client = client_for(marketer)
    client.get(URL)  # warm the session
    with django_assert_max_num_queries(12):
        response = client.get(URL, {"industry": "manufacturing", "sort": "-score"})
    assert len(response.context["page"].items) == 50


def test_tracked_and_imported_data_is_escaped(client_for, marketer):
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    LeadFactory(first_name=payload, last_name="Evil", company=CompanyFactory(name=payload))
    response = client_for(marketer).get(URL)
    assert payload not in response.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in response.text


def test_unscored_leads_show_no_traffic_light_until_scored(client_for, marketer):
    LeadFactory(email="fresh@x.example", scored_at=None)
    LeadFactory(email="scored@x.example", scored_at=timezone.now(), score=87, band="yellow")
    text = client_for(marketer).get(URL).text
    assert text.count('class="light light--') == 1
    assert "light--yellow" in text
    assert "Not scored yet" in text


def test_filter_choices_offer_all_instead_of_dashes(client_for, marketer):
    text = client_for(marketer).get(URL, HTTP_ACCEPT_LANGUAGE="de").text
    assert "---------" not in text
    assert '<option value="" selected>Alle</option>' in text


def test_a_stale_cursor_starts_over_instead_of_stranding_the_user(client_for, marketer, catalogue):
    past_the_end = encode_cursor("2000-01-01T00:00:00+00:00", 1)
    response = client_for(marketer).get(URL, {"after": past_the_end})
    assert emails(response) == [catalogue[key].email for key in ("green", "yellow", "red")]
    response = client_for(marketer).get(URL, {"before": encode_cursor("2999-01-01T00:00:00+00:00", 1)})
    assert len(emails(response)) == 3


def test_history_restore_gets_the_full_page_not_a_fragment(client_for, marketer, catalogue):
    response = client_for(marketer).get(URL, HTTP_HX_REQUEST="true", HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert "<html" in response.text
    assert "HX-Request" in response["Vary"]


def test_search_finds_a_reps_company_among_many_matching_companies(client_for, rep, monkeypatch):
    from leadcockpit.leads import filters

    monkeypatch.setattr(filters, "SEARCH_MAX_COMPANIES", 2)
    for i in range(5):
        LeadFactory(company=CompanyFactory(name=f"Acme {i}"))  # other reps' or nobody's companies
    mine = LeadFactory(owner=rep, last_name="Zed", company=CompanyFactory(name="Acme Mine"))
    response = client_for(rep).get(URL, {"q": "acme"})
    assert emails(response) == [mine.email]


def test_filter_errors_name_the_field_in_the_users_language(client_for, marketer):
    response = client_for(marketer).get(URL, {"band": "purple"}, HTTP_ACCEPT_LANGUAGE="de")
    assert "Ampel:" in response.text
