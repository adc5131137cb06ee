import json

from django.core.management.base import BaseCommand
from django.db import connection

from leadcockpit.demo.benchmarks import AREAS


class Command(BaseCommand):
    help = (
        "Measure one area of the cockpit; prints a summary and, as its last line, one JSON object of figures."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "area", choices=sorted(AREAS), help="; ".join(f"{k}: {v[1]}" for k, v in AREAS.items())
        )
        parser.add_argument("--leads", type=int, default=100_000)
        parser.add_argument("--touchpoints", type=int, default=None, help="Default: 10 per lead.")
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument(
            "--reset", action="store_true", help="Allow wiping existing leads where the area seeds."
        )

    def handle(self, *args, area, leads, touchpoints, **options):
        touchpoints = 10 * leads if touchpoints is None else touchpoints
        func, _ = AREAS[area]
        figures = func(leads=leads, touchpoints=touchpoints, out=self.stdout.write, **options)
        line = {
            "area": area,
            "leads": leads,
            "touchpoints": touchpoints,
            "database": connection.vendor,
            **figures,
        }
        self.stdout.write(json.dumps(line))
