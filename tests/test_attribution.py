"""Attribution: the models on hand-computed examples, their invariants, the stored credits and the panel."""

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadcockpit.insights import attribution as a
from leadcockpit.insights import credits
from leadcockpit.insights.models_attribution import MODEL_COLUMNS, CreditDaily, CreditFact, CreditMonthly
from leadcockpit.leads.models import Lead

from .factories import CampaignFactory, LeadFactory, StageChangeFactory, TouchpointFactory, UserFactory

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def days(*offsets):
    return [T0 + timedelta(days=d) for d in offsets]


def rounded(values):
    return [round(v, 6) for v in values]


# --- the models on hand-computed examples -------------------------------------------------------------------


def test_first_and_last_touch_give_all_credit_to_one_touchpoint():
    times = days(0, 1, 2, 3)
    assert a.weights(a.FIRST_TOUCH, times, converted_at=T0 + timedelta(days=3)) == [1, 0, 0, 0]
    assert a.weights(a.LAST_TOUCH, times, converted_at=T0 + timedelta(days=3)) == [0, 0, 0, 1]


def test_touchpoints_after_the_conversion_get_nothing():
    times = days(0, 1, 2, 3)
    converted = T0 + timedelta(days=1, hours=12)
    assert a.weights(a.LAST_TOUCH, times, converted_at=converted) == [0, 1, 0, 0]
    assert rounded(a.weights(a.LINEAR, times, converted_at=converted)) == [0.5, 0.5, 0, 0]


def test_a_touchpoint_at_the_very_moment_of_conversion_counts():
    times = days(0, 1)
    assert a.weights(a.LAST_TOUCH, times, converted_at=times[1]) == [0, 1]


def test_linear_gives_every_touchpoint_the_same_share():
    assert rounded(a.weights(a.LINEAR, days(0, 1, 2, 3, 4), converted_at=T0 + timedelta(days=9))) == [0.2] * 5


def test_u_shaped_gives_forty_to_first_and_last_and_twenty_to_the_middle():
    five = a.weights(a.U_SHAPED, days(0, 1, 2, 3, 4), converted_at=T0 + timedelta(days=9))
    assert rounded(five) == [0.4, 0.066667, 0.066667, 0.066667, 0.4]
    three = a.weights(a.U_SHAPED, days(0, 1, 2), converted_at=T0 + timedelta(days=9))
    assert rounded(three) == [0.4, 0.2, 0.4]


def test_u_shaped_splits_two_touchpoints_evenly_and_gives_one_all():
    assert a.weights(a.U_SHAPED, days(0, 1), converted_at=T0 + timedelta(days=1)) == [0.5, 0.5]
    assert a.weights(a.U_SHAPED, days(0), converted_at=T0) == [1.0]


def test_w_shaped_gives_thirty_to_each_milestone_and_ten_to_the_rest():
    # first touch day 0, lead created at day 2 (touch of day 2), SQL at day 5 (touch of day 4), won at day 8.
    times = days(0, 1, 2, 3, 4, 6, 7)
    w = a.weights(
        a.W_SHAPED,
        times,
        converted_at=T0 + timedelta(days=8),
        created_at=T0 + timedelta(days=2),
        opportunity_at=T0 + timedelta(days=5),
    )
    assert rounded(w) == [0.3, 0.025, 0.3, 0.025, 0.3, 0.025, 0.025]


def test_w_shaped_lead_creation_is_the_touch_just_before_the_lead_was_created():
    times = days(0, 1, 3, 4)
    w = a.weights(
        a.W_SHAPED,
        times,
        converted_at=T0 + timedelta(days=9),
        created_at=T0 + timedelta(days=2),  # between the touches of day 1 and 3
        opportunity_at=T0 + timedelta(days=9),
    )
    assert rounded(w) == [0.3, 0.3, 0.1, 0.3]


