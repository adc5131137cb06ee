"""Evidence-based scoring: the learner recovers planted effects, the leakage guard catches planted leaks, the
points keep the learned model's ranking, validity figures are what a hand computation gives, and only
marketing learns and makes drafts."""

import math
import random
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadcockpit.capture.models import ImportJob
from leadcockpit.core.bulk import insert
from leadcockpit.leads.models import Lead, Touchpoint
from leadcockpit.lib import logit
from leadcockpit.scoring import learning, validity, whatif
from leadcockpit.scoring.evaluator import evaluate
from leadcockpit.scoring.models import LearningRun, ScoringModel, ScoringVersion, ValidityReport

from .factories import UserFactory

NOW = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TRUE_EFFECTS = {
    ("attribute:segment", "B"): 1.0,
    ("attribute:segment", "C"): -1.0,
    ("attribute:newsletter", "yes"): 0.8,
}
DEMO_EFFECT = 0.7
COLUMNS = {
    "Segment": ("text", "marketing"),
    "Newsletter": ("boolean", "marketing"),
    "Visits": ("number", "marketing"),
    "Status note": (
        "text",
        "marketing",
    ),  # planted leak: written once the deal is decided, marked as marketing
    "Rep rating": ("text", "sales"),  # sales' own judgement, declared as such
}


def declare(columns=COLUMNS):
    """An import job that kept these columns as attributes, as the importer records them."""
    header = ["Id", *columns]
    mapping = {
        "columns": [
            {"target": "external_id"},
            *({"target": "attribute", "type": t, "provenance": p} for t, p in columns.values()),
        ]
    }
    ImportJob.objects.create(
        kind="leads", filename="x.csv", content=b"", encoding="utf-8", delimiter=",", header=header,
        mapping=mapping, status="done",
    )  # fmt: skip


def sigmoid(x):
    return 1 / (1 + math.exp(-x))


def plant(n=4000, seed=7):
    """n closed leads whose chance to be won follows a known logistic model; returns their ids."""
    declare()
    rng = random.Random(seed)
    leads, demos, trials = [], [], []
    for i in range(n):
        segment = rng.choices(["A", "B", "C"], weights=[50, 25, 25])[0]
        newsletter = rng.random() < 0.4
        demo = rng.random() < 0.3
        eta = -0.5 + {"A": 0.0, "B": 1.0, "C": -1.0}[segment] + 0.8 * newsletter + DEMO_EFFECT * demo
        won = rng.random() < sigmoid(eta)
        created = NOW - timedelta(days=200 - i % 100)
        closed = created + timedelta(days=30)
        note = ("deal signed" if won else "no budget") if rng.random() > 0.01 else "call back"
        leads.append(
            Lead(
                external_id=f"planted-{i}",
                stage_id="won" if won else "lost",
                created_at=created,
                closed_at=closed,
                attributes={
                    "segment": segment,
                    "newsletter": newsletter,
                    "visits": float(rng.randint(0, 20)),
                    "status_note": note,
                    "rep_rating": "hot" if won == (rng.random() < 0.8) else "cold",
                },
            )
        )
        demos.append(demo)
        trials.append(won)
    insert(leads)  # COPY on PostgreSQL: factories would take most of the test's time
    touches = []
    for lead, demo, won in zip(leads, demos, trials, strict=True):
        if demo:
            at = lead.created_at + timedelta(days=3)
            touches.append(Touchpoint(lead=lead, kind="demo_request", occurred_at=at, received_at=at))
        if won:  # planted leak by timing: only won leads, and only once they are won
            at = lead.closed_at + timedelta(days=2)
            touches.append(Touchpoint(lead=lead, kind="trial_signup", occurred_at=at, received_at=at))
    insert(touches)


def feature(result, group, value=None, role=None):
    matches = [
        f
        for f in result["features"]
        if f["group"] == group
        and (value is None or f["value"] == value)
        and (role is None or f["role"] == role)
    ]
    assert len(matches) == 1, (
        group,
        value,
        [(f["group"], f["value"], f["role"]) for f in result["features"]],
    )
    return matches[0]


@pytest.fixture
def model(db):
    model = ScoringModel.objects.create(name="Planted")
    ScoringVersion.objects.create(model=model, number=1, status="active", mql_threshold=100)
    return model


@pytest.fixture
def planted(model):
    plant()
    return learning.learn(model, as_of=NOW)


