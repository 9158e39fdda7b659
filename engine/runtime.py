"""Runtime: the leaf tests that compiled and interpreted criteria call, and their evidence.

Stage: evaluation. Each `eval_<Node>` takes the patient's facts, a checked IR leaf (thresholds
already in canonical units) and a trace dict, and returns a `Tri`. With `trace=None` nothing is
recorded and no text is built: the fast path for verdicts. With a trace, each leaf records the
values it used (as recorded and as converted, with date and source record), the threshold, and
for an unknown result the reason and the data that would decide it.

Generated code imports only this module and `tri` (as jinja's generated modules call only its
`runtime.py`).
"""

from __future__ import annotations

import math
from datetime import date

from . import ir, units
from .facts import LabValue, PatientFacts
from .scores import SCORES, ScoreInputError
from .tri import Tri, and3, any3, not3, or3, status_word
from .patient import Procedure, date_bounds

__all__ = ["and3", "or3", "not3", "LEAF_EVALUATORS", "record_branch"]

_OPS = {
    ">=": lambda x, t: x >= t, ">": lambda x, t: x > t, "<=": lambda x, t: x <= t,
    "<": lambda x, t: x < t, "=": lambda x, t: x == t,
}


# ---- interval comparison: results with a comparator (`<0.05`) are ranges, not numbers -------

def compare_value(value: float, comparator: str | None, op: str, threshold: float) -> Tri:
    """Three-valued `x op threshold` where x is known only as `comparator value`."""
    if comparator is None:
        return _OPS[op](value, threshold)
    lo, lo_closed, hi, hi_closed = _interval(value, comparator)
    if _all_satisfy(lo, lo_closed, hi, hi_closed, op, threshold):
        return True
    if _none_satisfy(lo, lo_closed, hi, hi_closed, op, threshold):
        return False
    return None


def _interval(v: float, comparator: str):
    return {"<": (-math.inf, False, v, False), "<=": (-math.inf, False, v, True),
            ">": (v, False, math.inf, False), ">=": (v, True, math.inf, False)}[comparator]


def _all_satisfy(lo, lo_closed, hi, hi_closed, op, t) -> bool:
    if op in (">", ">="):
        return lo > t or (lo == t and (op == ">=" or not lo_closed))
    if op in ("<", "<="):
        return hi < t or (hi == t and (op == "<=" or not hi_closed))
    return False


def _none_satisfy(lo, lo_closed, hi, hi_closed, op, t) -> bool:
    if op in (">", ">="):
        return hi < t or (hi == t and (op == ">" or not hi_closed))
    if op in ("<", "<="):
        return lo > t or (lo == t and (op == "<" or not lo_closed))
    return hi < t or lo > t or (hi == t and not hi_closed) or (lo == t and not lo_closed)


def bounds_hold(value: float, comparator: str | None, bounds) -> Tri:
    if comparator is None:  # fast path: an exact value, plain comparisons
        return all(_OPS[op](value, t) for op, t in bounds)
    return and3(compare_value(value, comparator, op, t) for op, t in bounds)


def _bounds_text(bounds, unit: str | None) -> str:
    suffix = f" {unit}" if unit and unit != "1" else ""
    return " and ".join(f"{op} {t:g}{suffix}" for op, t in bounds)


def _record(trace, node, status: Tri, **fields) -> Tri:
    if trace is not None:
        entry = {"node": node.nid, "text": node.text, "status": status_word(status)}
        entry.update((k, v) for k, v in fields.items() if v is not None)
        trace[node.nid] = entry
    return status


def _used(v: LabValue, analyte: ir.AnalyteInfo) -> dict:
    code = v.record.codes[0]
    used = {"name": analyte.title, "analyte": analyte.name, "recorded": v.describe(), "date": v.day.isoformat(),
            "source": v.record.id, "code": f"{code.system} {code.code}"}
    if v.value is not None:
        used.update(value=round(v.value, 6), unit=analyte.unit, comparator=v.comparator)
    if v.qualitative is not None:
        used["value"] = v.qualitative
    return used


