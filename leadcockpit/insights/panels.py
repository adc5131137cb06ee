"""The cockpit's panels: each reads the rollups for a Criteria and returns figures (an SVG chart and the table of
its numbers). A panel reads the cubes when no dimension or one is chosen, else the per-lead rollups; both give the
same numbers, which equal direct SQL over the record (tests hold all three equal).

PANELS names them in page order; the views, the CSV export and the benchmark go through it.
"""

import bisect
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from django.db.models import Case, Count, F, IntegerField, Q, Sum, Value, When
from django.db.models.functions import Cast, Floor, Greatest, Ln
from django.utils.formats import number_format
from django.utils.translation import gettext_lazy as _

from leadcockpit.accounts.models import Team, User
from leadcockpit.handover.models import Handover
from leadcockpit.leads.models import Campaign, Lead, LifecycleStage
from leadcockpit.lib import svgchart

from . import rollups
from .filters import FUNNEL_FLOW, next_period, period_label
from .models import (
    BandInterval,
    FunnelDaily,
    HandoverDaily,
    HandoverFact,
    LeadFact,
    LightDaily,
    StageInterval,
    VelocityMonthly,
)

FUNNEL_STAGES = [
    ("mgl", _("MGL")),
    ("mql", _("MQL")),
    ("sal", _("SAL")),
    ("sql", _("SQL")),
    ("won", _("Won")),
]
BANDS = [("red", _("Red")), ("yellow", _("Yellow")), ("green", _("Green"))]
TEMPERATURES = [("cold", _("Cold")), ("warm", _("Warm")), ("hot", _("Hot"))]
# Where a cohort is now: the phases of the lifecycle, with won and lost apart.
NOW_GROUPS = [
    ("marketing", _("Marketing")),
    ("handover", _("Handover")),
    ("sales", _("Sales")),
    ("won", _("Won")),
    ("lost", _("Lost")),
    ("customer", _("Customer")),
]
# Stages a lead leaves in the normal course; time spent in the closed and customer stages is not a delay.
VELOCITY_PHASES = ("marketing", "handover", "sales")
# First sales contact after a handover, in hours: the buckets the speed-to-lead table compares.
CONTACT_BUCKETS = [
    ("1h", _("Within an hour"), 0, 3600),
    ("24h", _("Within a day"), 3600, 86400),
    ("later", _("Later"), 86400, None),
]
TOP_CAMPAIGNS = 12


# -- figures and tables -----------------------------------------------------------------------------------------

TEXT, COUNT_, RATE, DURATION = "text", "count", "rate", "duration"


@dataclass
class Table:
    """A table of numbers: the accessible twin of a chart and the content of its CSV download."""

    name: str
    title: str
    columns: list  # [(label, kind)]
    rows: list = field(default_factory=list)
    footer: list = None  # a totals row, or None

    def display(self, row):
        return [
            (format_cell(value, kind), kind) for value, (_label, kind) in zip(row, self.columns, strict=True)
        ]

    @property
    def display_rows(self):
        return [self.display(row) for row in self.rows]

    @property
    def display_footer(self):
        return self.display(self.footer) if self.footer else None

    def csv_header(self):
        return [
            f"{label} (h)" if kind == DURATION else f"{label} (%)" if kind == RATE else str(label)
            for label, kind in self.columns
        ]

    def csv_rows(self):
        for row in [*self.rows, *([self.footer] if self.footer else [])]:
            yield [csv_value(value, kind) for value, (_label, kind) in zip(row, self.columns, strict=True)]


@dataclass
class Figure:
    chart: str
    table: Table


@dataclass
class Panel:
    name: str
    title: str
    figures: list
    note: str = ""

    @property
    def tables(self):
        return [figure.table for figure in self.figures]


def number(value, decimals=0):
    """A number in the reader's language (1,234.5 in English, 1.234,5 in German)."""
    return number_format(value, decimal_pos=decimals, use_l10n=True, force_grouping=True)


