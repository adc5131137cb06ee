from django.db import migrations

from leadcockpit.accounts.roles import sync_role_groups


class Migration(migrations.Migration):
    """Give the roles their scoring permissions (marketing edits drafts; sales managers read)."""

    dependencies = [("scoring", "0002_rescoring_queue_and_jobs"), ("accounts", "0002_role_groups")]

    operations = [migrations.RunPython(sync_role_groups, migrations.RunPython.noop)]
