"""CSV import: what each kind of file may fill (the allowlist of targets), how a column is guessed, how a cell is
read, and how a chunk of rows is written set-based: upserts by email or external id, so a second run of the same
file changes nothing."""

import functools
import logging
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta
from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator, validate_email
from django.db import transaction
from django.db.models import F, Q
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django_countries import countries

from leadcockpit.accounts.models import User
from leadcockpit.core.bulk import insert
from leadcockpit.leads.actions import leads_by_email, leads_by_external_id
from leadcockpit.leads.models import (
    Campaign,
    Channel,
    Company,
    Industry,
    Lead,
    SalesActivity,
    StageChange,
    Touchpoint,
    normalise_email,
)
from leadcockpit.lib.csvread import CsvFile, NotReadable, decode, read_csv
from leadcockpit.scoring.actions import mark_dirty

from .actions import merge_pairs
from .models import ImportJob, ImportKind, ImportPreset, ImportRejection

log = logging.getLogger(__name__)

# Cells that forms and spreadsheets put where nothing was chosen: read as empty.
PLACEHOLDERS = {"select", "n/a", "#n/a", "null", "-", "--", "(none)", "not provided"}
ATTRIBUTE_TYPES = {
    "text": gettext_lazy("Text"),
    "number": gettext_lazy("Number"),
    "boolean": gettext_lazy("Yes/no"),
}
PROVENANCES = {
    "marketing": gettext_lazy("Known before sales contact (form, tracking, enrichment)"),
    "sales": gettext_lazy("Entered by sales after contact"),
    "outcome": gettext_lazy("The outcome (converted, won)"),
    "id": gettext_lazy("An identifier, not a signal"),
}
MAX_ATTRIBUTES = 80
# The mapping form posts up to three fields a column, under Django's DATA_UPLOAD_MAX_NUMBER_FIELDS (1,000).
MAX_COLUMNS = 300
TEXT_ATTRIBUTE_MAX = 200
EVENT_NAMESPACE = uuid.UUID("0f3d7a52-5a8e-4b0e-9f55-6c1b8f1e2d40")
TRUE = {"yes", "y", "true", "1", "ja", "j", "x", "wahr", "on"}
FALSE = {"no", "n", "false", "0", "nein", "falsch", "off", ""}


class CellError(ValueError):
    """A cell that cannot be read; the message names what was expected."""


# --- Reading cells -----------------------------------------------------------------------------------------


def read_text(max_length):
    def parse(value):
        if len(value) > max_length:
            raise CellError(_("is longer than %(n)d characters") % {"n": max_length})
        return value

    return parse


def read_email(value):
    value = normalise_email(value)
    try:
        validate_email(value)
    except ValidationError:
        raise CellError(_("is not an email address")) from None
    return value


def read_url(value):
    if not value.lower().startswith(("http://", "https://")):
        raise CellError(_("must start with http:// or https://"))
    if len(value) > 2048:
        raise CellError(_("is longer than %(n)d characters") % {"n": 2048})
    try:
        URLValidator(schemes=["http", "https"])(value)
    except ValidationError:
        raise CellError(_("is not a web address")) from None
    return value


def read_choice(choices, aliases=None):
    """A code or its English or German label, in any case."""
    from django.utils import translation

    lookup = {}
    for code, label in choices:
        lookup[code.lower()] = code
        lookup[str(label).lower()] = code
        with translation.override("de"):
            lookup[str(label).lower()] = code
    for alias, code in (aliases or {}).items():
        lookup[alias.lower()] = code

    def parse(value):
        try:
            return lookup[value.lower()]
        except KeyError:
            shown = ", ".join(code for code, _label in choices)
            raise CellError(_("is not one of: %(choices)s") % {"choices": shown}) from None

    return parse


def read_boolean(value):
    lowered = value.lower()
    if lowered in TRUE:
        return True
    if lowered in FALSE:
        return False
    raise CellError(_("is not yes or no"))


def read_number(value):
    """1234.5, 1.234,5 (German), 1,234.5 and 1 234,5 alike."""
    cleaned = value.replace("\u00a0", "").replace(" ", "").replace("€", "").replace("EUR", "")
    if "," in cleaned and "." in cleaned:
        if cleaned.rfind(",") > cleaned.rfind("."):
            cleaned = cleaned.replace(".", "").replace(",", ".")
        else:
            cleaned = cleaned.replace(",", "")
    elif cleaned.count(",") > 1:
        cleaned = cleaned.replace(",", "")  # 1,234,567: thousands
    elif "," in cleaned:
        cleaned = cleaned.replace(",", ".")  # 12,5: a decimal comma, as German files write it
    try:
        number = Decimal(cleaned)
    except InvalidOperation:
        raise CellError(_("is not a number")) from None
    if not number.is_finite():
        raise CellError(_("is not a number"))
    return number


def read_count(value):
    if re.fullmatch(r"\d{1,3}([.,' ]\d{3})+", value.strip()):
        value = re.sub(r"\D", "", value)  # 1,200 or 1.200 of a whole number: thousands, in either language
    number = read_number(value)
    if number < 0 or number != number.to_integral_value() or number > 2_000_000_000:
        raise CellError(_("is not a whole number of at least 0"))
    return int(number)


def read_whole_amount(value):
    """Whole euros, as annual revenue is kept."""
    return read_amount(value).quantize(Decimal("1"))


def read_amount(value):
    number = read_number(value)
    if number < 0 or number >= Decimal("1e13"):
        raise CellError(_("is not an amount of at least 0"))
    return number.quantize(Decimal("0.01"))


DATE_FORMATS = ["%Y-%m-%d", "%d.%m.%Y", "%d/%m/%Y", "%d.%m.%y", "%Y/%m/%d"]
TIME_FORMATS = ["%H:%M:%S", "%H:%M"]