def format_cell(value, kind):
    if value is None:
        return "–"
    if kind == COUNT_:
        return number(value)
    if kind == RATE:
        return f"{number(value * 100, 1)} %"
    if kind == DURATION:
        return format_duration(value)
    return str(value)


def format_duration(seconds):
    if seconds is None:
        return "–"
    if seconds < 3600:
        return f"{number(seconds / 60)} min"
    if seconds < 2 * 86400:
        return f"{number(seconds / 3600, 1)} h"
    return _("%(days)s d") % {"days": number(seconds / 86400, 1)}


def csv_value(value, kind):
    if value is None:
        return ""
    if kind == RATE:
        return f"{value * 100:.2f}"
    if kind == DURATION:
        return f"{value / 3600:.3f}"
    return value


def rate(part, whole):
    return part / whole if whole else None


def percent_format(value):
    return f"{value * 100:.0f} %"


def hours_format(value):
    return format_duration(value * 3600)


# -- shared reads -------------------------------------------------------------------------------------------------


class Buckets:
    """The criteria's periods, and which one a day falls into."""

    def __init__(self, criteria):
        self.periods = criteria.buckets
        self.firsts = [first for first, _last in self.periods]
        self.labels = [period_label(first, criteria.period) for first in self.firsts]

    def __len__(self):
        return len(self.periods)

    def index(self, day):
        return bisect.bisect_right(self.firsts, day) - 1


def stage_names():
    return {stage.code: stage.name for stage in LifecycleStage.objects.all()}


def in_range(criteria, column):
    return {f"{column}__gte": criteria.start, f"{column}__lte": criteria.end}


def matching_leads(criteria):
    """The leads the chosen dimensions select, as a subquery: the lead facts have an index per dimension, so two
    or more filters narrow them quickly, and the interval tables join on their lead index."""
    return LeadFact.objects.filter(criteria.dimension_q()).values("lead_id")


def duration_class_expression(field):
    """rollups.duration_class() in the ORM: floor(ln(max(s, 1)) / ln(1.05))."""
    return Cast(Floor(Ln(Greatest(F(field), Value(1.0))) / Ln(Value(rollups.DURATION_RATIO))), IntegerField())


def class_percentiles(counts, quantiles=(0.5, 0.75)):
    """(count, *percentiles) from {duration class: visits}: the rank's class, and within it the log-linear
    position of the rank (so within one class, 5 %, of the exact percentile_cont)."""
    total = sum(counts.values())
    if not total:
        return (0, *(None for _q in quantiles))
    ordered = sorted(counts.items())
    out = []
    for q in quantiles:
        rank = q * (total - 1)
        seen = 0
        for bucket, n in ordered:
            if rank < seen + n:
                share = (rank - seen + 0.5) / n
                out.append(rollups.DURATION_RATIO ** (bucket + share))
                break
            seen += n
    return (total, *out)


def duration_classes(queryset, field, group=None):
    """{duration class: count} counted on the fly from per-row durations, or {group value: {…}} with `group`."""
    names = [group, "bucket"] if group else ["bucket"]
    rows = (
        queryset.filter(**{f"{field}__isnull": False})
        .annotate(bucket=duration_class_expression(field))
        .order_by()
        .values(*names)
        .annotate(n=Count("*"))
        .values_list(*names, "n")
    )
    if not group:
        return dict(rows)
    out = defaultdict(dict)
    for key, bucket, n in rows:
        out[key][bucket] = n
    return out


