"""Case-insensitive prefix search on PostgreSQL, whatever the database collation.

Django turns `istartswith` into `UPPER(col::text) LIKE UPPER('term%')`; these indexes match that expression
with text_pattern_ops. SQLite needs none of this (the demo database is small), so the operation is a no-op there.
"""

from django.db import migrations

INDEXES = {
    "lead_last_name_upper_like": ("leads_lead", "last_name"),
    "lead_first_name_upper_like": ("leads_lead", "first_name"),
    "company_name_upper_like": ("leads_company", "name"),
}


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, (table, column) in INDEXES.items():
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS "{name}" ON "{table}" (UPPER("{column}"::text) text_pattern_ops)'
        )


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in INDEXES:
        schema_editor.execute(f'DROP INDEX IF EXISTS "{name}"')


class Migration(migrations.Migration):
    dependencies = [("leads", "0002_reference_data")]

    operations = [migrations.RunPython(create, drop)]
