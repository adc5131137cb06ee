"""Rollups the manager cockpit reads: per-lead facts and small daily cubes, kept fresh from the record.

Insights reads every app and writes only these tables. Per-lead tables (LeadFact, StageInterval, BandInterval,
HandoverFact) hold one row per lead, stage visit, score episode or handover with the lead's dimensions copied in;
they answer any combination of filters exactly. The cubes (FunnelDaily, LightDaily) sum them per day for all
leads and per single dimension value, so the common views (no filter or one) read a few thousand rows.

Dimensions are stored without NULLs ('' or 0 for none) so cube keys upsert; ids of other apps' rows are plain
integers, not foreign keys: a rollup never blocks a delete, and a refresh removes what points nowhere.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

# The dimensions every rollup row carries, in the order the cubes list them.
DIMENSIONS = ("channel", "campaign", "source", "team", "rep", "industry", "country")


class DimensionFields(models.Model):
    """The lead's dimensions as of the last refresh: '' or 0 where the lead has none."""

    channel = models.CharField(_("channel"), max_length=40, default="")
    campaign = models.BigIntegerField(_("campaign"), default=0)
    source = models.CharField(_("source"), max_length=20, default="")
    team = models.BigIntegerField(_("team"), default=0)
    rep = models.BigIntegerField(_("rep"), default=0)
    industry = models.CharField(_("industry"), max_length=20, default="")
    country = models.CharField(_("country"), max_length=2, default="")

    class Meta:
        abstract = True


class RollupState(models.Model):
    """How far a family of rollups has read the record (watermarks) and when it was last refreshed or rebuilt."""

    name = models.CharField(_("name"), max_length=40, primary_key=True)
    watermarks = models.JSONField(_("watermarks"), default=dict, blank=True)
    refreshed_at = models.DateTimeField(_("refreshed"), null=True, blank=True)
    rebuilt_at = models.DateTimeField(_("rebuilt"), null=True, blank=True)
    last_refresh_s = models.FloatField(_("last refresh (s)"), default=0)
    last_rebuild_s = models.FloatField(_("last rebuild (s)"), default=0)

    class Meta:
        verbose_name = _("rollup state")
        verbose_name_plural = _("rollup states")

    def __str__(self):
        return self.name


class StaleLead(models.Model):
    """A lead whose rollup rows must be recomputed; the refresh empties this table in chunks."""

    lead_id = models.BigIntegerField(_("lead"), primary_key=True)
    marked_at = models.DateTimeField(_("marked"), db_index=True)

    class Meta:
        verbose_name = _("stale lead")
        verbose_name_plural = _("stale leads")

    def __str__(self):
        return f"#{self.lead_id}"


class LeadFact(DimensionFields):
    """One lead: when it was created, its dimensions, where it is now and which funnel stages it ever reached."""

    lead_id = models.BigIntegerField(_("lead"), primary_key=True)
    created_at = models.DateTimeField(_("created"))
    created_on = models.DateField(_("created on"))
    stage = models.CharField(_("stage"), max_length=40)
    band = models.CharField(_("traffic light"), max_length=6)
    temperature = models.CharField(_("temperature"), max_length=4)
    reached_mql = models.BooleanField(_("reached MQL"), default=False)
    reached_sal = models.BooleanField(_("reached SAL"), default=False)
    reached_sql = models.BooleanField(_("reached SQL"), default=False)
    reached_won = models.BooleanField(_("won"), default=False)

    class Meta:
        verbose_name = _("lead fact")
        verbose_name_plural = _("lead facts")
        indexes = [
            models.Index(fields=["created_on"], name="insights_leadfact_created_idx"),
            # Two or more filters read the per-lead rows: one index per dimension, combined by the planner
            # (bitmap AND); the interval tables find their leads here.
            *(models.Index(fields=[name], name=f"insights_leadfact_{name}_idx") for name in DIMENSIONS),
        ]

    def __str__(self):
        return f"#{self.lead_id} {self.stage}"