def funnel_rows(criteria, kind, stages):
    """(day, stage, n) of the funnel cube, or the same counted from the per-lead rollups."""
    key = criteria.cube_key
    if key is not None:
        return FunnelDaily.objects.filter(
            kind=kind, dim=key[0], value=key[1], stage__in=stages, **in_range(criteria, "day")
        ).values_list("day", "stage", "n")
    if kind == FunnelDaily.Kind.FLOW:
        return (
            StageInterval.objects.filter(
                lead_id__in=matching_leads(criteria), stage__in=stages, **in_range(criteria, "entered_on")
            )
            .values("entered_on", "stage")
            .annotate(n=Count("*"))
            .values_list("entered_on", "stage", "n")
        )
    facts = LeadFact.objects.filter(criteria.dimension_q(), **in_range(criteria, "created_on"))
    if kind == FunnelDaily.Kind.NOW:
        return (
            facts.values("created_on", "stage").annotate(n=Count("*")).values_list("created_on", "stage", "n")
        )
    counts = facts.values("created_on").annotate(
        mgl=Count("*"), **{stage: Count("pk", filter=Q(**{f"reached_{stage}": True})) for stage in stages[1:]}
    )
    return [(row["created_on"], stage, row[stage]) for row in counts for stage in stages if row[stage]]


# -- 1. funnel ----------------------------------------------------------------------------------------------------


def funnel(criteria):
    buckets = Buckets(criteria)
    codes = [code for code, _label in FUNNEL_STAGES]
    cohort = criteria.funnel != FUNNEL_FLOW
    kind = FunnelDaily.Kind.REACHED if cohort else FunnelDaily.Kind.FLOW
    counts = [dict.fromkeys(codes, 0) for _ in range(len(buckets))]
    for day, stage, n in funnel_rows(criteria, kind, codes):
        counts[buckets.index(day)][stage] += n
    steps = list(zip(FUNNEL_STAGES, FUNNEL_STAGES[1:], strict=False))
    columns = [(_("Period"), TEXT)] + [(label, COUNT_) for _code, label in FUNNEL_STAGES]
    columns += [(f"{a_label} → {b_label}", RATE) for (_a, a_label), (_b, b_label) in steps]

    def row_of(label, c):
        return [label, *(c[code] for code in codes), *(rate(c[b], c[a]) for (a, _al), (b, _bl) in steps)]

    totals = {code: sum(c[code] for c in counts) for code in codes}
    title = (
        _("Leads created per period and how far they got (cohort)")
        if cohort
        else _("Entries into each stage per period (flow)")
    )
    table = Table(
        "funnel",
        title,
        columns,
        [row_of(label, c) for label, c in zip(buckets.labels, counts, strict=True)],
        row_of(_("Total"), totals),
    )
    overview = Table(
        "funnel_total",
        _("Funnel over the whole range"),
        [(_("Stage"), TEXT), (_("Leads"), COUNT_), (_("Of the stage before"), RATE), (_("Of MGL"), RATE)],
        [
            [
                label,
                totals[code],
                rate(totals[code], totals[codes[i - 1]]) if i else None,
                rate(totals[code], totals["mgl"]),
            ]
            for i, (code, label) in enumerate(FUNNEL_STAGES)
        ],
    )
    figures = [
        Figure(
            svgchart.hbar_chart(
                [label for _code, label in FUNNEL_STAGES],
                [(_("Leads"), [totals[code] for code in codes], None)],
                label=str(overview.title),
            ),
            overview,
        ),
        Figure(
            svgchart.bar_chart(
                buckets.labels,
                [(label, [c[code] for c in counts], None) for code, label in FUNNEL_STAGES],
                label=str(title),
            ),
            table,
        ),
    ]
    if cohort:
        figures.append(cohort_now(criteria, buckets))
    return Panel("funnel", _("Funnel"), figures)


