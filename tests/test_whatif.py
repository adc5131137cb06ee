"""What-if and backtest (whatif.py): hand-computed figures, the pure ranking measures, agreement with what a
rescore really does and with plain SQL, and the preview lifecycle."""

from datetime import UTC, date, datetime, time, timedelta
from itertools import product

import pytest
from django.db.models import Case, Count, Exists, IntegerField, OuterRef, Value, When
from django.utils import timezone
from hypothesis import given
from hypothesis import strategies as st

from leadcockpit.handover.models import Handover
from leadcockpit.leads.models import Lead
from leadcockpit.scoring import actions, whatif
from leadcockpit.scoring.evaluator import evaluate
from leadcockpit.scoring.models import Preview, RescoreJob, ScoringModel, ScoringVersion
from leadcockpit.scoring.rescoring import rescore

from .factories import CompanyFactory, LeadFactory, TouchpointFactory

AS_OF = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
T0 = AS_OF - timedelta(days=5)  # when the active version last scored the leads
W_T0 = 20 * 0.5 ** (5 / 10)  # one webinar 10 days before AS_OF, as the active version stored it at T0: 14.142


def nonzero(counts):
    return {key: value for key, value in counts.items() if value}


def cell(n, positives):
    return {"n": n, "positives": positives, "rate": round(positives / n, 4) if n else None}


# --- Hand-computed figures -----------------------------------------------------------------------------------


@pytest.fixture
def active(db):
    """v1: manufacturing +30; demo request 40 each; webinar 20 each, half-life 10 days; students knocked out.
    Bands and temperature: from 30 yellow/warm, from 70 green/hot; MQL from 70. Fit A/B/C from 40/25/10, interest
    1/2/3 from 40/20/5."""
    version = ScoringVersion.objects.create(
        model=ScoringModel.objects.create(name="Default"),
        number=1,
        status="active",
        mql_threshold=70,
        yellow_from=30,
        green_from=70,
        warm_from=30,
        hot_from=70,
        fit_a_from=40,
        fit_b_from=25,
        fit_c_from=10,
        interest_1_from=40,
        interest_2_from=20,
        interest_3_from=5,
    )
    add = version.criteria.create
    add(kind="fit", position=0, label="Manufacturing", field="industry", operator="equals", value="manufacturing",
        points=30)  # fmt: skip
    add(kind="interest", position=1, label="Demo", touchpoint_kinds=["demo_request"], points=40)
    add(kind="interest", position=2, label="Webinar", touchpoint_kinds=["webinar_attendance"], points=20,
        half_life_days=10)  # fmt: skip
    add(kind="knockout", position=3, label="Student", field="contact_role", operator="equals", value="student",
        reason="student")  # fmt: skip
    return version


@pytest.fixture
def draft(active):
    """v2, copied from v1: manufacturing +45 (was 30); new fit: 500+ employees +10; demo 25 each (was 40, same
    matcher: its accumulators are reused); webinar unchanged (accumulators decayed on); new matcher: pricing page
    views 10 each, capped at 20 (counted from the touchpoints); green and MQL from 60 (were 70)."""
    draft = actions.new_draft(model=active.model, by=None, from_version=active)
    draft.criteria.filter(label="Manufacturing").update(points=45)
    draft.criteria.filter(label="Demo").update(points=25)
    draft.criteria.create(kind="fit", position=4, label="500+ employees", field="employee_count",
                          operator="range", value={"min": 500, "max": None}, points=10)  # fmt: skip
    draft.criteria.create(kind="interest", position=5, label="Pricing", touchpoint_kinds=["page_view"],
                          url_contains="/pricing", points=10, cap=20)  # fmt: skip
    draft.green_from = draft.mql_threshold = 60
    draft.save()
    return draft


