"""Compiler: `ir.CheckedTrial` → Python source → a `CompiledTrial` of plain callables.

Stage: last before evaluation. Each criterion's body and `applies when` condition becomes one
Python function, built from the checked tree only: its identifiers are local names (`v0`, `v1`,
… for values, `K0`, `K1`, … for constants) and IR class names, and every constant (thresholds,
code sets, texts: the IR node objects themselves, and the child ids a trace records) is passed
in as `K<i>`, a closure cell of that function, never spliced into the source, so no criteria
text can inject code. The functions import nothing and have no builtins; they call the leaf evaluators
of `runtime.py` bound as `L_<Class>`.

Because names are local and constants are bound, a function's source depends only on its
*shape* (leaf kinds and connective structure), so `compile()` runs once per shape per process
(`_SHAPES`): a rule set of many trials with single lab tests, age ranges and `has` criteria
compiles each of those shapes once. `compile()` was the largest single cost of a cold load.

`and`/`or` short-circuit like Kleene logic allows (false ends an `and`, true ends an `or`)
unless a trace is being recorded, when every child is evaluated so the explanation can show
them all. Alongside the criterion functions the compiler emits `statuses(f)` and `verdict(f)`
(whose source depends only on the criteria's kinds, `applies when`s and manual ones) so the
hot path makes one Python call per patient. `CompiledTrial.python_source` shows all of it as
one readable module, with the nodes each function's constants are.

>>> from engine import compile_text
>>> trial = compile_text('trial T1 { }  inclusion I1 "Adults": age >= 18 years')
>>> print(trial.python_source.splitlines()[1])
def crit_0(f, tr):
"""

from __future__ import annotations

import marshal
from dataclasses import dataclass, field
from types import CodeType, FunctionType

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
        var = self._variable(node)
        method = getattr(self, f"emit_{type(node).__name__}", None)
        if method is None:
            self.line(depth, f"{var} = L_{type(node).__name__}(f, {self._node(node)}, tr)")
        else:
            method(node, var, depth)
        return var

    def _variable(self, node: ir.IR) -> str:
        """The variable for `node`'s value; here named by node id, with the node bound as `N<id>`."""
        self.nodes[f"N{node.nid}"] = node
        return f"v{node.nid}"

    def _node(self, node: ir.IR) -> str:
        """How the generated code refers to `node` itself."""
        return f"N{node.nid}"

    def _children(self, node: ir.IR) -> str:
        """How the generated code refers to the ids of `node`'s children (for the trace)."""
        return "(" + "".join(f"{c.nid}, " for c in ir.children(node)) + ")"

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
        self.line(depth, "if tr is not None:")
        self.line(depth + 1, f"record_branch(tr, {self._node(node)}, {var}, {self._children(node)})")


@dataclass
class _ShapeEmitter(_Emitter):
    """Emits with names local to one function, so its source depends only on its shape."""

    consts: list = field(default_factory=list)
    nvars: int = 0

    def const(self, value) -> str:
        self.consts.append(value)
        return f"K{len(self.consts) - 1}"

    def _variable(self, node: ir.IR) -> str:
        self.nvars += 1
        return f"v{self.nvars - 1}"

    def _node(self, node: ir.IR) -> str:
        return self.const(node)

    def _children(self, node: ir.IR) -> str:
        return self.const(tuple(c.nid for c in ir.children(node)))


# A part of a compiled trial: (name, source, constants). `source` defines `make(...)`, which takes
# the constants and returns the functions (closures over them): `fn` for a criterion body or
# condition (constants `K0`, `K1`, …), or `statuses` and `verdict` for the trial (constants: the
# names of the `crit_<i>`/`when_<i>` functions they call). Constants are closure cells, not
# globals, so one code object serves every trial whose function has its shape: all functions
# share one globals dict (`_GLOBALS`), which keeps CPython's global-lookup caches monomorphic.
Part = tuple[str, str, tuple]


def _factory(params, body: list[str], returns: str) -> str:
    head = f"def make({', '.join(params)}):"
    return "\n".join([head, *("    " + line for line in body), f"    return {returns}"])


def _expression_part(name: str, node: ir.IR) -> Part:
    em = _ShapeEmitter()
    em.line(0, "def fn(f, tr):")
    var = em.emit(node, 1)
    em.line(1, f"return {var}")
    return name, _factory([f"K{i}" for i in range(len(em.consts))], em.lines, "fn"), tuple(em.consts)


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


def plan(trial: ir.CheckedTrial) -> tuple[Part, ...]:
    """The parts of a trial's evaluators: one per criterion body and condition, then the trial's."""
    parts = []
    for i, c in enumerate(trial.criteria):
        if c.body is not None:
            parts.append(_expression_part(f"crit_{i}", c.body))
        if c.when is not None:
            parts.append(_expression_part(f"when_{i}", c.when))
    em = _Emitter()
    _emit_statuses(em, trial.criteria)
    _emit_verdict(em, trial.criteria)
    called = tuple(name for name, _source, _consts in parts)
    parts.append(("trial", _factory(called, em.lines, "statuses, verdict"), called))
    return tuple(parts)