def cohort_now(criteria, buckets):
    """Where the leads created in each period are now, by phase of the lifecycle."""
    phases = dict(LifecycleStage.objects.values_list("code", "phase"))
    group_of = {
        code: ("won" if code == "won" else "lost" if code == "lost" else phase)
        for code, phase in phases.items()
    }
    keys = [key for key, _label in NOW_GROUPS]
    counts = [dict.fromkeys(keys, 0) for _ in range(len(buckets))]
    for day, stage, n in funnel_rows(criteria, FunnelDaily.Kind.NOW, list(phases)):
        counts[buckets.index(day)][group_of.get(stage, "marketing")] += n
    table = Table(
        "funnel_now",
        _("Where each period's leads are now"),
        [(_("Period"), TEXT)] + [(label, COUNT_) for _key, label in NOW_GROUPS],
        [[label, *(c[key] for key in keys)] for label, c in zip(buckets.labels, counts, strict=True)],
    )
    chart = svgchart.stacked_bar_chart(
        buckets.labels,
        [(label, [c[key] for c in counts], None) for key, label in NOW_GROUPS],
        label=str(table.title),
    )
    return Figure(chart, table)


# -- 2. traffic light -----------------------------------------------------------------------------------------------


def light_deltas(criteria):
    """(day, band, temperature, change) rows whose running sum is the distribution at the end of each day."""
    key = criteria.cube_key
    if key is not None:
        return LightDaily.objects.filter(dim=key[0], value=key[1]).values_list(
            "day", "band", "temperature", "delta"
        )
    episodes = BandInterval.objects.filter(lead_id__in=matching_leads(criteria))
    starts = episodes.values("started_on", "band", "temperature").annotate(n=Count("*"))
    ends = (
        episodes.filter(ended_on__isnull=False)
        .values("ended_on", "band", "temperature")
        .annotate(n=Count("*"))
    )
    rows = [(r["started_on"], r["band"], r["temperature"], r["n"]) for r in starts]
    rows += [(r["ended_on"], r["band"], r["temperature"], -r["n"]) for r in ends]
    return rows


def lights(criteria):
    buckets = Buckets(criteria)
    rows = sorted(light_deltas(criteria))
    band_codes = [code for code, _l in BANDS]
    temp_codes = [code for code, _l in TEMPERATURES]
    now = {(b, t): 0 for b in band_codes for t in temp_codes}
    series = [dict.fromkeys(band_codes + temp_codes, 0) for _ in range(len(buckets))]
    running = dict.fromkeys(band_codes + temp_codes, 0)
    ends = [last for _first, last in buckets.periods]
    position = 0
    for day, band, temperature, delta in rows:
        while position < len(ends) and day > ends[position]:
            series[position] = dict(running)
            position += 1
        running[band] += delta
        running[temperature] += delta
        now[(band, temperature)] += delta
    while position < len(ends):
        series[position] = dict(running)
        position += 1
    now_table = Table(
        "lights_now",
        _("Traffic light and temperature now"),
        [(_("Traffic light"), TEXT)]
        + [(label, COUNT_) for _c, label in TEMPERATURES]
        + [(_("Total"), COUNT_)],
        [
            [label, *(now[(b, t)] for t in temp_codes), sum(now[(b, t)] for t in temp_codes)]
            for b, label in BANDS
        ],
        [_("Total"), *(sum(now[(b, t)] for b in band_codes) for t in temp_codes), sum(now.values())],
    )
    now_chart = svgchart.bar_chart(
        [label for _c, label in BANDS],
        [(label, [now[(b, t)] for b in band_codes], f"temp-{t}") for t, label in TEMPERATURES],
        label=str(now_table.title),
    )
    time_table = Table(
        "lights_over_time",
        _("Traffic light and temperature at the end of each period"),
        [(_("Period"), TEXT)]
        + [(label, COUNT_) for _c, label in BANDS]
        + [(label, COUNT_) for _c, label in TEMPERATURES],
        [
            [label, *(s[c] for c in band_codes + temp_codes)]
            for label, s in zip(buckets.labels, series, strict=True)
        ],
    )
    time_chart = svgchart.stacked_bar_chart(
        buckets.labels,
        [(label, [s[code] for s in series], code) for code, label in BANDS],
        label=str(_("Traffic light at the end of each period")),
    )
    temp_chart = svgchart.line_chart(
        buckets.labels,
        [(label, [s[code] for s in series], f"temp-{code}") for code, label in TEMPERATURES],
        label=str(_("Temperature at the end of each period")),
    )
    return Panel(
        "lights",
        _("Traffic light and temperature"),
        [Figure(now_chart, now_table), Figure(time_chart + temp_chart, time_table)],
        note=_("Over time from the score ledger; leads count from their creation."),
    )