def test_the_learner_recovers_planted_effects_with_intervals_covering_the_truth(planted):
    for (group, value), truth in TRUE_EFFECTS.items():
        found = feature(planted, group, value)
        low, high = found["ci"]
        assert low <= truth <= high, (group, value, found["coef"], found["ci"])
        assert found["significant"]
        assert math.copysign(1, found["coef"]) == math.copysign(1, truth)
    assert feature(planted, "attribute:segment", "A")["reference"]  # the most common value is the baseline
    demo = feature(planted, "activity:demo_request", role="per_occurrence")
    assert demo["ci"][0] <= DEMO_EFFECT <= demo["ci"][1]
    assert demo["significant"]
    # The noise feature has no effect the data can tell from none, in most of its steps.
    visits = [f for f in planted["features"] if f["group"] == "attribute:visits"]
    assert sum(not f["significant"] for f in visits) >= len(visits) - 1
    assert planted["split"] == {**planted["split"], "train_n": 2800, "holdout_n": 1200}
    sentence = learning.describe(feature(planted, "attribute:segment", "B"))
    assert "Segment is B" in sentence
    assert "multiplies the odds" in sentence
    assert "“A”" in sentence


def test_the_leakage_guard_catches_a_planted_leaky_field_a_sales_field_and_activity_after_the_outcome(
    planted,
):
    excluded = {item["key"]: item for item in planted["excluded"]}
    assert excluded["attribute:status_note"]["code"] in ("separation", "single_auc")
    assert excluded["attribute:rep_rating"]["code"] == "sales"
    assert excluded["activity:trial_signup"]["code"] == "after_outcome"
    assert all(item["reason"] for item in excluded.values())
    used = {f["group"] for f in planted["features"]}
    assert not used & {"attribute:status_note", "attribute:rep_rating", "activity:trial_signup"}
    # Without the guard the leak would have carried the model: it is that strong.
    assert planted["holdout"]["auc_learned"] < 0.8


def test_a_statistical_exclusion_can_be_overridden_but_never_the_outcome_or_sales_provenance(model):
    plant(n=1500)
    result = learning.learn(
        model, as_of=NOW, options={"include": ["attribute:status_note", "attribute:rep_rating"]}
    )
    excluded = {item["key"]: item for item in result["excluded"]}
    assert excluded["attribute:status_note"]["included_anyway"] is True
    assert excluded["attribute:rep_rating"]["included_anyway"] is False  # sales provenance: never
    used = {f["group"] for f in result["features"]}
    assert "attribute:status_note" in used
    assert "attribute:rep_rating" not in used
    assert result["holdout"]["auc_learned"] > 0.95


def test_the_points_keep_the_learned_ranking_score_as_the_evaluator_does_and_make_one_draft(
    planted, model, marketer
):
    holdout = planted["holdout"]
    assert holdout["auc_points"] >= holdout["auc_learned"] - 0.02
    scale = planted["scale"]
    assert scale["mql_threshold"] == 100
    assert scale["points_per_logit"] > 0
    criteria = planted["suggestion"]["criteria"]
    assert all(float(c["points"]).is_integer() for c in criteria)
    segment_b = next(c for c in criteria if c.get("field") == "attribute:segment" and c["value"] == "B")
    assert segment_b["points"] == round(
        feature(planted, "attribute:segment", "B")["coef"] * scale["points_per_logit"]
    )

    draft = learning.create_draft_from_suggestion(model=model, suggestion=planted["suggestion"], by=marketer)
    assert (draft.status, draft.number) == ("draft", 2)
    assert draft.criteria.count() == len(criteria) + len(planted["suggestion"]["knockouts"])
    interest = draft.criteria.get(kind="interest")
    assert (interest.touchpoint_kinds, interest.cap) == (["demo_request"], abs(interest.points))
    # The reference evaluator scores the held-out leads as the learner's points did: the same AUC.
    ids = set(planted["split"]["holdout_ids"])
    leads = Lead.objects.filter(pk__in=ids).order_by("pk")
    criteria_rows = list(draft.criteria.all())
    scores = [evaluate(lead, draft, as_of=lead.closed_at, criteria=criteria_rows).score for lead in leads]
    outcomes = [1.0 if lead.stage_id == "won" else 0.0 for lead in leads]
    assert logit.roc_auc(np.array(scores), np.array(outcomes)) == pytest.approx(
        holdout["auc_points"], abs=5e-5
    )
    # The set-based SQL that validity reports use gives every lead the reference evaluator's score.
    by_sql = validity.scores_of(draft, as_of=NOW, lead_ids=ids)
    expected = {lead.pk: score for lead, score in zip(leads, scores, strict=True)}
    assert by_sql == pytest.approx(expected, abs=1e-9)


