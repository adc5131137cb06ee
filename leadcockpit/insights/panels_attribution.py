"""The attribution and the cost panels: figures (an SVG chart and the table of its numbers) built from the stored
credits for a Criteria and the panel's own options (which conversion, grouped how, which model for costs).

They reuse the cockpit's Table / Figure / Panel (panels.py) with two more kinds of cell: credit (a fractional
count) and money (EUR).
"""

from dataclasses import dataclass, field

from django import forms
from django.utils.translation import gettext_lazy as _

from leadcockpit.leads.models import Campaign, Channel
from leadcockpit.lib import svgchart

from . import costs
from .attribution import MODELS
from .credits import credit_sums, half_life_days
from .models_attribution import MODEL_COLUMNS, Outcome
from .panels import RATE, TEXT, Figure, Panel, Table, csv_value, format_cell, number

CREDIT, MONEY = "credit", "money"
MODEL_LABELS = {"own": _("Lead's own campaign"), **MODELS}
REVENUE = "revenue"
OUTCOME_CHOICES = [*Outcome.choices, (REVENUE, _("Won revenue"))]
BY_CHANNEL, BY_CAMPAIGN = "channel", "campaign"
TOP = 12  # bars in a chart; the table lists every row
STAGE_LABELS = {
    Outcome.LEAD: _("New lead"),
    Outcome.MQL: _("MQL"),
    Outcome.SAL: _("SAL"),
    Outcome.SQL: _("SQL"),
    Outcome.WON: _("Won"),
}


def money(value):
    return f"{number(value)} €"


class CreditTable(Table):
    """A Table that also formats credits (one decimal) and money (whole euros; cents in the CSV)."""

    def display(self, row):
        out = []
        for value, (_label, kind) in zip(row, self.columns, strict=True):
            if value is None or kind not in (CREDIT, MONEY):
                out.append((format_cell(value, kind), kind))
            else:
                out.append((number(value, 1) if kind == CREDIT else money(value), kind))
        return out

    def csv_header(self):
        return [f"{label} (EUR)" if kind == MONEY else str(label) for label, kind in self.columns]

    def csv_rows(self):
        for row in [*self.rows, *([self.footer] if self.footer else [])]:
            yield [
                round(value, 4 if kind == CREDIT else 2)
                if value is not None and kind in (CREDIT, MONEY)
                else csv_value(value, kind)
                for value, (_label, kind) in zip(row, self.columns, strict=True)
            ]


@dataclass
class CreditPanel(Panel):
    """A Panel with the options form it was built with and sentences to show under its note."""

    options: forms.Form = None
    sentences: list = field(default_factory=list)
    url_name: str = ""


class AttributionOptions(forms.Form):
    outcome = forms.ChoiceField(label=_("Conversion"), choices=OUTCOME_CHOICES, required=False)
    by = forms.ChoiceField(
        label=_("Per"), choices=[(BY_CHANNEL, _("Channel")), (BY_CAMPAIGN, _("Campaign"))], required=False
    )

    def __init__(self, data=None, **kwargs):
        super().__init__(data, prefix="attr", **kwargs)

    def values(self):
        """The chosen options, the defaults for what is missing or invalid (a panel never fails on them)."""
        data = self.cleaned_data if self.is_valid() else {}
        return {"outcome": data.get("outcome") or Outcome.MQL, "by": data.get("by") or BY_CHANNEL}

    def shown(self):
        """The form to show: the options in effect selected."""
        return type(self)(initial=self.values())


class CostOptions(forms.Form):
    model = forms.ChoiceField(
        label=_("Credit campaigns by"), choices=list(MODEL_LABELS.items()), required=False
    )

    def __init__(self, data=None, **kwargs):
        super().__init__(data, prefix="cost", **kwargs)

    def values(self):
        data = self.cleaned_data if self.is_valid() else {}
        return {"model": data.get("model") or costs.DEFAULT_MODEL}

    def shown(self):
        return type(self)(initial=self.values())


def channel_names():
    return {c.code: c.name for c in Channel.objects.all()}


def campaign_names(ids):
    return dict(Campaign.objects.filter(pk__in=[pk for pk in ids if pk]).values_list("pk", "name"))


# -- attribution --------------------------------------------------------------------------------------------------


