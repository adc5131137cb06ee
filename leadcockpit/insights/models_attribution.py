"""Stored attribution credits: per lead and conversion (CreditFact), and summed per day (CreditDaily).

A conversion is a lead reaching a milestone: created, MQL, SAL, SQL, won. For each, every attribution model's
weights are summed per credited (channel, campaign) and stored in one row with a column per model; a lead's
weights for one conversion and model sum to 1 over its rows. credits.py keeps both tables fresh.
"""

from django.db import models
from django.utils.translation import gettext_lazy as _

from .models import DimensionFields

# The models as stored: "own" credits the lead's own campaign (Lead.campaign, else its first channel) in full;
# the other six are the multi-touch models of attribution.py.
MODEL_COLUMNS = ("own", "first_touch", "last_touch", "linear", "u_shaped", "w_shaped", "time_decay")


class Outcome(models.TextChoices):
    LEAD = "lead", _("Leads")
    MQL = "mql", _("MQLs")
    SAL = "sal", _("SALs")
    SQL = "sql", _("SQLs")
    WON = "won", _("Won deals")


class CreditFact(DimensionFields):
    """One lead's credit for one conversion to one (channel, campaign), under every model."""

    lead_id = models.BigIntegerField(_("lead"))
    outcome = models.CharField(_("conversion"), max_length=4, choices=Outcome.choices)
    converted_on = models.DateField(_("converted on"))
    credit_channel = models.CharField(_("credited channel"), max_length=40, default="")
    credit_campaign = models.BigIntegerField(_("credited campaign"), default=0)
    won = models.BooleanField(_("lead won"), default=False)
    deal_value = models.FloatField(_("deal value if won"), default=0)
    w_own = models.FloatField(default=0)
    w_first_touch = models.FloatField(default=0)
    w_last_touch = models.FloatField(default=0)
    w_linear = models.FloatField(default=0)
    w_u_shaped = models.FloatField(default=0)
    w_w_shaped = models.FloatField(default=0)
    w_time_decay = models.FloatField(default=0)

    class Meta:
        verbose_name = _("attribution credit")
        verbose_name_plural = _("attribution credits")
        indexes = [
            models.Index(fields=["lead_id"], name="insights_credit_lead_idx"),
            models.Index(fields=["outcome", "converted_on"], name="insights_credit_day_idx"),
        ]

    def __str__(self):
        return f"lead {self.lead_id} {self.outcome} {self.converted_on}: {self.credit_channel}/{self.credit_campaign}"


class CreditSums(models.Model):
    """Credits summed per period, outcome and credited (channel, campaign), for all leads (dim '') and per value
    of one lead dimension. c_<model>: summed weights; r_<model>: summed weight × deal value of won leads;
    won: summed own weight of leads that are won (so won / c_own is the share of converted leads won);
    n: how many fact rows the sums hold (a row at 0 is removed)."""

    dim = models.CharField(_("dimension"), max_length=10, blank=True)
    value = models.CharField(_("value"), max_length=40, blank=True)
    day = models.DateField(_("day"))
    outcome = models.CharField(_("conversion"), max_length=4, choices=Outcome.choices)
    channel = models.CharField(_("credited channel"), max_length=40)
    campaign = models.BigIntegerField(_("credited campaign"))
    c_own = models.FloatField(default=0)
    c_first_touch = models.FloatField(default=0)
    c_last_touch = models.FloatField(default=0)
    c_linear = models.FloatField(default=0)
    c_u_shaped = models.FloatField(default=0)
    c_w_shaped = models.FloatField(default=0)
    c_time_decay = models.FloatField(default=0)
    r_own = models.FloatField(default=0)
    r_first_touch = models.FloatField(default=0)
    r_last_touch = models.FloatField(default=0)
    r_linear = models.FloatField(default=0)
    r_u_shaped = models.FloatField(default=0)
    r_w_shaped = models.FloatField(default=0)
    r_time_decay = models.FloatField(default=0)
    won = models.FloatField(_("won"), default=0)
    n = models.IntegerField(_("facts"), default=0)

    class Meta:
        abstract = True


class CreditDaily(CreditSums):
    """Credits per conversion day (see CreditSums)."""

    class Meta:
        verbose_name = _("attribution day")
        verbose_name_plural = _("attribution days")
        constraints = [
            models.UniqueConstraint(
                fields=["dim", "value", "day", "outcome", "channel", "campaign"],
                name="insights_creditday_key",
            )
        ]

    def __str__(self):
        return f"{self.dim}={self.value} {self.day} {self.outcome} {self.channel}/{self.campaign}"


class CreditMonthly(CreditSums):
    """Credits per conversion month, `day` being the month's first (see CreditSums): a range of whole months
    reads these, only its partial months at the edges read days."""

    class Meta:
        verbose_name = _("attribution month")
        verbose_name_plural = _("attribution months")
        constraints = [
            models.UniqueConstraint(
                fields=["dim", "value", "day", "outcome", "channel", "campaign"],
                name="insights_creditmonth_key",
            )
        ]

    def __str__(self):
        return f"{self.dim}={self.value} {self.day:%Y-%m} {self.outcome} {self.channel}/{self.campaign}"
