"""Multi-touch attribution: how much credit each touchpoint of a lead earns for a conversion, by model.

Pure functions (no Django state): given a lead's touchpoint times, oldest first, and the conversion moment (when the
lead became MQL, SQL or won), `weights()` returns one weight per touchpoint for a model. Touchpoints after the
conversion moment get 0; the weights of the others are ≥ 0 and sum to 1. Credit per channel and campaign is the sum
of the weights of its touchpoints (`credit()`). The same rules run set-based in SQL (insights/credits.py); a
property test holds the two equal.

The models:
- first touch: all credit to the first touchpoint.
- last touch: all credit to the last touchpoint at or before the conversion.
- linear: equal credit to every touchpoint (so a channel touched twice earns twice).
- U-shaped: 40 % first, 40 % last, 20 % spread evenly over the touchpoints between; with two touchpoints 50/50,
  with one 100 %.
- W-shaped: 30 % each to three milestones, 10 % spread evenly over the other touchpoints. The milestones are
  the first touch, the lead-creation touch (the last touchpoint at or before the lead was created; the first
  touch if there is none) and the opportunity touch (the last touchpoint at or before the opportunity moment,
  i.e. the SQL moment; when the conversion comes before the lead became SQL, e.g. crediting an MQL, the last
  touchpoint before the conversion). Milestones falling on the same touchpoint count once: the distinct
  milestone touchpoints share 90 % equally (two distinct: 45/45, one: 90) and the rest share 10 %; when there
  is no other touchpoint, the milestones share 100 % (three touchpoints: a third each, two: 50/50, one: 100 %).
- time decay: weight ∝ 0.5 ** (age at conversion / half-life); half-life configurable (default 7 days); ages
  beyond 1,000 half-lives count as 1,000.

A lead with no touchpoint at or before the conversion gets its whole credit, in every model, on the lead's own
first channel and campaign (Lead.first_channel, Lead.campaign) — "(none)" when it has neither.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils.translation import gettext_lazy as _

FIRST_TOUCH = "first_touch"
LAST_TOUCH = "last_touch"
LINEAR = "linear"
U_SHAPED = "u_shaped"
W_SHAPED = "w_shaped"
TIME_DECAY = "time_decay"

MODELS = {
    FIRST_TOUCH: _("First touch"),
    LAST_TOUCH: _("Last touch"),
    LINEAR: _("Linear"),
    U_SHAPED: _("U-shaped (40/20/40)"),
    W_SHAPED: _("W-shaped (30/30/30/10)"),
    TIME_DECAY: _("Time decay"),
}
DEFAULT_HALF_LIFE_DAYS = 7.0

U_ENDS = 0.4  # first and last each
W_MILESTONES = 0.9  # shared by the distinct milestone touchpoints when other touchpoints exist
MAX_HALF_LIVES = 1000  # 0.5 ** 1000 is still a normal float


def weights(
    model: str,
    times: list[datetime],
    *,
    converted_at: datetime,
    created_at: datetime | None = None,
    opportunity_at: datetime | None = None,
    half_life: timedelta = timedelta(days=DEFAULT_HALF_LIFE_DAYS),
) -> list[float]:
    """One weight per touchpoint time (oldest first) for `model`; those after `converted_at` get 0.

    Returns all zeros when no touchpoint is at or before the conversion (the caller credits the lead's own
    channel then). created_at and opportunity_at serve the W-shaped model only, half_life time decay only.
    """
    if model not in MODELS:
        raise ValueError(f"unknown attribution model {model!r}")
    if any(later < earlier for earlier, later in zip(times, times[1:], strict=False)):
        raise ValueError("touchpoints must be ordered oldest first")
    n = sum(1 for at in times if at <= converted_at)  # the touchpoints that count come first
    result = [0.0] * len(times)
    if n == 0:
        return result
    counted = _model_weights(model, times[:n], converted_at, created_at, opportunity_at, half_life)
    result[:n] = counted
    return result


def _model_weights(model, times, converted_at, created_at, opportunity_at, half_life):
    n = len(times)
    if model == FIRST_TOUCH:
        return [1.0] + [0.0] * (n - 1)
    if model == LAST_TOUCH:
        return [0.0] * (n - 1) + [1.0]
    if model == LINEAR:
        return [1.0 / n] * n
    if model == U_SHAPED:
        return _shaped(n, {0, n - 1}, U_ENDS * 2)
    if model == W_SHAPED:
        return _shaped(n, w_milestones(times, converted_at, created_at, opportunity_at), W_MILESTONES)
    # Time decay. An age beyond MAX_HALF_LIVES half-lives counts as that many, so no weight underflows to 0.
    hl = half_life.total_seconds()
    if hl <= 0:
        raise ValueError("the half-life must be positive")
    raw = [0.5 ** min((converted_at - at).total_seconds() / hl, MAX_HALF_LIVES) for at in times]
    total = sum(raw)
    return [r / total for r in raw]


def _shaped(n, milestones, milestone_share):
    """The distinct milestone positions share `milestone_share` equally, the others the rest; all of it to the
    milestones when there are no others."""
    rest = n - len(milestones)
    if rest == 0:
        milestone_share = 1.0
    each = milestone_share / len(milestones)
    other = (1.0 - milestone_share) / rest if rest else 0.0
    return [each if i in milestones else other for i in range(n)]


def w_milestones(times, converted_at, created_at, opportunity_at) -> set[int]:
    """Positions of the W-shaped milestones among the touchpoints that count: first, lead creation, opportunity."""
    n = len(times)
    creation = last_at_or_before(times, created_at) if created_at is not None else None
    if opportunity_at is None or opportunity_at > converted_at:
        opportunity = n - 1
    else:
        opportunity = last_at_or_before(times, opportunity_at)
    return {0, 0 if creation is None else creation, 0 if opportunity is None else opportunity}


def last_at_or_before(times, moment):
    """Position of the last time ≤ moment, or None."""
    found = None
    for i, at in enumerate(times):
        if at <= moment:
            found = i
        else:
            break
    return found


@dataclass(frozen=True)
class Touch:
    """One touchpoint as attribution sees it."""

    at: datetime
    channel: str | None
    campaign: int | None


def credit(
    model: str,
    touches: list[Touch],
    *,
    converted_at: datetime,
    created_at: datetime | None = None,
    opportunity_at: datetime | None = None,
    half_life: timedelta = timedelta(days=DEFAULT_HALF_LIFE_DAYS),
    fallback: tuple[str | None, int | None] = (None, None),
) -> dict[tuple[str | None, int | None], float]:
    """Credit per (channel, campaign) for one conversion of one lead; the values sum to 1.

    touches oldest first (ties in a stable order: by id). fallback is the lead's own (first channel, campaign),
    credited in full when no touchpoint comes at or before the conversion.
    """
    touches = sorted(touches, key=lambda t: t.at)  # stable: keeps the caller's order within a moment
    found = weights(
        model,
        [t.at for t in touches],
        converted_at=converted_at,
        created_at=created_at,
        opportunity_at=opportunity_at,
        half_life=half_life,
    )
    result: dict[tuple[str | None, int | None], float] = {}
    for touch, weight in zip(touches, found, strict=True):
        if weight > 0:
            key = (touch.channel, touch.campaign)
            result[key] = result.get(key, 0.0) + weight
    return result or {fallback: 1.0}