def read_date(value):
    for fmt in DATE_FORMATS:
        try:
            parsed = datetime.strptime(value, fmt).date()  # noqa: DTZ007 - a calendar date, no time zone
        except ValueError:
            continue
        if not 1970 <= parsed.year <= 2100:
            raise CellError(_("lies outside 1970–2100"))
        return parsed
    raise CellError(_("is not a date like 2026-03-31 or 31.03.2026"))


def read_datetime(value):
    """ISO 8601 with or without a zone; 31.03.2026 14:00 and plain dates in the cockpit's time zone."""
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        parsed = None
        day, _sep, clock = value.partition(" ")
        moment = None
        for fmt in TIME_FORMATS:
            try:
                moment = datetime.strptime(clock.strip(), fmt).time() if clock.strip() else time(0, 0)  # noqa: DTZ007
                break
            except ValueError:
                continue
        if moment is not None:
            try:
                parsed = datetime.combine(read_date(day.strip()), moment)
            except CellError:
                parsed = None
    if parsed is None:
        raise CellError(_("is not a date and time like 2026-03-31 14:00"))
    if not 1970 <= parsed.year <= 2100:
        raise CellError(_("lies outside 1970–2100"))
    if timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed)
    return parsed


@functools.cache
def _country_names():
    """Country codes by their English and German names and codes, lower-cased; built once per process."""
    from django.utils import translation

    lookup = {}
    for language in ("en", "de"):
        with translation.override(language):
            for code, name in countries:
                lookup[str(name).lower()] = code
    lookup.update({code.lower(): code for code, _name in countries})
    lookup.update({"uk": "GB", "usa": "US", "united states of america": "US", "deutschland": "DE"})
    return lookup


def read_country(value):
    code = _country_names().get(value.lower())
    if not code:
        raise CellError(_("is not a country name or code"))
    return code


def read_uuid(value):
    try:
        return uuid.UUID(value)
    except ValueError:
        raise CellError(_("is not a UUID")) from None


def read_domain(value):
    value = value.lower().removeprefix("https://").removeprefix("http://").removeprefix("www.").strip("/")
    if not re.fullmatch(r"[a-z0-9.-]{1,253}\.[a-z]{2,63}", value):
        raise CellError(_("is not a web domain like example.com"))
    return value


def read_attribute(kind):
    def parse(value):
        if kind == "number":
            number = float(read_number(value))
            if not math.isfinite(number):  # 1e400: a Decimal, but no float and no JSON number
                raise CellError(_("is not a number"))
            return number
        if kind == "boolean":
            return read_boolean(value)
        return read_text(TEXT_ATTRIBUTE_MAX)(value)

    return parse


# --- Targets: the allowlist of what each kind of file may fill ----------------------------------------------


@dataclass(frozen=True)
class Target:
    code: str
    label: str
    parse: object
    synonyms: tuple = ()


def _t(code, label, parse, *synonyms):
    return Target(code, label, parse, synonyms)


