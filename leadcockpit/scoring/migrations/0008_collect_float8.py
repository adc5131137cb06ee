"""The aggregate lc_collect_float8 (PostgreSQL only): the what-if's per-lead columns as one float8[] each.

array_append on the aggregate's own (expanded) array appends in place, and array_cat combines the arrays of
PostgreSQL's parallel workers, so the pass over every lead runs in the workers and sends one array per column
instead of a row per lead. PostgreSQL 16 gives array_agg a combine function; 15 does not.
"""

from django.db import migrations

CREATE = """
CREATE AGGREGATE lc_collect_float8(double precision) (
    SFUNC = array_append,
    STYPE = double precision[],
    COMBINEFUNC = array_cat,
    INITCOND = '{}',
    PARALLEL = SAFE
)
"""
DROP = "DROP AGGREGATE IF EXISTS lc_collect_float8(double precision)"


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)
        schema_editor.execute(CREATE)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("scoring", "0007_evidence")]

    operations = [migrations.RunPython(create, drop, elidable=False)]
