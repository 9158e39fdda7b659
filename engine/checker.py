"""Checker: `ast.Module` (+ imported libraries) → `ir.CheckedTrial`, or every diagnostic at once.

Stage: after the parser, before the compiler. Passes, in order (later ones need earlier ones):

1. `collect_symbols`  — definitions from the file and its imports; duplicate names.
2. `check_trial_meta` — exactly one `trial` block with a registry id.
3. `lower_criteria`   — resolve names, infer kinds, convert units, check ranges; inline
                        `define`s (a stack catches circular definitions).
4. `check_keys`       — duplicate criterion keys.
5. `warn_unused`      — definitions in the trial file that nothing uses.

Every problem goes to a `DiagnosticSink`; nothing here raises until `check` has run every pass.
"""

from __future__ import annotations

import difflib
import functools
import math
import hashlib
import itertools
from dataclasses import dataclass, field
from typing import Callable

from . import ast, ir, units
from .diagnostics import CompileError, Diagnostic, DiagnosticSink
from .source import Source, Span

SEX_VALUES = ("male", "female", "other", "unknown")
QUALITATIVE_VALUES = ("positive", "negative", "indeterminate")
AGE_UNITS = {"year": "year", "years": "year", "a": "year", "month": "month", "months": "month", "mo": "month"}
DEFAULT_FRESHNESS = ir.Window(30, "day")
BUILTIN_TRIALS = ir.CodeSetInfo("clinical_trial", "participation in another clinical trial", "trials")
ASCENDING = {"<", "<="}
FLIPPED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "=": "="}

MAX_AMOUNT = 100_000  # durations longer than this many units are certainly typos

ImportResolver = Callable[[str, Source], tuple[Source, ast.Module]]


@dataclass
class Symbol:
    kind: str  # analyte | code_set | define | fact | score
    node: object
    source: Source
    info: object = None  # AnalyteInfo / CodeSetInfo once built


@dataclass
class _Scope:
    symbols: dict[str, Symbol] = field(default_factory=dict)
    sources: list[Source] = field(default_factory=list)
    used: set[str] = field(default_factory=set)


def check(source: Source, module: ast.Module, resolve_import: ImportResolver | None = None,
          *, require_trial: bool = True) -> tuple[ir.CheckedTrial | None, list[Diagnostic]]:
    """Run every pass; return the checked trial (None for a library) and its warnings.

    Raises `CompileError` carrying errors and warnings of this file and its imports.
    """
    checker = _Checker(source, module, resolve_import)
    trial = checker.run(require_trial)
    if any(d.severity == "error" for d in checker.all_diagnostics()):
        raise CompileError(checker.all_diagnostics())
    return trial, checker.all_diagnostics()


def library_symbols(source: Source, module: ast.Module, resolve_import: ImportResolver | None = None) -> dict:
    """Check a library file on its own and return its symbols (for imports and `elig check`)."""
    checker = _Checker(source, module, resolve_import)
    checker.collect_symbols()
    checker.lower_defines_for_errors()
    if any(d.severity == "error" for d in checker.all_diagnostics()):
        raise CompileError(checker.all_diagnostics())
    return checker.scope.symbols


