"""Evidence-based scoring: learn from the leads whose outcome is known which criteria predict a deal, explain
each in words a marketer reads, turn the fit into integer points, and guard against fields that know the outcome.

The steps of a learning run (learn()):

1. Rows: every lead the model covers (its rule) whose outcome is known: won (or customer, upsell) = 1, lost = 0;
   for imported history without a lifecycle outcome, an imported attribute the import marked as the outcome
   (X Education's Converted). A fixed share (30 %) is held out, stratified by outcome and chosen by a seeded hash
   of each lead's identity, so the same leads are held out every time.
2. Candidates: the lead and company fields of the allowlist, every imported attribute, and one activity signal
   per touchpoint kind (counted up to the moment the outcome was known). Each becomes columns that a criterion
   can express exactly, so the points model scores what the learned model saw:
   - text and choice values (case folded, as the evaluator compares them) with enough support: one column each
     ("equals"), one for "empty", and the rest in an "other" column that is the baseline (0 points);
   - yes/no: a column per answer and one for "empty";
   - numbers: "at least e" columns at the quantile edges (a step function; the sum of the steps a lead passes
     is its points), and "empty";
   - activity: per kind, occurrences counted up to 1, 3 and 10 (interest criteria with points per occurrence
     and a cap): a concave or convex curve in the number of touchpoints.
3. Leakage guard (guard()): a field entered by sales after contact (the import's provenance, or BANT, which
   reps fill in), an identifier or the outcome is excluded; so is a field that separates the outcomes nearly
   perfectly (values covering ≥ 10 % of the leads convert at ≥ 98 % or ≤ 2 %, or the field alone ranks the
   outcomes with AUC ≥ 0.95), and an activity mostly recorded after the outcome was known. Each exclusion
   carries its reason; `include` in the options overrides the statistical findings, never a provenance.
4. Fit: L2-regularised logistic regression (lib/logit.py) on the training rows; coefficients with 95 %
   confidence intervals from the penalised Fisher information.
5. Explain: per column its effect relative to its field's baseline (coefficient, CI, odds ratio), the
   conversion of the leads with and without it, and the support; describe() puts that in words.
6. Points: points = round(coefficient × S). One point is a fixed step of log-odds: S = T / (logit(p*) − b),
   where T is the MQL threshold, p* the conversion chance a lead at the threshold should have (default 50 %)
   and b the log-odds of a lead with 0 points, so a lead scoring T has about a p* chance. Values with very low
   conversion and enough support are suggested as knock-outs.
7. Held-out figures: ROC AUC of the learned model and of the integer points on the held-out leads, lift per
   decile, calibration.

create_draft_from_suggestion() makes the suggestion a draft version that then goes through the workbench,
backtest and joint sign-off like any other.
"""

import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np
from django.db import connection, transaction
from django.db.models import Q
from django.utils import formats, timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from leadcockpit.leads import lifecycle
from leadcockpit.leads.models import Touchpoint
from leadcockpit.lib import logit

from .fields import (
    BOOLEAN,
    CHOICE,
    DOMAIN_IN,
    EMAIL,
    EQUALS,
    FIT_FIELDS,
    IN_LIST,
    IS_EMPTY,
    IS_SET,
    MAX_LIST_ITEMS,
    NUMBER,
    RANGE,
    TEXT,
    ascii_lower,
    attribute_catalogue,
    clean_condition,
)
from .models import Criterion, LearningRun, ScoringVersion
from .rescoring import COMPANY, LEAD, TOUCHPOINT, Dialect, column, rule_sql

log = logging.getLogger(__name__)

WON_STAGES = (lifecycle.WON, lifecycle.CUSTOMER_CARE, lifecycle.UPSELL)
HOLDOUT_SHARE = 0.3
SPLIT_SEED = "leadcockpit-70-30"
MIN_SUPPORT = 20  # leads a value needs (in the training rows) to get a column of its own
MAX_LEVELS = 30  # values per field at most, the best supported
NUMBER_BINS = 10  # quantile steps per number
COUNT_CAPS = (1, 3, 10)  # activity: occurrences counted up to each cap
L2 = 1.0
MQL_PROBABILITY = 0.5
MIN_LOGIT_GAP = 1.0  # the MQL threshold sits at least this far (in log-odds) above a 0-point lead
# Leakage guard
SEPARATION_RATE = 0.02  # a value converting at ≤ 2 % or ≥ 98 % …
SEPARATION_SUPPORT = 30  # … with at least this many leads (and 1 % of them) …
SEPARATION_COVERAGE = 0.10  # … covering this share of the leads separates the outcomes nearly perfectly
SINGLE_AUC = 0.95  # a field that alone ranks the outcomes this well knows them
AFTER_OUTCOME_SHARE = 0.5  # an activity recorded after the outcome this often follows from it
# Knock-out suggestions
KNOCKOUT_RATE = 0.03
KNOCKOUT_HIGH = 0.06  # the upper 95 % bound of its conversion
KNOCKOUT_SUPPORT = 30

# Who enters the built-in fields: BANT comes from the rep's qualification questionnaire, after contact.
BUILTIN_PROVENANCE = {"budget": "sales", "authority": "sales", "need": "sales", "timeframe": "sales"}
# Identifiers, not signals: every value is its own.
BUILTIN_SKIP = {"company_domain", "first_channel"}
PROVENANCE_REASONS = {
    "sales": gettext_lazy(
        "Entered by sales after contact: it records what sales learned, not what predicts it."
    ),
    "outcome": gettext_lazy("It is the outcome itself."),
    "id": gettext_lazy("An identifier, not a signal."),
}
NEVER_INCLUDED = {"outcome", "id", "sales"}  # facts about a field, not findings: no override


# --- Permissions ---------------------------------------------------------------------------------------------


def can_learn(user):
    """Marketing (and admins) run learning and turn suggestions into drafts."""
    from leadcockpit.accounts.roles import Role, role_of

    return role_of(user) in (Role.ADMIN, Role.MARKETING)


def can_view_evidence(user):
    """Marketing, admins and sales managers read learning runs and validity reports."""
    from leadcockpit.accounts.roles import Role, role_of

    return role_of(user) in (Role.ADMIN, Role.MARKETING, Role.SALES_MANAGER)


# --- Outcomes ------------------------------------------------------------------------------------------------


def outcome_attributes(catalogue):
    """Imported attributes marked as the outcome, of a type that can say yes or no."""
    return [a for a in catalogue.values() if a.provenance == "outcome" and a.type in ("boolean", "number")]