def test_w_shaped_milestones_on_one_touchpoint_count_once():
    # created with the first touch: two distinct milestones share 90 %, the other two touchpoints 10 %.
    times = days(0, 1, 2, 3)
    w = a.weights(
        a.W_SHAPED,
        times,
        converted_at=T0 + timedelta(days=3),
        created_at=T0,
        opportunity_at=T0 + timedelta(days=3),
    )
    assert rounded(w) == [0.45, 0.05, 0.05, 0.45]


def test_w_shaped_with_no_other_touchpoints_the_milestones_share_everything():
    three = a.weights(
        a.W_SHAPED,
        days(0, 1, 2),
        converted_at=T0 + timedelta(days=2),
        created_at=T0 + timedelta(days=1),
        opportunity_at=T0 + timedelta(days=2),
    )
    assert rounded(three) == [0.333333] * 3
    two = a.weights(
        a.W_SHAPED,
        days(0, 1),
        converted_at=T0 + timedelta(days=1),
        created_at=T0,
        opportunity_at=T0 + timedelta(1),
    )
    assert two == [0.5, 0.5]
    assert a.weights(a.W_SHAPED, days(0), converted_at=T0, created_at=T0) == [1.0]


def test_w_shaped_crediting_an_mql_takes_the_last_touch_before_it_as_the_opportunity_milestone():
    # SQL comes after the MQL being credited: the touch that converted (day 3) is the third milestone.
    times = days(0, 1, 2, 3, 5)
    w = a.weights(
        a.W_SHAPED,
        times,
        converted_at=T0 + timedelta(days=4),
        created_at=T0 + timedelta(days=1),
        opportunity_at=T0 + timedelta(days=6),
    )
    assert rounded(w) == [0.3, 0.3, 0.1, 0.3, 0]


def test_time_decay_halves_the_weight_per_half_life_of_age():
    # ages at conversion 14, 7 and 0 days with a 7-day half-life: raw 0.25, 0.5, 1 → divided by 1.75.
    w = a.weights(a.TIME_DECAY, days(0, 7, 14), converted_at=T0 + timedelta(days=14))
    assert rounded(w) == rounded([0.25 / 1.75, 0.5 / 1.75, 1 / 1.75])


def test_time_decay_half_life_is_configurable():
    w = a.weights(a.TIME_DECAY, days(0, 1), converted_at=T0 + timedelta(days=1), half_life=timedelta(days=1))
    assert rounded(w) == rounded([1 / 3, 2 / 3])
    with pytest.raises(ValueError, match="half-life"):
        a.weights(a.TIME_DECAY, days(0), converted_at=T0, half_life=timedelta(0))


def test_no_touchpoint_before_the_conversion_gives_no_weights():
    assert a.weights(a.LINEAR, days(5, 6), converted_at=T0) == [0, 0]


def test_unordered_touchpoints_and_unknown_models_are_refused():
    with pytest.raises(ValueError, match="oldest first"):
        a.weights(a.LINEAR, days(1, 0), converted_at=T0 + timedelta(days=2))
    with pytest.raises(ValueError, match="unknown attribution model"):
        a.weights("position_based", days(0), converted_at=T0)


def test_credit_sums_the_weights_per_channel_and_campaign():
    touches = [
        a.Touch(T0, "webinar", 7),
        a.Touch(T0 + timedelta(days=1), "organic", None),
        a.Touch(T0 + timedelta(days=2), "webinar", 7),
        a.Touch(T0 + timedelta(days=3), "email", 9),
    ]
    got = a.credit(a.U_SHAPED, touches, converted_at=T0 + timedelta(days=3))
    assert {k: round(v, 6) for k, v in got.items()} == {
        ("webinar", 7): 0.5,
        ("organic", None): 0.1,
        ("email", 9): 0.4,
    }