def _missing_lab(analyte: ir.AnalyteInfo, window: ir.Window) -> str:
    codes = ", ".join(analyte.loinc[:2])
    return f"{analyte.title} (LOINC {codes}) within {window}"


# ---- leaves ---------------------------------------------------------------------------------

def eval_AgeTest(f: PatientFacts, node: ir.AgeTest, trace) -> Tri:
    ages = f.age_range(node.unit)
    status = None if ages is None else and3(_age_bound(ages[0], ages[1], op, t) for op, t in node.bounds)
    if trace is None:  # the fast path: the status alone, no text
        return status
    threshold = _bounds_text(node.bounds, node.unit + "s")
    if ages is None:
        return _record(trace, node, None, threshold=threshold, reason="no birth date on record",
                       missing="the patient's birth date")
    youngest, oldest = ages
    shown = f"{youngest}" if youngest == oldest else f"{youngest}–{oldest}"
    values = [{"name": "age", "value": shown, "unit": node.unit + "s", "date": f.as_of.isoformat(),
               "source": f"Patient/{f.patient.id}",
               "recorded": f"{shown} {node.unit}s (born {f.patient.birth_date})"}]
    reason = None if status is not None else f"the partial birth date {f.patient.birth_date} leaves the age uncertain"
    return _record(trace, node, status, values=values, threshold=threshold, reason=reason,
                   missing="the full birth date" if reason else None)


def _age_bound(youngest: int, oldest: int, op: str, t: float) -> Tri:
    a, b = _OPS[op](youngest, t), _OPS[op](oldest, t)
    return a if a == b else None


def eval_SexTest(f: PatientFacts, node: ir.SexTest, trace) -> Tri:
    sex = f.patient.sex
    status = None if sex is None or sex == "unknown" else sex == node.value
    if trace is None:
        return status
    if status is None:
        return _record(trace, node, None, threshold=f"sex is {node.value}", reason="sex not recorded",
                       missing="the patient's sex")
    values = [{"name": "sex", "value": sex, "source": f"Patient/{f.patient.id}"}]
    return _record(trace, node, status, values=values, threshold=f"sex is {node.value}")


def eval_LabTest(f: PatientFacts, node: ir.LabTest, trace) -> Tri:
    found = f.latest(node.analyte, node.fresh)
    v = found.value
    status = None if v is None else bounds_hold(v.value, v.comparator, node.bounds)
    if trace is None:
        return status
    if v is None:
        return _record(trace, node, None, threshold=_bounds_text(node.bounds, node.analyte.unit),
                       reason=found.reason, missing=_missing_lab(node.analyte, node.fresh))
    reason = None if status is not None else f"{v.describe()} is a bound, not a value, and straddles the threshold"
    return _record(trace, node, status, values=[_used(v, node.analyte)], reason=reason,
                   threshold=_bounds_text(node.bounds, node.analyte.unit),
                   missing=_missing_lab(node.analyte, node.fresh) if reason else None)


def eval_UlnTest(f: PatientFacts, node: ir.UlnTest, trace) -> Tri:
    found = f.latest(node.analyte, node.fresh)
    v = found.value
    threshold = f"{node.op} upper limit of normal + {node.margin:g} {node.analyte.unit}"
    if v is None:
        return _record(trace, node, None, threshold=threshold, reason=found.reason,
                       missing=_missing_lab(node.analyte, node.fresh))
    if v.reference_high is None:
        return _record(trace, node, None, threshold=threshold, values=[_used(v, node.analyte)],
                       reason=f"{v.record.id} has no reference range to give the upper limit of normal",
                       missing=f"the reference range of {node.analyte.title}")
    limit = v.reference_high + node.margin
    status = compare_value(v.value, v.comparator, node.op, limit)
    return _record(trace, node, status, values=[_used(v, node.analyte)],
                   threshold=f"{node.op} {limit:g} {node.analyte.unit} (upper limit {v.reference_high:g} + {node.margin:g})")