def outcome_sql(d, params, catalogue):
    """SQL over l: 1 converted, 0 not, NULL unknown. The lifecycle first (won, customer, upsell: 1; lost: 0), then
    any imported outcome attribute (yes, or a number other than 0: 1)."""
    parts = [
        f"WHEN l.stage_id IN ({', '.join(['%s'] * len(WON_STAGES))}) THEN 1",
        "WHEN l.stage_id = %s THEN 0",
    ]
    params.extend([*WON_STAGES, lifecycle.LOST])
    for attribute in outcome_attributes(catalogue):
        if attribute.type == "boolean":
            typed = d.json_type(attribute.name, params)
            text = d.json_text(attribute.name, params)
            parts.append(f"WHEN {typed} = 'boolean' THEN (CASE WHEN {text} = 'true' THEN 1 ELSE 0 END)")
        else:
            typed = d.json_type(attribute.name, params)
            text = d.json_text(attribute.name, params)
            parts.append(f"WHEN {typed} = 'number' THEN (CASE WHEN {d.number(text)} <> 0 THEN 1 ELSE 0 END)")
    return f"(CASE {' '.join(parts)} END)"


def outcome_at_sql(params):
    """SQL over l: when a lifecycle outcome became known (closing); NULL for imported outcomes."""
    params.extend([*WON_STAGES, lifecycle.LOST])
    return (
        f"(CASE WHEN l.stage_id IN ({', '.join(['%s'] * (len(WON_STAGES) + 1))}) "
        "THEN COALESCE(l.closed_at, l.stage_changed_at) END)"
    )


# --- Rows ----------------------------------------------------------------------------------------------------


@dataclass
class Candidate:
    """A field or signal the learner may use: where its values come from and who enters them."""

    key: str  # a criterion field key, or "activity:<touchpoint kind>"
    label: str
    source: str  # field, attribute, activity
    kind: str  # CHOICE, TEXT, NUMBER, EMAIL, BOOLEAN, or "count"
    provenance: str
    values: list = field(default_factory=list, repr=False)  # per row (counts: a numpy array)
    after_outcome: tuple = (0, 0)  # activity: (touchpoints after the outcome, touchpoints of closed leads)


@dataclass
class Rows:
    ids: np.ndarray
    y: np.ndarray
    identities: list
    lifecycle_outcomes: int
    candidates: list


def load_rows(model, *, catalogue, as_of):
    """The leads the model covers whose outcome is known, with every candidate's values."""
    d = Dialect(connection.vendor)
    params = []
    outcome = outcome_sql(d, params, catalogue)
    lifecycle_flag = (
        f"(CASE WHEN l.stage_id IN ({', '.join(['%s'] * (len(WON_STAGES) + 1))}) THEN 1 ELSE 0 END)"
    )
    params.extend([*WON_STAGES, lifecycle.LOST])
    builtin = [key for key in FIT_FIELDS if key not in BUILTIN_SKIP]
    columns = ", ".join(column(key) for key in builtin)
    attributes = "l.attributes" if catalogue else "NULL"  # no import declared any: spare parsing them
    select = (
        f"SELECT l.id, {outcome} AS outcome, {lifecycle_flag}, COALESCE(l.external_id, l.email), {columns}, "
        f"{attributes} FROM {LEAD} l LEFT JOIN {COMPANY} c ON c.id = l.company_id WHERE "
    )
    where_params = []
    where = (
        f"{outcome_sql(d, where_params, catalogue)} IS NOT NULL AND ({rule_sql(d, model.rule, where_params)})"
    )
    with connection.cursor() as cursor:
        cursor.execute(select + where + " ORDER BY l.id", params + where_params)
        fetched = cursor.fetchall()
    n = len(fetched)
    ids = np.fromiter((row[0] for row in fetched), dtype=np.int64, count=n)
    y = np.fromiter((row[1] for row in fetched), dtype=float, count=n)
    identities = [row[3] or str(row[0]) for row in fetched]
    lifecycle_outcomes = sum(row[2] for row in fetched)
    candidates = []
    for offset, key in enumerate(builtin, start=4):
        spec = FIT_FIELDS[key]
        values = [row[offset] for row in fetched]
        if spec.kind == NUMBER:
            values = [None if v is None else float(v) for v in values]
        candidates.append(
            Candidate(
                key, str(spec.label), "field", spec.kind, BUILTIN_PROVENANCE.get(key, "marketing"), values
            )
        )
    attributes_at = 4 + len(builtin)
    documents = [row[attributes_at] for row in fetched]
    if documents and isinstance(documents[0], str):
        documents = [json.loads(doc) if doc else {} for doc in documents]
    for attribute in sorted(catalogue.values(), key=lambda a: a.name):
        values = [(doc or {}).get(attribute.name) for doc in documents]
        kind = {"number": NUMBER, "boolean": BOOLEAN}.get(attribute.type, TEXT)
        candidates.append(
            Candidate(attribute.key, attribute.label, "attribute", kind, attribute.provenance, values)
        )
    candidates.extend(_activity(d, ids, model, catalogue, as_of))
    return Rows(ids, y, identities, lifecycle_outcomes, candidates)


def _activity(d, ids, model, catalogue, as_of):
    """Per touchpoint kind: each row's touchpoints up to its outcome (all, for imported outcomes), and how many
    of the closed leads' touchpoints came after their outcome."""
    if not len(ids):
        return []
    params = []
    outcome_at = outcome_at_sql(params)
    where_params = []
    where = (
        f"{outcome_sql(d, where_params, catalogue)} IS NOT NULL AND ({rule_sql(d, model.rule, where_params)})"
    )
    sql = (
        f"SELECT t.lead_id, t.kind, SUM(CASE WHEN o.at IS NULL OR t.occurred_at <= o.at THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN o.at IS NOT NULL AND t.occurred_at > o.at THEN 1 ELSE 0 END), "
        f"SUM(CASE WHEN o.at IS NOT NULL THEN 1 ELSE 0 END) "
        f"FROM {TOUCHPOINT} t JOIN (SELECT l.id AS id, {outcome_at} AS at FROM {LEAD} l "
        f"LEFT JOIN {COMPANY} c ON c.id = l.company_id WHERE {where}) o ON o.id = t.lead_id "
        f"WHERE t.occurred_at <= %s GROUP BY t.lead_id, t.kind"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, *where_params, as_of])
        fetched = cursor.fetchall()
    position = {int(pk): index for index, pk in enumerate(ids)}
    labels = dict(Touchpoint.Kind.choices)
    counts, after = {}, {}
    for lead_id, kind, before_count, after_count, closed_count in fetched:
        if kind not in labels:
            continue
        if kind not in counts:
            counts[kind] = np.zeros(len(ids))
        counts[kind][position[lead_id]] = before_count
        late, total = after.get(kind, (0, 0))
        after[kind] = (late + int(after_count), total + int(closed_count))
    return [
        Candidate(
            f"activity:{kind}", str(labels[kind]), "activity", "count", "marketing", counts[kind], after[kind]
        )
        for kind in sorted(counts)
    ]


