# ruff: noqa: S608 - direct SQL built from fixed column names; values are bound
"""Cost and value per campaign, channel and stage: hand-computed, equal to direct SQL, and served safely."""

import csv
import io
import random
from datetime import date, datetime, time, timedelta

import pytest
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from leadcockpit.insights import costs, credits
from leadcockpit.insights.filters import Criteria

from .factories import CampaignFactory, CompanyFactory, LeadFactory, TouchpointFactory, UserFactory

pytestmark = pytest.mark.django_db

TODAY = timezone.localdate()
RANGE_START = TODAY - timedelta(days=59)


def at(day, hour=12):
    """Noon on `day` in the cockpit's time zone (no doubt which day it counts on)."""
    return timezone.make_aware(datetime.combine(day, time(hour)))


def lead_on(day, *, campaign=None, stages=(), deal=None, industry="software", **extra):
    """A lead created on `day` that reached the given stages a day apart (won: closed with `deal`)."""
    fields = {"created_at": at(day), "campaign": campaign, "stage_id": "mgl", "deal_value": deal}
    moment = day
    for stage in stages:
        moment += timedelta(days=1)
        fields[{"mql": "mql_at", "sal": "sal_at", "sql": "sql_at", "won": "closed_at"}[stage]] = at(moment)
        fields["stage_id"] = stage
    return LeadFactory(company=CompanyFactory(industry=industry), **fields, **extra)


def csv_rows(response):
    text = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(text)))


def table_by_first_column(rows):
    header, *body = rows
    return header, {row[0]: dict(zip(header, row, strict=True)) for row in body}


@pytest.fixture
def marketing(client):
    user = UserFactory(role="marketing")
    client.force_login(user)
    return user


# --- hand-computed ----------------------------------------------------------------------------------------------


def test_cost_in_range_spreads_the_cost_evenly_over_the_running_days():
    # 3,000 over 30 days (1–30 April), 10 of them in the range: 1,000.
    assert (
        costs.cost_in_range(3000, date(2026, 4, 1), date(2026, 4, 30), date(2026, 4, 21), date(2026, 5, 31))
        == 1000
    )
    assert (
        costs.cost_in_range(3000, date(2026, 4, 1), date(2026, 4, 30), date(2026, 5, 1), date(2026, 5, 31))
        == 0
    )
    assert (
        costs.cost_in_range(500, date(2026, 4, 1), date(2026, 4, 1), date(2026, 3, 1), date(2026, 4, 1))
        == 500
    )


def test_cost_per_conversion_and_value_per_stage_on_a_hand_computed_example():
    day = RANGE_START + timedelta(days=10)
    webinar = CampaignFactory(
        name="Webinar Q1", channel_id="webinar", cost=4000, starts_on=day, ends_on=day + timedelta(days=9)
    )
    # Four leads from the webinar: all MQL, two SAL and SQL, one won for 20,000.
    lead_on(day, campaign=webinar, stages=["mql", "sal", "sql", "won"], deal=20000)
    lead_on(day, campaign=webinar, stages=["mql", "sal", "sql"])
    lead_on(day, campaign=webinar, stages=["mql"])
    lead_on(day, campaign=webinar, stages=["mql"])
    credits.rebuild()
    criteria = Criteria(start=RANGE_START, end=TODAY)

    (row,) = costs.campaign_costs(criteria)
    assert row.cost == 4000
    assert [row.per(stage) for stage in costs.STAGES] == [1000, 1000, 2000, 2000, 4000]
    assert row.revenue == 20000

    values = {v.stage: v for v in costs.stage_values(criteria)}
    # P(won | MQL) = 1/4, P(won | SQL) = 1/2; the average won deal is 20,000.
    assert values["mql"].value == pytest.approx(5000)
    assert values["sql"].value == pytest.approx(10000)
    assert values["won"].value == pytest.approx(20000)
    assert values["mql"].cost_per_lead == pytest.approx(1000)