def attribution(criteria, options=None) -> CreditPanel:
    options = options or AttributionOptions()
    chosen = options.values()
    outcome, by = chosen["outcome"], chosen["by"]
    revenue = outcome == REVENUE
    base = Outcome.WON if revenue else Outcome(outcome)
    grouped = {}
    for (_outcome, channel, campaign), sums in credit_sums(criteria, outcomes=[base]).items():
        key = channel if by == BY_CHANNEL else (channel, campaign)
        values = grouped.setdefault(key, dict.fromkeys(MODEL_COLUMNS, 0.0))
        for m in MODEL_COLUMNS:
            values[m] += sums.revenue[m] if revenue else sums.credit[m]
    channels = channel_names()
    campaigns = campaign_names([key[1] for key in grouped] if by == BY_CAMPAIGN else [])

    def label(key):
        if by == BY_CHANNEL:
            return channels.get(key) or _("No channel")
        channel, campaign = key
        return campaigns.get(campaign) or _("No campaign")

    keys = sorted(grouped, key=lambda k: (-grouped[k]["linear"], -grouped[k]["own"], str(label(k)).lower()))
    kind = MONEY if revenue else CREDIT
    columns = [(_("Channel") if by == BY_CHANNEL else _("Campaign"), TEXT)]
    if by == BY_CAMPAIGN:
        columns.append((_("Channel"), TEXT))
    columns += [(MODEL_LABELS[m], kind) for m in MODEL_COLUMNS]
    rows = []
    for key in keys:
        first = [label(key)] if by == BY_CHANNEL else [label(key), channels.get(key[0]) or _("No channel")]
        rows.append([*first, *(grouped[key][m] for m in MODEL_COLUMNS)])
    totals = [sum(grouped[k][m] for k in keys) for m in MODEL_COLUMNS]
    footer = [_("Total"), *([""] if by == BY_CAMPAIGN else []), *totals] if rows else None
    outcome_label = dict(OUTCOME_CHOICES)[outcome]
    title = (
        _("%(conversion)s credited per channel, by model") % {"conversion": outcome_label}
        if by == BY_CHANNEL
        else _("%(conversion)s credited per campaign, by model") % {"conversion": outcome_label}
    )
    table = CreditTable(f"attribution_{by}", title, columns, rows, footer)
    shown = keys[:TOP]
    series = [(MODEL_LABELS[m], [grouped[k][m] for k in shown], None) for m in MODEL_COLUMNS]
    value_format = money if revenue else svgchart.format_number
    if by == BY_CHANNEL:
        chart = svgchart.bar_chart(
            [label(k) for k in shown], series, label=str(title), value_format=value_format
        )
    else:
        chart = svgchart.hbar_chart(
            [label(k) for k in shown],
            series,
            label=str(title),
            value_format=value_format,
            row=10 * len(series) + 8,
        )
    note = _(
        "Each conversion on a day in the range gives its credit, 1 in every model, to the touchpoints up to it; a "
        "conversion without touchpoints credits the lead's own campaign. U-shaped: 40/20/40; W-shaped: 30 %% each "
        "to the first touch, the lead's creation and the opportunity (SQL), 10 %% to the rest; time decay halves a "
        "touchpoint's weight every %(days)s days of age. Channel and campaign filters pick the credited channel "
        "and campaign; the other filters pick the leads."
    ) % {"days": f"{half_life_days():g}"}
    return CreditPanel(
        "attribution",
        _("Attribution"),
        [Figure(chart, table)],
        note=note,
        options=options.shown(),
        url_name="insights:attribution",
    )


# -- cost and value -------------------------------------------------------------------------------------------------

COST_STAGES = [
    (Outcome.LEAD, _("Cost per lead")),
    (Outcome.MQL, _("Cost per MQL")),
    (Outcome.SAL, _("Cost per SAL")),
    (Outcome.SQL, _("Cost per SQL")),
    (Outcome.WON, _("Cost per won deal")),
]
COUNT_LABELS = [
    (Outcome.LEAD, _("Leads")),
    (Outcome.MQL, _("MQLs")),
    (Outcome.SAL, _("SALs")),
    (Outcome.SQL, _("SQLs")),
    (Outcome.WON, _("Won deals")),
]


