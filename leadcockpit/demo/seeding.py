"""Realistic, deterministic demo data at any scale: companies, leads, campaigns, touchpoints, sales protocol and
18 months of lifecycle history, with the handovers (deadlines, decisions, rejection reasons) that history implies.

Every lead carries a hidden propensity built from its fit (industry, size, role, BANT, free-mail, student) and
its engagement; how far it travels through the funnel, and what it does online, follow from that propensity, so
dashboards and predictive scoring find real signal. One random.Random(seed) drives everything in a fixed order,
so the same seed and anchor date give the same data. Rows stream to the database in batches (COPY on PostgreSQL).
"""

import math
import random
from bisect import bisect
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from itertools import accumulate
from time import perf_counter

from django.apps import apps
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.utils import translation

from leadcockpit.accounts.models import Team, User
from leadcockpit.accounts.roles import Role, sync_role_groups
from leadcockpit.core.fixtures import load_import_presets, load_reference_data
from leadcockpit.handover.models import Handover, RoutingRule, TeamRouting
from leadcockpit.leads.models import Campaign, Company, Lead, SalesActivity, StageChange, Touchpoint
from leadcockpit.scoring.defaults import create_default_model
from leadcockpit.scoring.models import ScoreChange
from leadcockpit.scoring.rescoring import rescore_all

from . import names
from .bulk import BulkWriter, Dialect, deferred_indexes, epoch, next_id, reset_sequences

HISTORY_DAYS = 548  # 18 months
DAY = 86400
HOUR = 3600
DEMO_PASSWORD = "cockpit-demo"  # noqa: S105 - demo accounts only, printed by seed_demo

DEMO_TEAMS = [("Inside Sales", Team.Kind.INSIDE), ("Field Sales", Team.Kind.FIELD)]
TEAM_NAMES = {kind: name for name, kind in DEMO_TEAMS}
# username, first, last, role, team index (or None), is_staff
DEMO_USERS = [
    ("admin", "Alex", "Admin", Role.ADMIN, None, True),
    ("marketing", "Mara", "Berger", Role.MARKETING, None, True),
    ("marketing2", "Jonas", "Keller", Role.MARKETING, None, True),
    ("manager", "Sabine", "Hoffmann", Role.SALES_MANAGER, 0, False),
    ("manager2", "Marc", "Dubois", Role.SALES_MANAGER, 1, False),
    ("rep", "Anna", "Schulz", Role.SALES_REP, 0, False),
    ("rep2", "Ben", "Wagner", Role.SALES_REP, 0, False),
    ("rep3", "Clara", "Novak", Role.SALES_REP, 0, False),
    ("rep4", "David", "Rossi", Role.SALES_REP, 1, False),
    ("rep5", "Elif", "Yilmaz", Role.SALES_REP, 1, False),
    ("rep6", "Finn", "Larsen", Role.SALES_REP, 1, False),
]

SALES_PATH = ["first_contact", "needs_analysis", "presentation", "engineering", "quote", "trial", "follow_up"]
OPTIONAL_SALES_STAGES = {"engineering": 0.3, "trial": 0.35, "follow_up": 0.4}

LEAD_TABLE = Lead._meta.db_table
LEAD_COLUMNS = [
    "id",
    "email",
    "first_name",
    "last_name",
    "phone",
    "job_title",
    "contact_role",
    "company_id",
    "budget",
    "authority",
    "need",
    "timeframe",
    "source",
    "first_channel_id",
    "campaign_id",
    "tracking_consent",
    "marketing_consent",
    "consent_basis",
    "consent_at",
    "stage_id",
    "owner_id",
    "deal_value",
    "fit_score",
    "interest_score",
    "score",
    "band",
    "temperature",
    "grade",
    "score_is_mql",
    "created_at",
    "updated_at",
    "stage_changed_at",
    "mql_at",
    "handed_over_at",
    "sal_at",
    "sql_at",
    "closed_at",
]
TOUCHPOINT_COLUMNS = [
    "lead_id",
    "visitor_id",
    "session_id",
    "kind",
    "url",
    "referrer",
    "page_title",
    "search_terms",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "campaign_id",
    "channel_id",
    "occurred_at",
    "received_at",
    "client_event_id",
    "properties",
]
STAGE_CHANGE_COLUMNS = ["lead_id", "from_stage_id", "to_stage_id", "actor_id", "system_actor", "reason", "at"]
ACTIVITY_COLUMNS = ["lead_id", "rep_id", "kind", "outcome", "note", "occurred_at", "next_follow_up"]
HANDOVER_TABLE = Handover._meta.db_table
HANDOVER_COLUMNS = [
    "lead_id",
    "team_id",
    "rep_id",
    "rule_id",
    "status",
    "created_at",
    "due_at",
    "reminded_at",
    "escalated_at",
    "decided_at",
    "decided_by_id",
    "reject_reason",
    "note",
]

CHANNEL_SOURCE = {
    "webinar": "webinar",
    "trade_fair": "trade_fair",
    "content": "content",
    "referral": "referral",
    "partner": "partner",
    "outbound": "outbound",
    "paid_search": "web_form",
    "social": "web_form",
    "organic": "web_form",
    "email": "web_form",
    "direct": "web_form",
}
CHANNEL_UTM = {
    "paid_search": ("google", "cpc"),
    "social": ("linkedin", "paid_social"),
    "email": ("newsletter", "email"),
    "webinar": ("webinar", "email"),
    "content": ("syndication", "display"),
    "trade_fair": ("messe", "offline"),
    "partner": ("partner", "referral"),
}
# Touchpoint kinds that a campaign of each channel produces.
CAMPAIGN_KINDS = {
    "webinar": {"webinar_registration", "webinar_attendance"},
    "email": {"email_open", "email_click"},
    "trade_fair": {"trade_fair_visit"},
    "content": {"content_download"},
    "paid_search": {"page_view"},
    "social": {"page_view", "link_click"},
}