class _Checker:
    def __init__(self, source: Source, module: ast.Module, resolve_import: ImportResolver | None):
        self.source, self.module, self.resolve_import = source, module, resolve_import
        self.sink = DiagnosticSink(source)
        self.import_sinks: list[DiagnosticSink] = []
        self.scope = _Scope(sources=[source])
        self.nids = itertools.count(1)
        self.define_stack: list[str] = []
        self.freshness = DEFAULT_FRESHNESS
        self.freshness_declared = False
        self.criterion_fresh: ir.Window | None = None
        self.bad_unit_analytes: set[str] = set()

    def all_diagnostics(self) -> list[Diagnostic]:
        return [d for s in (self.sink, *self.import_sinks) for d in s.items]

    # ---- pass 1: symbols -------------------------------------------------------------------

    def run(self, require_trial: bool) -> ir.CheckedTrial | None:
        self.collect_symbols()
        meta = self.check_trial_meta(require_trial)
        criteria = self.lower_criteria()
        self.check_keys()
        self.warn_unused()
        if meta is None:
            self.lower_defines_for_errors()
            return None
        return self.build_trial(meta, criteria)

    def collect_symbols(self) -> None:
        for item in self.module.of_type(ast.Import):
            self._import(item, set())
        for item in self.module.items:
            self._declare(item, self.source, self.sink)
        for item in self.module.of_type(ast.DefaultFreshness):
            self._check_duration(item.duration)
            self.freshness, self.freshness_declared = _window(item.duration), True

    def _import(self, item: ast.Import, seen: set[str]) -> None:
        if self.resolve_import is None:
            self.sink.error("import_not_found", f"cannot import {item.path!r} here", item.span)
            return
        try:
            lib_source, lib_module = self.resolve_import(item.path, self.source)
        except FileNotFoundError as exc:
            self.sink.error("import_not_found", f"no library {item.path!r}", item.span, hint=str(exc) or None)
            return
        except CompileError as exc:
            self.import_sinks.append(_sink_of(exc.diagnostics, self.source))
            return
        if lib_source.name in seen or any(s.name == lib_source.name for s in self.scope.sources):
            return
        seen.add(lib_source.name)
        self.scope.sources.append(lib_source)
        lib_sink = DiagnosticSink(lib_source)
        self.import_sinks.append(lib_sink)
        for nested in lib_module.of_type(ast.Import):
            self._import_nested(nested, lib_source, seen)
        for item, symbol, diagnostics, bad_unit in self._library_declarations(lib_source, lib_module):
            if item is not None and self._is_duplicate(item, lib_sink):
                continue
            lib_sink.items.extend(diagnostics)
            if symbol is not None:
                self.scope.symbols[item.name] = symbol
                if bad_unit:
                    self.bad_unit_analytes.add(item.name)

    def _library_declarations(self, lib_source: Source, lib_module: ast.Module) -> list[_Declaration]:
        """What declaring each item of a library gives, worked out once per library and resolver.

        Declaring an item depends on the current scope only through the duplicate-name check,
        which `_import` makes itself; the rest (LOINC check digits, units, code sets, built-in
        names) depends on the item alone. A resolver that offers a `declarations` dict keeps the
        result, so a rule set's trials share one symbol table per library instead of each
        re-declaring every symbol.
        """
        store = getattr(self.resolve_import, "declarations", None)
        key = id(lib_module)
        if store is not None and key in store and store[key][0] is lib_module:
            return store[key][1]
        found: list[_Declaration] = []
        for lib_item in lib_module.items:
            sink = DiagnosticSink(lib_source)
            if isinstance(lib_item, (ast.Criterion, ast.TrialMeta)):
                sink.error("library_has_criteria", "a library file holds definitions only", lib_item.span,
                           hint="move trials and criteria into a file under rules/trials")
                found.append((None, None, tuple(sink.items), False))
            elif type(lib_item) in _DECLARED_KINDS:
                symbol, bad_unit = _new_symbol(lib_item, lib_source, sink)
                found.append((lib_item, symbol, tuple(sink.items), bad_unit))
        if store is not None:
            store[key] = (lib_module, found)
        return found

    def _import_nested(self, item: ast.Import, from_source: Source, seen: set[str]) -> None:
        saved = self.source
        self.source = from_source
        try:
            self._import(item, seen)
        finally:
            self.source = saved

    def _declare(self, item, source: Source, sink: DiagnosticSink) -> None:
        if type(item) not in _DECLARED_KINDS or self._is_duplicate(item, sink):
            return
        symbol, bad_unit = _new_symbol(item, source, sink)
        if symbol is not None:
            self.scope.symbols[item.name] = symbol
            if bad_unit:
                self.bad_unit_analytes.add(item.name)  # its comparisons would only repeat its error

    def _is_duplicate(self, item, sink: DiagnosticSink) -> bool:
        previous = self.scope.symbols.get(item.name)
        if previous is not None:
            sink.error("duplicate_definition", f"{item.name!r} is already defined", item.span,
                       details=(f"first defined in {previous.source.name}:{previous.node.span.line}",))
        return previous is not None

    # ---- pass 2: trial metadata -------------------------------------------------------------

    def check_trial_meta(self, require_trial: bool):
        metas = self.module.of_type(ast.TrialMeta)
        if not metas:
            if require_trial and self.module.of_type(ast.Criterion):
                self.sink.error("missing_trial", "criteria without a `trial` block", self.module.items[0].span,
                                hint='start the file with trial NCT01234567 { title: "…" }')
            return None
        for extra in metas[1:]:
            self.sink.error("duplicate_trial", "a file describes one trial", extra.span)
        meta = metas[0]
        fields: dict[str, object] = {"id": meta.trial_id}
        for f in meta.fields:
            if f.name in fields:
                self.sink.error("duplicate_field", f"field {f.name!r} given twice", f.span)
            fields[f.name] = f.value
        return fields

    # ---- pass 3: criteria ---------------------------------------------------------------------

    def lower_criteria(self) -> list[ir.CheckedCriterion]:
        return [self._lower_criterion(c) for c in self.module.of_type(ast.Criterion)]

    def _lower_criterion(self, c: ast.Criterion) -> ir.CheckedCriterion:
        if c.freshness:
            self._check_duration(c.freshness)
        self.criterion_fresh = _window(c.freshness) if c.freshness else None
        when = self.lower(c.when) if c.when is not None else None
        body = self.lower(c.body) if c.body is not None else None
        return ir.CheckedCriterion(c.key, c.kind, c.text, c.span, body, when, c.manual_reason)

    def lower_defines_for_errors(self) -> None:
        """Check library definitions that no criterion uses, so their errors still show."""
        for item in self.module.of_type(ast.Define):
            if item.name not in self.scope.used:
                self.lower(item.expr)

    def lower(self, node) -> ir.IR:
        return getattr(self, f"lower_{type(node).__name__}")(node)

    def _base(self, node) -> dict:
        return {"nid": next(self.nids), "span": node.span, "text": self._text(node.span)}

    def _text(self, span: Span) -> str:
        return " ".join(self.source.snippet(span).split())

    def lower_Or(self, node: ast.Or) -> ir.IR:
        return ir.Or(children=tuple(self.lower(i) for i in node.items), **self._base(node))

    def lower_And(self, node: ast.And) -> ir.IR:
        return ir.And(children=tuple(self.lower(i) for i in node.items), **self._base(node))

    def lower_Not(self, node: ast.Not) -> ir.IR:
        return ir.Not(child=self.lower(node.item), **self._base(node))

    def lower_Ref(self, node: ast.Ref) -> ir.IR:
        symbol = self._lookup(node.name, node.span, {"define", "fact"})
        if symbol is None:
            return self._placeholder(node)
        if symbol.kind == "fact":
            return ir.FactTest(name=node.name, title=symbol.node.title, fresh=self.criterion_fresh or self.freshness,
                               **self._base(node))
        if node.name in self.define_stack:
            cycle = " → ".join([*self.define_stack[self.define_stack.index(node.name):], node.name])
            self.sink.error("circular_definition", f"{node.name!r} is defined in terms of itself", node.span,
                            details=(f"cycle: {cycle}",))
            return self._placeholder(node)
        self.define_stack.append(node.name)
        try:
            child = self._lower_in(symbol.source, symbol.node.expr)
        finally:
            self.define_stack.pop()
        return ir.DefRef(name=node.name, title=symbol.node.title, child=child, **self._base(node))

    def _lower_in(self, source: Source, expr) -> ir.IR:
        """Lower a definition's body while reporting against the file it was written in."""
        if source is self.source:
            return self.lower(expr)
        saved_source, saved_sink = self.source, self.sink
        self.source = source
        self.sink = next((s for s in self.import_sinks if s.source is source), DiagnosticSink(source))
        try:
            return self.lower(expr)
        finally:
            self.source, self.sink = saved_source, saved_sink

    def lower_Compare(self, node: ast.Compare) -> ir.IR:
        return self._bounded(node, node.operand, ((node.op, node.quantity),))

    def lower_Between(self, node: ast.Between) -> ir.IR:
        low, high = _share_unit(node.low, node.high)
        if low.value > high.value:
            self.sink.error("inverted_range", f"range {low.text}–{high.text} runs backwards", node.span,
                            hint=f"write between {high.text} and {low.text}")
        return self._bounded(node, node.operand, ((">=", low), ("<=", high)))

    def lower_RangeCompare(self, node: ast.RangeCompare) -> ir.IR:
        first, second = _share_unit(node.low, node.high)
        op1, op2 = node.op1, node.op2
        ascending = op1 in ASCENDING and op2 in ASCENDING
        if not ascending and (op1 in ASCENDING or op2 in ASCENDING or "=" in (op1, op2)):
            if isinstance(node.operand, ast.ValueRef):
                self.scope.used.add(node.operand.name)  # used, even if wrongly: no unused warning too
            self.sink.error("mixed_range", "a range's comparisons must point the same way", node.span,
                            hint="write it as low < value <= high")
            return self._placeholder(node)
        bounds = ((FLIPPED[op1], first), (op2, second))  # `a op1 x` is `x FLIPPED[op1] a`
        low, high = (first, second) if ascending else (second, first)
        strict = "<" in (op1, op2) or ">" in (op1, op2)
        if low.value > high.value or (low.value == high.value and strict):
            self.sink.error("empty_range", f"no value satisfies {self._text(node.span)}", node.span)
        return self._bounded(node, node.operand, bounds)

    def _bounded(self, node, operand, bounds) -> ir.IR:
        if isinstance(operand, ast.Age):
            return self._age_test(node, bounds)
        symbol = self._lookup(operand.name, operand.span, {"analyte", "score"})
        if symbol is None:
            return self._placeholder(node)
        if symbol.kind == "score":
            converted = tuple((op, self._unitless(q)) for op, q in bounds)
            spec = symbol.info
            return ir.ScoreTest(score=operand.name, title=spec.title, bounds=converted, fresh=self._fresh(),
                                inputs=self._score_inputs(spec), **self._base(node))
        analyte: ir.AnalyteInfo = symbol.info
        if analyte.kind == "qualitative":
            self.sink.error("coded_vs_number", f"{analyte.name} is a qualitative result; it has no number", node.span,
                            hint=f"write `{analyte.name} is positive` or `… is negative`")
            return self._placeholder(node)
        converted = tuple((op, self._convert(q, analyte)) for op, q in bounds)
        return ir.LabTest(analyte=analyte, bounds=converted, fresh=self._fresh(), **self._base(node))

    def _age_test(self, node, bounds) -> ir.IR:
        unit = None
        converted = []
        for op, q in bounds:
            q_unit = AGE_UNITS.get(q.unit or "")
            if q_unit is None:
                self.sink.error("missing_unit" if q.unit is None else "unit_mismatch",
                                f"an age needs years or months, not {q.unit or 'a bare number'}", q.span,
                                hint=f"write `{q.text} years`")
                q_unit = "year"
            if unit not in (None, q_unit):
                self.sink.error("unit_mismatch", "mix of years and months in one age range", q.span)
            unit = q_unit
            self._check_number(q)
            converted.append((op, q.value))
        return ir.AgeTest(bounds=tuple(converted), unit=unit or "year", **self._base(node))

    def _check_duration(self, d: ast.Duration) -> None:
        if not (math.isfinite(d.amount) and d.amount.is_integer() and 0 < d.amount <= MAX_AMOUNT):
            self.sink.error("bad_number", f"a duration must be a whole number from 1 to {MAX_AMOUNT:,}, not {d.text}",
                            d.span, hint="write e.g. `30 days` or `1 year`")

    def _check_number(self, q: ast.Quantity) -> None:
        if not math.isfinite(q.value):
            self.sink.error("bad_number", f"{q.text} is not a usable number", q.span)

    def _convert(self, q: ast.Quantity, analyte: ir.AnalyteInfo) -> float:
        self._check_number(q)
        if analyte.name in self.bad_unit_analytes:
            return q.value
        target = analyte.unit or "1"
        if q.unit is None and target not in ("1", "{INR}"):
            self.sink.error("missing_unit", f"{analyte.name} is measured in {target}; the threshold has no unit",
                            q.span, hint=f"write `{q.text} {target}`")
            return q.value
        try:
            factor = units.conversion_factor(q.unit or "1", target, molar_mass=analyte.molar_mass,
                                             valence=analyte.valence)
        except units.UnitError as exc:
            self.sink.error("unit_mismatch", f"{q.unit or 'a bare number'} cannot be compared with {analyte.name}",
                            q.span, details=self._unit_details(q.unit, target, exc),
                            hint=f"{analyte.title} is measured in {target}")
            return q.value
        return q.value * factor

    def _unit_details(self, have: str | None, want: str, exc: Exception) -> tuple[str, ...]:
        return (f"have: {have or '(no unit)'} ({_dimension_or(have)})", f"want: {want} ({_dimension_or(want)})",
                str(exc))

    def _unitless(self, q: ast.Quantity) -> float:
        self._check_number(q)
        if q.unit not in (None, "1", "{score}"):
            self.sink.error("unit_mismatch", f"a score has no unit, but the threshold is in {q.unit}", q.span)
        return q.value

    def _score_inputs(self, spec) -> tuple[ir.AnalyteInfo, ...]:
        found = []
        for name, _unit in spec.inputs:
            symbol = self.scope.symbols.get(name)
            if symbol is not None and symbol.kind == "analyte":
                self.scope.used.add(name)
                found.append(symbol.info)
        return tuple(found)

    def _fresh(self) -> ir.Window:
        if self.criterion_fresh is None and not self.freshness_declared:
            self.freshness_declared = True  # warn once per file
            self.sink.warning("lab_without_freshness", f"labs are used without a freshness window; "
                              f"values older than {DEFAULT_FRESHNESS} will count as missing", self.module.span,
                              hint="add `labs fresh within 14 days` (or per criterion: `fresh within 7 days`)")
        return self.criterion_fresh or self.freshness

    def lower_AboveUln(self, node: ast.AboveUln) -> ir.IR:
        analyte = self._quantitative(node.operand, node)
        if analyte is None:
            return self._placeholder(node)
        return ir.UlnTest(analyte=analyte, op=node.op, margin=self._convert(node.margin, analyte),
                          fresh=self._fresh(), **self._base(node))

    def lower_Rising(self, node: ast.Rising) -> ir.IR:
        analyte = self._quantitative(ast.ValueRef(node.name, span=node.span), node)
        if analyte is None:
            return self._placeholder(node)
        per_day = {"day": 1, "week": 7, "month": 30.4375, "year": 365.25}[node.per]
        rate = self._convert(node.quantity, analyte) / per_day
        return ir.RisingTest(analyte=analyte, op=node.op, rate_per_day=rate, fresh=self._fresh(), **self._base(node))

    def _quantitative(self, operand, node) -> ir.AnalyteInfo | None:
        if isinstance(operand, ast.Age):
            self.sink.error("wrong_kind", "age has no reference range or trend", node.span)
            return None
        symbol = self._lookup(operand.name, operand.span, {"analyte"})
        if symbol is None:
            return None
        if symbol.info.kind != "quantitative":
            self.sink.error("coded_vs_number", f"{operand.name} is a qualitative result", node.span)
            return None
        return symbol.info

    def lower_IsValue(self, node: ast.IsValue) -> ir.IR:
        if node.name == "sex":
            value = self._allowed_value(node, SEX_VALUES)
            return ir.SexTest(value=value, **self._base(node))
        symbol = self._lookup(node.name, node.span, {"analyte"})
        if symbol is None:
            return self._placeholder(node)
        if symbol.info.kind != "qualitative":
            self.sink.error("wrong_kind", f"{node.name} is a number, not a positive/negative result", node.span,
                            hint=f"compare it: `{node.name} >= …`")
            return self._placeholder(node)
        value = self._allowed_value(node, QUALITATIVE_VALUES)
        return ir.QualTest(analyte=symbol.info, value=value, fresh=self._fresh(), **self._base(node))

    def _allowed_value(self, node: ast.IsValue, allowed: tuple[str, ...]) -> str:
        if node.value not in allowed:
            self.sink.error("invalid_value", f"{node.name} cannot be {node.value!r}", node.value_span,
                            hint=_did_you_mean(node.value, allowed) or f"one of: {', '.join(allowed)}")
        return node.value

    def lower_Has(self, node: ast.Has) -> ir.IR:
        codes = self._code_set(node.name, node.span)
        if node.for_more_than:
            self._check_duration(node.for_more_than)
        more = _window(node.for_more_than) if node.for_more_than else None
        return ir.RecordTest(mode="has", codes=codes, for_more_than=more, **self._base(node))

    def lower_Had(self, node: ast.Had) -> ir.IR:
        codes = self._code_set(node.name, node.span)
        if node.within:
            self._check_duration(node.within)
        within = _window(node.within) if node.within else None
        return ir.RecordTest(mode="had", codes=codes, within=within, **self._base(node))

    def _code_set(self, name: str, span: Span) -> ir.CodeSetInfo:
        if name == "clinical_trial":
            return BUILTIN_TRIALS
        symbol = self._lookup(name, span, {"code_set"})
        return symbol.info if symbol is not None else ir.CodeSetInfo(name, name, "conditions")

    # ---- name resolution ----------------------------------------------------------------------

    def _lookup(self, name: str, span: Span, wanted: set[str]) -> Symbol | None:
        symbol = self.scope.symbols.get(name) or _builtin_symbol(name)
        if symbol is None:
            candidates = [n for n, s in self.scope.symbols.items() if s.kind in wanted]
            candidates += [n for n in _builtin_names() if _builtin_symbol(n).kind in wanted]
            self.sink.error("unknown_name", f"unknown name {name!r}", _name_span(span, name, self.source),
                            hint=_did_you_mean(name, candidates) or _kind_hint(wanted))
            return None
        self.scope.used.add(name)
        if symbol.kind not in wanted:
            self.sink.error("wrong_kind", f"{name!r} is {_article(symbol.kind)}, not {_wanted(wanted)}",
                            _name_span(span, name, self.source), hint=_usage_hint(name, symbol.kind))
            return None
        return symbol

    def _placeholder(self, node) -> ir.IR:
        return ir.FactTest(name="<error>", title="<error>", **self._base(node))

    # ---- passes 4 and 5 -----------------------------------------------------------------------

    def check_keys(self) -> None:
        seen: dict[str, ast.Criterion] = {}
        for c in self.module.of_type(ast.Criterion):
            if c.key in seen:
                self.sink.error("duplicate_key", f"criterion key {c.key} is used twice", c.key_span or c.span,
                                details=(f"first used on line {seen[c.key].span.line}",))
            seen.setdefault(c.key, c)
            expected_prefix = "I" if c.kind == "inclusion" else "E"
            if not c.key.startswith(expected_prefix):
                self.sink.warning("key_kind_mismatch", f"{c.kind} criterion with key {c.key}", c.key_span or c.span,
                                  hint="inclusion keys start with I, exclusion keys with E")

    def warn_unused(self) -> None:
        if not self.module.of_type(ast.Criterion):
            return  # a library: its definitions are for others
        for item in self.module.items:
            declared = getattr(self.scope.symbols.get(getattr(item, "name", None)), "node", None) is item
            if declared and item.name not in self.scope.used:
                self.sink.warning("unused_definition", f"{item.name!r} is defined but never used", item.span)

    def build_trial(self, meta: dict, criteria: list[ir.CheckedCriterion]) -> ir.CheckedTrial:
        used = [self.scope.symbols[n] for n in sorted(self.scope.used) if n in self.scope.symbols]
        digest = hashlib.sha256("\0".join(s.text for s in self.scope.sources).encode()).hexdigest()
        return ir.CheckedTrial(
            trial_id=str(meta["id"]), meta=meta, criteria=tuple(criteria), source=self.source,
            sources=tuple(self.scope.sources), content_hash=digest,
            analytes=tuple(s.info for s in used if s.kind == "analyte"),
            code_sets=tuple(s.info for s in used if s.kind == "code_set"),
            facts=tuple(s.node.name for s in used if s.kind == "fact"),
            node_count=next(self.nids) - 1,
        )