def make_lead(name, *, industry, employees, stage, role="user", created_days_ago=60, demos=0, webinars=0,
              pricing=0, handovers=()):  # fmt: skip
    lead = LeadFactory(
        first_name=name,
        last_name="",
        email=f"{name.lower()}@firma.example",
        contact_role=role,
        stage_id=stage,
        created_at=AS_OF - timedelta(days=created_days_ago),
        company=CompanyFactory(industry=industry, employee_count=employees),
    )
    for kind, count, days in (("demo_request", demos, 20), ("webinar_attendance", webinars, 10)):
        for _ in range(count):
            TouchpointFactory(lead=lead, kind=kind, url="", occurred_at=AS_OF - timedelta(days=days))
    for _ in range(pricing):
        TouchpointFactory(lead=lead, kind="page_view", url="https://x.example/pricing", occurred_at=T0)
    for status in handovers:
        Handover.objects.create(
            lead=lead,
            status=status,
            reject_reason="no_budget" if status == "rejected" else "",
            created_at=T0,
            due_at=T0 + timedelta(days=1),
        )
    return lead


@pytest.fixture
def leads(active):
    """Eleven leads; all but Hans scored by v1 as of T0 (Hans arrived since: no accumulators, old values unset)."""
    leads = {
        lead.first_name: lead
        for lead in [
            make_lead(
                "Anna", industry="manufacturing", employees=1000, stage="won", demos=1, webinars=1, pricing=3
            ),
            make_lead("Bernd", industry="manufacturing", employees=100, stage="lost"),
            make_lead(
                "Clara", industry="retail", employees=1000, stage="sal", demos=1, handovers=["accepted"]
            ),
            make_lead("Dieter", industry="manufacturing", employees=50, stage="mgl", demos=1),
            make_lead(
                "Eva",
                industry="manufacturing",
                employees=600,
                stage="nurturing",
                pricing=2,
                handovers=["rejected"],
            ),
            make_lead(
                "Frank", industry="manufacturing", employees=1000, stage="mgl", role="student", demos=2
            ),
            make_lead(
                "Greta", industry="retail", employees=10, stage="lost", webinars=1, handovers=["accepted"]
            ),
            make_lead(
                "Hans", industry="retail", employees=600, stage="mgl", created_days_ago=7, demos=2, pricing=1
            ),
            make_lead(
                "Ines",
                industry="manufacturing",
                employees=1000,
                stage="customer_care",
                created_days_ago=7,
                webinars=1,
            ),
            make_lead(
                "Jonas",
                industry="retail",
                employees=100,
                stage="sql",
                created_days_ago=7,
                handovers=["rejected", "accepted"],
            ),
            make_lead("Karl", industry="retail", employees=10, stage="mgl", created_days_ago=7, demos=1),
        ]
    }
    scored = [lead.pk for name, lead in leads.items() if name != "Hans"]
    assert rescore(lead_ids=scored, as_of=T0, advance_stages=False).scored == 10
    return leads


# What v1 stored at T0 (fit / interest → band, temperature, grade, MQL):
#   Anna    30 / 40 + 14.14 = 84.14  green hot  B1 MQL   (won: converted)
#   Bernd   30 /  0         = 30     yellow warm B4       (lost: not converted)
#   Clara    0 / 40         = 40     yellow warm D1       (accepted handover: converted)
#   Dieter  30 / 40         = 70     green hot  B1 MQL    (no outcome)
#   Eva     30 /  0         = 30     yellow warm B4       (rejected handover: not converted)
#   Frank   30 / 80         = 110    knocked out: red cold B1, no MQL (no outcome)
#   Greta    0 / 14.14      = 14.14  red cold  D3         (lost beats the accepted handover: not converted)
#   Hans    never scored: 0, red, cold, no grade           (no outcome)
#   Ines    30 / 14.14      = 44.14  yellow warm B3       (customer care: converted)
#   Jonas    0 /  0         = 0      red cold  D4         (accepted beats rejected: converted)
#   Karl     0 / 40         = 40     yellow warm D1       (no outcome)
# What v2 gives as of AS_OF (the webinar now counts 20 × 0.5 = 10):
#   Anna    45+10 / 25 + 10 + min(3 × 10, 20) = 55 / 55 = 110  green hot  A1 MQL
#   Bernd   45    / 0                         = 45             yellow warm A4
#   Clara   10    / 25                        = 35             yellow warm C2
#   Dieter  45    / 25                        = 70             green hot  A2 MQL
#   Eva     45+10 / 20                        = 75             green hot  A2 MQL   (yellow → green)
#   Frank   55    / 50, knocked out           = 105            red cold   A1
#   Greta   0     / 10                        = 10             red cold   D3
#   Hans    10    / 2 × 25 + 10 = 60          = 70             green hot  C1 MQL   (red → green)
#   Ines    55    / 10                        = 65             green warm A3 MQL   (yellow → green)
#   Jonas   0     / 0                         = 0              red cold   D4
#   Karl    0     / 25                        = 25             red cold   D2       (yellow → red)
DRAFT = {
    "Anna": (110, "green", "hot", "A1", True),
    "Bernd": (45, "yellow", "warm", "A4", False),
    "Clara": (35, "yellow", "warm", "C2", False),
    "Dieter": (70, "green", "hot", "A2", True),
    "Eva": (75, "green", "hot", "A2", True),
    "Frank": (105, "red", "cold", "A1", False),
    "Greta": (10, "red", "cold", "D3", False),
    "Hans": (70, "green", "hot", "C1", True),
    "Ines": (65, "green", "warm", "A3", True),
    "Jonas": (0, "red", "cold", "D4", False),
    "Karl": (25, "red", "cold", "D2", False),
}


