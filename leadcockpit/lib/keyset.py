"""Keyset (cursor) pagination: pages stay fast at any depth because no rows are skipped with OFFSET.

A sort is (field, descending); the id breaks ties, so every sort needs an index on (field, id).
Cursors come back from the browser, so decoding is defensive: a malformed cursor means "first page".
"""

import base64
import binascii
import json
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db.models import Q
from django.utils.dateparse import parse_datetime


@dataclass(frozen=True)
class Sort:
    field: str
    descending: bool
    kind: type  # the Python type of the field's values: datetime, float or str


@dataclass
class Page:
    items: list
    next_cursor: str | None
    prev_cursor: str | None


def encode_cursor(value, pk: int) -> str:
    if isinstance(value, datetime):
        value = value.isoformat()
    raw = json.dumps([value, pk], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(raw: str | None, sort: Sort):
    """(value, pk) from `raw`, or None when it is absent or does not fit the sort."""
    if not raw or len(raw) > 500:
        return None
    try:
        value, pk = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
    except (ValueError, binascii.Error, TypeError):
        return None
    if not isinstance(pk, int) or isinstance(pk, bool):
        return None
    if sort.kind is datetime:
        value = parse_aware_datetime(value)
        if value is None:
            return None
    elif sort.kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        value = float(value)
    elif not isinstance(value, str) or "\x00" in value or len(value) > 200:
        return None  # PostgreSQL refuses NUL in text; no sort key is longer than 200 characters
    return value, pk


def parse_aware_datetime(raw):
    """An aware datetime from ISO text, or None for anything else (including dates that overflow in UTC)."""
    if not isinstance(raw, str):
        return None
    try:
        value = parse_datetime(raw)
        if value is None or value.tzinfo is None:
            return None
        value.astimezone(UTC)
    except (ValueError, OverflowError):
        return None
    return value


def _beyond(sort: Sort, value, pk: int, *, forward: bool) -> Q:
    """Rows strictly after (value, pk) in the sort's order (forward) or strictly before it.

    Written as `field <= v AND (field < v OR id < pk)` so the database gets a range to start the index scan.
    """
    less = sort.descending == forward
    op, op_eq = ("lt", "lte") if less else ("gt", "gte")
    return Q(**{f"{sort.field}__{op_eq}": value}) & (
        Q(**{f"{sort.field}__{op}": value}) | Q(**{f"pk__{op}": pk})
    )


def paginate(
    queryset, sort: Sort, *, after: str | None = None, before: str | None = None, size: int = 50
) -> Page:
    """One page of `queryset` in `sort` order, after the `after` cursor or before the `before` cursor."""
    asc, desc = sort.field, f"-{sort.field}"
    order = [desc, "-pk"] if sort.descending else [asc, "pk"]
    reverse_order = [asc, "pk"] if sort.descending else [desc, "-pk"]

    before_key = decode_cursor(before, sort) if before else None
    after_key = decode_cursor(after, sort) if after and before_key is None else None

    if before_key is not None:
        rows = list(
            queryset.filter(_beyond(sort, *before_key, forward=False)).order_by(*reverse_order)[: size + 1]
        )
        if not rows:
            return paginate(
                queryset, sort, size=size
            )  # a stale cursor: start over rather than strand the user
        has_prev = len(rows) > size
        items = rows[:size][::-1]
        has_next = True
    else:
        qs = queryset.order_by(*order)
        if after_key is not None:
            qs = qs.filter(_beyond(sort, *after_key, forward=True))
        rows = list(qs[: size + 1])
        if not rows and after_key is not None:
            return paginate(queryset, sort, size=size)
        has_next = len(rows) > size
        items = rows[:size]
        has_prev = after_key is not None

    def cursor_of(obj):
        return encode_cursor(getattr(obj, sort.field), obj.pk)

    return Page(
        items=items,
        next_cursor=cursor_of(items[-1]) if items and has_next else None,
        prev_cursor=cursor_of(items[0]) if items and has_prev else None,
    )
