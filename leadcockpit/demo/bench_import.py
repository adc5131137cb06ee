"""`manage.py benchmark import`: a generated 100k-row lead CSV with companies, and X Education's Leads.csv."""

import csv
import io
import random
import time
from collections import Counter
from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection

from leadcockpit.capture import importing
from leadcockpit.capture.models import ImportJob, ImportPreset
from leadcockpit.leads.models import Lead

from . import names
from .benchmarks import area

X_EDUCATION = Path(settings.BASE_DIR).parent / "shared" / "data" / "x-education" / "Leads.csv"
HEADER = ["Email", "First name", "Last name", "Job title", "Phone", "Company", "Domain", "Industry", "Employees",
          "Country", "Budget", "Newsletter", "Lead score (old CRM)"]  # fmt: skip


ASCII = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss", "é": "e", " ": "-"})


def lead_csv(rows, seed=7):
    """A CRM export of `rows` leads at rows // 4 companies, semicolon-separated as German Excel writes it."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";")
    writer.writerow(HEADER)
    industries = ["Manufacturing", "Software", "Automotive", "Logistics", "Retail", "Energy", "Finance"]
    for n in range(rows):
        company = n // 4
        first, last = rng.choice(names.FIRST_NAMES["de"]), rng.choice(names.LAST_NAMES["de"])
        local = f"{first}.{last}".lower().translate(ASCII)
        writer.writerow(
            [
                f"{local}.{n}@firma{company}.example",
                first,
                last,
                rng.choice(["CTO", "Head of IT", "Einkauf", "Geschäftsführer", "Werkstudent"]),
                f"+49 30 {rng.randrange(10**6, 10**7)}",
                f"Firma {company} GmbH",
                f"firma{company}.example",
                industries[company % len(industries)],
                f"{(company % 40 + 1) * 50}",
                ["Deutschland", "Österreich", "Schweiz", "DE"][company % 4],
                rng.choice(["unknown", "planned", "approved", ""]),
                rng.choice(["ja", "nein"]),
                f"{rng.random() * 100:.1f}".replace(".", ","),
            ]
        )
    return out.getvalue().encode("utf-8-sig")


def _run(data, name, preset=None):
    started = time.perf_counter()
    job = importing.create_job(kind="leads", filename=name, data=data, by=None, preset=preset)
    uploaded = time.perf_counter() - started
    importing.queue_job(job=job, mapping=job.mapping, by=None)
    importing.run_job(job_id=job.pk)  # what the worker runs; in-process here to time the import alone
    job.refresh_from_db()
    return job, uploaded, time.perf_counter() - started


@area("import", "Import a generated 100k-row lead CSV (twice) and X Education's Leads.csv.")
def import_(*, leads, seed, reset, out, **options):
    if connection.vendor != "postgresql":
        raise CommandError("The import benchmark measures PostgreSQL; set DATABASE_URL.")
    if Lead.objects.exists() and not reset:
        raise CommandError("The database already holds leads; pass --reset to wipe them for this benchmark.")
    if reset:
        from .seeding import wipe_demo_data

        wipe_demo_data()
    rows = 100_000
    data = lead_csv(rows, seed)
    out(f"Importing a {len(data) / 1e6:.1f} MB CSV of {rows:,} leads at {rows // 4:,} companies …")
    job, uploaded, total = _run(data, "crm-export.csv")
    out(f"  {total:.1f} s ({rows / total:,.0f} rows/s; upload and checks {uploaded:.1f} s): {job.created:,} created, "
        f"{job.rejected:,} rejected, status {job.status}")  # fmt: skip
    again, _uploaded, total_again = _run(data, "crm-export.csv")
    out(f"  the same file again: {total_again:.1f} s, {again.created:,} created, {again.updated:,} updated, "
        f"{again.unchanged:,} unchanged")  # fmt: skip
    figures = {
        "import_rows": rows,
        "import_100k_s": round(total, 2),
        "import_100k_rows_per_s": round(rows / total),
        "import_100k_created": job.created,
        "import_100k_rejected": job.rejected,
        "reimport_100k_s": round(total_again, 2),
        "reimport_100k_changed": again.created + again.updated,
    }
    if X_EDUCATION.exists():
        preset = ImportPreset.objects.get(name="X Education (Leads.csv)")
        xjob, _uploaded, xtotal = _run(X_EDUCATION.read_bytes(), "Leads.csv", preset)
        reasons = Counter(r.split(":")[0] for r in xjob.rejections.values_list("reason", flat=True))
        out(f"  X Education: {xtotal:.1f} s, {xjob.created:,} imported, {xjob.rejected:,} rejected"
            f"{' — ' + ', '.join(f'{k} ({v})' for k, v in reasons.most_common(5)) if reasons else ''}")  # fmt: skip
        figures.update(
            x_education_rows=xjob.total_rows,
            x_education_imported=xjob.created + xjob.updated + xjob.unchanged,
            x_education_rejected=xjob.rejected,
            x_education_s=round(xtotal, 2),
            x_education_reasons=dict(reasons),
        )
    else:
        out(f"  X Education: no file at {X_EDUCATION}")
    ImportJob.objects.all().delete()
    return figures