def test_a_lead_without_touchpoints_credits_its_own_channel_and_campaign():
    assert a.credit(a.LINEAR, [], converted_at=T0, fallback=("trade_fair", 3)) == {("trade_fair", 3): 1.0}
    late = [a.Touch(T0 + timedelta(days=1), "email", None)]
    assert a.credit(a.FIRST_TOUCH, late, converted_at=T0) == {(None, None): 1.0}


# --- invariants ------------------------------------------------------------------------------------------------

offsets = st.lists(st.integers(min_value=0, max_value=90 * 24), min_size=0, max_size=12)


@settings(max_examples=300, deadline=None)
@given(
    hours=offsets,
    model=st.sampled_from(list(a.MODELS)),
    convert=st.integers(min_value=-24, max_value=100 * 24),
    created=st.integers(min_value=-24, max_value=100 * 24),
    opportunity=st.one_of(st.none(), st.integers(min_value=-24, max_value=100 * 24)),
    half_life_h=st.integers(min_value=1, max_value=60 * 24),
)
def test_weights_are_never_negative_and_sum_to_one(hours, model, convert, created, opportunity, half_life_h):
    times = sorted(T0 + timedelta(hours=h) for h in hours)
    converted_at = T0 + timedelta(hours=convert)
    w = a.weights(
        model,
        times,
        converted_at=converted_at,
        created_at=T0 + timedelta(hours=created),
        opportunity_at=None if opportunity is None else T0 + timedelta(hours=opportunity),
        half_life=timedelta(hours=half_life_h),
    )
    assert len(w) == len(times)
    assert all(x >= 0 for x in w)
    counted = [x for x, at in zip(w, times, strict=True) if at <= converted_at]
    assert all(x == 0 for x, at in zip(w, times, strict=True) if at > converted_at)
    assert sum(w) == (pytest.approx(1.0) if counted else 0)
    touches = [a.Touch(at, f"c{i % 3}", i % 2 or None) for i, at in enumerate(times)]
    assert sum(a.credit(model, touches, converted_at=converted_at).values()) == pytest.approx(1.0)


# --- stored credits: SQL against the Python rules -----------------------------------------------------------


def stored_facts(lead_ids=None):
    rows = CreditFact.objects.all()
    if lead_ids is not None:
        rows = rows.filter(lead_id__in=lead_ids)
    out = {}
    for row in rows:
        key = (row.lead_id, row.outcome, row.credit_channel, row.credit_campaign)
        assert key not in out
        out[key] = {m: getattr(row, f"w_{m}") for m in MODEL_COLUMNS}
    return out


def reference_facts(leads):
    out = {}
    for lead in leads:
        lead.refresh_from_db()
        for (outcome, channel, campaign), weights in credits.lead_credits(lead).items():
            out[(lead.pk, outcome, channel, campaign)] = {m: weights.get(m, 0.0) for m in MODEL_COLUMNS}
    return out


def assert_same_facts(got, want):
    assert set(got) == set(want)
    for key, weights in want.items():
        assert got[key] == pytest.approx(weights, abs=1e-9), key


def cube_rows(model):
    return {
        (r.dim, r.value, r.day, r.outcome, r.channel, r.campaign): (
            [getattr(r, f"c_{m}") for m in MODEL_COLUMNS]
            + [getattr(r, f"r_{m}") for m in MODEL_COLUMNS]
            + [r.won],
            r.n,
        )
        for r in model.objects.all()
    }


def assert_same_cube(got, want):
    assert set(got) == set(want)
    for key, (sums, n) in want.items():
        assert got[key][1] == n, key
        assert got[key][0] == pytest.approx(sums, abs=1e-6), key


NOW = timezone.now().replace(microsecond=0)