CONTACT_ROLE_ALIASES = {
    "student": "student",
    "decision maker": "decision_maker",
    "entscheider": "decision_maker",
}
LEAD_KEY = [
    _t(
        "email",
        gettext_lazy("Email"),
        read_email,
        "email",
        "e-mail",
        "emailaddress",
        "mail",
        "e-mail-adresse",
    ),
    _t(
        "external_id",
        gettext_lazy("External id"),
        read_text(100),
        "externalid",
        "id",
        "leadid",
        "prospectid",
        "crmid",
        "kundennummer",
    ),
]
TARGETS = {
    ImportKind.LEADS: [
        *LEAD_KEY,
        _t("first_name", gettext_lazy("First name"), read_text(100), "firstname", "vorname", "givenname"),
        _t("last_name", gettext_lazy("Last name"), read_text(100), "lastname", "nachname", "surname", "name"),
        _t("phone", gettext_lazy("Phone"), read_text(40), "phone", "telefon", "phonenumber", "tel"),
        _t("job_title", gettext_lazy("Job title"), read_text(200), "jobtitle", "title", "position", "titel"),
        _t(
            "contact_role",
            gettext_lazy("Role"),
            read_choice(Lead.ContactRole.choices, CONTACT_ROLE_ALIASES),
            "role",
            "rolle",
            "contactrole",
        ),
        _t("budget", gettext_lazy("Budget"), read_choice(Lead.Budget.choices), "budget"),
        _t("authority", gettext_lazy("Authority"), read_choice(Lead.Authority.choices), "authority"),
        _t("need", gettext_lazy("Need"), read_choice(Lead.Need.choices), "need", "bedarf"),
        _t(
            "timeframe",
            gettext_lazy("Timeframe"),
            read_choice(Lead.Timeframe.choices),
            "timeframe",
            "zeitrahmen",
        ),
        _t(
            "source",
            gettext_lazy("Source"),
            read_choice(Lead.Source.choices),
            "source",
            "leadsource",
            "quelle",
        ),
        _t("campaign", gettext_lazy("Campaign (name)"), read_text(200), "campaign", "kampagne"),
        _t("tracking_consent", gettext_lazy("Consents to tracking"), read_boolean, "trackingconsent"),
        _t(
            "marketing_consent",
            gettext_lazy("Consents to marketing"),
            read_boolean,
            "marketingconsent",
            "optin",
            "newsletter",
        ),
        _t(
            "created_at",
            gettext_lazy("Created"),
            read_datetime,
            "created",
            "createdat",
            "erstellt",
            "createddate",
        ),
        _t(
            "company_name",
            gettext_lazy("Company"),
            read_text(200),
            "company",
            "companyname",
            "firma",
            "unternehmen",
            "organisation",
            "organization",
            "account",
        ),
        _t(
            "company_domain",
            gettext_lazy("Company web domain"),
            read_domain,
            "domain",
            "website",
            "webdomain",
        ),
        _t(
            "company_industry",
            gettext_lazy("Company industry"),
            read_choice(Industry.choices),
            "industry",
            "branche",
        ),
        _t(
            "company_employee_count",
            gettext_lazy("Company employees"),
            read_count,
            "employees",
            "employeecount",
            "mitarbeiter",
            "companysize",
        ),
        _t(
            "company_annual_revenue",
            gettext_lazy("Company annual revenue (EUR)"),
            read_whole_amount,
            "revenue",
            "annualrevenue",
            "umsatz",
        ),
        _t("company_country", gettext_lazy("Company country"), read_country, "country", "land"),
        _t("company_region", gettext_lazy("Company region"), read_text(100), "region", "bundesland", "state"),
    ],
    ImportKind.TOUCHPOINTS: [
        _t("lead_email", gettext_lazy("Lead email"), read_email, "email", "leademail", "e-mail"),
        _t("lead_external_id", gettext_lazy("Lead external id"), read_text(100), "externalid", "leadid"),
        _t(
            "kind",
            gettext_lazy("Kind"),
            read_choice(Touchpoint.Kind.choices),
            "kind",
            "type",
            "event",
            "activity",
            "art",
        ),
        _t(
            "occurred_at",
            gettext_lazy("When"),
            read_datetime,
            "occurredat",
            "date",
            "time",
            "timestamp",
            "datum",
        ),
        _t("url", gettext_lazy("URL"), read_url, "url", "page", "pageurl"),
        _t("referrer", gettext_lazy("Referrer"), read_url, "referrer", "referer"),
        _t("page_title", gettext_lazy("Page title"), read_text(300), "pagetitle", "title"),
        _t("utm_source", gettext_lazy("UTM source"), read_text(100), "utmsource"),
        _t("utm_medium", gettext_lazy("UTM medium"), read_text(100), "utmmedium"),
        _t("utm_campaign", gettext_lazy("UTM campaign"), read_text(100), "utmcampaign"),
        _t("campaign", gettext_lazy("Campaign (name)"), read_text(200), "campaign", "kampagne"),
        _t("event_id", gettext_lazy("Event id (UUID)"), read_uuid, "eventid", "uuid"),
    ],
    ImportKind.SALES_ACTIVITIES: [
        _t("lead_email", gettext_lazy("Lead email"), read_email, "email", "leademail", "e-mail"),
        _t("lead_external_id", gettext_lazy("Lead external id"), read_text(100), "externalid", "leadid"),
        _t(
            "kind",
            gettext_lazy("Kind"),
            read_choice(SalesActivity.Kind.choices, {"phone": "call", "anruf": "call"}),
            "kind",
            "type",
            "activity",
            "art",
        ),
        _t(
            "outcome",
            gettext_lazy("Outcome"),
            read_choice(SalesActivity.Outcome.choices),
            "outcome",
            "ergebnis",
        ),
        _t("occurred_at", gettext_lazy("When"), read_datetime, "occurredat", "date", "datum", "when"),
        _t("note", gettext_lazy("Note"), read_text(5000), "note", "notes", "notiz", "comment", "kommentar"),
        _t(
            "rep", gettext_lazy("Rep (username or email)"), read_text(254), "rep", "owner", "user", "vertrieb"
        ),
        _t(
            "next_follow_up",
            gettext_lazy("Next follow-up"),
            read_date,
            "nextfollowup",
            "followup",
            "wiedervorlage",
        ),
    ],
    ImportKind.CAMPAIGN_COSTS: [
        _t(
            "name",
            gettext_lazy("Campaign name"),
            read_text(200),
            "name",
            "campaign",
            "kampagne",
            "campaignname",
        ),
        _t("channel", gettext_lazy("Channel"), read_text(100), "channel", "kanal"),
        _t("cost", gettext_lazy("Cost (EUR)"), read_amount, "cost", "costs", "kosten", "spend", "budget"),
        _t("starts_on", gettext_lazy("Starts on"), read_date, "startson", "start", "startdate", "beginn"),
        _t("ends_on", gettext_lazy("Ends on"), read_date, "endson", "end", "enddate", "ende"),
        _t("utm_campaign", gettext_lazy("UTM campaign"), read_text(100), "utmcampaign", "utm"),
    ],
}
REQUIRED = {
    ImportKind.LEADS: [("email", "external_id")],
    ImportKind.TOUCHPOINTS: [("lead_email", "lead_external_id"), ("kind",), ("occurred_at",)],
    ImportKind.SALES_ACTIVITIES: [("lead_email", "lead_external_id"), ("kind",), ("occurred_at",)],
    ImportKind.CAMPAIGN_COSTS: [("name",)],
}
ATTRIBUTE = "attribute"


def targets_of(kind):
    return {target.code: target for target in TARGETS[kind]}


def _squash(text):
    text = text.lower()
    for umlaut, plain in (("ä", "ae"), ("ö", "oe"), ("ü", "ue"), ("ß", "ss")):
        text = text.replace(umlaut, plain)
    return re.sub(r"[^a-z0-9]", "", text)


def attribute_name(header):
    return slugify(header).replace("-", "_")[:60] or "column"


def guess_type(samples):
    values = [s.strip() for s in samples if s.strip() and s.strip().lower() not in PLACEHOLDERS]
    if not values:
        return "text"
    if all(v.lower() in TRUE | FALSE for v in values) and any(not v.isdigit() for v in values):
        return "boolean"
    try:
        for v in values:
            read_number(v)
    except CellError:
        return "text"
    return "number"


