"""Clinical scores computed from lab values: MELD, MELD-Na, MELD 3.0 and Child-Pugh.

Stage: derived values, between value normalisation and criteria evaluation. Input: the
latest fresh lab values, already converted to the conventional units each score declares in
`SCORES` (bilirubin and creatinine mg/dL, albumin g/dL, sodium mmol/L, INR unitless), plus
patient facts (dialysis, sex, ascites and encephalopathy grades). Output: a `ScoreResult` with
the value, the inputs as given and readable notes on every bound, floor, cap and rounding
applied, so that an explanation can show how the number was reached. Why: trial criteria
say "MELD >= 15" or "Child-Pugh class B", but no lab reports these scores; computing them
here, as pure functions, keeps them testable and lets every result cite its inputs.

Nothing is defaulted: the runtime calls `compute` only when every input is present, and an
input of the wrong kind raises `ScoreInputError`.

Rounding. Every "round to the nearest integer / tenth" here is round-half-up on the value's
shortest decimal spelling (12.5 -> 13, 1.15 -> 1.2), done with `decimal`. Python's `round()`
rounds halves to even (12.5 -> 12), which is not what the published rules mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Callable, Literal

__all__ = [
    "ScoreInputError",
    "ScoreResult",
    "ScoreSpec",
    "SCORES",
    "meld",
    "meld_na",
    "meld_3",
    "child_pugh",
]


class ScoreInputError(ValueError):
    """An input a score cannot use (negative, not a number, unknown grade or sex)."""


@dataclass(frozen=True)
class ScoreResult:
    """A computed score with the inputs as given and notes on how they were used.

    `category` carries a class where the score defines one (Child-Pugh A/B/C), else None.
    """

    value: float
    inputs: dict[str, float]
    adjustments: tuple[str, ...] = ()
    category: str | None = None


# --- helpers ----------------------------------------------------------------------------------


def _round_half_up(x: float | Decimal, places: int = 0) -> Decimal:
    """`x` rounded half up to `places` decimals, on its shortest decimal spelling."""
    d = x if isinstance(x, Decimal) else Decimal(repr(float(x)))
    return d.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def _fmt(x: float | Decimal) -> str:
    """A number as a clinician would write it: 0.8, 4, 1.25."""
    return format(Decimal(repr(float(x))).normalize(), "f")


def _lab(name: str, value: float) -> float:
    """Reject values no lab reports; the runtime treats the error as an unknown score."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ScoreInputError(f"{name} must be a number, not {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ScoreInputError(f"{name} must be a finite, non-negative number, not {value!r}")
    return float(value)


def _flag(name: str, value: bool) -> bool:
    if not isinstance(value, bool):
        raise ScoreInputError(f"{name} must be true or false, not {value!r}")
    return value


def _floor_1(name: str, value: float, unit: str, notes: list[str]) -> float:
    """MELD family: values below 1.0 are set to 1.0 so that ln() stays >= 0."""
    if value < 1.0:
        notes.append(f"{name} {_fmt(value)}{unit} set to 1.0 (floor)")
        return 1.0
    return value


def _creatinine(value: float, cap: float, dialysis: bool, notes: list[str]) -> float:
    """Creatinine for the MELD family: dialysis sets it to the cap, else floor 1.0 and cap."""
    if dialysis:
        notes.append(f"creatinine set to {cap:.1f}: dialysis")
        return cap
    if value > cap:
        notes.append(f"creatinine {_fmt(value)} mg/dL set to {cap:.1f} (cap)")
        return cap
    return _floor_1("creatinine", value, " mg/dL", notes)


def _bound(name: str, value: float, low: float, high: float, unit: str, notes: list[str]) -> float:
    if value < low or value > high:
        bounded = min(max(value, low), high)
        notes.append(f"{name} {_fmt(value)}{unit} bounded to {_fmt(bounded)}")
        return bounded
    return value


def _meld_i(bilirubin: float, creatinine: float, inr: float, notes: list[str]) -> int:
    """OPTN MELD(i): round the inner sum to the tenth decimal place, then multiply by 10.

    Done in `Decimal` so that MELD(i) is an exact integer (in floats 10 * 1.1 is
    11.000000000000002, which would wrongly pass the MELD-Na test "MELD(i) > 11").
    """
    inner = 0.957 * math.log(creatinine) + 0.378 * math.log(bilirubin) + 1.120 * math.log(inr) + 0.643
    value = int(_round_half_up(inner, 1) * 10)
    notes.append(f"MELD(i) = 10 x round({inner:.4f}, 1) = {value}")
    return value


_MELD_CAP = 40


def _cap_40(value: int, notes: list[str]) -> int:
    if value > _MELD_CAP:
        notes.append(f"score {value} capped at {_MELD_CAP} (UNOS/OPTN maximum)")
        return _MELD_CAP
    return value


# --- MELD -------------------------------------------------------------------------------------


def meld(bilirubin: float, creatinine: float, inr: float, *, dialysis: bool = False) -> ScoreResult:
    """Original (UNOS) MELD, an integer 6-40.

    MELD = 10 x (0.957 ln Cr + 0.378 ln bili + 1.120 ln INR + 0.643), i.e. 9.57 ln Cr +
    3.78 ln bili + 11.2 ln INR + 6.43, bili and Cr in mg/dL. Values below 1.0 are set to 1.0;
    creatinine is capped at 4.0 mg/dL and set to 4.0 on dialysis (>= 2 sessions, or 24 h of
    CVVHD, in the week before the creatinine test). Rounded half up to an integer (computed as
    OPTN's MELD(i), which rounds the inner sum to the tenth and multiplies by 10: the same
    integer). Capped at 40, the UNOS/OPTN maximum.

    Sources: Malinchoc M et al., Hepatology 2000;31:864-871 (the model); Kamath PS et al.,
    "A model to predict survival in patients with end-stage liver disease", Hepatology
    2001;33:464-470; Wiesner R et al., Gastroenterology 2003;124:91-96 (UNOS bounds, cap 40).
    The bounds, the dialysis rule and the cap at 40 were checked against several independent
    restatements of the OPTN rules (OPTN 2015 policy notice as quoted by MDCalc; Medscape
    worked example Cr 1.9, bili 4.2, INR 1.2 -> 20), not against the papers' full text.
    """
    bili, cr, i = _lab("bilirubin", bilirubin), _lab("creatinine", creatinine), _lab("INR", inr)
    notes: list[str] = []
    b = _floor_1("bilirubin", bili, " mg/dL", notes)
    c = _creatinine(cr, 4.0, _flag("dialysis", dialysis), notes)
    r = _floor_1("INR", i, "", notes)
    value = _cap_40(_meld_i(b, c, r, notes), notes)
    return ScoreResult(value, {"bilirubin": bili, "creatinine": cr, "inr": i}, tuple(notes))


def meld_na(
    bilirubin: float, creatinine: float, inr: float, sodium: float, *, dialysis: bool = False
) -> ScoreResult:
    """MELD-Na as used by OPTN from January 2016 (OPTN Policy 9.1), an integer 6-40.

    MELD(i) = 0.957 ln Cr + 0.378 ln bili + 1.120 ln INR + 0.643, with the MELD bounds and
    dialysis rule; "then, round to the tenth decimal place and multiply by 10", so MELD(i) is
    an integer (the original MELD). If MELD(i) > 11:
    MELD = MELD(i) + 1.32 x (137 - Na) - [0.033 x MELD(i) x (137 - Na)], Na bounded to
    125-137 mmol/L; otherwise MELD = MELD(i). Rounded half up to an integer, capped at 40.

    The order "round, then multiply by 10" follows the policy wording as quoted from the OPTN
    2015 policy notice (MDCalc) and as implemented by the R package `ameld` and a SAS macro
    citing OPTN policy 9.1.D. Reading it as "multiply by 10, then round to one decimal"
    differs only when 10 x the inner sum lies in [11.45, 11.5): e.g. 11.47 gives MELD(i) 11
    here (no sodium term) but 11.5 (> 11) the other way. Not verified against the OPTN policy
    PDF itself, which was not available in this session.

    Sources: Kim WR et al., "Hyponatremia and mortality among patients on the liver-transplant
    waiting list", N Engl J Med 2008;359:1018-1026; OPTN Policy 9.1 (MELD score), 2016.
    """
    bili, cr, i = _lab("bilirubin", bilirubin), _lab("creatinine", creatinine), _lab("INR", inr)
    na = _lab("sodium", sodium)
    notes: list[str] = []
    b = _floor_1("bilirubin", bili, " mg/dL", notes)
    c = _creatinine(cr, 4.0, _flag("dialysis", dialysis), notes)
    r = _floor_1("INR", i, "", notes)
    meld_i = _meld_i(b, c, r, notes)
    inputs = {"bilirubin": bili, "creatinine": cr, "inr": i, "sodium": na}
    if meld_i <= 11:
        notes.append(f"MELD(i) {meld_i} is not above 11: sodium not applied")
        return ScoreResult(meld_i, inputs, tuple(notes))
    n = Decimal(repr(_bound("sodium", na, 125.0, 137.0, " mmol/L", notes)))
    m = Decimal(meld_i)
    exact = m + Decimal("1.32") * (137 - n) - Decimal("0.033") * m * (137 - n)
    value = int(_round_half_up(exact))
    notes.append(f"MELD-Na = {_fmt(exact)}, rounded to {value}")
    return ScoreResult(_cap_40(value, notes), inputs, tuple(notes))


def meld_3(
    bilirubin: float,
    creatinine: float,
    inr: float,
    sodium: float,
    albumin: float,
    *,
    female: bool,
    dialysis: bool = False,
) -> ScoreResult:
    """MELD 3.0 (adults), an integer; OPTN has used it for liver allocation since July 2023.

    MELD 3.0 = 1.33 (if female) + 4.56 ln(bili) + 0.82 (137 - Na) - 0.24 (137 - Na) ln(bili)
    + 9.09 ln(INR) + 11.14 ln(Cr) + 1.85 (3.5 - Alb) - 1.83 (3.5 - Alb) ln(Cr) + 6,
    rounded half up to an integer. Bounds: bili, Cr, INR at least 1.0; Cr at most 3.0 and set
    to 3.0 on dialysis (>= 2 sessions, or 24 h of CVVHD, in the week before); Na 125-137
    mmol/L; albumin 1.5-3.5 g/dL.

    Source: Kim WR, Mannalithara A, Heimbach JK, et al., "MELD 3.0: The Model for End-Stage
    Liver Disease Updated for the Modern Era", Gastroenterology 2021;161:1887-1895.e4
    (doi:10.1053/j.gastro.2021.08.050). The coefficients and bounds above agree with three
    independent restatements (an openEHR archetype quoting the paper, the R package `ameld`,
    a SAS macro citing OPTN policy 9.1.D); the paper's full text was not read in this session.
    Not capped at 40: the paper scales MELD 3.0 without presuming a cap. Whether OPTN caps it
    at 40 for allocation was not verified. Not modelled: OPTN adds the 1.33 to candidates aged
    12-17 of either sex; this function is for adults.
    """
    bili, cr, i = _lab("bilirubin", bilirubin), _lab("creatinine", creatinine), _lab("INR", inr)
    na, alb = _lab("sodium", sodium), _lab("albumin", albumin)
    notes: list[str] = []
    b = _floor_1("bilirubin", bili, " mg/dL", notes)
    c = _creatinine(cr, 3.0, _flag("dialysis", dialysis), notes)
    r = _floor_1("INR", i, "", notes)
    n = _bound("sodium", na, 125.0, 137.0, " mmol/L", notes)
    a = _bound("albumin", alb, 1.5, 3.5, " g/dL", notes)
    if _flag("female", female):
        notes.append("female: +1.33")
    ln_b, ln_c, dn, da = math.log(b), math.log(c), 137.0 - n, 3.5 - a
    raw = (
        (1.33 if female else 0.0)
        + 4.56 * ln_b + 0.82 * dn - 0.24 * dn * ln_b
        + 9.09 * math.log(r)
        + 11.14 * ln_c + 1.85 * da - 1.83 * da * ln_c
        + 6.0
    )
    value = int(_round_half_up(raw))
    notes.append(f"MELD 3.0 = {raw:.3f}, rounded to {value}")
    inputs = {"bilirubin": bili, "creatinine": cr, "inr": i, "sodium": na, "albumin": alb}
    return ScoreResult(value, inputs, tuple(notes))


# --- Child-Pugh -------------------------------------------------------------------------------

Ascites = Literal["none", "mild", "moderate_severe"]
Encephalopathy = Literal["none", "grade_1_2", "grade_3_4"]

_ASCITES_POINTS = {"none": 1, "mild": 2, "moderate_severe": 3}
_ENCEPHALOPATHY_POINTS = {"none": 1, "grade_1_2": 2, "grade_3_4": 3}


def _points_rising(value: float, low: float, high: float) -> int:
    """1 below `low`, 2 from `low` to `high` inclusive, 3 above `high` (bilirubin, INR)."""
    return 1 if value < low else 2 if value <= high else 3


def _points_falling(value: float, low: float, high: float) -> int:
    """1 above `high`, 2 from `low` to `high` inclusive, 3 below `low` (albumin)."""
    return 1 if value > high else 2 if value >= low else 3


def _grade(name: str, value: str, table: dict[str, int]) -> int:
    if value not in table:
        raise ScoreInputError(f"{name} must be one of {', '.join(table)}, not {value!r}")
    return table[value]


def _child_pugh_class(points: int) -> str:
    return "A" if points <= 6 else "B" if points <= 9 else "C"


def child_pugh(
    bilirubin: float,
    albumin: float,
    inr: float,
    ascites: Ascites,
    encephalopathy: Encephalopathy,
) -> ScoreResult:
    """Child-Pugh points (5-15) with class A (5-6), B (7-9) or C (10-15) in `category`.

    Points 1 / 2 / 3: bilirubin < 2 / 2-3 / > 3 mg/dL; albumin > 3.5 / 2.8-3.5 / < 2.8 g/dL;
    INR < 1.7 / 1.7-2.3 / > 2.3; ascites none / mild / moderate-severe; encephalopathy none /
    grade 1-2 / grade 3-4. Boundaries belong to the middle band: bilirubin 2.0 and 3.0,
    albumin 3.5 and 2.8, INR 1.7 and 2.3 all score 2. Lab values are compared after rounding
    to 6 decimals, so that unit-conversion noise (1.9999999999999998) cannot cross a cut.

    Source: Pugh RN, Murray-Lyon IM, Dawson JL, Pietroni MC, Williams R, "Transection of the
    oesophagus for bleeding oesophageal varices", Br J Surg 1973;60:646-649 (modifying Child
    and Turcotte, 1964). Pugh graded prothrombin time in seconds prolonged (1-4 / 4-6 / > 6);
    the INR cut-offs 1.7 / 2.3 are the later convention used in current tables (MSD Manual,
    Cleveland Clinic J Med), not Pugh's. Some tables use albumin 3.0-3.5 g/dL instead of
    2.8-3.5; this follows 2.8. Not checked against the 1973 paper's text.
    """
    bili, alb, i = _lab("bilirubin", bilirubin), _lab("albumin", albumin), _lab("INR", inr)
    notes: list[str] = []
    parts = [
        ("bilirubin", bili, " mg/dL", _points_rising(round(bili, 6), 2.0, 3.0)),
        ("albumin", alb, " g/dL", _points_falling(round(alb, 6), 2.8, 3.5)),
        ("INR", i, "", _points_rising(round(i, 6), 1.7, 2.3)),
    ]
    for name, value, unit, points in parts:
        notes.append(f"{name} {_fmt(value)}{unit}: {points} point{'s' if points > 1 else ''}")
    a_points = _grade("ascites", ascites, _ASCITES_POINTS)
    e_points = _grade("encephalopathy", encephalopathy, _ENCEPHALOPATHY_POINTS)
    notes.append(f"ascites {ascites}: {a_points} point{'s' if a_points > 1 else ''}")
    notes.append(f"encephalopathy {encephalopathy}: {e_points} point{'s' if e_points > 1 else ''}")
    total = sum(p for *_, p in parts) + a_points + e_points
    category = _child_pugh_class(total)
    notes.append(f"{total} points: class {category}")
    return ScoreResult(total, {"bilirubin": bili, "albumin": alb, "inr": i}, tuple(notes), category)


# --- registry for the runtime -----------------------------------------------------------------


@dataclass(frozen=True)
class ScoreSpec:
    """How the runtime computes a score: fetch each input, convert it to its unit, call compute.

    `inputs` pairs each input name the criteria language uses with the unit the value must be
    converted to (None for patient facts and grades). `compute(**values)` takes exactly those
    names; none has a default, so a missing input can never be filled in silently.
    """

    name: str
    title: str
    citation: str
    inputs: tuple[tuple[str, str | None], ...]
    compute: Callable[..., ScoreResult] = field(repr=False)


def _female(sex: str) -> bool:
    """MELD 3.0's sex term: only a recorded female or male sex can be used."""
    if sex == "female":
        return True
    if sex == "male":
        return False
    raise ScoreInputError(f"MELD 3.0 needs sex recorded as female or male, not {sex!r}")


def _compute_meld(
    *, bilirubin_total: float, creatinine: float, inr: float, on_dialysis: bool
) -> ScoreResult:
    return meld(bilirubin_total, creatinine, inr, dialysis=on_dialysis)


def _compute_meld_na(
    *, bilirubin_total: float, creatinine: float, inr: float, sodium: float, on_dialysis: bool
) -> ScoreResult:
    return meld_na(bilirubin_total, creatinine, inr, sodium, dialysis=on_dialysis)


def _compute_meld_3(
    *,
    bilirubin_total: float,
    creatinine: float,
    inr: float,
    sodium: float,
    albumin: float,
    on_dialysis: bool,
    sex: str,
) -> ScoreResult:
    female = _female(sex)
    return meld_3(bilirubin_total, creatinine, inr, sodium, albumin, female=female, dialysis=on_dialysis)


def _compute_child_pugh(
    *,
    bilirubin_total: float,
    albumin: float,
    inr: float,
    ascites_grade: Ascites,
    encephalopathy_grade: Encephalopathy,
) -> ScoreResult:
    return child_pugh(bilirubin_total, albumin, inr, ascites_grade, encephalopathy_grade)


_BILI = ("bilirubin_total", "mg/dL")
_CREA = ("creatinine", "mg/dL")
_INR = ("inr", "1")
_NA = ("sodium", "mmol/L")
_ALB = ("albumin", "g/dL")
_DIALYSIS = ("on_dialysis", None)

SCORES: dict[str, ScoreSpec] = {
    "meld": ScoreSpec(
        "meld",
        "MELD (original UNOS)",
        "Kamath PS et al., Hepatology 2001;33:464-470; Wiesner R et al., Gastroenterology 2003;124:91-96",
        (_BILI, _CREA, _INR, _DIALYSIS),
        _compute_meld,
    ),
    "meld_na": ScoreSpec(
        "meld_na",
        "MELD-Na (OPTN 2016)",
        "Kim WR et al., N Engl J Med 2008;359:1018-1026; OPTN Policy 9.1 (2016)",
        (_BILI, _CREA, _INR, _NA, _DIALYSIS),
        _compute_meld_na,
    ),
    "meld_3": ScoreSpec(
        "meld_3",
        "MELD 3.0",
        "Kim WR et al., Gastroenterology 2021;161:1887-1895.e4",
        (_BILI, _CREA, _INR, _NA, _ALB, _DIALYSIS, ("sex", None)),
        _compute_meld_3,
    ),
    "child_pugh": ScoreSpec(
        "child_pugh",
        "Child-Pugh score",
        "Pugh RN et al., Br J Surg 1973;60:646-649",
        (_BILI, _ALB, _INR, ("ascites_grade", None), ("encephalopathy_grade", None)),
        _compute_child_pugh,
    ),
}
