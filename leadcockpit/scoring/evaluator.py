"""The reference evaluator: scores one lead in plain Python and explains every point.

It defines what a score is. The set-based SQL in rescoring.py must agree with it (a property test holds them
equal), so both follow the same rules, spelled out here:

- fit = the points of every fit criterion whose condition holds;
- interest = per interest criterion, the sum over matching touchpoints with occurred_at <= as_of (and within the
  look-back, if any) of points × 0.5 ** (age in days / half-life), then capped at ±cap;
- score = fit + interest; any knock-out that holds forces red, cold and no MQL;
- band, temperature, grade and MQL follow the version's thresholds.
"""

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .fields import (
    BOOLEAN,
    CONTAINS,
    DOMAIN_IN,
    EQUALS,
    FIT_FIELDS,
    IN_LIST,
    IS_EMPTY,
    IS_SET,
    NUMBER,
    RANGE,
    ascii_lower,
    attribute_of,
    attribute_value_kind,
)

DAY_SECONDS = 86400.0


@dataclass(frozen=True)
class Contribution:
    criterion_id: int
    label: str
    kind: str
    points: float
    occurrences: int = 0


@dataclass
class Evaluation:
    fit: float
    interest: float
    score: float
    band: str
    temperature: str
    grade: str
    is_mql: bool
    knockouts: list = field(default_factory=list)  # (criterion id, label, reason)
    contributions: list = field(default_factory=list)
    as_of: datetime | None = None

    def missing_to_mql(self, version):
        """What stands between this lead and MQL, as (what, how much) pairs; empty when it is an MQL."""
        missing = []
        if self.knockouts:
            missing.append(("knockout", None))
        if self.score < version.mql_threshold:
            missing.append(("points", version.mql_threshold - self.score))
        if version.min_fit_for_mql is not None and self.fit < version.min_fit_for_mql:
            missing.append(("fit", version.min_fit_for_mql - self.fit))
        return missing


def field_value(lead, key):
    """The raw value of an allowlisted field on a lead (company fields are None without a company; an imported
    attribute is its JSON value, None where the lead has none)."""
    name = attribute_of(key)
    if name is not None:
        return (lead.attributes or {}).get(name)
    spec = FIT_FIELDS[key]
    if spec.table == "company":
        company = lead.company
        value = getattr(company, spec.column) if company is not None else None
        if spec.column == "country" and value is not None:
            value = value.code or ""
    else:
        value = getattr(lead, spec.column)
    if spec.kind == NUMBER and value is not None:
        value = float(value)
    return value


def condition_holds(lead, key, operator, value) -> bool:
    actual = field_value(lead, key)
    empty = actual is None or actual == ""
    if operator == IS_EMPTY:
        return empty
    if operator == IS_SET:
        return not empty
    if empty:
        return False
    if attribute_of(key) is not None:
        # An attribute holds whatever JSON the import wrote: a condition tests only values of its own type.
        kind = attribute_value_kind(operator, value)
        if kind == BOOLEAN:
            return isinstance(actual, bool) and actual == value
        is_number = isinstance(actual, int | float) and not isinstance(actual, bool)
        if kind == NUMBER:
            if not is_number:
                return False
            actual = float(actual)
        elif not isinstance(actual, str):
            return False
    else:
        kind = FIT_FIELDS[key].kind
    if kind == NUMBER:
        if operator == EQUALS:
            return actual == value
        if operator == RANGE:
            return (value["min"] is None or actual >= value["min"]) and (
                value["max"] is None or actual <= value["max"]
            )
        return False
    text = ascii_lower(str(actual))
    if operator == EQUALS:
        return text == ascii_lower(value)
    if operator == IN_LIST:
        return text in {ascii_lower(item) for item in value}
    if operator == CONTAINS:
        return ascii_lower(value) in text
    if operator == DOMAIN_IN:
        return text.rpartition("@")[2] in value
    return False