def generate(trial: ir.CheckedTrial) -> str:
    """The Python source of a trial's evaluators, readable as one module (see `_readable`)."""
    return _readable(plan(trial))


def _readable(parts: tuple[Part, ...]) -> str:
    """The parts as one module: each function under its own name, with what its constants are."""
    out = []
    for name, source, consts in parts:
        body = [line[4:] for line in source.splitlines()[1:-1]]  # the functions `make` returns
        if name != "trial":
            legend = ", ".join(f"K{i} = {_describe_const(c)}" for i, c in enumerate(consts))
            out.append(f"# {name}: {legend}")
            body[0] = body[0].replace("def fn(", f"def {name}(", 1)
        out.extend(body)
        out.append("")
    return "\n".join(out)


def _describe_const(value) -> str:
    if isinstance(value, tuple):  # the child ids a trace records
        return "children (" + ", ".join(str(int(n)) for n in value) + ")"
    return f"node {int(value.nid)} {type(value).__name__}"


# Shape source → its `make` function, for every trial of the process (see module doc).
_SHAPES: dict[str, FunctionType] = {}
_MAX_SHAPES = 50_000  # a server reloading edited rules for months must not grow without end
_GLOBALS: dict = {"__builtins__": {}, "record_branch": runtime.record_branch,
                  **{f"L_{cls.__name__}": fn for cls, fn in runtime.LEAF_EVALUATORS.items()}}


def _shape(source: str) -> FunctionType:
    """The `make` function of a part's source, compiled once per process."""
    make = _SHAPES.get(source)
    if make is None:
        if len(_SHAPES) >= _MAX_SHAPES:
            _SHAPES.clear()
        module = compile(source, "<elig>", "exec")
        code = next(c for c in module.co_consts if isinstance(c, CodeType))
        make = _SHAPES[source] = FunctionType(code, _GLOBALS)
    return make


def shape_bytecode(source: str) -> bytes:
    """The `marshal`led bytecode of a part's source, for the compile cache."""
    return marshal.dumps(_shape(source).__code__)


def remember_shape(source: str, bytecode: bytes) -> None:
    """Reuse bytecode from the compile cache (`shape_bytecode`) for `source` instead of compiling it."""
    if source not in _SHAPES and len(_SHAPES) < _MAX_SHAPES:
        code = marshal.loads(bytecode)
        if not isinstance(code, CodeType) or code.co_name != "make":
            raise ValueError("not the bytecode of a compiled part")
        _SHAPES[source] = FunctionType(code, _GLOBALS)


def clear_shape_memo() -> None:
    """Forget every compiled shape (benchmarks of a rule set with no shape in common)."""
    _SHAPES.clear()


@dataclass
class CompiledTrial:
    """A trial ready to evaluate: `verdict(facts)`, `statuses(facts)`, and per-criterion traces."""

    checked: ir.CheckedTrial
    verdict: object  # (PatientFacts) -> str
    statuses: object  # (PatientFacts) -> list[str]
    bodies: tuple  # per criterion: (PatientFacts, trace) -> Tri, or None when manual
    whens: tuple
    parts: tuple[Part, ...] = ()  # what it was built from, kept for the compile cache

    @property
    def trial_id(self) -> str:
        return self.checked.trial_id

    @property
    def python_source(self) -> str:
        """The generated code as one readable module (constants are named, never spliced in)."""
        return _readable(self.parts)

    def trace(self, facts: PatientFacts) -> tuple[list, dict]:
        """Evaluate every criterion recording evidence: (per-criterion (when, body) values, trace)."""
        trace: dict = {}
        values = []
        for body, when in zip(self.bodies, self.whens):
            w = when(facts, trace) if when is not None else True
            b = body(facts, trace) if body is not None and w is True else None
            values.append((w, b))
        return values, trace


def compile_checked(trial: ir.CheckedTrial, prebuilt: tuple[Part, ...] | None = None) -> CompiledTrial:
    """Build the trial's functions from its parts (`plan(trial)`, or `prebuilt` from the cache)."""
    parts = plan(trial) if prebuilt is None else prebuilt
    functions: dict = {}
    for name, source, consts in parts:
        if name == "trial":
            statuses, verdict = _shape(source)(*(functions[n] for n in consts))
        else:
            functions[name] = _shape(source)(*consts)
    n = len(trial.criteria)
    bodies = tuple(functions.get(f"crit_{i}") for i in range(n))
    whens = tuple(functions.get(f"when_{i}") for i in range(n))
    return CompiledTrial(trial, verdict, statuses, bodies, whens, parts)