class StageInterval(DimensionFields):
    """One visit of a lead to a lifecycle stage: entered, left (empty while it stays) and how long it stayed."""

    lead_id = models.BigIntegerField(_("lead"))
    stage = models.CharField(_("stage"), max_length=40)
    entered_at = models.DateTimeField(_("entered"))
    entered_on = models.DateField(_("entered on"))
    left_at = models.DateTimeField(_("left"), null=True, blank=True)
    left_on = models.DateField(_("left on"), null=True, blank=True)
    seconds = models.FloatField(_("seconds in stage"), null=True, blank=True)

    class Meta:
        verbose_name = _("stage interval")
        verbose_name_plural = _("stage intervals")
        indexes = [
            # The lead's visits with what the velocity panel reads: two or more filters find their leads in the
            # lead facts and read the visits from this index alone (the rebuild vacuums, so no heap visits).
            models.Index(
                fields=["lead_id", "left_on", "stage", "seconds"], name="insights_interval_visits_idx"
            ),
            models.Index(fields=["stage", "entered_on"], name="insights_interval_entry_idx"),
            models.Index(fields=["stage", "left_on"], name="insights_interval_left_idx"),
        ]

    def __str__(self):
        return f"#{self.lead_id} {self.stage} {self.entered_at:%Y-%m-%d}"


class BandInterval(DimensionFields):
    """One episode of a lead's traffic light and temperature, from the score ledger (open while it lasts)."""

    lead_id = models.BigIntegerField(_("lead"))
    band = models.CharField(_("traffic light"), max_length=6)
    temperature = models.CharField(_("temperature"), max_length=4)
    started_on = models.DateField(_("from"))
    ended_on = models.DateField(_("until"), null=True, blank=True)

    class Meta:
        verbose_name = _("traffic-light episode")
        verbose_name_plural = _("traffic-light episodes")
        indexes = [models.Index(fields=["lead_id"], name="insights_band_lead_idx")]

    def __str__(self):
        return f"#{self.lead_id} {self.band}/{self.temperature} {self.started_on}"


class HandoverFact(models.Model):
    """One handover: team and rep, the lead's other dimensions, the decision, the SLA and the first sales contact."""

    class Sla(models.TextChoices):
        MET = "met", _("Met")
        BREACHED = "breached", _("Breached")
        PENDING = "pending", _("Pending")

    handover_id = models.BigIntegerField(_("handover"), primary_key=True)
    lead_id = models.BigIntegerField(_("lead"))
    created_at = models.DateTimeField(_("handed over"))
    created_on = models.DateField(_("handed over on"))
    channel = models.CharField(_("channel"), max_length=40, default="")
    campaign = models.BigIntegerField(_("campaign"), default=0)
    source = models.CharField(_("source"), max_length=20, default="")
    team = models.BigIntegerField(_("team"), default=0)
    rep = models.BigIntegerField(_("rep"), default=0)
    industry = models.CharField(_("industry"), max_length=20, default="")
    country = models.CharField(_("country"), max_length=2, default="")
    status = models.CharField(_("status"), max_length=10)
    reject_reason = models.CharField(_("reason"), max_length=30, default="")
    decision_s = models.FloatField(_("seconds to decision"), null=True, blank=True)
    sla = models.CharField(_("SLA"), max_length=8, choices=Sla.choices)
    first_contact_s = models.FloatField(_("seconds to first sales contact"), null=True, blank=True)
    reached_sql = models.BooleanField(_("became SQL"), default=False)
    won = models.BooleanField(_("won"), default=False)

    class Meta:
        verbose_name = _("handover fact")
        verbose_name_plural = _("handover facts")
        indexes = [
            models.Index(fields=["created_on"], name="insights_handover_created_idx"),
            models.Index(fields=["lead_id"], name="insights_handover_lead_idx"),
            # Two or more filters read the facts: one index per dimension, combined by the planner (bitmap AND).
            *(models.Index(fields=[name], name=f"insights_handover_{name}_idx") for name in DIMENSIONS),
        ]

    def __str__(self):
        return f"handover #{self.handover_id} {self.status}"


