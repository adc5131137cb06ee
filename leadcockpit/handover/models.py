"""Handing MQLs to sales: routing rules, team and rep settings, handovers with a deadline, notifications."""

from datetime import timedelta

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils.translation import gettext_lazy as _

from leadcockpit.accounts.models import Team
from leadcockpit.leads.models import Lead
from leadcockpit.scoring.models import clean_conditions

GRADES = [f"{letter}{number}" for letter in "ABCD" for number in "1234"]


class TeamRouting(models.Model):
    """How a team takes leads: which rep gets the next one, and the time to accept or reject it."""

    class Strategy(models.TextChoices):
        ROUND_ROBIN = "round_robin", _("Round robin")
        LEAST_LOADED = "least_loaded", _("Least loaded (fewest open handovers)")

    team = models.OneToOneField(
        Team, verbose_name=_("team"), on_delete=models.CASCADE, primary_key=True, related_name="routing"
    )
    strategy = models.CharField(
        _("strategy"), max_length=20, choices=Strategy.choices, default=Strategy.ROUND_ROBIN
    )
    sla_hours = models.PositiveSmallIntegerField(
        _("hours to accept or reject"),
        default=24,
        validators=[MinValueValidator(1), MaxValueValidator(24 * 30)],
    )
    business_hours = models.BooleanField(
        _("count business hours only"), default=False, help_text=_("Monday to Friday, 8:00 to 18:00.")
    )
    remind_before_hours = models.PositiveSmallIntegerField(
        _("remind this many hours before the deadline"), default=4, validators=[MaxValueValidator(24 * 30)]
    )
    reassign_on_breach = models.BooleanField(
        _("reassign when the deadline passes"),
        default=False,
        help_text=_("Otherwise the managers are told and the rep keeps the lead."),
    )
    last_rep = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("last rep assigned"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=_("Where round robin goes on from."),
    )

    class Meta:
        verbose_name = _("team routing")
        verbose_name_plural = _("team routing")

    def __str__(self):
        return str(self.team)

    def deadline(self, start):
        """When a handover made at `start` must be decided."""
        if self.business_hours:
            from django.utils import timezone

            from leadcockpit.lib.business_time import add_business_hours

            return add_business_hours(start, self.sla_hours, timezone.get_default_timezone())
        return start + timedelta(hours=self.sla_hours)


class RepAvailability(models.Model):
    """A rep's capacity for open handovers, and when they are away."""

    rep = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        verbose_name=_("rep"),
        on_delete=models.CASCADE,
        primary_key=True,
        related_name="availability",
    )
    capacity = models.PositiveSmallIntegerField(
        _("capacity"),
        default=50,
        validators=[MaxValueValidator(10_000)],
        help_text=_("At most this many open handovers at once."),
    )
    absent_from = models.DateField(_("absent from"), null=True, blank=True)
    absent_until = models.DateField(_("absent until"), null=True, blank=True)

    class Meta:
        verbose_name = _("rep availability")
        verbose_name_plural = _("rep availability")

    def __str__(self):
        return str(self.rep)

    def clean(self):
        if self.absent_from and self.absent_until and self.absent_until < self.absent_from:
            raise ValidationError({"absent_until": _("The absence must end on or after its first day.")})


