"""`manage.py benchmark evidence`: evidence-based scoring on X Education's Leads.csv (learned on a fixed 70 %,
judged on the other 30 %) and the time to learn from 100k leads with a known outcome."""

import math
import random
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
from django.conf import settings
from django.core.management.base import CommandError
from django.db import connection
from django.utils import timezone

from leadcockpit.accounts.models import User
from leadcockpit.capture import importing
from leadcockpit.capture.models import ImportJob, ImportPreset
from leadcockpit.core.bulk import insert
from leadcockpit.leads.models import Company, Industry, Lead, Touchpoint
from leadcockpit.lib.logit import roc_auc
from leadcockpit.scoring import learning, validity
from leadcockpit.scoring.models import ScoringModel, ScoringVersion

from .benchmarks import area
from .seeding import wipe_demo_data

X_EDUCATION = Path(settings.BASE_DIR).parent / "shared" / "data" / "x-education" / "Leads.csv"
MODEL = "Evidence benchmark"


def _fresh_model():
    ScoringModel.objects.filter(name=MODEL).delete()
    model = ScoringModel.objects.create(name=MODEL, priority=0)
    ScoringVersion.objects.create(model=model, number=1, status=ScoringVersion.Status.ACTIVE)
    return model


def _marketer():
    from django.contrib.auth.models import Group

    user, created = User.objects.get_or_create(username="evidence-bench", defaults={"is_staff": True})
    if created:
        user.groups.add(Group.objects.get(name="marketing"))
    return user


def draft_auc(draft, ids, outcome_of):
    """ROC AUC of the draft's scores on the given leads, scored by the rescore's SQL (validity.scores_of)."""
    scores = validity.scores_of(draft, lead_ids=ids)
    ids = sorted(ids)
    return roc_auc(np.array([scores[i] for i in ids]), np.array([outcome_of[i] for i in ids], dtype=float))


def x_education(out):
    preset = ImportPreset.objects.get(name="X Education (Leads.csv)")
    started = time.perf_counter()
    job = importing.create_job(
        kind="leads", filename="Leads.csv", data=X_EDUCATION.read_bytes(), by=None, preset=preset
    )
    importing.queue_job(job=job, mapping=job.mapping, by=None)
    importing.run_job(job_id=job.pk)
    job.refresh_from_db()
    out(
        f"  imported {job.created:,} leads in {time.perf_counter() - started:.1f} s ({job.rejected} rejected)"
    )
    model = _fresh_model()
    started = time.perf_counter()
    result = learning.learn(model)
    learn_s = time.perf_counter() - started
    holdout = result["holdout"]
    excluded = sorted(item["key"] for item in result["excluded"] if not item["included_anyway"])
    out(
        f"  learned in {learn_s:.2f} s on {result['split']['train_n']:,} leads; excluded: {', '.join(excluded)}"
    )
    draft = learning.create_draft_from_suggestion(
        model=model, suggestion=result["suggestion"], by=_marketer()
    )
    converted = dict(
        Lead.objects.filter(pk__in=result["split"]["holdout_ids"]).values_list("pk", "attributes__converted")
    )
    points_auc = draft_auc(draft, result["split"]["holdout_ids"], {k: bool(v) for k, v in converted.items()})
    started = time.perf_counter()
    report = validity.compute_report(draft)
    validity_s = time.perf_counter() - started
    out(
        f"  held-out ROC AUC on {holdout['n']:,} leads: learned {holdout['auc_learned']:.4f} "
        f"(95 % {holdout['auc_learned_ci'][0]:.3f}–{holdout['auc_learned_ci'][1]:.3f}), "
        f"the draft's {draft.criteria.count()} criteria {points_auc:.4f} (scored by the scoring SQL); "
        f"validity report over all {report.n:,} outcomes {validity_s:.2f} s"
    )
    return {
        "x_education_auc_learned": holdout["auc_learned"],
        "x_education_auc_points": round(points_auc, 4),
        "x_education_holdout_n": holdout["n"],
        "x_education_train_n": result["split"]["train_n"],
        "x_education_criteria": draft.criteria.count(),
        "x_education_learn_s": round(learn_s, 2),
        "excluded_fields": excluded,
        "validity_report_s": round(validity_s, 2),
    }