def test_the_hand_computed_table_is_what_the_reference_evaluator_says(draft, leads):
    for name, lead in leads.items():
        result = evaluate(Lead.objects.select_related("company").get(pk=lead.pk), draft, as_of=AS_OF)
        assert (result.score, result.band, result.temperature, result.grade, result.is_mql) == pytest.approx(
            DRAFT[name]
        ), name


def test_what_if_counts_moves_and_sample_match_the_hand_computed_figures(draft, leads):
    result = whatif.compute(draft, as_of=AS_OF)
    assert result["scope"] == 11
    draft_side, active_side = result["sides"]["draft"], result["sides"]["active"]
    assert draft_side["bands"] == {"red": 4, "yellow": 2, "green": 5}  # FGJK; BC; ADEHI
    assert draft_side["temperatures"] == {"cold": 4, "warm": 3, "hot": 4}  # FGJK; BCI; ADEH
    assert nonzero(draft_side["grades"]) == {
        "A1": 2, "A2": 2, "A3": 1, "A4": 1, "C1": 1, "C2": 1, "D2": 1, "D3": 1, "D4": 1,
    }  # fmt: skip
    assert draft_side["mql"] == 5  # Anna, Dieter, Eva, Hans, Ines
    assert draft_side["mql_per_week"] == 0.5  # Hans and Ines arrived within the 28 days: 2 × 7 / 28
    # MQLs the moment it went live: new MQLs in MGL or nurturing, i.e. Eva (nurturing) and Hans (MGL); Ines is a
    # customer, Anna and Dieter were MQLs already.
    assert draft_side["mql_at_activation"] == 2
    assert active_side["bands"] == {"red": 4, "yellow": 5, "green": 2}  # FGHJ; BCEIK; AD
    assert active_side["temperatures"] == {"cold": 4, "warm": 5, "hot": 2}
    assert nonzero(active_side["grades"]) == {"B1": 3, "B3": 1, "B4": 2, "D1": 2, "D3": 1, "D4": 1, "": 1}
    assert active_side["mql"] == 2  # Anna and Dieter
    assert active_side["mql_per_week"] == 0.0
    assert "mql_at_activation" not in active_side
    assert result["band_moves"] == [
        {"from": "red", "to": "green", "count": 1},  # Hans
        {"from": "yellow", "to": "red", "count": 1},  # Karl
        {"from": "yellow", "to": "green", "count": 2},  # Eva, Ines
    ]
    assert result["changed_total"] == 4
    # The largest score changes first: Hans 0 → 70, Eva 30 → 75, Ines 44.1 → 65, Karl 40 → 25.
    assert result["changed"] == [
        {"id": leads["Hans"].pk, "name": "Hans", "old_band": "red", "band": "green", "old_score": 0.0,
         "score": 70.0},
        {"id": leads["Eva"].pk, "name": "Eva", "old_band": "yellow", "band": "green", "old_score": 30.0,
         "score": 75.0},
        {"id": leads["Ines"].pk, "name": "Ines", "old_band": "yellow", "band": "green",
         "old_score": round(30 + W_T0, 1), "score": 65.0},
        {"id": leads["Karl"].pk, "name": "Karl", "old_band": "yellow", "band": "red", "old_score": 40.0,
         "score": 25.0},
    ]  # fmt: skip
    histogram = result["histogram"]
    assert len(histogram["edges"]) == len(histogram["draft"]) + 1 == len(histogram["active"]) + 1
    assert sum(histogram["draft"]) == sum(histogram["active"]) == 11
    assert result["capacity"] == {"reps": 0, "open_handovers": 0}


