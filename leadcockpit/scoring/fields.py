"""The allowlist: which lead and company fields a criterion may test, with which operators and values.

Nothing a user types reaches the ORM or SQL as a name: a criterion names a key of FIT_FIELDS and OPERATORS,
and the evaluators map that key to a column they know. Values are checked and normalised here, once.
"""

from dataclasses import dataclass

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from django_countries import countries

from leadcockpit.leads.models import Industry, Lead

MAX_LIST_ITEMS = 200
MAX_TEXT = 200

CHOICE, TEXT, NUMBER, EMAIL = "choice", "text", "number", "email"


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
}

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


def clean_condition(field_key, operator, value):
    """(field, operator, value) checked against the allowlist, with the value normalised; or ValidationError."""
    field = FIT_FIELDS.get(field_key) if isinstance(field_key, str) else None
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
