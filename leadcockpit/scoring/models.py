"""Scoring models, their versions, criteria and thresholds, joint approval, and the score history."""

import uuid

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from leadcockpit.leads.models import Channel, Lead, Touchpoint

from .fields import clean_condition


class ScoringModel(models.Model):
    """A named scoring model (e.g. per product line) with a rule for which leads it scores."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    priority = models.PositiveSmallIntegerField(
        _("priority"),
        default=100,
        help_text=_("Models are tried in this order; the first whose rule matches scores the lead."),
    )
    rule = models.JSONField(
        _("applies to"),
        default=list,
        blank=True,
        help_text=_("Conditions a lead must meet for this model to score it; none means every lead."),
    )
    review_after_days = models.PositiveSmallIntegerField(
        _("review after (days)"),
        default=90,
        help_text=_("A version active for longer than this is flagged for review by marketing and sales."),
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)

    class Meta:
        ordering = ["priority", "pk"]
        verbose_name = _("scoring model")
        verbose_name_plural = _("scoring models")

    def __str__(self):
        return self.name

    def clean(self):
        self.rule = clean_conditions(self.rule)


def clean_conditions(conditions):
    """A list of {field, operator, value} dicts, each passed through the allowlist."""
    if not isinstance(conditions, list):
        raise ValidationError(_("The rule must be a list of conditions."), code="invalid")
    cleaned = []
    for item in conditions:
        if not isinstance(item, dict) or set(item) - {"field", "operator", "value"}:
            raise ValidationError(_("Each condition needs a field, an operator and a value."), code="invalid")
        field, operator, value = clean_condition(item.get("field"), item.get("operator"), item.get("value"))
        cleaned.append({"field": field, "operator": operator, "value": value})
    return cleaned


class ScoringVersion(models.Model):
    """One version of a model's criteria and thresholds: draft → proposed → active → retired."""

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        PROPOSED = "proposed", _("Proposed")
        ACTIVE = "active", _("Active")
        RETIRED = "retired", _("Retired")

    model = models.ForeignKey(
        ScoringModel, verbose_name=_("model"), on_delete=models.CASCADE, related_name="versions"
    )
    number = models.PositiveIntegerField(_("version"))
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.DRAFT)
    note = models.TextField(_("what changed"), blank=True)

    mql_threshold = models.FloatField(_("MQL threshold"), default=100)
    min_fit_for_mql = models.FloatField(_("minimum fit for MQL"), null=True, blank=True)
    yellow_from = models.FloatField(_("yellow from"), default=50)
    green_from = models.FloatField(_("green from"), default=100)
    warm_from = models.FloatField(_("warm from"), default=40)
    hot_from = models.FloatField(_("hot from"), default=90)
    fit_a_from = models.FloatField(_("fit A from"), default=60)
    fit_b_from = models.FloatField(_("fit B from"), default=35)
    fit_c_from = models.FloatField(_("fit C from"), default=10)
    interest_1_from = models.FloatField(_("interest 1 from"), default=60)
    interest_2_from = models.FloatField(_("interest 2 from"), default=30)
    interest_3_from = models.FloatField(_("interest 3 from"), default=10)

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("created by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    proposed_at = models.DateTimeField(_("proposed"), null=True, blank=True)
    activated_at = models.DateTimeField(_("activated"), null=True, blank=True)
    retired_at = models.DateTimeField(_("retired"), null=True, blank=True)

    class Meta:
        ordering = ["model", "-number"]
        verbose_name = _("scoring version")
        verbose_name_plural = _("scoring versions")
        constraints = [
            models.UniqueConstraint(fields=["model", "number"], name="scoringversion_number_unique"),
            models.UniqueConstraint(
                fields=["model"], condition=Q(status="active"), name="scoringversion_one_active_per_model"
            ),
            models.CheckConstraint(
                condition=Q(green_from__gte=models.F("yellow_from")), name="scoringversion_bands_ordered"
            ),
            models.CheckConstraint(
                condition=Q(hot_from__gte=models.F("warm_from")), name="scoringversion_temps_ordered"
            ),
            models.CheckConstraint(
                condition=Q(fit_a_from__gte=models.F("fit_b_from"))
                & Q(fit_b_from__gte=models.F("fit_c_from")),
                name="scoringversion_fit_grades_ordered",
            ),
            models.CheckConstraint(
                condition=Q(interest_1_from__gte=models.F("interest_2_from"))
                & Q(interest_2_from__gte=models.F("interest_3_from")),
                name="scoringversion_interest_grades_ordered",
            ),
        ]

    def __str__(self):
        return f"{self.model} v{self.number} ({self.get_status_display()})"

    @property
    def is_editable(self):
        return self.status == self.Status.DRAFT

    def clean(self):
        errors = {}
        if self.green_from < self.yellow_from:
            errors["green_from"] = _("Green must start at or above yellow.")
        if self.hot_from < self.warm_from:
            errors["hot_from"] = _("Hot must start at or above warm.")
        if not self.fit_a_from >= self.fit_b_from >= self.fit_c_from:
            errors["fit_a_from"] = _("Fit grades must be ordered A ≥ B ≥ C.")
        if not self.interest_1_from >= self.interest_2_from >= self.interest_3_from:
            errors["interest_1_from"] = _("Interest grades must be ordered 1 ≥ 2 ≥ 3.")
        if errors:
            raise ValidationError(errors)


class Criterion(models.Model):
    """One rule of a version: fit points for who the lead is, interest points for what it does, or a knock-out."""

    class Kind(models.TextChoices):
        FIT = "fit", _("Fit (explicit)")
        INTEREST = "interest", _("Interest (implicit)")
        KNOCKOUT = "knockout", _("Knock-out")

    class Reason(models.TextChoices):
        STUDENT = "student", _("Student without decision power")
        COMPETITOR = "competitor", _("Competitor")
        WRONG_INDUSTRY = "wrong_industry", _("Industry outside the target group")
        NO_CONSENT = "no_consent", _("No consent")
        OTHER = "other", _("Other")

    version = models.ForeignKey(
        ScoringVersion, verbose_name=_("version"), on_delete=models.CASCADE, related_name="criteria"
    )
    # The same criterion across versions: a new draft copies it, so a diff can tell "changed" from
    # "removed and added".
    key = models.UUIDField(_("key"), default=uuid.uuid4, editable=False)
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    label = models.CharField(_("label"), max_length=200)
    # Fit and knock-out: one condition on an allowlisted field.
    # A key of fields.FIT_FIELDS, or "attribute:<name>" for an imported attribute.
    field = models.CharField(_("field"), max_length=80, blank=True)
    operator = models.CharField(_("operator"), max_length=20, blank=True)
    value = models.JSONField(_("value"), null=True, blank=True)
    # Interest: which touchpoints count (every given matcher must hold).
    touchpoint_kinds = models.JSONField(_("touchpoint kinds"), default=list, blank=True)
    url_contains = models.CharField(_("URL contains"), max_length=200, blank=True)
    channel = models.ForeignKey(
        Channel, verbose_name=_("channel"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    search_contains = models.CharField(_("search terms contain"), max_length=200, blank=True)
    points = models.FloatField(_("points"), default=0, help_text=_("Per occurrence for interest criteria."))
    cap = models.FloatField(_("cap"), null=True, blank=True, help_text=_("At most this many points in all."))
    lookback_days = models.PositiveIntegerField(_("look-back (days)"), null=True, blank=True)
    half_life_days = models.FloatField(
        _("half-life (days)"),
        null=True,
        blank=True,
        help_text=_("Activity this old counts half; empty: no decay."),
    )
    reason = models.CharField(_("knock-out reason"), max_length=20, choices=Reason.choices, blank=True)

    class Meta:
        ordering = ["version", "kind", "position", "pk"]
        verbose_name = _("criterion")
        verbose_name_plural = _("criteria")
        constraints = [
            models.CheckConstraint(
                condition=Q(cap__isnull=True) | Q(cap__gt=0), name="criterion_cap_positive"
            ),
            models.CheckConstraint(
                condition=Q(half_life_days__isnull=True) | Q(half_life_days__gt=0),
                name="criterion_half_life_positive",
            ),
        ]

    def __str__(self):
        return self.label

    def clean(self):
        errors = {}
        if self.kind in (self.Kind.FIT, self.Kind.KNOCKOUT):
            try:
                self.field, self.operator, self.value = clean_condition(self.field, self.operator, self.value)
            except ValidationError as exc:
                errors[
                    "value"
                    if exc.code not in ("unknown_field", "operator")
                    else ("field" if exc.code == "unknown_field" else "operator")
                ] = exc.messages
            if self.kind == self.Kind.KNOCKOUT and not self.reason:
                errors["reason"] = _("A knock-out needs a reason.")
        elif self.kind == self.Kind.INTEREST:
            kinds = self.touchpoint_kinds
            if not isinstance(kinds, list) or any(k not in Touchpoint.Kind.values for k in kinds):
                errors["touchpoint_kinds"] = _("Choose touchpoint kinds from the list.")
            if not (kinds or self.url_contains or self.channel_id or self.search_contains):
                errors["touchpoint_kinds"] = _(
                    "Say which activity counts: a kind, a URL, a channel or a search term."
                )
            if self.points == 0:
                errors["points"] = _("An interest criterion needs points per occurrence.")
        if errors:
            raise ValidationError(errors)


class Approval(models.Model):
    """One side's sign-off on a proposed version: marketing and sales must both approve, as two people."""

    class Side(models.TextChoices):
        MARKETING = "marketing", _("Marketing")
        SALES = "sales", _("Sales")

    version = models.ForeignKey(
        ScoringVersion, verbose_name=_("version"), on_delete=models.CASCADE, related_name="approvals"
    )
    side = models.CharField(_("side"), max_length=10, choices=Side.choices)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("approved by"), on_delete=models.PROTECT, related_name="+"
    )
    at = models.DateTimeField(_("at"), auto_now_add=True)
    preview = models.ForeignKey(
        "Preview",
        verbose_name=_("evidence seen"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("The what-if and backtest the approver had in front of them."),
    )

    class Meta:
        verbose_name = _("approval")
        verbose_name_plural = _("approvals")
        constraints = [
            models.UniqueConstraint(fields=["version", "side"], name="approval_one_per_side"),
            models.UniqueConstraint(fields=["version", "user"], name="approval_two_different_people"),
        ]

    def __str__(self):
        return f"{self.get_side_display()}: {self.user}"


class ScoreChangeQuerySet(models.QuerySet):
    def as_of(self, lead, at):
        """The lead's score state at a past moment (e.g. at handover): the last change at or before `at`."""
        return (
            self.filter(lead=lead, at__lte=at).select_related("version__model").order_by("-at", "-pk").first()
        )


class ScoreChange(models.Model):
    """A change of a lead's band, temperature or MQL status, with the version that scored it."""

    lead = models.ForeignKey(
        Lead, verbose_name=_("lead"), on_delete=models.CASCADE, related_name="score_changes", db_index=False
    )
    version = models.ForeignKey(
        ScoringVersion, verbose_name=_("version"), on_delete=models.PROTECT, related_name="+"
    )
    at = models.DateTimeField(_("at"))
    fit = models.FloatField(_("fit"))
    interest = models.FloatField(_("interest"))
    score = models.FloatField(_("score"))
    band = models.CharField(_("traffic light"), max_length=6, choices=Lead.Band.choices)
    temperature = models.CharField(_("temperature"), max_length=4, choices=Lead.Temperature.choices)
    grade = models.CharField(_("grade"), max_length=2)
    is_mql = models.BooleanField(_("MQL"))

    objects = ScoreChangeQuerySet.as_manager()

    class Meta:
        verbose_name = _("score change")
        verbose_name_plural = _("score changes")
        indexes = [models.Index(fields=["lead", "at"], name="scorechange_lead_idx")]

    def __str__(self):
        return f"{self.lead_id} {self.band} {self.score:.0f} @ {self.at:%Y-%m-%d %H:%M}"


class DirtyLead(models.Model):
    """A lead whose score must be recomputed (new activity, changed attributes); the sweep empties this table.

    A worker claims marks in one short transaction, rescores, then forgets its marks (and releases those marked
    again meanwhile): marking a lead (ingest, imports, edits) never waits for a rescore to finish."""

    lead = models.OneToOneField(
        Lead, verbose_name=_("lead"), on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    marked_at = models.DateTimeField(_("marked"), auto_now_add=True, db_index=True)
    # Set while a worker rescores the lead; no other worker takes it then. A claim older than CLAIM_TIMEOUT (its
    # worker died) is taken again.
    claimed_at = models.DateTimeField(_("claimed"), null=True, blank=True)
    # Marked again while claimed: the worker may have read the lead before, so it releases the mark, not forgets it.
    remarked = models.BooleanField(_("marked again"), default=False, db_default=False)

    class Meta:
        verbose_name = _("lead to rescore")
        verbose_name_plural = _("leads to rescore")

    def __str__(self):
        return str(self.lead_id)


class RescoreJob(models.Model):
    """A full rescore, chunked by lead id; its row is the progress bar and the place to resume from."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    reason = models.CharField(_("reason"), max_length=200)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.QUEUED)
    as_of = models.DateTimeField(_("as of"))
    next_id = models.BigIntegerField(_("next lead id"), default=0)
    last_id = models.BigIntegerField(_("last lead id"), default=0)
    first_id = models.BigIntegerField(_("first lead id"), default=0)
    scored = models.PositiveIntegerField(_("leads scored"), default=0)
    updated = models.PositiveIntegerField(_("leads changed"), default=0)
    new_mqls = models.PositiveIntegerField(_("new MQLs"), default=0)
    longest_chunk_s = models.FloatField(
        _("longest chunk (s)"), default=0, help_text=_("The longest a chunk's transaction held lead rows.")
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    heartbeat_at = models.DateTimeField(_("last progress"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("rescore job")
        verbose_name_plural = _("rescore jobs")

    def __str__(self):
        return f"{self.reason} ({self.get_status_display()})"

    @property
    def percent(self):
        if self.status == self.Status.DONE:
            return 100
        span = self.last_id - self.first_id + 1
        if span <= 0:
            return 0
        return max(0, min(99, int(100 * (self.next_id - self.first_id) / span)))


class FloatArrayField(models.Field):
    """A list of floats: float8[] on PostgreSQL, a JSON array in text on SQLite. Read and written by raw SQL."""

    def db_type(self, connection):
        return "double precision[]" if connection.vendor == "postgresql" else "text"


class LeadSignals(models.Model):
    """A lead's interest accumulators: per interest criterion of a version, the decayed sum as of `at`.

    sums[i] = Σ 0.5 ** (age / half-life) (or the count, without decay) over the touchpoints that the i-th interest
    criterion counts, excluding its points, so a version that changes only points, caps, fit or thresholds reuses
    them. Decaying to a later moment is one multiplication, so the decay tick and such rescores read these small
    rows instead of every touchpoint. They hold while `signature` matches the version's interest criteria and for
    `fresh_days` after `at` (until a counted touchpoint leaves a look-back window or a future-dated one arrives);
    new activity marks the lead dirty, which recomputes them from the touchpoints.
    """

    lead = models.OneToOneField(
        Lead, verbose_name=_("lead"), on_delete=models.CASCADE, primary_key=True, related_name="+"
    )
    signature = models.CharField(_("criteria signature"), max_length=32)
    at = models.DateTimeField(_("as of"))
    fresh_days = models.FloatField(_("good for (days)"))
    sums = FloatArrayField(_("decayed sums"))

    class Meta:
        verbose_name = _("lead signals")
        verbose_name_plural = _("lead signals")

    def __str__(self):
        return str(self.lead_id)


class VersionComment(models.Model):
    """Marketing and sales discussing a version; a rejected proposal carries its reason as such a comment."""

    class Kind(models.TextChoices):
        COMMENT = "comment", _("Comment")
        REJECTION = "rejection", _("Rejection")

    version = models.ForeignKey(
        ScoringVersion, verbose_name=_("version"), on_delete=models.CASCADE, related_name="comments"
    )
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, verbose_name=_("author"), on_delete=models.PROTECT, related_name="+"
    )
    kind = models.CharField(_("kind"), max_length=10, choices=Kind.choices, default=Kind.COMMENT)
    text = models.TextField(_("text"), max_length=4000)
    at = models.DateTimeField(_("at"), auto_now_add=True)

    class Meta:
        ordering = ["at", "pk"]
        verbose_name = _("comment")
        verbose_name_plural = _("comments")

    def __str__(self):
        return f"{self.author}: {self.text[:40]}"


class Preview(models.Model):
    """A what-if and backtest of one state of a version against the active versions, computed by a worker.

    `fingerprint` hashes the version's criteria and thresholds: an edit makes a new preview, and a preview whose
    fingerprint still matches is reused while it is recent. `result` holds the figures (see whatif.py).
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    version = models.ForeignKey(
        ScoringVersion, verbose_name=_("version"), on_delete=models.CASCADE, related_name="previews"
    )
    fingerprint = models.CharField(_("fingerprint"), max_length=64)
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.QUEUED)
    as_of = models.DateTimeField(_("as of"))
    result = models.JSONField(_("result"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)
    seconds = models.FloatField(_("seconds"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("preview")
        verbose_name_plural = _("previews")
        indexes = [models.Index(fields=["version", "fingerprint", "-created_at"], name="preview_lookup_idx")]

    def __str__(self):
        return f"{self.version} @ {self.as_of:%Y-%m-%d %H:%M} ({self.get_status_display()})"


class LearningRun(models.Model):
    """Learning from the leads whose outcome is known: a background job whose row is the progress bar, and the
    fitted model, its explanation, the leakage guard's findings and the suggested points (see learning.py)."""

    class Status(models.TextChoices):
        QUEUED = "queued", _("Queued")
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    model = models.ForeignKey(
        ScoringModel, verbose_name=_("model"), on_delete=models.CASCADE, related_name="learning_runs"
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.QUEUED)
    step = models.CharField(_("step"), max_length=40, blank=True)
    percent = models.PositiveSmallIntegerField(_("progress (%)"), default=0)
    options = models.JSONField(_("options"), default=dict, blank=True)
    result = models.JSONField(_("result"), null=True, blank=True)
    draft = models.ForeignKey(
        ScoringVersion,
        verbose_name=_("draft made from it"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("started by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    heartbeat_at = models.DateTimeField(_("last progress"), null=True, blank=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    seconds = models.FloatField(_("seconds"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("learning run")
        verbose_name_plural = _("learning runs")

    def __str__(self):
        return f"{self.model} @ {self.created_at:%Y-%m-%d %H:%M} ({self.get_status_display()})"


class ValidityReport(models.Model):
    """How well a version's scores foretold the outcomes known when it was computed: ROC AUC with its confidence
    interval, lift per decile, calibration per band; one row per computation, so validity is tracked over time."""

    version = models.ForeignKey(
        ScoringVersion, verbose_name=_("version"), on_delete=models.CASCADE, related_name="validity_reports"
    )
    computed_at = models.DateTimeField(_("computed"), db_index=True)
    n = models.PositiveIntegerField(_("leads with an outcome"), default=0)
    positives = models.PositiveIntegerField(_("converted"), default=0)
    auc = models.FloatField(_("ROC AUC"), null=True, blank=True)
    auc_low = models.FloatField(_("ROC AUC, lower 95 % bound"), null=True, blank=True)
    auc_high = models.FloatField(_("ROC AUC, upper 95 % bound"), null=True, blank=True)
    result = models.JSONField(_("figures"), default=dict, blank=True)
    flagged = models.BooleanField(_("validity dropped"), default=False)
    flag_reason = models.TextField(_("why flagged"), blank=True)

    class Meta:
        ordering = ["version", "-computed_at", "-pk"]
        verbose_name = _("validity report")
        verbose_name_plural = _("validity reports")
        indexes = [models.Index(fields=["version", "-computed_at"], name="validity_version_idx")]

    def __str__(self):
        return f"{self.version} @ {self.computed_at:%Y-%m-%d %H:%M}: AUC {self.auc}"
