"""Syntax tree of the criteria language: one dataclass per grammar rule, each with a span.

Stage: output of `parser.py`, input of `checker.py` and `format.py`. Nodes mirror the text
(`Between` stays `Between`) so that the formatter can print a file back faithfully; meaning
(units, kinds, windows) is attached later by the checker in `ir.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from .source import Span


@dataclass(frozen=True)
class Node:
    span: Span = field(compare=False, repr=False, kw_only=True)


# ---- leaves shared by several constructs ---------------------------------------------------

@dataclass(frozen=True)
class Quantity(Node):
    value: float
    text: str  # the number as written, kept for formatting and explanations
    unit: str | None


@dataclass(frozen=True)
class Duration(Node):
    amount: float
    text: str
    unit: str  # day(s), week(s), month(s), year(s)

    @property
    def canonical_unit(self) -> str:
        return self.unit.rstrip("s")


# ---- expressions ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Age(Node):
    pass


@dataclass(frozen=True)
class ValueRef(Node):
    name: str


Operand = Union[Age, ValueRef]


@dataclass(frozen=True)
class Or(Node):
    items: tuple["Expr", ...]


@dataclass(frozen=True)
class And(Node):
    items: tuple["Expr", ...]


@dataclass(frozen=True)
class Not(Node):
    item: "Expr"


@dataclass(frozen=True)
class Ref(Node):
    """A bare name: a `define`d condition or a declared `fact`."""

    name: str


@dataclass(frozen=True)
class Compare(Node):
    operand: Operand
    op: str
    quantity: Quantity


@dataclass(frozen=True)
class RangeCompare(Node):
    """`low op1 operand op2 high`, as in `20 % < pta <= 40 %`."""

    low: Quantity
    op1: str
    operand: Operand
    op2: str
    high: Quantity


@dataclass(frozen=True)
class Between(Node):
    """`operand between low and high`, inclusive at both ends."""

    operand: Operand
    low: Quantity
    high: Quantity


@dataclass(frozen=True)
class AboveUln(Node):
    """`pt > uln + 3 s`: the result compared with its own reference range's upper limit."""

    operand: Operand
    op: str
    margin: Quantity


@dataclass(frozen=True)
class Rising(Node):
    """`bilirubin_total rising >= 17.1 umol/L per day`: rate between the two latest values."""

    name: str
    op: str
    quantity: Quantity
    per: str


@dataclass(frozen=True)
class IsValue(Node):
    """`hbsag is positive`, `sex is female`."""

    name: str
    value: str
    value_span: Span = field(compare=False, repr=False)


@dataclass(frozen=True)
class Has(Node):
    """`has cirrhosis [for more than 5 years]`: a current record."""

    name: str
    for_more_than: Duration | None = None


@dataclass(frozen=True)
class Had(Node):
    """`had interferon [within 1 year]`: any record, ever or within the window."""

    name: str
    within: Duration | None = None


Expr = Union[Or, And, Not, Ref, Compare, RangeCompare, Between, AboveUln, Rising, IsValue, Has, Had]


# ---- file items ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Import(Node):
    path: str


@dataclass(frozen=True)
class MetaField(Node):
    name: str
    value: object  # str, float or list of them


@dataclass(frozen=True)
class TrialMeta(Node):
    trial_id: str
    fields: tuple[MetaField, ...]


@dataclass(frozen=True)
class DefaultFreshness(Node):
    duration: Duration


@dataclass(frozen=True)
class Define(Node):
    name: str
    title: str | None
    expr: Expr


@dataclass(frozen=True)
class Analyte(Node):
    name: str
    title: str
    kind: str  # quantitative | qualitative
    loinc: tuple[str, ...]
    unit: str | None
    molar_mass: float | None
    valence: int | None
    code_spans: tuple[Span, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True)
class CodeMember(Node):
    system: str
    codes: tuple[str, ...]
    is_range: bool = False  # codes == (first, last) when True


@dataclass(frozen=True)
class CodeSet(Node):
    kind: str  # conditions | medications | procedures
    name: str
    title: str
    systemic: bool
    members: tuple[CodeMember, ...]


@dataclass(frozen=True)
class FactDecl(Node):
    name: str
    title: str


@dataclass(frozen=True)
class Criterion(Node):
    kind: str  # inclusion | exclusion
    key: str
    text: str
    when: Expr | None
    freshness: Duration | None
    body: Expr | None  # None for a manual criterion
    manual_reason: str | None = None
    is_manual: bool = False
    key_span: Span | None = field(default=None, compare=False, repr=False)


Item = Union[Import, TrialMeta, DefaultFreshness, Define, Analyte, CodeSet, FactDecl, Criterion]


@dataclass(frozen=True)
class Module(Node):
    items: tuple[Item, ...]

    def of_type(self, cls) -> list:
        return [i for i in self.items if isinstance(i, cls)]