# -- 3. velocity --------------------------------------------------------------------------------------------------


def handover_facts(criteria):
    return HandoverFact.objects.filter(criteria.dimension_q(), **in_range(criteria, "created_on"))


def handover_cube(criteria, kind):
    """(k1, k2, k3, n) of the handover cube summed over the range, for no dimension or one; None for two or more
    (then the handover facts answer)."""
    key = criteria.cube_key
    if key is None:
        return None
    return (
        HandoverDaily.objects.filter(kind=kind, dim=key[0], value=key[1], **in_range(criteria, "day"))
        .values("k1", "k2", "k3")
        .annotate(total=Sum("n"))
        .values_list("k1", "k2", "k3", "total")
    )


def velocity(criteria):
    stages = list(LifecycleStage.objects.filter(phase__in=VELOCITY_PHASES).order_by("position", "code"))
    codes = [s.code for s in stages]
    first_month, last_month = criteria.start.replace(day=1), criteria.end.replace(day=1)
    key = criteria.cube_key
    if key is not None:
        classes = defaultdict(dict)
        rows = (
            VelocityMonthly.objects.filter(
                dim=key[0], value=key[1], stage__in=codes, month__gte=first_month, month__lte=last_month
            )
            .values("stage", "bucket")
            .annotate(n=Sum("n"))
            .values_list("stage", "bucket", "n")
        )
        for stage, bucket, n in rows:
            classes[stage][bucket] = n
    else:
        intervals = StageInterval.objects.filter(
            lead_id__in=matching_leads(criteria),
            stage__in=codes,
            left_on__gte=first_month,
            left_on__lt=next_period(last_month, "month"),
        )
        classes = duration_classes(intervals, "seconds", group="stage")
    by_stage = {code: class_percentiles(counts) for code, counts in classes.items()}
    stage_rows = [[s.name, *by_stage[s.code]] for s in stages if s.code in by_stage]
    stage_table = Table(
        "velocity_stages",
        _("Time in each stage (visits that ended in the months of the range; within 5 %)"),
        [
            (_("Stage"), TEXT),
            (_("Visits"), COUNT_),
            (_("Median"), DURATION),
            (_("75th percentile"), DURATION),
        ],
        stage_rows,
    )
    stage_chart = svgchart.hbar_chart(
        [row[0] for row in stage_rows],
        [
            (_("Median"), [row[2] / 3600 for row in stage_rows], None),
            (_("75th percentile"), [row[3] / 3600 for row in stage_rows], None),
        ],
        label=str(stage_table.title),
        value_format=hours_format,
    )

    facts = handover_facts(criteria)
    # Two passes over the handovers: the acceptance times, and the first contacts with what became of the lead.
    contact_classes, contact_counts = Counter(), Counter()
    cube = handover_cube(criteria, "accept")
    if cube is not None:
        accept = Counter()
        for bucket, _k2, _k3, n in cube:
            accept[int(bucket)] += n
        accept = dict(accept)
        rows = [
            (None if int(bucket) < 0 else int(bucket), group, reached == "1", n)
            for bucket, group, reached, n in handover_cube(criteria, "contact")
        ]
    else:
        accept = duration_classes(facts.filter(status="accepted"), "decision_s")
        rows = _contact_rows(facts)
    for contact_class, group, reached_sql, n in rows:
        if contact_class is not None:
            contact_classes[contact_class] += n
        contact_counts[f"{group}_n"] += n
        contact_counts[f"{group}_sql"] += n if reached_sql else 0
    speed_rows = [
        [_("Handover to acceptance"), *class_percentiles(accept)],
        [_("Handover to first sales contact"), *class_percentiles(dict(contact_classes))],
    ]
    speed_table = Table(
        "velocity_handover",
        _("Speed after the handover (handovers made in the range; within 5 %)"),
        [
            (_("Step"), TEXT),
            (_("Handovers"), COUNT_),
            (_("Median"), DURATION),
            (_("75th percentile"), DURATION),
        ],
        speed_rows,
    )
    speed_chart = svgchart.hbar_chart(
        [row[0] for row in speed_rows],
        [
            (_("Median"), [None if row[2] is None else row[2] / 3600 for row in speed_rows], None),
            (_("75th percentile"), [None if row[3] is None else row[3] / 3600 for row in speed_rows], None),
        ],
        label=str(speed_table.title),
        value_format=hours_format,
    )

    contact_rows = [
        [
            label,
            contact_counts[f"{key}_n"],
            contact_counts[f"{key}_sql"],
            rate(contact_counts[f"{key}_sql"], contact_counts[f"{key}_n"]),
        ]
        for key, label, _low, _high in CONTACT_BUCKETS
    ]
    contact_rows.append(
        [
            _("No contact yet"),
            contact_counts["none_n"],
            contact_counts["none_sql"],
            rate(contact_counts["none_sql"], contact_counts["none_n"]),
        ]
    )
    contact_table = Table(
        "velocity_contact",
        _("First sales contact after the handover, and how often the lead became an SQL"),
        [
            (_("First contact"), TEXT),
            (_("Handovers"), COUNT_),
            (_("Became SQL"), COUNT_),
            (_("SQL rate"), RATE),
        ],
        contact_rows,
    )
    contact_chart = svgchart.bar_chart(
        [row[0] for row in contact_rows],
        [(_("SQL rate"), [row[3] for row in contact_rows], None)],
        label=str(contact_table.title),
        value_format=percent_format,
    )
    return Panel(
        "velocity",
        _("Velocity"),
        [
            Figure(stage_chart, stage_table),
            Figure(speed_chart, speed_table),
            Figure(contact_chart, contact_table),
        ],
    )