def guess_mapping(kind, header, samples_by_column, preset=None):
    """A mapping for every column: the preset's entry by header, else a target whose name or synonym matches,
    else (for leads) an attribute of a guessed type, else ignored."""
    by_header = {_squash(name): entry for name, entry in ((preset.mapping if preset else {}) or {}).items()}
    used, columns, attribute_names = set(), [], set()
    for position, name in enumerate(header):
        entry = by_header.get(_squash(name))
        if entry is None:
            squashed = _squash(name)
            entry = {"target": ""}
            for target in TARGETS[kind]:
                if target.code not in used and squashed in {
                    _squash(s) for s in (target.code, *target.synonyms)
                }:
                    entry = {"target": target.code}
                    break
            else:
                # Beyond the most one may keep, a guess would only make the user leave columns out by hand.
                # Nor guess a second column into an attribute name taken ("Email" after "email"): check_mapping
                # would refuse the guess.
                if (
                    kind == ImportKind.LEADS
                    and not name.startswith("(")
                    and len(attribute_names) < MAX_ATTRIBUTES
                    and attribute_name(name) not in attribute_names
                ):
                    attribute_names.add(attribute_name(name))
                    entry = {
                        "target": ATTRIBUTE,
                        "type": guess_type(samples_by_column[position]),
                        "provenance": "marketing",
                    }
        used.add(entry.get("target"))
        columns.append(dict(entry))
    return {"columns": columns}


def check_mapping(kind, header, mapping):
    """Errors of a mapping against the allowlist: unknown targets, a field chosen twice, required fields."""
    errors = []
    allowed = targets_of(kind)
    columns = mapping.get("columns", [])
    if len(columns) != len(header):
        return [_("The mapping does not fit the file's columns.")]
    chosen = {}
    attributes = 0
    attribute_columns = {}
    for position, entry in enumerate(columns):
        target = entry.get("target", "")
        if not target:
            continue
        if target == ATTRIBUTE and kind == ImportKind.LEADS:
            attributes += 1
            name = entry.get("name") or attribute_name(header[position])
            # "Lead Origin" and "lead-origin" are one name: the later column would silently overwrite the other.
            if name in attribute_columns:
                errors.append(
                    _("Columns “%(first)s” and “%(second)s” would both be kept as attribute “%(name)s”.")
                    % {"first": header[attribute_columns[name]], "second": header[position], "name": name}
                )
            attribute_columns.setdefault(name, position)
            if entry.get("type") not in ATTRIBUTE_TYPES or entry.get("provenance") not in PROVENANCES:
                errors.append(
                    _("Column “%(column)s”: choose a type and who enters it.") % {"column": header[position]}
                )
            continue
        if target not in allowed:
            errors.append(
                _("Column “%(column)s”: not a field one can import into.") % {"column": header[position]}
            )
            continue
        if target in chosen:
            errors.append(
                _("“%(field)s” is chosen for two columns: “%(first)s” and “%(second)s”.")
                % {
                    "field": allowed[target].label,
                    "first": header[chosen[target]],
                    "second": header[position],
                }
            )
        chosen[target] = position
    if attributes > MAX_ATTRIBUTES:
        errors.append(_("At most %(n)d columns can be kept as attributes.") % {"n": MAX_ATTRIBUTES})
    for group in REQUIRED[kind]:
        if not any(code in chosen for code in group):
            labels = _(" or ").join(str(allowed[code].label) for code in group)
            errors.append(_("Choose a column for %(fields)s.") % {"fields": labels})
    return errors


# --- Reading rows ------------------------------------------------------------------------------------------


@dataclass
class Row:
    number: int
    cells: list
    values: dict = field(default_factory=dict)
    attributes: dict = field(default_factory=dict)
    errors: list = field(default_factory=list)


@dataclass
class Plan:
    """A mapping compiled once per job: per mapped column, its position, target, reader, and for attributes the
    name and the case-folded spellings to use."""

    kind: str
    header: list
    columns: list  # (position, target, read, attribute name, canonical spellings)


def compile_plan(kind, header, mapping):
    allowed = targets_of(kind)
    canon = mapping.get("canon", {})
    columns = []
    for position, entry in enumerate(mapping["columns"]):
        target = entry.get("target")
        if not target:
            continue
        if target == ATTRIBUTE:
            name = entry.get("name") or attribute_name(header[position])
            columns.append(
                (position, target, read_attribute(entry["type"]), name, canon.get(str(position), {}))
            )
        else:
            columns.append((position, target, allowed[target].parse, None, None))
    return Plan(kind, header, columns)


def parse_row(plan, number, cells):
    """The values of one row by target, or the errors that reject it."""
    row = Row(number, cells)
    header = plan.header
    if len(cells) != len(header):
        extra = cells[len(header) :]
        if len(cells) > len(header) and not any(c.strip() for c in extra):
            cells = cells[: len(header)]
        else:
            row.errors.append(
                _("has %(cells)d fields, the header %(header)d")
                % {"cells": len(cells), "header": len(header)}
            )
            return row
    for position, target, read, name, canon in plan.columns:
        raw = cells[position].strip()
        if not raw or raw.lower() in PLACEHOLDERS:
            continue
        if "\x00" in raw:
            row.errors.append(_("“%(column)s” contains a NUL character") % {"column": header[position]})
            continue
        try:
            if name is None:
                row.values[target] = read(raw)
            else:
                value = read(raw)
                if canon and isinstance(value, str):
                    value = canon.get(value.casefold(), value)
                row.attributes[name] = value
        except CellError as exc:
            row.errors.append(
                _("“%(column)s” %(problem)s: %(value)s")
                % {"column": header[position], "problem": exc, "value": raw[:80]}
            )
    if not row.errors:
        for group in REQUIRED[plan.kind]:
            if not any(code in row.values for code in group):
                allowed = targets_of(plan.kind)
                labels = _(" or ").join(str(allowed[code].label) for code in group)
                row.errors.append(_("needs %(fields)s") % {"fields": labels})
    return row


