from django import forms
from django.conf import settings
from django.template.defaultfilters import filesizeformat
from django.utils.translation import gettext_lazy as _

from .importing import ATTRIBUTE, ATTRIBUTE_TYPES, PROVENANCES, TARGETS, attribute_name, check_mapping
from .models import ImportKind, ImportPreset


class UploadForm(forms.Form):
    kind = forms.ChoiceField(label=_("What the file holds"), choices=ImportKind.choices)
    file = forms.FileField(label=_("CSV file"), help_text=_("UTF-8 or Windows-1252; comma or semicolon."))
    preset = forms.ModelChoiceField(
        label=_("Mapping preset"),
        queryset=ImportPreset.objects.all(),
        required=False,
        empty_label=_("Guess from the column names"),
    )

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > settings.IMPORT_MAX_BYTES:
            raise forms.ValidationError(
                _("The file is %(size)s; at most %(limit)s can be imported at once.")
                % {"size": filesizeformat(upload.size), "limit": filesizeformat(settings.IMPORT_MAX_BYTES)}
            )
        return upload

    def clean(self):
        cleaned = super().clean()
        preset, kind = cleaned.get("preset"), cleaned.get("kind")
        if preset and kind and preset.kind != kind:
            self.add_error("preset", _("This preset is for another kind of file."))
        return cleaned


class MappingForm(forms.Form):
    """One target per column (from the allowlist), and for kept attributes their type and who enters them."""

    preset_name = forms.CharField(
        label=_("Save this mapping as a preset named"), max_length=100, required=False
    )

    def __init__(self, *args, job, **kwargs):
        super().__init__(*args, **kwargs)
        self.job = job
        choices = [("", _("— leave out —"))] + [(t.code, t.label) for t in TARGETS[job.kind]]
        if job.kind == ImportKind.LEADS:
            choices.append((ATTRIBUTE, _("Keep as attribute")))
        columns = job.mapping.get("columns", [])
        self.columns = []
        for position, name in enumerate(job.header):
            entry = columns[position] if position < len(columns) else {}
            prefix = f"c{position}"
            self.fields[f"{prefix}_target"] = forms.ChoiceField(
                label=_("Goes to"), choices=choices, required=False, initial=entry.get("target", "")
            )
            names = [f"{prefix}_target"]
            if job.kind == ImportKind.LEADS:
                self.fields[f"{prefix}_type"] = forms.ChoiceField(
                    label=_("Type"), choices=list(ATTRIBUTE_TYPES.items()), initial=entry.get("type", "text")
                )
                self.fields[f"{prefix}_provenance"] = forms.ChoiceField(
                    label=_("Entered"),
                    choices=list(PROVENANCES.items()),
                    initial=entry.get("provenance", "marketing"),
                )
                names += [f"{prefix}_type", f"{prefix}_provenance"]
            self.columns.append((name, [self[n] for n in names]))

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        columns = []
        for position, name in enumerate(self.job.header):
            target = cleaned.get(f"c{position}_target", "")
            entry = {"target": target}
            if target == ATTRIBUTE:
                entry.update(
                    name=attribute_name(name),
                    type=cleaned.get(f"c{position}_type"),
                    provenance=cleaned.get(f"c{position}_provenance"),
                )
            columns.append(entry)
        mapping = {"columns": columns}
        for error in check_mapping(self.job.kind, self.job.header, mapping):
            self.add_error(None, error)
        cleaned["mapping"] = mapping
        return cleaned
