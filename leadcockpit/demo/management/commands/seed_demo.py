import time
from datetime import date

from django.core.management.base import BaseCommand, CommandError

from leadcockpit.demo.seeding import DEMO_PASSWORD, DemoSeeder, wipe_demo_data
from leadcockpit.leads.models import Lead


class Command(BaseCommand):
    help = (
        "Create realistic demo data: companies, leads, campaigns, touchpoints, sales protocol and demo users."
    )

    def add_arguments(self, parser):
        parser.add_argument("--leads", type=int, default=2000, help="How many leads (default 2000).")
        parser.add_argument(
            "--touchpoints", type=int, default=None, help="How many touchpoints (default 10 per lead)."
        )
        parser.add_argument(
            "--seed", type=int, default=42, help="Random seed: the same seed gives the same data."
        )
        parser.add_argument(
            "--today",
            type=date.fromisoformat,
            default=None,
            help="Anchor date YYYY-MM-DD that the 18 months of history end on (default: today).",
        )
        parser.add_argument(
            "--reset", action="store_true", help="Delete all existing leads, companies and campaigns first."
        )
        parser.add_argument(
            "--if-empty", action="store_true", help="Do nothing (and succeed) when leads exist already."
        )

    def handle(self, *args, leads, touchpoints, seed, today, reset, if_empty, **options):
        if leads < 0 or (touchpoints is not None and touchpoints < 0):
            raise CommandError("--leads and --touchpoints must not be negative.")
        existing = Lead.objects.exists()
        if existing and if_empty and not reset:
            self.stdout.write("Demo data is already there; nothing to do.")
            self.print_logins()
            return
        if existing and not reset:
            raise CommandError(
                "The database already holds leads. Pass --reset to replace them with demo data."
            )
        if reset:
            wipe_demo_data()
        started = time.perf_counter()
        result = DemoSeeder(
            leads=leads, touchpoints=touchpoints, seed=seed, today=today, stdout=self.stdout
        ).run()
        elapsed = time.perf_counter() - started
        self.stdout.write(
            self.style.SUCCESS(
                f"Seeded {result.leads:,} leads, {result.touchpoints:,} touchpoints, {result.companies:,} companies, "
                f"{result.campaigns:,} campaigns, {result.stage_changes:,} stage changes and "
                f"{result.sales_activities:,} sales activities in {elapsed:.1f} s."
            )
        )
        self.print_logins()

    def print_logins(self):
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for username, role in [
            ("admin", "Admin"),
            ("marketing", "Marketing"),
            ("manager", "Sales manager, Inside Sales"),
            ("manager2", "Sales manager, Field Sales"),
            ("rep", "Sales rep, Inside Sales"),
            ("rep4", "Sales rep, Field Sales"),
        ]:
            self.stdout.write(f"  {username:<10} {role}")
