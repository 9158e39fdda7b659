"""Kleene three-valued logic: True (met), False (not met), None (unknown).

Stage: shared by runtime, compiler and interpreter. Python's own `True`, `False` and `None`
are the values, so generated code stays plain and fast; these connectives are the only place
their combination rules live (cql-execution's `ThreeValuedLogic`).
"""

from __future__ import annotations

from typing import Iterable, Optional

Tri = Optional[bool]


def and3(values: Iterable[Tri]) -> Tri:
    """False if any is False; otherwise None if any is None; otherwise True."""
    result: Tri = True
    for v in values:
        if v is False:
            return False
        if v is None:
            result = None
    return result


def or3(values: Iterable[Tri]) -> Tri:
    """True if any is True; otherwise None if any is None; otherwise False."""
    result: Tri = False
    for v in values:
        if v is True:
            return True
        if v is None:
            result = None
    return result


def not3(value: Tri) -> Tri:
    return None if value is None else not value


def any3(values: Iterable[Tri]) -> Tri:
    """Existence over records: one True decides; an undecidable record leaves it unknown."""
    return or3(values)


def status_word(value: Tri) -> str:
    return "met" if value is True else "not_met" if value is False else "unknown"


def criterion_word(manual: bool, applies: Tri, met: Tri) -> str:
    """A criterion's status from whether its `when` holds and whether its body is met."""
    if manual:
        return "manual"
    if applies is not True:
        return "not_applicable" if applies is False else "unknown"
    return status_word(met)
