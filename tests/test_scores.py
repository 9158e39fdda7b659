"""Clinical scores: worked examples computed by hand, every bound, and the rounding rules."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.scores import (
    SCORES,
    ScoreInputError,
    ScoreResult,
    _round_half_up,
    child_pugh,
    meld,
    meld_3,
    meld_na,
)

# ln values used in the hand arithmetic below (6 decimals):
# ln 10 = 2.302585, ln 1.2 = 0.182322, ln 2 = 0.693147, ln 1.9 = 0.641854,
# ln 4.2 = 1.435085, ln 1.3 = 0.262364, ln 3.7 = 1.308333, ln 4 = 1.386294, ln 3.79 = 1.332366


# --- rounding ---------------------------------------------------------------------------------


def test_round_half_up_rounds_halves_up_unlike_python_round() -> None:
    assert round(6.5) == 6 and round(12.5) == 12  # banker's rounding: not the published rule
    assert _round_half_up(6.5) == 7
    assert _round_half_up(12.5) == 13
    assert _round_half_up(12.4999) == 12
    assert _round_half_up(1.15, 1) == Decimal("1.2")  # binary 1.15 is 1.1499999..., decimal 1.15
    assert _round_half_up(1.149, 1) == Decimal("1.1")


# --- MELD -------------------------------------------------------------------------------------


def test_meld_all_normal_is_6() -> None:
    # 10 x (0 + 0 + 0 + 0.643) = 6.43 -> 6
    r = meld(1.0, 1.0, 1.0)
    assert r.value == 6
    assert r.inputs == {"bilirubin": 1.0, "creatinine": 1.0, "inr": 1.0}
    assert r.adjustments == ("MELD(i) = 10 x round(0.6430, 1) = 6",)


def test_meld_worked_example_bili_10_cr_1_2_inr_2() -> None:
    # 0.957 x 0.182322 + 0.378 x 2.302585 + 1.120 x 0.693147 + 0.643
    # = 0.174482 + 0.870377 + 0.776325 + 0.643 = 2.464184 -> 2.5 -> 25  (24.64 -> 25)
    assert meld(10.0, 1.2, 2.0).value == 25


def test_meld_medscape_example() -> None:
    # Medscape: Cr 1.9, bili 4.2, INR 1.2 -> 2.039 -> 20.
    # 0.957 x 0.641854 + 0.378 x 1.435085 + 1.120 x 0.182322 + 0.643
    # = 0.614254 + 0.542462 + 0.204201 + 0.643 = 2.003917 -> 2.0 -> 20
    assert meld(4.2, 1.9, 1.2).value == 20


def test_meld_calculator_example() -> None:
    # bili 1.9, INR 1.2, Cr 1.3: 3.78 x 0.641854 + 11.2 x 0.182322 + 9.57 x 0.262364 + 6.43
    # = 2.426 + 2.042 + 2.511 + 6.43 = 13.41 -> 13
    assert meld(1.9, 1.3, 1.2).value == 13


@pytest.mark.parametrize("name", ["bilirubin", "creatinine", "inr"])
def test_meld_floors_each_input_at_1(name: str) -> None:
    values = {"bilirubin": 1.0, "creatinine": 1.0, "inr": 1.0, name: 0.4}
    r = meld(**values)
    assert r.value == 6  # same as all at 1.0
    assert r.inputs[name] == 0.4  # the value as given is kept
    label = "INR" if name == "inr" else name
    unit = "" if name == "inr" else " mg/dL"
    assert f"{label} 0.4{unit} set to 1.0 (floor)" in r.adjustments


def test_meld_floor_note_matches_house_style() -> None:
    assert "creatinine 0.8 mg/dL set to 1.0 (floor)" in meld(1.0, 0.8, 1.0).adjustments


def test_meld_caps_creatinine_at_4() -> None:
    # 10 x (0.957 x ln 4 + 0.643) = 10 x (1.326683 + 0.643) = 19.70 -> 20
    capped = meld(1.0, 7.5, 1.0)
    assert capped.value == meld(1.0, 4.0, 1.0).value == 20
    assert "creatinine 7.5 mg/dL set to 4.0 (cap)" in capped.adjustments


def test_meld_dialysis_sets_creatinine_to_4() -> None:
    r = meld(1.0, 1.1, 1.0, dialysis=True)
    assert r.value == 20
    assert "creatinine set to 4.0: dialysis" in r.adjustments
    assert r.inputs["creatinine"] == 1.1


def test_meld_is_capped_at_40() -> None:
    # bili 40, Cr 4, INR 5: 0.957 x 1.386294 + 0.378 x 3.688879 + 1.120 x 1.609438 + 0.643
    # = 1.326683 + 1.394396 + 1.802571 + 0.643 = 5.166650 -> 5.2 -> 52 -> capped 40
    r = meld(40.0, 4.0, 5.0)
    assert r.value == 40
    assert "score 52 capped at 40 (UNOS/OPTN maximum)" in r.adjustments


@pytest.mark.parametrize(
    "bad", [-0.1, float("nan"), float("inf"), "1.2", None, True],
)
def test_meld_rejects_impossible_inputs(bad: object) -> None:
    with pytest.raises(ScoreInputError):
        meld(bad, 1.0, 1.0)  # type: ignore[arg-type]


def test_meld_dialysis_must_be_a_bool() -> None:
    with pytest.raises(ScoreInputError):
        meld(1.0, 1.0, 1.0, dialysis=None)  # type: ignore[arg-type]


lab = st.floats(min_value=0.1, max_value=80.0, allow_nan=False)
step = st.floats(min_value=0.0, max_value=50.0, allow_nan=False)


@given(lab, lab, lab, step, st.sampled_from(["bilirubin", "creatinine", "inr"]))
def test_meld_is_monotone_in_each_input(bili: float, cr: float, inr: float, delta: float, which: str) -> None:
    base = {"bilirubin": bili, "creatinine": cr, "inr": inr}
    more = dict(base, **{which: base[which] + delta})
    assert meld(**more).value >= meld(**base).value


# --- MELD-Na ----------------------------------------------------------------------------------


def test_meld_na_worked_example() -> None:
    # MELD(i) 25 (above); Na 130: 25 + 1.32 x 7 - 0.033 x 25 x 7 = 25 + 9.24 - 5.775 = 28.465 -> 28
    r = meld_na(10.0, 1.2, 2.0, 130.0)
    assert r.value == 28
    assert "MELD-Na = 28.465, rounded to 28" in r.adjustments


def test_meld_na_normal_sodium_changes_nothing() -> None:
    assert meld_na(10.0, 1.2, 2.0, 137.0).value == 25


def test_meld_na_sodium_bounded_below_at_125() -> None:
    # 25 + 1.32 x 12 - 0.033 x 25 x 12 = 25 + 15.84 - 9.9 = 30.94 -> 31, for Na 125 and below
    low = meld_na(10.0, 1.2, 2.0, 120.0)
    assert low.value == meld_na(10.0, 1.2, 2.0, 125.0).value == 31
    assert "sodium 120 mmol/L bounded to 125" in low.adjustments
    assert low.inputs["sodium"] == 120.0


def test_meld_na_sodium_bounded_above_at_137() -> None:
    high = meld_na(10.0, 1.2, 2.0, 145.0)
    assert high.value == 25
    assert "sodium 145 mmol/L bounded to 137" in high.adjustments


def test_meld_na_not_applied_at_meld_i_11() -> None:
    # bili 3.7: 0.378 x 1.308333 + 0.643 = 1.137550 -> 1.1 -> MELD(i) 11: not above 11
    r = meld_na(3.7, 1.0, 1.0, 125.0)
    assert r.value == 11
    assert "MELD(i) 11 is not above 11: sodium not applied" in r.adjustments


def test_meld_na_applied_at_meld_i_12() -> None:
    # bili 4.0: 0.378 x 1.386294 + 0.643 = 1.167019 -> 1.2 -> MELD(i) 12
    # 12 + 1.32 x 12 - 0.033 x 12 x 12 = 12 + 15.84 - 4.752 = 23.088 -> 23
    assert meld_na(4.0, 1.0, 1.0, 125.0).value == 23


def test_meld_na_rounds_before_multiplying_by_10() -> None:
    # OPTN: "round to the tenth decimal place and multiply by 10".
    # bili 3.79: 0.378 x 1.332366 + 0.643 = 1.146634 -> 1.1 -> MELD(i) 11: sodium not applied.
    # (Multiplying first would give 11.466 -> 11.5 > 11 and add ~11 points.)
    assert meld_na(3.79, 1.0, 1.0, 125.0).value == 11


def test_meld_na_uses_dialysis_creatinine() -> None:
    # Cr 4.0: 0.957 x 1.386294 + 0.643 = 1.969683 -> 2.0 -> 20; Na 137 -> 20
    r = meld_na(1.0, 0.9, 1.0, 137.0, dialysis=True)
    assert r.value == 20
    assert "creatinine set to 4.0: dialysis" in r.adjustments


def test_meld_na_capped_at_40() -> None:
    # MELD(i) 52 (see test_meld_is_capped_at_40): 52 + 0 = 52 -> 40 at Na 137
    assert meld_na(40.0, 4.0, 5.0, 137.0).value == 40


# --- MELD 3.0 ---------------------------------------------------------------------------------


def test_meld_3_all_normal() -> None:
    # every term 0, + 6 -> 6 (male); + 1.33 -> 7.33 -> 7 (female)
    assert meld_3(1.0, 1.0, 1.0, 140.0, 4.0, female=False).value == 6
    assert meld_3(1.0, 1.0, 1.0, 140.0, 4.0, female=True).value == 7


def test_meld_3_worked_example() -> None:
    # bili 10, Cr 1.2, INR 2.0, Na 130, albumin 2.8, female:
    # 1.33 + 4.56 x 2.302585 + 0.82 x 7 - 0.24 x 7 x 2.302585 + 9.09 x 0.693147
    # + 11.14 x 0.182322 + 1.85 x 0.7 - 1.83 x 0.7 x 0.182322 + 6
    # = 1.33 + 10.499788 + 5.74 - 3.868343 + 6.300708 + 2.031062 + 1.295 - 0.233554 + 6
    # = 29.094661 -> 29 (male: 27.764661 -> 28)
    assert meld_3(10.0, 1.2, 2.0, 130.0, 2.8, female=True).value == 29
    assert meld_3(10.0, 1.2, 2.0, 130.0, 2.8, female=False).value == 28


def test_meld_3_creatinine_capped_at_3() -> None:
    r = meld_3(1.0, 3.6, 1.0, 137.0, 3.5, female=False)
    # 11.14 x ln 3 + 6 = 11.14 x 1.098612 + 6 = 18.238 -> 18
    assert r.value == 18
    assert "creatinine 3.6 mg/dL set to 3.0 (cap)" in r.adjustments


def test_meld_3_dialysis_sets_creatinine_to_3() -> None:
    r = meld_3(1.0, 0.7, 1.0, 137.0, 3.5, female=False, dialysis=True)
    assert r.value == 18
    assert "creatinine set to 3.0: dialysis" in r.adjustments


@pytest.mark.parametrize(("name", "index"), [("bilirubin", 0), ("creatinine", 1), ("INR", 2)])
def test_meld_3_floors(name: str, index: int) -> None:
    args = [1.0, 1.0, 1.0, 137.0, 3.5]
    args[index] = 0.5
    r = meld_3(*args, female=False)
    assert r.value == 6
    floors = [n for n in r.adjustments if n.startswith(f"{name} 0.5") and n.endswith("set to 1.0 (floor)")]
    assert len(floors) == 1


def test_meld_3_sodium_bounds() -> None:
    # Na 120 -> 125: 0.82 x 12 + 6 = 15.84 -> 16 (bili 1, so no interaction term)
    assert meld_3(1.0, 1.0, 1.0, 120.0, 3.5, female=False).value == 16
    assert meld_3(1.0, 1.0, 1.0, 125.0, 3.5, female=False).value == 16
    assert meld_3(1.0, 1.0, 1.0, 150.0, 3.5, female=False).value == 6


def test_meld_3_albumin_bounds() -> None:
    # Alb 1.0 -> 1.5: 1.85 x 2.0 + 6 = 9.7 -> 10 (Cr 1, so no interaction term)
    low = meld_3(1.0, 1.0, 1.0, 137.0, 1.0, female=False)
    assert low.value == meld_3(1.0, 1.0, 1.0, 137.0, 1.5, female=False).value == 10
    assert "albumin 1 g/dL bounded to 1.5" in low.adjustments
    assert meld_3(1.0, 1.0, 1.0, 137.0, 4.5, female=False).value == 6


def test_meld_3_interaction_terms() -> None:
    # bili e (ln = 1), Na 127, Cr e^0.5 (ln = 0.5), Alb 2.5, male, INR 1:
    # 4.56 + 0.82 x 10 - 0.24 x 10 x 1 + 11.14 x 0.5 + 1.85 x 1 - 1.83 x 1 x 0.5 + 6
    # = 4.56 + 8.2 - 2.4 + 5.57 + 1.85 - 0.915 + 6 = 22.865 -> 23
    assert meld_3(math.e, math.exp(0.5), 1.0, 127.0, 2.5, female=False).value == 23


def test_meld_3_is_not_capped_at_40() -> None:
    # bili 40, Cr 3, INR 5, Na 125, Alb 1.5, female (ln 40 = 3.688879, ln 5 = 1.609438,
    # ln 3 = 1.098612):
    # 1.33 + 4.56 x 3.688879 + 0.82 x 12 - 0.24 x 12 x 3.688879 + 9.09 x 1.609438
    # + 11.14 x 1.098612 + 1.85 x 2 - 1.83 x 2 x 1.098612 + 6
    # = 1.33 + 16.821288 + 9.84 - 10.623972 + 14.629791 + 12.238538 + 3.7 - 4.020920 + 6
    # = 49.914725 -> 50
    r = meld_3(40.0, 3.0, 5.0, 125.0, 1.5, female=True)
    assert r.value == 50
    assert not any("capped" in note for note in r.adjustments)


# --- Child-Pugh -------------------------------------------------------------------------------


def cp(bilirubin: float = 1.0, albumin: float = 4.0, inr: float = 1.0,
       ascites: str = "none", encephalopathy: str = "none") -> ScoreResult:
    return child_pugh(bilirubin, albumin, inr, ascites, encephalopathy)  # type: ignore[arg-type]


def test_child_pugh_minimum_is_5_class_a() -> None:
    r = cp()
    assert (r.value, r.category) == (5, "A")
    assert "5 points: class A" in r.adjustments


def test_child_pugh_maximum_is_15_class_c() -> None:
    r = cp(5.0, 2.0, 3.0, "moderate_severe", "grade_3_4")
    assert (r.value, r.category) == (15, "C")


@pytest.mark.parametrize(
    ("bilirubin", "points"), [(1.99, 1), (2.0, 2), (2.5, 2), (3.0, 2), (3.01, 3)],
)
def test_child_pugh_bilirubin_boundaries(bilirubin: float, points: int) -> None:
    assert cp(bilirubin=bilirubin).value == 4 + points


@pytest.mark.parametrize(
    ("albumin", "points"), [(3.51, 1), (3.5, 2), (3.0, 2), (2.8, 2), (2.79, 3)],
)
def test_child_pugh_albumin_boundaries(albumin: float, points: int) -> None:
    assert cp(albumin=albumin).value == 4 + points


@pytest.mark.parametrize(
    ("inr", "points"), [(1.69, 1), (1.7, 2), (2.0, 2), (2.3, 2), (2.31, 3)],
)
def test_child_pugh_inr_boundaries(inr: float, points: int) -> None:
    assert cp(inr=inr).value == 4 + points


def test_child_pugh_conversion_noise_does_not_cross_a_cut() -> None:
    assert cp(bilirubin=1.9999999999999998).value == 6  # treated as 2.0
    assert cp(albumin=3.5000000000000004).value == 6  # treated as 3.5


@pytest.mark.parametrize(
    ("ascites", "points"), [("none", 1), ("mild", 2), ("moderate_severe", 3)],
)
def test_child_pugh_ascites(ascites: str, points: int) -> None:
    assert cp(ascites=ascites).value == 4 + points


@pytest.mark.parametrize(
    ("encephalopathy", "points"), [("none", 1), ("grade_1_2", 2), ("grade_3_4", 3)],
)
def test_child_pugh_encephalopathy(encephalopathy: str, points: int) -> None:
    assert cp(encephalopathy=encephalopathy).value == 4 + points


@pytest.mark.parametrize(
    ("kwargs", "total", "klass"),
    [
        ({"bilirubin": 2.0}, 6, "A"),  # 2+1+1+1+1
        ({"bilirubin": 2.0, "ascites": "mild"}, 7, "B"),  # 2+1+1+2+1
        ({"bilirubin": 3.5, "albumin": 3.0, "inr": 1.7}, 9, "B"),  # 3+2+2+1+1
        ({"bilirubin": 3.5, "albumin": 3.0, "inr": 1.7, "ascites": "mild"}, 10, "C"),  # 3+2+2+2+1
    ],
)
def test_child_pugh_class_cuts(kwargs: dict, total: int, klass: str) -> None:
    r = cp(**kwargs)
    assert (r.value, r.category) == (total, klass)


def test_child_pugh_notes_explain_each_component() -> None:
    r = cp(2.0, 2.8, 1.7, "mild", "none")
    assert r.adjustments[:5] == (
        "bilirubin 2 mg/dL: 2 points",
        "albumin 2.8 g/dL: 2 points",
        "INR 1.7: 2 points",
        "ascites mild: 2 points",
        "encephalopathy none: 1 point",
    )
    assert r.inputs == {"bilirubin": 2.0, "albumin": 2.8, "inr": 1.7}


@pytest.mark.parametrize(("field", "value"), [("ascites", "severe"), ("encephalopathy", "grade_2")])
def test_child_pugh_rejects_unknown_grades(field: str, value: str) -> None:
    with pytest.raises(ScoreInputError, match="must be one of"):
        cp(**{field: value})


# --- registry ---------------------------------------------------------------------------------


def test_registry_names_and_inputs() -> None:
    assert set(SCORES) == {"meld", "meld_na", "meld_3", "child_pugh"}
    for name, spec in SCORES.items():
        assert spec.name == name and spec.title and spec.citation
    assert dict(SCORES["meld_3"].inputs) == {
        "bilirubin_total": "mg/dL", "creatinine": "mg/dL", "inr": "1", "sodium": "mmol/L",
        "albumin": "g/dL", "on_dialysis": None, "sex": None,
    }
    assert dict(SCORES["child_pugh"].inputs) == {
        "bilirubin_total": "mg/dL", "albumin": "g/dL", "inr": "1",
        "ascites_grade": None, "encephalopathy_grade": None,
    }


def test_registry_units_are_valid_ucum() -> None:
    from engine.units import is_valid_unit

    for spec in SCORES.values():
        for _, unit in spec.inputs:
            assert unit is None or is_valid_unit(unit)


def test_registry_compute_takes_exactly_the_declared_inputs() -> None:
    values = {
        "bilirubin_total": 10.0, "creatinine": 1.2, "inr": 2.0, "sodium": 130.0, "albumin": 2.8,
        "on_dialysis": False, "sex": "female", "ascites_grade": "mild", "encephalopathy_grade": "none",
    }
    expected = {"meld": 25, "meld_na": 28, "meld_3": 29}
    for name, spec in SCORES.items():
        args = {k: values[k] for k, _ in spec.inputs}
        result = spec.compute(**args)
        assert isinstance(result, ScoreResult)
        if name in expected:
            assert result.value == expected[name]
    # bili 10 -> 3, alb 2.8 -> 2, INR 2.0 -> 2, mild -> 2, none -> 1
    child_pugh_args = {k: values[k] for k, _ in SCORES["child_pugh"].inputs}
    assert SCORES["child_pugh"].compute(**child_pugh_args).category == "C"


@pytest.mark.parametrize("name", ["meld", "meld_na", "meld_3", "child_pugh"])
def test_registry_never_defaults_a_missing_input(name: str) -> None:
    spec = SCORES[name]
    values = {
        "bilirubin_total": 1.0, "creatinine": 1.0, "inr": 1.0, "sodium": 137.0, "albumin": 4.0,
        "on_dialysis": False, "sex": "male", "ascites_grade": "none", "encephalopathy_grade": "none",
    }
    for missing, _ in spec.inputs:
        args = {k: values[k] for k, _ in spec.inputs if k != missing}
        with pytest.raises(TypeError):
            spec.compute(**args)


@pytest.mark.parametrize("sex", ["other", "unknown", None])
def test_meld_3_needs_a_recorded_sex(sex: object) -> None:
    with pytest.raises(ScoreInputError, match="female or male"):
        SCORES["meld_3"].compute(
            bilirubin_total=1.0, creatinine=1.0, inr=1.0, sodium=137.0, albumin=4.0,
            on_dialysis=False, sex=sex,
        )


def test_registry_rejects_a_missing_dialysis_fact() -> None:
    with pytest.raises(ScoreInputError):
        SCORES["meld"].compute(bilirubin_total=1.0, creatinine=1.0, inr=1.0, on_dialysis=None)