# ---- helpers ---------------------------------------------------------------------------------

_DECLARED_KINDS = {ast.Analyte: "analyte", ast.CodeSet: "code_set", ast.Define: "define", ast.FactDecl: "fact"}

# A library item as declared: (item, its symbol, its diagnostics, whether its unit is unknown); the
# item is None for a criterion or trial block, which a library must not hold (only diagnostics).
_Declaration = tuple


def _new_symbol(item, source: Source, sink: DiagnosticSink) -> tuple[Symbol | None, bool]:
    """The symbol a declaration makes, whatever else is in scope, and whether its unit is unknown."""
    if item.name in _builtin_names():
        sink.error("duplicate_definition", f"{item.name!r} is a built-in name", item.span)
        return None, False
    kind = _DECLARED_KINDS[type(item)]
    info, bad_unit = None, False
    if kind == "analyte":
        info, bad_unit = _analyte_info(item, sink)
    elif kind == "code_set":
        info = _code_set_info(item, sink)
    return Symbol(kind, item, source, info), bad_unit


def _analyte_info(node: ast.Analyte, sink: DiagnosticSink) -> tuple[ir.AnalyteInfo, bool]:
    bad_unit = False
    for code, span in zip(node.loinc, node.code_spans):
        if not _loinc_check_digit_ok(code):
            sink.error("bad_code", f"LOINC code {code!r} fails its check digit", span,
                       hint="a LOINC code is digits, a dash and a mod-10 check digit; check it against LOINC")
    unit = node.unit
    if node.kind == "quantitative" and unit is not None:
        try:
            unit = units.normalise_unit(unit)
            units.dimension(unit)
        except units.UnitError as exc:
            sink.error("unknown_unit", str(exc), node.span)
            bad_unit = True
    return ir.AnalyteInfo(node.name, node.title, node.kind, node.loinc,
                          unit if node.kind == "quantitative" else None, node.molar_mass, node.valence), bad_unit