def holdout_mask(identities, y, *, share=HOLDOUT_SHARE, seed=SPLIT_SEED):
    """True for the held-out rows: per outcome, the last `share` of the rows ordered by a seeded hash of their
    identity (external id, else email, else id), so the split depends on who the leads are, not on their order."""
    mask = np.zeros(len(y), dtype=bool)
    for value in (0.0, 1.0):
        members = [i for i in range(len(y)) if y[i] == value]
        members.sort(key=lambda i: hashlib.sha256(f"{seed}:{identities[i]}".encode()).hexdigest())
        cut = int(round((1 - share) * len(members)))
        mask[members[cut:]] = True
    return mask


# --- Columns ------------------------------------------------------------------------------------------------


@dataclass
class Column:
    """One feature: a 0/1 (or 0…1 for activity) column and the criterion that computes it."""

    group: str  # the candidate's key
    role: str  # level, empty, other, baseline, at_least, at_most, per_occurrence
    value_label: str
    criterion: dict | None  # {"kind", "field", "operator", "value"} or interest matchers; None for "other"
    data: np.ndarray = field(repr=False)
    cap: int = 0  # per_occurrence: the cap in occurrences
    lower: int = 1  # per_occurrence: "with" means at least this many occurrences
    baseline: bool = False  # the field's baseline: 0 points, the others are relative to it


def _text_value(candidate, value):
    """The case-folded value a text-like candidate groups by, or None for empty, or False for a value no
    condition of its kind can match (another JSON type)."""
    if value is None or value == "":
        return None
    if candidate.source == "attribute" and not isinstance(value, str):
        return False
    text = str(value)
    if candidate.kind == EMAIL:
        return ascii_lower(text).rpartition("@")[2] or False
    return ascii_lower(text)


def _clean_ok(key, operator, value, catalogue):
    """Whether the allowlist takes the condition unchanged (a value it would strip or refuse is no column)."""
    from django.core.exceptions import ValidationError

    try:
        cleaned = clean_condition(key, operator, value, catalogue=catalogue)
    except ValidationError:
        return None
    return cleaned


def columns_for(candidate, train, catalogue):
    """The columns of one candidate, their levels and edges chosen on the training rows."""
    if candidate.kind == "count":
        return _count_columns(candidate, train)
    if candidate.kind == NUMBER:
        return _number_columns(candidate, train, catalogue)
    return _level_columns(candidate, train, catalogue)


def _level_columns(candidate, train, catalogue):
    """A column per well-supported value, one for "empty" and one for the rarer values together ("is one of"),
    each where it has MIN_SUPPORT training leads and the allowlist can express it. What has no column of its
    own joins the field's baseline column: its most common value, or, when the rare values cannot be named in
    one criterion (hundreds of them, or spellings the allowlist would change), the rare values. The baseline
    gets no criterion and 0 points; every lead falls in exactly one column."""
    n = len(candidate.values)
    if candidate.kind == BOOLEAN:
        # "?": another JSON type, which no yes/no condition matches
        keys = [
            None if v is None or v == "" else ("yes" if v is True else "no" if v is False else "?")
            for v in candidate.values
        ]
    else:
        keys = [_text_value(candidate, v) for v in candidate.values]
    support, spelling = {}, {}
    for index in np.flatnonzero(train):
        key = keys[index]
        if isinstance(key, str) and key != "?":
            support[key] = support.get(key, 0) + 1
            if candidate.kind not in (BOOLEAN, EMAIL):
                counts = spelling.setdefault(key, {})
                raw = candidate.values[index]
                counts[raw] = counts.get(raw, 0) + 1

    def shown(key):
        if candidate.kind == BOOLEAN:
            return _("yes") if key == "yes" else _("no")
        if candidate.kind == EMAIL:
            return key
        return max(spelling[key].items(), key=lambda item: (item[1], item[0]))[0]

    levels = {}  # key → cleaned condition
    for key in sorted((k for k, c in support.items() if c >= MIN_SUPPORT), key=lambda k: (-support[k], k)):
        if len(levels) >= MAX_LEVELS:
            break
        if candidate.kind == BOOLEAN:
            condition = (candidate.key, EQUALS, key == "yes")
        elif candidate.kind == EMAIL:
            condition = (candidate.key, DOMAIN_IN, [key])
        else:
            condition = (candidate.key, EQUALS, shown(key))
        cleaned = _clean_ok(*condition, catalogue)
        if cleaned is not None and (cleaned[2] == condition[2] or candidate.kind == EMAIL):
            levels[key] = cleaned
    rare = sorted(k for k in support if k not in levels)
    rare_support = sum(support[k] for k in rare)
    rare_condition = None
    if rare and candidate.kind in (TEXT, CHOICE, EMAIL) and len(rare) <= MAX_LIST_ITEMS:
        if candidate.kind == EMAIL:
            condition = (candidate.key, DOMAIN_IN, rare)
        else:
            condition = (candidate.key, IN_LIST, [shown(k) for k in rare])
        cleaned = _clean_ok(*condition, catalogue)
        if cleaned is not None and sorted({ascii_lower(item) for item in cleaned[2]}) == rare:
            rare_condition = cleaned
    # Each row's value as a small integer, so that columns are vectorised comparisons.
    index = {}
    codes = np.fromiter((index.setdefault(k, len(index)) for k in keys), dtype=np.int64, count=n)

    def rows_with(values):
        wanted = [index[k] for k in values if k in index]
        return np.isin(codes, wanted) if wanted else np.zeros(n, dtype=bool)

    empty = rows_with([None]).astype(float)
    empty_column = empty[train].sum() >= MIN_SUPPORT and _clean_ok(candidate.key, IS_EMPTY, None, catalogue)
    # The baseline: the rare values when they are many and cannot be named, else the most common value (with
    # the few rare values that have no column of their own).
    rare_baseline = (rare_support >= MIN_SUPPORT and rare_condition is None) or (rare_support and not levels)
    if not rare_baseline and not levels:
        return []
    baseline = None if rare_baseline else next(iter(levels))
    columns = []
    own = [key for key in levels if key != baseline]
    own_rare = (
        rare if rare_condition is not None and rare_support >= MIN_SUPPORT and not rare_baseline else []
    )
    for key in own:
        data = rows_with([key]).astype(float)
        columns.append(Column(candidate.key, "level", str(shown(key)), _fit(*levels[key]), data))
    if empty_column:
        columns.append(Column(candidate.key, "empty", _("empty"), _fit(candidate.key, IS_EMPTY, None), empty))
    if own_rare:
        data = rows_with(own_rare).astype(float)
        columns.append(Column(candidate.key, "other", _("any other value"), _fit(*rare_condition), data))
    # Everything else is the baseline (values first seen in the held-out rows included: no criterion holds).
    taken = rows_with([*own, *own_rare]) | (empty > 0 if empty_column else False)
    label = _("any other value") if rare_baseline else str(shown(baseline))
    columns.append(Column(candidate.key, "baseline", label, None, (~taken).astype(float), baseline=True))
    return columns