def canonical_spellings(csv_file, mapping):
    """For text attributes, the most frequent spelling of values that differ only in case (google → Google)."""
    columns = [
        position
        for position, entry in enumerate(mapping["columns"])
        if entry.get("target") == ATTRIBUTE and entry.get("type") == "text"
    ]
    counts = {position: {} for position in columns}
    for _number, cells in csv_file.rows():
        for position in columns:
            if position < len(cells):
                value = cells[position].strip()
                if value and "\x00" not in value:  # such a cell is rejected, and jsonb cannot hold it
                    spellings = counts[position].setdefault(value.casefold(), {})
                    spellings[value] = spellings.get(value, 0) + 1
    canon = {}
    for position, by_fold in counts.items():
        chosen = {
            fold: max(spellings.items(), key=lambda item: (item[1], item[0]))[0]
            for fold, spellings in by_fold.items()
            if len(spellings) > 1
        }
        if chosen:
            canon[str(position)] = chosen
    return canon


# --- Writing a chunk ---------------------------------------------------------------------------------------


@dataclass
class ChunkResult:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: list = field(default_factory=list)  # (row, reason)
    dirty: set = field(default_factory=set)


LEAD_FIELDS = [
    "email",
    "external_id",
    "first_name",
    "last_name",
    "phone",
    "job_title",
    "contact_role",
    "budget",
    "authority",
    "need",
    "timeframe",
    "source",
    "tracking_consent",
    "marketing_consent",
]
COMPANY_FIELDS = ["industry", "employee_count", "annual_revenue", "country", "region"]


def write_chunk(kind, rows, *, now):
    """Write parsed rows (Row, already free of cell errors) in the current transaction; returns ChunkResult."""
    return {
        ImportKind.LEADS: _write_leads,
        ImportKind.TOUCHPOINTS: _write_touchpoints,
        ImportKind.SALES_ACTIVITIES: _write_sales_activities,
        ImportKind.CAMPAIGN_COSTS: _write_campaigns,
    }[kind](rows, now=now)


def _campaigns_by_name(names):
    found = {}
    lowered = {name.lower() for name in names}
    campaigns = Campaign.objects.annotate(lowered=Lower("name")).filter(
        Q(lowered__in=lowered) | Q(utm_campaign__in=lowered)
    )
    for pk, name, utm in campaigns.values_list("pk", "name", "utm_campaign"):
        found[name.lower()] = pk
        if utm:
            found.setdefault(utm.lower(), pk)
    return found


def _companies(rows):
    """Company ids for rows that name a company (by domain, else by name), created or completed as needed."""
    wanted = [r for r in rows if "company_name" in r.values or "company_domain" in r.values]
    if not wanted:
        return {}
    domains = {r.values["company_domain"] for r in wanted if "company_domain" in r.values}
    names = {r.values["company_name"] for r in wanted if "company_name" in r.values}
    existing = list(Company.objects.filter(Q(domain__in=domains) | Q(name__in=names)).order_by("pk"))
    by_domain = {c.domain: c for c in existing if c.domain}
    by_name = {}
    for company in existing:
        by_name.setdefault(company.name.lower(), company)
    result, new, changed = {}, {}, {}
    for row in wanted:
        values = {k.removeprefix("company_"): v for k, v in row.values.items() if k.startswith("company_")}
        company = None
        if values.get("domain"):
            company = by_domain.get(values["domain"])
        if company is None and values.get("name"):
            company = by_name.get(values["name"].lower())
            if company is not None and company.domain and values.get("domain"):
                company = None  # the same name under another domain is another company
        if company is None:
            if not values.get("name"):
                values["name"] = values["domain"]
            company = Company(**values)
            new[id(company)] = company
            if company.domain:
                by_domain[company.domain] = company
            by_name[company.name.lower()] = company
        else:
            for key in ["domain", *COMPANY_FIELDS]:
                current = getattr(company, key)
                current = getattr(current, "code", current)  # a Country compares by its code
                if key in values and current != values[key]:
                    setattr(company, key, values[key])
                    if company.pk:
                        changed[company.pk] = company
        result[row.number] = company
    if new:
        insert(new.values())
    if changed:
        Company.objects.bulk_update(list(changed.values()), ["domain", *COMPANY_FIELDS])
    return {number: company.pk for number, company in result.items()}


def _merge_duplicates_in_chunk(rows, key):
    """Rows of one chunk that name the same record: the later row's values win, as if imported one after another."""
    merged, order = {}, []
    for row in rows:
        k = key(row)
        if k in merged:
            first = merged[k]
            first.values.update(row.values)
            first.attributes.update(row.attributes)
        else:
            merged[k] = row
            order.append(row)
    return order, len(rows) - len(order)


