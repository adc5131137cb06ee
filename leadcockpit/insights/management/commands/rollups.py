from django.core.management.base import BaseCommand

from leadcockpit.insights import rollups


class Command(BaseCommand):
    help = (
        "Rebuild the cockpit's rollups from the record, or refresh them with what changed since the last run."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["rebuild", "refresh"])

    def handle(self, *args, action, **options):
        if action == "rebuild":
            seconds = rollups.rebuild()
            self.stdout.write(f"Rollups rebuilt in {seconds:.1f} s.")
        else:
            leads, seconds = rollups.refresh()
            self.stdout.write(f"Rollups refreshed: {leads:,} leads recomputed in {seconds:.1f} s.")
