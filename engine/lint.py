"""Lint: legal but suspicious criteria in a checked trial → warnings.

Stage: after the checker, beside it in `elig check` (`rules.check_paths`). Input: an
`ir.CheckedTrial`; output: warning `Diagnostic`s. The checker proves a file means something;
this stage asks whether it means what the protocol meant. Checks, in order:

1. `never_met`     — a criterion body no patient can meet (`age >= 65 years and age < 18
                     years`, `hbsag is positive and hbsag is negative`, `x and not x`).
2. `never_applies` — a `when` condition no patient can meet: the criterion is never applied.
3. `overlapping_criteria` — an exclusion that every patient meeting an inclusion also meets
                     (identical, or implied: `has x` → `had x`, `inr >= 2` → `inr > 1.5`), and
                     single-test criteria on one analyte, age or code set whose ranges overlap.

Reasoning is sound but incomplete: an expression is expanded into alternatives (`or` of `and`s
of tests, at most `MAX_TERMS`); a warning is given only when every alternative is shown
contradictory, or every alternative of the inclusion implies the exclusion. Tests on the same
analyte read the same value (the latest result within the window: when two windows both hold
a result, it is the same one), so windows do not separate them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from itertools import product

from . import ir
from .diagnostics import Diagnostic

CODES = ("never_met", "never_applies", "overlapping_criteria")  # every code this stage emits
MAX_TERMS = 64
FLIP_NEGATED = {">=": "<", ">": "<=", "<=": ">", "<": ">="}
DAYS = {"day": 1, "week": 7, "month": 30.4375, "year": 365.25}

Literal = tuple[ir.IR, bool]  # (leaf, negated)
Term = tuple[Literal, ...]


def lint(trial: ir.CheckedTrial) -> list[Diagnostic]:
    """Every lint warning for one checked trial, in criterion order."""
    found: list[Diagnostic] = []
    for c in trial.criteria:
        found += _check_never(trial, c)
    found += _check_overlaps(trial)
    return found


# ---- expansion into alternatives -------------------------------------------------------------

def alternatives(node: ir.IR, negated: bool = False) -> list[Term] | None:
    """`node` as an `or` of `and`s of (leaf, negated); None when it would exceed MAX_TERMS.

    De Morgan and distribution hold in Kleene logic, so the expansion keeps met/not met/unknown.
    """
    if isinstance(node, ir.DefRef):
        return alternatives(node.child, negated)
    if isinstance(node, ir.Not):
        return alternatives(node.child, not negated)
    if isinstance(node, (ir.And, ir.Or)):
        parts = [alternatives(c, negated) for c in node.children]
        if any(p is None for p in parts):
            return None
        conjunctive = isinstance(node, ir.And) != negated
        return _product(parts) if conjunctive else _concat(parts)
    return [((node, negated),)]


def _product(parts: list[list[Term]]) -> list[Term] | None:
    if math.prod(len(p) for p in parts) > MAX_TERMS:
        return None
    return [tuple(lit for term in combo for lit in term) for combo in product(*parts)]


def _concat(parts: list[list[Term]]) -> list[Term] | None:
    terms = [t for p in parts for t in p]
    return terms if len(terms) <= MAX_TERMS else None


# ---- what a literal says about one quantity ---------------------------------------------------

@dataclass(frozen=True)
class Interval:
    lo: float = -math.inf
    lo_closed: bool = False
    hi: float = math.inf
    hi_closed: bool = False

    @property
    def empty(self) -> bool:
        return self.lo > self.hi or (self.lo == self.hi and not (self.lo_closed and self.hi_closed))

    def meet(self, other: "Interval") -> "Interval":
        lo = max((self.lo, not self.lo_closed), (other.lo, not other.lo_closed))
        hi = min((self.hi, self.hi_closed), (other.hi, other.hi_closed))
        return Interval(lo[0], not lo[1], hi[0], hi[1])

    def within(self, other: "Interval") -> bool:
        low_ok = other.lo < self.lo or (other.lo == self.lo and (other.lo_closed or not self.lo_closed))
        high_ok = other.hi > self.hi or (other.hi == self.hi and (other.hi_closed or not self.hi_closed))
        return self.empty or (low_ok and high_ok)

    def __str__(self) -> str:
        if self.lo == self.hi:
            return f"= {self.lo:g}"
        low = f"{'>=' if self.lo_closed else '>'} {self.lo:g}" if self.lo > -math.inf else ""
        high = f"{'<=' if self.hi_closed else '<'} {self.hi:g}" if self.hi < math.inf else ""
        return " and ".join(p for p in (low, high) if p) or "any value"


def _bound_interval(op: str, t: float, integer: bool) -> Interval:
    if integer:  # completed years or months: whole numbers only
        op, t = {">": (">=", math.floor(t) + 1), "<": ("<=", math.ceil(t) - 1),
                 ">=": (">=", math.ceil(t)), "<=": ("<=", math.floor(t))}.get(op, (op, t))
        if op == "=" and t != int(t):
            return Interval(1, True, 0, True)
    return {">=": Interval(t, True), ">": Interval(t, False), "<=": Interval(hi=t, hi_closed=True),
            "<": Interval(hi=t, hi_closed=False), "=": Interval(t, True, t, True)}[op]


def numeric(lit: Literal) -> tuple[tuple, Interval, str] | None:
    """(quantity key, interval the literal requires, its unit) for bounded tests."""
    node, negated = lit
    key = _quantity_key(node)
    if key is None:
        return None
    bounds = node.bounds
    if negated:
        if len(bounds) != 1 or bounds[0][0] not in FLIP_NEGATED:
            return None
        bounds = ((FLIP_NEGATED[bounds[0][0]], bounds[0][1]),)
    integer = isinstance(node, ir.AgeTest)
    interval = Interval(0, True) if integer else Interval()  # an age is never negative
    for op, t in bounds:
        interval = interval.meet(_bound_interval(op, t, integer))
    return key, interval, _unit(node)


def _quantity_key(node: ir.IR) -> tuple | None:
    if isinstance(node, ir.AgeTest):
        return ("age", node.unit)
    if isinstance(node, ir.LabTest):
        return ("lab", node.analyte.name)
    if isinstance(node, ir.ScoreTest):
        return ("score", node.score)
    return None


def _unit(node: ir.IR) -> str:
    if isinstance(node, ir.AgeTest):
        return node.unit + "s"
    if isinstance(node, ir.LabTest) and node.analyte.unit not in (None, "1"):
        return node.analyte.unit
    return ""


def category(lit: Literal) -> tuple[tuple, str] | None:
    """(key, value) for `sex is …` and qualitative results, which hold one value at a time."""
    node, _negated = lit
    if isinstance(node, ir.SexTest):
        return ("sex",), node.value
    if isinstance(node, ir.QualTest):
        return ("qual", node.analyte.name), node.value
    return None


def identity(node: ir.IR) -> tuple:
    """What makes two leaves the same test, whatever node numbers they carry."""
    if isinstance(node, ir.RecordTest):
        return ("record", node.mode, node.codes.name, node.within, node.for_more_than)
    if isinstance(node, ir.FactTest):
        return ("fact", node.name, node.fresh)
    fields = {k: v for k, v in vars(node).items() if k not in ("nid", "span", "text")}
    return (type(node).__name__, *sorted((k, repr(v)) for k, v in fields.items()))


# ---- contradiction ---------------------------------------------------------------------------

def contradiction(term: Term) -> str | None:
    """Why the tests of one alternative cannot all be met at once, or None."""
    return _numeric_clash(term) or _category_clash(term) or _negation_clash(term)


def _numeric_clash(term: Term) -> str | None:
    seen: dict[tuple, tuple[Interval, list[str]]] = {}
    for lit in term:
        found = numeric(lit)
        if found is None:
            continue
        key, interval, _unit = found
        before, texts = seen.get(key, (Interval(), []))
        texts = texts + [_lit_text(lit)]
        seen[key] = (before.meet(interval), texts)
        if seen[key][0].empty:
            return f"{_join(texts)} cannot all hold"
    return None


def _category_clash(term: Term) -> str | None:
    held: dict[tuple, Literal] = {}
    for lit in term:
        found = category(lit)
        if found is None or lit[1]:
            continue
        key, value = found
        other = held.setdefault(key, lit)
        if category(other)[1] != value:
            return f"{_join([_lit_text(other), _lit_text(lit)])} cannot both hold"
    return None


def _negation_clash(term: Term) -> str | None:
    positive = {identity(node): node for node, negated in term if not negated}
    for node, negated in term:
        if negated and identity(node) in positive:
            return f"{node.text} and not {node.text} cannot both hold"
    return None


def _lit_text(lit: Literal) -> str:
    node, negated = lit
    return f"not {node.text}" if negated else node.text


def _join(texts: list[str]) -> str:
    return " and ".join(dict.fromkeys(texts))


# ---- implication -------------------------------------------------------------------------------

def implies(terms: list[Term], target: list[Term]) -> bool:
    """Every satisfiable alternative of `terms` meets some alternative of `target`."""
    live = [t for t in terms if contradiction(t) is None]
    return bool(live) and all(any(_term_implies(t, e) for e in target) for t in live)


def _term_implies(term: Term, target: Term) -> bool:
    return all(_implies_literal(term, lit) for lit in target)


def _implies_literal(term: Term, lit: Literal) -> bool:
    found = numeric(lit)
    if found is not None:
        key, wanted, _unit = found
        ranges = [h[1] for h in map(numeric, term) if h is not None and h[0] == key]
        return bool(ranges) and _meet_all(ranges).within(wanted)
    if category(lit) is not None:
        return _implies_category(term, lit)
    return any(_leaf_implies(t, lit) for t in term)


def _meet_all(intervals: list[Interval]) -> Interval:
    out = Interval()
    for iv in intervals:
        out = out.meet(iv)
    return out


def _implies_category(term: Term, lit: Literal) -> bool:
    key, value = category(lit)
    held = [category(t)[1] for t in term if not t[1] and category(t) is not None and category(t)[0] == key]
    return any(h == value for h in held) if not lit[1] else any(h != value for h in held)


def _leaf_implies(have: Literal, want: Literal) -> bool:
    (a, a_neg), (b, b_neg) = have, want
    if a_neg != b_neg:
        return False
    if identity(a) == identity(b):
        return True
    if isinstance(a, ir.RecordTest) and isinstance(b, ir.RecordTest) and not a_neg:
        return a.codes.name == b.codes.name and _record_implies(a, b)
    return False


def _record_implies(a: ir.RecordTest, b: ir.RecordTest) -> bool:
    """`has x [for more than …]` → `has x` → `had x [within …]`; a shorter window → a longer one."""
    if b.mode == "has":
        return a.mode == "has" and _days(a.for_more_than, 0) >= _days(b.for_more_than, 0)
    if a.mode == "has":
        return True
    return _days(a.within, math.inf) <= _days(b.within, math.inf)


def _days(window: ir.Window | None, default: float) -> float:
    return default if window is None else window.amount * DAYS[window.unit]


# ---- checks ------------------------------------------------------------------------------------

def _check_never(trial: ir.CheckedTrial, c: ir.CheckedCriterion) -> list[Diagnostic]:
    found = []
    for node, code, what in ((c.body, "never_met", "can never be met"),
                             (c.when, "never_applies", "never applies: its `when` condition can never hold")):
        reasons = _never_reasons(node) if node is not None else None
        if reasons:
            hint = "compare the bounds with the protocol text" if code == "never_met" else \
                "the criterion will always be not applicable; check the condition"
            found.append(_warning(trial, code, f"{c.key} {what}", node, hint, reasons))
    return found


def _never_reasons(node: ir.IR) -> list[str] | None:
    terms = alternatives(node)
    if not terms:
        return None
    reasons = [contradiction(t) for t in terms]
    return reasons if all(reasons) else None


def _check_overlaps(trial: ir.CheckedTrial) -> list[Diagnostic]:
    computable = [c for c in trial.criteria if not c.is_manual]
    inclusions = [c for c in computable if c.kind == "inclusion"]
    found = []
    for e in (c for c in computable if c.kind == "exclusion"):
        for i in inclusions:
            d = _overlap(trial, i, e)
            if d is not None:
                found.append(d)
    return found


def _met_when(c: ir.CheckedCriterion) -> list[Term] | None:
    """Alternatives under which the criterion is met: its `when` and its body both hold."""
    parts = [alternatives(n) for n in (c.when, c.body) if n is not None]
    return None if any(p is None for p in parts) else _product(parts)


def _overlap(trial, i: ir.CheckedCriterion, e: ir.CheckedCriterion) -> Diagnostic | None:
    inc, exc = _met_when(i), _met_when(e)
    if not inc or not exc:
        return None
    details = tuple(f"{c.key} (line {c.span.line}): {_criterion_text(c)}" for c in (i, e))
    if implies(inc, exc):
        return _warning(trial, "overlapping_criteria", f"every patient who meets {i.key} is excluded by {e.key}",
                        e.body, "an exclusion that follows from an inclusion leaves nobody to enrol; "
                                "check both against the protocol", details)
    shared = _shared_test(inc, exc)
    if shared is None:
        return None
    message, hint = shared
    return _warning(trial, "overlapping_criteria", f"{e.key} excludes part of what {i.key} admits: {message}",
                    e.body, hint.format(i=i.key, e=e.key), details)


def _shared_test(inc: list[Term], exc: list[Term]) -> tuple[str, str] | None:
    """For two single-test criteria on the same quantity or code set: (what they share, hint)."""
    if len(inc) != 1 or len(exc) != 1 or len(inc[0]) != 1 or len(exc[0]) != 1:
        return None
    a, b = inc[0][0], exc[0][0]
    na, nb = numeric(a), numeric(b)
    if na is not None and nb is not None and na[0] == nb[0]:
        both = na[1].meet(nb[1])
        unit = f" {na[2]}" if na[2] else ""
        return None if both.empty else (f"{_quantity_name(na[0])} {both}{unit} meets both",
                                        "narrow {i} to the range that is eligible, and drop {e}")
    (x, x_neg), (y, y_neg) = a, b
    if isinstance(x, ir.RecordTest) and isinstance(y, ir.RecordTest) and not x_neg and not y_neg \
            and x.codes.name == y.codes.name:
        return (f"both test records of {x.codes.title}",
                "check that {e} is meant to remove some of the patients {i} admits")
    return None


def _quantity_name(key: tuple) -> str:
    return "age" if key[0] == "age" else key[1]


def _criterion_text(c: ir.CheckedCriterion) -> str:
    body = c.body.text if c.body is not None else "manual"
    return f"when {c.when.text}: {body}" if c.when is not None else body


def _warning(trial: ir.CheckedTrial, code: str, message: str, node: ir.IR, hint: str, details) -> Diagnostic:
    return Diagnostic(code, message, trial.source, node.span, "warning", hint, tuple(details))
