from django.db import migrations

from leadcockpit.core.fixtures import load_reference_data


def load(apps, schema_editor):
    load_reference_data(apps, "channels.json")
    load_reference_data(apps, "lifecycle_stages.json")


class Migration(migrations.Migration):
    dependencies = [("leads", "0001_initial")]

    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