class RoutingRule(models.Model):
    """A rule that sends matching MQLs to a team; rules are tried in order, the first that matches wins."""

    position = models.PositiveSmallIntegerField(_("position"), default=0)
    name = models.CharField(_("name"), max_length=100)
    conditions = models.JSONField(
        _("conditions"),
        default=list,
        blank=True,
        help_text=_("Lead and company conditions, all required (the same fields as scoring criteria)."),
    )
    grades = models.JSONField(_("grades"), default=list, blank=True, help_text=_("Empty: any grade."))
    product_interest = models.CharField(
        _("product interest"),
        max_length=200,
        blank=True,
        help_text=_(
            "The lead visited a page whose address contains this, e.g. /product/scoring. Empty: any."
        ),
    )
    team = models.ForeignKey(
        Team, verbose_name=_("team"), on_delete=models.PROTECT, related_name="routing_rules"
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        ordering = ["position", "pk"]
        verbose_name = _("routing rule")
        verbose_name_plural = _("routing rules")

    def __str__(self):
        return self.name

    def clean(self):
        self.conditions = clean_conditions(self.conditions)
        if not isinstance(self.grades, list) or any(grade not in GRADES for grade in self.grades):
            raise ValidationError({"grades": _("Grades are A1 to D4.")})


class HandoverQuerySet(models.QuerySet):
    def visible_to(self, user):
        """Handovers of the leads this user may see, plus those made to them (a rep) or to their team (a manager):
        a rejected lead has no owner any more, yet its handover stays the rep's and the team's record."""
        from leadcockpit.accounts.roles import Role, role_of

        scope = Q(lead__in=Lead.objects.visible_to(user).values("pk"))
        role = role_of(user)
        if role == Role.SALES_REP:
            scope |= Q(rep=user)
        elif role == Role.SALES_MANAGER and user.team_id:
            scope |= Q(team_id=user.team_id)
        return self.filter(scope)

    def open(self):
        return self.filter(status=Handover.Status.OPEN)


class Handover(models.Model):
    """An MQL handed to a team and rep, who must accept or reject it by the deadline."""

    class Status(models.TextChoices):
        OPEN = "open", _("Open")
        ACCEPTED = "accepted", _("Accepted")
        REJECTED = "rejected", _("Rejected")

    class RejectReason(models.TextChoices):
        NOT_DECISION_MAKER = "not_decision_maker", _("Not a decision maker")
        NO_BUDGET = "no_budget", _("No budget")
        OUTSIDE_TARGET = "outside_target", _("Outside the target group")
        DUPLICATE = "duplicate", _("Duplicate")
        BAD_CONTACT_DATA = "bad_contact_data", _("Bad contact data")
        NO_NEED = "no_need", _("No need")
        WRONG_TIMING = "wrong_timing", _("Wrong timing")
        OTHER = "other", _("Other")

    lead = models.ForeignKey(Lead, verbose_name=_("lead"), on_delete=models.CASCADE, related_name="handovers")
    team = models.ForeignKey(
        Team, verbose_name=_("team"), null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    rep = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("rep"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="handovers",
        help_text=_("Empty: waiting in the fallback queue for a manager to assign."),
    )
    rule = models.ForeignKey(
        RoutingRule,
        verbose_name=_("rule"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    status = models.CharField(_("status"), max_length=10, choices=Status.choices, default=Status.OPEN)
    created_at = models.DateTimeField(_("handed over"))
    due_at = models.DateTimeField(_("accept or reject by"))
    reminded_at = models.DateTimeField(_("reminded"), null=True, blank=True)
    escalated_at = models.DateTimeField(_("escalated"), null=True, blank=True)
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("decided by"),
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    reject_reason = models.CharField(_("reason"), max_length=30, choices=RejectReason.choices, blank=True)
    note = models.TextField(_("note"), blank=True, max_length=2000)

    objects = HandoverQuerySet.as_manager()

    class Meta:
        verbose_name = _("handover")
        verbose_name_plural = _("handovers")
        indexes = [
            models.Index(fields=["rep", "due_at"], name="handover_inbox_idx", condition=Q(status="open")),
            models.Index(fields=["due_at"], name="handover_sla_idx", condition=Q(status="open")),
            models.Index(fields=["status", "decided_at"], name="handover_decided_idx"),
        ]
        constraints = [
            # Invariant 4: at most one open handover per lead.
            models.UniqueConstraint(
                fields=["lead"], condition=Q(status="open"), name="handover_one_open_per_lead"
            ),
            models.CheckConstraint(
                condition=~Q(status="rejected") | ~Q(reject_reason=""), name="handover_rejection_has_reason"
            ),
        ]

    def __str__(self):
        return f"{self.lead} → {self.rep or _('fallback queue')}"


class Notification(models.Model):
    """Something a user should know (a new lead, a reminder, an escalation), in the app and by email."""

    class Kind(models.TextChoices):
        NEW_LEAD = "new_lead", _("New lead")
        REMINDER = "reminder", _("Reminder")
        ESCALATION = "escalation", _("Escalation")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        on_delete=models.CASCADE,
        related_name="notifications",
    )
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    handover = models.ForeignKey(
        Handover, verbose_name=_("handover"), on_delete=models.CASCADE, related_name="notifications"
    )
    created_at = models.DateTimeField(_("created"))
    read_at = models.DateTimeField(_("read"), null=True, blank=True)
    emailed_at = models.DateTimeField(_("emailed"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-pk"]
        verbose_name = _("notification")
        verbose_name_plural = _("notifications")
        indexes = [
            models.Index(fields=["user", "created_at"], name="notification_user_idx"),
            # The inbox lists a user's newest unread ones.
            models.Index(
                fields=["user", "-created_at"], name="notification_unread_idx", condition=Q(read_at=None)
            ),
            models.Index(fields=["created_at"], name="notification_unsent_idx", condition=Q(emailed_at=None)),
        ]

    def __str__(self):
        return f"{self.get_kind_display()}: {self.handover.lead}"