def _write_leads(rows, *, now):
    result = ChunkResult()
    rows, folded = _merge_duplicates_in_chunk(
        rows, lambda r: ("e", r.values["email"]) if "email" in r.values else ("x", r.values["external_id"])
    )
    result.unchanged += folded
    company_ids = _companies(rows)
    campaign_names = {r.values["campaign"] for r in rows if "campaign" in r.values}
    campaigns = _campaigns_by_name(campaign_names) if campaign_names else {}
    # Leads by address (also another spelling of the mailbox, or a merged lead's former one) and by external id;
    # a row naming one lead's address and another's id says they are one person: merge them, as ingest does.
    email_ids = leads_by_email(r.values["email"] for r in rows if "email" in r.values)
    external_ids = leads_by_external_id(r.values["external_id"] for r in rows if "external_id" in r.values)
    pairs = {
        (email_ids[r.values["email"]], external_ids[r.values["external_id"]])
        for r in rows
        if r.values.get("email") in email_ids and r.values.get("external_id") in external_ids
    }
    pairs = {pair for pair in pairs if pair[0] != pair[1]}
    merged_into, refused = merge_pairs(pairs=pairs, system="import", reason="one import row named both")
    email_ids = {email: merged_into.get(pk, pk) for email, pk in email_ids.items()}
    external_ids = {external: merged_into.get(pk, pk) for external, pk in external_ids.items()}
    existing = {
        lead.pk: lead
        for lead in Lead.objects.filter(pk__in={*email_ids.values(), *external_ids.values()}).only(
            *LEAD_FIELDS, "company_id", "campaign_id", "attributes", "created_at"
        )
    }
    by_email = {email: existing[pk] for email, pk in email_ids.items() if pk in existing}
    by_external = {external: existing[pk] for external, pk in external_ids.items() if pk in existing}

    new, changed_fields, changed, pending = [], set(), {}, {}
    for row in rows:
        values = dict(row.values)
        if "campaign" in values:
            name = values.pop("campaign")
            if name.lower() not in campaigns:
                result.rejected.append((row, _("no campaign named “%(name)s”") % {"name": name[:100]}))
                continue
            values["campaign_id"] = campaigns[name.lower()]
        values = {k: v for k, v in values.items() if not k.startswith("company_")}
        if row.number in company_ids:
            values["company_id"] = company_ids[row.number]
        lead_by_email = by_email.get(values.get("email"))
        lead_by_external = by_external.get(values.get("external_id"))
        if lead_by_email and lead_by_external and lead_by_email.pk != lead_by_external.pk:
            pair = (email_ids[values["email"]], external_ids[values["external_id"]])
            why = refused.get(pair) or refused.get(pair[::-1]) or ""
            result.rejected.append(
                (
                    row,
                    _("the email belongs to one lead and the external id to another: %(why)s") % {"why": why},
                )
            )
            continue
        lead = lead_by_email or lead_by_external
        if lead_by_email and lead.email and lead.email != values["email"]:
            # Another spelling of the lead's mailbox, or a former address: the lead keeps its own.
            del values["email"]
        if lead_by_external and lead.external_id and lead.external_id != values["external_id"]:
            del values["external_id"]  # a merged lead's former id
        if lead is None:
            lead = Lead(
                **{
                    "stage_id": "mgl",
                    "source": Lead.Source.IMPORT,
                    "created_at": now,
                    **values,
                    "attributes": row.attributes,
                    "stage_changed_at": now,
                }
            )
            lead.import_row = row.number
            if lead.email:
                by_email[lead.email] = lead
            if lead.external_id:
                by_external[lead.external_id] = lead
            new.append(lead)
            continue
        if lead.pk is None:
            result.rejected.append(
                (
                    row,
                    _("names the same new lead as row %(row)d under another key") % {"row": lead.import_row},
                )
            )
            continue
        if "external_id" in values and lead.external_id and lead.external_id != values["external_id"]:
            result.rejected.append((row, _("the lead with this email has another external id")))
            continue
        if lead.pk in pending:
            # The same lead as an earlier row of this chunk (under another key): the later values win.
            pending[lead.pk][0].update(values)
            pending[lead.pk][1].update(row.attributes)
            result.unchanged += 1
        else:
            pending[lead.pk] = (dict(values), dict(row.attributes), lead)
    for values, attributes, lead in pending.values():
        dirty = False
        for key, value in values.items():
            if key == "created_at":
                continue  # when a lead was first known does not move on a re-import
            if getattr(lead, key) != value:
                setattr(lead, key, value)
                changed_fields.add(key)
                dirty = True
        merged = {**lead.attributes, **attributes}
        if merged != lead.attributes:
            lead.attributes = merged
            changed_fields.add("attributes")
            dirty = True
        if dirty:
            changed[lead.pk] = lead
        else:
            result.unchanged += 1
    if new:
        insert(new)
        insert(
            StageChange(lead_id=lead.pk, to_stage_id="mgl", system_actor="import", reason="imported", at=now)
            for lead in new
        )
        result.created += len(new)
        result.dirty.update(lead.pk for lead in new)
    if changed:
        for lead in changed.values():
            lead.updated_at = now
        Lead.objects.bulk_update(
            list(changed.values()), [*sorted(changed_fields), "updated_at"], batch_size=500
        )
        result.updated += len(changed)
        result.dirty.update(changed)
    return result


def _lead_ids(rows):
    """{row number: lead id} for rows naming a lead, found as ingest and the lead import find leads."""
    by_email = leads_by_email(r.values["lead_email"] for r in rows if "lead_email" in r.values)
    by_external = leads_by_external_id(
        r.values["lead_external_id"] for r in rows if "lead_external_id" in r.values
    )
    found = {}
    for row in rows:
        pk = by_email.get(row.values.get("lead_email")) or by_external.get(row.values.get("lead_external_id"))
        if pk:
            found[row.number] = pk
    return found


NO_LEAD = gettext_lazy("no lead with this email or external id (import the leads first)")


def _write_touchpoints(rows, *, now):
    result = ChunkResult()
    lead_ids = _lead_ids(rows)
    names = {r.values[k] for r in rows for k in ("campaign", "utm_campaign") if k in r.values}
    campaigns = _campaigns_by_name(names) if names else {}
    channel_of = dict(Campaign.objects.filter(pk__in=set(campaigns.values())).values_list("pk", "channel_id"))
    candidates = []
    for row in rows:
        lead_id = lead_ids.get(row.number)
        if lead_id is None:
            result.rejected.append((row, str(NO_LEAD)))
            continue
        v = row.values
        event_id = v.get("event_id") or uuid.uuid5(
            EVENT_NAMESPACE,
            "|".join(
                [
                    str(lead_id),
                    v["kind"],
                    v["occurred_at"].isoformat(),
                    v.get("url", ""),
                    v.get("utm_campaign", ""),
                ]
            ),
        )
        name = v.get("campaign") or v.get("utm_campaign") or ""
        campaign_id = campaigns.get(name.lower())
        candidates.append(
            Touchpoint(
                client_event_id=event_id,
                lead_id=lead_id,
                kind=v["kind"],
                occurred_at=v["occurred_at"],
                received_at=now,
                url=v.get("url", ""),
                referrer=v.get("referrer", ""),
                page_title=v.get("page_title", ""),
                utm_source=v.get("utm_source", ""),
                utm_medium=v.get("utm_medium", ""),
                utm_campaign=v.get("utm_campaign", ""),
                campaign_id=campaign_id,
                channel_id=channel_of.get(campaign_id),
            )
        )
    seen = set(
        Touchpoint.objects.filter(client_event_id__in=[t.client_event_id for t in candidates]).values_list(
            "client_event_id", flat=True
        )
    )
    fresh, ids = [], set()
    for touchpoint in candidates:
        if touchpoint.client_event_id in seen or touchpoint.client_event_id in ids:
            result.unchanged += 1
        else:
            ids.add(touchpoint.client_event_id)
            fresh.append(touchpoint)
    Touchpoint.objects.bulk_create(fresh, ignore_conflicts=True)
    result.created += len(fresh)
    result.dirty.update(t.lead_id for t in fresh)
    return result


