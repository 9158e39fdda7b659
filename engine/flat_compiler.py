"""Flat compiler: a second back end emitting leaf tests inline, for bulk screening of flat rows.

Stage: compiler, beside `compiler.py`, over the same checked IR. `compiler.py` emits one call to
a generic leaf evaluator per test (`L_LabTest(f, N9, tr)`), which is what lets one evaluator
serve FHIR records, explanations and traces; on flat rows (`engine/flat.py`: one mapping per
patient, values already in canonical units) that generality costs ~10 Python calls per leaf,
where hand-written code does one lookup and one comparison. This back end writes each leaf as
that lookup and comparison, for a fixed screening date:

- constants are literals (`repr` of a number or a string, always an inert literal; anything
  else is bound by name), and no criteria text reaches the source;
- subtrees of undated code-set tests, which are never unknown, become one plain `and`/`or`;
- the verdict tests cheap criteria first (Kleene `and` commutes, so the result is the same);
- when the caller knows the row's columns (one table, one batch), they are read as `p[key]`,
  no per-row check is emitted for other keys, and a score one of whose inputs is not a column
  is unknown at once.

Anything the inline form does not cover (a dated value `<name>__days`, a score computed from
its inputs, an upper limit of normal, a birth date, a duration) falls back to the engine's own
leaf evaluator on `FlatFacts`, so results are identical to `CompiledTrial.statuses`; the tests
check that on generated rows, and bench/peers.py on 100,000 patients.

>>> from engine import compile_text
>>> trial = compile_text('trial NCT00000001 { }  inclusion I1 "Adults": age >= 18 years')
>>> program = compile_flat(trial, date(2026, 11, 1))
>>> program.statuses({"age": 40}), program.verdict({"age": 12})
(['met'], 'ineligible')
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Callable

from . import ir, runtime
from .compiler import CompiledTrial, _Emitter
from .facts import subtract
from .flat import FlatFacts

_TEST = {">=": ">=", ">": ">", "<=": "<=", "<": "<", "=": "=="}


class _FlatEmitter(_Emitter):
    """Kleene connectives from the engine's emitter, without trace bookkeeping; inline leaves."""

    def __init__(self, as_of: date, columns: frozenset | None):
        super().__init__(traced=False)
        self.as_of = as_of
        self.columns = columns  # the keys rows may have; None: any

    def _may_have(self, key: str) -> bool:
        return self.columns is None or key in self.columns

    def _get(self, node, key: str) -> str:
        """`p[key]` for a column every row has (None when missing), else `g(key)`."""
        if self.columns is not None and key in self.columns:
            return f"p[{self._const(node, key)}]"
        return f"g({self._const(node, key)})"

    # ---- leaves -----------------------------------------------------------------------------

    def _const(self, node, value) -> str:
        """A literal: `repr` of a number or a string is always a plain, inert Python literal."""
        if isinstance(value, (str, int, float)) and not isinstance(value, bool) and repr(value) == repr(value).strip():
            return repr(value)
        name = f"C{node.nid}_{len(self.nodes)}"
        self.nodes[name] = value
        return name

    # ---- two-valued subtrees: plain Python `and`/`or`/`not`, one expression -------------------

    def _flag_expr(self, node) -> str | None:
        """An expression for a subtree of undated code-set tests only (never unknown), else None."""
        if isinstance(node, ir.RecordTest):
            name = node.codes.name
            if node.for_more_than is None and not self._may_have(name + "__days"):
                return f"bool({self._get(node, name)})"
            return None
        if isinstance(node, (ir.And, ir.Or)):
            parts = [self._flag_expr(c) for c in node.children]
            if any(p is None for p in parts):
                return None
            return "(" + (" and " if isinstance(node, ir.And) else " or ").join(parts) + ")"
        if isinstance(node, ir.Not):
            inner = self._flag_expr(node.child)
            return None if inner is None else f"(not {inner})"
        if isinstance(node, ir.DefRef):
            return self._flag_expr(node.child)
        return None

    def emit(self, node, depth: int) -> str:
        expr = self._flag_expr(node)
        if expr is None:
            return super().emit(node, depth)
        var = self._variable(node)
        self.line(depth, f"{var} = {expr}")
        return var

    def _bounds(self, node, x: str, bounds) -> str:
        return " and ".join(f"{x} {_TEST[op]} {self._const(node, t)}" for op, t in bounds)

    def _fallback(self, node, var: str, depth: int) -> None:
        self.line(depth, f"{var} = L_{type(node).__name__}(FF(p, AS_OF), N{node.nid}, None)")

    def _guarded(self, node, var, depth, keys: list[str], inline: str, x: str, key: str) -> None:
        """`x = p[key]`; fall back when any of `keys` is given, else `var = inline`."""
        self.line(depth, f"{x} = {self._get(node, key)}")
        keys = [k for k in keys if self._may_have(k)]
        if keys:
            cond = " or ".join(f"{self._get(node, k)}" for k in keys)
            self.line(depth, f"if {cond}:")
            self._fallback(node, var, depth + 1)
            self.line(depth, "else:")
            depth += 1
        self.line(depth, f"{var} = {inline}")

    def emit_AgeTest(self, node: ir.AgeTest, var: str, depth: int) -> None:
        if node.unit != "year":
            return self._fallback(node, var, depth)
        x = f"a{node.nid}"
        self._guarded(node, var, depth, ["birth_date"], f"None if {x} is None else ({self._bounds(node, x, node.bounds)})",
                      x, "age")

    def emit_SexTest(self, node: ir.SexTest, var: str, depth: int) -> None:
        x = f"s{node.nid}"
        self.line(depth, f"{x} = {self._get(node, 'sex')}")
        self.line(depth, f"{var} = None if {x} is None or {x} == 'unknown' else {x} == {self._const(node, node.value)}")

    def emit_LabTest(self, node: ir.LabTest, var: str, depth: int) -> None:
        x, a = f"x{node.nid}", node.analyte.name
        self._guarded(node, var, depth, [a + "__days"], f"None if {x} is None else ({self._bounds(node, x, node.bounds)})",
                      x, a)

    def emit_QualTest(self, node: ir.QualTest, var: str, depth: int) -> None:
        x, a = f"q{node.nid}", node.analyte.name
        want = self._const(node, node.value)
        self._guarded(node, var, depth, [a + "__days"],
                      f"None if {x} is None else True if {x} == {want} else None if {x} == 'indeterminate' else False",
                      x, a)

    def emit_RisingTest(self, node: ir.RisingTest, var: str, depth: int) -> None:
        a = node.analyte.name
        window = (self.as_of - subtract(self.as_of, node.fresh)).days
        x, prev, days = f"x{node.nid}", f"r{node.nid}", f"d{node.nid}"
        self.line(depth, f"{x} = {self._get(node, a)}")
        self.line(depth, f"{prev} = {self._get(node, a + '__prev')}")
        self.line(depth, f"if {x} is None or {prev} is None:")
        self.line(depth + 1, f"{var} = None")
        self.line(depth, "else:")
        self.line(depth + 1, f"{days} = {self._get(node, a + '__prev_days')} or 0")
        rate = self._const(node, node.rate_per_day)
        self.line(depth + 1, f"{var} = (({x} - {prev}) / {days} {_TEST[node.op]} {rate}) if 0 < {days} <= {window} "
                             "else None")
        if self._may_have(a + "__days"):  # a dated latest value: the engine's own evaluator decides
            self.line(depth, f"if {self._get(node, a + '__days')}:")
            self._fallback(node, var, depth + 1)

    def emit_ScoreTest(self, node: ir.ScoreTest, var: str, depth: int) -> None:
        x = f"m{node.nid}"
        self.line(depth, f"{x} = {self._get(node, node.score)}")
        dated = f" or {self._get(node, node.score + '__days')}" if self._may_have(node.score + "__days") else ""
        self.line(depth, f"if {x} is None{dated}:")
        # Not recorded: computed from its lab inputs, unknown when one is missing (no need to ask).
        inputs = [a.name for a in node.inputs]
        if any(not self._may_have(k) for k in inputs):
            self.line(depth + 1, f"{var} = None")
        else:
            self.line(depth + 1, "if " + " or ".join(f"{self._get(node, k)} is None" for k in inputs) + ":")
            self.line(depth + 2, f"{var} = None")
            self.line(depth + 1, "else:")
            self._fallback(node, var, depth + 2)
        self.line(depth, "else:")
        self.line(depth + 1, f"{var} = {self._bounds(node, x, node.bounds)}")

    def emit_RecordTest(self, node: ir.RecordTest, var: str, depth: int) -> None:
        if node.for_more_than is not None:
            return self._fallback(node, var, depth)
        name = node.codes.name
        self.line(depth, f"if not {self._get(node, name)}:")
        self.line(depth + 1, f"{var} = False")
        if self._may_have(name + "__days"):
            self.line(depth, f"elif {self._get(node, name + '__days')} is not None:")
            self._fallback(node, var, depth + 1)
        self.line(depth, "else:")
        self.line(depth + 1, f"{var} = True")  # an ongoing, undated record: current, and within any window

    def emit_FactTest(self, node: ir.FactTest, var: str, depth: int) -> None:
        x = f"t{node.nid}"
        self._guarded(node, var, depth, [node.name + "__days"], f"None if {x} is None else bool({x})", x, node.name)

    def emit_UlnTest(self, node, var, depth):
        self._fallback(node, var, depth)


