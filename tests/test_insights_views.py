"""The cockpit over HTTP: who may open it, hostile filter input, escaped labels, CSV formula escaping, the htmx
fragments and the query budget."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from leadcockpit.handover.models import Handover
from leadcockpit.insights import rollups
from leadcockpit.insights.panels import PANELS
from leadcockpit.leads.models import Lead, StageChange

from .factories import CampaignFactory, LeadFactory, UserFactory

pytestmark = pytest.mark.django_db

XSS = '<script>alert("x")</script>'
FORMULA = '=HYPERLINK("http://evil.example","click")'


@pytest.fixture
def data(rep, inside_team):
    """A few leads through the funnel, one campaign named like an attack, one like a formula, and a handover."""
    now = timezone.now()
    hostile = CampaignFactory(name=XSS + '"><img src=x onerror=alert(1)>')
    formula = CampaignFactory(name=FORMULA, channel_id="email")
    leads = []
    for i, campaign in enumerate([hostile, formula, hostile, None]):
        lead = LeadFactory(campaign=campaign, first_channel_id="webinar", source="webinar", created_at=now)
        StageChange.objects.create(lead=lead, to_stage_id="mgl", system_actor="capture", at=now)
        if i < 3:
            lead.move_to("mql", system="scoring")
        leads.append(lead)
    Lead.objects.filter(pk=leads[0].pk).update(owner=rep)
    Handover.objects.create(
        lead=leads[0], team=inside_team, rep=rep, created_at=now, due_at=now + timedelta(hours=24)
    )
    rollups.rebuild()
    return leads


def cockpit_url(**query):
    from urllib.parse import urlencode

    return reverse("insights:cockpit") + ("?" + urlencode(query) if query else "")


def test_anonymous_visitors_are_sent_to_the_login(client):
    response = client.get(reverse("insights:cockpit"))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


@pytest.mark.parametrize("role", ["sales manager", "marketing", "admin"])
def test_managers_marketing_and_admins_open_the_cockpit(client_for, role, data):
    user = UserFactory(role=role)
    response = client_for(user).get(reverse("insights:cockpit"))
    assert response.status_code == 200
    body = response.content.decode()
    for name in PANELS:
        assert f'id="panel-{name}"' in body
    assert "Data as of" in body
    assert reverse("insights:cockpit") in body  # the navigation entry


def test_a_rep_gets_403_on_the_page_every_panel_and_every_csv(client_for, rep, data):
    client = client_for(rep)
    assert client.get(reverse("insights:cockpit")).status_code == 403
    for name, build in PANELS.items():
        assert client.get(reverse("insights:panel", args=[name])).status_code == 403
        for table in build(_criteria()).tables:
            assert client.get(reverse("insights:panel_csv", args=[name, table.name])).status_code == 403
    home = client.get("/", follow=True).content.decode()
    assert reverse("insights:cockpit") not in home  # no navigation entry either


def _criteria():
    from leadcockpit.insights.filters import CockpitFilter

    return CockpitFilter(None).criteria


@pytest.mark.parametrize(
    "query",
    [
        {"period": "decade"},
        {"start": "2025-13-45"},
        {"start": "yesterday", "end": "2025-01-01"},
        {"start": "2026-05-01", "end": "2025-01-01"},
        {"start": "1900-01-01"},
        {"end": "2999-01-01"},
        {"period": "week", "start": "2010-01-01"},
        {"campaign": "abc"},
        {"campaign": "999999"},
        {"rep": "-1"},
        {"team": "1 OR 1=1"},
        {"channel": "<b>"},
        {"country": "XX"},
        {"industry": "'; DROP TABLE leads_lead; --"},
        {"funnel": "sideways"},
        {"source": "x" * 5000},
    ],
)
def test_bad_filter_input_shows_form_errors_never_a_500(client_for, manager, data, query):
    client = client_for(manager)
    response = client.get(reverse("insights:cockpit"), query)
    assert response.status_code == 200
    assert "Some filters were not understood" in response.content.decode()
    fragment = client.get(reverse("insights:cockpit"), query, HTTP_HX_REQUEST="true")
    assert fragment.status_code == 200
    assert "Some filters were not understood" in fragment.content.decode()
    for name in PANELS:
        assert client.get(reverse("insights:panel", args=[name]), query).status_code == 200
    assert client.get(reverse("insights:panel_csv", args=["funnel", "funnel"]), query).status_code == 200


def test_unknown_panels_and_tables_are_404(client_for, manager, data):
    client = client_for(manager)
    assert client.get(reverse("insights:panel", args=["nope"])).status_code == 404
    assert client.get(reverse("insights:panel_csv", args=["nope", "funnel"])).status_code == 404
    assert client.get(reverse("insights:panel_csv", args=["funnel", "quality_rep"])).status_code == 404


def test_hostile_campaign_names_are_escaped_in_options_tables_and_charts(client_for, manager, data):
    client = client_for(manager)
    body = client.get(
        cockpit_url(start=(timezone.localdate() - timedelta(days=30)).isoformat())
    ).content.decode()
    assert XSS not in body
    assert "<img src=x" not in body
    escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"
    assert escaped in body  # in the campaign filter and in the per-campaign table and chart
    quality = client.get(reverse("insights:panel", args=["quality"]), HTTP_HX_REQUEST="true").content.decode()
    assert escaped in quality
    assert quality.count(escaped) >= 2  # table row and the chart's category label


def test_the_charts_are_accessible_svg_with_no_inline_style_or_script(client_for, manager, data):
    body = client_for(manager).get(reverse("insights:cockpit")).content.decode()
    assert body.count('<svg class="chart" role="img" aria-label="') >= 10
    main = body.split("<main", 1)[1]
    assert "style=" not in main
    assert "<script" not in main
    assert "<img" not in main  # the payload shows as text only


def test_csv_downloads_carry_the_filters_and_quote_formulas(client_for, manager, data):
    client = client_for(manager)
    start = (timezone.localdate() - timedelta(days=30)).isoformat()
    response = client.get(
        reverse("insights:panel_csv", args=["quality", "quality_campaign"]), {"start": start}
    )
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert 'attachment; filename="cockpit-quality_campaign-' in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0][:3] == ["Campaign", "Handovers", "Accepted"]
    names = [row[0] for row in rows[1:]]
    assert XSS + '"><img src=x onerror=alert(1)>' in names
    # The formula campaign has no handover, so it is not in this table; the funnel tables carry no names.
    funnel = client.get(
        reverse("insights:panel_csv", args=["funnel", "funnel"]), {"start": start, "channel": "webinar"}
    )
    lines = list(csv.reader(io.StringIO(b"".join(funnel.streaming_content).decode())))
    assert lines[0][0] == "Period"
    assert sum(int(row[1]) for row in lines[1:-1]) == 4  # MGL entries of the webinar leads, total row last


def test_a_formula_in_a_label_is_quoted_in_the_csv(client_for, manager, data, inside_team, rep):
    formula_lead = Lead.objects.get(campaign__name=FORMULA)
    now = timezone.now()
    Handover.objects.create(lead=formula_lead, team=inside_team, rep=rep, created_at=now, due_at=now)
    rollups.refresh()
    response = client_for(manager).get(reverse("insights:panel_csv", args=["quality", "quality_campaign"]))
    names = [row[0] for row in csv.reader(io.StringIO(b"".join(response.streaming_content).decode()))]
    assert "'" + FORMULA in names
    assert FORMULA not in names


def test_the_htmx_request_gets_only_the_panels_and_the_url_keeps_the_filters(client_for, manager, data):
    client = client_for(manager)
    response = client.get(
        reverse("insights:cockpit"), {"period": "week", "channel": "webinar"}, HTTP_HX_REQUEST="true"
    )
    body = response.content.decode()
    assert body.lstrip().startswith('<div id="panels"')
    assert "<html" not in body
    # Every CSV link carries the same filters.
    assert "period=week" in body
    assert "channel=webinar" in body
    assert response["Vary"]
    assert "HX-Request" in response["Vary"]
    form = client.get(reverse("insights:cockpit")).content.decode()
    assert 'hx-push-url="true"' in form
    assert 'method="get"' in form


def test_filters_change_the_numbers(client_for, manager, data):
    client = client_for(manager)
    start = (timezone.localdate() - timedelta(days=30)).isoformat()
    everything = client.get(reverse("insights:panel_csv", args=["funnel", "funnel_total"]), {"start": start})
    email = client.get(
        reverse("insights:panel_csv", args=["funnel", "funnel_total"]), {"start": start, "channel": "email"}
    )

    def mgl(response):
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        return int(rows[1][1])

    assert mgl(everything) == 4
    assert mgl(email) == 0


def test_the_page_stays_within_its_query_budget(client_for, manager, data, django_assert_max_num_queries):
    client = client_for(manager)
    client.get(reverse("insights:cockpit"))  # sessions, role and a fresh rollup state settle
    with django_assert_max_num_queries(32):
        assert (
            client.get(reverse("insights:cockpit"), {"channel": "webinar", "source": "webinar"}).status_code
            == 200
        )
    with django_assert_max_num_queries(12):
        response = client.get(reverse("insights:panel", args=["funnel"]), HTTP_HX_REQUEST="true")
        assert response.status_code == 200


def test_stale_rollups_are_refreshed_when_the_cockpit_opens(client_for, manager, data, tasks_in_process):
    from django.core.cache import cache

    from leadcockpit.insights.models import LeadFact, RollupState

    lead = LeadFactory(first_channel_id="webinar")
    StageChange.objects.create(lead=lead, to_stage_id="mgl", system_actor="capture", at=timezone.now())
    RollupState.objects.update(refreshed_at=timezone.now() - timedelta(minutes=5))
    cache.delete(rollups.REFRESH_ASKED)
    assert not LeadFact.objects.filter(lead_id=lead.pk).exists()
    client_for(manager).get(reverse("insights:cockpit"))
    assert LeadFact.objects.filter(lead_id=lead.pk).exists()