def _cost_table(name, title, rows, first_columns, first_values):
    columns = [
        *first_columns,
        (_("Cost in the range"), MONEY),
        *((label, CREDIT) for _s, label in COUNT_LABELS),
        (_("Won revenue"), MONEY),
        *((label, MONEY) for _s, label in COST_STAGES),
    ]
    body = [
        [
            *first_values(row),
            row.cost,
            *(row.counts[stage] for stage, _l in COUNT_LABELS),
            row.revenue,
            *(row.per(stage) for stage, _l in COST_STAGES),
        ]
        for row in rows
    ]
    return CreditTable(name, title, columns, body)


def cost_value(criteria, options=None, *, today=None) -> CreditPanel:
    options = options or CostOptions()
    model = options.values()["model"]
    sums = credit_sums(criteria)  # one read for the three tables
    per_campaign = costs.campaign_costs(criteria, model=model, today=today, sums=sums)
    per_channel = costs.channel_costs(per_campaign)
    channels = channel_names()

    channel_table = _cost_table(
        "costs_channel",
        _("Cost per conversion per channel"),
        per_channel,
        [(_("Channel"), TEXT)],
        lambda row: [channels.get(row.channel) or row.channel],
    )
    channel_chart = svgchart.bar_chart(
        [channels.get(row.channel) or row.channel for row in per_channel],
        [
            (_("Cost per MQL"), [row.per(Outcome.MQL) for row in per_channel], None),
            (_("Cost per SQL"), [row.per(Outcome.SQL) for row in per_channel], None),
        ],
        label=str(channel_table.title),
        value_format=money,
    )
    campaign_table = _cost_table(
        "costs_campaign",
        _("Cost per conversion per campaign"),
        per_campaign,
        [(_("Campaign"), TEXT), (_("Channel"), TEXT)],
        lambda row: [row.name, channels.get(row.channel) or row.channel],
    )
    shown = per_campaign[:TOP]
    campaign_chart = svgchart.hbar_chart(
        [row.name for row in shown],
        [(_("Cost per MQL"), [row.per(Outcome.MQL) for row in shown], None)],
        label=str(_("Cost per MQL of the costliest campaigns")),
        value_format=money,
    )

    own = per_campaign if model == costs.DEFAULT_MODEL else None
    values = costs.stage_values(criteria, today=today, sums=sums, campaigns=own)
    value_table = CreditTable(
        "costs_value",
        _("What a lead at each stage is worth, and what one cost"),
        [
            (_("Stage"), TEXT),
            (_("Reached in the range"), CREDIT),
            (_("Won by now"), CREDIT),
            (_("Win rate"), RATE),
            (_("Average won deal"), MONEY),
            (_("Value of a lead here"), MONEY),
            (_("Cost of a lead here"), MONEY),
        ],
        [
            [STAGE_LABELS[v.stage], v.reached, v.won, v.win_rate, v.average_deal, v.value, v.cost_per_lead]
            for v in values
        ],
    )
    value_chart = svgchart.bar_chart(
        [STAGE_LABELS[v.stage] for v in values],
        [
            (_("Value of a lead here"), [v.value for v in values], "green"),
            (_("Cost of a lead here"), [v.cost_per_lead for v in values], None),
        ],
        label=str(value_table.title),
        value_format=money,
    )
    sentences = [
        (
            _("A new lead may cost up to %(value)s.")
            if v.stage == Outcome.LEAD
            else _("A lead at %(stage)s may cost up to %(value)s.")
        )
        % {"stage": STAGE_LABELS[v.stage], "value": money(v.value)}
        for v in values
        if v.value is not None and v.stage != Outcome.WON
    ]
    note = _(
        "Cost in the range: each campaign's cost spread evenly over the days it runs. Conversions on days in the "
        "range are credited to campaigns by: %(model)s. Value of a lead at a stage = share of the leads that "
        "reached it in the range that are won × the average won deal; leads that reached it recently have had less "
        "time to win."
    ) % {"model": MODEL_LABELS[model]}
    if costs.lead_filters_set(criteria):
        note += " " + str(
            _(
                "Lead filters narrow the conversions, not the cost: cost per conversion here is the whole "
                "campaign cost over the filtered leads."
            )
        )
    return CreditPanel(
        "costs",
        _("Cost and value"),
        [
            Figure(channel_chart, channel_table),
            Figure(campaign_chart, campaign_table),
            Figure(value_chart, value_table),
        ],
        note=note,
        options=options.shown(),
        sentences=sentences,
        url_name="insights:costs",
    )


PANELS = {"attribution": attribution, "costs": cost_value}
OPTIONS = {"attribution": AttributionOptions, "costs": CostOptions}
