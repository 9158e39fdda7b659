"""Compiler: `ir.CheckedTrial` → Python source → a `CompiledTrial` of plain callables.

Stage: last before evaluation. The generated module is built from the checked tree only: its
identifiers are made from node numbers and IR class names, and every constant (thresholds,
code sets, texts) is passed in as an IR node object bound to `N<nid>`, never spliced into the
source, so no criteria text can inject code. The module imports nothing; it calls the leaf
evaluators of `runtime.py` bound as `L_<Class>`.

`and`/`or` short-circuit like Kleene logic allows (false ends an `and`, true ends an `or`)
unless a trace is being recorded, when every child is evaluated so the explanation can show
them all. Alongside each criterion function the compiler emits `statuses(f)` and `verdict(f)`
so the hot path makes one Python call per patient.

>>> from engine import compile_text
>>> trial = compile_text('trial T1 { }  inclusion I1 "Adults": age >= 18 years')
>>> print(trial.python_source.splitlines()[0])
def crit_0(f, tr):
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import CodeType

from . import ir, runtime
from .facts import PatientFacts


@dataclass
class _Emitter:
    lines: list[str] = field(default_factory=list)
    nodes: dict[str, object] = field(default_factory=dict)
    traced: bool = True  # emit trace bookkeeping (False for back ends that never explain)

    def line(self, depth: int, text: str) -> None:
        self.lines.append("    " * depth + text)

    def emit(self, node: ir.IR, depth: int) -> str:
        """Append statements computing `node` and return the variable that holds its value."""
        name = f"N{node.nid}"
        self.nodes[name] = node
        var = f"v{node.nid}"
        method = getattr(self, f"emit_{type(node).__name__}", None)
        if method is None:
            self.line(depth, f"{var} = L_{type(node).__name__}(f, {name}, tr)")
        else:
            method(node, var, depth)
        return var

    def emit_And(self, node: ir.And, var: str, depth: int) -> None:
        self._connective(node, var, depth, stop="False", identity="True")

    def emit_Or(self, node: ir.Or, var: str, depth: int) -> None:
        self._connective(node, var, depth, stop="True", identity="False")

    def _connective(self, node, var: str, depth: int, stop: str, identity: str) -> None:
        self.line(depth, f"{var} = {identity}")
        for i, child in enumerate(node.children):
            inner = depth
            if i:
                tracing = " or tr is not None" if self.traced else ""
                self.line(depth, f"if {var} is not {stop}{tracing}:")
                inner = depth + 1
            cvar = self.emit(child, inner)
            self.line(inner, f"if {cvar} is {stop}:")
            self.line(inner + 1, f"{var} = {stop}")
            self.line(inner, f"elif {cvar} is None and {var} is {identity}:")
            self.line(inner + 1, f"{var} = None")
        self._record(node, var, depth)

    def emit_Not(self, node: ir.Not, var: str, depth: int) -> None:
        cvar = self.emit(node.child, depth)
        self.line(depth, f"{var} = None if {cvar} is None else not {cvar}")
        self._record(node, var, depth)

    def emit_DefRef(self, node: ir.DefRef, var: str, depth: int) -> None:
        cvar = self.emit(node.child, depth)
        self.line(depth, f"{var} = {cvar}")
        self._record(node, var, depth)

    def _record(self, node, var: str, depth: int) -> None:
        if not self.traced:
            return
        kids = ", ".join(str(c.nid) for c in ir.children(node))
        self.line(depth, "if tr is not None:")
        self.line(depth + 1, f"record_branch(tr, N{node.nid}, {var}, ({kids},))")


def _function(em: _Emitter, name: str, node: ir.IR) -> None:
    em.line(0, f"def {name}(f, tr):")
    var = em.emit(node, 1)
    em.line(1, f"return {var}")
    em.line(0, "")


def _emit_statuses(em: _Emitter, criteria) -> None:
    """`statuses(f)`: one status word per criterion, fast path, no trace."""
    em.line(0, "def statuses(f):")
    em.line(1, "out = []")
    for i, c in enumerate(criteria):
        if c.is_manual:
            em.line(1, "out.append('manual')")
            continue
        depth = 1
        if c.when is not None:
            em.line(1, f"w = when_{i}(f, None)")
            em.line(1, "if w is not True:")
            em.line(2, "out.append('not_applicable' if w is False else 'unknown')")
            em.line(1, "else:")
            depth = 2
        em.line(depth, f"s = crit_{i}(f, None)")
        em.line(depth, "out.append('met' if s is True else 'not_met' if s is False else 'unknown')")
    em.line(1, "return out")
    em.line(0, "")


def _emit_verdict(em: _Emitter, criteria) -> None:
    """`verdict(f)`: stops at the first criterion that makes the patient ineligible."""
    em.line(0, "def verdict(f):")
    em.line(1, "unknown = False")
    for i, c in enumerate(criteria):
        if c.is_manual:
            continue
        deciding = "False" if c.kind == "inclusion" else "True"
        depth = 1
        if c.when is not None:
            em.line(1, f"w = when_{i}(f, None)")
            em.line(1, "if w is None:")
            em.line(2, "unknown = True")
            em.line(1, "elif w:")
            depth = 2
        em.line(depth, f"s = crit_{i}(f, None)")
        em.line(depth, f"if s is {deciding}:")
        em.line(depth + 1, "return 'ineligible'")
        em.line(depth, "if s is None:")
        em.line(depth + 1, "unknown = True")
    em.line(1, "return 'possibly_eligible' if unknown else 'eligible'")
    em.line(0, "")


def generate(trial: ir.CheckedTrial) -> str:
    """The Python source of a trial's evaluators (its constants are `_node_names(trial)`)."""
    em = _Emitter()
    for i, c in enumerate(trial.criteria):
        if c.body is not None:
            _function(em, f"crit_{i}", c.body)
        if c.when is not None:
            _function(em, f"when_{i}", c.when)
    _emit_statuses(em, trial.criteria)
    _emit_verdict(em, trial.criteria)
    return "\n".join(em.lines)