def _write_sales_activities(rows, *, now):
    result = ChunkResult()
    lead_ids = _lead_ids(rows)
    reps = {r.values["rep"].lower() for r in rows if "rep" in r.values}
    rep_ids = {}
    # Matched without regard to case on both sides: "Anna.Schmidt" in the database is "anna.schmidt" in reps.
    for pk, username, email in (
        User.objects.annotate(username_lower=Lower("username"), email_lower=Lower("email"))
        .filter(
            Q(username_lower__in=reps) | Q(email_lower__in=reps),
            groups__name__in=["sales rep", "sales manager", "admin"],
        )
        .values_list("pk", "username", "email")
    ):
        rep_ids[username.lower()] = pk
        if email:
            rep_ids.setdefault(email.lower(), pk)
    existing = set(
        SalesActivity.objects.filter(lead_id__in=set(lead_ids.values())).values_list(
            "lead_id", "kind", "occurred_at"
        )
    )
    fresh = []
    for row in rows:
        lead_id = lead_ids.get(row.number)
        if lead_id is None:
            result.rejected.append((row, str(NO_LEAD)))
            continue
        v = row.values
        rep_id = None
        if "rep" in v:
            rep_id = rep_ids.get(v["rep"].lower())
            if rep_id is None:
                result.rejected.append((row, _("no sales user “%(rep)s”") % {"rep": v["rep"][:100]}))
                continue
        key = (lead_id, v["kind"], v["occurred_at"])
        if key in existing:
            result.unchanged += 1
            continue
        existing.add(key)
        fresh.append(
            SalesActivity(
                lead_id=lead_id,
                rep_id=rep_id,
                kind=v["kind"],
                outcome=v.get("outcome", ""),
                note=v.get("note", ""),
                occurred_at=v["occurred_at"],
                next_follow_up=v.get("next_follow_up"),
            )
        )
    SalesActivity.objects.bulk_create(fresh)
    result.created += len(fresh)
    return result


def _write_campaigns(rows, *, now):
    result = ChunkResult()
    rows, folded = _merge_duplicates_in_chunk(rows, lambda r: r.values["name"].lower())
    result.unchanged += folded
    channels = {}
    for channel in Channel.objects.all():
        for spelling in (channel.code, channel.name_en, channel.name_de):
            channels[spelling.lower()] = channel.pk
    existing = {
        c.name.lower(): c
        for c in Campaign.objects.annotate(lowered=Lower("name")).filter(
            lowered__in=[r.values["name"].lower() for r in rows]
        )
    }
    # Stored as slugs: look them up as the rows will store them, or a collision ends the job in an IntegrityError.
    utms = dict(
        Campaign.objects.filter(
            utm_campaign__in=[
                slugify(r.values["utm_campaign"])[:100] for r in rows if "utm_campaign" in r.values
            ]
        ).values_list("utm_campaign", "name")
    )
    for row in rows:
        v = dict(row.values)
        if "channel" in v:
            channel_id = channels.get(v.pop("channel").lower())
            if channel_id is None:
                result.rejected.append(
                    (row, _("is on no known channel (e.g. %(codes)s)") % {"codes": "email, webinar"})
                )
                continue
            v["channel_id"] = channel_id
        if "utm_campaign" in v:
            v["utm_campaign"] = slugify(v["utm_campaign"])[:100] or None
            owner = utms.get(v["utm_campaign"])
            if owner and owner.lower() != v["name"].lower():
                result.rejected.append((row, _("its UTM campaign belongs to “%(name)s”") % {"name": owner}))
                continue
        campaign = existing.get(v["name"].lower())
        start, end = v.get("starts_on") or getattr(campaign, "starts_on", None), v.get("ends_on")
        end = end or getattr(campaign, "ends_on", None)
        if start and end and end < start:
            result.rejected.append((row, _("ends before it starts")))
            continue
        if campaign is None:
            if "channel_id" not in v or "starts_on" not in v:
                result.rejected.append((row, _("a new campaign needs a channel and a start date")))
                continue
            Campaign.objects.create(**v)
            if v.get("utm_campaign"):
                utms[v["utm_campaign"]] = v["name"]
            result.created += 1
            continue
        changed = [key for key, value in v.items() if key != "name" and getattr(campaign, key) != value]
        if changed:
            for key in changed:
                setattr(campaign, key, v[key])
            campaign.save(update_fields=changed)
            if v.get("utm_campaign"):
                utms[v["utm_campaign"]] = campaign.name
            result.updated += 1
        else:
            result.unchanged += 1
    return result


# --- Jobs --------------------------------------------------------------------------------------------------

CHUNK_ROWS = 2000
PREVIEW_ROWS = 20
STALE_AFTER = timedelta(minutes=2)


def open_file(job):
    return CsvFile(
        text=decode(bytes(job.content))[0], encoding=job.encoding, delimiter=job.delimiter, header=job.header
    )


