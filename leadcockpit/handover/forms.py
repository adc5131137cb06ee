from datetime import timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from leadcockpit.leads.models import Lead, SalesActivity

from .models import Handover


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
