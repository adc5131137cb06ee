"""The allowlist: which lead and company fields a criterion may test, with which operators and values.

Nothing a user types reaches the ORM or SQL as a name: a criterion names a key of FIT_FIELDS and OPERATORS,
and the evaluators map that key to a column they know. Values are checked and normalised here, once.

Imported attributes (Lead.attributes, filled by a lead import) are fields too: "attribute:<name>", allowed when
a lead import declared that attribute (see attribute_catalogue), with the operators of its type. The evaluators
read the name as a JSON key, bound as a parameter, and test the JSON type the cleaned value implies (a range or
a number tests numbers, true/false tests yes/no, a text tests texts), so they need no catalogue themselves.
"""

import re
from dataclasses import dataclass

from django.apps import apps
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django_countries import countries

from leadcockpit.leads.models import Industry, Lead

MAX_LIST_ITEMS = 200
MAX_TEXT = 200

CHOICE, TEXT, NUMBER, EMAIL, BOOLEAN = "choice", "text", "number", "email", "boolean"


@dataclass(frozen=True)
class FitField:
    key: str
    label: str
    kind: str
    table: str  # "lead" or "company"
    column: str
    choices: tuple = ()


def _choices(text_choices):
    return tuple(value for value, _label in text_choices.choices)


FIT_FIELDS = {
    f.key: f
    for f in [
        FitField("contact_role", _("Role"), CHOICE, "lead", "contact_role", _choices(Lead.ContactRole)),
        FitField("job_title", _("Job title"), TEXT, "lead", "job_title"),
        FitField("budget", _("Budget"), CHOICE, "lead", "budget", _choices(Lead.Budget)),
        FitField("authority", _("Authority"), CHOICE, "lead", "authority", _choices(Lead.Authority)),
        FitField("need", _("Need"), CHOICE, "lead", "need", _choices(Lead.Need)),
        FitField("timeframe", _("Timeframe"), CHOICE, "lead", "timeframe", _choices(Lead.Timeframe)),
        FitField("source", _("Source"), CHOICE, "lead", "source", _choices(Lead.Source)),
        FitField("first_channel", _("First channel"), TEXT, "lead", "first_channel_id"),
        FitField("email", _("Email"), EMAIL, "lead", "email"),
        FitField("phone", _("Phone"), TEXT, "lead", "phone"),
        FitField("industry", _("Industry"), CHOICE, "company", "industry", _choices(Industry)),
        FitField("employee_count", _("Employees"), NUMBER, "company", "employee_count"),
        FitField("annual_revenue", _("Annual revenue"), NUMBER, "company", "annual_revenue"),
        FitField(
            "country", _("Country"), CHOICE, "company", "country", tuple(code for code, _n in countries)
        ),
        FitField("region", _("Region"), TEXT, "company", "region"),
        FitField("company_domain", _("Company domain"), TEXT, "company", "domain"),
    ]
}

EQUALS, IN_LIST, RANGE, CONTAINS, IS_EMPTY, IS_SET, DOMAIN_IN = (
    "equals",
    "in_list",
    "range",
    "contains",
    "is_empty",
    "is_set",
    "domain_in_list",
)
OPERATOR_LABELS = {
    EQUALS: _("equals"),
    IN_LIST: _("is one of"),
    RANGE: _("is between"),
    CONTAINS: _("contains"),
    IS_EMPTY: _("is empty"),
    IS_SET: _("is set"),
    DOMAIN_IN: _("email domain is one of"),
}
OPERATORS = {
    CHOICE: (EQUALS, IN_LIST, IS_EMPTY, IS_SET),
    TEXT: (EQUALS, IN_LIST, CONTAINS, IS_EMPTY, IS_SET),
    NUMBER: (EQUALS, RANGE, IS_EMPTY, IS_SET),
    EMAIL: (DOMAIN_IN, CONTAINS, IS_EMPTY, IS_SET),
    BOOLEAN: (EQUALS, IS_EMPTY, IS_SET),
}

