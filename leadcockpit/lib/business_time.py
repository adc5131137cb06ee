"""Deadlines counted in business hours: Monday to Friday, a fixed working day, in a given time zone."""

from datetime import datetime, time, timedelta

WORKDAYS = frozenset(range(5))  # Monday .. Friday


def add_business_hours(start: datetime, hours: float, tz, *, opens=time(8), closes=time(18)) -> datetime:
    """The moment `hours` of working time after `start` (aware), counting only opens..closes on workdays in tz."""
    if hours <= 0:
        return start
    remaining = timedelta(hours=hours)
    moment = start.astimezone(tz)
    while True:
        day = moment.date()
        day_open = datetime.combine(day, opens, tz)
        day_close = datetime.combine(day, closes, tz)
        if day.weekday() not in WORKDAYS or moment >= day_close:
            moment = datetime.combine(day + timedelta(days=1), opens, tz)
            continue
        moment = max(moment, day_open)
        left_today = day_close - moment
        if remaining <= left_today:
            return (moment + remaining).astimezone(start.tzinfo)
        remaining -= left_today
        moment = datetime.combine(day + timedelta(days=1), opens, tz)
