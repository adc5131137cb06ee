"""Keyset pagination must agree with a plain sort, whatever the data and page size."""

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from leadcockpit.leads.filters import SORTS
from leadcockpit.leads.models import Lead
from leadcockpit.lib.keyset import decode_cursor, encode_cursor, paginate

from .factories import CompanyFactory

BASE = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.django_db
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(
        st.tuples(st.integers(0, 5), st.integers(0, 3), st.sampled_from(["Ba", "Ab", "Ab", "Zz"])),
        min_size=0,
        max_size=25,
    ),
    size=st.integers(1, 7),
    sort_key=st.sampled_from(sorted(SORTS)),
)
def test_walking_all_pages_equals_one_sorted_query(rows, size, sort_key):
    Lead.objects.all().delete()
    company = CompanyFactory.create()
    Lead.objects.bulk_create(
        Lead(
            email=f"l{i}@x.example",
            score=float(score),
            created_at=BASE + timedelta(hours=hours),
            last_name=name,
            company=company,
        )
        for i, (score, hours, name) in enumerate(rows)
    )
    sort = SORTS[sort_key][0]
    prefix = "-" if sort.descending else ""
    expected = list(
        Lead.objects.order_by(f"{prefix}{sort.field}", f"{prefix}pk").values_list("pk", flat=True)
    )
    walked, cursor = [], None
    while True:
        page = paginate(Lead.objects.all(), sort, after=cursor, size=size)
        walked += [lead.pk for lead in page.items]
        assert len(page.items) <= size
        if not page.next_cursor:
            break
        cursor = page.next_cursor
    assert walked == expected


@given(
    value=st.one_of(
        st.text(alphabet=st.characters(exclude_characters="\x00"), max_size=30),
        st.floats(allow_nan=False, allow_infinity=False),
    ),
    pk=st.integers(1),
)
def test_cursor_round_trips(value, pk):
    from leadcockpit.lib.keyset import Sort

    kind = str if isinstance(value, str) else float
    assert decode_cursor(encode_cursor(value, pk), Sort("f", False, kind)) == (value, pk)


def test_cursor_with_nul_is_refused():
    from leadcockpit.lib.keyset import Sort

    assert decode_cursor(encode_cursor("a\x00b", 1), Sort("f", False, str)) is None


@given(raw=st.text(max_size=80))
def test_any_text_as_cursor_decodes_or_is_ignored(raw):
    from leadcockpit.lib.keyset import Sort

    for kind in (str, float, datetime):
        result = decode_cursor(raw, Sort("f", False, kind))
        assert result is None or isinstance(result, tuple)