def _number_columns(candidate, train, catalogue):
    n = len(candidate.values)
    values = np.full(n, np.nan)
    empty = np.zeros(n)
    for index, value in enumerate(candidate.values):
        if value is None or value == "":
            empty[index] = 1
        elif isinstance(value, int | float) and not isinstance(value, bool):
            values[index] = float(value)
        # any other JSON type: no range holds, nor is it empty
    known = train & ~np.isnan(values)
    seen = values[known]
    columns = []
    if len(seen):
        # Steps at the quantile edges; the median's step is the baseline (0 points): "at least e" above it,
        # "at most v" (v: the highest training value below e) beneath it.
        distinct = np.unique(seen)
        quantiles = np.quantile(seen, np.linspace(0, 1, NUMBER_BINS + 1)[1:-1], method="lower")
        edges = sorted({float(distinct[distinct > q][0]) for q in quantiles if (distinct > q).any()})
        median = float(np.quantile(seen, 0.5, method="lower"))
        comparable = np.where(np.isnan(values), -np.inf, values)
        for edge in edges:
            above = (comparable >= edge) & ~np.isnan(values)
            if above[train].sum() < MIN_SUPPORT or (known & ~above).sum() < MIN_SUPPORT:
                continue
            if edge > median:
                role, bound = "at_least", {"min": edge, "max": None}
                data = above
            else:
                highest = float(distinct[distinct < edge][-1])
                role, bound = "at_most", {"min": None, "max": highest}
                data = (comparable <= highest) & ~np.isnan(values)
            cleaned = _clean_ok(candidate.key, RANGE, bound, catalogue)
            if cleaned is None:
                continue
            shown = bound["min"] if role == "at_least" else bound["max"]
            columns.append(
                Column(
                    candidate.key,
                    role,
                    _number(shown),
                    _fit(*cleaned),
                    data.astype(float),
                )
            )
    if empty[train].sum() >= MIN_SUPPORT and _clean_ok(candidate.key, IS_EMPTY, None, catalogue):
        columns.append(Column(candidate.key, "empty", _("empty"), _fit(candidate.key, IS_EMPTY, None), empty))
    return columns


def _count_columns(candidate, train):
    counts = candidate.values
    kind = candidate.key.split(":", 1)[1]
    columns, previous = [], 0
    for cap in COUNT_CAPS:
        if (counts[train] > previous).sum() < MIN_SUPPORT:
            break
        data = np.minimum(counts, cap) / cap
        criterion = {"kind": "interest", "touchpoint_kinds": [kind]}
        columns.append(
            Column(candidate.key, "per_occurrence", str(cap), criterion, data, cap=cap, lower=previous + 1)
        )
        previous = cap
    return columns


def _fit(key, operator, value):
    return {"kind": "fit", "field": key, "operator": operator, "value": value}


# --- Leakage guard -------------------------------------------------------------------------------------------


def guard(candidate, columns, y, train):
    """Why this candidate must stay out of the model, as (code, reason, details), or None."""
    if candidate.provenance in PROVENANCE_REASONS:
        return candidate.provenance, str(PROVENANCE_REASONS[candidate.provenance]), {}
    if candidate.kind == "count" and (finding := _after_outcome(candidate)) is not None:
        return finding
    if not columns:
        return None
    rows = np.flatnonzero(train)
    labels = y[rows]
    n = len(rows)
    # The field's cells: which column (level, empty or other; a number's step count) each row falls in.
    if candidate.kind in ("count", NUMBER):
        weight = {"empty": 1000, "at_most": -1}
        cell = sum(c.data[rows] * weight.get(c.role, 1) for c in columns)
    else:
        cell = np.zeros(n)
        for position, c in enumerate(columns, start=1):
            cell[c.data[rows] > 0] = position
    rates = {}
    for value in np.unique(cell):
        members = cell == value
        rates[value] = (members.sum(), labels[members].mean())
    single = logit.roc_auc(np.array([rates[v][1] for v in cell]), labels)
    if single is not None and max(single, 1 - single) >= SINGLE_AUC:
        return (
            "single_auc",
            _(
                "On its own it ranks converted above unconverted leads %(auc)s of the time: it knows the outcome."
            )
            % {"auc": _percent(max(single, 1 - single))},
            {"auc": round(max(single, 1 - single), 4)},
        )
    if candidate.kind not in ("count", NUMBER):
        extreme, covered = [], 0
        for position, c in enumerate(columns, start=1):
            if c.role == "empty":
                continue
            size, rate = rates.get(float(position), (0, 0.0))
            if size >= max(SEPARATION_SUPPORT, 0.01 * n) and (
                rate <= SEPARATION_RATE or rate >= 1 - SEPARATION_RATE
            ):
                extreme.append({"value": c.value_label, "n": int(size), "rate": round(float(rate), 4)})
                covered += size
        if n and covered / n >= SEPARATION_COVERAGE:
            shown = ", ".join(f"“{e['value']}” ({_percent(e['rate'])})" for e in extreme[:4])
            return (
                "separation",
                _(
                    "Values held by %(share)s of the leads almost decide the outcome (%(values)s): it looks "
                    "filled in once the outcome was known."
                )
                % {"share": _percent(covered / n), "values": shown},
                {"values": extreme, "coverage": round(covered / n, 4)},
            )
    return None


def _after_outcome(candidate):
    """An activity recorded mostly after the outcome was known follows from it (onboarding, say)."""
    late, total = candidate.after_outcome
    if total >= MIN_SUPPORT and late / total >= AFTER_OUTCOME_SHARE:
        return (
            "after_outcome",
            _("%(share)s of these touchpoints of closed leads were recorded after the outcome was known.")
            % {"share": _percent(late / total)},
            {"after": late, "of": total},
        )
    return None


