"""The lead record: companies, leads, their online activity and sales protocol, campaigns and the lifecycle trail."""

import json
import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_countries.fields import CountryField

from leadcockpit.accounts.models import User
from leadcockpit.accounts.roles import Role, role_of
from leadcockpit.core.models import ReferenceData

PROPERTIES_MAX_BYTES = 2048


def normalise_email(email: str) -> str:
    """The one spelling of an address that uniqueness is judged on: trimmed and lower-cased."""
    return (email or "").strip().lower()


# "Same person" is judged on a canonical address, stricter than normalise_email only where the provider is known to
# deliver several spellings to one mailbox: Gmail ignores dots and a +tag in the local part (googlemail.com is the
# same service); these consumer providers document +tag sub-addressing. A company's own domain is left alone: its
# mail server may treat "a.b" and "ab", or "x+y", as different people, and a wrong merge is worse than a missed one.
GMAIL_DOMAINS = ("gmail.com", "googlemail.com")
PLUS_TAG_DOMAINS = (
    "outlook.com",
    "outlook.de",
    "hotmail.com",
    "hotmail.de",
    "live.com",
    "icloud.com",
    "me.com",
    "mac.com",
    "fastmail.com",
    "proton.me",
    "protonmail.com",
)


def canonical_email(email: str) -> str:
    """The address as the mailbox sees it: Gmail without dots and +tag, listed providers without +tag, else as is.

    Must agree with canonical_email_sql() (a property test holds them equal), which the lookup index is built on.
    """
    email = normalise_email(email)
    local, at, domain = email.partition("@")
    if not at:
        return email
    if domain in GMAIL_DOMAINS:
        return local.split("+", 1)[0].replace(".", "") + "@gmail.com"
    if domain in PLUS_TAG_DOMAINS:
        return local.split("+", 1)[0] + "@" + domain
    return email


def canonical_email_domains_q():
    """Leads whose address canonical_email may change: only these can share a canonical address with another."""
    q = Q()
    for domain in GMAIL_DOMAINS + PLUS_TAG_DOMAINS:
        q |= Q(email__endswith="@" + domain)
    return q


def canonical_email_sql():
    """canonical_email() of the stored (already normalised) address as an SQL expression, for the index on it."""
    from django.db.models import Case, F, Value, When
    from django.db.models.functions import Concat, Left, Replace, StrIndex, Substr
    from django.db.models.lookups import GreaterThan, In

    at = StrIndex(F("email"), Value("@"))
    local = Left(F("email"), at - 1)
    domain = Substr(F("email"), at + 1)
    plus = StrIndex(local, Value("+"))
    untagged = Case(When(GreaterThan(plus, 0), then=Left(local, plus - 1)), default=local)
    return Case(
        When(
            In(domain, list(GMAIL_DOMAINS)),
            then=Concat(Replace(untagged, Value("."), Value("")), Value("@gmail.com")),
        ),
        When(In(domain, list(PLUS_TAG_DOMAINS)), then=Concat(untagged, Value("@"), domain)),
        default=F("email"),
        output_field=models.CharField(),
    )


def validate_properties_size(value):
    if not isinstance(value, dict):
        raise ValidationError(_("Properties must be a JSON object."), code="invalid")
    size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())
    if size > PROPERTIES_MAX_BYTES:
        raise ValidationError(
            _("Properties are %(size)d bytes; at most %(limit)d are kept."),
            code="too_large",
            params={"size": size, "limit": PROPERTIES_MAX_BYTES},
        )


class Channel(ReferenceData):
    """A marketing channel (webinar, email, trade fair, paid search, …) that campaigns and touchpoints belong to."""

    is_paid = models.BooleanField(_("paid channel"), default=False)

    class Meta(ReferenceData.Meta):
        verbose_name = _("channel")
        verbose_name_plural = _("channels")


class LifecycleStage(ReferenceData):
    """A stage of the lead lifecycle, from MGL through the sales stages to won, lost and customer care."""

    class Phase(models.TextChoices):
        MARKETING = "marketing", _("Marketing")
        HANDOVER = "handover", _("Handover")
        SALES = "sales", _("Sales")
        CLOSED = "closed", _("Closed")
        CUSTOMER = "customer", _("Customer")

    phase = models.CharField(_("phase"), max_length=10, choices=Phase.choices)

    class Meta(ReferenceData.Meta):
        verbose_name = _("lifecycle stage")
        verbose_name_plural = _("lifecycle stages")


