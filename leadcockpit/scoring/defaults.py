"""The default scoring model: the examples marketing and sales usually start from (100 points = sales-ready)."""

from django.db import transaction
from django.utils import timezone

from .models import Approval, ScoringModel, ScoringVersion

TARGET_INDUSTRIES = ["manufacturing", "software", "automotive", "logistics"]
SECONDARY_INDUSTRIES = ["chemicals", "finance", "energy", "consulting", "telecom"]
FREEMAIL = [
    "gmail.com",
    "web.de",
    "gmx.de",
    "gmx.at",
    "outlook.com",
    "yahoo.com",
    "hotmail.com",
    "t-online.de",
    "bluewin.ch",
]
COMPETITOR_DOMAINS = ["leadforge.example", "funnelwerk.example", "scoresphere.example"]

FIT = [
    ("Target industry", "industry", "in_list", TARGET_INDUSTRIES, 20),
    ("Secondary industry", "industry", "in_list", SECONDARY_INDUSTRIES, 10),
    ("Mid-sized company (50–5,000 employees)", "employee_count", "range", {"min": 50, "max": 5000}, 15),
    ("Large company (over 5,000 employees)", "employee_count", "range", {"min": 5001, "max": None}, 8),
    ("Decision maker", "contact_role", "equals", "decision_maker", 20),
    ("Influencer", "contact_role", "equals", "influencer", 10),
    ("Budget approved", "budget", "equals", "approved", 15),
    ("Budget planned", "budget", "equals", "planned", 8),
    ("Decides (authority)", "authority", "equals", "decides", 10),
    ("Acute need", "need", "equals", "acute", 10),
    ("Buying within 3 months", "timeframe", "equals", "3m", 10),
    ("Buying within 6 months", "timeframe", "equals", "6m", 5),
    ("Phone number known", "phone", "is_set", None, 3),
    ("Free-mail address", "email", "domain_in_list", FREEMAIL, -5),
]
# label, kinds, url contains, points per occurrence, cap, half-life in days
INTEREST = [
    ("Pricing page visit", ["page_view"], "/pricing", 8, 32, 30),
    ("Demo request", ["demo_request"], "", 40, 60, 45),
    ("Free trial sign-up", ["trial_signup"], "", 35, 50, 45),
    ("Webinar attendance", ["webinar_attendance"], "", 12, 36, 60),
    ("Guide or whitepaper download", ["content_download"], "", 8, 24, 60),
    ("Trade-fair visit", ["trade_fair_visit"], "", 15, 30, 90),
    ("Email click", ["email_click"], "", 3, 15, 30),
    ("Site search", ["site_search"], "", 2, 10, 30),
    ("Other page views", ["page_view"], "", 1, 10, 14),
    ("Careers page (job seeker)", ["page_view"], "/careers", -10, 20, 60),
]
KNOCKOUTS = [
    ("Student without decision power", "contact_role", "equals", "student", "student"),
    ("Competitor", "email", "domain_in_list", COMPETITOR_DOMAINS, "competitor"),
    ("Industry outside the target group", "industry", "in_list", ["education", "public"], "wrong_industry"),
]


@transaction.atomic
def create_default_model(*, marketing_user=None, sales_user=None, name="Default"):
    """Create the default model with version 1; active (and its approvals recorded) when both users are given."""
    model, _ = ScoringModel.objects.get_or_create(
        name=name,
        defaults={"description": "Explicit fit and implicit interest with decay; 100 points = MQL."},
    )
    if model.versions.exists():
        return model.versions.order_by("-number").first()
    version = ScoringVersion.objects.create(
        model=model,
        number=1,
        note="Default model from the common examples.",
        min_fit_for_mql=20,
        yellow_from=40,
        warm_from=35,
        hot_from=80,
    )
    position = 0
    for label, field, operator, value, points in FIT:
        version.criteria.create(
            kind="fit",
            position=position,
            label=label,
            field=field,
            operator=operator,
            value=value,
            points=points,
        )
        position += 1
    for label, kinds, url, points, cap, half_life in INTEREST:
        version.criteria.create(
            kind="interest",
            position=position,
            label=label,
            touchpoint_kinds=kinds,
            url_contains=url,
            points=points,
            cap=cap,
            half_life_days=half_life,
        )
        position += 1
    for label, field, operator, value, reason in KNOCKOUTS:
        version.criteria.create(
            kind="knockout",
            position=position,
            label=label,
            field=field,
            operator=operator,
            value=value,
            reason=reason,
        )
        position += 1
    if marketing_user and sales_user:
        Approval.objects.create(version=version, side=Approval.Side.MARKETING, user=marketing_user)
        Approval.objects.create(version=version, side=Approval.Side.SALES, user=sales_user)
        now = timezone.now()
        version.status = ScoringVersion.Status.ACTIVE
        version.proposed_at = version.activated_at = now
        version.save(update_fields=["status", "proposed_at", "activated_at"])
    return version
