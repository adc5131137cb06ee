import re

from django import forms
from django.forms.utils import flatatt
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from leadcockpit.leads.models import Touchpoint

from .actions import THRESHOLD_FIELDS
from .fields import (
    CHOICE,
    DOMAIN_IN,
    IN_LIST,
    IS_EMPTY,
    IS_SET,
    OPERATOR_LABELS,
    RANGE,
    attribute_catalogue,
    field_choices,
    field_label,
    field_spec,
)
from .models import Criterion, ScoringVersion


class ScoreAsOfForm(forms.Form):
    """A past moment to look up a lead's recorded score state at."""

    at = forms.DateTimeField(
        label=_("Score at"),
        widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
        input_formats=["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%d"],
    )

    def clean_at(self):
        at = self.cleaned_data["at"]
        if not 1970 <= at.year <= 2100:
            raise forms.ValidationError(_("Choose a moment between 1970 and 2100."), code="out_of_range")
        return at


# The columns of a criterion row, per kind; the model's clean() names its errors after these fields.
COLUMNS = {
    Criterion.Kind.FIT: ["label", "field", "operator", "value", "points"],
    Criterion.Kind.INTEREST: [
        "label",
        "touchpoint_kinds",
        "url_contains",
        "channel",
        "search_contains",
        "points",
        "cap",
        "lookback_days",
        "half_life_days",
    ],
    Criterion.Kind.KNOCKOUT: ["label", "field", "operator", "value", "reason"],
}
LIST_SPLIT = re.compile(r"[,;\n]")


def show_number(number):
    """50.0 → "50", 0.5 → "0.5": how a stored float reads in an input."""
    return f"{number:g}" if isinstance(number, float) else str(number)


def show_value(value):
    """A criterion's stored value as a person types it: lists comma-separated, ranges "min – max"."""
    if value is None:
        return ""
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    if isinstance(value, dict):
        low, high = value.get("min"), value.get("max")
        return (
            f"{'' if low is None else show_number(low)} – {'' if high is None else show_number(high)}".strip()
        )
    return show_number(value)


class QuickSelectMixin:
    """Options rendered in Python: through the templates, a table of thirty rows of selects costs thousands of
    template renders (one per option) and most of the workbench's time. Flat choices only (no groups)."""

    def render(self, name, value, attrs=None, renderer=None):
        chosen = set(self.format_value(value))
        final = self.build_attrs(self.attrs, attrs)
        if self.allow_multiple_selected:
            final["multiple"] = True
        options = format_html_join(
            "",
            '<option value="{}"{}>{}</option>',
            ((key, SELECTED if str(key) in chosen else "", label) for key, label in self.choices),
        )
        return format_html('<select name="{}"{}>{}</select>', name, flatatt(final), options)


SELECTED = mark_safe(" selected")


class QuickSelect(QuickSelectMixin, forms.Select):
    pass


class QuickSelectMultiple(QuickSelectMixin, forms.SelectMultiple):
    pass


class QuickInputMixin:
    """The same for inputs: what django/forms/widgets/input.html writes, without a template."""

    def render(self, name, value, attrs=None, renderer=None):
        widget = self.get_context(name, value, attrs)["widget"]
        shown = "" if widget["value"] is None else format_html(' value="{}"', widget["value"])
        return format_html(
            '<input type="{}" name="{}"{}{}>', widget["type"], widget["name"], shown, flatatt(widget["attrs"])
        )


class QuickTextInput(QuickInputMixin, forms.TextInput):
    pass


class QuickNumberInput(QuickInputMixin, forms.NumberInput):
    pass


