"""Ship the import presets in fixtures/import_presets.json (the X Education mapping), matched by name."""

import json

from django.db import migrations

from leadcockpit.core.fixtures import FIXTURES_DIR


def load(apps, schema_editor):
    preset_model = apps.get_model("capture", "ImportPreset")
    for item in json.loads((FIXTURES_DIR / "import_presets.json").read_text(encoding="utf-8")):
        preset_model.objects.update_or_create(
            name=item["name"], defaults={"kind": item["kind"], "mapping": item["mapping"]}
        )


class Migration(migrations.Migration):
    dependencies = [("capture", "0002_imports")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
