from django.core.management.base import BaseCommand

from leadcockpit.insights import credits


class Command(BaseCommand):
    help = (
        "Rebuild the stored attribution credits from the record (every lead, chunk by chunk, then the cubes), or "
        "refresh them with the leads that changed since the last run."
    )

    def add_arguments(self, parser):
        parser.add_argument("action", choices=["rebuild", "refresh"])
        parser.add_argument(
            "--chunk", type=int, default=credits.REBUILD_CHUNK, help="leads per rebuild chunk"
        )

    def handle(self, *args, action, chunk, **options):
        if action == "rebuild":
            result = credits.rebuild(chunk=chunk)
            self.stdout.write(f"Credits rebuilt for {result.leads:,} leads in {result.seconds:.1f} s.")
        else:
            result = credits.refresh()
            verb = "rebuilt" if result.rebuilt else "refreshed"
            self.stdout.write(f"Credits {verb}: {result.leads:,} leads in {result.seconds:.1f} s.")
