"""Patient facts: one patient's record indexed once, read by every trial's evaluator.

Stage: evaluation input. Built once per patient and screening date; lookups by analyte or code
set are computed on first use and cached, so screening one patient against many trials reads
the record once. Everything here answers the safety rules of the product:

- only final, amended and corrected results count; preliminary ones are reported, not used;
- a lab value must be dated within the criterion's freshness window, and on or before the
  screening date; an older one is *stale*, which makes the criterion unknown, not not-met;
- a value whose unit cannot be converted is unusable, with the reason, never a guess;
- refuted and entered-in-error diagnoses, and cancelled or entered-in-error records, never count.
"""

from __future__ import annotations

import calendar
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta

from . import units
from .ir import AnalyteInfo, CodeSetInfo, Window
from .patient import Observation, Patient, date_bounds

COUNTED_OBSERVATION_STATUS = frozenset({"final", "amended", "corrected"})
VOID_STATUS = frozenset({"entered-in-error", "cancelled", "not-done", "not-taken", "draft", "intended"})
TOPICAL_ROUTES = ("topical", "cutaneous", "transdermal", "ophthalmic", "otic", "nasal", "inhal", "vaginal",
                  "rectal", "dermal", "skin", "cream", "ointment", "lotion")
PARTICIPATING = frozenset({"on-study", "on-study-intervention", "on-study-observation", "follow-up", "off-study",
                           "active", "completed"})

# Qualitative result normalisation (reference/loinc-ucum.md §5). Fails closed: anything not
# listed is unrecognised, which makes the result unknown.
SNOMED_QUALITATIVE = {"10828004": "positive", "260385009": "negative", "82334004": "indeterminate",
                      "260415000": "negative"}
INTERPRETATION_QUALITATIVE = {"POS": "positive", "NEG": "negative", "IND": "indeterminate", "DET": "positive",
                              "ND": "negative"}
TEXT_QUALITATIVE = {"positive": "positive", "pos": "positive", "reactive": "positive", "detected": "positive",
                    "+": "positive", "阳性": "positive", "negative": "negative", "neg": "negative",
                    "non-reactive": "negative", "nonreactive": "negative", "not detected": "negative",
                    "-": "negative", "阴性": "negative", "indeterminate": "indeterminate",
                    "equivocal": "indeterminate", "borderline": "indeterminate"}


@dataclass(frozen=True, slots=True)
class LabValue:
    """One result, converted to its analyte's canonical unit when it is a number."""

    record: Observation
    day: date  # the latest day the result can be dated to
    value: float | None = None  # canonical unit
    comparator: str | None = None
    qualitative: str | None = None
    reference_high: float | None = None  # canonical unit
    problem: str | None = None  # why it cannot be used

    def describe(self) -> str:
        q = self.record.value
        if q is not None:
            return f"{q.comparator or ''}{_num(q.value)} {q.unit or ''}".strip()
        return self.qualitative or self.record.value_text or "(no value)"


@dataclass(frozen=True, slots=True)
class LabLookup:
    """The latest usable value within a window, or why there is none."""

    value: LabValue | None
    reason: str | None = None
    history: tuple[LabValue, ...] = ()  # fresh usable values, newest first


class Remembers:
    """Per-patient memo for what every trial asks again; the owner sets `_cache` to a dict."""

    __slots__ = ()

    def remember(self, key, compute, *args):
        """`compute(*args)`, once per key for this patient (a score, say)."""
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = compute(*args)
        return found