def _number(value):
    """A number as a marketer reads it: 707, not 707.0."""
    value = float(value)
    if value.is_integer() and abs(value) < 1e15:
        return formats.number_format(int(value), use_l10n=True, force_grouping=True)
    return formats.number_format(round(value, 4), use_l10n=True, force_grouping=True)


def _percent(rate):
    return f"{formats.number_format(round(100 * rate), 0, use_l10n=True)} %"


# --- Learning ------------------------------------------------------------------------------------------------


def _noop(step, percent):
    pass


def learn(model, *, options=None, as_of=None, progress=_noop) -> dict:
    """Learn from the model's leads with a known outcome; the result as stored in LearningRun.result."""
    options = dict(options or {})
    as_of = as_of or timezone.now()
    started = time.perf_counter()
    timings = {}
    catalogue = attribute_catalogue()
    progress("loading", 5)
    rows = load_rows(model, catalogue=catalogue, as_of=as_of)
    timings["load_s"] = round(time.perf_counter() - started, 3)
    n = len(rows.y)
    positives = int(rows.y.sum())
    result = {
        "as_of": as_of.isoformat(),
        "n": n,
        "positives": positives,
        "outcomes": {"lifecycle": int(rows.lifecycle_outcomes), "imported": n - int(rows.lifecycle_outcomes)},
    }
    if positives < 10 or n - positives < 10:
        result["error"] = _(
            "Too few leads with a known outcome to learn from: %(positives)s converted and %(negatives)s not "
            "(at least 10 of each are needed)."
        ) % {"positives": positives, "negatives": n - positives}
        return result
    share = float(options.get("holdout", HOLDOUT_SHARE))
    seed = str(options.get("seed", SPLIT_SEED))
    holdout = holdout_mask(rows.identities, rows.y, share=share, seed=seed)
    train = ~holdout
    progress("features", 20)
    include = set(options.get("include", []))
    exclude = set(options.get("exclude", []))
    groups, excluded = [], []
    for candidate in rows.candidates:
        columns = [
            c for c in columns_for(candidate, train, catalogue) if 0 < c.data[train].sum() < train.sum()
        ]
        late = candidate.kind == "count" and _after_outcome(candidate) is not None
        if not columns and candidate.provenance not in PROVENANCE_REASONS and not late:
            continue
        if not columns and not late and not _varies(candidate, train):
            continue
        finding = guard(candidate, columns, rows.y, train)
        if candidate.key in exclude:
            finding = finding or ("excluded", _("Left out by choice."), {})
        if finding is not None:
            code, reason, details = finding
            overridden = candidate.key in include and code not in NEVER_INCLUDED and code != "excluded"
            excluded.append(
                {
                    "key": candidate.key,
                    "label": candidate.label,
                    "code": code,
                    "reason": reason,
                    "details": details,
                    "included_anyway": overridden,
                }
            )
            if not overridden:
                continue
        if columns:
            groups.append((candidate, columns))
    timings["features_s"] = round(time.perf_counter() - started - timings["load_s"], 3)
    result["excluded"] = excluded
    result["split"] = {
        "holdout": share,
        "seed": seed,
        "train_n": int(train.sum()),
        "holdout_n": int(holdout.sum()),
        "holdout_ids": [int(pk) for pk in rows.ids[holdout]],
    }
    columns = [c for _candidate, cs in groups for c in cs]
    if not columns:
        result["error"] = _("No field varies enough among these leads to learn from.")
        return result
    progress("fitting", 45)
    matrix = np.column_stack([c.data for c in columns])
    l2 = float(options.get("l2", L2))
    fitted = logit.fit_logistic(matrix[train], rows.y[train], l2=l2)
    timings["fit_s"] = round(time.perf_counter() - started - timings["load_s"] - timings["features_s"], 3)
    progress("explaining", 75)
    effects, intercept = _effects(groups, columns, fitted)
    features = _explain(columns, effects, rows.y, train)
    threshold, source = _mql_threshold(model)
    probability = float(options.get("mql_probability", MQL_PROBABILITY))
    gap = math.log(probability / (1 - probability)) - intercept
    if gap < MIN_LOGIT_GAP:
        gap = MIN_LOGIT_GAP
        probability = 1 / (1 + math.exp(-(intercept + gap)))
    scale = threshold / gap
    criteria = _criteria(columns, features, scale)
    knockouts = _knockouts(columns, features)
    progress("evaluating", 90)
    # The learned model as the points see it: each field relative to its baseline (the same on the training
    # rows; a value first seen in the held-out rows counts as the baseline in both).
    learned = intercept + matrix @ np.array([effect[0] for effect in effects])
    points = _points_scores(columns, features, n)
    result.update(
        {
            "fit": {
                "l2": l2,
                "columns": len(columns),
                "iterations": fitted.iterations,
                "converged": fitted.converged,
                "intercept": round(intercept, 6),
            },
            "features": features,
            "scale": {
                "mql_threshold": threshold,
                "threshold_from": source,
                "mql_probability": round(probability, 4),
                "points_per_logit": round(scale, 6),
                "intercept": round(intercept, 6),
            },
            "suggestion": {"criteria": criteria, "knockouts": knockouts},
            "holdout": _holdout_figures(learned, points, rows, holdout, intercept, scale),
        }
    )
    timings["total_s"] = round(time.perf_counter() - started, 3)
    result["timings"] = timings
    progress("done", 100)
    return result


def _varies(candidate, train):
    values = [candidate.values[i] for i in np.flatnonzero(train)[:5000]]
    return len({json.dumps(v, default=str) for v in values}) > 1


def _effects(groups, columns, fitted):
    """Per column (coefficient, standard error, is the baseline) relative to its field's baseline, and the
    intercept of a lead with 0 points. A field with a baseline column (every lead falls in exactly one of its
    columns) is shifted so that the baseline is 0: the same model, with the constant moved into the intercept.
    Numbers and activity count from 0 (below the first step, no touchpoint) as they are."""
    coef, cov = fitted.coef[1:], fitted.cov[1:, 1:]
    intercept = float(fitted.coef[0])
    effects = [None] * len(columns)
    index = 0
    for _candidate, group in groups:
        positions = list(range(index, index + len(group)))
        index += len(group)
        reference = next((p for p in positions if columns[p].baseline), None)
        if reference is not None:
            intercept += float(coef[reference])
        for p in positions:
            if reference is None:
                effects[p] = (float(coef[p]), math.sqrt(max(float(cov[p, p]), 0.0)), False)
                continue
            value = float(coef[p] - coef[reference])
            variance = cov[p, p] + cov[reference, reference] - 2 * cov[p, reference]
            effects[p] = (value, math.sqrt(max(float(variance), 0.0)), p == reference)
    return effects, intercept


