"""Bulk loading for the seed: errors surface, and a failed load leaves the schema as it was."""

import pytest
from django.db import connection, transaction

from leadcockpit.demo.bulk import BulkWriter, Dialect, deferred_indexes
from leadcockpit.leads.models import Campaign, Lead, Touchpoint

pytestmark = pytest.mark.django_db


def index_names():
    """Every index and constraint on the lead and touchpoint tables."""
    with connection.cursor() as cursor:
        return {
            (table, name)
            for table in (Lead._meta.db_table, Touchpoint._meta.db_table)
            for name in connection.introspection.get_constraints(cursor, table)
        }


CAMPAIGNS = Campaign._meta.db_table
COLUMNS = ["id", "name", "channel_id", "cost", "starts_on", "created_at"]


def campaign_row(dialect, pk, name):
    return (pk, name, "webinar", "100.00", dialect.day(19_700), dialect.ts(1_700_000_000))


def test_rows_reach_the_database_and_are_counted():
    dialect = Dialect(connection.vendor)
    writer = BulkWriter(dialect, batch_rows=2)
    writer.declare(CAMPAIGNS, COLUMNS)
    with writer.session():
        for pk in range(1, 6):
            writer.add(CAMPAIGNS, campaign_row(dialect, pk, f"Bulk {pk}"))
    assert writer.counts[CAMPAIGNS] == 5
    assert Campaign.objects.filter(name__startswith="Bulk").count() == 5


@pytest.mark.postgres
def test_a_failed_copy_is_raised_and_rolls_back_with_the_index_changes():
    before = index_names()
    dialect = Dialect(connection.vendor)
    writer = BulkWriter(dialect)
    writer.declare(CAMPAIGNS, COLUMNS)
    writer.add(CAMPAIGNS, campaign_row(dialect, 1, "Same"))
    writer.add(CAMPAIGNS, campaign_row(dialect, 2, "Same"))
    with (
        pytest.raises(Exception, match="duplicate key"),
        transaction.atomic(),
        deferred_indexes([Lead, Touchpoint]),
        writer.session(),
    ):
        pass
    assert not Campaign.objects.filter(name="Same").exists()
    assert index_names() == before


@pytest.mark.postgres
def test_an_error_while_generating_leaves_no_batch_behind():
    dialect = Dialect(connection.vendor)
    writer = BulkWriter(dialect, batch_rows=1)
    writer.declare(CAMPAIGNS, COLUMNS)

    def generate_then_fail():
        with transaction.atomic(), writer.session():
            for pk in range(1, 50):
                writer.add(CAMPAIGNS, campaign_row(dialect, pk, f"Partial {pk}"))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        generate_then_fail()
    assert writer._thread is None  # stopped before the rollback, so nothing can be written after it
    assert not Campaign.objects.filter(name__startswith="Partial").exists()


@pytest.mark.postgres
def test_deferred_indexes_come_back_exactly_as_they_were():
    before = index_names()
    with transaction.atomic(), deferred_indexes([Lead, Touchpoint]):
        during = index_names()
    assert during < before  # secondary indexes and foreign keys were gone during the load
    assert index_names() == before