def test_backtest_matches_the_hand_computed_figures(draft, leads):
    """Known outcomes (7): Anna, Clara, Ines, Jonas converted; Bernd, Eva, Greta not.

    v2's scores: converted 110, 35, 65, 0; not converted 45, 75, 10. Of the 4 × 3 pairs the converted lead
    outscores: Anna 3, Clara 1 (only 10), Ines 2 (45, 10), Jonas 0 → AUC 6/12 = 0.5. The top tenth of 7 is 1
    lead, Anna (converted): lift 1 / (4/7) = 1.75. MQLs among them: Anna, Eva, Ines, of which Anna and Ines
    converted: precision 2/3, recall 2/4.
    Stored scores: converted 84.14, 40, 44.14, 0; not 30, 30, 14.14: Anna, Clara, Ines beat all three → AUC
    9/12 = 0.75; top lead Anna → lift 1.75; the one MQL (Anna) converted: precision 1, recall 1/4.
    """
    backtest = whatif.compute(draft, as_of=AS_OF)["backtest"]
    assert (backtest["n"], backtest["positives"], backtest["min_trust"]) == (7, 4, whatif.MIN_TRUST)
    new, old = backtest["draft"], backtest["active"]
    assert (new["auc"], new["top_decile_lift"], new["precision"], new["recall"], new["at_threshold"]) == (
        0.5, 1.75, 0.6667, 0.5, 3,
    )  # fmt: skip
    assert new["by_band"] == {"red": cell(2, 1), "yellow": cell(2, 1), "green": cell(3, 2)}  # GJ; BC; AEI
    assert {k: v for k, v in new["by_grade"].items() if v["n"]} == {
        "A1": cell(1, 1), "A4": cell(1, 0), "C2": cell(1, 1), "A2": cell(1, 0), "D3": cell(1, 0),
        "A3": cell(1, 1), "D4": cell(1, 1),
    }  # fmt: skip
    assert (old["auc"], old["top_decile_lift"], old["precision"], old["recall"], old["at_threshold"]) == (
        0.75, 1.75, 1.0, 0.25, 1,
    )  # fmt: skip
    assert old["by_band"] == {"red": cell(2, 1), "yellow": cell(4, 2), "green": cell(1, 1)}  # GJ; BCEI; A
    assert {k: v for k, v in old["by_grade"].items() if v["n"]} == {
        "B1": cell(1, 1), "B4": cell(2, 0), "D1": cell(1, 1), "D3": cell(1, 0), "B3": cell(1, 1),
        "D4": cell(1, 1),
    }  # fmt: skip
    assert new["by_grade"]["B1"] == cell(0, 0)  # every grade is listed, an empty one without a rate
    assert whatif.backtest(draft, as_of=AS_OF) == backtest


def test_only_the_leads_a_model_scores_are_previewed(draft, leads):
    """An active model of higher priority claims the leads at 1,000+ employees: the draft's scope loses them."""
    big = ScoringModel.objects.create(
        name="Enterprise",
        priority=1,
        rule=[{"field": "employee_count", "operator": "range", "value": {"min": 1000, "max": None}}],
    )
    ScoringVersion.objects.create(model=big, number=1, status="active")
    result = whatif.compute(draft, as_of=AS_OF)
    assert result["scope"] == 7  # without Anna, Clara, Frank, Ines
    assert result["sides"]["draft"]["bands"] == {"red": 3, "yellow": 1, "green": 3}  # GJK; B; DEH
    assert result["backtest"]["n"] == 4  # Bernd, Eva, Greta, Jonas

    # A model without an active version, between the two: retail leads below 1,000 employees, every interest
    # criterion counted from the touchpoints (there are no accumulators of its own to reuse).
    retail = ScoringModel.objects.create(
        name="Retail", priority=50, rule=[{"field": "industry", "operator": "equals", "value": "retail"}]
    )
    first = ScoringVersion.objects.create(model=retail, number=1)  # default thresholds: yellow from 50
    first.criteria.create(kind="interest", label="Demo", touchpoint_kinds=["demo_request"], points=25)
    result = whatif.compute(first, as_of=AS_OF)
    assert result["scope"] == 4  # Greta, Hans, Jonas, Karl (Clara is Enterprise's)
    # Hans 2 × 25 = 50: red → yellow; Karl 25: yellow → red; Greta and Jonas 0: red as before.
    assert result["band_moves"] == [
        {"from": "red", "to": "yellow", "count": 1},
        {"from": "yellow", "to": "red", "count": 1},
    ]
    assert [(row["name"], row["score"]) for row in result["changed"]] == [("Hans", 50.0), ("Karl", 25.0)]
    assert (result["backtest"]["n"], result["backtest"]["positives"]) == (2, 1)  # Greta lost, Jonas converted