def create_job(*, kind, filename, data, by, preset=None):
    """An ImportJob for an uploaded file, waiting for its mapping; NotReadable if the file is no usable CSV."""
    csv_file = read_csv(data)
    if len(csv_file.header) > MAX_COLUMNS:
        raise NotReadable(
            _(
                "The file has %(n)d columns; at most %(max)d can be imported. Please remove the columns you do not need."
            )
            % {"n": len(csv_file.header), "max": MAX_COLUMNS}
        )
    samples = [[] for _column in csv_file.header]
    for count, (_number, cells) in enumerate(csv_file.rows()):
        if count >= 50:
            break
        for position, cell in enumerate(cells[: len(samples)]):
            samples[position].append(cell)
    mapping = guess_mapping(kind, csv_file.header, samples, preset)
    return ImportJob.objects.create(
        kind=kind,
        filename=filename[:255],
        content=data,
        encoding=csv_file.encoding,
        delimiter=csv_file.delimiter,
        header=csv_file.header,
        mapping=mapping,
        preset=preset,
        total_rows=csv_file.count_rows(),
        created_by=by,
    )


def preview(job, mapping, limit=PREVIEW_ROWS):
    """The first rows as the import would read them: values by column and each row's messages."""
    csv_file = open_file(job)
    plan = compile_plan(job.kind, csv_file.header, mapping)
    rows = []
    for number, cells in csv_file.rows():
        if len(rows) >= limit:
            break
        rows.append(parse_row(plan, number, cells))
    return rows


def queue_job(*, job, mapping, by, preset_name=""):
    """Fix the mapping, optionally save it as a preset, and queue the run (after commit)."""
    from . import tasks

    with transaction.atomic():
        claimed = ImportJob.objects.filter(pk=job.pk, status=ImportJob.Status.MAPPING).update(
            mapping=mapping, status=ImportJob.Status.QUEUED
        )
        if not claimed:
            return False
        if preset_name:
            by_header = {
                name: entry
                for name, entry in zip(job.header, mapping["columns"], strict=True)
                if entry.get("target")
            }
            ImportPreset.objects.update_or_create(
                name=preset_name, defaults={"kind": job.kind, "mapping": by_header, "created_by": by}
            )
        transaction.on_commit(lambda: tasks.run_import.delay(job.pk))
    return True


def run_job(*, job_id):
    """Run a queued job to its end, chunk by chunk; each chunk and its progress commit together, so a job that
    dies resumes at the first row not yet written. Safe to call twice: one caller claims it, the other returns."""
    now = timezone.now()
    claimed = ImportJob.objects.filter(
        Q(status=ImportJob.Status.QUEUED)
        | Q(status=ImportJob.Status.RUNNING, heartbeat_at__lt=now - STALE_AFTER),
        pk=job_id,
    ).update(status=ImportJob.Status.RUNNING, heartbeat_at=now, started_at=Coalesce(F("started_at"), now))
    if not claimed:
        return
    job = ImportJob.objects.get(pk=job_id)
    csv_file = open_file(job)
    mapping = job.mapping
    if "canon" not in mapping:
        mapping["canon"] = canonical_spellings(csv_file, mapping)
        ImportJob.objects.filter(pk=job.pk).update(mapping=mapping)
    try:
        chunk, position = [], job.next_row
        for index, (number, cells) in enumerate(csv_file.rows()):
            if index < job.next_row:
                continue
            chunk.append((number, cells))
            if len(chunk) >= CHUNK_ROWS:
                position = index + 1
                if not _run_chunk(job, mapping, csv_file.header, chunk, position):
                    return
                chunk = []
        if chunk and not _run_chunk(job, mapping, csv_file.header, chunk, job.total_rows):
            return
    except Exception as exc:
        log.exception("import %s failed", job_id)
        ImportJob.objects.filter(pk=job_id).update(
            status=ImportJob.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        return
    ImportJob.objects.filter(pk=job_id, status=ImportJob.Status.RUNNING).update(
        status=ImportJob.Status.DONE, next_row=job.total_rows, finished_at=timezone.now()
    )


def _run_chunk(job, mapping, header, chunk, next_row):
    """Write one chunk and move the job's position past it, in one transaction; False if someone else has."""
    now = timezone.now()
    with transaction.atomic():
        locked = ImportJob.objects.select_for_update().filter(pk=job.pk).only("next_row", "status").first()
        if locked is None or locked.status != ImportJob.Status.RUNNING or locked.next_row != job.next_row:
            return False
        plan = compile_plan(job.kind, header, mapping)
        parsed = [parse_row(plan, number, cells) for number, cells in chunk]
        good = [row for row in parsed if not row.errors]
        result = write_chunk(job.kind, good, now=now) if good else ChunkResult()
        rejected = [(row, "; ".join(row.errors)) for row in parsed if row.errors] + result.rejected
        ImportRejection.objects.bulk_create(
            [
                ImportRejection(
                    job_id=job.pk,
                    row_number=row.number,
                    reason=reason[:2000],
                    # PostgreSQL's jsonb cannot hold NUL; the reason names the cell that had one.
                    cells=[cell.replace("\x00", "") for cell in row.cells[:200]],
                )
                for row, reason in rejected
            ],
            ignore_conflicts=True,
        )
        if result.dirty:
            mark_dirty(lead_ids=result.dirty)
        ImportJob.objects.filter(pk=job.pk).update(
            next_row=next_row,
            created=F("created") + result.created,
            updated=F("updated") + result.updated,
            unchanged=F("unchanged") + result.unchanged,
            rejected=F("rejected") + len(rejected),
            heartbeat_at=now,
        )
    job.next_row = next_row
    return True


def sweep():
    """Queue again what a lost message or a dead worker left behind."""
    from . import tasks

    stale = timezone.now() - STALE_AFTER
    for pk in ImportJob.objects.filter(
        Q(status=ImportJob.Status.QUEUED, created_at__lt=stale)
        | Q(status=ImportJob.Status.RUNNING, heartbeat_at__lt=stale)
    ).values_list("pk", flat=True)[:10]:
        tasks.run_import.delay(pk)
