"""One timeline per lead: touchpoints, sales activities and stage changes merged newest first, keyset-paged."""

import heapq
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Q

from leadcockpit.lib.keyset import parse_aware_datetime

# Entries at the same instant are ordered by stream rank, then id, all descending.
STREAMS = {"stage": 3, "activity": 2, "touchpoint": 1}


@dataclass(frozen=True)
class TimelineCursor:
    at: datetime
    stream: str
    id: int

    def encode(self) -> str:
        return f"{self.at.isoformat()}~{self.stream}~{self.id}"

    @classmethod
    def decode(cls, raw: str | None):
        """The cursor in `raw`, or None when it is absent or malformed (then the timeline starts at the top)."""
        if not raw:
            return None
        try:
            at_raw, stream, pk = raw.split("~")
            at = parse_aware_datetime(at_raw)
            if at is None or stream not in STREAMS:
                return None
            return cls(at=at, stream=stream, id=int(pk))
        except ValueError:
            return None


@dataclass(frozen=True)
class TimelineEntry:
    at: datetime
    stream: str
    obj: object

    @property
    def cursor(self):
        return TimelineCursor(self.at, self.stream, self.obj.pk)

    def sort_key(self):
        return (self.at, STREAMS[self.stream], self.obj.pk)


def _after(cursor, stream, field):
    """Rows of `stream` that come after `cursor` in (time, rank, id) descending order."""
    if cursor is None:
        return Q()
    rank, cursor_rank = STREAMS[stream], STREAMS[cursor.stream]
    if rank < cursor_rank:
        return Q(**{f"{field}__lte": cursor.at})
    if rank > cursor_rank:
        return Q(**{f"{field}__lt": cursor.at})
    return Q(**{f"{field}__lt": cursor.at}) | Q(**{field: cursor.at, "pk__lt": cursor.id})


def lead_timeline(lead, *, before=None, limit=50):
    streams = [
        ("touchpoint", "occurred_at", lead.touchpoints.select_related("campaign", "channel")),
        ("activity", "occurred_at", lead.sales_activities.select_related("rep")),
        ("stage", "at", lead.stage_changes.select_related("from_stage", "to_stage", "actor")),
    ]
    fetched = []
    for stream, field, qs in streams:
        rows = qs.filter(_after(before, stream, field)).order_by(f"-{field}", "-pk")[: limit + 1]
        fetched.append([TimelineEntry(getattr(row, field), stream, row) for row in rows])
    merged = heapq.merge(*fetched, key=TimelineEntry.sort_key, reverse=True)
    entries = [entry for _, entry in zip(range(limit + 1), merged, strict=False)]
    has_more = len(entries) > limit
    entries = entries[:limit]
    return entries, (entries[-1].cursor if has_more else None)
