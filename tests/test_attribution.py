"""Attribution: the models on hand-computed examples, their invariants, the stored credits and the panel."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadcockpit.insights import attribution as a

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
