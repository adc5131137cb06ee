from django.db import migrations

from leadcockpit.accounts.roles import sync_role_groups


class Migration(migrations.Migration):
    """Give the roles their handover permissions (managers set up routing; everyone reads handovers)."""

    dependencies = [("handover", "0001_initial"), ("scoring", "0005_lead_signals"), ("accounts", "0002_role_groups")]

    operations = [migrations.RunPython(sync_role_groups, migrations.RunPython.noop)]