def _window(d: ast.Duration) -> ir.Window:
    """A whole, finite look-back; `_check_duration` has reported anything else."""
    amount = d.amount if math.isfinite(d.amount) and d.amount.is_integer() and 0 < d.amount <= MAX_AMOUNT else 1
    return ir.Window(int(amount), d.canonical_unit)


def _share_unit(low: ast.Quantity, high: ast.Quantity) -> tuple[ast.Quantity, ast.Quantity]:
    """`between 18 and 65 years`: a unit written once applies to both ends."""
    if low.unit is None and high.unit is not None:
        low = ast.Quantity(low.value, low.text, high.unit, span=low.span)
    elif high.unit is None and low.unit is not None:
        high = ast.Quantity(high.value, high.text, low.unit, span=high.span)
    return low, high


def _code_set_info(node: ast.CodeSet, sink: DiagnosticSink) -> ir.CodeSetInfo:
    exact, prefixes, ranges = set(), set(), []
    for m in node.members:
        if m.is_range:
            first, last = (c.upper() for c in m.codes)
            if first > last:
                sink.error("inverted_range", f"code range {first}..{last} runs backwards", m.span)
            ranges.append((m.system, first, last))
        elif m.system in ("icd10", "icd10cm", "atc"):
            prefixes.update((m.system, _norm_code(m.system, c)) for c in m.codes)  # hierarchical codes
        else:
            exact.update((m.system, c) for c in m.codes)
    return ir.CodeSetInfo(node.name, node.title, node.kind, node.systemic, frozenset(exact), frozenset(prefixes),
                          tuple(ranges))


