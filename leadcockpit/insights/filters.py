"""The cockpit's one filter form: period kind, date range and the seven lead dimensions, all allowlisted.

CockpitFilter validates the query string (django-filter builds the form); `criteria` turns a valid form into a
Criteria, which every panel reads. Invalid input leaves the form with errors and the panels with the defaults,
never a 500. The attribution panels use the same Criteria.
"""

from dataclasses import dataclass, field
from datetime import date, timedelta

import django_filters
from django import forms
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django_countries import countries

from leadcockpit.accounts.models import Team, User
from leadcockpit.accounts.roles import Role
from leadcockpit.leads.models import Campaign, Channel, Industry, Lead

from .models import DIMENSIONS, LeadFact

WEEK, MONTH, QUARTER = "week", "month", "quarter"
PERIOD_CHOICES = [(WEEK, _("Week")), (MONTH, _("Month")), (QUARTER, _("Quarter"))]
# How many periods the cockpit shows when no date range is given.
DEFAULT_PERIODS = {WEEK: 13, MONTH: 12, QUARTER: 8}
# A longer range of buckets makes a chart nobody can read (and a query nobody needs).
MAX_BUCKETS = 160
FUNNEL_FLOW, FUNNEL_COHORT = "flow", "cohort"
FUNNEL_VIEW_CHOICES = [
    (FUNNEL_FLOW, _("Flow: what moved in the period")),
    (FUNNEL_COHORT, _("Cohort: leads created in the period, how far they got")),
]
# Dimensions whose values are integer ids (the rest are codes).
INT_DIMENSIONS = {"campaign", "team", "rep"}
EARLIEST = date(2000, 1, 1)


