"""Flat facts: one patient given as a flat mapping of names to values, for bulk screening.

Stage: evaluation input, an alternative to `facts.PatientFacts`. Where a warehouse or a feature
store already holds one row per patient (latest lab values in canonical units, yes/no flags for
diagnoses), building full `Patient` records only to index them again is wasted work. `FlatFacts`
answers the same questions the leaf evaluators of `runtime.py` ask (`latest`, `age_range`,
`records`, `fact`, `window_start`, `patient.sex`, `remember`) straight from the mapping, so a
`CompiledTrial` runs on it unchanged:

>>> from engine import compile_text
>>> trial = compile_text('trial NCT00000001 { }  inclusion I1 "Adults": age >= 18 years')
>>> trial.statuses(FlatFacts({"age": 40}, "2026-11-01")), trial.statuses(FlatFacts({}, "2026-11-01"))
(['met'], ['unknown'])

The keys are the names criteria files use (analytes, code sets, facts, scores). Missing keys
and `None` values mean *no data*, and give the same statuses as a patient record without it:

| key | value | read as |
| --- | --- | --- |
| `id` | text | the patient's id (cited in explanations) |
| `age` or `birth_date` | completed years, or a FHIR partial date | the age at the screening date |
| `sex` | `male`, `female`, `other`, `unknown` | |
| an analyte (`inr`, `bilirubin_total`) | a number in the analyte's canonical unit | the latest final result |
| a qualitative analyte (`hbsag`) | `positive`, `negative`, `indeterminate` | the latest final result |
| a score (`meld`) | a number | a score recorded in the chart (else it is computed from its inputs) |
| a code set (`cirrhosis`, `interferon`) | `True`, `False` | a current, counting record, or none |
| a fact (`pregnant`) | `True`, `False` | the recorded yes/no, dated at the screening date |
| `<name>__days` | days before the screening date | the date of the value or record above (default 0; for a code set: the onset) |
| `<analyte>__prev`, `<analyte>__prev_days` | a number, and its age in days | an earlier result, for `rising` tests |
| `<analyte>__uln` | a number in the canonical unit | the upper limit of normal of the latest result |

The safety rules of `PatientFacts` still hold where the flat form can express them: a value or
fact older than a criterion's freshness window does not count (`__days`); a value with a
comparator cannot be given, so every value is exact. Flat input carries no units: values are
taken as already converted to the canonical unit of their analyte.
"""

from __future__ import annotations

from datetime import date, timedelta
from typing import Mapping

from . import ir
from .facts import Remembers, _completed, subtract
from .ir import AnalyteInfo, CodeSetInfo, Window
from .patient import date_bounds

__all__ = ["FlatFacts", "flat_keys"]

_WINDOW_STARTS: dict = {}


class _FlatCoding:
    __slots__ = ("system", "code", "display")

    def __init__(self, system: str, code: str, display: str | None):
        self.system, self.code, self.display = system, code, display


class _FlatQuantity:
    __slots__ = ("value", "unit")
    comparator = None

    def __init__(self, value: float, unit: str | None):
        self.value, self.unit = value, unit


class _FlatObservation:
    """Stands in for `patient.Observation` where evaluators cite the result (`record.id`)."""

    __slots__ = ("id", "codes", "value")
    status = "final"

    def __init__(self, rid: str, analyte: AnalyteInfo, value):
        self.id = rid
        self.codes = _codes(analyte)
        self.value = _FlatQuantity(value, analyte.unit) if isinstance(value, (int, float)) else None


class _FlatValue:
    """Same attributes as `facts.LabValue`: one exact result in the analyte's canonical unit."""

    __slots__ = ("_pid", "_previous", "_analyte", "day", "value", "qualitative", "reference_high", "_record")
    comparator = None
    problem = None

    def __init__(self, pid: str, analyte: AnalyteInfo, day: date, value, reference_high=None, previous=False):
        self._pid = pid
        self._previous = previous
        self._analyte = analyte
        self.day = day
        if isinstance(value, str):
            self.value, self.qualitative = None, value
        else:
            self.value, self.qualitative = value, None
        self.reference_high = reference_high
        self._record = None

    @property
    def record(self) -> _FlatObservation:
        if self._record is None:
            raw = self.value if self.qualitative is None else self.qualitative
            rid = f"{self._pid}/{self._analyte.name}" + ("/previous" if self._previous else "")
            self._record = _FlatObservation(rid, self._analyte, raw)
        return self._record

    def describe(self) -> str:
        if self.qualitative is not None:
            return self.qualitative
        unit = self._analyte.unit
        return f"{self.value:g} {unit}" if unit and unit != "1" else f"{self.value:g}"