def _explain(columns, effects, y, train):
    features = []
    rows = np.flatnonzero(train)
    labels = y[rows]
    for position, (c, (value, se, reference)) in enumerate(zip(columns, effects, strict=True)):
        # "with": the column holds (activity: at least `lower` occurrences, where this cap's count starts)
        with_ = (c.data[rows] * c.cap >= c.lower - 1e-9) if c.role == "per_occurrence" else (c.data[rows] > 0)
        n_with = int(with_.sum())
        n_without = len(rows) - n_with
        rate_with = float(labels[with_].mean()) if n_with else None
        rate_without = float(labels[~with_].mean()) if n_without else None
        low, high = value - logit.Z95 * se, value + logit.Z95 * se
        z = value / se if se > 0 else 0.0
        features.append(
            {
                "id": position,
                "group": c.group,
                "role": c.role,
                "value": c.value_label,
                "cap": c.cap or None,
                "lower": c.lower if c.role == "per_occurrence" else None,
                "criterion": c.criterion,
                "reference": reference,
                "coef": round(value, 6),
                "se": round(se, 6),
                "ci": [round(low, 6), round(high, 6)],
                "odds_ratio": round(math.exp(value), 6),
                "odds_ratio_ci": [round(math.exp(low), 6), round(math.exp(high), 6)],
                "p_value": round(math.erfc(abs(z) / math.sqrt(2)), 6),
                "significant": bool(low > 0 or high < 0),
                "support": n_with,
                "rate_with": None if rate_with is None else round(rate_with, 6),
                "rate_with_ci": [round(v, 6) for v in logit.wilson(float(labels[with_].sum()), n_with)]
                if n_with
                else None,
                "rate_without": None if rate_without is None else round(rate_without, 6),
                "n_without": n_without,
            }
        )
    baselines = {f["group"]: f["value"] for f in features if f["reference"]}
    for feature in features:
        feature["baseline"] = None if feature["reference"] else baselines.get(feature["group"])
    return features


def _mql_threshold(model):
    """The MQL threshold of the model's active version, else of its newest, else the default."""
    version = (
        model.versions.filter(status=ScoringVersion.Status.ACTIVE).first()
        or model.versions.order_by("-number").first()
    )
    if version is not None:
        return float(version.mql_threshold), version.pk
    return float(ScoringVersion._meta.get_field("mql_threshold").default), None


def _criteria(columns, features, scale):
    """The suggested criteria: integer points per column (per occurrence for activity), zeros left out."""
    criteria = []
    for c, feature in zip(columns, features, strict=True):
        if c.criterion is None or feature["reference"]:
            feature["points"] = 0
            continue
        if c.role == "per_occurrence":
            points = round(feature["coef"] * scale / c.cap)
            feature["points"] = points
            if points:
                criteria.append(
                    {**c.criterion, "points": points, "cap": abs(points) * c.cap, "feature": feature["id"]}
                )
            continue
        points = round(feature["coef"] * scale)
        feature["points"] = points
        if points:
            criteria.append({**c.criterion, "points": points, "feature": feature["id"]})
    return criteria


def _knockouts(columns, features):
    knockouts = []
    train_n = features[0]["support"] + features[0]["n_without"] if features else 0
    for c, feature in zip(columns, features, strict=True):
        if c.criterion is None or c.criterion["kind"] != "fit" or c.role not in ("level", "empty", "other"):
            continue
        support = feature["support"]
        if support < max(KNOCKOUT_SUPPORT, 0.01 * train_n) or feature["rate_with"] is None:
            continue
        high = feature["rate_with_ci"][1]
        if feature["rate_with"] <= KNOCKOUT_RATE and high <= KNOCKOUT_HIGH:
            condition = c.criterion
            reason = (
                Criterion.Reason.STUDENT
                if condition["field"] == "contact_role" and condition["value"] == "student"
                else Criterion.Reason.OTHER
            )
            knockouts.append(
                {
                    "kind": "knockout",
                    "field": condition["field"],
                    "operator": condition["operator"],
                    "value": condition["value"],
                    "reason": reason.value,
                    "feature": feature["id"],
                }
            )
    return knockouts


def _points_scores(columns, features, n):
    """Each row's score under the integer points, computed from the columns (the criteria compute the same)."""
    scores = np.zeros(n)
    for c, feature in zip(columns, features, strict=True):
        points = feature.get("points") or 0
        if points:
            scores += points * (c.data * c.cap if c.role == "per_occurrence" else c.data)
    return scores


def _holdout_figures(learned, points, rows, holdout, intercept, scale):
    y = rows.y[holdout]
    positives = int(y.sum())
    negatives = len(y) - positives
    auc_learned = logit.roc_auc(learned[holdout], y)
    auc_points = logit.roc_auc(points[holdout], y)
    probability = logit.sigmoid(learned[holdout])
    return {
        "n": int(len(y)),
        "positives": positives,
        "auc_learned": None if auc_learned is None else round(auc_learned, 4),
        "auc_learned_ci": [
            round(v, 4) if v is not None else None
            for v in logit.auc_interval(auc_learned, positives, negatives)
        ],
        "auc_points": None if auc_points is None else round(auc_points, 4),
        "auc_points_ci": [
            round(v, 4) if v is not None else None
            for v in logit.auc_interval(auc_points, positives, negatives)
        ],
        "deciles": logit.deciles(learned[holdout], y, rows.ids[holdout]),
        "calibration": logit.calibration(probability, y, [k / 10 for k in range(11)]),
        "points_calibration": logit.calibration(
            logit.sigmoid(intercept + points[holdout] / scale), y, [k / 10 for k in range(11)]
        ),
    }


# --- Words ---------------------------------------------------------------------------------------------------