def make_lead(*, created, touches=(), mql=None, sql=None, won=None, campaign=None, channel=None, deal=None):
    def at(day, shift=0.0):
        return None if day is None else NOW + timedelta(days=day - shift)

    stage = "won" if won is not None else "sql" if sql is not None else "mql" if mql is not None else "mgl"
    lead = LeadFactory(
        created_at=at(created),
        mql_at=at(mql),
        sal_at=at(sql, 0.5),
        sql_at=at(sql),
        closed_at=at(won),
        stage_id=stage,
        campaign=campaign,
        first_channel_id=channel,
        deal_value=deal,
    )
    for day, tp_channel, tp_campaign in touches:
        TouchpointFactory(
            lead=lead, occurred_at=NOW + timedelta(days=day), channel_id=tp_channel, campaign=tp_campaign
        )
    return lead


@pytest.mark.django_db
def test_stored_credits_of_a_won_lead_match_the_hand_computed_weights():
    fair = CampaignFactory(name="Hannover Messe", channel_id="trade_fair")
    lead = make_lead(
        created=-30,
        touches=[(-40, "organic", None), (-30, None, fair), (-20, "email", None), (-10, "paid_search", None)],
        mql=-25,
        sql=-15,
        won=-5,
        campaign=fair,
        channel="trade_fair",
        deal=12000,
    )
    credits.rebuild()
    facts = stored_facts([lead.pk])
    # Won at day -5: four touches. W-shaped: first (organic), creation (the fair, at creation), opportunity (email,
    # the last before SQL at -15) 30 % each, the rest (paid search) 10 %.
    assert facts[(lead.pk, "won", "organic", 0)]["w_shaped"] == pytest.approx(0.3)
    assert facts[(lead.pk, "won", "trade_fair", fair.pk)]["w_shaped"] == pytest.approx(0.3)
    assert facts[(lead.pk, "won", "email", 0)]["w_shaped"] == pytest.approx(0.3)
    assert facts[(lead.pk, "won", "paid_search", 0)]["w_shaped"] == pytest.approx(0.1)
    assert facts[(lead.pk, "won", "paid_search", 0)]["last_touch"] == 1
    assert facts[(lead.pk, "won", "trade_fair", fair.pk)]["own"] == 1
    # MQL at day -25: only the first two touches count; U-shaped with two is 50/50.
    assert facts[(lead.pk, "mql", "organic", 0)]["u_shaped"] == pytest.approx(0.5)
    assert facts[(lead.pk, "mql", "trade_fair", fair.pk)]["u_shaped"] == pytest.approx(0.5)
    assert (lead.pk, "mql", "email", 0) not in facts
    # Time decay at the win: ages 35, 25, 15 and 5 days with a 7-day half-life.
    raw = [0.5 ** (age / 7) for age in (35, 25, 15, 5)]
    assert facts[(lead.pk, "won", "email", 0)]["time_decay"] == pytest.approx(raw[2] / sum(raw))
    won = CreditFact.objects.get(lead_id=lead.pk, outcome="won", credit_channel="email")
    assert won.won
    assert won.deal_value == 12000
    for outcome in ("lead", "mql", "sal", "sql", "won"):
        for model in MODEL_COLUMNS:
            total = sum(w[model] for (pk, o, *_), w in facts.items() if o == outcome)
            assert total == pytest.approx(1.0), (outcome, model)


@pytest.mark.django_db
def test_a_lead_without_touchpoints_credits_its_own_campaign_in_every_model():
    webinar = CampaignFactory(channel_id="webinar")
    lead = make_lead(created=-3, mql=-1, campaign=webinar, channel="organic")
    bare = make_lead(created=-3)
    credits.rebuild()
    facts = stored_facts([lead.pk, bare.pk])
    # The campaign's channel wins over the lead's first channel, so channel and campaign agree.
    assert facts[(lead.pk, "mql", "webinar", webinar.pk)] == dict.fromkeys(MODEL_COLUMNS, 1.0)
    assert facts[(bare.pk, "lead", "", 0)] == dict.fromkeys(MODEL_COLUMNS, 1.0)