def touchpoint_matches(criterion, touchpoint) -> bool:
    if criterion.touchpoint_kinds and touchpoint.kind not in criterion.touchpoint_kinds:
        return False
    if criterion.url_contains and ascii_lower(criterion.url_contains) not in ascii_lower(
        touchpoint.url or ""
    ):
        return False
    if criterion.channel_id and touchpoint.channel_id != criterion.channel_id:
        return False
    return not (
        criterion.search_contains
        and ascii_lower(criterion.search_contains) not in ascii_lower(touchpoint.search_terms or "")
    )


def interest_points(criterion, touchpoints, as_of) -> tuple[float, int]:
    total, count = 0.0, 0
    since = as_of - timedelta(days=criterion.lookback_days) if criterion.lookback_days else None
    for touchpoint in touchpoints:
        at = touchpoint.occurred_at
        if at > as_of or (since is not None and at < since) or not touchpoint_matches(criterion, touchpoint):
            continue
        count += 1
        if criterion.half_life_days:
            age_days = (as_of - at).total_seconds() / DAY_SECONDS
            total += criterion.points * 0.5 ** (age_days / criterion.half_life_days)
        else:
            total += criterion.points
    if criterion.cap is not None:
        total = max(-criterion.cap, min(criterion.cap, total))
    return total, count


def classify(version, fit, interest, knocked_out):
    """(score, band, temperature, grade, is_mql) from the two axes and the thresholds."""
    score = fit + interest
    if knocked_out or score < version.yellow_from:
        band = "red"
    else:
        band = "green" if score >= version.green_from else "yellow"
    if knocked_out or score < version.warm_from:
        temperature = "cold"
    else:
        temperature = "hot" if score >= version.hot_from else "warm"
    letter = (
        "A"
        if fit >= version.fit_a_from
        else "B"
        if fit >= version.fit_b_from
        else "C"
        if fit >= version.fit_c_from
        else "D"
    )
    number = (
        "1"
        if interest >= version.interest_1_from
        else "2"
        if interest >= version.interest_2_from
        else "3"
        if interest >= version.interest_3_from
        else "4"
    )
    is_mql = (
        not knocked_out
        and score >= version.mql_threshold
        and (version.min_fit_for_mql is None or fit >= version.min_fit_for_mql)
    )
    return score, band, temperature, letter + number, is_mql


def evaluate(lead, version, *, as_of, criteria=None, touchpoints=None) -> Evaluation:
    """Score `lead` with `version` as of `as_of`. Pass criteria/touchpoints to avoid queries in loops."""
    criteria = list(version.criteria.all()) if criteria is None else criteria
    if touchpoints is None:
        touchpoints = list(
            lead.touchpoints.only("lead", "kind", "url", "channel", "search_terms", "occurred_at")
        )
    fit = interest = 0.0
    contributions, knockouts = [], []
    for criterion in criteria:
        if criterion.kind == "fit":
            if condition_holds(lead, criterion.field, criterion.operator, criterion.value):
                fit += criterion.points
                contributions.append(Contribution(criterion.pk, criterion.label, "fit", criterion.points))
        elif criterion.kind == "interest":
            points, count = interest_points(criterion, touchpoints, as_of)
            interest += points
            if count:
                contributions.append(Contribution(criterion.pk, criterion.label, "interest", points, count))
        elif criterion.kind == "knockout" and condition_holds(
            lead, criterion.field, criterion.operator, criterion.value
        ):
            knockouts.append((criterion.pk, criterion.label, criterion.reason))
    score, band, temperature, grade, is_mql = classify(version, fit, interest, bool(knockouts))
    return Evaluation(
        fit=fit,
        interest=interest,
        score=score,
        band=band,
        temperature=temperature,
        grade=grade,
        is_mql=is_mql,
        knockouts=knockouts,
        contributions=contributions,
        as_of=as_of,
    )


def rule_holds(lead, rule) -> bool:
    """Whether a scoring model's rule (a list of conditions, all required) covers this lead."""
    return all(condition_holds(lead, c["field"], c["operator"], c["value"]) for c in rule)


def choose_version(lead, active_versions):
    """The active version that scores this lead: the first model by priority whose rule holds, or None."""
    for version in active_versions:
        if rule_holds(lead, version.model.rule):
            return version
    return None
