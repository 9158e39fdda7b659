"""Units of measure: recognise, normalise and convert the units lab results arrive in.

Stage: value normalisation, between patient data and criteria evaluation. Input: a unit
string as a lab system sent it (`mg/dL`, `µmol/L`, `mEq/L`, `x10E3/uL`, ...). Output: its UCUM
spelling, its dimension ("mass concentration", "time", ...) and the linear factor that takes a
value from one unit to another. Why: criteria name one canonical unit per analyte, while real
results arrive in SI or conventional units and in non-UCUM spellings. A wrong conversion
silently flips an eligibility decision, so anything this module cannot recognise with certainty
raises `UnitError` instead of being guessed.

Scope. The module understands the subset of UCUM that lab results and durations use: the atoms
in `_ATOMS`, the metric prefixes in `_PREFIXES` on metric atoms, `10*n` factors, integer
exponents (`m2`, `s-1`), `.` and `/` (left-associative, as in UCUM) and `{annotations}`, which
UCUM defines as dimensionless. Anything else (`mm[Hg]`, `Cel`, parentheses) is rejected, not
approximated.

Definitions follow UCUM: `U` (enzyme unit) = umol/min; `kat` = mol/s; `a` = Julian year =
365.25 d; `mo` = a/12; `wk` = 7 d; `[IU]` is an arbitrary unit: it converts only to other
`[IU]` units (never to `U`, and never to mass). `eq` (equivalent) converts to `mol` only given
the ion's charge, and mass to substance only given the analyte's molar mass.

Conversions run on one dedicated pint registry, built lazily with only the definitions above
(pint's default registry reads `a` as the area unit "are" and brings ~1000 other names). It
builds in under 10 ms; pint's full default registry took 135-190 ms to build when measured,
on top of ~150 ms to import pint, which is therefore also deferred to first use.

>>> round(conversion_factor("mg/dL", "umol/L", molar_mass=584.66), 3)
17.104
>>> dimension("x10E9/L")
'number concentration'
"""

from __future__ import annotations

import functools
import math
import re
import threading
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pint

__all__ = ["UnitError", "normalise_unit", "dimension", "conversion_factor", "is_valid_unit"]


class UnitError(ValueError):
    """A unit that cannot be read, or a conversion that cannot be done safely."""


# --- normalisation -------------------------------------------------------------------------

# Non-UCUM spellings that real systems send, mapped to UCUM. Applied after surrounding
# whitespace is stripped and the micro sign / Greek mu are spelled `u` (UCUM's ASCII form).
# `IU/L` becomes `U/L` on purpose: FHIR data (e.g. Synthea) sends it for ALT/AST/ALP, which
# are enzyme activities, and LOINC's example unit for them is `U/L`. An hCG sent as `IU/L`
# therefore reads as an enzyme activity and will refuse to convert to `m[IU]/mL` (a loud
# error, not a wrong number). `IU/mL` and `mIU/mL` are HBV DNA, HBsAg and hCG, so they map to
# the arbitrary unit `[IU]`.
_NORMALISE: dict[str, str] = {
    "mEq/L": "meq/L",
    "IU/L": "U/L",
    "IU/mL": "[IU]/mL",
    "mIU/mL": "m[IU]/mL",
    "10^9/L": "10*9/L",
    "x10^9/L": "10*9/L",
    "10E9/L": "10*9/L",
    "x10E9/L": "10*9/L",
    "10^3/uL": "10*3/uL",
    "x10^3/uL": "10*3/uL",
    "10E3/uL": "10*3/uL",
    "x10E3/uL": "10*3/uL",
    "K/uL": "10*3/uL",
    "sec": "s",
    "secs": "s",
    "seconds": "s",
    "{INR}": "1",
    "INR": "1",
    "ratio": "1",
}

_MICRO_SIGNS = ("\u00b5", "\u03bc")  # MICRO SIGN and GREEK SMALL LETTER MU


def normalise_unit(text: str) -> str:
    """The UCUM spelling of `text`; raise UnitError when it is not a recognisable unit.

    Valid UCUM passes through unchanged (apart from surrounding whitespace). Nothing is
    guessed: only the explicit spellings in `_NORMALISE` and the micro sign are rewritten.
    """
    if not isinstance(text, str):
        raise UnitError(f"a unit must be text, not {type(text).__name__}")
    unit = text.strip()
    if not unit:
        raise UnitError("no unit was given")
    for sign in _MICRO_SIGNS:
        unit = unit.replace(sign, "u")
    unit = _NORMALISE.get(unit, unit)
    _parse(unit)  # raises UnitError for anything unrecognised
    return unit


def is_valid_unit(unit: str) -> bool:
    """True when `unit`, exactly as written, is a UCUM unit this module understands.

    Strict on purpose (rule files should be written in UCUM); `normalise_unit` accepts more.
    """
    if not isinstance(unit, str):
        return False
    try:
        _parse(unit)
    except UnitError:
        return False
    return True


# --- UCUM subset -> pint ----------------------------------------------------------------------