def test_a_draft_keeps_the_source_knockouts_and_the_keys_of_criteria_it_tests_again(model, marketer):
    declare()
    source = model.versions.get()
    competitor = source.criteria.create(
        kind="knockout", label="Competitor", field="company_domain", operator="in_list",
        value=["rival.example"], reason="competitor",
    )  # fmt: skip
    segment = source.criteria.create(
        kind="fit", label="B", field="attribute:segment", operator="equals", value="B", points=10
    )
    demo = source.criteria.create(
        kind="interest", label="Demo", touchpoint_kinds=["demo_request"], points=5, cap=5
    )
    source.criteria.create(kind="fit", label="Old", field="phone", operator="is_set", points=3)
    suggestion = {
        "criteria": [
            {"kind": "fit", "field": "attribute:segment", "operator": "equals", "value": "B", "points": 42},
            {"kind": "fit", "field": "attribute:segment", "operator": "equals", "value": "C", "points": -20},
            {"kind": "interest", "touchpoint_kinds": ["demo_request"], "points": 30, "cap": 30},
        ],
        "knockouts": [
            {"kind": "knockout", "field": "company_domain", "operator": "in_list", "value": ["rival.example"],
             "reason": "other"},
        ],
    }  # fmt: skip
    draft = learning.create_draft_from_suggestion(model=model, suggestion=suggestion, by=marketer)
    criteria = {(c.kind, c.label): c for c in draft.criteria.all()}
    assert len(criteria) == 4  # the old "phone is set" gave way; the knock-out is not doubled
    assert criteria[("knockout", "Competitor")].key == competitor.key
    by_value = {c.value: c for c in draft.criteria.filter(kind="fit")}
    assert (by_value["B"].key, by_value["B"].points) == (segment.key, 42)
    assert by_value["C"].key not in {segment.key, demo.key, competitor.key}
    assert draft.criteria.get(kind="interest").key == demo.key


@pytest.mark.django_db(transaction=True)
def test_a_draft_is_made_in_its_own_transaction_as_a_view_or_task_calls_it():
    model = ScoringModel.objects.create(name="Autocommit")
    marketer = UserFactory(role="marketing")
    suggestion = {"criteria": [{"kind": "fit", "field": "phone", "operator": "is_set", "points": 7}]}
    draft = learning.create_draft_from_suggestion(model=model, suggestion=suggestion, by=marketer)
    assert list(draft.criteria.values_list("label", "points")) == [("Phone is set", 7)]


def test_too_few_outcomes_give_a_clear_message_instead_of_a_model(model):
    declare()
    Lead.objects.bulk_create(
        [Lead(external_id=f"x{i}", stage_id="won" if i < 3 else "lost", closed_at=NOW) for i in range(30)]
    )
    result = learning.learn(model, as_of=NOW)
    assert "Too few leads" in result["error"]
    assert "features" not in result


@pytest.mark.parametrize("role", ["sales rep", "sales manager"])
def test_only_marketing_learns_and_turns_suggestions_into_drafts(model, role):
    user = UserFactory(role=role)
    with pytest.raises(learning.LearningError):
        learning.start_learning(model=model, by=user)
    with pytest.raises(learning.LearningError):
        learning.create_draft_from_suggestion(model=model, suggestion={"criteria": []}, by=user)
    assert not LearningRun.objects.exists()
    assert not ScoringVersion.objects.filter(status="draft").exists()
    assert learning.can_view_evidence(user) is (role == "sales manager")


def test_a_learning_run_goes_through_the_worker_with_progress_and_makes_a_draft(
    model, marketer, tasks_in_process, django_capture_on_commit_callbacks
):
    plant(n=1500)
    with django_capture_on_commit_callbacks(execute=True):
        run = learning.start_learning(model=model, by=marketer, options={"holdout": 0.25, "bogus": 1})
    run.refresh_from_db()
    assert (run.status, run.percent, run.step) == ("done", 100, "done")
    assert run.options == {"holdout": 0.25}
    assert run.result["split"]["holdout"] == 0.25
    learning.run_learning(run_id=run.pk)  # a second delivery of the message changes nothing
    assert LearningRun.objects.get(pk=run.pk).finished_at == run.finished_at
    draft = learning.draft_from_run(run=run, by=marketer)
    assert LearningRun.objects.get(pk=run.pk).draft == draft
    assert f"#{run.pk}" in draft.note


# --- Validity ------------------------------------------------------------------------------------------------


def test_roc_auc_and_wilson_are_what_a_hand_computation_gives():
    # positives score 2 and 4, negatives 1 and 3: of the four pairs the positive wins three
    assert logit.roc_auc([1, 2, 3, 4], [0, 1, 0, 1]) == 0.75
    assert logit.roc_auc([1, 1, 1, 1], [0, 1, 0, 1]) == 0.5  # all ties: half each
    assert logit.roc_auc([1, 2], [1, 1]) is None
    low, high = logit.wilson(5, 10)
    # (p + z²/2n ± z·sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n) with p = 0.5, n = 10, z = 1.96
    assert (round(low, 4), round(high, 4)) == (0.2366, 0.7634)