def eval_RisingTest(f: PatientFacts, node: ir.RisingTest, trace) -> Tri:
    found = f.latest(node.analyte, node.fresh)
    pair = _latest_pair(found.history)
    threshold = f"rise {node.op} {node.rate_per_day:g} {node.analyte.unit} per day"
    if pair is None:
        return _record(trace, node, None, threshold=threshold,
                       reason=f"needs two {node.analyte.title} results on different days within {node.fresh}",
                       missing=f"a second {node.analyte.title} result within {node.fresh}")
    newer, older = pair
    days = (newer.day - older.day).days
    rate = (newer.value - older.value) / days
    status = _OPS[node.op](rate, node.rate_per_day)
    return _record(trace, node, status, values=[_used(newer, node.analyte), _used(older, node.analyte)],
                   threshold=threshold, computed=f"{rate:+.2f} {node.analyte.unit} per day over {days} day(s)")


def _latest_pair(history: tuple[LabValue, ...]):
    exact = [v for v in history if v.comparator is None and v.value is not None]
    if len(exact) < 2:
        return None
    newer = exact[0]
    older = next((v for v in exact[1:] if v.day < newer.day), None)
    return None if older is None else (newer, older)


def eval_QualTest(f: PatientFacts, node: ir.QualTest, trace) -> Tri:
    found = f.latest(node.analyte, node.fresh)
    v = found.value
    status = None if v is None else _qualitative_matches(v.qualitative, node.value)
    if trace is None:
        return status
    threshold = f"{node.analyte.title} {node.value}"
    if v is None:
        return _record(trace, node, None, threshold=threshold, reason=found.reason,
                       missing=_missing_lab(node.analyte, node.fresh))
    return _record(trace, node, status, values=[_used(v, node.analyte)], threshold=threshold,
                   reason="the result is indeterminate" if status is None else None,
                   missing=f"a repeat {node.analyte.title}" if status is None else None)


def _qualitative_matches(found: str, wanted: str) -> Tri:
    """An indeterminate result decides nothing; any other result is the answer or not."""
    if found == wanted:
        return True
    return None if found == "indeterminate" else False


def eval_ScoreTest(f: PatientFacts, node: ir.ScoreTest, trace) -> Tri:
    value, used, reason, missing, notes = f.remember(("score", node.score, node.fresh), _score_value, f, node)
    if trace is None:
        return None if value is None else bounds_hold(value, None, node.bounds)
    threshold = _bounds_text(node.bounds, None)
    if value is None:
        return _record(trace, node, None, threshold=threshold, values=used, reason=reason, missing=missing)
    status = bounds_hold(value, None, node.bounds)
    return _record(trace, node, status, values=used, threshold=threshold,
                   computed=f"{node.title} = {value:g}" + (f" ({'; '.join(notes)})" if notes else ""))


def _score_value(f: PatientFacts, node: ir.ScoreTest):
    """A score recorded in the chart (code `elig|<score>`) wins; otherwise compute it."""
    recorded = _recorded_score(f, node)
    if recorded is not None:
        return recorded
    spec = SCORES[node.score]
    by_name = {a.name: a for a in node.inputs}
    args, used, missing = {}, [], []
    for name, unit in spec.inputs:
        got = _score_input(f, node, name, unit, by_name)
        if got is None:
            missing.append(by_name[name].title if name in by_name else name.replace("_", " "))
            continue
        args[name], entry = got
        if entry:
            used.append(entry)
    if missing:
        reason = f"{node.title} cannot be computed: missing fresh {', '.join(missing)}"
        return None, used, reason, ", ".join(f"{m} within {node.fresh}" for m in missing), ()
    try:
        result = spec.compute(**args)
    except ScoreInputError as exc:
        return None, used, f"{node.title} cannot be computed: {exc}", "valid score inputs", ()
    return float(result.value), used, None, None, tuple(result.adjustments)