# UCUM atom -> (pint unit name, metric: whether prefixes are allowed).
_ATOMS: dict[str, tuple[str, bool]] = {
    "g": ("gram", True),
    "m": ("meter", True),
    "L": ("liter", True),
    "l": ("liter", True),
    "mol": ("mole", True),
    "eq": ("equivalent", True),
    "U": ("enzyme_unit", True),
    "kat": ("katal", True),
    "[IU]": ("international_unit", True),
    "s": ("second", True),
    "min": ("minute", False),
    "h": ("hour", False),
    "d": ("day", False),
    "wk": ("week", False),
    "mo": ("month", False),
    "a": ("year", False),
    "%": ("percent", False),
}

_PREFIXES: dict[str, float] = {
    "k": 1e3,
    "d": 1e-1,
    "c": 1e-2,
    "m": 1e-3,
    "u": 1e-6,
    "n": 1e-9,
    "p": 1e-12,
    "f": 1e-15,
}

_DEFINITIONS = (
    "gram = [mass]",
    "meter = [length]",
    "second = [time]",
    "mole = [substance]",
    "equivalent = [equivalent]",
    "international_unit = [international_unit]",
    "liter = 1e-3 * meter ** 3",
    "minute = 60 * second",
    "hour = 60 * minute",
    "day = 24 * hour",
    "week = 7 * day",
    "year = 365.25 * day",
    "month = year / 12",
    "enzyme_unit = 1e-6 * mole / minute",
    "katal = mole / second",
    "percent = 0.01",
)

_registry: pint.UnitRegistry | None = None
_registry_lock = threading.Lock()


def _ureg() -> pint.UnitRegistry:
    """The one registry, built on first use: importing this module stays cheap."""
    global _registry
    if _registry is None:
        with _registry_lock:
            if _registry is None:
                import pint  # deferred: importing pint alone costs ~150 ms

                ureg = pint.UnitRegistry(None)
                for definition in _DEFINITIONS:
                    ureg.define(definition)
                _registry = ureg
    return _registry


_COMPONENT = re.compile(
    r"^(?:(?P<ten>10\*(?P<tenexp>[+-]?\d+))"
    r"|(?P<sym>[a-z]?\[[A-Za-z]+\]|%|[A-Za-z]+?)(?P<exp>[+-]?\d+)?)"
    r"(?P<ann>\{[^{}]*\})?$"
)


def _not_a_unit(unit: str) -> UnitError:
    return UnitError(
        f"{unit!r} is not a unit of measure the engine recognises "
        "(expected a UCUM code such as mg/dL, umol/L, 10*9/L or s)"
    )


def _atom(symbol: str, unit: str) -> tuple[float, str]:
    """(prefix factor, pint name) for a UCUM symbol such as `mg` or `m[IU]`."""
    if symbol in _ATOMS:
        return 1.0, _ATOMS[symbol][0]
    prefix, rest = symbol[:1], symbol[1:]
    if prefix in _PREFIXES and rest in _ATOMS and _ATOMS[rest][1]:
        return _PREFIXES[prefix], _ATOMS[rest][0]
    raise _not_a_unit(unit)


def _component(text: str, unit: str) -> pint.Quantity:
    """One UCUM component (`mg`, `10*3`, `m2`, `{INR}`) as a pint quantity."""
    ureg = _ureg()
    if re.fullmatch(r"\{[^{}]*\}", text):
        return ureg.Quantity(1)  # a bare annotation is the unit 1 in UCUM
    m = _COMPONENT.match(text)
    if not m:
        raise _not_a_unit(unit)
    if m["ten"]:
        return ureg.Quantity(10.0 ** int(m["tenexp"]))
    factor, name = _atom(m["sym"], unit)
    exponent = int(m["exp"]) if m["exp"] else 1
    return (factor * ureg.Quantity(1, name)) ** exponent


# `.` or `/` outside an annotation: `mL/min/{1.73_m2}` has one dot inside braces.
_SEPARATOR = re.compile(r"([./])(?![^{]*\})")


@functools.lru_cache(maxsize=1024)
def _parse(unit: str) -> pint.Quantity:
    """A UCUM string in the supported subset as a pint quantity (scale times unit)."""
    if not isinstance(unit, str) or not unit or unit != unit.strip():
        raise _not_a_unit(unit)
    if unit == "1":
        return _ureg().Quantity(1)
    parts = _SEPARATOR.split(unit)
    if parts[0] == "":  # leading "/": `/uL` means 1/uL
        if len(parts) < 3 or parts[1] != "/":
            raise _not_a_unit(unit)
        parts[0] = "1"
    result = _ureg().Quantity(1) if parts[0] == "1" else _component(parts[0], unit)
    for op, text in zip(parts[1::2], parts[2::2]):
        if not text:
            raise _not_a_unit(unit)
        q = _ureg().Quantity(1) if text == "1" else _component(text, unit)
        result = result * q if op == "." else result / q
    return result