class PatientFacts(Remembers):
    """A patient record with the screening date fixed and per-name caches."""

    def __init__(self, patient: Patient, as_of: date):
        self.patient = patient
        self.as_of = as_of
        self._by_code = _index_observations(patient.observations)
        self._cache: dict = {}
        self.birth = date_bounds(patient.birth_date)

    # ---- windows ------------------------------------------------------------------------

    def window_start(self, window: Window) -> date:
        key = ("window", window)
        found = self._cache.get(key)  # one lookup: hashing the key is most of the cost
        if found is None:
            found = self._cache[key] = subtract(self.as_of, window)
        return found

    # ---- age ------------------------------------------------------------------------------

    def age_range(self, unit: str) -> tuple[int, int] | None:
        """Completed years (or months) at the screening date; a range for a partial birth date."""
        if self.birth is None:
            return None
        earliest, latest = self.birth
        return _completed(latest, self.as_of, unit), _completed(earliest, self.as_of, unit)

    # ---- labs -----------------------------------------------------------------------------

    def lab_values(self, analyte: AnalyteInfo) -> list[LabValue]:
        """Every counted result for the analyte up to the screening date, newest first."""
        key = ("lab", analyte)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._collect_lab_values(analyte)
        return found

    def _collect_lab_values(self, analyte: AnalyteInfo) -> list[LabValue]:
        records = {id(o): o for code in analyte.loinc for o in self._by_code.get(code, ())}.values()
        values = [_lab_value(o, analyte, self.as_of) for o in records]
        values = [v for v in values if v is not None]
        values.sort(key=lambda v: (v.day, v.record.id), reverse=True)
        return values

    def latest(self, analyte: AnalyteInfo, window: Window) -> LabLookup:
        key = ("latest", analyte, window)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = self._latest(analyte, window)
        return found

    def _latest(self, analyte: AnalyteInfo, window: Window) -> LabLookup:
        everything = self.lab_values(analyte)
        start = self.window_start(window)
        fresh = [v for v in everything if v.day >= start]
        usable = tuple(v for v in fresh if v.problem is None)
        if fresh and fresh[0].problem is not None:
            return LabLookup(None, f"latest {analyte.title} ({fresh[0].record.id}): {fresh[0].problem}", usable)
        if usable:
            return LabLookup(usable[0], None, usable)
        if everything:
            newest = everything[0]
            return LabLookup(None, f"no {analyte.title} within {window}; the latest is from {newest.day.isoformat()} "
                                   f"({newest.record.id}), older than the window")
        return LabLookup(None, f"no {analyte.title} result on record")

    # ---- records by code set ------------------------------------------------------------

    def records(self, codes: CodeSetInfo) -> list:
        key = ("records", codes)
        found = self._cache.get(key)
        if found is None:
            candidates = self._candidates(codes.kind, codes.systemic)
            if codes.kind == "trials":
                found = [r for r, _ in candidates]
            else:
                matches = code_set_matcher(codes)
                found = [r for r, coded in candidates if matches(coded)]
            self._cache[key] = found
        return found

    def _candidates(self, kind: str, systemic: bool) -> list[tuple[object, tuple[tuple[str, str], ...]]]:
        """(record, its (system, code) pairs) for the records of a kind that can count at all.

        Shared by every code set of that kind, so each record's codes are read once.
        """
        key = ("candidates", kind, systemic)
        found = self._cache.get(key)
        if found is None:
            records = self._collect_candidates(kind, systemic)
            found = [(r, tuple((c.system, c.code) for c in getattr(r, "codes", ()))) for r in records]
            self._cache[key] = found
        return found

    def _collect_candidates(self, kind: str, systemic: bool) -> list:
        p = self.patient
        if kind == "trials":
            return [t for t in p.trials if t.status in PARTICIPATING]
        if kind == "conditions":
            return [c for c in p.conditions if c.verification_status not in ("refuted", "entered-in-error")]
        if kind == "medications":
            meds = [m for m in p.medications if m.status not in VOID_STATUS]
            return [m for m in meds if not (systemic and _is_local_route(m))]
        return [pr for pr in p.procedures if pr.status not in VOID_STATUS]

    # ---- facts ----------------------------------------------------------------------------

    def fact(self, name: str, window: Window):
        """The latest recorded value of a yes/no fact within the window, or None.

        An undated fact cannot be placed in the window, so like an undated lab it does not count.
        """
        start = self.window_start(window)
        fresh = []
        for f in self.patient.facts:
            bounds = date_bounds(f.date) if f.name == name else None
            if bounds is not None and start <= bounds[1] and bounds[0] <= self.as_of:
                fresh.append((bounds[1], f.id, f))
        return max(fresh)[2] if fresh else None


def observation_codes(trials) -> frozenset[str]:
    """Every observation code the trials (compiled or checked) can read, score inputs included.

    `PatientFacts` finds observations by code alone, so a record reduced to observations with
    these codes screens exactly as the whole record does (`fhir.bundle_to_patient` uses it).
    """
    checked = (getattr(t, "checked", t) for t in trials)
    return frozenset(code for t in checked for analyte in t.analytes for code in analyte.loinc)


# ---- helpers -------------------------------------------------------------------------------

def subtract(day: date, window: Window) -> date:
    """The calendar date `window` before `day` (1 month before 31 March is 28/29 February)."""
    if window.unit == "day":
        return day - timedelta(days=window.amount)
    if window.unit == "week":
        return day - timedelta(weeks=window.amount)
    months = window.amount * (12 if window.unit == "year" else 1)
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def _completed(birth: date, as_of: date, unit: str) -> int:
    before_anniversary = (as_of.month, as_of.day) < (birth.month, birth.day)
    if unit == "year":
        return as_of.year - birth.year - before_anniversary
    months = (as_of.year - birth.year) * 12 + as_of.month - birth.month
    return months - (as_of.day < birth.day)


def _index_observations(observations) -> dict[str, list[Observation]]:
    index: dict[str, list[Observation]] = {}
    for o in observations:
        if o.status in ("entered-in-error", "cancelled"):
            continue
        for c in o.codes:
            index.setdefault(c.code, []).append(o)
    return index