def _contact_rows(facts):
    """(duration class of the first contact or None, contact bucket, became SQL, n) over the handover facts."""
    return (
        facts.annotate(
            contact_class=Case(
                When(first_contact_s__isnull=False, then=duration_class_expression("first_contact_s")),
                default=None,
                output_field=IntegerField(),
            ),
            contact_group=Case(
                *(When(_contact_q(low, high), then=Value(key)) for key, _label, low, high in CONTACT_BUCKETS),
                default=Value("none"),
            ),
        )
        .order_by()
        .values("contact_class", "contact_group", "reached_sql")
        .annotate(n=Count("*"))
        .values_list("contact_class", "contact_group", "reached_sql", "n")
    )


def _contact_q(low, high):
    """First contact after more than `low` seconds and at most `high` (no upper bound: None)."""
    q = Q(first_contact_s__gt=low) if low else Q(first_contact_s__isnull=False)
    return q & Q(first_contact_s__lte=high) if high is not None else q


# -- 3b. SLA ----------------------------------------------------------------------------------------------------------


def sla(criteria):
    facts = handover_facts(criteria)
    states = [
        (HandoverFact.Sla.MET, _("Met"), "green"),
        (HandoverFact.Sla.BREACHED, _("Breached"), "red"),
        (HandoverFact.Sla.PENDING, _("Pending"), "yellow"),
    ]
    figures = []
    by_group = {"team": defaultdict(Counter), "rep": defaultdict(Counter)}
    cube = handover_cube(criteria, "sla")
    if cube is not None:
        rows = [(int(team), int(rep), state, n) for team, rep, state, n in cube]
    else:
        rows = (
            facts.order_by()
            .values("team", "rep", "sla")
            .annotate(n=Count("*"))
            .values_list("team", "rep", "sla", "n")
        )
    for team, rep, state, n in rows:  # one pass for both tables
        by_group["team"][team][state] += n
        by_group["rep"][rep][state] += n
    for group, title, names in (
        (
            "team",
            _("SLA per team (handovers made in the range)"),
            dict(Team.objects.values_list("pk", "name")),
        ),
        ("rep", _("SLA per rep (handovers made in the range)"), {u.pk: str(u) for u in User.objects.all()}),
    ):
        counts = by_group[group]
        keys = sorted(counts, key=lambda k: (k == 0, str(names.get(k, "")).lower()))
        rows = []
        for key in keys:
            c = counts[key]
            met, breached, pending = (c.get(s, 0) for s, _l, _t in states)
            label = names.get(key) or (_("No team") if group == "team" else _("Fallback queue"))
            rows.append([label, met + breached + pending, met, breached, pending, rate(met, met + breached)])
        table = Table(
            f"sla_{group}",
            title,
            [
                (_("Team") if group == "team" else _("Rep"), TEXT),
                (_("Handovers"), COUNT_),
                (_("Met"), COUNT_),
                (_("Breached"), COUNT_),
                (_("Pending"), COUNT_),
                (_("Compliance"), RATE),
            ],
            rows,
        )
        chart = svgchart.stacked_bar_chart(
            [row[0] for row in rows],
            [(label, [row[2 + i] for row in rows], tone) for i, (_s, label, tone) in enumerate(states)],
            label=str(title),
        )
        figures.append(Figure(chart, table))
    return Panel(
        "sla",
        _("SLA compliance"),
        figures,
        note=_("Decided by the deadline counts as met; compliance = met ÷ (met + breached)."),
    )