# --- dimensions -------------------------------------------------------------------------------


def _dims(**exponents: int) -> frozenset[tuple[str, int]]:
    return frozenset((f"[{k}]", v) for k, v in exponents.items())


_DIMENSION_NAMES: dict[frozenset[tuple[str, int]], str] = {
    _dims(): "dimensionless",
    _dims(mass=1, length=-3): "mass concentration",
    _dims(substance=1, length=-3): "substance concentration",
    _dims(equivalent=1, length=-3): "substance concentration",
    _dims(substance=1, time=-1, length=-3): "catalytic concentration",
    _dims(length=-3): "number concentration",
    _dims(international_unit=1, length=-3): "arbitrary concentration",
    _dims(time=1): "time",
    _dims(mass=1): "mass",
    _dims(length=3): "volume",
    _dims(length=1): "length",
    _dims(substance=1): "amount of substance",
    _dims(substance=1, time=-1): "catalytic activity",
    _dims(length=3, time=-1): "volume flow rate",
    _dims(mass=1, length=-2): "mass per area",
}


def _dimension_of(q: pint.Quantity) -> str:
    key = frozenset(dict(q.dimensionality).items())
    if key in _DIMENSION_NAMES:
        return _DIMENSION_NAMES[key]
    return str(q.dimensionality)  # unnamed but well defined, e.g. "[length] / [time]"


def dimension(unit: str) -> str:
    """A readable name for the kind of quantity `unit` measures, e.g. "mass concentration".

    Used to reject comparisons such as bilirubin against seconds. `eq`-based units count as
    substance concentration (they are, given the ion's charge). `[IU]/L` is an arbitrary
    concentration like `m[IU]/mL` (it is the same quantity: hCG), not a catalytic one; the
    Synthea spelling `IU/L` is normalised to `U/L` first and so is catalytic. Raises UnitError
    when the unit is not recognised.
    """
    return _dimension_of(_parse(normalise_unit(unit)))


# --- conversion -------------------------------------------------------------------------------


def _check_molar_mass(molar_mass: float | None) -> None:
    if molar_mass is None:
        return
    is_number = isinstance(molar_mass, (int, float)) and not isinstance(molar_mass, bool)
    if not is_number or not 0 < molar_mass < math.inf:
        raise UnitError(f"molar mass must be a positive number of g/mol, not {molar_mass!r}")


def _check_valence(valence: int | None) -> None:
    if valence is not None and (isinstance(valence, bool) or not isinstance(valence, int) or valence <= 0):
        raise UnitError(f"valence must be the ion's charge as a positive whole number, not {valence!r}")


def _bridges(ratio: pint.Quantity) -> tuple[int, int]:
    """Exponents of [mass] and [equivalent] to trade for [substance], or (0, 0) if that cannot help.

    The trade helps only when it leaves `ratio` dimensionless, e.g. (mg/dL)/(umol/L) is
    [mass]/[substance]: one molar-mass bridge.
    """
    dims = dict(ratio.dimensionality)
    k_mass, k_eq = dims.get("[mass]", 0), dims.get("[equivalent]", 0)
    rest = {d: v for d, v in dims.items() if d not in ("[mass]", "[equivalent]", "[substance]") and v}
    if rest or dims.get("[substance]", 0) != -(k_mass + k_eq):
        return 0, 0
    return k_mass, k_eq


@functools.lru_cache(maxsize=4096)
def conversion_factor(
    from_unit: str, to_unit: str, *, molar_mass: float | None = None, valence: int | None = None
) -> float:
    """The multiplier taking a value in `from_unit` to `to_unit` (all supported conversions are linear).

    Both units pass through `normalise_unit`. Mass <-> substance needs `molar_mass` (g/mol);
    `eq` <-> `mol` needs `valence` (1 for sodium). Cached: a repeated call is a dict lookup.
    Raises UnitError, naming both dimensions, when the conversion is not possible.
    """
    _check_molar_mass(molar_mass)
    _check_valence(valence)
    src, dst = normalise_unit(from_unit), normalise_unit(to_unit)
    q_src, q_dst = _parse(src), _parse(dst)
    ureg = _ureg()
    ratio = q_src / q_dst
    k_mass, k_eq = _bridges(ratio)
    if k_mass and molar_mass is None:
        raise UnitError(f"{src} cannot be converted to {dst} without the analyte's molar mass")
    if k_eq and valence is None:
        raise UnitError(
            f"{src} cannot be converted to {dst} without the ion's charge (valence; 1 for sodium)"
        )
    if k_mass:
        ratio = ratio * ureg.Quantity(1.0 / molar_mass, "mole / gram") ** k_mass
    if k_eq:
        ratio = ratio * ureg.Quantity(1.0 / valence, "mole / equivalent") ** k_eq
    if not ratio.dimensionless:
        raise UnitError(
            f"{src} ({_dimension_of(q_src)}) cannot be converted to {dst} ({_dimension_of(q_dst)})"
        )
    return float(ratio.to_base_units().magnitude)