def _recorded_score(f: PatientFacts, node: ir.ScoreTest):
    info = ir.AnalyteInfo(node.score, node.title, "quantitative", (node.score,), "1")
    found = f.latest(info, node.fresh)
    if found.value is None:
        return None
    used = _used(found.value, info)
    return found.value.value, [used], None, None, (f"as recorded in {found.value.record.id}",)


def _score_input(f: PatientFacts, node: ir.ScoreTest, name: str, unit: str | None, by_name: dict):
    if name in by_name:
        analyte = by_name[name]
        found = f.latest(analyte, node.fresh)
        v = found.value
        if v is None or v.comparator is not None:
            return None
        recorded = v.record.value  # convert from the recorded unit: one exact step, no round trip
        factor = units.conversion_factor(recorded.unit or "1", unit or "1", molar_mass=analyte.molar_mass,
                                         valence=analyte.valence)
        return recorded.value * factor, _used(v, analyte)
    if name == "on_dialysis":
        fact = f.fact("on_dialysis", node.fresh)
        entry = {"name": "on dialysis", "value": fact.value, "source": fact.id} if fact else \
            {"name": "on dialysis", "value": False, "recorded": "not recorded, taken as no"}
        return (fact.value if fact else False), entry
    if name == "sex":
        if f.patient.sex not in ("male", "female"):
            return None
        return f.patient.sex, {"name": "sex", "value": f.patient.sex, "source": f"Patient/{f.patient.id}"}
    return None


def eval_RecordTest(f: PatientFacts, node: ir.RecordTest, trace) -> Tri:
    records = f.records(node.codes)
    if not records and trace is None:
        return False
    if not records:
        return _record(trace, node, False, reason=None, values=[],
                       threshold=_record_threshold(node), absent=f"no record of {node.codes.title}")
    results = [(_record_counts(f, node, r), r) for r in records]
    status = any3(s for s, _ in results)
    if trace is None:
        return status
    shown = [r for s, r in results if s is status] or [r for _, r in results]
    values = [_record_used(r) for r in shown[:5]]
    reason = None
    if status is None and any(getattr(r, "verification_status", None) in UNCONFIRMED for r in shown):
        reason = f"{node.codes.title} is recorded only as unconfirmed, provisional or differential"
    elif status is None:
        reason = f"the dates of the {node.codes.title} records leave it undecided"
    return _record(trace, node, status, values=values, threshold=_record_threshold(node), reason=reason,
                   missing=f"onset/end dates of {node.codes.title}" if reason else None)


def _record_threshold(node: ir.RecordTest) -> str:
    if node.mode == "has":
        more = f" for more than {node.for_more_than}" if node.for_more_than else ""
        return f"current {node.codes.title}{more}"
    return f"{node.codes.title} within {node.within}" if node.within else f"any {node.codes.title} on record"


def _record_used(r) -> dict:
    code = r.codes[0] if getattr(r, "codes", None) else None
    start, end = _period(r)
    used = {"name": code.display or code.code if code else getattr(r, "study", None) or "trial", "source": r.id,
            "date": start, "end": end}
    if code is not None:
        used["code"] = f"{code.system} {code.code}"
    status = getattr(r, "clinical_status", None) or getattr(r, "status", None)
    if status:
        used["status"] = status
    return used


def _period(r) -> tuple[str | None, str | None]:
    if hasattr(r, "onset"):
        return r.onset, r.abatement
    return r.start, r.end


UNCONFIRMED = frozenset({"unconfirmed", "provisional", "differential"})


def _record_counts(f: PatientFacts, node: ir.RecordTest, r) -> Tri:
    result = _record_in_time(f, node, r)
    if result is True and getattr(r, "verification_status", None) in UNCONFIRMED:
        return None  # a differential or provisional diagnosis may still be ruled out
    return result


def _record_in_time(f: PatientFacts, node: ir.RecordTest, r) -> Tri:
    start, end = _record_interval(f, r)
    if start is not None and start[0] > f.as_of:
        return False  # begins after the screening date
    if node.mode == "has":
        current = _is_current(f, r, end)
        if current is not True or node.for_more_than is None:
            return current
        if start is None:
            return None
        cutoff = f.window_start(node.for_more_than)
        return True if start[1] < cutoff else False if start[0] >= cutoff else None
    if node.within is None:
        return True
    return _overlaps(start, end, f.window_start(node.within), f.as_of)