# --- Imported attributes -------------------------------------------------------------------------------------

ATTRIBUTE_PREFIX = "attribute:"
# What capture.importing.attribute_name makes of a column header (slugified, "_" for "-", at most 60 characters).
ATTRIBUTE_NAME = re.compile(r"[a-z0-9_]{1,60}")
ATTRIBUTE_KINDS = {"text": TEXT, "number": NUMBER, "boolean": BOOLEAN}


@dataclass(frozen=True)
class Attribute:
    """An imported attribute as its import declared it: the column it came from, its type, who enters it."""

    name: str
    label: str
    type: str  # text, number or boolean (capture.importing.ATTRIBUTE_TYPES)
    provenance: str  # marketing, sales, outcome or id (capture.importing.PROVENANCES)

    @property
    def key(self):
        return ATTRIBUTE_PREFIX + self.name


def attribute_name_of(header):
    """The attribute name an import gives a column (the same rule as capture.importing.attribute_name)."""
    from django.utils.text import slugify

    return slugify(header).replace("-", "_")[:60] or "column"


def attribute_catalogue() -> dict:
    """The imported attributes by name: every attribute column of a lead import that ran (the latest import's type
    and provenance win). Read from the import jobs' mappings, where the importer records who enters each column."""
    job_model = apps.get_model("capture", "ImportJob")  # capture builds on scoring; read its table by name
    catalogue = {}
    jobs = (
        job_model.objects.filter(kind="leads")
        .exclude(status="mapping")
        .order_by("created_at", "pk")
        .values_list("header", "mapping")
    )
    for header, mapping in jobs:
        for position, entry in enumerate((mapping or {}).get("columns", [])):
            if not isinstance(entry, dict) or entry.get("target") != "attribute" or position >= len(header):
                continue
            name = entry.get("name") or attribute_name_of(header[position])
            if entry.get("type") in ATTRIBUTE_KINDS and ATTRIBUTE_NAME.fullmatch(name):
                catalogue[name] = Attribute(
                    name, header[position][:200], entry["type"], entry.get("provenance") or "marketing"
                )
    return catalogue


def attribute_of(key):
    """The attribute name of an "attribute:<name>" key (well-formed), else None."""
    if isinstance(key, str) and key.startswith(ATTRIBUTE_PREFIX):
        name = key[len(ATTRIBUTE_PREFIX) :]
        if ATTRIBUTE_NAME.fullmatch(name):
            return name
    return None


def field_spec(key, catalogue=None):
    """The allowlisted field a key names: a lead or company field, or an imported attribute; else None."""
    if not isinstance(key, str):
        return None
    if key in FIT_FIELDS:
        return FIT_FIELDS[key]
    name = attribute_of(key)
    if name is None:
        return None
    attribute = (attribute_catalogue() if catalogue is None else catalogue).get(name)
    if attribute is None:
        return None
    return FitField(key, attribute.label, ATTRIBUTE_KINDS[attribute.type], "attribute", name)


def field_label(key, catalogue=None):
    """What to call a criterion's field on screen (an attribute no import declares any more: its raw name)."""
    spec = field_spec(key, catalogue)
    if spec is not None:
        return spec.label
    return attribute_of(key) or str(key)


def field_choices(catalogue=None):
    """(key, label) of every field a criterion may test: the lead and company fields, then the imported
    attributes that marketing knows before sales contact (those entered by sales, outcomes and ids are left out:
    a score must not read what sales decides from it)."""
    catalogue = attribute_catalogue() if catalogue is None else catalogue
    return [(key, spec.label) for key, spec in FIT_FIELDS.items()] + [
        (attribute.key, attribute.label)
        for attribute in sorted(catalogue.values(), key=lambda a: a.label.lower())
        if attribute.provenance == "marketing"
    ]


def attribute_value_kind(operator, value):
    """Which JSON type an attribute condition tests, read off its cleaned value: NUMBER, BOOLEAN or TEXT."""
    if operator == RANGE or (
        operator == EQUALS and isinstance(value, int | float) and not isinstance(value, bool)
    ):
        return NUMBER
    if operator == EQUALS and isinstance(value, bool):
        return BOOLEAN
    return TEXT