def condition_label(criterion, catalogue=None):
    """A criterion's condition in words: “Lead Origin is Lead Add Form”, “Total time at least 900”."""
    from .fields import field_label

    if criterion["kind"] == "interest":
        labels = dict(Touchpoint.Kind.choices)
        return ", ".join(str(labels.get(k, k)) for k in criterion.get("touchpoint_kinds", []))
    what = field_label(criterion["field"], catalogue)
    operator, value = criterion["operator"], criterion.get("value")
    if operator == IS_EMPTY:
        return _("%(field)s is empty") % {"field": what}
    if operator == IS_SET:
        return _("%(field)s is set") % {"field": what}
    if operator == RANGE:
        low, high = value["min"], value["max"]
        if high is None:
            return _("%(field)s at least %(value)s") % {
                "field": what,
                "value": _number(low),
            }
        if low is None:
            return _("%(field)s at most %(value)s") % {
                "field": what,
                "value": _number(high),
            }
        return _("%(field)s between %(low)s and %(high)s") % {
            "field": what,
            "low": _number(low),
            "high": _number(high),
        }
    if operator in (IN_LIST, DOMAIN_IN):
        shown = ", ".join(str(item) for item in value[:5])
        if len(value) > 5:
            shown = _("%(values)s and %(n)s more") % {"values": shown, "n": len(value) - 5}
        if operator == DOMAIN_IN:
            return _("%(field)s at %(value)s") % {"field": what, "value": shown}
        return _("%(field)s is one of %(value)s") % {"field": what, "value": shown}
    if isinstance(value, bool):
        value = _("yes") if value else _("no")
    return _("%(field)s is %(value)s") % {"field": what, "value": value}


def feature_label(feature, catalogue=None):
    """What a column of a learning run stands for, in words."""
    from .fields import field_label

    if feature["role"] == "baseline":
        return _("%(field)s is %(value)s") % {
            "field": field_label(feature["group"], catalogue),
            "value": feature["value"],
        }
    if feature["role"] == "per_occurrence":
        return _("%(activity)s (counted up to %(cap)s times)") % {
            "activity": condition_label(feature["criterion"]),
            "cap": feature["cap"],
        }
    return condition_label(feature["criterion"], catalogue)


def describe(feature, catalogue=None):
    """A marketer's sentence about one column of a learning run, in the active language."""
    what = feature_label(feature, catalogue)
    if feature["reference"]:
        return _("%(what)s: the baseline (0 points) the other values of this field are compared with.") % {
            "what": what
        }
    if feature["role"] == "per_occurrence":
        facts = _(
            "Leads with at least %(lower)s of these converted in %(with)s of %(n)s cases, the others in "
            "%(without)s."
        ) % {
            "lower": feature["lower"],
            "with": _percent(feature["rate_with"] or 0),
            "n": formats.number_format(feature["support"], use_l10n=True, force_grouping=True),
            "without": _percent(feature["rate_without"] or 0),
        }
    else:
        facts = _("%(with)s of %(n)s such leads converted, against %(without)s of the others.") % {
            "with": _percent(feature["rate_with"] or 0),
            "n": formats.number_format(feature["support"], use_l10n=True, force_grouping=True),
            "without": _percent(feature["rate_without"] or 0),
        }
    low, high = feature["odds_ratio_ci"]
    numbers = {
        "low": formats.number_format(low, 2, use_l10n=True),
        "high": formats.number_format(high, 2, use_l10n=True),
        "factor": formats.number_format(feature["odds_ratio"], 2, use_l10n=True),
    }
    if feature["role"] == "at_least":
        against = _("compared with the step below")
    elif feature["role"] == "at_most":
        against = _("compared with the step above")
    elif feature["role"] == "per_occurrence":
        against = _("counting all %(cap)s occurrences against none") % {"cap": feature["cap"]}
    elif feature.get("baseline"):
        against = _("compared with “%(baseline)s”") % {"baseline": feature["baseline"]}
    else:
        against = _("compared with leads without it")
    numbers["against"] = against
    if not feature["significant"]:
        effect = (
            _(
                "Other things equal and %(against)s, the data cannot tell its effect from none (odds ratio between "
                "%(low)s and %(high)s, 95 %% confidence)."
            )
            % numbers
        )
    elif feature["coef"] > 0:
        effect = (
            _(
                "Other things equal and %(against)s, it multiplies the odds of converting by %(factor)s (95 %% "
                "confidence: %(low)s to %(high)s)."
            )
            % numbers
        )
    else:
        effect = (
            _(
                "Other things equal and %(against)s, it cuts the odds of converting to %(factor)s of what they "
                "would be (95 %% confidence: %(low)s to %(high)s)."
            )
            % numbers
        )
    return f"{what}: {facts} {effect}"


def describe_exclusion(item):
    """Why a field was left out, in words (the reason as the guard gave it)."""
    return f"{item['label']}: {item['reason']}"


# --- Runs, drafts ---------------------------------------------------------------------------------------------


class LearningError(Exception):
    """A learning step that is not allowed now; the message says why, in the user's language."""


STALE_AFTER = timezone.timedelta(minutes=10)


def start_learning(*, model, by, options=None) -> LearningRun:
    """Queue a learning run for the model (a worker runs it after commit)."""
    if not can_learn(by):
        raise LearningError(_("Only marketing runs learning on the outcomes."))
    run = LearningRun.objects.create(model=model, created_by=by, options=_clean_options(options or {}))
    transaction.on_commit(lambda: _enqueue(run.pk))
    return run


def _clean_options(options):
    """The options a run accepts, checked: unknown keys are dropped, numbers bounded."""
    cleaned = {}
    if "holdout" in options:
        cleaned["holdout"] = min(0.5, max(0.0, float(options["holdout"])))
    if "seed" in options:
        cleaned["seed"] = str(options["seed"])[:60]
    if "l2" in options:
        cleaned["l2"] = min(100.0, max(0.001, float(options["l2"])))
    if "mql_probability" in options:
        cleaned["mql_probability"] = min(0.99, max(0.01, float(options["mql_probability"])))
    for key in ("include", "exclude"):
        if key in options:
            cleaned[key] = [str(item)[:100] for item in list(options[key])[:200]]
    return cleaned


def _enqueue(run_id):
    from . import tasks

    try:
        tasks.run_learning.delay(run_id)
    except Exception:  # noqa: BLE001 - Redis may be away: the evidence sweep re-enqueues queued runs
        log.warning("could not enqueue learning run %s", run_id, exc_info=True)


def run_learning(*, run_id):
    """Run a queued learning run (safe to run twice: one caller claims it; a run whose worker went silent is
    taken over)."""
    now = timezone.now()
    claimed = LearningRun.objects.filter(
        Q(status=LearningRun.Status.QUEUED)
        | Q(status=LearningRun.Status.RUNNING, heartbeat_at__lt=now - STALE_AFTER),
        pk=run_id,
    ).update(status=LearningRun.Status.RUNNING, heartbeat_at=now, step="loading", percent=0)
    if not claimed:
        return
    run = LearningRun.objects.select_related("model").get(pk=run_id)
    started = time.perf_counter()

    def progress(step, percent):
        LearningRun.objects.filter(pk=run_id).update(step=step, percent=percent, heartbeat_at=timezone.now())

    try:
        result = learn(run.model, options=run.options, progress=progress)
    except Exception as exc:
        log.exception("learning run %s failed", run_id)
        LearningRun.objects.filter(pk=run_id).update(
            status=LearningRun.Status.FAILED, error=str(exc)[:2000], finished_at=timezone.now()
        )
        return
    LearningRun.objects.filter(pk=run_id).update(
        status=LearningRun.Status.FAILED if "error" in result else LearningRun.Status.DONE,
        error=result.get("error", ""),
        result=result,
        percent=100,
        step="done",
        seconds=round(time.perf_counter() - started, 3),
        finished_at=timezone.now(),
    )


