"""Ship the import presets in fixtures/import_presets.json (the X Education mapping), matched by name."""

from django.db import migrations

from leadcockpit.core.fixtures import load_import_presets


class Migration(migrations.Migration):
    dependencies = [("capture", "0002_imports")]

    operations = [
        migrations.RunPython(lambda apps, schema_editor: load_import_presets(apps), migrations.RunPython.noop)
    ]