def test_costs_per_channel_add_up_the_channels_campaigns_and_leave_out_leads_without_one():
    day = RANGE_START + timedelta(days=3)
    a = CampaignFactory(channel_id="email", cost=300, starts_on=day, ends_on=day)
    b = CampaignFactory(channel_id="email", cost=900, starts_on=day, ends_on=day)
    lead_on(day, campaign=a, stages=["mql"])
    lead_on(day, campaign=b, stages=["mql"])
    lead_on(day, campaign=None, stages=["mql"], first_channel_id="email")
    credits.rebuild()
    (email,) = costs.channel_costs(costs.campaign_costs(Criteria(start=RANGE_START, end=TODAY)))
    assert email.cost == 1200
    assert email.counts["mql"] == 2
    assert email.per("mql") == 600


# --- equal to direct SQL over the same filters ---------------------------------------------------------------


def seed(rng, n=60):
    """Campaigns over the range and leads of them (and without) with random stages, days and industries."""
    campaigns = []
    for i in range(5):
        starts = RANGE_START - timedelta(days=rng.randrange(0, 40))
        campaigns.append(
            CampaignFactory(
                name=f"Campaign {i}",
                channel_id=rng.choice(["webinar", "email", "paid_search"]),
                cost=rng.randrange(500, 9000),
                starts_on=starts,
                ends_on=starts + timedelta(days=rng.randrange(5, 90)),
            )
        )
    for _ in range(n):
        day = RANGE_START + timedelta(days=rng.randrange(-20, 60))
        day = min(day, TODAY - timedelta(days=5))
        stages = ["mql", "sal", "sql", "won"][: rng.randrange(0, 5)]
        lead = lead_on(
            day,
            campaign=rng.choice([*campaigns, None]),
            stages=stages,
            deal=rng.randrange(1000, 50000) if "won" in stages else None,
            industry=rng.choice(["software", "retail"]),
        )
        for _t in range(rng.randrange(0, 4)):
            TouchpointFactory(
                lead=lead,
                occurred_at=at(day - timedelta(days=rng.randrange(0, 10))),
                campaign=rng.choice([*campaigns, None]),
                channel_id="organic",
            )
    credits.rebuild()
    return campaigns


def direct_costs(start, end, industry=None):
    """Per campaign: cost in the range and conversions counted straight from leads (own campaign)."""
    low, high = at(start, 0), at(end + timedelta(days=1), 0)
    if connection.vendor == "postgresql":
        days = "((LEAST(c.ends_on, %s::date) - GREATEST(c.starts_on, %s::date)) + 1)"
        total = "((c.ends_on - c.starts_on) + 1)"
    else:
        days = "(julianday(MIN(c.ends_on, %s)) - julianday(MAX(c.starts_on, %s)) + 1)"
        total = "(julianday(c.ends_on) - julianday(c.starts_on) + 1)"
    won = "l.stage_id IN ('won', 'customer_care', 'upsell')"
    where_lead = "AND co.industry = %s" if industry else ""
    counts = ", ".join(
        f"(SELECT COUNT(*) FROM leads_lead l JOIN leads_company co ON co.id = l.company_id "
        f"WHERE l.campaign_id = c.id AND l.{column} >= %s AND l.{column} < %s{extra} {where_lead})"
        for column, extra in [
            ("created_at", ""),
            ("mql_at", ""),
            ("sal_at", ""),
            ("sql_at", ""),
            ("closed_at", f" AND {won}"),
        ]
    )
    revenue = (
        f"(SELECT COALESCE(SUM(l.deal_value), 0) FROM leads_lead l JOIN leads_company co ON co.id = l.company_id "
        f"WHERE l.campaign_id = c.id AND l.closed_at >= %s AND l.closed_at < %s AND {won} {where_lead})"
    )
    params = [end, start, end, start]  # `days` appears twice
    for _i in range(6):
        params += [low, high] + ([industry] if industry else [])
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT c.name, CASE WHEN {days} > 0 THEN c.cost * {days} / {total} ELSE 0 END, {counts}, {revenue} "
            f"FROM leads_campaign c",
            params,
        )
        return {name: [float(v) for v in values] for name, *values in cursor.fetchall()}


