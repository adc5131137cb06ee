from django import forms
from django.utils.translation import gettext_lazy as _


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
