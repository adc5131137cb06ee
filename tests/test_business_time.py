"""Business-hour deadlines: counted Monday to Friday, 8:00 to 18:00 in the cockpit's time zone."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from leadcockpit.lib.business_time import add_business_hours

BERLIN = ZoneInfo("Europe/Berlin")


def at(*args):
    return datetime(*args, tzinfo=BERLIN)


def test_within_a_day_across_a_night_and_across_a_weekend():
    assert add_business_hours(at(2026, 11, 23, 9), 4, BERLIN) == at(2026, 11, 23, 13)  # Monday
    assert add_business_hours(at(2026, 11, 23, 16), 4, BERLIN) == at(
        2026, 11, 24, 10
    )  # 2 h today, 2 tomorrow
    assert add_business_hours(at(2026, 11, 27, 17), 24, BERLIN) == at(2026, 12, 2, 11)  # Friday 17:00 + 24 h
    assert add_business_hours(at(2026, 11, 28, 12), 1, BERLIN) == at(
        2026, 11, 30, 9
    )  # Saturday: from Monday 8:00
    assert add_business_hours(at(2026, 11, 23, 20), 1, BERLIN) == at(2026, 11, 24, 9)  # after closing


def test_across_the_change_to_summer_time():
    # Friday 27 March 2026, 17:00 CET; the clocks go forward on Sunday: Monday 8:00 is CEST.
    assert add_business_hours(at(2026, 3, 27, 17), 2, BERLIN) == at(2026, 3, 30, 9)


@given(
    start=st.datetimes(
        min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    hours=st.floats(0.1, 200),
)
def test_the_deadline_holds_exactly_the_business_hours_asked_for(start, hours):
    due = add_business_hours(start, hours, BERLIN)
    assert due >= start
    # Walk minute-free: count working time between start and due on each day, in Berlin.
    counted, day = timedelta(0), start.astimezone(BERLIN).date()
    while day <= due.astimezone(BERLIN).date():
        if day.weekday() < 5:
            opens = max(datetime(day.year, day.month, day.day, 8, tzinfo=BERLIN), start)
            closes = min(datetime(day.year, day.month, day.day, 18, tzinfo=BERLIN), due)
            counted += max(closes - opens, timedelta(0))
        day += timedelta(days=1)
    assert abs(counted - timedelta(hours=hours)) < timedelta(microseconds=10)
    local = due.astimezone(BERLIN)
    assert local.weekday() < 5
    assert 8 <= local.hour + local.minute / 60 <= 18