def period_start(day, kind):
    """The first day of the week (Monday), month or quarter holding `day`."""
    if kind == WEEK:
        return day - timedelta(days=day.weekday())
    if kind == MONTH:
        return day.replace(day=1)
    return day.replace(month=(day.month - 1) // 3 * 3 + 1, day=1)


def next_period(start, kind):
    """The first day of the period after the one starting on `start`."""
    if kind == WEEK:
        return start + timedelta(days=7)
    months = 1 if kind == MONTH else 3
    month = start.month - 1 + months
    return date(start.year + month // 12, month % 12 + 1, 1)


def buckets(start, end, kind):
    """The periods from the one holding `start` to the one holding `end`, as (first day, last day) pairs."""
    out = []
    first = period_start(start, kind)
    while first <= end:
        following = next_period(first, kind)
        out.append((first, following - timedelta(days=1)))
        first = following
    return out


def period_label(first, kind):
    """How a period is named on an axis and in a table: 2025-W07, 2025-03, 2025-Q1."""
    if kind == WEEK:
        year, week, _weekday = first.isocalendar()
        return f"{year}-W{week:02d}"
    if kind == MONTH:
        return f"{first:%Y-%m}"
    return f"{first.year}-Q{(first.month - 1) // 3 + 1}"


def rep_choices():
    """The people leads can be owned by: active sales reps and managers."""
    users = (
        User.objects.filter(groups__name__in=[Role.SALES_REP, Role.SALES_MANAGER], is_active=True)
        .distinct()
        .order_by("first_name", "last_name", "username")
    )
    return [(str(user.pk), str(user)) for user in users]


@dataclass(frozen=True)
class Criteria:
    """What a valid filter form asks for: the periods, the date range and the chosen dimension values."""

    period: str = MONTH
    start: date = None
    end: date = None
    dims: dict = field(default_factory=dict)
    funnel: str = FUNNEL_FLOW

    @property
    def buckets(self):
        return buckets(self.start, self.end, self.period)

    @property
    def cube_key(self):
        """(dim, value) of the cube rows that answer these filters: ('', '') for none, the one chosen
        dimension for one; None when two or more are chosen (then the per-lead tables answer)."""
        if not self.dims:
            return "", ""
        if len(self.dims) == 1:
            ((name, value),) = self.dims.items()
            return name, str(value)
        return None

    def dimension_q(self, prefix=""):
        """The chosen dimensions as a Q over rollup rows that carry the dimension columns."""
        return Q(**{prefix + name: value for name, value in self.dims.items()})

    def query_items(self):
        """The filters as query-string pairs (for links that carry the same view)."""
        items = [("period", self.period), ("start", self.start.isoformat()), ("end", self.end.isoformat())]
        items += [(name, str(self.dims[name])) for name in DIMENSIONS if name in self.dims]
        if self.funnel != FUNNEL_FLOW:
            items.append(("funnel", self.funnel))
        return items


def default_range(kind, start, end, today):
    """The range asked for, with the defaults: until today, from DEFAULT_PERIODS periods back."""
    end = end or today
    if start is None:
        start = period_start(end, kind)
        for _i in range(DEFAULT_PERIODS[kind] - 1):
            start = period_start(start - timedelta(days=1), kind)
    return start, end


class CockpitForm(forms.Form):
    """The form django-filter builds for CockpitFilter, with the checks across fields."""

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        today = timezone.localdate()
        if start and end and start > end:
            self.add_error("end", _("The range must end on or after its first day."))
        elif start and start < EARLIEST:
            self.add_error("start", _("Choose a day in this century."))
        elif end and end > today + timedelta(days=366 * 5):
            self.add_error("end", _("Choose a day within the next five years."))
        else:
            kind = data.get("period") or MONTH
            first, last = default_range(kind, start, end, today)
            if len(buckets(first, last, kind)) > MAX_BUCKETS:
                self.add_error(
                    "start",
                    _("That range holds more than %(n)d periods; choose a longer period or a shorter range.")
                    % {"n": MAX_BUCKETS},
                )
        return data


class CockpitFilter(django_filters.FilterSet):
    """The filter form over the cockpit's rollups; field names are the rollup columns (see models.DIMENSIONS)."""

    period = django_filters.ChoiceFilter(choices=PERIOD_CHOICES, label=_("Period"), method="keep")
    start = django_filters.DateFilter(
        label=_("From"), method="keep", widget=forms.DateInput(attrs={"type": "date"})
    )
    end = django_filters.DateFilter(
        label=_("Until"), method="keep", widget=forms.DateInput(attrs={"type": "date"})
    )
    channel = django_filters.ChoiceFilter(label=_("Channel"), method="dimension")
    campaign = django_filters.ChoiceFilter(label=_("Campaign"), method="dimension")
    source = django_filters.ChoiceFilter(choices=Lead.Source.choices, label=_("Source"), method="dimension")
    team = django_filters.ChoiceFilter(label=_("Team"), method="dimension")
    rep = django_filters.ChoiceFilter(label=_("Rep"), method="dimension")
    industry = django_filters.ChoiceFilter(choices=Industry.choices, label=_("Industry"), method="dimension")
    country = django_filters.ChoiceFilter(choices=countries, label=_("Country"), method="dimension")
    funnel = django_filters.ChoiceFilter(choices=FUNNEL_VIEW_CHOICES, label=_("Funnel view"), method="keep")

    def __init__(self, data=None, *args, today=None, **kwargs):
        if data is not None:  # the form shows the defaults the panels use for what the query leaves out
            data = data.copy()
            for name, default in (("period", MONTH), ("funnel", FUNNEL_FLOW)):
                if not data.get(name):
                    data[name] = default
        super().__init__(data, *args, **kwargs)
        self.today = today or timezone.localdate()
        self.filters["channel"].extra["choices"] = [(c.code, c.name) for c in Channel.objects.all()]
        self.filters["campaign"].extra["choices"] = [
            (str(pk), name)
            for pk, name in Campaign.objects.order_by("-starts_on", "name").values_list("pk", "name")
        ]
        self.filters["team"].extra["choices"] = [(str(t.pk), t.name) for t in Team.objects.all()]
        self.filters["rep"].extra["choices"] = rep_choices()
        for name, default in (("period", MONTH), ("funnel", FUNNEL_FLOW)):
            self.filters[name].extra.update(empty_label=None, initial=default)
        for name in DIMENSIONS:
            self.filters[name].extra["empty_label"] = _("All")

    class Meta:
        model = LeadFact
        form = CockpitForm
        fields = []

    def _range(self, kind, start, end):
        return default_range(kind, start, end, self.today)

    @property
    def criteria(self):
        """The Criteria of a valid form; of an invalid one, the defaults (the form shows what was wrong)."""
        if not self.is_bound or not self.form.is_valid():  # unbound: no query string at all
            kind = MONTH
            start, end = self._range(kind, None, None)
            return Criteria(period=kind, start=start, end=end)
        data = self.form.cleaned_data
        kind = data.get("period") or MONTH
        start, end = self._range(kind, data.get("start"), data.get("end"))
        dims = {}
        for name in DIMENSIONS:
            value = data.get(name)
            if value:
                dims[name] = int(value) if name in INT_DIMENSIONS else value
        return Criteria(
            period=kind, start=start, end=end, dims=dims, funnel=data.get("funnel") or FUNNEL_FLOW
        )

    def keep(self, queryset, name, value):
        return queryset

    def dimension(self, queryset, name, value):
        value = int(value) if name in INT_DIMENSIONS else value
        return queryset.filter(**{name: value})