def test_a_version_that_scores_no_lead_previews_as_zeros(leads):
    nobody = ScoringModel.objects.create(
        name="Energy", priority=1, rule=[{"field": "industry", "operator": "equals", "value": "energy"}]
    )
    version = ScoringVersion.objects.create(model=nobody, number=1)
    version.criteria.create(kind="fit", label="Any", field="email", operator="is_set", points=5)
    result = whatif.compute(version, as_of=AS_OF)
    assert result["scope"] == 0
    for side in result["sides"].values():
        assert (nonzero(side["bands"]), nonzero(side["grades"]), side["mql"], side["mql_per_week"]) == (
            {},
            {},
            0,
            0,
        )
    assert (result["band_moves"], result["changed_total"], result["changed"]) == ([], 0, [])
    assert result["histogram"] == {"edges": [], "draft": [], "active": []}
    assert result["backtest"]["n"] == 0
    assert result["backtest"]["draft"]["auc"] is None
    assert result["backtest"]["draft"]["precision"] is None
    assert whatif.backtest(version, as_of=AS_OF) == result["backtest"]  # the backtest alone, over no lead


# --- The pure ranking measures -------------------------------------------------------------------------------


def test_roc_auc_counts_pairs_and_halves_ties():
    assert whatif.roc_auc([(2, 1), (1, 0)]) == 1.0
    assert whatif.roc_auc([(1, 1), (2, 0)]) == 0.0
    assert whatif.roc_auc([(5, 1), (5, 0)]) == 0.5  # a tie counts half
    # Converted 3 and 2, not converted 2 and 1: 3 > 2, 3 > 1, 2 = 2 (½), 2 > 1 → 3.5 of 4 pairs.
    assert whatif.roc_auc([(3, 1), (2, 0), (2, 1), (1, 0)]) == 0.875
    assert whatif.roc_auc([(1, 1), (2, 1)]) is None  # nobody failed to convert
    assert whatif.roc_auc([(1, 0), (2, 0)]) is None
    assert whatif.roc_auc([]) is None


def test_top_decile_lift_compares_the_top_tenth_with_the_overall_rate():
    # 20 leads, 4 converted (rate 0.2); the top tenth is the 2 best, both converted (rate 1): lift 5.
    pairs = [(score, 1 if score in (20, 19, 3, 1) else 0) for score in range(1, 21)]
    assert whatif.top_decile_lift(pairs) == 5.0
    # 11 leads: the top tenth rounds up to 2 leads, one converted of two (0.5) over 2/11 overall → 2.75.
    pairs = [(11, 1), (10, 0), *[(score, 1 if score == 1 else 0) for score in range(1, 10)]]
    assert whatif.top_decile_lift(pairs) == pytest.approx(0.5 / (2 / 11))
    # Ties at the cut go in by lead order: the first of two equal scores is the top tenth.
    assert whatif.top_decile_lift([(1, 0), (1, 1)]) == 0.0
    assert whatif.top_decile_lift([(1, 1), (1, 0)]) == 2.0
    assert whatif.top_decile_lift([(3, 0), (2, 0)]) is None  # nobody converted
    assert whatif.top_decile_lift([]) is None