lead_specs = st.fixed_dictionaries(
    {
        "created": st.integers(-60, 0),
        "touches": st.lists(
            st.tuples(st.integers(-90, 0), st.sampled_from(["organic", "email", None]), st.booleans()),
            max_size=6,
        ),
        "mql": st.one_of(st.none(), st.integers(-60, 0)),
        "sql": st.one_of(st.none(), st.integers(-60, 0)),
        "won": st.one_of(st.none(), st.integers(-60, 0)),
        "own_campaign": st.booleans(),
        "deal": st.one_of(st.none(), st.integers(1000, 90000)),
    }
)


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(specs=st.lists(lead_specs, min_size=1, max_size=4))
def test_stored_credits_equal_the_python_rules_for_any_leads(specs):
    with transaction.atomic():
        campaign = CampaignFactory(channel_id="paid_search")
        leads = [
            make_lead(
                created=s["created"],
                touches=[(day, ch, campaign if use else None) for day, ch, use in s["touches"]],
                mql=s["mql"],
                sql=s["sql"],
                won=s["won"],
                campaign=campaign if s["own_campaign"] else None,
                channel="webinar",
                deal=s["deal"],
            )
            for s in specs
        ]
        credits.rebuild()
        assert_same_facts(stored_facts(), reference_facts(leads))
        transaction.set_rollback(True)


@pytest.mark.django_db
def test_a_refresh_after_changes_leaves_the_same_tables_as_a_rebuild():
    email = CampaignFactory(channel_id="email")
    leads = [
        make_lead(
            created=-20 + i, touches=[(-25 + i, "organic", None), (-15 + i, "email", email)], mql=-10 + i
        )
        for i in range(4)
    ]
    make_lead(created=-50, touches=[(-50, "organic", None)], mql=-40, sql=-30, won=-20, deal=5000)
    credits.rebuild()
    # A late touchpoint before the MQL, a stage change to SQL, a win with a value, a changed campaign, a new lead.
    TouchpointFactory(lead=leads[0], occurred_at=NOW - timedelta(days=19), channel_id="referral")
    Lead.objects.filter(pk=leads[1].pk).update(sql_at=NOW - timedelta(days=1), stage_id="sql")
    StageChangeFactory(lead=leads[1], to_stage_id="sql")
    Lead.objects.filter(pk=leads[2].pk).update(
        stage_id="won", closed_at=NOW - timedelta(hours=1), deal_value=7000, updated_at=timezone.now()
    )
    Lead.objects.filter(pk=leads[3].pk).update(campaign=email, updated_at=timezone.now())
    make_lead(created=-1, touches=[(-2, "email", email)])

    result = credits.refresh()

    assert not result.rebuilt
    refreshed = (stored_facts(), cube_rows(CreditDaily), cube_rows(CreditMonthly))
    assert (leads[0].pk, "mql", "referral", 0) in refreshed[0]
    assert (leads[1].pk, "sql", "email", email.pk) in refreshed[0]
    assert CreditFact.objects.filter(lead_id=leads[2].pk, outcome="won", deal_value=7000).exists()
    assert (leads[3].pk, "lead", "email", email.pk) in refreshed[0]
    credits.rebuild()
    assert_same_facts(refreshed[0], stored_facts())
    assert_same_cube(refreshed[1], cube_rows(CreditDaily))
    assert_same_cube(refreshed[2], cube_rows(CreditMonthly))


@pytest.mark.django_db
def test_only_a_touchpoint_before_a_conversion_makes_a_lead_stale():
    lead = make_lead(created=-10, touches=[(-10, "organic", None)], mql=-5)
    Lead.objects.filter(pk=lead.pk).update(updated_at=NOW - timedelta(days=1))
    credits.rebuild()
    TouchpointFactory(lead=lead, occurred_at=NOW, channel_id="email")
    stored = credits._state(lock=False).watermarks
    assert lead.pk not in credits.changed_leads(stored, credits._current_marks())
    TouchpointFactory(lead=lead, occurred_at=NOW - timedelta(days=6), channel_id="email")
    assert lead.pk in credits.changed_leads(stored, credits._current_marks())


