"""Unit normalisation and conversion: every spelling we rewrite, every factor criteria rely on."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.units import UnitError, conversion_factor, dimension, is_valid_unit, normalise_unit

BILIRUBIN_G_PER_MOL = 584.66  # reference loinc-ucum.md section 2
CREATININE_G_PER_MOL = 113.12


@pytest.mark.parametrize(
    ("sent", "ucum"),
    [
        ("\u03bcmol/L", "umol/L"),  # Greek small letter mu
        ("\u00b5mol/L", "umol/L"),  # micro sign
        ("mEq/L", "meq/L"),
        ("IU/L", "U/L"),  # enzyme activities (ALT/AST/ALP), see module docstring
        ("IU/mL", "[IU]/mL"),
        ("mIU/mL", "m[IU]/mL"),
        ("10^9/L", "10*9/L"),
        ("x10^9/L", "10*9/L"),
        ("x10E9/L", "10*9/L"),
        ("10E9/L", "10*9/L"),
        ("x10E3/uL", "10*3/uL"),
        ("x10^3/uL", "10*3/uL"),
        ("10E3/uL", "10*3/uL"),
        ("10^3/uL", "10*3/uL"),
        ("K/uL", "10*3/uL"),
        ("x10E3/\u00b5L", "10*3/uL"),
        ("sec", "s"),
        ("secs", "s"),
        ("seconds", "s"),
        ("{INR}", "1"),
        ("INR", "1"),
        ("ratio", "1"),
        ("  mg/dL\t", "mg/dL"),
        (" \u03bcmol/L ", "umol/L"),
    ],
)
def test_normalise_rewrites_known_spellings(sent: str, ucum: str) -> None:
    assert normalise_unit(sent) == ucum


@pytest.mark.parametrize(
    "ucum",
    ["mg/dL", "g/dL", "g/L", "mmol/L", "umol/L", "meq/L", "U/L", "[IU]/L", "[IU]/mL", "m[IU]/mL",
     "10*3/uL", "10*9/L", "/uL", "%", "s", "min", "h", "d", "wk", "mo", "a", "1", "{score}",
     "mL/min/{1.73_m2}", "mg/dl", "ng/mL", "ukat/L", "kg/m2"],
)
def test_valid_ucum_passes_through_unchanged(ucum: str) -> None:
    assert is_valid_unit(ucum)
    assert normalise_unit(ucum) == ucum


@pytest.mark.parametrize(
    "garbage",
    ["furlongs", "", "   ", "MG/DL", "mEq", "10^6/L", "mm[Hg]", "Cel", "mg//dL", "mg/", "(mg)/dL",
     "M[IU]/mL", "mmin/L", "ug\u00b7L"],
)
def test_unrecognised_units_raise_rather_than_guess(garbage: str) -> None:
    with pytest.raises(UnitError):
        normalise_unit(garbage)
    assert not is_valid_unit(garbage)


def test_is_valid_unit_is_strict_about_non_ucum_spellings() -> None:
    # Accepted by normalise_unit, but not UCUM as written.
    for spelling in ("mEq/L", "IU/L", "\u03bcmol/L", "10^9/L", "sec"):
        assert not is_valid_unit(spelling)
    assert not is_valid_unit(None)  # type: ignore[arg-type]


def test_error_message_names_the_unit_in_plain_words() -> None:
    with pytest.raises(UnitError, match="'furlongs' is not a unit of measure"):
        normalise_unit("furlongs")


@pytest.mark.parametrize(
    ("unit", "name"),
    [
        ("mg/dL", "mass concentration"),
        ("g/L", "mass concentration"),
        ("g/dL", "mass concentration"),
        ("umol/L", "substance concentration"),
        ("mmol/L", "substance concentration"),
        ("meq/L", "substance concentration"),
        ("mEq/L", "substance concentration"),
        ("U/L", "catalytic concentration"),
        ("IU/L", "catalytic concentration"),  # normalised to U/L
        ("ukat/L", "catalytic concentration"),
        ("10*9/L", "number concentration"),
        ("10*3/uL", "number concentration"),
        ("/uL", "number concentration"),
        ("s", "time"),
        ("min", "time"),
        ("h", "time"),
        ("d", "time"),
        ("wk", "time"),
        ("mo", "time"),
        ("a", "time"),
        ("1", "dimensionless"),
        ("%", "dimensionless"),
        ("{INR}", "dimensionless"),
        ("{score}", "dimensionless"),
        ("[IU]/mL", "arbitrary concentration"),
        ("m[IU]/mL", "arbitrary concentration"),
        # [IU] is an arbitrary unit in UCUM, so IU/L (hCG) is an arbitrary concentration too:
        # it must convert to m[IU]/mL, and it cannot convert to the enzyme unit U/L.
        ("[IU]/L", "arbitrary concentration"),
        ("mL/min/{1.73_m2}", "volume flow rate"),
    ],
)
def test_dimension_table(unit: str, name: str) -> None:
    assert dimension(unit) == name


def test_dimension_rejects_unknown_units() -> None:
    with pytest.raises(UnitError):
        dimension("furlongs")


@pytest.mark.parametrize(
    ("src", "dst", "kwargs", "factor"),
    [
        # 1 mg/dL = 10 mg/L = 10/584.66 mmol/L = 17.104 umol/L (reference: x17.1, ucum-lhc 17.104)
        ("mg/dL", "umol/L", {"molar_mass": BILIRUBIN_G_PER_MOL}, 10_000 / BILIRUBIN_G_PER_MOL),
        # 10/113.12 mmol/L = 88.402 umol/L (reference: x88.4, ucum-lhc 88.402)
        ("mg/dL", "umol/L", {"molar_mass": CREATININE_G_PER_MOL}, 10_000 / CREATININE_G_PER_MOL),
        ("umol/L", "mg/dL", {"molar_mass": BILIRUBIN_G_PER_MOL}, BILIRUBIN_G_PER_MOL / 10_000),
        ("g/dL", "g/L", {}, 10.0),
        ("meq/L", "mmol/L", {"valence": 1}, 1.0),
        ("mEq/L", "mmol/L", {"valence": 1}, 1.0),
        ("meq/L", "mmol/L", {"valence": 2}, 0.5),  # 1 meq of Ca2+ is 0.5 mmol
        ("10*3/uL", "10*9/L", {}, 1.0),
        ("K/uL", "10*9/L", {}, 1.0),
        ("/uL", "10*9/L", {}, 1e-3),
        ("m[IU]/mL", "[IU]/L", {}, 1.0),
        ("mIU/mL", "[IU]/L", {}, 1.0),
        ("wk", "d", {}, 7.0),
        ("a", "mo", {}, 12.0),
        ("a", "d", {}, 365.25),
        ("h", "min", {}, 60.0),
        ("%", "1", {}, 0.01),
        ("1", "%", {}, 100.0),
        ("{INR}", "1", {}, 1.0),
        ("U/L", "ukat/L", {}, 1 / 60),  # 1 U = 1 umol/min = 16.67 nkat
        ("IU/L", "U/L", {}, 1.0),
        ("\u00b5mol/L", "mmol/L", {}, 1e-3),
        ("mg/dL", "mg/dL", {}, 1.0),
    ],
)
def test_conversion_factors(src: str, dst: str, kwargs: dict, factor: float) -> None:
    assert conversion_factor(src, dst, **kwargs) == pytest.approx(factor, rel=1e-12)


def test_reference_rounded_factors() -> None:
    assert conversion_factor("mg/dL", "umol/L", molar_mass=584.66) == pytest.approx(17.104, abs=5e-4)
    assert conversion_factor("mg/dL", "umol/L", molar_mass=113.12) == pytest.approx(88.40, abs=5e-3)


def test_mass_to_substance_needs_molar_mass() -> None:
    with pytest.raises(UnitError) as err:
        conversion_factor("mg/dL", "umol/L")
    assert str(err.value) == "mg/dL cannot be converted to umol/L without the analyte's molar mass"


def test_equivalents_need_valence() -> None:
    with pytest.raises(UnitError, match="charge"):
        conversion_factor("mEq/L", "mmol/L")


def test_incompatible_dimensions_name_both() -> None:
    with pytest.raises(UnitError) as err:
        conversion_factor("mg/dL", "s")
    assert "mass concentration" in str(err.value) and "time" in str(err.value)


@pytest.mark.parametrize(
    ("src", "dst"),
    [("[IU]/L", "U/L"), ("IU/L", "m[IU]/mL"), ("10*9/L", "mmol/L"), ("%", "mg/dL"), ("U/L", "umol/L")],
)
def test_other_incompatible_pairs(src: str, dst: str) -> None:
    with pytest.raises(UnitError, match="cannot be converted"):
        conversion_factor(src, dst, molar_mass=100.0)


def test_garbage_units_cannot_be_converted() -> None:
    with pytest.raises(UnitError, match="furlongs"):
        conversion_factor("furlongs", "s")


@pytest.mark.parametrize(("kwargs"), [{"molar_mass": 0}, {"molar_mass": -5.0}, {"molar_mass": float("nan")},
                                      {"valence": 0}, {"valence": 1.0}, {"valence": True}])
def test_bad_bridge_parameters_are_rejected(kwargs: dict) -> None:
    with pytest.raises(UnitError):
        conversion_factor("mg/dL", "umol/L", **kwargs)


def test_conversion_factor_is_cached() -> None:
    conversion_factor.cache_clear()
    conversion_factor("g/dL", "g/L")
    before = conversion_factor.cache_info().hits
    conversion_factor("g/dL", "g/L")
    assert conversion_factor.cache_info().hits == before + 1


# --- round trips ------------------------------------------------------------------------------

COMPATIBLE_GROUPS: list[tuple[list[str], dict]] = [
    (["mg/dL", "g/L", "g/dL", "ng/mL", "ug/L", "mg/L"], {}),
    (["umol/L", "mmol/L", "mol/L", "nmol/L"], {}),
    (["U/L", "ukat/L", "nkat/L", "IU/L"], {}),
    (["10*9/L", "10*3/uL", "/uL", "K/uL", "10*6/L"], {}),
    (["s", "min", "h", "d", "wk", "mo", "a", "sec"], {}),
    (["1", "%", "{INR}"], {}),
    (["[IU]/mL", "m[IU]/mL", "[IU]/L", "mIU/mL"], {}),
    # Bridged groups: mass <-> substance with a molar mass, eq <-> mol with a charge.
    (["mg/dL", "umol/L", "g/L", "mmol/L"], {"molar_mass": BILIRUBIN_G_PER_MOL}),
    (["meq/L", "mmol/L", "mEq/L", "umol/L"], {"valence": 2}),
]


@st.composite
def compatible_pair(draw: st.DrawFn) -> tuple[str, str, dict]:
    units, kwargs = draw(st.sampled_from(COMPATIBLE_GROUPS))
    return draw(st.sampled_from(units)), draw(st.sampled_from(units)), kwargs


@given(compatible_pair(), st.floats(min_value=1e-6, max_value=1e6))
def test_round_trip_returns_the_value(pair: tuple[str, str, dict], value: float) -> None:
    src, dst, kwargs = pair
    there = value * conversion_factor(src, dst, **kwargs)
    back = there * conversion_factor(dst, src, **kwargs)
    assert back == pytest.approx(value, rel=1e-9)
