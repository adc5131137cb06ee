"""Benchmark areas for `manage.py benchmark AREA`. Each returns a dict of figures; later issues add areas."""

import os
import time

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection

from leadcockpit.leads.models import Lead

from .seeding import DemoSeeder, wipe_demo_data

AREAS = {}


def area(name, help_text):
    def register(func):
        AREAS[name] = (func, help_text)
        return func

    return register


def database_mb() -> float:
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return round(cursor.fetchone()[0] / 1024 / 1024, 1)
    if connection.vendor == "sqlite":
        name = settings.DATABASES["default"]["NAME"]
        return round(os.path.getsize(name) / 1024 / 1024, 1) if os.path.exists(str(name)) else 0.0
    return 0.0


@area("seed", "Time seed_demo at a given size (wipes existing leads with --reset).")
def seed(*, leads, touchpoints, seed, reset, out, **options):
    if Lead.objects.exists():
        if not reset:
            raise CommandError(
                "The database already holds leads; pass --reset to wipe them for the seed benchmark."
            )
        out(f"Wiping {Lead.objects.count():,} existing leads …")
        wipe_demo_data()
    out(f"Seeding {leads:,} leads with about {touchpoints:,} touchpoints on {connection.vendor} …")
    started = time.perf_counter()
    result = DemoSeeder(leads=leads, touchpoints=touchpoints, seed=seed).run()
    elapsed = time.perf_counter() - started
    size = database_mb()
    out(
        f"seed_demo: {elapsed:.1f} s ({result.leads / elapsed:,.0f} leads/s, {result.touchpoints / elapsed:,.0f} "
        f"touchpoints/s); database size {size:,.0f} MB"
    )
    return {
        "leads": result.leads,
        "touchpoints": result.touchpoints,
        "companies": result.companies,
        "stage_changes": result.stage_changes,
        "sales_activities": result.sales_activities,
        "seed_s": round(elapsed, 2),
        "db_mb": size,
    }
