from django import forms
from django.utils.translation import gettext_lazy as _

from .models import Handover


class RejectForm(forms.Form):
    """Why a rep sends a lead back to marketing: a reason code (required) and a note."""

    reason = forms.ChoiceField(
        label=_("Reason"), choices=[("", _("Choose a reason …")), *Handover.RejectReason.choices]
    )
    note = forms.CharField(
        label=_("Note"), required=False, max_length=2000, widget=forms.Textarea(attrs={"rows": 2})
    )