@given(
    st.lists(st.tuples(st.sampled_from([-5.0, 0.0, 0.5, 1.0, 7.25, 100.0]), st.integers(0, 1)), max_size=40)
)
def test_roc_auc_is_the_share_of_pairs_a_converted_lead_wins(pairs):
    positives = [score for score, outcome in pairs if outcome]
    negatives = [score for score, outcome in pairs if not outcome]
    auc = whatif.roc_auc(pairs)
    if not positives or not negatives:
        assert auc is None
        return
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in product(positives, negatives))
    assert auc == pytest.approx(wins / (len(positives) * len(negatives)))


# --- Agreement with reality: a seeded dataset, previewed, then activated and rescored ---------------------------

TODAY = date(2026, 11, 22)
ANCHOR = datetime.combine(TODAY, time(0, 0), tzinfo=UTC)  # the seed scores every lead as of this moment


@pytest.fixture
def seeded(db):
    from leadcockpit.demo.seeding import DemoSeeder

    DemoSeeder(leads=300, seed=11, today=TODAY).run()
    return ScoringVersion.objects.get(status="active")


def side_of_leads(leads):
    """Counts per band, temperature and grade, and MQLs, of (band, temperature, grade, is_mql) tuples."""
    figures = {
        "bands": dict.fromkeys(whatif.BANDS, 0),
        "temperatures": dict.fromkeys(whatif.TEMPERATURES, 0),
        "grades": dict.fromkeys(whatif.GRADES, 0),
        "mql": 0,
    }
    for band, temperature, grade, is_mql in leads:
        figures["bands"][band] += 1
        figures["temperatures"][temperature] += 1
        figures["grades"][grade] = figures["grades"].get(grade, 0) + 1
        figures["mql"] += bool(is_mql)
    return figures


def counts_of(side):
    return {key: side[key] for key in ("bands", "temperatures", "grades", "mql")}


def group_by(column):
    return dict(Lead.objects.order_by().values_list(column).annotate(n=Count("pk")))


def common_edit(active):
    """A draft with changed points, a changed fit criterion, a lower MQL threshold and two new interest matchers."""
    draft = actions.new_draft(model=active.model, by=None, from_version=active)
    draft.criteria.filter(label="Demo request").update(points=45)
    draft.criteria.filter(label="Decision maker").update(points=25)
    draft.criteria.filter(field="employee_count", value__min=50).update(value={"min": 100, "max": 5000})
    draft.criteria.filter(label="Pricing page visit").update(lookback_days=90)  # a changed matcher
    draft.criteria.create(kind="interest", position=99, label="Customer stories", touchpoint_kinds=["page_view"],
                          url_contains="/customers", points=6, cap=24, half_life_days=20)  # fmt: skip
    draft.mql_threshold = 80
    draft.save()
    return draft


def test_the_active_side_is_what_the_leads_carry_and_the_active_version_changes_nothing(seeded):
    result = whatif.compute(seeded, as_of=ANCHOR)
    assert result["scope"] == Lead.objects.count() == 300
    active = result["sides"]["active"]
    assert active["bands"] == {band: group_by("band").get(band, 0) for band in whatif.BANDS}
    assert active["temperatures"] == {t: group_by("temperature").get(t, 0) for t in whatif.TEMPERATURES}
    assert nonzero(active["grades"]) == group_by("grade")
    assert active["mql"] == Lead.objects.filter(score_is_mql=True).count() > 0
    recent = Lead.objects.filter(
        score_is_mql=True, created_at__gte=ANCHOR - timedelta(days=whatif.WINDOW_DAYS)
    )
    assert active["mql_per_week"] == round(recent.count() * 7 / whatif.WINDOW_DAYS, 1)
    # Previewed as of the moment it scored the leads, the active version changes nothing.
    assert counts_of(result["sides"]["draft"]) == counts_of(active)
    assert (result["band_moves"], result["changed_total"], result["changed"]) == ([], 0, [])
    assert result["sides"]["draft"]["mql_at_activation"] == 0
    assert result["histogram"]["draft"] == result["histogram"]["active"]
    assert result["backtest"]["draft"] == result["backtest"]["active"]