# -- 4. lead quality vs sales performance ------------------------------------------------------------------------------


def quality(criteria):
    facts = handover_facts(criteria)
    reasons = list(Handover.RejectReason.choices)
    figures = []
    campaign_ids = set()
    grouped = {"source": [], "campaign": []}
    if criteria.cube_key is not None:
        grouped["source"] = list(handover_cube(criteria, "source"))
        grouped["campaign"] = [
            (int(campaign), status, reason, n)
            for campaign, status, reason, n in handover_cube(criteria, "campaign")
        ]
        campaign_ids = {campaign for campaign, _s, _r, _n in grouped["campaign"] if campaign}
    else:
        for source, campaign, status, reason, n in (
            facts.order_by()
            .values("source", "campaign", "status", "reject_reason")
            .annotate(n=Count("*"))
            .values_list("source", "campaign", "status", "reject_reason", "n")
        ):  # one pass for both tables
            grouped["source"].append((source, status, reason, n))
            grouped["campaign"].append((campaign, status, reason, n))
            if campaign:
                campaign_ids.add(campaign)
    names = {
        "source": dict(Lead.Source.choices),
        "campaign": dict(Campaign.objects.filter(pk__in=campaign_ids).values_list("pk", "name")),
    }
    for group, title in (
        ("source", _("Handover outcomes per source")),
        ("campaign", _("Handover outcomes per campaign")),
    ):
        by_key = {}
        for key, status, reason, n in grouped[group]:
            c = by_key.setdefault(
                key, {"accepted": 0, "rejected": 0, "open": 0, **{r: 0 for r, _l in reasons}}
            )
            c[status] += n
            if status == Handover.Status.REJECTED:
                c[reason or "other"] = c.get(reason or "other", 0) + n
        keys = sorted(  # ties by name: the cube and the facts list them in different orders
            by_key,
            key=lambda k: (
                -sum(by_key[k][s] for s in ("accepted", "rejected", "open")),
                str(names[group].get(k, "")).lower(),
                str(k),
            ),
        )
        rows = []
        for key in keys:
            c = by_key[key]
            label = names[group].get(key) or (_("No campaign") if group == "campaign" else _("Other"))
            total = c["accepted"] + c["rejected"] + c["open"]
            rows.append(
                [
                    label,
                    total,
                    c["accepted"],
                    c["rejected"],
                    c["open"],
                    rate(c["accepted"], c["accepted"] + c["rejected"]),
                ]
                + [c[r] for r, _l in reasons]
            )
        table = Table(
            f"quality_{group}",
            title,
            [
                (_("Source") if group == "source" else _("Campaign"), TEXT),
                (_("Handovers"), COUNT_),
                (_("Accepted"), COUNT_),
                (_("Rejected"), COUNT_),
                (_("Open"), COUNT_),
                (_("Acceptance rate"), RATE),
            ]
            + [(label, COUNT_) for _r, label in reasons],
            rows,
        )
        shown = rows[:TOP_CAMPAIGNS]
        chart = svgchart.stacked_bar_chart(
            [row[0] for row in shown],
            [(_("Accepted"), [row[2] for row in shown], "green")]
            + [(label, [row[6 + i] for row in shown], None) for i, (_r, label) in enumerate(reasons)],
            label=str(title),
        )
        figures.append(Figure(chart, table))
    figures.append(rep_conversion(criteria))
    return Panel(
        "quality",
        _("Lead quality and sales follow-up"),
        figures,
        note=_(
            "Low acceptance with many rejection reasons points at the leads; accepted leads that rarely become SQLs "
            "point at the follow-up."
        ),
    )