@given(pairs=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 1)), min_size=2, max_size=60))
def test_numpy_auc_agrees_with_the_backtests_pair_counting(pairs):
    scores, outcomes = zip(*pairs, strict=True)
    expected = whatif.roc_auc(pairs)
    got = logit.roc_auc(np.array(scores, dtype=float), np.array(outcomes, dtype=float))
    assert (got is None) == (expected is None)
    if got is not None:
        assert got == pytest.approx(expected)


@pytest.fixture
def small_version(db):
    """Eight closed leads with the scores 10…80 (a number attribute gives the points) and known outcomes."""
    declare({"Score": ("number", "marketing")})
    model = ScoringModel.objects.create(name="Small")
    version = ScoringVersion.objects.create(
        model=model, number=1, status="active", yellow_from=30, green_from=60, mql_threshold=60
    )
    for points in range(10, 90, 10):
        version.criteria.create(
            kind="fit", label=f"≥{points}", field="attribute:score", operator="range",
            value={"min": float(points), "max": None}, points=10,
        )  # fmt: skip
    outcomes = [0, 0, 1, 0, 0, 1, 1, 1]  # by score 10 … 80
    for index, won in enumerate(outcomes):
        Lead.objects.create(
            external_id=f"s{index}",
            stage_id="won" if won else "lost",
            closed_at=NOW - timedelta(days=10),
            attributes={"score": 10.0 * (index + 1)},
        )
    return version


def test_the_validity_report_is_what_a_hand_computation_gives(small_version):
    report = validity.compute_report(small_version, as_of=NOW)
    figures = report.result["all"]
    # positives at 30, 60, 70, 80; negatives at 10, 20, 40, 50: of the 16 pairs the positive wins 2+4+4+4
    assert (report.n, report.positives, report.auc) == (8, 4, 0.875)
    assert figures["auc"] == 0.875
    assert report.auc_low < 0.875 < report.auc_high
    # deciles of 8 leads: sizes 1,1,1,1,0… (round(8k/10)): the top lead (80, won) first
    deciles = figures["deciles"]
    assert sum(d["n"] for d in deciles) == 8
    assert (deciles[0]["n"], deciles[0]["positives"], deciles[0]["lift"]) == (1, 1, 2.0)
    # bands: red < 30 (10, 20: none won), yellow 30–59 (30 won, 40, 50 not), green ≥ 60 (60, 70, 80 won)
    bands = figures["bands"]
    assert (bands["red"]["n"], bands["red"]["positives"]) == (2, 0)
    assert (bands["yellow"]["n"], bands["yellow"]["positives"]) == (3, 1)
    assert (bands["green"]["n"], bands["green"]["positives"], bands["green"]["observed"]) == (3, 3, 1.0)
    assert bands["yellow"]["observed_low"] == pytest.approx(logit.wilson(1, 3)[0])
    assert report.result["calibration_source"] == "fitted"
    assert sum(band["n"] for band in figures["calibration"]) == 8
    assert not report.flagged  # too few outcomes to judge


def test_the_periodic_check_flags_a_version_whose_validity_dropped(small_version):
    Lead.objects.all().delete()
    rng = random.Random(3)
    for index in range(300):
        score = rng.randint(1, 8) * 10.0
        Lead.objects.create(
            external_id=f"v{index}",
            stage_id="won" if rng.random() < score / 90 else "lost",
            closed_at=NOW - timedelta(days=200),
            attributes={"score": score},
        )
    first = validity.check_validity(as_of=NOW)
    assert [r.flagged for r in first] == [False]
    assert first[0].auc > 0.7
    assert validity.check_validity(as_of=NOW + timedelta(hours=1)) == []  # reported on recently
    # Recent outcomes no longer follow the score.
    for index in range(300):
        Lead.objects.create(
            external_id=f"w{index}",
            stage_id="won" if index % 2 else "lost",
            closed_at=NOW + timedelta(days=5),
            attributes={"score": rng.randint(1, 8) * 10.0},
        )
    later = validity.check_validity(as_of=NOW + timedelta(days=6))
    assert len(later) == 1
    assert later[0].flagged
    assert later[0].result["flag"]["window"] == "recent"
    assert "fell to" in later[0].flag_reason
    assert [h[4] for h in validity.history(small_version)] == [False, True]
    assert ValidityReport.objects.count() == 2