class _FlatLookup:
    """Same attributes as `facts.LabLookup`; the reason text is written only when read."""

    __slots__ = ("value", "history", "_why")

    def __init__(self, value, history, why=None):
        self.value = value
        self.history = history
        self._why = why

    @property
    def reason(self) -> str | None:
        return self._why() if self._why is not None else None


class _FlatCondition:
    """Stands in for `patient.Condition`: active, never refuted, optionally with an onset."""

    __slots__ = ("id", "codes", "onset")
    clinical_status = "active"
    verification_status = "confirmed"
    abatement = None
    recorded = None

    def __init__(self, rid: str, codes: list, onset: str | None):
        self.id, self.codes, self.onset = rid, codes, onset


class _FlatExposure:
    """Stands in for a medication, procedure or trial participation that is ongoing."""

    __slots__ = ("id", "codes", "start", "status", "study")
    end = None
    route = None

    def __init__(self, rid: str, codes: list, start: str | None, status: str, study: str | None = None):
        self.id, self.codes, self.start, self.status, self.study = rid, codes, start, status, study


_ONGOING_STATUS = {"medications": "active", "procedures": "in-progress", "trials": "on-study"}


class _FlatFact:
    __slots__ = ("id", "name", "value", "date")

    def __init__(self, rid: str, name: str, value: bool, day: str):
        self.id, self.name, self.value, self.date = rid, name, value, day


class FlatFacts(Remembers):
    """A flat mapping of one patient's values, answering as `PatientFacts` does.

    Build one per patient and screening date; `as_of` is a `date` or an ISO date string.
    It is also its own `patient` (`f.patient.sex`, `f.patient.id`), so no record is built.
    """

    __slots__ = ("values", "as_of", "_cache", "id", "sex", "birth_date")

    def __init__(self, values: Mapping, as_of: date | str):
        self.values = values
        self.as_of = as_of if isinstance(as_of, date) else date.fromisoformat(as_of)
        self._cache: dict = {}
        self.id = values.get("id", "flat")
        self.sex = values.get("sex")
        self.birth_date = values.get("birth_date")

    @property
    def patient(self) -> FlatFacts:
        return self

    # ---- windows and age ----------------------------------------------------------------

    def window_start(self, window: Window) -> date:
        key = (self.as_of, window)
        start = _WINDOW_STARTS.get(key)
        if start is None:
            if len(_WINDOW_STARTS) > 4096:
                _WINDOW_STARTS.clear()
            start = _WINDOW_STARTS[key] = subtract(self.as_of, window)
        return start

    def age_range(self, unit: str) -> tuple[int, int] | None:
        """Completed years (or months); a given age in years is a range of months."""
        age = self.values.get("age")
        if age is not None:
            return (age, age) if unit == "year" else (age * 12, age * 12 + 11)
        birth = date_bounds(self.birth_date)
        if birth is None:
            return None
        return _completed(birth[1], self.as_of, unit), _completed(birth[0], self.as_of, unit)

    def _day(self, name: str) -> date:
        days = self.values.get(name + "__days")
        return self.as_of if not days else self.as_of - timedelta(days=days)

    # ---- labs -----------------------------------------------------------------------------

    def latest(self, analyte: AnalyteInfo, window: Window) -> _FlatLookup:
        name = analyte.name
        values = self.values
        raw = values.get(name)
        if raw is None:
            return _FlatLookup(None, (), lambda: f"no {analyte.title} result on record")
        k_days, k_uln, k_prev, k_prev_days = _suffixed(name)
        days = values.get(k_days)
        day = self.as_of
        if days:  # dated before the screening date: it must be within the window
            day = day - timedelta(days=days)
            if day < self.window_start(window):
                rid = f"{self.id}/{name}"
                return _FlatLookup(None, (), lambda: f"no {analyte.title} within {window}; the latest is from "
                                                     f"{day.isoformat()} ({rid}), older than the window")
        newest = _FlatValue(self.id, analyte, day, raw, values.get(k_uln))
        previous = values.get(k_prev)
        if previous is None:
            return _FlatLookup(newest, (newest,))
        prev_day = self.as_of - timedelta(days=values.get(k_prev_days) or 0)
        if prev_day < self.window_start(window) or prev_day > day:
            return _FlatLookup(newest, (newest,))
        return _FlatLookup(newest, (newest, _FlatValue(self.id, analyte, prev_day, previous, previous=True)))

    # ---- records by code set ------------------------------------------------------------

    def records(self, codes: CodeSetInfo) -> list:
        name = codes.name
        if not self.values.get(name):
            return []
        days = self.values.get(name + "__days")
        onset = None if days is None else (self.as_of - timedelta(days=days)).isoformat()
        rid = f"{self.id}/{name}"
        coded = _codes(codes)
        if codes.kind == "conditions":
            return [_FlatCondition(rid, coded, onset)]
        status = _ONGOING_STATUS.get(codes.kind, "active")
        if codes.kind == "procedures" and onset is not None:
            status = "completed"  # a dated procedure is a point in time, not ongoing
        return [_FlatExposure(rid, coded, onset, status, name if codes.kind == "trials" else None)]

    # ---- facts ----------------------------------------------------------------------------

    def fact(self, name: str, window: Window):
        value = self.values.get(name)
        if value is None:
            return None
        day = self._day(name)
        if day < self.window_start(window):
            return None
        return _FlatFact(f"{self.id}/{name}", name, bool(value), day.isoformat())