class Industry(models.TextChoices):
    SOFTWARE = "software", _("Software & IT services")
    MANUFACTURING = "manufacturing", _("Manufacturing & machinery")
    AUTOMOTIVE = "automotive", _("Automotive")
    CHEMICALS = "chemicals", _("Chemicals & pharma")
    FINANCE = "finance", _("Banking & financial services")
    INSURANCE = "insurance", _("Insurance")
    HEALTHCARE = "healthcare", _("Healthcare")
    RETAIL = "retail", _("Retail & e-commerce")
    LOGISTICS = "logistics", _("Logistics & transport")
    ENERGY = "energy", _("Energy & utilities")
    TELECOM = "telecom", _("Telecommunications")
    PUBLIC = "public", _("Public sector")
    EDUCATION = "education", _("Education")
    CONSULTING = "consulting", _("Consulting & professional services")
    MEDIA = "media", _("Media & publishing")
    CONSTRUCTION = "construction", _("Construction & real estate")
    OTHER = "other", _("Other")


class Company(models.Model):
    """The organisation a lead works for (the account)."""

    name = models.CharField(_("name"), max_length=200)
    domain = models.CharField(_("web domain"), max_length=253, blank=True)
    industry = models.CharField(_("industry"), max_length=20, choices=Industry.choices, blank=True)
    employee_count = models.PositiveIntegerField(_("employees"), null=True, blank=True)
    annual_revenue = models.DecimalField(
        _("annual revenue (EUR)"), max_digits=15, decimal_places=0, null=True, blank=True
    )
    country = CountryField(_("country"), blank=True)
    region = models.CharField(_("region"), max_length=100, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        verbose_name = _("company")
        verbose_name_plural = _("companies")
        constraints = [
            models.UniqueConstraint(fields=["domain"], condition=~Q(domain=""), name="company_domain_unique"),
        ]
        indexes = [models.Index(fields=["name"], name="company_name_idx")]

    def __str__(self):
        return self.name


class Campaign(models.Model):
    """A marketing campaign on one channel, with its cost over a period."""

    name = models.CharField(_("name"), max_length=200, unique=True)
    channel = models.ForeignKey(Channel, verbose_name=_("channel"), on_delete=models.PROTECT)
    utm_campaign = models.SlugField(
        _("UTM campaign"),
        max_length=100,
        unique=True,
        null=True,
        blank=True,
        help_text=_("The utm_campaign value that links tracked visits to this campaign."),
    )
    cost = models.DecimalField(_("cost (EUR)"), max_digits=12, decimal_places=2, default=0)
    starts_on = models.DateField(_("starts on"))
    ends_on = models.DateField(_("ends on"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["-starts_on", "name"]
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        constraints = [
            models.CheckConstraint(condition=Q(cost__gte=0), name="campaign_cost_not_negative"),
            models.CheckConstraint(
                condition=Q(ends_on__isnull=True) | Q(ends_on__gte=models.F("starts_on")),
                name="campaign_ends_after_start",
            ),
        ]

    def __str__(self):
        return self.name


class StageNotAllowed(Exception):
    """A stage change the lifecycle table does not allow (for this actor)."""

    def __init__(self, from_stage, to_stage, why):
        super().__init__(f"{from_stage} → {to_stage}: {why}")
        self.from_stage, self.to_stage, self.why = from_stage, to_stage, why


class StageConflict(StageNotAllowed):
    """Someone else moved the lead first."""


def actor_sides(user):
    """Which sides of the lifecycle table a user acts for: admins for both, others for their role's."""
    from . import lifecycle

    role = role_of(user) if user is not None else None
    return {
        Role.ADMIN: [lifecycle.SALES, lifecycle.MARKETING],
        Role.MARKETING: [lifecycle.MARKETING],
        Role.SALES_MANAGER: [lifecycle.SALES],
        Role.SALES_REP: [lifecycle.SALES],
    }.get(role, [])


class LeadQuerySet(models.QuerySet):
    def move_to(self, to_stage, *, by=None, system="", reason="", at=None, expected_from=None):
        """Move these leads to a lifecycle stage through the lifecycle table, set-based; the StageChanges made.

        Every stage they are in must allow the move for this actor (else StageNotAllowed, nothing moved). Each
        row is updated only if it is still in the stage it was read in; callers that need all-or-nothing lock
        the rows first (select_for_update) or run in a transaction and check the count.
        """
        from . import lifecycle

        stages = {stage.code: stage for stage in LifecycleStage.objects.all()}
        sides = [lifecycle.SYSTEM] if system else actor_sides(by)
        from_stages = (
            {expected_from} if expected_from else set(self.order_by().values_list("stage_id", flat=True))
        )
        for from_stage in from_stages:
            moves = [lifecycle.check(from_stage, to_stage, side, stages) for side in sides]
            move = next(
                (m for m in moves if m.allowed), moves[0] if moves else lifecycle.Move(False, why="nobody")
            )
            if not move.allowed:
                raise StageNotAllowed(from_stage, to_stage, move.why)
            if move.backward and not reason.strip():
                raise StageNotAllowed(from_stage, to_stage, "a backward move needs a reason")
        at = at or timezone.now()
        changes = []
        with transaction.atomic():  # a conflict leaves no half-moved group behind
            for from_stage in from_stages:
                ids = list(self.filter(stage_id=from_stage).order_by("pk").values_list("pk", flat=True))
                fields = {"stage_id": to_stage, "stage_changed_at": at, "updated_at": at}
                if to_stage in lifecycle.MILESTONES:
                    fields[lifecycle.MILESTONES[to_stage]] = at
                if not ids:
                    continue
                moved = Lead.objects.filter(pk__in=ids, stage_id=from_stage).update(**fields)
                if moved != len(ids):
                    # Some moved on between the read and the update: no history for moves that did not happen.
                    raise StageConflict(from_stage, to_stage, "leads moved on meanwhile")
                changes += [
                    StageChange(
                        lead_id=pk,
                        from_stage_id=from_stage,
                        to_stage_id=to_stage,
                        actor=None if system else by,
                        system_actor=system,
                        reason=reason[:500],
                        at=at,
                    )
                    for pk in ids
                ]
            return StageChange.objects.bulk_create(changes)

    def visible_to(self, user):
        """The leads this user may see: admin and marketing all, a manager their team's, a rep their own."""
        role = role_of(user)
        if role in (Role.ADMIN, Role.MARKETING):
            return self.all()
        if role == Role.SALES_MANAGER and user.team_id:
            team = User.objects.filter(team_id=user.team_id).values("pk")
            return self.filter(Q(owner=user) | Q(owner__in=team))
        if role in (Role.SALES_MANAGER, Role.SALES_REP):
            return self.filter(owner=user)
        return self.none()


class Lead(models.Model):
    """A contact at a company, enriched over time and moving through the lifecycle."""

    class ContactRole(models.TextChoices):
        DECISION_MAKER = "decision_maker", _("Decision maker")
        INFLUENCER = "influencer", _("Influencer")
        USER = "user", _("User")
        GATEKEEPER = "gatekeeper", _("Gatekeeper")
        STUDENT = "student", _("Student")
        OTHER = "other", _("Other")
        UNKNOWN = "unknown", _("Unknown")

    class Budget(models.TextChoices):
        UNKNOWN = "unknown", _("Unknown")
        NONE = "none", _("No budget")
        PLANNED = "planned", _("Budget planned")
        APPROVED = "approved", _("Budget approved")

    class Authority(models.TextChoices):
        UNKNOWN = "unknown", _("Unknown")
        NONE = "none", _("No decision power")
        INFLUENCES = "influences", _("Influences the decision")
        DECIDES = "decides", _("Decides")

    class Need(models.TextChoices):
        UNKNOWN = "unknown", _("Unknown")
        NONE = "none", _("No need")
        LATENT = "latent", _("Latent need")
        ACUTE = "acute", _("Acute need")

    class Timeframe(models.TextChoices):
        UNKNOWN = "unknown", _("Unknown")
        LATER = "later", _("More than 12 months")
        WITHIN_12M = "12m", _("Within 12 months")
        WITHIN_6M = "6m", _("Within 6 months")
        WITHIN_3M = "3m", _("Within 3 months")

    class Source(models.TextChoices):
        WEB_FORM = "web_form", _("Web form")
        CONTENT = "content", _("Content download")
        WEBINAR = "webinar", _("Webinar")
        TRADE_FAIR = "trade_fair", _("Trade fair")
        REFERRAL = "referral", _("Referral")
        PARTNER = "partner", _("Partner")
        OUTBOUND = "outbound", _("Sales outbound")
        IMPORT = "import", _("Import")
        OTHER = "other", _("Other")

    class Band(models.TextChoices):
        RED = "red", _("Red")
        YELLOW = "yellow", _("Yellow")
        GREEN = "green", _("Green")

    class Temperature(models.TextChoices):
        COLD = "cold", _("Cold")
        WARM = "warm", _("Warm")
        HOT = "hot", _("Hot")

    class ConsentBasis(models.TextChoices):
        NONE = "none", _("No basis recorded")
        CONSENT = "consent", _("Consent")
        LEGITIMATE_INTEREST = "legitimate_interest", _("Legitimate interest")
        CONTRACT = "contract", _("Contract")

    email = models.EmailField(
        _("email"),
        max_length=254,
        blank=True,
        help_text=_("Empty for leads known only by their external id."),
    )
    external_id = models.CharField(_("external id"), max_length=100, unique=True, null=True, blank=True)
    first_name = models.CharField(_("first name"), max_length=100, blank=True)
    last_name = models.CharField(_("last name"), max_length=100, blank=True)
    phone = models.CharField(_("phone"), max_length=40, blank=True)
    job_title = models.CharField(_("job title"), max_length=200, blank=True)
    contact_role = models.CharField(
        _("role"), max_length=20, choices=ContactRole.choices, default=ContactRole.UNKNOWN
    )
    company = models.ForeignKey(
        Company,
        verbose_name=_("company"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="leads",
    )

    budget = models.CharField(_("budget"), max_length=10, choices=Budget.choices, default=Budget.UNKNOWN)
    authority = models.CharField(
        _("authority"), max_length=10, choices=Authority.choices, default=Authority.UNKNOWN
    )
    need = models.CharField(_("need"), max_length=10, choices=Need.choices, default=Need.UNKNOWN)
    timeframe = models.CharField(
        _("timeframe"), max_length=10, choices=Timeframe.choices, default=Timeframe.UNKNOWN
    )

    source = models.CharField(_("source"), max_length=20, choices=Source.choices, default=Source.OTHER)
    first_channel = models.ForeignKey(
        Channel,
        verbose_name=_("first channel"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    campaign = models.ForeignKey(
        Campaign,
        verbose_name=_("campaign"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="leads",
        help_text=_("The campaign that generated the lead."),
    )

    tracking_consent = models.BooleanField(_("consents to tracking"), default=False)
    marketing_consent = models.BooleanField(_("consents to marketing"), default=False)
    consent_basis = models.CharField(
        _("legal basis"), max_length=20, choices=ConsentBasis.choices, default=ConsentBasis.NONE
    )
    consent_at = models.DateTimeField(_("consent recorded"), null=True, blank=True)

    stage = models.ForeignKey(
        LifecycleStage,
        verbose_name=_("stage"),
        on_delete=models.PROTECT,
        default="mgl",
        db_index=False,
        related_name="+",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("owner"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
        related_name="owned_leads",
    )
    deal_value = models.DecimalField(
        _("deal value (EUR)"), max_digits=12, decimal_places=2, null=True, blank=True
    )

    fit_score = models.FloatField(_("fit"), default=0)
    interest_score = models.FloatField(_("interest"), default=0)
    score = models.FloatField(_("score"), default=0)
    band = models.CharField(_("traffic light"), max_length=6, choices=Band.choices, default=Band.RED)
    temperature = models.CharField(
        _("temperature"), max_length=4, choices=Temperature.choices, default=Temperature.COLD
    )
    grade = models.CharField(
        _("grade"), max_length=2, blank=True, help_text=_("Fit letter A–D × interest 1–4.")
    )
    score_is_mql = models.BooleanField(_("score reaches MQL"), default=False)
    scored_at = models.DateTimeField(_("scored"), null=True, blank=True)
    qualification = models.CharField(
        _("qualification (BANT)"),
        max_length=4,
        choices=Temperature.choices,
        blank=True,
        db_default="",  # bulk loads that name their columns leave it empty
        help_text=_("Cold, warm or hot from the rep's BANT questionnaire."),
    )

    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    stage_changed_at = models.DateTimeField(_("stage changed"), default=timezone.now)
    mql_at = models.DateTimeField(_("became MQL"), null=True, blank=True)
    handed_over_at = models.DateTimeField(_("handed over"), null=True, blank=True)
    sal_at = models.DateTimeField(_("accepted (SAL)"), null=True, blank=True)
    sql_at = models.DateTimeField(_("qualified (SQL)"), null=True, blank=True)
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    attributes = models.JSONField(
        _("imported attributes"),
        default=dict,
        blank=True,
        db_default=models.Value({}, output_field=models.JSONField()),  # bulk loads that name columns
        help_text=_("Fields an import brought that have no column of their own, by name."),
    )

    objects = LeadQuerySet.as_manager()

    class Meta:
        verbose_name = _("lead")
        verbose_name_plural = _("leads")
        indexes = [
            # Keyset pagination: sort keys have an index ending in id, except score. Rescoring rewrites scores of
            # a million leads; with no index on a score column those updates stay HOT (no index writes at all).
            models.Index(fields=["created_at", "id"], name="lead_created_idx"),
            models.Index(fields=["last_name", "id"], name="lead_name_idx"),
            models.Index(fields=["stage", "stage_changed_at"], name="lead_stage_idx"),
            models.Index(fields=["owner", "created_at"], name="lead_owner_idx"),
            # Finds a lead by another spelling of its address (see canonical_email); only where spellings vary.
            models.Index(
                canonical_email_sql(), condition=canonical_email_domains_q(), name="lead_canonical_email_idx"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(email=models.functions.Lower("email")), name="lead_email_lowercase"
            ),
            models.UniqueConstraint(fields=["email"], condition=~Q(email=""), name="lead_email_unique"),
            models.CheckConstraint(
                condition=~Q(email="") | Q(external_id__isnull=False), name="lead_has_identity"
            ),
        ]

    def __str__(self):
        return self.display_name

    @property
    def display_name(self):
        """What the lead is called on screen: the name, else the address, else the external id."""
        return self.full_name or self.email or self.external_id or f"#{self.pk}"

    @property
    def full_name(self):
        return f"{self.first_name} {self.last_name}".strip()

    def clean_fields(self, exclude=None):
        self.email = normalise_email(self.email)  # before the field validators see it
        super().clean_fields(exclude=exclude)

    def bant_temperature(self):
        """Cold, warm or hot from the BANT answers: all four positive is hot, two or three warm, else cold."""
        positive = [
            self.budget in (Lead.Budget.APPROVED, Lead.Budget.PLANNED),
            self.authority == Lead.Authority.DECIDES,
            self.need == Lead.Need.ACUTE,
            self.timeframe in (Lead.Timeframe.WITHIN_3M, Lead.Timeframe.WITHIN_6M),
        ]
        count = sum(positive)
        return (
            Lead.Temperature.HOT
            if count == 4
            else Lead.Temperature.WARM
            if count >= 2
            else Lead.Temperature.COLD
        )

    def move_to(self, to_stage, *, by=None, system="", reason="", at=None):
        """Move this lead to another lifecycle stage, if the lifecycle table allows it for this actor.

        by: the user moving it, or system: the component (scoring, routing, sla). Settled in the database: the
        stage changes only if it is still the one this instance holds, so of two concurrent moves exactly one
        wins and the other raises StageConflict. Records a StageChange; a backward move needs a reason.
        """
        changes = Lead.objects.filter(pk=self.pk, stage_id=self.stage_id).move_to(
            to_stage, by=by, system=system, reason=reason, at=at, expected_from=self.stage_id
        )
        if not changes:
            raise StageConflict(self.stage_id, to_stage, "the lead has moved on meanwhile")
        from . import lifecycle

        self.stage_id, self.stage_changed_at = to_stage, changes[0].at
        if to_stage in lifecycle.MILESTONES:
            setattr(self, lifecycle.MILESTONES[to_stage], changes[0].at)
        return changes[0]

    def timeline(self, *, before=None, limit=50):
        """Touchpoints, sales activities and stage changes of this lead merged newest first.

        `before` is a TimelineCursor (from a previous page's last entry); returns (entries, next_cursor).
        """
        from .timeline import lead_timeline

        return lead_timeline(self, before=before, limit=limit)


class TouchpointQuerySet(models.QuerySet):
    def visible_to(self, user):
        if role_of(user) in (Role.ADMIN, Role.MARKETING):
            return self.all()
        return self.filter(lead__in=Lead.objects.visible_to(user).values("pk"))


class Touchpoint(models.Model):
    """One entry of the online activity protocol: a visit, download, webinar, email click, … of a visitor or lead."""

    class Kind(models.TextChoices):
        PAGE_VIEW = "page_view", _("Page view")
        CONTENT_DOWNLOAD = "content_download", _("Content download")
        WEBINAR_REGISTRATION = "webinar_registration", _("Webinar registration")
        WEBINAR_ATTENDANCE = "webinar_attendance", _("Webinar attendance")
        EMAIL_OPEN = "email_open", _("Email open")
        EMAIL_CLICK = "email_click", _("Email click")
        FORM_SUBMIT = "form_submit", _("Form submission")
        DEMO_REQUEST = "demo_request", _("Demo request")
        TRIAL_SIGNUP = "trial_signup", _("Trial sign-up")
        TRADE_FAIR_VISIT = "trade_fair_visit", _("Trade fair visit")
        SITE_SEARCH = "site_search", _("Site search")
        LINK_CLICK = "link_click", _("Link click")

    lead = models.ForeignKey(
        Lead,
        verbose_name=_("lead"),
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        db_index=False,
        related_name="touchpoints",
    )
    visitor_id = models.CharField(_("visitor id"), max_length=64, blank=True)
    session_id = models.CharField(_("session"), max_length=64, blank=True)
    kind = models.CharField(_("kind"), max_length=24, choices=Kind.choices)
    url = models.URLField(_("URL"), max_length=2048, blank=True)
    referrer = models.URLField(_("referrer"), max_length=2048, blank=True)
    page_title = models.CharField(_("page title"), max_length=300, blank=True)
    search_terms = models.CharField(_("search terms"), max_length=200, blank=True)
    utm_source = models.CharField(_("UTM source"), max_length=100, blank=True)
    utm_medium = models.CharField(_("UTM medium"), max_length=100, blank=True)
    utm_campaign = models.CharField(_("UTM campaign"), max_length=100, blank=True)
    campaign = models.ForeignKey(
        Campaign,
        verbose_name=_("campaign"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="touchpoints",
    )
    channel = models.ForeignKey(
        Channel,
        verbose_name=_("channel"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        db_index=False,
        related_name="+",
    )
    occurred_at = models.DateTimeField(_("occurred"))
    received_at = models.DateTimeField(_("received"))
    client_event_id = models.UUIDField(_("client event id"), unique=True, default=uuid.uuid4, editable=False)
    properties = models.JSONField(
        _("properties"), default=dict, blank=True, validators=[validate_properties_size]
    )

    objects = TouchpointQuerySet.as_manager()

    class Meta:
        verbose_name = _("touchpoint")
        verbose_name_plural = _("touchpoints")
        indexes = [
            models.Index(fields=["lead", "occurred_at"], name="touchpoint_lead_idx"),
            # Anonymous visits waiting to be joined to a lead once the visitor identifies.
            models.Index(
                fields=["visitor_id"], condition=Q(lead__isnull=True), name="touchpoint_anon_visitor_idx"
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} · {self.occurred_at:%Y-%m-%d %H:%M}"


class SalesActivityQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(lead__in=Lead.objects.visible_to(user).values("pk"))


class SalesActivity(models.Model):
    """One entry of the sales protocol: a call, email, meeting, demo or quote between a rep and a lead."""

    class Kind(models.TextChoices):
        CALL = "call", _("Call")
        EMAIL = "email", _("Email")
        MEETING = "meeting", _("Meeting")
        DEMO = "demo", _("Demo")
        QUOTE = "quote", _("Quote")
        NOTE = "note", _("Note")

    class Outcome(models.TextChoices):
        REACHED = "reached", _("Reached")
        NOT_REACHED = "not_reached", _("Not reached")
        POSITIVE = "positive", _("Positive")
        NEUTRAL = "neutral", _("Neutral")
        NEGATIVE = "negative", _("Negative")

    lead = models.ForeignKey(
        Lead,
        verbose_name=_("lead"),
        on_delete=models.CASCADE,
        db_index=False,
        related_name="sales_activities",
    )
    rep = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("rep"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,
        related_name="sales_activities",
    )
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    outcome = models.CharField(_("outcome"), max_length=12, choices=Outcome.choices, blank=True)
    note = models.TextField(_("note"), blank=True, max_length=5000)
    occurred_at = models.DateTimeField(_("occurred"))
    next_follow_up = models.DateField(_("next follow-up"), null=True, blank=True)

    objects = SalesActivityQuerySet.as_manager()

    class Meta:
        verbose_name = _("sales activity")
        verbose_name_plural = _("sales activities")
        indexes = [
            models.Index(fields=["lead", "occurred_at"], name="salesactivity_lead_idx"),
            models.Index(
                fields=["rep", "next_follow_up"],
                condition=Q(next_follow_up__isnull=False),
                name="salesactivity_followup_idx",
            ),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} · {self.occurred_at:%Y-%m-%d}"


class StageChangeQuerySet(models.QuerySet):
    def visible_to(self, user):
        return self.filter(lead__in=Lead.objects.visible_to(user).values("pk"))


class StageChange(models.Model):
    """One step of a lead through the lifecycle, with who (a user, or the system) moved it and why."""

    lead = models.ForeignKey(
        Lead, verbose_name=_("lead"), on_delete=models.CASCADE, db_index=False, related_name="stage_changes"
    )
    from_stage = models.ForeignKey(
        LifecycleStage,
        verbose_name=_("from"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )
    to_stage = models.ForeignKey(
        LifecycleStage, verbose_name=_("to"), on_delete=models.PROTECT, related_name="+", db_index=False
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    system_actor = models.CharField(
        _("by system"),
        max_length=30,
        blank=True,
        help_text=_("The component that made the change when no user did."),
    )
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    at = models.DateTimeField(_("at"))

    objects = StageChangeQuerySet.as_manager()

    class Meta:
        verbose_name = _("stage change")
        verbose_name_plural = _("stage changes")
        indexes = [
            models.Index(fields=["lead", "at"], name="stagechange_lead_idx"),
            models.Index(fields=["to_stage", "at"], name="stagechange_flow_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(actor__isnull=False) | ~Q(system_actor=""), name="stagechange_has_actor"
            ),
        ]

    def __str__(self):
        return f"{self.from_stage_id or '—'} → {self.to_stage_id}"

    @property
    def actor_display(self):
        return str(self.actor) if self.actor_id else self.system_actor


class LeadMerge(models.Model):
    """A duplicate lead folded into another: what it was, who merged it, why; its activity now lives on `lead`."""

    lead = models.ForeignKey(
        Lead, verbose_name=_("kept lead"), on_delete=models.CASCADE, db_index=False, related_name="merges"
    )
    merged_lead_id = models.BigIntegerField(_("merged lead's id"), unique=True)
    email = models.EmailField(_("merged lead's email"), max_length=254, blank=True)
    external_id = models.CharField(_("merged lead's external id"), max_length=100, blank=True)
    snapshot = models.JSONField(
        _("merged lead's fields"), encoder=DjangoJSONEncoder, help_text=_("The duplicate as it was.")
    )
    moved = models.JSONField(
        _("rows moved"), encoder=DjangoJSONEncoder, default=dict, help_text=_("Per related table, how many.")
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    system_actor = models.CharField(
        _("by system"),
        max_length=30,
        blank=True,
        help_text=_("The component that merged when no user did."),
    )
    reason = models.CharField(_("reason"), max_length=500, blank=True)
    at = models.DateTimeField(_("at"), default=timezone.now)

    class Meta:
        verbose_name = _("lead merge")
        verbose_name_plural = _("lead merges")
        indexes = [
            models.Index(fields=["lead", "at"], name="leadmerge_lead_idx"),
            # Events naming a merged lead's former address or external id find the lead it went into.
            models.Index(fields=["email"], condition=~Q(email=""), name="leadmerge_email_idx"),
            models.Index(fields=["external_id"], condition=~Q(external_id=""), name="leadmerge_external_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(actor__isnull=False) | ~Q(system_actor=""), name="leadmerge_has_actor"
            ),
        ]

    def __str__(self):
        return f"#{self.merged_lead_id} → #{self.lead_id}"

    @property
    def actor_display(self):
        return str(self.actor) if self.actor_id else self.system_actor