def _record_interval(f: PatientFacts, r):
    """(start bounds, end bounds) of a record, each the (earliest, latest) day it can be.

    An ongoing record ends at the screening date. A finished record with no end date ended
    somewhere between its start and the screening date: a course of prednisone recorded only by
    its start may have run into a window, so that is left undecided rather than read as one day.
    A condition known only by the date it was recorded began on or before that date. An
    administration or a procedure is a point event on its date.
    """
    first, last = _period(r)
    start = date_bounds(first)
    if start is None and getattr(r, "recorded", None):
        recorded = date_bounds(r.recorded)
        start = (date.min, recorded[1]) if recorded else None
    end = date_bounds(last)
    if end is None and _ongoing(r):
        end = (f.as_of, f.as_of)
    elif end is None and start is not None:
        end = start if _point_event(r) else (start[0], max(start[1], f.as_of))
    return start, end


def _point_event(r) -> bool:
    """Administrations and procedures happen on their date; courses and illnesses last."""
    return isinstance(r, Procedure) or getattr(r, "source", None) == "administration"


def _ongoing(r) -> bool:
    if hasattr(r, "clinical_status"):
        return r.clinical_status in (None, "active", "recurrence", "relapse") and r.abatement is None
    return getattr(r, "status", None) in ("active", "on-hold", "in-progress", "on-study", "on-study-intervention",
                                         "on-study-observation", "follow-up")


def _is_current(f: PatientFacts, r, end) -> Tri:
    """Current at the screening date: an active status, and no end date before it."""
    if hasattr(r, "clinical_status") and r.clinical_status in ("inactive", "remission", "resolved"):
        return False
    if not hasattr(r, "clinical_status") and not _ongoing(r):
        return False  # completed, stopped: the record itself says it is over
    ended = date_bounds(r.abatement if hasattr(r, "clinical_status") else r.end)
    if ended is None:
        return True
    return False if ended[1] <= f.as_of else True if ended[0] > f.as_of else None


def _overlaps(start, end, window_start, as_of) -> Tri:
    if start is None and end is None:
        return None
    lo = start or end
    hi = end or start
    if hi[0] >= window_start and lo[1] <= as_of:
        return True  # certainly inside
    if hi[1] < window_start or lo[0] > as_of:
        return False
    return None


def eval_FactTest(f: PatientFacts, node: ir.FactTest, trace) -> Tri:
    fact = f.fact(node.name, node.fresh)
    if trace is None:
        return None if fact is None else fact.value
    if fact is None:
        return _record(trace, node, None, threshold=node.title,
                       reason=f"no record within {node.fresh} of whether {node.title}",
                       missing=f"a record of whether {node.title}")
    values = [{"name": node.title, "value": fact.value, "date": fact.date, "source": fact.id}]
    return _record(trace, node, fact.value, values=values, threshold=node.title)


LEAF_EVALUATORS = {
    ir.AgeTest: eval_AgeTest, ir.SexTest: eval_SexTest, ir.LabTest: eval_LabTest, ir.UlnTest: eval_UlnTest,
    ir.RisingTest: eval_RisingTest, ir.QualTest: eval_QualTest, ir.ScoreTest: eval_ScoreTest,
    ir.RecordTest: eval_RecordTest, ir.FactTest: eval_FactTest,
}


def record_branch(trace, node, status: Tri, child_ids: tuple[int, ...]) -> Tri:
    """Record an and/or/not/definition node and which children decided it."""
    if trace is not None:
        decided = [c for c in child_ids if trace.get(c, {}).get("status") == status_word(status)]
        trace[node.nid] = {"node": node.nid, "text": node.text, "status": status_word(status),
                           "kind": type(node).__name__.lower(), "children": list(child_ids),
                           "decided_by": decided}
    return status