# How sales takes the handed-over leads. Per team, per rep in the team's order: the median hours to accept or
# reject (log-normal, so slow reps miss the deadline far more often), and the median hours from accepting to the
# first call. The acceptance odds lean on the lead's fit, its channel and its campaign (logit offsets), so lead
# quality differs between sources and campaigns; the rejection reasons lean on the source.
REP_DECISION_HOURS = {Team.Kind.INSIDE: (1.5, 4.0, 9.0), Team.Kind.FIELD: (3.0, 6.0, 12.0)}
REP_CONTACT_HOURS = {Team.Kind.INSIDE: (0.2, 1.0, 3.0), Team.Kind.FIELD: (1.0, 4.0, 10.0)}
DECISION_SPREAD = 1.1  # sigma of ln(hours)
CONTACT_SPREAD = 1.3
CHANNEL_QUALITY = {
    "referral": 1.3,
    "partner": 0.9,
    "trade_fair": 0.4,
    "direct": 0.4,
    "webinar": 0.3,
    "organic": 0.15,
    "outbound": 0.0,
    "email": 0.0,
    "paid_search": -0.4,
    "social": -0.9,
    "content": -1.2,
}
CAMPAIGN_QUALITY_SPREAD = 0.45
REJECT_REASONS = [code for code, _label in Handover.RejectReason.choices]
REJECT_WEIGHTS = {  # per Lead.source, in REJECT_REASONS' order: not a decision maker, no budget, outside the
    # target group, duplicate, bad contact data, no need, wrong timing, other
    "web_form": (14, 16, 16, 8, 14, 16, 12, 4),
    "webinar": (26, 12, 10, 5, 4, 22, 16, 5),
    "trade_fair": (16, 10, 12, 18, 22, 10, 9, 3),  # badge scans: duplicates and unreachable contacts
    "content": (22, 10, 18, 6, 10, 24, 7, 3),
    "referral": (8, 28, 5, 6, 3, 12, 32, 6),
    "partner": (10, 24, 8, 14, 4, 12, 22, 6),
    "outbound": (18, 16, 8, 4, 8, 30, 12, 4),
}


def sigmoid(x):
    return 1.0 / (1.0 + math.exp(-x))


def weighted(items):
    """(values, cumulative weights) for fast weighted choice with bisect."""
    values = [v for v, _ in items]
    cumulative = list(accumulate(w for _, w in items))
    return values, cumulative


@dataclass
class SeedResult:
    leads: int = 0
    touchpoints: int = 0
    companies: int = 0
    campaigns: int = 0
    stage_changes: int = 0
    sales_activities: int = 0
    handovers: int = 0
    users: list = field(default_factory=list)
    scoring_s: float = 0.0
    stages: dict = field(default_factory=dict)


