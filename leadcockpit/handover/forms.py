from datetime import timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from leadcockpit.leads.models import Lead, SalesActivity

from .models import GRADES, Handover, RepAvailability, RoutingRule, TeamRouting


class RejectForm(forms.Form):
    """Why a rep sends a lead back to marketing: a reason code (required) and a note."""

    reason = forms.ChoiceField(
        label=_("Reason"), choices=[("", _("Choose a reason …")), *Handover.RejectReason.choices]
    )
    note = forms.CharField(
        label=_("Note"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )


class ActivityForm(forms.ModelForm):
    """One entry of the sales protocol: what happened, how it went, and when to follow up."""

    class Meta:
        model = SalesActivity
        fields = ["kind", "outcome", "occurred_at", "note", "next_follow_up"]
        widgets = {
            "occurred_at": forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"),
            "next_follow_up": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "note": forms.Textarea(attrs={"rows": 2}),
        }

    def clean_occurred_at(self):
        at = self.cleaned_data["occurred_at"]
        if at > timezone.now() + timedelta(minutes=5):
            raise forms.ValidationError(_("Log what has happened; plan the future with a follow-up date."))
        if at.year < 2000:
            raise forms.ValidationError(_("Choose a date after 2000."))
        return at

    def clean_next_follow_up(self):
        day = self.cleaned_data["next_follow_up"]
        if day is not None and not (2000 <= day.year <= 2100):
            raise forms.ValidationError(_("Choose a date between 2000 and 2100."))
        return day


class StageForm(forms.Form):
    """Move a lead on through the sales stages (only the moves the lifecycle allows this user are offered)."""

    to_stage = forms.ChoiceField(label=_("Move to"))
    reason = forms.CharField(label=_("Reason"), required=False, max_length=500)

    def __init__(self, *args, choices, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["to_stage"].choices = choices


class BantForm(forms.ModelForm):
    """The qualification questionnaire: budget, authority, need and timeframe."""

    class Meta:
        model = Lead
        fields = ["budget", "authority", "need", "timeframe"]


class FeedbackFilter(forms.Form):
    """Which rejected leads marketing looks at: by source, campaign and reason (choices only, never free fields)."""

    source = forms.ChoiceField(label=_("Source"), required=False)
    campaign = forms.ModelChoiceField(
        label=_("Campaign"), required=False, queryset=None, empty_label=_("All")
    )
    reason = forms.ChoiceField(label=_("Reason"), required=False)

    def __init__(self, *args, **kwargs):
        from leadcockpit.leads.models import Campaign

        super().__init__(*args, **kwargs)
        self.fields["source"].choices = [("", _("All")), *Lead.Source.choices]
        self.fields["reason"].choices = [("", _("All")), *Handover.RejectReason.choices]
        self.fields["campaign"].queryset = Campaign.objects.order_by("name")


class TeamRoutingForm(forms.ModelForm):
    """How a team takes leads: strategy and the clock."""

    class Meta:
        model = TeamRouting
        fields = ["strategy", "sla_hours", "business_hours", "remind_before_hours", "reassign_on_breach"]


class RepAvailabilityForm(forms.ModelForm):
    """A rep's capacity and absence."""

    class Meta:
        model = RepAvailability
        fields = ["capacity", "absent_from", "absent_until"]
        widgets = {
            "absent_from": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
            "absent_until": forms.DateInput(attrs={"type": "date"}, format="%Y-%m-%d"),
        }


class ConditionForm(forms.Form):
    """One condition of a routing rule, in words: a field, an operator and a value (lists comma-separated,
    ranges as 'from-to'). Everything passes the same allowlist as scoring criteria."""

    field = forms.ChoiceField(label=_("Field"), required=False)
    operator = forms.ChoiceField(label=_("Operator"), required=False)
    value = forms.CharField(label=_("Value"), required=False, max_length=500)

    def __init__(self, *args, **kwargs):
        from leadcockpit.scoring.fields import FIT_FIELDS, OPERATOR_LABELS

        super().__init__(*args, **kwargs)
        self.fields["field"].choices = [("", "—"), *((key, spec.label) for key, spec in FIT_FIELDS.items())]
        self.fields["operator"].choices = [("", "—"), *OPERATOR_LABELS.items()]

    def clean(self):
        from leadcockpit.scoring.fields import DOMAIN_IN, IN_LIST, RANGE, clean_condition

        data = super().clean()
        field, operator, raw = data.get("field"), data.get("operator"), (data.get("value") or "").strip()
        if not field and not operator:
            data["condition"] = None
            return data
        if operator in (IN_LIST, DOMAIN_IN):
            value = [item.strip() for item in raw.split(",") if item.strip()]
        elif operator == RANGE:
            low, _sep, high = raw.partition("-")
            value = {"min": low.strip() or None, "max": high.strip() or None}
        else:
            value = raw
        try:
            field, operator, value = clean_condition(field, operator, value)
        except forms.ValidationError as exc:
            raise forms.ValidationError(exc.messages) from None
        data["condition"] = {"field": field, "operator": operator, "value": value}
        return data

    @staticmethod
    def initial_for(condition):
        value = condition["value"]
        if isinstance(value, list):
            value = ", ".join(value)
        elif isinstance(value, dict):
            low, high = ("" if value[end] is None else format(value[end], "g") for end in ("min", "max"))
            value = f"{low}-{high}"
        elif value is None:
            value = ""
        return {"field": condition["field"], "operator": condition["operator"], "value": value}


ConditionFormSet = forms.formset_factory(
    ConditionForm, extra=2, max_num=10, absolute_max=10, validate_max=True
)


class RoutingRuleForm(forms.ModelForm):
    """A rule's name, order, team, grades and whether it is on; its conditions come from ConditionFormSet."""

    grades = forms.MultipleChoiceField(
        label=_("Grades"),
        required=False,
        choices=[(g, g) for g in GRADES],
        widget=forms.CheckboxSelectMultiple,
    )

    class Meta:
        model = RoutingRule
        fields = ["name", "position", "team", "grades", "product_interest", "active"]

    def __init__(self, *args, teams, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["team"].queryset = teams