def rep_conversion(criteria):
    """SAL → SQL and SQL → won per rep, for the leads created in the range (their owner now)."""
    stages = ["sal", "sql", "won"]
    counts = {}
    key = criteria.cube_key
    if key is not None:  # stage '<stage>:<rep id>'
        cube = FunnelDaily.objects.filter(
            kind=FunnelDaily.Kind.REP, dim=key[0], value=key[1], **in_range(criteria, "day")
        )
        for code, n in cube.values("stage").annotate(n=Sum("n")).values_list("stage", "n"):
            stage, _sep, rep = code.partition(":")
            counts.setdefault(int(rep), {})[stage] = n
    else:
        facts = LeadFact.objects.filter(criteria.dimension_q(), **in_range(criteria, "created_on"))
        rows = facts.values("rep").annotate(
            **{stage: Count("pk", filter=Q(**{f"reached_{stage}": True})) for stage in stages}
        )
        for row in rows:
            counts[row["rep"]] = {stage: row[stage] for stage in stages}
    names = {u.pk: str(u) for u in User.objects.filter(pk__in=[k for k in counts if k])}
    rows = []
    for key in sorted(counts, key=lambda k: str(names.get(k, "~")).lower()):
        c = counts[key]
        sal, sql_, won = (c.get(s, 0) for s in stages)
        if not (sal or sql_ or won):
            continue
        rows.append([names.get(key) or _("No owner"), sal, sql_, won, rate(sql_, sal), rate(won, sql_)])
    table = Table(
        "quality_rep",
        _("Conversion per rep (leads created in the range, by their owner)"),
        [
            (_("Rep"), TEXT),
            (_("SAL"), COUNT_),
            (_("SQL"), COUNT_),
            (_("Won"), COUNT_),
            (_("SAL → SQL"), RATE),
            (_("SQL → won"), RATE),
        ],
        rows,
    )
    chart = svgchart.bar_chart(
        [row[0] for row in rows],
        [(_("SAL → SQL"), [row[4] for row in rows], None), (_("SQL → won"), [row[5] for row in rows], None)],
        label=str(table.title),
        value_format=percent_format,
    )
    return Figure(chart, table)


PANELS = {
    "funnel": funnel,
    "lights": lights,
    "velocity": velocity,
    "sla": sla,
    "quality": quality,
}