def test_backtest_counts_outcomes_as_plain_sql_does(seeded):
    handovers = Handover.objects.filter(lead=OuterRef("pk"))
    outcome = Case(
        When(stage_id__in=["won", "customer_care", "upsell"], then=Value(1)),
        When(stage_id="lost", then=Value(0)),
        When(Exists(handovers.filter(status="accepted")), then=Value(1)),
        When(Exists(handovers.filter(status="rejected")), then=Value(0)),
        default=None,
        output_field=IntegerField(),
    )
    counts = dict(
        Lead.objects.annotate(outcome=outcome)
        .exclude(outcome=None)
        .order_by()
        .values_list("outcome")
        .annotate(n=Count("pk"))
    )
    backtest = whatif.backtest(seeded, as_of=ANCHOR)
    assert (backtest["n"], backtest["positives"]) == (counts[0] + counts[1], counts[1])
    assert counts[0] > 0
    assert counts[1] > 0
    assert backtest == whatif.compute(seeded, as_of=ANCHOR)["backtest"]


def test_the_preview_is_what_activating_the_draft_then_does(seeded):
    draft = common_edit(seeded)
    preview = whatif.compute(draft, as_of=ANCHOR)
    predicted = preview["sides"]["draft"]
    assert preview["changed_total"] > 0  # the edit moves something
    assert predicted["mql_at_activation"] > 0

    # The reference evaluator, lead by lead, agrees with the preview.
    criteria = list(draft.criteria.all())
    evaluated = []
    for lead in Lead.objects.select_related("company").prefetch_related("touchpoints"):
        result = evaluate(
            lead, draft, as_of=ANCHOR, criteria=criteria, touchpoints=list(lead.touchpoints.all())
        )
        evaluated.append((result.band, result.temperature, result.grade, result.is_mql))
    assert side_of_leads(evaluated) == counts_of(predicted)

    # Activate it and let the full rescore run as of the preview's moment: the leads end up as predicted.
    job = actions.activate(version=draft, reason="test")
    RescoreJob.objects.filter(pk=job.pk).update(as_of=ANCHOR)
    actions.run_rescore_job(job_id=job.pk)
    job.refresh_from_db()
    assert job.status == RescoreJob.Status.DONE
    stored = Lead.objects.values_list("band", "temperature", "grade", "score_is_mql")
    assert side_of_leads(stored) == counts_of(predicted)
    assert job.new_mqls == predicted["mql_at_activation"]
    moved = sum(move["count"] for move in preview["band_moves"])
    assert moved == preview["changed_total"]
    # Now active, the version previews as no change at all.
    draft.refresh_from_db()
    after = whatif.compute(draft, as_of=ANCHOR)
    assert (after["changed_total"], counts_of(after["sides"]["active"])) == (0, counts_of(predicted))


# --- Previews: requested, reused, run, approved on ----------------------------------------------------------


def test_the_fingerprint_follows_points_and_thresholds_not_labels(draft):
    before = whatif.fingerprint(draft)
    # The same version, however it was loaded (a new instance holds its defaults as ints, a loaded one floats).
    assert whatif.fingerprint(ScoringVersion.objects.get(pk=draft.pk)) == before
    fresh = ScoringVersion.objects.create(model=draft.model, number=9)
    assert whatif.fingerprint(fresh) == whatif.fingerprint(ScoringVersion.objects.get(pk=fresh.pk))

    draft.criteria.filter(label="Demo").update(label="Demo requests")
    draft.note = "Renamed a criterion"
    draft.save()
    assert whatif.fingerprint(draft) == before
    draft.criteria.filter(label="Demo requests").update(points=26)
    after_points = whatif.fingerprint(draft)
    assert after_points != before
    draft.hot_from = 75
    draft.save()
    assert whatif.fingerprint(draft) not in (before, after_points)