class CriterionForm(forms.ModelForm):
    """One row of the criteria table: the fields of its kind; the model's clean() checks them (allowlist)."""

    field = forms.ChoiceField(label=_("Field"), choices=[("", "—")], widget=QuickSelect)  # see __init__
    operator = forms.ChoiceField(
        label=_("Operator"), choices=[("", "—"), *OPERATOR_LABELS.items()], widget=QuickSelect
    )
    value = forms.CharField(
        label=_("Value"),
        required=False,
        max_length=8000,
        widget=QuickTextInput,
    )
    value_min = forms.CharField(
        label=_("from"),
        required=False,
        max_length=40,
        widget=QuickTextInput(attrs={"placeholder": _("from")}),
    )
    value_max = forms.CharField(
        label=pgettext_lazy("upper bound of a range", "to"),
        required=False,
        max_length=40,
        widget=QuickTextInput(attrs={"placeholder": pgettext_lazy("upper bound of a range", "to")}),
    )
    touchpoint_kinds = forms.MultipleChoiceField(
        label=_("Activity"),
        choices=Touchpoint.Kind.choices,
        required=False,
        widget=QuickSelectMultiple(attrs={"size": 3}),
    )
    channel = forms.TypedChoiceField(label=_("Channel"), empty_value=None, required=False, widget=QuickSelect)
    points = forms.FloatField(
        label=_("Points"), min_value=-100_000, max_value=100_000, widget=QuickNumberInput
    )
    cap = forms.FloatField(label=_("Cap"), required=False, max_value=1_000_000, widget=QuickNumberInput)
    half_life_days = forms.FloatField(
        label=_("Half-life (days)"), required=False, max_value=36_500, widget=QuickNumberInput
    )
    lookback_days = forms.IntegerField(
        label=_("Look-back (days)"), required=False, min_value=1, max_value=36_500, widget=QuickNumberInput
    )

    class Meta:
        model = Criterion
        fields = [
            "label",
            "field",
            "operator",
            "value",
            "touchpoint_kinds",
            "url_contains",
            "search_contains",
            "points",
            "cap",
            "lookback_days",
            "half_life_days",
            "reason",
        ]
        widgets = {
            "label": QuickTextInput,
            "url_contains": QuickTextInput,
            "search_contains": QuickTextInput,
            "reason": QuickSelect,
        }

    def __init__(self, *args, channel_choices=(), read_only=False, catalogue=None, **kwargs):
        """`catalogue`: the imported attributes (fields.attribute_catalogue()); pass it when making many rows, so
        the table reads it once."""
        super().__init__(*args, **kwargs)
        kind = self.instance.kind
        keep = set(COLUMNS[kind]) | ({"value_min", "value_max"} if "value" in COLUMNS[kind] else set())
        for name in list(self.fields):
            if name not in keep:
                del self.fields[name]
        self.catalogue = catalogue
        if "field" in self.fields:
            if self.catalogue is None:
                self.catalogue = attribute_catalogue()
            self.fields["field"].choices = self._field_choices()
        if "channel" in self.fields:
            self.fields["channel"].choices = [("", "—"), *channel_choices]
            self.initial.setdefault("channel", self.instance.channel_id)
        if "reason" in self.fields:
            self.fields["reason"].required = True
        if "value" in self.fields and not self.is_bound:
            value = self.instance.value
            if isinstance(value, dict):
                self.initial["value"] = ""
                self.initial["value_min"] = show_value(value.get("min"))
                self.initial["value_max"] = show_value(value.get("max"))
            else:
                self.initial["value"] = show_value(value)
        if "value" in self.fields and self.value_hint:
            self.fields["value"].widget.attrs["title"] = self.value_hint
        self.form_id = f"{self.prefix or 'criterion'}-form"
        for field in self.fields.values():
            field.widget.attrs["form"] = (
                self.form_id
            )  # the inputs sit in table cells, the <form> in the last one
            field.disabled = read_only

    def _field_choices(self):
        """The allowlist's fields with their labels. A field the stored criterion tests that the list leaves out
        (an attribute entered by sales, or one no import declares any more) stays on offer for this row, so the
        row shows what it tests; Criterion.clean still refuses what the allowlist does not know."""
        choices = [("", "—"), *field_choices(self.catalogue)]
        current = self.instance.field
        if current and current not in {key for key, _label in choices}:
            choices.append((current, field_label(current, self.catalogue)))
        return choices

    @property
    def operator_now(self):
        """The operator the row shows: what was typed, else what is stored."""
        return (self["operator"].value() if "operator" in self.fields else None) or ""

    @property
    def shows_range(self):
        return self.operator_now in (RANGE, "")  # a new row offers both until an operator is chosen

    @property
    def shows_value(self):
        return self.operator_now not in (RANGE, IS_EMPTY, IS_SET)

    @property
    def value_hint(self):
        """The values a choice field accepts, when they are few enough to list."""
        field = field_spec(self["field"].value(), self.catalogue) if "field" in self.fields else None
        if field is None or field.kind != CHOICE or len(field.choices) > 20:
            return ""
        return ", ".join(field.choices)

    @property
    def cells(self):
        return [self[name] for name in COLUMNS[self.instance.kind]]

    def clean_cap(self):
        cap = self.cleaned_data["cap"]
        if cap is not None and cap <= 0:
            raise forms.ValidationError(
                _("A cap must be above zero; leave it empty for none."), code="min_value"
            )
        return cap

    def clean_half_life_days(self):
        days = self.cleaned_data["half_life_days"]
        if days is not None and days <= 0:
            raise forms.ValidationError(
                _("A half-life must be above zero; leave it empty for no decay."), code="min_value"
            )
        return days

    def clean(self):
        data = super().clean()
        if "value" in self.fields:
            # The typed text becomes the stored shape; Criterion.clean then checks it against the allowlist.
            operator = data.get("operator")
            text = data.get("value", "")
            if operator == RANGE:
                data["value"] = {"min": data.get("value_min") or None, "max": data.get("value_max") or None}
            elif operator in (IN_LIST, DOMAIN_IN):
                data["value"] = [item.strip() for item in LIST_SPLIT.split(text or "") if item.strip()]
            elif operator in (IS_EMPTY, IS_SET):
                data["value"] = None
            elif "value" in data:
                data["value"] = text
        if "channel" in self.fields:
            self.instance.channel_id = data.get("channel")
        return data