class DemoSeeder:
    def __init__(self, *, leads, touchpoints=None, seed=42, today=None, batch_leads=20_000, stdout=None):
        self.n_leads = leads
        self.n_touchpoints = 10 * leads if touchpoints is None else touchpoints
        self.rng = random.Random(seed)
        self.seed = seed
        today = today or datetime.now(UTC).date()
        self.anchor = epoch(datetime.combine(today, time(0, 0), tzinfo=UTC))
        self.start = self.anchor - HISTORY_DAYS * DAY
        self.batch_leads = batch_leads
        self.stdout = stdout
        self.dialect = Dialect(connection.vendor)
        self.result = SeedResult()
        self.emails = set()
        self.weight_sum = self.weight_count = 0
        with translation.override("en"):  # the stage change's reason, as handover.actions.reject writes it
            self.rejected_because = {
                code: f"rejected: {label}" for code, label in Handover.RejectReason.choices
            }

    # -- entry point -----------------------------------------------------------------------------------------
    def run(self) -> SeedResult:
        ensure_reference_data()
        self.users = self.create_users()
        self.routing = demo_routing()
        writer = BulkWriter(self.dialect)
        with transaction.atomic(), writer.session():
            self.campaigns = self.create_campaigns(writer)
            self.companies = self.create_companies(writer)
        self.prepare_touchpoint_tables()
        first_lead_id = next_id(Lead)
        bulk_models = [Lead, Touchpoint, StageChange, SalesActivity, Handover]
        # Into empty tables, load without secondary indexes and rebuild them once at the end.
        empty = not any(m.objects.exists() for m in bulk_models)
        with transaction.atomic(), deferred_indexes(bulk_models) if empty else nullcontext():
            with writer.session():
                for batch_start in range(0, self.n_leads, self.batch_leads):
                    batch = min(self.batch_leads, self.n_leads - batch_start)
                    self.create_leads(writer, first_lead_id + batch_start, batch)
                    if self.stdout and self.n_leads > self.batch_leads:
                        self.stdout.write(f"  {batch_start + batch:,} / {self.n_leads:,} leads")
            if self.stdout and empty and connection.vendor == "postgresql":
                self.stdout.write("  rebuilding indexes and foreign keys")
        reset_sequences([Company, Campaign, Lead])
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("ANALYZE")
        self.score_leads()
        self.set_up_handover()
        if connection.vendor == "postgresql" and not connection.in_atomic_block:
            # What autovacuum would do next: set hint bits and the visibility map on the fresh rows, and prune the
            # row versions the scoring left, so the first reads after a seed are not the ones that pay for it.
            with connection.cursor() as cursor:
                cursor.execute("VACUUM ANALYZE")
        counts = writer.counts
        self.result.leads = counts.get(LEAD_TABLE, 0)
        self.result.touchpoints = counts.get(Touchpoint._meta.db_table, 0)
        self.result.stage_changes = counts.get(StageChange._meta.db_table, 0)
        self.result.sales_activities = counts.get(SalesActivity._meta.db_table, 0)
        self.result.handovers = counts.get(HANDOVER_TABLE, 0)
        return self.result

    def score_leads(self):
        """Load the default scoring model (approved by the demo marketer and sales manager) and score everyone.

        Stages stay as simulated: the seed's history already says who became an MQL and when.
        """
        create_default_model(marketing_user=self.users["marketing"], sales_user=self.users["manager"])
        if self.stdout and self.n_leads > self.batch_leads:
            self.stdout.write("  scoring every lead with the default model")
        started = perf_counter()
        rescore_all(as_of=datetime.fromtimestamp(self.anchor, UTC), advance_stages=False)
        self.result.scoring_s = perf_counter() - started

    def set_up_handover(self):
        """Route a few MQLs at the anchor, as a live cockpit would have them (the history has its handovers)."""
        from leadcockpit.handover.actions import route_lead
        from leadcockpit.handover.models import Notification
        from leadcockpit.scoring.rescoring import MQL_FROM_STAGES

        # Leads the default model rates as MQLs but the simulated history left with marketing become MQLs now and
        # are routed, so that the reps' inboxes show what a live cockpit would (a few dozen at the most).
        now = datetime.fromtimestamp(self.anchor, UTC)
        ripe = Lead.objects.filter(stage_id__in=MQL_FROM_STAGES, score_is_mql=True).order_by("-score", "pk")[
            :50
        ]
        with transaction.atomic():
            for lead in ripe:
                lead.move_to("mql", system="scoring", reason="score passed the MQL threshold", at=now)
            for lead_id in (
                Lead.objects.filter(stage_id="mql").order_by("pk").values_list("pk", flat=True)[:100]
            ):
                route_lead(lead_id=lead_id, now=now)
            # The demo users' mailboxes are made up: their notifications show in the app, none is mailed.
            Notification.objects.filter(emailed_at=None).update(emailed_at=now)

    # -- users and teams ---------------------------------------------------------------------------------------
    def create_users(self):
        teams = [
            Team.objects.update_or_create(name=name, defaults={"kind": kind})[0] for name, kind in DEMO_TEAMS
        ]
        groups = {role: Group.objects.get(name=role.value) for role in Role}
        users = {}
        for username, first, last, role, team_index, is_staff in DEMO_USERS:
            user, created = User.objects.update_or_create(
                username=username,
                defaults={
                    "first_name": first,
                    "last_name": last,
                    "email": f"{username}@solvaro.example",
                    "team": teams[team_index] if team_index is not None else None,
                    "is_staff": is_staff,
                    "is_superuser": role == Role.ADMIN,
                    "is_active": True,
                },
            )
            if created or not user.has_usable_password():
                user.set_password(DEMO_PASSWORD)
                user.save(update_fields=["password"])
            user.groups.set([groups[role]])
            users[username] = user
            self.result.users.append((username, role.label))
        self.reps = {
            Team.Kind.INSIDE: [users[u].pk for u in ("rep", "rep2", "rep3")],
            Team.Kind.FIELD: [users[u].pk for u in ("rep4", "rep5", "rep6")],
        }
        return users

    # -- campaigns -----------------------------------------------------------------------------------------------
    def create_campaigns(self, writer):
        rng, d = self.rng, self.dialect
        writer.declare(
            Campaign._meta.db_table,
            ["id", "name", "channel_id", "utm_campaign", "cost", "starts_on", "ends_on", "created_at"],
        )
        plan = [  # channel, name pattern, runs per quarter, duration days, cost range
            ("webinar", "Webinar: {w}", 2, 21, (1500, 6000)),
            ("email", "Newsletter {m}", 3, 30, (300, 1200)),
            ("trade_fair", "{f}", 1, 5, (18000, 60000)),
            ("paid_search", "Google Ads {q}", 1, 90, (15000, 40000)),
            ("social", "LinkedIn Ads {q}", 1, 90, (8000, 25000)),
            ("content", "Content syndication: {p}", 1, 60, (5000, 15000)),
            ("partner", "Partner programme {q}", 1, 90, (2000, 8000)),
        ]
        fairs = [
            "Hannover Messe",
            "SPS Nürnberg",
            "LogiMAT",
            "it-sa",
            "DMEXCO",
            "CeBIT Forum",
            "bauma",
            "automatica",
            "Swissbau",
            "Vienna Tech Days",
        ]
        campaigns = []
        # A stream of its own, so that the campaigns' lead quality leaves the rest of the data as it was.
        quality = random.Random(f"campaign-quality-{self.seed}")
        first_id = next_id(Campaign)
        start_day = self.start // DAY
        quarters = HISTORY_DAYS // 91 + 1
        for q in range(quarters):
            q_start = start_day + q * 91
            q_date = date.fromordinal(date(1970, 1, 1).toordinal() + q_start)
            q_label = f"Q{(q_date.month - 1) // 3 + 1} {q_date.year}"
            for channel, pattern, runs, duration, (lo, hi) in plan:
                for _ in range(runs):
                    begin = q_start + rng.randrange(0, 91 - min(duration, 60))
                    month = date.fromordinal(date(1970, 1, 1).toordinal() + begin).strftime("%m/%Y")
                    name = pattern.format(
                        w=rng.choice(names.WEBINARS),
                        m=month,
                        f=f"{rng.choice(fairs)} {q_date.year}",
                        q=q_label,
                        p=rng.choice(names.WHITEPAPERS),
                    )
                    name = (
                        f"{name} #{len(campaigns) + 1}" if any(c["name"] == name for c in campaigns) else name
                    )
                    cid = first_id + len(campaigns)
                    utm = f"{channel.replace('_', '-')}-{len(campaigns) + 1}-s{self.seed}"
                    cost = rng.randrange(lo, hi)
                    end = min(begin + duration, self.anchor // DAY)
                    campaigns.append(
                        {
                            "id": cid,
                            "name": name,
                            "channel": channel,
                            "utm": utm,
                            "start": begin,
                            "end": max(end, begin),
                            "quality": quality.gauss(0, CAMPAIGN_QUALITY_SPREAD),
                        }
                    )
                    writer.add(
                        Campaign._meta.db_table,
                        (
                            cid,
                            name,
                            channel,
                            utm,
                            f"{cost}.00",
                            d.day(begin),
                            d.day(max(end, begin)),
                            d.ts(begin * DAY),
                        ),
                    )
        writer.flush()
        self.result.campaigns = len(campaigns)
        # For each day, the campaigns running then, by channel: touchpoints and leads pick from these.
        self.active = {}
        for c in campaigns:
            for day in range(c["start"], c["end"] + 1):
                self.active.setdefault(day, {}).setdefault(c["channel"], []).append(c)
        return campaigns

    def campaign_on(self, day, channel):
        running = self.active.get(day, {}).get(channel)
        return self.rng.choice(running) if running else None

    # -- companies ----------------------------------------------------------------------------------------------
    def create_companies(self, writer):
        rng, d = self.rng, self.dialect
        table = Company._meta.db_table
        writer.declare(
            table,
            [
                "id",
                "name",
                "domain",
                "industry",
                "employee_count",
                "annual_revenue",
                "country",
                "region",
                "created_at",
            ],
        )
        n = max(20, self.n_leads // 4)
        country_values, country_cum = weighted([(c, v[0]) for c, v in names.COUNTRIES.items()])
        industry_values, industry_cum = weighted([(i, v[0]) for i, v in names.INDUSTRIES.items()])
        first_id = next_id(Company)
        domains = set(Company.objects.exclude(domain="").values_list("domain", flat=True))
        companies = []
        for i in range(n):
            cid = first_id + i
            if i < len(names.COMPETITORS):
                name, domain = names.COMPETITORS[i]
                country, industry, employees = "DE", "software", rng.randrange(80, 400)
            else:
                country = country_values[bisect(country_cum, rng.random() * country_cum[-1])]
                industry = industry_values[bisect(industry_cum, rng.random() * industry_cum[-1])]
                employees = int(math.exp(rng.gauss(4.6, 1.5))) + 3  # median ~100, long tail of large firms
                _, _, forms, tld, _ = names.COUNTRIES[country]
                stem = rng.choice(names.NAME_PREFIXES) + rng.choice(names.NAME_SUFFIXES[industry])
                name = f"{stem} {rng.choice(forms)}"
                base = "".join(ch for ch in stem.lower().translate(UMLAUTS) if ch.isalnum())
                domain = f"{base}.{tld}"
                suffix = 2
                while domain in domains:
                    domain = f"{base}{suffix}.{tld}"
                    suffix += 1
            domains.add(domain)
            regions = names.COUNTRIES[country][4]
            revenue = int(employees * rng.uniform(90_000, 260_000))
            created = self.start - rng.randrange(0, 400) * DAY
            companies.append((cid, country, industry, employees, domain, i < len(names.COMPETITORS)))
            writer.add(
                table,
                (
                    cid,
                    name,
                    domain,
                    industry,
                    employees,
                    revenue,
                    country,
                    rng.choice(regions),
                    d.ts(created),
                ),
            )
        writer.flush()
        self.result.companies = n
        return companies

    # -- touchpoint templates -------------------------------------------------------------------------------------
    def prepare_touchpoint_tables(self):
        """Per engagement level, weighted (kind, url, title, search) templates; higher levels show more intent."""
        site = names.SITE
        pages = [
            ("/", "Solvaro – Lead management", 10),
            ("/product", "Product overview", 7),
            ("/product/scoring", "Lead scoring", 4),
            ("/product/integrations", "Integrations", 3),
            ("/customers", "Customer stories", 3),
            ("/about", "About us", 2),
            ("/careers", "Careers", 1.2),
            ("/docs/api", "API documentation", 1.5),
            ("/security", "Security & DSGVO", 1.5),
        ]
        pages += [(f"/blog/{slug}", slug.replace("-", " ").capitalize(), 1.6) for slug in names.BLOG_SLUGS]
        levels = []
        for level in range(5):
            intent = math.exp(0.55 * (level - 2))
            items = [(("page_view", site + path, title, ""), w * 5.5) for path, title, w in pages]
            items += [
                (("page_view", site + "/pricing", "Pricing", ""), 6 * intent),
                (("page_view", site + "/pricing/enterprise", "Enterprise pricing", ""), 1.5 * intent),
                (("page_view", site + "/demo", "Book a demo", ""), 2 * intent),
            ]
            items += [
                (("content_download", f"{site}/resources/{wp.lower().replace(' ', '-')}.pdf", wp, ""), 1.0)
                for wp in names.WHITEPAPERS
            ]
            items += [(("webinar_registration", f"{site}/webinars", w, ""), 0.6) for w in names.WEBINARS]
            items += [
                (("webinar_attendance", f"{site}/webinars/live", w, ""), 0.4 * intent) for w in names.WEBINARS
            ]
            items += [
                (("email_open", "", "Newsletter", ""), 14),
                (("email_click", f"{site}/blog", "Newsletter", ""), 6),
            ]
            items += [(("form_submit", f"{site}/contact", "Contact form", ""), 1.5 * intent)]
            items += [(("demo_request", f"{site}/demo", "Demo request", ""), 0.5 * intent**2)]
            items += [(("trial_signup", f"{site}/trial", "Free trial", ""), 0.4 * intent**2)]
            items += [(("trade_fair_visit", "", "Booth visit", ""), 0.4)]
            items += [
                (("site_search", f"{site}/search", "Search", term), 0.25) for term in names.SEARCH_TERMS
            ]
            items += [(("link_click", f"{site}/product", "Product link", ""), 3)]
            levels.append(weighted(items))
        self.touch_levels = levels

    # -- leads ------------------------------------------------------------------------------------------------------
    def create_leads(self, writer, first_id, count):
        for table, columns in [
            (LEAD_TABLE, LEAD_COLUMNS),
            (StageChange._meta.db_table, STAGE_CHANGE_COLUMNS),
            (SalesActivity._meta.db_table, ACTIVITY_COLUMNS),
            (HANDOVER_TABLE, HANDOVER_COLUMNS),
            (Touchpoint._meta.db_table, TOUCHPOINT_COLUMNS),
        ]:
            if table not in writer.tables:
                writer.declare(table, columns)
        rng = self.rng
        mean_touches = self.n_touchpoints * 0.95 / max(self.n_leads, 1)
        anon_share = 0.05 * self.n_touchpoints / max(self.n_leads, 1)
        for lead_id in range(first_id, first_id + count):
            lead = self.make_lead(lead_id)
            self.simulate_lifecycle(lead)
            writer.add(LEAD_TABLE, self.lead_row(lead))
            for change in lead["changes"]:
                writer.add(StageChange._meta.db_table, change)
            for activity in lead["activities"]:
                writer.add(SalesActivity._meta.db_table, activity)
            if lead["handover"]:
                writer.add(HANDOVER_TABLE, lead["handover"])
            # Engaged leads do more; dividing by the running mean weight keeps the total on target.
            weight = math.exp(0.6 * lead["engagement"])
            self.weight_sum += weight
            self.weight_count += 1
            expected = mean_touches * weight * self.weight_count / self.weight_sum
            n = int(rng.expovariate(1.0 / expected) + 0.5) if expected > 0 else 0
            self.add_touchpoints(writer, lead, n)
            if anon_share and rng.random() < anon_share:
                self.add_touchpoints(writer, None, 1)

    def make_lead(self, lead_id):
        rng = self.rng
        cid, country, industry, employees, domain, competitor = self.companies[
            int(len(self.companies) * rng.random() ** 1.3)  # some companies have many leads
        ]
        group = names.COUNTRIES[country][1]
        first = rng.choice(names.FIRST_NAMES[group])
        last = rng.choice(names.LAST_NAMES[group])
        role_values, role_cum = ROLE_TABLE
        role = role_values[bisect(role_cum, rng.random() * role_cum[-1])]
        _, role_fit, titles = names.ROLES[role]
        freemail = rng.random() < 0.08
        local = f"{first}.{last}".lower().translate(UMLAUTS).replace(" ", "")
        local = "".join(ch for ch in local if ch.isalnum() or ch == ".")
        mail_domain = rng.choice(names.FREEMAIL_DOMAINS) if freemail else domain
        # A local part has no digits, so "local" + the unique lead id never meets another address.
        email = f"{local}@{mail_domain}"
        if freemail or email in self.emails:
            email = f"{local}{lead_id}@{mail_domain}"
        self.emails.add(email)
        size_fit = 0.6 if 50 <= employees <= 5000 else (0.2 if employees > 5000 else -0.4)
        fit = (
            names.INDUSTRIES[industry][1]
            + role_fit
            + size_fit
            - (0.3 if freemail else 0)
            - (2.5 if competitor else 0)
            + rng.gauss(0, 0.5)
        )
        engagement = 0.45 * fit + rng.gauss(0, 0.85)
        propensity = 0.8 * fit + 0.7 * engagement + rng.gauss(0, 0.6)
        created = self.start + int(HISTORY_DAYS * DAY * (1 - rng.random() ** (1 / 1.3)))
        day = created // DAY
        channel, campaign = self.acquisition(day)
        return {
            "id": lead_id,
            "email": email,
            "first": first,
            "last": last,
            "role": role,
            "title": rng.choice(titles),
            "company": cid,
            "country": country,
            "employees": employees,
            "fit": fit,
            "engagement": engagement,
            "propensity": propensity,
            "created": created,
            "channel": channel,
            "campaign": campaign,
            "visitor": f"{rng.getrandbits(64):016x}",
            "phone": f"+{PHONE_PREFIX.get(country, '49')} {rng.randrange(100, 999)} {rng.randrange(1000000, 9999999)}"
            if rng.random() < 0.6
            else "",
        }

    def acquisition(self, day):
        rng = self.rng
        channel = ACQ_VALUES[bisect(ACQ_CUM, rng.random() * ACQ_CUM[-1])]
        campaign = self.campaign_on(day, channel) if channel in CAMPAIGN_CHANNELS else None
        if channel in CAMPAIGN_CHANNELS and campaign is None:
            channel = "organic"
        return channel, campaign

    def simulate_lifecycle(self, lead):
        """Walk the lead through the funnel as far as its propensity and the calendar allow."""
        rng, d, anchor = self.rng, self.dialect, self.anchor
        p, fit = lead["propensity"], lead["fit"]
        t = lead["created"]
        changes, activities = [], []
        lead.update(
            stage="mgl",
            owner=None,
            mql_at=None,
            handed_at=None,
            sal_at=None,
            sql_at=None,
            closed_at=None,
            deal_value=None,
            stage_at=t,
            changes=changes,
            activities=activities,
            handover=None,
        )

        def move(to, at, *, actor=None, system="", reason=""):
            changes.append(
                (
                    lead["id"],
                    lead["stage"] if changes else d.null,
                    to,
                    actor or d.null,
                    system,
                    reason,
                    d.ts(at),
                )
            )
            lead["stage"], lead["stage_at"] = to, at

        move("mgl", t, system="capture", reason=f"first touch: {lead['channel']}")
        if rng.random() > sigmoid(-3.0 + 1.2 * p):
            return
        t += int(rng.expovariate(1 / (25 * DAY)) * math.exp(-0.3 * lead["engagement"])) + HOUR
        if t >= anchor:
            return
        move("mql", t, system="scoring", reason="score passed the MQL threshold")
        lead["mql_at"] = t
        t += rng.randrange(300, 4 * HOUR)
        if t >= anchor:
            return
        team = Team.Kind.FIELD if lead["employees"] >= 1000 else Team.Kind.INSIDE
        index = rng.randrange(len(self.reps[team]))
        rep = self.reps[team][index]
        lead["owner"] = rep
        move("handed_over", t, system="routing", reason=f"routed to {TEAM_NAMES[team]}")
        lead["handed_at"] = handed = t
        t += int(math.exp(rng.gauss(math.log(REP_DECISION_HOURS[team][index] * HOUR), DECISION_SPREAD)))
        if t >= anchor:
            lead["handover"] = self.handover_row(lead, team, rep, handed)
            return
        campaign = lead["campaign"]
        quality = CHANNEL_QUALITY[lead["channel"]] + (campaign["quality"] if campaign else 0.0)
        if rng.random() > sigmoid(0.1 + 0.9 * fit + quality):
            reason = self.rejection_reason(lead)
            move("nurturing", t, actor=rep, reason=self.rejected_because[reason])
            lead["owner"] = None
            lead["handover"] = self.handover_row(lead, team, rep, handed, t, reason)
            return
        move("sal", t, actor=rep, reason="accepted")
        lead["sal_at"] = t
        lead["handover"] = self.handover_row(lead, team, rep, handed, t)
        # The first call: some reps pick up the phone as they accept, others days later (before the SQL check).
        delay = math.exp(rng.gauss(math.log(REP_CONTACT_HOURS[team][index] * HOUR), CONTACT_SPREAD))
        contact = t + 60 + int(min(delay, 2 * DAY - 120))
        if contact < anchor:
            activities.append(self.activity(lead, rep, contact, "call"))
        t += rng.randrange(2 * DAY, 20 * DAY)
        if t >= anchor:
            return
        if rng.random() > sigmoid(-1.4 + 0.9 * p):
            move("lost", t, actor=rep, reason="disqualified: " + rng.choice(names.LOSS_REASONS))
            lead["closed_at"] = t
            return
        move("sql", t, actor=rep, reason="BANT qualified")
        lead["sql_at"] = t
        for stage in SALES_PATH:
            if stage in OPTIONAL_SALES_STAGES and rng.random() > OPTIONAL_SALES_STAGES[stage]:
                continue
            t += rng.randrange(3 * DAY, 25 * DAY)
            if t >= anchor:
                return
            if rng.random() > sigmoid(0.9 + 0.5 * p):
                move("lost", t, actor=rep, reason=rng.choice(names.LOSS_REASONS))
                lead["closed_at"] = t
                return
            move(stage, t, actor=rep)
            kind = {"quote": "quote", "presentation": "demo", "needs_analysis": "meeting"}.get(stage, "call")
            activities.append(self.activity(lead, rep, t + rng.randrange(HOUR, 3 * DAY), kind))
        t += rng.randrange(5 * DAY, 30 * DAY)
        if t >= anchor:
            return
        lead["closed_at"] = t
        if rng.random() > sigmoid(-1.5 + 0.8 * p):
            move("lost", t, actor=rep, reason=rng.choice(names.LOSS_REASONS))
            return
        lead["deal_value"] = round(min(lead["employees"], 3000) * rng.uniform(40, 120) + 5000, -2)
        move("won", t, actor=rep, reason="contract signed")
        t += rng.randrange(14 * DAY, 45 * DAY)
        if t >= anchor:
            return
        move("customer_care", t, actor=rep)
        if rng.random() < 0.25:
            t += rng.randrange(60 * DAY, 300 * DAY)
            if t < anchor:
                move("upsell", t, actor=rep, reason="expansion opportunity")

    def rejection_reason(self, lead):
        """A Handover.RejectReason: mostly what is wrong with the lead, else what its source typically brings."""
        rng = self.rng
        if lead["role"] == "student" and rng.random() < 0.8:
            return Handover.RejectReason.NOT_DECISION_MAKER.value
        if lead["fit"] < -0.5 and rng.random() < 0.6:
            return Handover.RejectReason.OUTSIDE_TARGET.value
        values, cumulative = REJECT_TABLES[CHANNEL_SOURCE[lead["channel"]]]
        return values[bisect(cumulative, rng.random() * cumulative[-1])]

    def handover_row(self, lead, team, rep, created, decided=None, reason=""):
        """The lead's handover: to the rep and their team by the team's routing rule, due by the team's deadline;
        open if undecided at the anchor, with the reminder and escalation the SLA clock would have sent."""
        d = self.dialect
        team_id, rule_id, routing = self.routing[team]
        due = self.deadline(routing, created)
        until = self.anchor if decided is None else decided  # the handover is open until then
        remind = max(created, due - routing.remind_before_hours * HOUR)
        status = "open" if decided is None else ("rejected" if reason else "accepted")
        return (
            lead["id"],
            team_id,
            rep,
            rule_id if rule_id is not None else d.null,
            status,
            d.ts(created),
            d.ts(due),
            d.ts(remind) if remind < min(until, due) else d.null,
            d.ts(due) if due < until else d.null,
            d.ts(decided) if decided is not None else d.null,
            rep if decided is not None else d.null,
            reason,
            "",
        )

    def deadline(self, routing, at):
        """TeamRouting.deadline in epoch seconds; plain hours without the datetime round trip."""
        if routing.business_hours:
            return epoch(routing.deadline(datetime.fromtimestamp(at, UTC)))
        return at + routing.sla_hours * HOUR

    def activity(self, lead, rep, at, kind):
        rng, d = self.rng, self.dialect
        at = min(at, self.anchor - 60)
        outcome = rng.choice(
            ["reached", "positive", "neutral", "not_reached"]
            if kind == "call"
            else ["positive", "neutral", "negative"]
        )
        follow = at // DAY + rng.randrange(2, 21)
        return (
            lead["id"],
            rep,
            kind,
            outcome,
            rng.choice(names.ACTIVITY_NOTES[kind]),
            d.ts(at),
            d.day(follow) if rng.random() < 0.6 else d.null,
        )

    def bant(self, lead):
        """BANT answers: mostly unknown before sales talks to the lead, then filled, leaning with propensity."""
        rng, p = self.rng, lead["propensity"]
        known = 0.85 if lead["sal_at"] else 0.15
        if rng.random() > known:
            return "unknown", "unknown", "unknown", "unknown"
        lean = sigmoid(p + rng.gauss(0, 0.8))
        budget = "approved" if lean > 0.7 else "planned" if lean > 0.4 else "none"
        authority = {"decision_maker": "decides", "influencer": "influences"}.get(lead["role"], "none")
        need = "acute" if lean > 0.65 else "latent" if lean > 0.3 else "none"
        timeframe = "3m" if lean > 0.75 else "6m" if lean > 0.55 else "12m" if lean > 0.35 else "later"
        return budget, authority, need, timeframe

    def lead_row(self, lead):
        rng, d = self.rng, self.dialect
        ts = d.ts
        budget, authority, need, timeframe = self.bant(lead)
        tracking = rng.random() < 0.7
        marketing = rng.random() < 0.55
        basis = "consent" if tracking or marketing else rng.choice(["legitimate_interest", "none"])
        campaign = lead["campaign"]
        null = d.null
        opt = lambda v: ts(v) if v is not None else null  # noqa: E731
        return (
            lead["id"],
            lead["email"],
            lead["first"],
            lead["last"],
            lead["phone"],
            lead["title"],
            lead["role"],
            lead["company"],
            budget,
            authority,
            need,
            timeframe,
            CHANNEL_SOURCE[lead["channel"]],
            lead["channel"],
            campaign["id"] if campaign else null,
            d.true if tracking else d.false,
            d.true if marketing else d.false,
            basis,
            ts(lead["created"]) if basis == "consent" else null,
            lead["stage"],
            lead["owner"] or null,
            f"{lead['deal_value']:.2f}" if lead["deal_value"] else null,
            0.0,
            0.0,
            0.0,
            "red",
            "cold",
            "",
            d.false,
            ts(lead["created"]),
            ts(lead["stage_at"]),
            ts(lead["stage_at"]),
            opt(lead["mql_at"]),
            opt(lead["handed_at"]),
            opt(lead["sal_at"]),
            opt(lead["sql_at"]),
            opt(lead["closed_at"]),
        )

    def add_touchpoints(self, writer, lead, n):
        """n touchpoints of a lead (or of one anonymous visitor), spread over its active life."""
        rng, d = self.rng, self.dialect
        table = Touchpoint._meta.db_table
        add = writer.add
        ts = d.ts
        uid = d.uuid
        if lead is None:
            level = 1
            begin = self.start + rng.randrange(0, HISTORY_DAYS * DAY)
            end = min(begin + 3 * DAY, self.anchor - 60)
            visitor, lead_id = f"{rng.getrandbits(64):016x}", d.null
        else:
            level = max(0, min(4, int(lead["engagement"] + 2.5)))
            begin = lead["created"] - 20 * DAY
            last = lead["closed_at"] or lead["stage_at"]
            end = min(max(last, lead["created"]) + 60 * DAY, self.anchor - 60)
            visitor, lead_id = lead["visitor"], lead["id"]
        if end <= begin:
            end = begin + HOUR
        kinds, cumulative = self.touch_levels[level]
        total = cumulative[-1]
        span = end - begin
        session = f"{rng.getrandbits(64):016x}"
        random_ = rng.random
        for i in range(n):
            if i == 0 and lead is not None:
                at = lead["created"]  # the first touch is the one that created the lead
                kind, url, title, search = FIRST_TOUCH.get(lead["channel"], FIRST_TOUCH["organic"])
                campaign = lead["campaign"]
            else:
                at = begin + int(random_() * span)
                kind, url, title, search = kinds[bisect(cumulative, random_() * total)]
                campaign = None
                if kind in CAMPAIGN_KIND_CHANNEL and random_() < 0.7:
                    campaign = self.campaign_on(at // DAY, CAMPAIGN_KIND_CHANNEL[kind])
                elif kind == "page_view" and random_() < 0.25:
                    campaign = self.campaign_on(at // DAY, "paid_search" if random_() < 0.6 else "social")
            if random_() < 0.3:
                session = f"{rng.getrandbits(64):016x}"
            if campaign is not None:
                channel = campaign["channel"]
                source, medium = CHANNEL_UTM.get(channel, ("", ""))
                utm = campaign["utm"]
                referrer = ""
                campaign_id = campaign["id"]
            else:
                r = random_()
                channel = "organic" if r < 0.5 else ("direct" if r < 0.8 else "referral")
                if kind in ("email_open", "email_click"):
                    channel = "email"
                source = medium = utm = ""
                referrer = (
                    ""
                    if channel in ("direct", "email")
                    else REFERRERS_BY_CHANNEL[channel][int(random_() * len(REFERRERS_BY_CHANNEL[channel]))]
                )
                campaign_id = d.null
            self.event_seq += 1
            add(
                table,
                (
                    lead_id,
                    visitor,
                    session,
                    kind,
                    url,
                    referrer,
                    title,
                    search,
                    source,
                    medium,
                    utm,
                    campaign_id,
                    channel,
                    ts(at),
                    ts(at + 1 + int(random_() * 5)),
                    uid(f"{self.event_prefix}{self.event_seq:012x}"),
                    "{}",
                ),
            )

    @property
    def event_prefix(self):
        """20 hex digits fixed per seed (a v4-shaped UUID), followed by a counter: unique, ordered inserts."""
        if not hasattr(self, "_event_prefix"):
            bits = random.Random(f"events-{self.seed}-{self.n_leads}").getrandbits(80)
            raw = f"{bits:020x}"
            self._event_prefix = f"{raw[:12]}4{raw[13:16]}{'89ab'[bits & 3]}{raw[17:20]}"
        return self._event_prefix

    event_seq = 0


UMLAUTS = str.maketrans(
    {
        "ä": "ae",
        "ö": "oe",
        "ü": "ue",
        "ß": "ss",
        "é": "e",
        "è": "e",
        "à": "a",
        "á": "a",
        "í": "i",
        "ó": "o",
        "ú": "u",
        "ñ": "n",
        "ł": "l",
        "ś": "s",
        "ź": "z",
        "ż": "z",
        "ć": "c",
        "ń": "n",
        "ą": "a",
        "ę": "e",
        "ř": "r",
        "č": "c",
        "ě": "e",
        "ý": "y",
        "ů": "u",
        "š": "s",
        "ž": "z",
        "å": "a",
        "ø": "o",
        "æ": "ae",
        "ç": "c",
        "ë": "e",
        "ï": "i",
        "ô": "o",
        "î": "i",
        "â": "a",
        "ê": "e",
        "ò": "o",
        "ì": "i",
        "'": "",
    }
)
REJECT_TABLES = {
    source: weighted(list(zip(REJECT_REASONS, w, strict=True))) for source, w in REJECT_WEIGHTS.items()
}
ROLE_TABLE = weighted([(role, spec[0]) for role, spec in names.ROLES.items()])
ACQ_VALUES, ACQ_CUM = weighted(
    [
        ("organic", 22),
        ("paid_search", 14),
        ("social", 10),
        ("email", 6),
        ("webinar", 12),
        ("trade_fair", 9),
        ("content", 9),
        ("referral", 6),
        ("partner", 5),
        ("direct", 4),
        ("outbound", 3),
    ]
)
CAMPAIGN_CHANNELS = {"paid_search", "social", "email", "webinar", "trade_fair", "content", "partner"}
CAMPAIGN_KIND_CHANNEL = {
    kind: channel
    for channel, kinds in CAMPAIGN_KINDS.items()
    for kind in kinds
    if channel not in ("paid_search", "social")
}
FIRST_TOUCH = {
    "webinar": ("webinar_registration", f"{names.SITE}/webinars", "Webinar registration", ""),
    "trade_fair": ("trade_fair_visit", "", "Booth visit", ""),
    "content": (
        "content_download",
        f"{names.SITE}/resources/lead-management-guide.pdf",
        "Lead Management Guide",
        "",
    ),
    "email": ("form_submit", f"{names.SITE}/newsletter", "Newsletter sign-up", ""),
    "organic": ("form_submit", f"{names.SITE}/contact", "Contact form", ""),
    "paid_search": ("form_submit", f"{names.SITE}/demo", "Demo form", ""),
    "social": (
        "content_download",
        f"{names.SITE}/resources/scoring-model-template.pdf",
        "Scoring Model Template",
        "",
    ),
    "referral": ("form_submit", f"{names.SITE}/contact", "Contact form", ""),
    "partner": ("form_submit", f"{names.SITE}/partner-referral", "Partner referral", ""),
    "direct": ("form_submit", f"{names.SITE}/contact", "Contact form", ""),
    "outbound": ("email_click", f"{names.SITE}/product", "Sales email", ""),
}
REFERRERS_BY_CHANNEL = {
    "organic": [r for r in names.REFERRERS if any(s in r for s in ("google", "bing", "ecosia"))],
    "referral": [r for r in names.REFERRERS if not any(s in r for s in ("google", "bing", "ecosia"))],
}
PHONE_PREFIX = {
    "DE": "49",
    "AT": "43",
    "CH": "41",
    "NL": "31",
    "BE": "32",
    "FR": "33",
    "IT": "39",
    "ES": "34",
    "PL": "48",
    "CZ": "420",
    "SE": "46",
    "DK": "45",
    "FI": "358",
    "GB": "44",
}


def ensure_reference_data():
    """Channels, lifecycle stages, role groups and import presets, as the migrations load them (a flushed
    database lacks them)."""
    load_reference_data(apps, "channels.json")
    load_reference_data(apps, "lifecycle_stages.json")
    sync_role_groups(apps)
    load_import_presets(apps)


def demo_routing():
    """The demo teams' routing: companies with 1,000+ employees to field sales, everyone else to inside sales.

    Returns {team kind: (team id, its rule's id or None, its TeamRouting)}.
    """
    inside, field = (Team.objects.get(name=name) for name, _kind in DEMO_TEAMS)
    field_rule, _ = RoutingRule.objects.get_or_create(
        name="Companies with 1,000+ employees to field sales",
        defaults={
            "position": 0,
            "team": field,
            "conditions": [
                {"field": "employee_count", "operator": "range", "value": {"min": 1000, "max": None}}
            ],
        },
    )
    inside_rule, _ = RoutingRule.objects.get_or_create(
        name="Everyone else to inside sales", defaults={"position": 10, "team": inside}
    )
    inside_routing, _ = TeamRouting.objects.get_or_create(
        team=inside, defaults={"strategy": TeamRouting.Strategy.ROUND_ROBIN}
    )
    field_routing, _ = TeamRouting.objects.get_or_create(
        team=field, defaults={"strategy": TeamRouting.Strategy.LEAST_LOADED}
    )
    # Round robin starts from the first rep, so the same seed routes the MQLs at its anchor the same way.
    TeamRouting.objects.filter(team__in=[inside, field]).update(last_rep=None)
    return {
        kind: (team.pk, rule.pk if rule.team_id == team.pk else None, routing)
        for kind, team, rule, routing in [
            (Team.Kind.INSIDE, inside, inside_rule, inside_routing),
            (Team.Kind.FIELD, field, field_rule, field_routing),
        ]
    }


def wipe_demo_data():
    """Remove every lead record (not users or reference data) so a seed starts from empty tables."""
    from leadcockpit.handover.models import Notification
    from leadcockpit.scoring.models import DirtyLead, LeadSignals

    children_first = (Notification, Handover, LeadSignals, DirtyLead, ScoreChange, Touchpoint, SalesActivity)
    tables = [m._meta.db_table for m in (*children_first, StageChange, Lead, Company, Campaign)]
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Deferred foreign-key checks queued earlier in this transaction would block TRUNCATE.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute(f"TRUNCATE {', '.join(tables)} RESTART IDENTITY CASCADE")
            cursor.execute("SET CONSTRAINTS ALL DEFERRED")
        else:
            for table in tables:
                cursor.execute(f'DELETE FROM "{table}"')  # noqa: S608 - table names from models
