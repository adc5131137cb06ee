"""The lead lifecycle in one table: which stage may follow which, who may make the move, and which moves go back.

Every stage change goes through Lead.move_to(), which consults this table (the scoring SQL asks it which stages
may become MQL). Stage names live in LifecycleStage rows; the lead-management stages below are fixed codes, while
the sales stages between SQL and the close are data: any stage of the "sales" phase may follow SQL and another
sales stage (going back to an earlier one is a backward move, and needs a reason).
"""

from dataclasses import dataclass

# Who moves a lead: the system (scoring, routing, the SLA clock), marketing, or sales (reps and managers).
SYSTEM, MARKETING, SALES = "system", "marketing", "sales"

MGL, MQL, NURTURING, HANDED_OVER = "mgl", "mql", "nurturing", "handed_over"
SAL, SQL, WON, LOST = "sal", "sql", "won", "lost"
CUSTOMER_CARE, UPSELL = "customer_care", "upsell"
SALES_PHASE = "sales"  # LifecycleStage.Phase.SALES: SQL and the configurable sales stages after it

# (from, to): (who may, backward?). "*sales" stands for every stage of the sales phase after SQL.
TABLE = {
    (MGL, MQL): ({SYSTEM, MARKETING}, False),
    (MGL, NURTURING): ({SYSTEM, MARKETING}, False),
    (NURTURING, MQL): ({SYSTEM, MARKETING}, False),
    (MQL, NURTURING): ({SYSTEM, MARKETING}, True),  # the score fell back, or marketing holds it
    (MQL, HANDED_OVER): ({SYSTEM}, False),  # routing
    (HANDED_OVER, SAL): ({SALES}, False),  # the rep accepts
    (HANDED_OVER, NURTURING): ({SALES, SYSTEM}, True),  # the rep rejects, with a reason
    (SAL, SQL): ({SALES}, False),  # qualified (BANT)
    (SAL, NURTURING): ({SALES}, True),  # not qualified after all
    (SAL, LOST): ({SALES}, False),  # accepted, then closed as a dead end
    (SQL, "*sales"): ({SALES}, False),
    (SQL, WON): ({SALES}, False),
    (SQL, LOST): ({SALES}, False),
    ("*sales", "*sales"): ({SALES}, None),  # forward or back by position
    ("*sales", WON): ({SALES}, False),
    ("*sales", LOST): ({SALES}, False),
    (LOST, NURTURING): ({SYSTEM, MARKETING}, True),  # recycled
    (WON, CUSTOMER_CARE): ({SALES}, False),
    (CUSTOMER_CARE, UPSELL): ({SALES}, False),
    (UPSELL, CUSTOMER_CARE): ({SALES}, True),
}
FIXED = {MGL, MQL, NURTURING, HANDED_OVER, SAL, SQL, WON, LOST, CUSTOMER_CARE, UPSELL}


@dataclass(frozen=True)
class Move:
    allowed: bool
    backward: bool = False
    why: str = ""


def _key(code, stages):
    """A stage code as the table names it: sales-phase stages other than SQL are '*sales'."""
    stage = stages.get(code)
    if code not in FIXED and stage is not None and stage.phase == SALES_PHASE:
        return "*sales"
    return code


def check(from_code, to_code, who, stages):
    """Whether `who` may move a lead from one stage to another. stages: {code: LifecycleStage}."""
    if to_code not in stages:
        return Move(False, why="unknown stage")
    if from_code == to_code:
        return Move(False, why="already there")
    rule = TABLE.get((_key(from_code, stages), _key(to_code, stages)))
    if rule is None:
        return Move(False, why="not a step of the lifecycle")
    allowed_by, backward = rule
    if who not in allowed_by:
        return Move(False, why="not yours to make")
    if backward is None:  # between sales stages: back when the target comes earlier
        backward = stages[to_code].position < stages[from_code].position
    return Move(True, backward=backward)


def sources(to_code, who):
    """The fixed stages from which `who` may move a lead to `to_code` (e.g. which stages scoring turns into MQL)."""
    return sorted(frm for (frm, to), (allowed_by, _) in TABLE.items() if to == to_code and who in allowed_by)


# Moves to these stages stamp the lead with when it (last) got there.
MILESTONES = {
    MQL: "mql_at",
    HANDED_OVER: "handed_over_at",
    SAL: "sal_at",
    SQL: "sql_at",
    WON: "closed_at",
    LOST: "closed_at",
}