class ThresholdForm(forms.ModelForm):
    """The version's thresholds and boundaries; ScoringVersion.clean checks their order."""

    class Meta:
        model = ScoringVersion
        fields = ["note", *THRESHOLD_FIELDS]
        widgets = {"note": forms.Textarea(attrs={"rows": 2})}

    def __init__(self, *args, read_only=False, **kwargs):
        super().__init__(*args, **kwargs)
        for name, field in self.fields.items():
            field.disabled = read_only
            if name != "note":
                field.validators.append(_finite_bound)

    groups = [
        (_("MQL"), ["mql_threshold", "min_fit_for_mql"]),
        (_("Traffic light"), ["yellow_from", "green_from"]),
        (_("Temperature"), ["warm_from", "hot_from"]),
        (_("Fit grade"), ["fit_a_from", "fit_b_from", "fit_c_from"]),
        (_("Interest grade"), ["interest_1_from", "interest_2_from", "interest_3_from"]),
    ]

    def grouped(self):
        return [(title, [self[name] for name in names]) for title, names in self.groups]


def _finite_bound(value):
    if value is not None and abs(value) > 1_000_000:
        raise forms.ValidationError(
            _("Choose a value between −1,000,000 and 1,000,000."), code="out_of_range"
        )


class CommentForm(forms.Form):
    text = forms.CharField(
        label=_("Comment"), max_length=4000, widget=forms.Textarea(attrs={"rows": 3, "maxlength": 4000})
    )


class RejectForm(forms.Form):
    text = forms.CharField(
        label=_("Why do you send it back?"),
        max_length=4000,
        widget=forms.Textarea(attrs={"rows": 2, "maxlength": 4000}),
        error_messages={"required": _("Say why you reject the proposal.")},
    )


class DiffForm(forms.Form):
    """Two versions of the same model to compare."""

    a = forms.ModelChoiceField(label=_("Compare"), queryset=ScoringVersion.objects.select_related("model"))
    b = forms.ModelChoiceField(label=_("with"), queryset=ScoringVersion.objects.select_related("model"))

    def clean(self):
        data = super().clean()
        a, b = data.get("a"), data.get("b")
        if a and b and a.model_id != b.model_id:
            raise forms.ValidationError(_("Choose two versions of the same model."), code="other_model")
        return data


# --- evidence: the options of a learning run, and a draft from its suggestion ------------------------------------


class LearningOptionsForm(forms.Form):
    """What a marketer may set for a learning run; every choice list is an allowlist the view builds (fields the
    learner may use, findings of the guard that may be overridden)."""

    holdout = forms.IntegerField(
        label=_("Held out for judging (%)"),
        min_value=10,
        max_value=50,
        initial=30,
        help_text=_("This share of the leads is kept aside: the model never sees it and is judged on it."),
    )
    l2 = forms.FloatField(
        label=_("Regularisation"),
        min_value=0.001,
        max_value=100,
        initial=1.0,
        help_text=_(
            "How strongly effects are pulled towards none: higher with few leads or many fields; 1 suits most."
        ),
    )
    mql_probability = forms.IntegerField(
        label=_("Chance of a lead at the MQL threshold (%)"),
        min_value=5,
        max_value=95,
        initial=50,
        help_text=_(
            "The points are scaled so that a lead scoring the MQL threshold converts about this often."
        ),
    )
    exclude = forms.MultipleChoiceField(
        label=_("Leave out"), required=False, widget=forms.CheckboxSelectMultiple
    )
    include = forms.MultipleChoiceField(
        label=_("Use anyway"), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, exclude_choices=(), include_choices=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["exclude"].choices = list(exclude_choices)
        self.fields["include"].choices = list(include_choices)

    def clean(self):
        data = super().clean()
        both = set(data.get("exclude") or ()) & set(data.get("include") or ())
        if both:
            raise forms.ValidationError(_("A field cannot be left out and used anyway at once."), code="both")
        return data

    def options(self):
        """The options for learning.start_learning."""
        data = self.cleaned_data
        return {
            "holdout": data["holdout"] / 100,
            "l2": data["l2"],
            "mql_probability": data["mql_probability"] / 100,
            "exclude": list(data["exclude"]),
            "include": list(data["include"]),
        }


class DraftFromRunForm(forms.Form):
    knockouts = forms.BooleanField(label=_("With the suggested knock-outs"), required=False, initial=True)
