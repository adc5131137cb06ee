"""Load reference data from fixtures/ inside migrations (with the historical models, unlike loaddata)."""

import json
from pathlib import Path

from django.conf import settings

FIXTURES_DIR = Path(settings.BASE_DIR) / "fixtures"


def load_reference_data(apps, filename):
    """Upsert every object of a fixture file; existing rows keep their pk and get the fixture's fields."""
    for item in json.loads((FIXTURES_DIR / filename).read_text(encoding="utf-8")):
        model = apps.get_model(item["model"])
        model.objects.update_or_create(pk=item["pk"], defaults=item["fields"])


def load_import_presets(apps):
    """Upsert the shipped import presets (fixtures/import_presets.json) by name; a user's own presets stay."""
    preset_model = apps.get_model("capture", "ImportPreset")
    for item in json.loads((FIXTURES_DIR / "import_presets.json").read_text(encoding="utf-8")):
        preset_model.objects.update_or_create(
            name=item["name"], defaults={"kind": item["kind"], "mapping": item["mapping"]}
        )