@pytest.mark.django_db
def test_the_credits_command_rebuilds_and_refreshes():
    lead = make_lead(created=-3, touches=[(-4, "email", None)], mql=-1)
    out = io.StringIO()
    call_command("credits", "rebuild", stdout=out)
    assert "Credits rebuilt for 1 leads" in out.getvalue()
    assert (lead.pk, "mql", "email", 0) in stored_facts()
    call_command("credits", "refresh", stdout=out)
    assert "Credits refreshed" in out.getvalue()


# --- the panel --------------------------------------------------------------------------------------------------


def panel_csv(client, **query):
    by = query.get("attr-by", "channel")
    response = client.get(reverse("insights:attribution_csv", args=[f"attribution_{by}"]), query)
    assert response.status_code == 200
    header, *rows = csv.reader(io.StringIO(b"".join(response.streaming_content).decode()))
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows}


@pytest.mark.django_db
def test_the_attribution_panel_puts_the_models_side_by_side_for_the_chosen_conversion(client):
    client.force_login(UserFactory(role="marketing"))
    fair = CampaignFactory(name="Hannover Messe", channel_id="trade_fair")
    make_lead(
        created=-30,
        touches=[(-40, "organic", None), (-30, None, fair), (-20, "email", None), (-10, "paid_search", None)],
        mql=-25,
        sql=-15,
        won=-5,
        campaign=fair,
        deal=12000,
    )
    credits.rebuild()
    start = (NOW - timedelta(days=60)).date().isoformat()
    won = panel_csv(client, start=start, **{"attr-outcome": "won"})
    w_shaped = str(a.MODELS[a.W_SHAPED])
    assert {name: float(row[w_shaped]) for name, row in won.items()} == {
        "Organic search": pytest.approx(0.3),
        "Trade fair": pytest.approx(0.3),
        "Email": pytest.approx(0.3),
        "Paid search": pytest.approx(0.1),
        "Total": pytest.approx(1.0),
    }
    assert float(won["Paid search"][str(a.MODELS[a.LAST_TOUCH])]) == 1
    assert float(won["Trade fair"]["Lead's own campaign"]) == 1
    revenue = panel_csv(client, start=start, **{"attr-outcome": "revenue", "attr-by": "campaign"})
    assert float(revenue["Hannover Messe"][f"{a.MODELS[a.W_SHAPED]} (EUR)"]) == pytest.approx(3600)
    # A channel filter picks the credited channel.
    only_email = panel_csv(client, start=start, channel="email", **{"attr-outcome": "won"})
    assert set(only_email) == {"Email", "Total"}
    page = client.get(
        reverse("insights:attribution"), {"start": start, "attr-outcome": "won"}, HTTP_HX_REQUEST="true"
    )
    assert '<option value="won" selected>' in page.content.decode()
    assert 'role="img"' in page.content.decode()  # the chart, with the table beside it
    default = client.get(reverse("insights:attribution"), HTTP_HX_REQUEST="true").content.decode()
    assert '<option value="mql" selected>' in default


@pytest.mark.django_db
def test_a_new_half_life_rebuilds_the_time_decay_credits(settings):
    lead = make_lead(created=-10, touches=[(-10, "organic", None), (-3, "email", None)], mql=-3)
    credits.rebuild()
    settings.INSIGHTS_HALF_LIFE_DAYS = 3.5
    result = credits.refresh()
    assert result.rebuilt
    # Ages 7 and 0 days at the MQL: two half-lives of 3.5 days, raw 0.25 and 1.
    assert stored_facts([lead.pk])[(lead.pk, "mql", "organic", 0)]["time_decay"] == pytest.approx(0.25 / 1.25)
    assert not credits.refresh().rebuilt