# Text comparisons ignore ASCII case only, the same way in Python and in SQL (lower() under the C collation).
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def ascii_lower(text: str) -> str:
    return text.translate(_ASCII_LOWER)


def _text(value, what):
    if not isinstance(value, str) or not value.strip():
        raise ValidationError(_("%(what)s needs a non-empty text."), params={"what": what}, code="invalid")
    if len(value) > MAX_TEXT or "\x00" in value:
        raise ValidationError(_("%(what)s is too long."), params={"what": what}, code="invalid")
    return value.strip()


def _number(value, what):
    if isinstance(value, bool) or not isinstance(value, int | float):
        try:
            value = float(str(value).replace(",", "."))
        except (TypeError, ValueError):
            raise ValidationError(
                _("%(what)s needs a number."), params={"what": what}, code="invalid"
            ) from None
    if value != value or abs(value) > 1e15:  # NaN or absurd
        raise ValidationError(_("%(what)s needs a number."), params={"what": what}, code="invalid")
    return float(value)


def _boolean(value, what):
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower() if isinstance(value, str | int) else None
    if lowered in ("true", "yes", "1", "ja"):
        return True
    if lowered in ("false", "no", "0", "nein"):
        return False
    raise ValidationError(_("%(what)s needs yes or no."), params={"what": what}, code="invalid")


def clean_condition(field_key, operator, value, *, catalogue=None):
    """(field, operator, value) checked against the allowlist, with the value normalised; or ValidationError.

    An attribute field is looked up in the attribute catalogue (pass `catalogue` to clean many at one query)."""
    field = field_spec(field_key, catalogue)
    if field is None:
        raise ValidationError(_("Unknown field."), code="unknown_field")
    if operator not in OPERATORS[field.kind]:
        raise ValidationError(
            _("%(field)s cannot be tested with this operator."),
            params={"field": field.label},
            code="operator",
        )
    if operator in (IS_EMPTY, IS_SET):
        return field.key, operator, None
    if operator == RANGE:
        if not isinstance(value, dict) or set(value) - {"min", "max"}:
            raise ValidationError(_("A range needs a minimum, a maximum or both."), code="invalid")
        low = _number(value["min"], _("Minimum")) if value.get("min") not in (None, "") else None
        high = _number(value["max"], _("Maximum")) if value.get("max") not in (None, "") else None
        if low is None and high is None:
            raise ValidationError(_("A range needs a minimum, a maximum or both."), code="invalid")
        if low is not None and high is not None and low > high:
            raise ValidationError(_("The minimum is above the maximum."), code="invalid")
        return field.key, operator, {"min": low, "max": high}
    if operator in (IN_LIST, DOMAIN_IN):
        items = value if isinstance(value, list) else None
        if not items or len(items) > MAX_LIST_ITEMS:
            raise ValidationError(
                _("A list needs between 1 and %(max)d entries."),
                params={"max": MAX_LIST_ITEMS},
                code="invalid",
            )
        items = [_text(item, _("Each entry")) for item in items]
        if operator == DOMAIN_IN:
            items = [ascii_lower(item).lstrip("@") for item in items]
        elif field.kind == CHOICE:
            _check_choices(field, items)
        return field.key, operator, sorted(set(items))
    if field.kind == NUMBER:
        return field.key, operator, _number(value, field.label)
    if field.kind == BOOLEAN:
        return field.key, operator, _boolean(value, field.label)
    text = _text(value, field.label)
    if field.kind == CHOICE:
        _check_choices(field, [text])
    return field.key, operator, text


def _check_choices(field, items):
    unknown = [item for item in items if item not in field.choices]
    if unknown:
        raise ValidationError(
            _("%(field)s has no value %(value)s."),
            params={"field": field.label, "value": ", ".join(unknown[:3])},
            code="invalid_choice",
        )