def sweep_learning():
    """Re-enqueue runs a lost message or a dead worker left behind."""
    stale = timezone.now() - STALE_AFTER
    for run_id in LearningRun.objects.filter(
        Q(status=LearningRun.Status.QUEUED, created_at__lt=timezone.now() - timezone.timedelta(minutes=2))
        | Q(status=LearningRun.Status.RUNNING, heartbeat_at__lt=stale)
    ).values_list("pk", flat=True)[:10]:
        _enqueue(run_id)


def _match_key(kind, field, operator, value, touchpoint_kinds=(), occurrences=None):
    """What makes two criteria "the same criterion" across versions, for keeping its key."""
    return json.dumps(
        [kind, field, operator, value, sorted(touchpoint_kinds or []), occurrences], sort_keys=True
    )


def _key_of(criterion):
    occurrences = None
    if criterion.kind == "interest":
        if criterion.url_contains or criterion.search_contains or criterion.channel_id:
            return None
        if criterion.lookback_days or criterion.half_life_days or not criterion.cap or not criterion.points:
            return None
        occurrences = round(criterion.cap / abs(criterion.points))
    return _match_key(
        criterion.kind,
        criterion.field,
        criterion.operator,
        criterion.value,
        criterion.touchpoint_kinds,
        occurrences,
    )


@transaction.atomic
def create_draft_from_suggestion(*, model, suggestion, by, knockouts=True, note=""):
    """A draft version of `model` with the suggested criteria (and knock-outs), thresholds copied from its
    active (else newest) version. Every criterion passes Criterion.clean; the draft then goes through the
    workbench, the backtest and the joint sign-off like any other. One draft at a time, as in the workbench.

    The source version's own knock-outs stay (business rules, such as no consent or a competitor, that no
    outcome history shows); its fit and interest criteria give way to the suggestion. A suggested criterion
    testing what a source criterion tested keeps that criterion's key, so the diff shows changed points, not
    one criterion removed and another added."""
    from .actions import THRESHOLD_FIELDS
    from .models import ScoringModel

    if not can_learn(by):
        raise LearningError(_("Only marketing turns a suggestion into a draft."))
    model = ScoringModel.objects.select_for_update().get(pk=model.pk)
    existing = model.versions.filter(status=ScoringVersion.Status.DRAFT).first()
    if existing is not None:
        raise LearningError(
            _("%(model)s has a draft already (v%(number)s); change that one or let it be proposed first.")
            % {"model": model, "number": existing.number}
        )
    source = (
        model.versions.filter(status=ScoringVersion.Status.ACTIVE).first()
        or model.versions.order_by("-number").first()
    )
    number = (model.versions.order_by("-number").values_list("number", flat=True).first() or 0) + 1
    draft = ScoringVersion(model=model, number=number, created_by=by, note=note[:2000])
    if source is not None:
        for name in THRESHOLD_FIELDS:
            setattr(draft, name, getattr(source, name))
    draft.save()
    catalogue = attribute_catalogue()
    source_criteria = list(source.criteria.all()) if source is not None else []
    keys = {_key_of(c): c.key for c in source_criteria}
    keys.pop(None, None)
    items = list(suggestion.get("criteria", []))
    if knockouts:
        items += list(suggestion.get("knockouts", []))
    made = []
    positions = {"fit": 0, "interest": 0, "knockout": 0}
    kept = set()
    for old in source_criteria:
        if old.kind == "knockout":
            kept.add(_key_of(old))
            made.append(
                Criterion(
                    version=draft,
                    key=old.key,
                    kind="knockout",
                    position=positions["knockout"],
                    label=old.label,
                    field=old.field,
                    operator=old.operator,
                    value=old.value,
                    reason=old.reason,
                )
            )
            positions["knockout"] += 1
    for item in items:
        kind = item["kind"]
        occurrences = round(item["cap"] / abs(item["points"])) if kind == "interest" else None
        match = _match_key(
            kind, item.get("field", ""), item.get("operator", ""), item.get("value"),
            item.get("touchpoint_kinds", ()), occurrences,
        )  # fmt: skip
        if kind == "knockout" and match in kept:
            continue  # the source has this knock-out already
        criterion = Criterion(version=draft, kind=kind, position=positions[kind])
        if match in keys:
            criterion.key = keys[match]
        positions[kind] += 1
        if kind == "interest":
            criterion.touchpoint_kinds = list(item["touchpoint_kinds"])
            criterion.points = float(item["points"])
            criterion.cap = float(item["cap"])
            criterion.label = _("%(activity)s: %(points)s per occurrence, at most %(cap)s") % {
                "activity": condition_label(item, catalogue),
                "points": int(item["points"]),
                "cap": int(item["cap"]),
            }
        else:
            criterion.field = item["field"]
            criterion.operator = item["operator"]
            criterion.value = item.get("value")
            criterion.points = float(item.get("points", 0))
            criterion.reason = item.get("reason", "")
            criterion.label = condition_label(item, catalogue)
        criterion.label = criterion.label[:200]
        criterion.full_clean(exclude=["version"])
        made.append(criterion)
    Criterion.objects.bulk_create(made)
    return draft


def draft_from_run(*, run, by, knockouts=True):
    """A draft from a finished learning run's suggestion; the run remembers it."""
    if run.status != LearningRun.Status.DONE or not run.result or "suggestion" not in run.result:
        raise LearningError(_("Only a finished learning run has a suggestion."))
    holdout = run.result.get("holdout", {})
    note = _(
        "Suggested by learning run #%(run)s from %(n)s leads with a known outcome (held-out ROC AUC: learned "
        "%(learned)s, points %(points)s)."
    ) % {
        "run": run.pk,
        "n": run.result.get("n"),
        "learned": holdout.get("auc_learned"),
        "points": holdout.get("auc_points"),
    }
    draft = create_draft_from_suggestion(
        model=run.model, suggestion=run.result["suggestion"], by=by, knockouts=knockouts, note=note
    )
    LearningRun.objects.filter(pk=run.pk).update(draft=draft)
    run.draft = draft
    return draft