def _norm_code(system: str, code: str) -> str:
    return code.upper().replace(".", "") if system in ("icd10", "icd10cm") else code.upper()


def _loinc_check_digit_ok(code: str) -> bool:
    """LOINC's mod-10 check digit (reference/loinc-ucum.md §6)."""
    body, _, check = code.partition("-")
    if not body.isdigit() or not check.isdigit() or len(check) != 1:
        return False
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d // 10 + d % 10
    return (10 - total % 10) % 10 == int(check)


def _dimension_or(unit: str | None) -> str:
    try:
        return units.dimension(unit or "1")
    except units.UnitError:
        return "unknown unit"


@functools.cache
def _builtin_names() -> tuple[str, ...]:
    from .scores import SCORES
    return tuple(SCORES) + ("clinical_trial",)


def _builtin_symbol(name: str) -> Symbol | None:
    from .scores import SCORES
    if name in SCORES:
        return Symbol("score", None, Source("<builtin>", ""), SCORES[name])
    if name == "clinical_trial":
        return Symbol("code_set", None, Source("<builtin>", ""), BUILTIN_TRIALS)
    return None


def _did_you_mean(name: str, candidates) -> str | None:
    close = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}?" if close else None


def _name_span(span: Span, name: str, source: Source) -> Span:
    """Narrow a node's span to the name inside it, so the caret sits under the name."""
    at = source.text.find(name, span.start, max(span.end, span.start + len(name)))
    if at < 0:
        return span
    return Span(span.line, span.column + (at - span.start), span.line, span.column + (at - span.start) + len(name),
                at, at + len(name))


_KIND_WORDS = {"analyte": "an analyte", "code_set": "a code set", "define": "a definition", "fact": "a fact",
               "score": "a score"}


def _article(kind: str) -> str:
    return _KIND_WORDS[kind]


def _wanted(wanted: set[str]) -> str:
    return " or ".join(sorted(_KIND_WORDS[k] for k in wanted))


def _kind_hint(wanted: set[str]) -> str:
    return f"expected {_wanted(wanted)} defined in this file or an imported library"


def _usage_hint(name: str, kind: str) -> str:
    return {
        "analyte": f"compare it: `{name} >= …` or `{name} is positive`",
        "code_set": f"write `had {name}` or `has {name}`",
        "define": f"use it on its own: `{name}`",
        "fact": f"use it on its own: `{name}`",
        "score": f"compare it: `{name} >= …`",
    }[kind]


def _sink_of(diagnostics, source: Source) -> DiagnosticSink:
    sink = DiagnosticSink(source)
    sink.items.extend(diagnostics)
    return sink