@pytest.mark.parametrize("industry", [None, "retail"])
def test_cost_table_equals_direct_sql_over_the_same_filters(client, marketing, industry):
    seed(random.Random(7))
    start, end = RANGE_START + timedelta(days=5), TODAY
    query = {"start": start.isoformat(), "end": end.isoformat()}
    if industry:
        query["industry"] = industry
    response = client.get(reverse("insights:costs_csv", args=["costs_campaign"]), query)
    assert response.status_code == 200
    header, table = table_by_first_column(csv_rows(response))
    want = direct_costs(start, end, industry)
    assert sum(1 for name in want if name in table) >= 4
    assert sum(values[2] for values in want.values()) >= 5  # MQLs to compare
    for name, (cost, leads, mqls, sals, sqls, won, revenue) in want.items():
        if name not in table:  # neither running in the range nor credited in it
            assert cost == 0
            assert leads == mqls == sals == sqls == won == 0
            continue
        row = table[name]
        assert float(row["Cost in the range (EUR)"]) == pytest.approx(cost, abs=0.01)
        assert [float(row[c]) for c in ("Leads", "MQLs", "SALs", "SQLs", "Won deals")] == [
            leads,
            mqls,
            sals,
            sqls,
            won,
        ]
        assert float(row["Won revenue (EUR)"]) == pytest.approx(revenue, abs=0.01)
        if mqls and cost:
            assert float(row["Cost per MQL (EUR)"]) == pytest.approx(cost / mqls, abs=0.01)
        else:
            assert row["Cost per MQL (EUR)"] == ""


def test_value_per_stage_equals_direct_sql(client, marketing):
    seed(random.Random(11))
    start, end = RANGE_START, TODAY
    response = client.get(
        reverse("insights:costs_csv", args=["costs_value"]),
        {"start": start.isoformat(), "end": end.isoformat()},
    )
    _header, table = table_by_first_column(csv_rows(response))
    low, high = at(start, 0), at(end + timedelta(days=1), 0)
    won = "stage_id IN ('won', 'customer_care', 'upsell')"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT AVG(COALESCE(deal_value, 0)) FROM leads_lead WHERE closed_at >= %s AND closed_at < %s AND {won}",
            [low, high],
        )
        average = float(cursor.fetchone()[0] or 0)
        for label, column in (("MQL", "mql_at"), ("SQL", "sql_at")):
            cursor.execute(
                f"SELECT COUNT(*), SUM(CASE WHEN {won} THEN 1 ELSE 0 END) FROM leads_lead "
                f"WHERE {column} >= %s AND {column} < %s",
                [low, high],
            )
            reached, won_n = cursor.fetchone()
            assert reached >= 3
            row = table[label]
            assert float(row["Reached in the range"]) == reached
            assert float(row["Won by now"]) == won_n
            if reached and average:
                assert float(row["Value of a lead here (EUR)"]) == pytest.approx(
                    won_n / reached * average, abs=0.01
                )


def test_the_cube_and_the_per_lead_facts_give_the_same_sums():
    seed(random.Random(3), n=40)
    for start, end in [
        (RANGE_START, TODAY),
        (RANGE_START + timedelta(days=13), TODAY - timedelta(days=17)),
        (TODAY.replace(day=1), TODAY),
    ]:
        cube = credits.credit_sums(Criteria(start=start, end=end, dims={"industry": "retail"}))
        facts = credits.credit_sums(
            Criteria(start=start, end=end, dims={"industry": "retail", "source": "other"})
        )
        assert set(cube) == set(facts)
        for key, sums in cube.items():
            assert sums.credit == pytest.approx(facts[key].credit)
            assert sums.revenue == pytest.approx(facts[key].revenue)
            assert sums.n == facts[key].n


# --- served safely ------------------------------------------------------------------------------------------------