_CODES: dict = {}
_SUFFIXES: dict = {}


def _suffixed(name: str) -> tuple[str, str, str, str]:
    found = _SUFFIXES.get(name)
    if found is None:
        if len(_SUFFIXES) > 4096:
            _SUFFIXES.clear()
        found = _SUFFIXES[name] = (name + "__days", name + "__uln", name + "__prev", name + "__prev_days")
    return found


def _codes(info: CodeSetInfo | AnalyteInfo) -> list:
    """One `flat <name>` coding per code set or analyte, made once."""
    found = _CODES.get(info.name)
    if found is None or found[0] is not info:
        if len(_CODES) > 4096:
            _CODES.clear()
        found = _CODES[info.name] = (info, [_FlatCoding("flat", info.name, info.title)])
    return found[1]


def flat_keys(trials) -> dict[str, str]:
    """The keys compiled trials read from a flat mapping, each with what its value should be."""
    keys: dict[str, str] = {}
    for trial in trials:
        for c in trial.checked.criteria:
            for root in (c.when, c.body):
                for node in ir.walk(root) if root is not None else ():
                    keys.update(_keys_of(node))
    return dict(sorted(keys.items()))


def _keys_of(node) -> dict[str, str]:
    if isinstance(node, ir.AgeTest):
        return {"age": "completed years (or birth_date: a partial date)"}
    if isinstance(node, ir.SexTest):
        return {"sex": "male, female, other or unknown"}
    if isinstance(node, ir.QualTest):
        return {node.analyte.name: "positive, negative or indeterminate"}
    if isinstance(node, (ir.LabTest, ir.UlnTest, ir.RisingTest)):
        a = node.analyte
        found = {a.name: f"number in {a.unit}"}
        if isinstance(node, ir.UlnTest):
            found[a.name + "__uln"] = f"upper limit of normal in {a.unit}"
        if isinstance(node, ir.RisingTest):
            found[a.name + "__prev"] = f"an earlier result in {a.unit}"
            found[a.name + "__prev_days"] = "days before the screening date of the earlier result"
        return found
    if isinstance(node, ir.ScoreTest):
        found = {node.score: f"{node.title} as recorded (else computed from its inputs)"}
        found.update((a.name, f"number in {a.unit}") for a in node.inputs)
        if node.score.startswith("meld"):
            found["on_dialysis"] = "true or false: the patient is on dialysis (absent: taken as no)"
        return found
    if isinstance(node, ir.RecordTest):
        found = {node.codes.name: f"true if the patient has a record of {node.codes.title}"}
        if node.for_more_than is not None:
            found[node.codes.name + "__days"] = "days since onset"
        return found
    if isinstance(node, ir.FactTest):
        return {node.name: f"true or false: {node.title}"}
    return {}