def synthetic_history(n, *, seed, out):
    """n closed leads (won or lost) at n // 20 companies, ~5 touchpoints each, whose outcome follows their
    industry, size, role, source and activity; inserted with COPY."""
    rng = random.Random(seed)
    now = timezone.now()
    industries = [code for code, _label in Industry.choices]
    industry_effect = {code: rng.gauss(0, 0.6) for code in industries}
    companies = insert(
        Company(
            name=f"Evidence {i}",
            industry=rng.choice(industries),
            employee_count=int(math.exp(rng.uniform(1, 10))),
            country=rng.choice(["DE", "AT", "CH", "FR", "NL", "GB", "US"]),
        )
        for i in range(max(1, n // 20))
    )
    roles = {"decision_maker": 0.8, "influencer": 0.4, "user": 0.0, "student": -2.5, "unknown": -0.2}
    sources = {
        "web_form": 0.3,
        "content": 0.0,
        "webinar": 0.5,
        "trade_fair": 0.6,
        "referral": 0.9,
        "other": -0.3,
    }
    kinds = {
        "page_view": 0.05,
        "content_download": 0.25,
        "webinar_attendance": 0.4,
        "demo_request": 1.0,
        "email_click": 0.1,
    }
    batch, made = 20_000, 0
    while made < n:
        leads, activity = [], []
        for i in range(made, min(n, made + batch)):
            company = companies[rng.randrange(len(companies))]
            role = rng.choice(list(roles))
            source = rng.choice(list(sources))
            touches = [
                rng.choices(list(kinds), weights=[60, 15, 5, 5, 15])[0] for _ in range(rng.randint(0, 10))
            ]
            eta = (
                -1.2 + industry_effect[company.industry] + roles[role] + sources[source]
                + 0.2 * math.log10(company.employee_count + 1) + sum(kinds[k] for k in set(touches))
            )  # fmt: skip
            won = rng.random() < 1 / (1 + math.exp(-eta))
            created = now - timedelta(days=rng.randint(40, 700))
            closed = created + timedelta(days=rng.randint(5, 35))
            leads.append(
                Lead(
                    email=f"evidence{i}@{'gmail.com' if rng.random() < 0.1 else f'c{company.pk}.example'}",
                    company=company,
                    contact_role=role,
                    source=source,
                    stage_id="won" if won else "lost",
                    created_at=created,
                    stage_changed_at=closed,
                    closed_at=closed,
                    job_title=rng.choice(["CTO", "Head of IT", "Buyer", "Werkstudent", "CEO", ""]),
                    phone="" if rng.random() < 0.4 else f"+49 30 {i}",
                )
            )
            activity.append([(kind, created + (closed - created) * rng.random()) for kind in touches])
        insert(leads)
        insert(
            Touchpoint(lead=lead, kind=kind, occurred_at=at, received_at=at)
            for lead, touches in zip(leads, activity, strict=True)
            for kind, at in touches
        )
        made += len(leads)
        out(f"  {made:,} leads …")


@area("evidence", "Learn on X Education's Leads.csv (70/30) and time learning from 100k leads with outcomes.")
def evidence(*, leads, seed, reset, out, **options):
    if Lead.objects.exists() and not reset:
        raise CommandError("The database already holds leads; pass --reset to wipe them for this benchmark.")
    figures = {}
    wipe_demo_data()
    ImportJob.objects.all().delete()
    if X_EDUCATION.exists():
        out("X Education: import with the shipped preset, learn on 70 %, judge on 30 % …")
        figures.update(x_education(out))
        wipe_demo_data()
        ImportJob.objects.all().delete()
    else:
        out(f"X Education: no file at {X_EDUCATION}")
    out(f"Generating {leads:,} closed leads with touchpoints …")
    started = time.perf_counter()
    synthetic_history(leads, seed=seed, out=out)
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")
    out(f"  generated in {time.perf_counter() - started:.1f} s")
    model = _fresh_model()
    started = time.perf_counter()
    result = learning.learn(model)
    learn_s = time.perf_counter() - started
    timings = result["timings"]
    out(
        f"Learning from {result['n']:,} leads ({result['fit']['columns']} columns, {result['fit']['iterations']} "
        f"Newton steps): {learn_s:.1f} s (load {timings['load_s']} s, columns and guard {timings['features_s']} s, "
        f"fit {timings['fit_s']} s); held-out ROC AUC learned {result['holdout']['auc_learned']}, "
        f"points {result['holdout']['auc_points']}"
    )
    key = "learn_100k_s" if leads == 100_000 else f"learn_{leads // 1000}k_s"
    figures.update(
        {
            key: round(learn_s, 2),
            "learn_leads": result["n"],
            "learn_columns": result["fit"]["columns"],
            "learn_load_s": timings["load_s"],
            "learn_features_s": timings["features_s"],
            "learn_fit_s": timings["fit_s"],
            "synthetic_auc_learned": result["holdout"]["auc_learned"],
            "synthetic_auc_points": result["holdout"]["auc_points"],
        }
    )
    ScoringModel.objects.filter(name=MODEL).delete()
    return figures