def test_campaign_names_are_escaped_in_tables_and_charts(client, marketing):
    day = RANGE_START + timedelta(days=2)
    evil = CampaignFactory(
        name='<script>alert("x")</script>', channel_id="email", cost=100, starts_on=day, ends_on=day
    )
    lead_on(day, campaign=evil, stages=["mql"])
    credits.rebuild()
    for url, extra in (
        (reverse("insights:costs"), {}),
        (reverse("insights:attribution"), {"attr-by": "campaign"}),
    ):
        response = client.get(url, {"start": RANGE_START.isoformat(), **extra}, HTTP_HX_REQUEST="true")
        body = response.content.decode()
        assert response.status_code == 200
        assert "<script>alert" not in body
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in body


def test_csv_cells_that_a_spreadsheet_would_run_are_quoted(client, marketing):
    day = RANGE_START + timedelta(days=2)
    evil = CampaignFactory(
        name='=HYPERLINK("http://x.example")', channel_id="email", cost=100, starts_on=day, ends_on=day
    )
    lead_on(day, campaign=evil, stages=["mql"])
    credits.rebuild()
    response = client.get(
        reverse("insights:costs_csv", args=["costs_campaign"]), {"start": RANGE_START.isoformat()}
    )
    rows = csv_rows(response)
    assert response["Content-Disposition"].startswith('attachment; filename="cockpit-costs_campaign-')
    assert [row[0] for row in rows[1:]] == ['\'=HYPERLINK("http://x.example")']


def test_reps_may_not_see_the_panels_and_anonymous_users_are_sent_to_log_in(client):
    urls = [
        reverse("insights:costs"),
        reverse("insights:attribution"),
        reverse("insights:costs_csv", args=["costs_value"]),
        reverse("insights:attribution_csv", args=["attribution_channel"]),
    ]
    for url in urls:
        assert client.get(url).status_code == 302
    client.force_login(UserFactory(role="sales rep"))
    for url in urls:
        assert client.get(url).status_code == 403
    client.force_login(UserFactory(role="sales manager"))
    for url in urls:
        assert client.get(url).status_code == 200


def test_an_unknown_table_is_404_and_odd_options_fall_back_to_the_defaults(client, marketing):
    assert client.get(reverse("insights:costs_csv", args=["nope"])).status_code == 404
    response = client.get(reverse("insights:costs"), {"cost-model": "'; DROP TABLE", "start": "not a day"})
    assert response.status_code == 200
    assert "Lead&#x27;s own campaign" in response.content.decode()


def test_a_change_of_the_panels_options_updates_it_in_place_and_keeps_it_in_the_url(
    client, marketing, django_assert_max_num_queries
):
    credits.rebuild()
    with django_assert_max_num_queries(20):
        response = client.get(
            reverse("insights:costs"),
            {"cost-model": "linear", "from": "options", "channel": "email"},
            HTTP_HX_REQUEST="true",
            HTTP_HX_CURRENT_URL="http://testserver" + reverse("insights:cockpit") + "?channel=email",
        )
    assert response.status_code == 200
    body = response.content.decode()
    assert body.lstrip().startswith('<section id="costs-panel"')
    assert "<html" not in body
    pushed = response["HX-Push-Url"]
    assert pushed.startswith(reverse("insights:cockpit") + "?")
    assert "cost-model=linear" in pushed
    assert "channel=email" in pushed


def test_a_rep_with_the_team_they_are_not_in_matches_nothing():
    from leadcockpit.accounts.models import Team

    inside, field = Team.objects.create(name="Inside"), Team.objects.create(name="Field")
    rep = UserFactory(role="sales rep", team=inside)
    day = RANGE_START + timedelta(days=4)
    lead_on(day, stages=["mql"], owner=rep)
    credits.rebuild()
    same = credits.credit_sums(
        Criteria(start=RANGE_START, end=TODAY, dims={"rep": rep.pk, "team": inside.pk})
    )
    alone = credits.credit_sums(Criteria(start=RANGE_START, end=TODAY, dims={"rep": rep.pk}))
    assert sum(s.credit["own"] for s in same.values()) == 2  # created and MQL
    assert same.keys() == alone.keys()
    assert (
        credits.credit_sums(Criteria(start=RANGE_START, end=TODAY, dims={"rep": rep.pk, "team": field.pk}))
        == {}
    )