@dataclass
class CompiledTrial:
    """A trial ready to evaluate: `verdict(facts)`, `statuses(facts)`, and per-criterion traces."""

    checked: ir.CheckedTrial
    python_source: str
    verdict: object  # (PatientFacts) -> str
    statuses: object  # (PatientFacts) -> list[str]
    bodies: tuple  # per criterion: (PatientFacts, trace) -> Tri, or None when manual
    whens: tuple
    code: CodeType | None = None  # the compiled module, kept for the compile cache

    @property
    def trial_id(self) -> str:
        return self.checked.trial_id

    def trace(self, facts: PatientFacts) -> tuple[list, dict]:
        """Evaluate every criterion recording evidence: (per-criterion (when, body) values, trace)."""
        trace: dict = {}
        values = []
        for body, when in zip(self.bodies, self.whens):
            w = when(facts, trace) if when is not None else True
            b = body(facts, trace) if body is not None and w is True else None
            values.append((w, b))
        return values, trace


def compile_checked(trial: ir.CheckedTrial, prebuilt: tuple[str, CodeType] | None = None) -> CompiledTrial:
    """Generate and compile the trial's module, or reuse `prebuilt` (source, code) from the cache."""
    if prebuilt is None:
        source = generate(trial)
        code = compile(source, f"<elig:{trial.source.name}>", "exec")
    else:
        source, code = prebuilt
    namespace: dict = {"__builtins__": {}, "record_branch": runtime.record_branch, **_node_names(trial)}
    namespace.update({f"L_{cls.__name__}": fn for cls, fn in runtime.LEAF_EVALUATORS.items()})
    exec(code, namespace)  # noqa: S102 — source built from the checked tree only (see module doc)
    n = len(trial.criteria)
    bodies = tuple(namespace.get(f"crit_{i}") for i in range(n))
    whens = tuple(namespace.get(f"when_{i}") for i in range(n))
    return CompiledTrial(trial, source, namespace["verdict"], namespace["statuses"], bodies, whens, code)


def _node_names(trial: ir.CheckedTrial) -> dict[str, ir.IR]:
    """`N<nid>` → node: the constants the generated code refers to."""
    roots = [r for c in trial.criteria for r in (c.body, c.when) if r is not None]
    return {f"N{node.nid}": node for root in roots for node in ir.walk(root)}
