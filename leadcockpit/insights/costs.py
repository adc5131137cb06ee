"""Cost and value: what a lead, an MQL, a SAL, an SQL and a won deal cost per campaign and channel, and what a
lead at each stage is worth.

Definitions (the panel says them too):
- Cost in the range: a campaign's cost spread evenly over the days it runs (starts_on to ends_on, or to today
  while it has no end), counted for the days that fall in the range.
- Conversions: leads created, and leads becoming MQL, SAL, SQL and won, on days in the range, credited to
  campaigns by a model — by default the lead's own campaign (Lead.campaign, in full), or any attribution model.
  A channel's figures are those of its campaigns; conversions without a campaign cost nothing and are left out.
- Cost per X = cost in the range ÷ X credited in the range (none when nothing was credited).
- Value of a lead at a stage = P(won | reached the stage) × average won deal value, both over the leads that
  reached the stage (or won) in the range: a lead at that stage may cost up to that much. Recent leads have had
  less time to win, so the estimate is low for ranges ending today.
- Lead filters (source, team, rep, industry, country) narrow the conversions; the cost stays the campaign's whole
  cost, so cost per X under such a filter is what those leads would cost if they were all the campaign bought.
"""

from dataclasses import dataclass, field

from django.utils import timezone

from leadcockpit.leads.models import Campaign

from .credits import credit_sums, lead_dims
from .models_attribution import MODEL_COLUMNS, Outcome

STAGES = (Outcome.LEAD, Outcome.MQL, Outcome.SAL, Outcome.SQL, Outcome.WON)
DEFAULT_MODEL = "own"


def campaign_days(campaign, today):
    """The days a campaign runs: starts_on to ends_on, or to today (at least its first day) while open-ended."""
    end = campaign.ends_on or max(today, campaign.starts_on)
    return campaign.starts_on, end


def cost_in_range(cost, starts_on, ends_on, start, end) -> float:
    """The share of `cost`, spread evenly over starts_on..ends_on, that falls on days in start..end."""
    total = (ends_on - starts_on).days + 1
    overlap = (min(ends_on, end) - max(starts_on, start)).days + 1
    if total <= 0 or overlap <= 0:
        return 0.0
    return float(cost) * overlap / total


@dataclass
class CampaignCost:
    """One campaign's cost in the range and the conversions credited to it."""

    pk: int
    name: str
    channel: str
    cost: float
    counts: dict = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    revenue: float = 0.0

    def per(self, stage):
        """Cost per conversion at `stage`, or None when none was credited (or there is no cost)."""
        credited = self.counts[stage]
        return self.cost / credited if credited > 1e-9 and self.cost > 0 else None


def campaign_costs(criteria, *, model=DEFAULT_MODEL, today=None, sums=None) -> list[CampaignCost]:
    """Every campaign running in the range or credited with a conversion in it (within the channel / campaign
    filters), with its cost in the range and its credited conversions under `model`. sums: credit_sums(criteria),
    when the caller has read them already."""
    if model not in MODEL_COLUMNS:
        raise ValueError(f"unknown model {model!r}")
    today = today or timezone.localdate()
    campaigns = Campaign.objects.filter(starts_on__lte=criteria.end)
    if "channel" in criteria.dims:
        campaigns = campaigns.filter(channel_id=criteria.dims["channel"])
    if "campaign" in criteria.dims:
        campaigns = campaigns.filter(pk=int(criteria.dims["campaign"]))
    rows = {}
    for campaign in campaigns.only("pk", "name", "channel_id", "cost", "starts_on", "ends_on"):
        first, last = campaign_days(campaign, today)
        cost = cost_in_range(campaign.cost, first, last, criteria.start, criteria.end)
        if last >= criteria.start:
            rows[campaign.pk] = CampaignCost(campaign.pk, campaign.name, campaign.channel_id, cost)
    if sums is None:
        sums = credit_sums(criteria)
    # Credited in the range but run outside it (an old campaign's lead converting now): cost 0 in the range.
    missing = {campaign_id for (_o, _ch, campaign_id) in sums if campaign_id and campaign_id not in rows}
    for campaign in Campaign.objects.filter(pk__in=missing).only("pk", "name", "channel_id"):
        rows[campaign.pk] = CampaignCost(campaign.pk, campaign.name, campaign.channel_id, 0.0)
    for (outcome, _channel, campaign_id), s in sums.items():
        row = rows.get(campaign_id)
        if row is None:  # no campaign (costs nothing), or one deleted since
            continue
        row.counts[Outcome(outcome)] += s.credit[model]
        if outcome == Outcome.WON:
            row.revenue += s.revenue[model]
    return sorted(rows.values(), key=lambda r: (-r.cost, r.name.lower()))


def channel_costs(campaigns: list[CampaignCost]) -> list[CampaignCost]:
    """The campaigns summed per channel (pk = 0, name = the channel code)."""
    out = {}
    for row in campaigns:
        total = out.setdefault(row.channel, CampaignCost(0, row.channel, row.channel, 0.0))
        total.cost += row.cost
        total.revenue += row.revenue
        for stage in STAGES:
            total.counts[stage] += row.counts[stage]
    return sorted(out.values(), key=lambda r: (-r.cost, r.name))


@dataclass
class StageValue:
    """What a lead at one stage is worth, and what one cost."""

    stage: str
    reached: float  # leads that reached the stage in the range
    won: float  # of them, won by now
    average_deal: float | None
    cost_per_lead: float | None  # campaign cost in the range ÷ campaign leads reaching the stage

    @property
    def win_rate(self):
        return self.won / self.reached if self.reached > 1e-9 else None

    @property
    def value(self):
        if self.win_rate is None or self.average_deal is None:
            return None
        return self.win_rate * self.average_deal


def stage_values(criteria, *, today=None, sums=None, campaigns=None) -> list[StageValue]:
    """Per stage (lead, MQL, SAL, SQL, won): P(won | reached) × average won deal value, and the cost of a lead
    there (the campaigns' cost ÷ their leads reaching it, each lead credited to its own campaign)."""
    if sums is None:
        sums = credit_sums(criteria)
    reached = dict.fromkeys(STAGES, 0.0)
    won = dict.fromkeys(STAGES, 0.0)
    revenue = 0.0
    for (outcome, _channel, _campaign), s in sums.items():
        reached[Outcome(outcome)] += s.credit["own"]
        won[Outcome(outcome)] += s.won
        if outcome == Outcome.WON:
            revenue += s.revenue["own"]
    average = revenue / reached[Outcome.WON] if reached[Outcome.WON] > 1e-9 else None
    if campaigns is None:
        campaigns = campaign_costs(criteria, today=today, sums=sums)
    cost = sum(c.cost for c in campaigns)
    bought = {stage: sum(c.counts[stage] for c in campaigns) for stage in STAGES}
    return [
        StageValue(
            stage,
            reached[stage],
            won[stage],
            average,
            cost / bought[stage] if bought[stage] > 1e-9 and cost > 0 else None,
        )
        for stage in STAGES
    ]


def lead_filters_set(criteria) -> bool:
    """Whether lead filters narrow the conversions (the cost then stays the campaigns' whole cost)."""
    return bool(lead_dims(criteria))