class FunnelDaily(models.Model):
    """Leads per day and stage, for all leads (dim '') and per value of one dimension.

    flow: entries into the stage that day; reached: leads created that day that ever reached the stage;
    now: leads created that day that are in the stage now; rep: leads created that day that ever reached the
    stage, per owner, with stage '<stage>:<rep id>' (SAL, SQL and won only: the conversion per rep).
    """

    class Kind(models.TextChoices):
        FLOW = "flow", _("Flow")
        REACHED = "reached", _("Reached")
        NOW = "now", _("Now")
        REP = "rep", _("Reached, per rep")

    kind = models.CharField(_("kind"), max_length=8, choices=Kind.choices)
    dim = models.CharField(_("dimension"), max_length=10, blank=True)
    value = models.CharField(_("value"), max_length=40, blank=True)
    day = models.DateField(_("day"))
    stage = models.CharField(_("stage"), max_length=40)
    n = models.IntegerField(_("leads"))

    class Meta:
        verbose_name = _("funnel day")
        verbose_name_plural = _("funnel days")
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "dim", "value", "day", "stage"], name="insights_funnel_key"
            )
        ]

    def __str__(self):
        return f"{self.kind} {self.dim}={self.value} {self.day} {self.stage}: {self.n}"


class LightDaily(models.Model):
    """Net change per day of the leads in each traffic light and temperature, for all leads and per dimension
    value: the distribution at the end of a day is the sum of the changes up to it."""

    dim = models.CharField(_("dimension"), max_length=10, blank=True)
    value = models.CharField(_("value"), max_length=40, blank=True)
    day = models.DateField(_("day"))
    band = models.CharField(_("traffic light"), max_length=6)
    temperature = models.CharField(_("temperature"), max_length=4)
    delta = models.IntegerField(_("change"))

    class Meta:
        verbose_name = _("traffic-light day")
        verbose_name_plural = _("traffic-light days")
        constraints = [
            models.UniqueConstraint(
                fields=["dim", "value", "day", "band", "temperature"], name="insights_light_key"
            )
        ]

    def __str__(self):
        return f"{self.dim}={self.value} {self.day} {self.band}/{self.temperature}: {self.delta:+d}"


class VelocityMonthly(models.Model):
    """Stage visits that ended in a month, counted per stage and duration class, for all leads and per dimension
    value: medians and percentiles come from these classes (each 5 % wide, so within 5 % of the exact value)."""

    dim = models.CharField(_("dimension"), max_length=10, blank=True)
    value = models.CharField(_("value"), max_length=40, blank=True)
    month = models.DateField(_("month"))
    stage = models.CharField(_("stage"), max_length=40)
    bucket = models.SmallIntegerField(_("duration class"))
    n = models.IntegerField(_("visits"))

    class Meta:
        verbose_name = _("velocity month")
        verbose_name_plural = _("velocity months")
        constraints = [
            models.UniqueConstraint(
                fields=["dim", "value", "month", "stage", "bucket"], name="insights_velocity_key"
            )
        ]

    def __str__(self):
        return f"{self.dim}={self.value} {self.month:%Y-%m} {self.stage} #{self.bucket}: {self.n}"


class HandoverDaily(models.Model):
    """Handovers per day counted by what the SLA, quality and velocity panels group them by, for all handovers
    (dim '') and per value of one dimension (the handover facts' columns: team and rep are the handover's).

    kind names the grouping and what the keys hold: sla (team, rep, SLA state), source and campaign (the value,
    status, reject reason), accept (duration class of accepted decisions), contact (duration class of the first
    contact or -1, its contact bucket, whether the lead became an SQL). Unused keys are ''.
    """

    kind = models.CharField(_("kind"), max_length=8)
    dim = models.CharField(_("dimension"), max_length=10, blank=True)
    value = models.CharField(_("value"), max_length=40, blank=True)
    day = models.DateField(_("day"))
    k1 = models.CharField(_("key 1"), max_length=40, blank=True)
    k2 = models.CharField(_("key 2"), max_length=40, blank=True)
    k3 = models.CharField(_("key 3"), max_length=40, blank=True)
    n = models.IntegerField(_("handovers"))

    class Meta:
        verbose_name = _("handover day")
        verbose_name_plural = _("handover days")
        constraints = [
            models.UniqueConstraint(
                fields=["kind", "dim", "value", "day", "k1", "k2", "k3"], name="insights_handoverday_key"
            )
        ]

    def __str__(self):
        return f"{self.kind} {self.dim}={self.value} {self.day} {self.k1}/{self.k2}/{self.k3}: {self.n}"


# The attribution credits live in their own module (owned by the attribution panels); Django finds them here.
from .models_attribution import CreditDaily, CreditFact, CreditMonthly  # noqa: E402, F401
