"""The lifecycle table: every stage change goes through it, with actor and reason (invariant 3)."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadcockpit.leads import lifecycle
from leadcockpit.leads.models import Lead, LifecycleStage, StageChange, StageConflict, StageNotAllowed

from .factories import LeadFactory, UserFactory

pytestmark = pytest.mark.django_db
NOW = datetime(2026, 6, 1, 9, 0, tzinfo=UTC)


def test_a_lead_walks_from_mgl_to_upsell_and_every_step_is_recorded(rep, marketer):
    lead = LeadFactory(stage_id="mgl")
    lead.move_to("mql", system="scoring", reason="score reached 100", at=NOW)
    lead.move_to("handed_over", system="routing", at=NOW + timedelta(minutes=1))
    lead.move_to("sal", by=rep, at=NOW + timedelta(hours=2))
    lead.move_to("sql", by=rep, reason="BANT complete", at=NOW + timedelta(days=1))
    for stage in ["first_contact", "needs_analysis", "presentation", "won", "customer_care", "upsell"]:
        lead.move_to(stage, by=rep)
    lead.refresh_from_db()
    assert lead.stage_id == "upsell"
    assert (lead.mql_at, lead.handed_over_at, lead.sal_at) == (
        NOW,
        NOW + timedelta(minutes=1),
        NOW + timedelta(hours=2),
    )
    assert lead.closed_at is not None
    trail = list(
        lead.stage_changes.order_by("at", "pk").values_list("from_stage", "to_stage", "actor", "system_actor")
    )
    assert trail[:3] == [
        ("mgl", "mql", None, "scoring"),
        ("mql", "handed_over", None, "routing"),
        ("handed_over", "sal", rep.pk, ""),
    ]
    assert len(trail) == 10


@pytest.mark.parametrize(
    ("start", "to", "who"),
    [
        ("mgl", "mql", "rep"),  # scoring's (or marketing's) move, not sales'
        ("handed_over", "sal", "marketer"),  # only sales accepts
        ("mql", "handed_over", "rep"),  # only routing hands over
        ("mgl", "won", "system"),  # no such step
        ("mgl", "sal", "admin_user"),  # not even for an admin
        ("sql", "no_such_stage", "rep"),
        ("won", "won", "rep"),
    ],
)
def test_moves_the_table_does_not_allow_raise_and_change_nothing(request, start, to, who):
    lead = LeadFactory(stage_id=start)
    kwargs = {"system": "scoring"} if who == "system" else {"by": request.getfixturevalue(who)}
    with pytest.raises(StageNotAllowed):
        lead.move_to(to, **kwargs)
    assert Lead.objects.get(pk=lead.pk).stage_id == start
    assert not StageChange.objects.exists()


def test_a_backward_move_needs_a_reason_and_is_recorded_with_it(rep):
    lead = LeadFactory(stage_id="presentation")
    with pytest.raises(StageNotAllowed, match="reason"):
        lead.move_to("needs_analysis", by=rep)
    change = lead.move_to("needs_analysis", by=rep, reason="new stakeholder joined")
    assert (change.from_stage_id, change.to_stage_id, change.reason) == (
        "presentation",
        "needs_analysis",
        "new stakeholder joined",
    )


def test_of_two_concurrent_moves_exactly_one_wins(rep, other_rep):
    lead = LeadFactory(stage_id="handed_over")
    first, second = Lead.objects.get(pk=lead.pk), Lead.objects.get(pk=lead.pk)
    first.move_to("sal", by=rep)
    with pytest.raises(StageConflict):
        second.move_to("nurturing", by=other_rep, reason="no budget")
    assert Lead.objects.get(pk=lead.pk).stage_id == "sal"
    assert StageChange.objects.count() == 1


def test_a_sales_stage_added_as_data_fits_between_sql_and_the_close(rep):
    LifecycleStage.objects.create(
        code="proof_of_concept",
        name_en="Proof of concept",
        name_de="Machbarkeitsnachweis",
        position=95,
        phase="sales",
    )
    lead = LeadFactory(stage_id="sql")
    lead.move_to("proof_of_concept", by=rep)
    lead.move_to("quote", by=rep)
    assert Lead.objects.get(pk=lead.pk).stage_id == "quote"


def test_scoring_makes_mqls_only_from_the_stages_the_table_allows():
    from leadcockpit.scoring.rescoring import MQL_FROM_STAGES

    assert set(MQL_FROM_STAGES) == {"mgl", "nurturing"}


STAGES = [
    "mgl",
    "mql",
    "nurturing",
    "handed_over",
    "sal",
    "sql",
    "first_contact",
    "needs_analysis",
    "presentation",
    "quote",
    "trial",
    "follow_up",
    "won",
    "lost",
    "customer_care",
    "upsell",
]
ACTORS = ["system", "marketing", "sales rep", "sales manager", "admin"]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    start=st.sampled_from(STAGES),
    attempts=st.lists(
        st.tuples(st.sampled_from(STAGES), st.sampled_from(ACTORS), st.sampled_from(["", "why"])),
        min_size=1,
        max_size=25,
    ),
)
def test_no_sequence_of_actions_reaches_a_transition_the_table_forbids(start, attempts):
    StageChange.objects.all().delete()
    Lead.objects.all().delete()
    users = {role: UserFactory(role=role) for role in ACTORS if role != "system"}
    lead = LeadFactory(stage_id=start)
    for to, actor, reason in attempts:
        before = Lead.objects.get(pk=lead.pk).stage_id
        kwargs = {"system": "test"} if actor == "system" else {"by": users[actor]}
        try:
            lead.move_to(to, reason=reason, **kwargs)
        except StageNotAllowed:
            assert Lead.objects.get(pk=lead.pk).stage_id == before  # a refused move changes nothing
    # Every recorded step is one the lifecycle allows for its actor (stated again below, independently of the
    # table), and the steps chain from the start to the current stage.
    current = start
    for change in StageChange.objects.filter(lead=lead).select_related("actor").order_by("at", "pk"):
        assert change.from_stage_id == current
        side = "system" if change.system_actor else SIDE_OF_ROLE[change.actor.role]
        assert expected_move(change.from_stage_id, change.to_stage_id, side, bool(change.reason)), change
        current = change.to_stage_id
    assert Lead.objects.get(pk=lead.pk).stage_id == current


SIDE_OF_ROLE = {"marketing": "marketing", "sales rep": "sales", "sales manager": "sales", "admin": "admin"}
SALES_STAGES = [
    "first_contact",
    "needs_analysis",
    "presentation",
    "quote",
    "trial",
    "follow_up",
]  # by position


def expected_move(frm, to, side, has_reason):
    """The issue's lifecycle, as a reader would state it (admins act for sales and marketing, not the system)."""
    sides = {"marketing", "sales"} if side == "admin" else {side}
    forward = {
        ("mgl", "mql"): {"system", "marketing"},
        ("mgl", "nurturing"): {"system", "marketing"},
        ("nurturing", "mql"): {"system", "marketing"},
        ("mql", "handed_over"): {"system"},
        ("handed_over", "sal"): {"sales"},
        ("sal", "sql"): {"sales"},
        ("sal", "lost"): {"sales"},
        ("won", "customer_care"): {"sales"},
        ("customer_care", "upsell"): {"sales"},
    }
    backward = {
        ("mql", "nurturing"): {"system", "marketing"},
        ("handed_over", "nurturing"): {"sales", "system"},
        ("sal", "nurturing"): {"sales"},
        ("lost", "nurturing"): {"system", "marketing"},
        ("upsell", "customer_care"): {"sales"},
    }
    for stage in ["sql", *SALES_STAGES]:
        for target in [*SALES_STAGES, "won", "lost"]:
            if stage == target:
                continue
            if (
                stage != "sql"
                and target in SALES_STAGES
                and SALES_STAGES.index(target) < SALES_STAGES.index(stage)
            ):
                backward[(stage, target)] = {"sales"}
            else:
                forward[(stage, target)] = {"sales"}
    if sides & forward.get((frm, to), set()):
        return True
    return bool(sides & backward.get((frm, to), set())) and has_reason


def test_the_demo_history_follows_the_lifecycle_table():
    from io import StringIO

    from django.core.management import call_command

    call_command("seed_demo", leads=400, seed=11, stdout=StringIO())
    steps = (
        StageChange.objects.exclude(from_stage=None)
        .values_list("from_stage", "to_stage", "system_actor")
        .distinct()
    )
    stages = {stage.code: stage for stage in LifecycleStage.objects.all()}
    for frm, to, system in steps:
        side = lifecycle.SYSTEM if system else lifecycle.SALES if to not in ("mql", "nurturing") else None
        sides = [side] if side else [lifecycle.MARKETING, lifecycle.SALES]
        assert any(lifecycle.check(frm, to, s, stages).allowed for s in sides), (frm, to, system)