_COST = {ir.RecordTest: 1, ir.SexTest: 1, ir.FactTest: 1, ir.AgeTest: 2, ir.QualTest: 2, ir.LabTest: 2,
         ir.ScoreTest: 3, ir.RisingTest: 4, ir.UlnTest: 20}


def _cost(c) -> int:
    return sum(_COST.get(type(n), 0) for root in (c.when, c.body) if root is not None for n in ir.walk(root))


def generate(trial: CompiledTrial, as_of: date, columns: frozenset | None = None) -> tuple[str, dict]:
    """The source of `verdict(p)` and `statuses(p)`, and the constants it refers to by name."""
    em = _FlatEmitter(as_of, columns)
    criteria = trial.checked.criteria
    em.line(0, "def verdict(p):")
    em.line(1, "g = p.get")
    em.line(1, "unknown = False")
    # The verdict does not depend on the order (Kleene `and` commutes), so cheap criteria go first.
    for c in sorted(criteria, key=_cost):
        if c.is_manual:
            continue
        deciding = "False" if c.kind == "inclusion" else "True"
        depth = 1
        if c.when is not None:
            w = em.emit(c.when, 1)
            em.line(1, f"if {w} is None:")
            em.line(2, "unknown = True")
            em.line(1, f"elif {w}:")
            depth = 2
        b = em.emit(c.body, depth)
        em.line(depth, f"if {b} is {deciding}:")
        em.line(depth + 1, "return 'ineligible'")
        em.line(depth, f"if {b} is None:")
        em.line(depth + 1, "unknown = True")
    em.line(1, "return 'possibly_eligible' if unknown else 'eligible'")
    em.line(0, "")
    em.line(0, "def statuses(p):")
    em.line(1, "g = p.get")
    em.line(1, "out = []")
    for c in criteria:
        if c.is_manual:
            em.line(1, "out.append('manual')")
            continue
        depth = 1
        if c.when is not None:
            w = em.emit(c.when, 1)
            em.line(1, f"if {w} is not True:")
            em.line(2, f"out.append('not_applicable' if {w} is False else 'unknown')")
            em.line(1, "else:")
            depth = 2
        b = em.emit(c.body, depth)
        em.line(depth, f"out.append('met' if {b} is True else 'not_met' if {b} is False else 'unknown')")
    em.line(1, "return out")
    return "\n".join(em.lines), em.nodes


@dataclass(frozen=True)
class FlatProgram:
    """A trial compiled for flat rows and one screening date."""

    verdict: Callable[[dict], str]
    statuses: Callable[[dict], list[str]]
    python_source: str


def compile_flat(trial: CompiledTrial, as_of: date, columns=None) -> FlatProgram:
    """Compile `trial` for flat rows screened as of `as_of`.

    `columns`, when given, are the keys every row has (one table's columns, known once per
    batch; a missing value is None): they are read as `p[key]`, and no per-row check is
    emitted for keys outside them (`__days`, `birth_date`).
    """
    source, nodes = generate(trial, as_of, None if columns is None else frozenset(columns))
    namespace: dict = {"__builtins__": {"bool": bool}, "FF": FlatFacts, "AS_OF": as_of, **nodes}
    namespace.update({f"L_{cls.__name__}": fn for cls, fn in runtime.LEAF_EVALUATORS.items()})
    exec(compile(source, f"<elig-flat:{trial.trial_id}>", "exec"), namespace)  # noqa: S102 — built from the IR only
    return FlatProgram(namespace["verdict"], namespace["statuses"], source)