def _lab_value(o: Observation, analyte: AnalyteInfo, as_of: date) -> LabValue | None:
    bounds = date_bounds(o.effective)
    if bounds is None:
        return None  # an undated result cannot be placed in any window
    if bounds[0] > as_of:
        return None  # after the screening date
    day = min(bounds[1], as_of)
    if o.status not in COUNTED_OBSERVATION_STATUS:
        return LabValue(o, day, problem=f"status is {o.status}; only final, amended or corrected results count")
    if o.data_absent_reason:
        return LabValue(o, day, problem=f"no value: {o.data_absent_reason}")
    if analyte.kind == "qualitative":
        return _qualitative_value(o, day)
    return _quantitative_value(o, analyte, day)


def _qualitative_value(o: Observation, day: date) -> LabValue:
    found = {SNOMED_QUALITATIVE.get(c.code) for c in o.value_codes if c.system == "snomed"}
    found |= {INTERPRETATION_QUALITATIVE.get(code.upper()) for code in o.interpretation}
    if o.value_text:
        found.add(TEXT_QUALITATIVE.get(o.value_text.strip().lower()))
    if o.value_boolean is not None:
        found.add("positive" if o.value_boolean else "negative")
    found.discard(None)
    if len(found) == 1:
        return LabValue(o, day, qualitative=found.pop())
    if len(found) > 1:
        return LabValue(o, day, problem=f"contradictory result ({', '.join(sorted(found))})")
    return LabValue(o, day, problem="result not recognised as positive or negative")


def _quantitative_value(o: Observation, analyte: AnalyteInfo, day: date) -> LabValue:
    if o.value is None:
        return LabValue(o, day, problem="no numeric value")
    try:
        factor = _factor(o.value.unit, analyte)
    except units.UnitError as exc:
        return LabValue(o, day, problem=f"unit {o.value.unit!r} cannot be converted to {analyte.unit}: {exc}")
    high = o.reference_high
    ref = None
    if high is not None:
        try:
            ref = high.value * _factor(high.unit or o.value.unit, analyte)
        except units.UnitError:
            ref = None
    return LabValue(o, day, value=o.value.value * factor, comparator=o.value.comparator, reference_high=ref)


def _factor(unit: str | None, analyte: AnalyteInfo) -> float:
    target = analyte.unit or "1"
    if unit is None or unit == "":
        if target in ("1", "{INR}"):
            return 1.0
        raise units.UnitError("the value has no unit")
    return units.conversion_factor(unit, target, molar_mass=analyte.molar_mass, valence=analyte.valence)


_MATCHERS: dict[CodeSetInfo, Callable[[tuple[tuple[str, str], ...]], bool]] = {}
_MEMO_LIMIT = 4096  # answers remembered per code set: bounds memory (batch memory must stay flat)
_MATCHERS_LIMIT = 1024  # code sets remembered: a rule set uses tens; reloads of edited ones add more


def code_set_matcher(codes: CodeSetInfo) -> Callable[[tuple[tuple[str, str], ...]], bool]:
    """Whether a record's `((system, code), …)` falls in the code set, remembered across patients.

    Matching walks ICD and ATC prefixes and ranges code by code; the same codes recur from
    record to record, and screening one patient asks ~20 code sets about each record (two
    thirds of a five-trial screening before this memo). Code sets are compile-time constants,
    so an answer never goes stale; the memo is bounded and merely restarts when full.
    """
    matcher = _MATCHERS.get(codes)
    if matcher is None:
        memo: dict[tuple[tuple[str, str], ...], bool] = {}

        def matcher(coded: tuple[tuple[str, str], ...]) -> bool:
            hit = memo.get(coded)
            if hit is None:
                if len(memo) >= _MEMO_LIMIT:
                    memo.clear()
                hit = memo[coded] = any(_code_matches(system, code, codes) for system, code in coded)
            return hit

        if len(_MATCHERS) >= _MATCHERS_LIMIT:
            _MATCHERS.clear()
        _MATCHERS[codes] = matcher
    return matcher


def _code_matches(system: str, code: str, codes: CodeSetInfo) -> bool:
    if (system, code) in codes.exact:
        return True
    if system in ("icd10", "icd10cm", "atc"):
        norm = code.upper().replace(".", "") if system != "atc" else code.upper()
        if any((system, norm[:n]) in codes.prefixes for n in range(1, len(norm) + 1)):
            return True
        return any(s == system and lo <= norm[:len(lo)] <= hi for s, lo, hi in codes.ranges)
    return False


def _is_local_route(m) -> bool:
    """Topical, inhaled and similar routes are not systemic exposure (ATC H02 vs D07/R03)."""
    words = " ".join(filter(None, [m.route, *(c.display or "" for c in m.codes)])).lower()
    return any(w in words for w in TOPICAL_ROUTES)


def _num(x: float) -> str:
    return f"{x:g}"
