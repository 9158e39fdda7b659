"""Checked, resolved criteria: what the compiler and the interpreter evaluate.

Stage: output of `checker.py`. Every name is resolved to its definition, every threshold is
converted to its analyte's canonical unit, and every node carries a unique `nid` (stable within
its trial, like cql-execution's `localId`), its span and its source text, so evaluation never
looks anything up and explanations can point back at the file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple, Union

from .source import Source, Span

Bound = tuple[str, float]  # (comparison operator, threshold in canonical unit)


# Window, AnalyteInfo and CodeSetInfo are cache keys on every leaf evaluation (PatientFacts caches
# lookups by them), and equal definitions from different trials must share entries. As named
# tuples they compare by value and hash in C; a frozen dataclass's `__hash__` is a Python call
# that re-hashes every field, which the bench profile showed on the hot path.


class Window(NamedTuple):
    """A calendar look-back such as 1 year or 30 days, subtracted from the screening date."""

    amount: int
    unit: str  # day | week | month | year

    def __str__(self) -> str:
        return f"{self.amount} {self.unit}{'' if self.amount == 1 else 's'}"


class AnalyteInfo(NamedTuple):
    name: str
    title: str
    kind: str  # quantitative | qualitative
    loinc: tuple[str, ...]
    unit: str | None  # canonical unit; None for qualitative
    molar_mass: float | None = None
    valence: int | None = None


class CodeSetInfo(NamedTuple):
    """A value set: exact codes, hierarchical prefixes (ICD, ATC) and category ranges."""

    name: str
    title: str
    kind: str  # conditions | medications | procedures | trials
    systemic: bool = False
    exact: frozenset[tuple[str, str]] = frozenset()
    prefixes: frozenset[tuple[str, str]] = frozenset()
    ranges: tuple[tuple[str, str, str], ...] = ()


@dataclass(frozen=True, eq=False)
class IRNode:
    nid: int
    span: Span = field(repr=False)
    text: str = field(repr=False)


@dataclass(frozen=True, eq=False)
class And(IRNode):
    children: tuple["IR", ...]


@dataclass(frozen=True, eq=False)
class Or(IRNode):
    children: tuple["IR", ...]


@dataclass(frozen=True, eq=False)
class Not(IRNode):
    child: "IR"


@dataclass(frozen=True, eq=False)
class DefRef(IRNode):
    """A named definition, kept as a node so explanations can say which one decided."""

    name: str
    title: str | None
    child: "IR"


@dataclass(frozen=True, eq=False)
class AgeTest(IRNode):
    bounds: tuple[Bound, ...]
    unit: str  # year | month


@dataclass(frozen=True, eq=False)
class SexTest(IRNode):
    value: str


@dataclass(frozen=True, eq=False)
class LabTest(IRNode):
    analyte: AnalyteInfo
    bounds: tuple[Bound, ...]
    fresh: Window


@dataclass(frozen=True, eq=False)
class UlnTest(IRNode):
    analyte: AnalyteInfo
    op: str
    margin: float
    fresh: Window


@dataclass(frozen=True, eq=False)
class RisingTest(IRNode):
    analyte: AnalyteInfo
    op: str
    rate_per_day: float
    fresh: Window


@dataclass(frozen=True, eq=False)
class QualTest(IRNode):
    analyte: AnalyteInfo
    value: str  # positive | negative | indeterminate
    fresh: Window


@dataclass(frozen=True, eq=False)
class ScoreTest(IRNode):
    score: str
    title: str
    bounds: tuple[Bound, ...]
    fresh: Window
    inputs: tuple[AnalyteInfo, ...]


@dataclass(frozen=True, eq=False)
class RecordTest(IRNode):
    mode: str  # has (current) | had (ever / within)
    codes: CodeSetInfo
    within: Window | None = None
    for_more_than: Window | None = None


@dataclass(frozen=True, eq=False)
class FactTest(IRNode):
    name: str
    title: str
    fresh: Window = Window(30, "day")


IR = Union[And, Or, Not, DefRef, AgeTest, SexTest, LabTest, UlnTest, RisingTest, QualTest, ScoreTest, RecordTest, FactTest]


@dataclass(frozen=True)
class CheckedCriterion:
    key: str
    kind: str  # inclusion | exclusion
    text: str
    span: Span
    body: IR | None
    when: IR | None = None
    manual_reason: str | None = None

    @property
    def is_manual(self) -> bool:
        return self.body is None


@dataclass(frozen=True)
class CheckedTrial:
    trial_id: str
    meta: dict
    criteria: tuple[CheckedCriterion, ...]
    source: Source
    sources: tuple[Source, ...]  # the trial file and every library it imports
    content_hash: str
    analytes: tuple[AnalyteInfo, ...]
    code_sets: tuple[CodeSetInfo, ...]
    facts: tuple[str, ...]
    node_count: int = 0


def walk(node: IR):
    """Every node of a tree, parents before children."""
    yield node
    for child in children(node):
        yield from walk(child)


def children(node: IR) -> tuple[IR, ...]:
    if isinstance(node, (And, Or)):
        return node.children
    if isinstance(node, (Not, DefRef)):
        return (node.child,)
    return ()