def test_a_recent_preview_of_the_same_criteria_is_reused_and_an_edit_asks_for_a_new_one(draft):
    first = whatif.request_preview(draft)
    assert (first.status, first.fingerprint) == (Preview.Status.QUEUED, whatif.fingerprint(draft))
    assert whatif.request_preview(draft) == first
    draft.criteria.filter(label="Demo").update(label="Demo requests")
    assert whatif.request_preview(draft) == first  # a label changes no figure
    draft.criteria.filter(label="Demo requests").update(points=26)
    second = whatif.request_preview(draft)
    assert second != first
    assert second.fingerprint != first.fingerprint
    # Queued for longer than a worker takes to start: given up, asked again.
    Preview.objects.filter(pk=second.pk).update(created_at=second.created_at - whatif.PREVIEW_STALE * 2)
    third = whatif.request_preview(draft)
    assert third != second
    # A failed preview is not shown again; a done one only while recent.
    Preview.objects.filter(pk=third.pk).update(status=Preview.Status.FAILED)
    fourth = whatif.request_preview(draft)
    assert fourth not in (second, third)
    Preview.objects.filter(pk=fourth.pk).update(status=Preview.Status.DONE, result={})
    assert whatif.request_preview(draft) == fourth
    Preview.objects.filter(pk=fourth.pk).update(created_at=fourth.created_at - whatif.PREVIEW_MAX_AGE * 2)
    assert whatif.request_preview(draft) not in (first, second, third, fourth)


def test_a_preview_from_before_an_activation_or_a_finished_rescore_is_not_shown_again(draft):
    """The leads carry other scores once a version went live: the old comparison would mislead."""
    first = whatif.request_preview(draft)
    Preview.objects.filter(pk=first.pk).update(status=Preview.Status.DONE, result={})
    assert whatif.request_preview(draft) == first
    ScoringVersion.objects.filter(status=ScoringVersion.Status.ACTIVE).update(activated_at=timezone.now())
    second = whatif.request_preview(draft)
    assert second != first
    Preview.objects.filter(pk=second.pk).update(status=Preview.Status.DONE, result={})
    assert whatif.request_preview(draft) == second
    RescoreJob.objects.create(reason="test", as_of=timezone.now(), status="done", finished_at=timezone.now())
    assert whatif.request_preview(draft) not in (first, second)


def test_a_requested_preview_is_computed_after_commit_and_running_it_again_changes_nothing(
    draft, leads, tasks_in_process, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        preview = whatif.request_preview(draft)
    preview.refresh_from_db()
    assert preview.status == Preview.Status.DONE
    assert preview.result == whatif.compute(draft, as_of=preview.as_of)  # the figures, as of its request
    assert preview.result["scope"] == 11
    assert preview.seconds is not None
    assert preview.finished_at is not None
    whatif.run_preview(preview.pk)  # a second delivery of the same message
    again = Preview.objects.get(pk=preview.pk)
    assert (again.status, again.finished_at, again.seconds) == (Preview.Status.DONE, preview.finished_at,
                                                                preview.seconds)  # fmt: skip


def test_a_preview_that_fails_is_recorded_as_failed_without_raising(draft, leads):
    # A criterion on a field outside the allowlist (it never passed clean()) makes the SQL builder give up.
    draft.criteria.create(
        kind="fit", label="Broken", field="no_such_field", operator="equals", value="x", points=5
    )
    preview = whatif.request_preview(draft)
    whatif.run_preview(preview.pk)
    preview.refresh_from_db()
    assert preview.status == Preview.Status.FAILED
    assert "no_such_field" in preview.error
    assert preview.finished_at is not None
    assert preview.result is None
    assert Lead.objects.count() == 11  # the database is usable after the failure
    assert whatif.request_preview(draft) != preview  # and asking again tries again


def test_an_approval_only_counts_a_done_preview_of_the_version_as_it_stands(draft, active, leads):
    preview = whatif.request_preview(draft)
    assert whatif.preview_for_approval(draft, preview.pk) is None  # not computed yet
    whatif.run_preview(preview.pk)
    assert whatif.preview_for_approval(draft, preview.pk) == preview
    assert whatif.preview_for_approval(draft, str(preview.pk)) == preview  # as the form posts it
    for garbage in ("", "abc", None, "1.5", -1, "9" * 30):
        assert whatif.preview_for_approval(draft, garbage) is None
    other = whatif.request_preview(active)
    whatif.run_preview(other.pk)
    assert whatif.preview_for_approval(draft, other.pk) is None  # another version's evidence
    draft.criteria.filter(label="Demo").update(label="Demo requests")
    assert whatif.preview_for_approval(draft, preview.pk) == preview  # a label changes no figure
    draft.mql_threshold = 65
    draft.save()
    assert whatif.preview_for_approval(draft, preview.pk) is None  # stale: the figures were of other criteria
