"""Parser facade: criteria text → `ast.Module`, or syntax diagnostics.

Stage: first. The lark grammar (`grammar/criteria.lark`, LALR) is loaded once per process.
Lark exceptions never escape: they become `Diagnostic`s with the tokens that were expected,
and the parser resumes after the bad token so that one run reports every syntax error.

>>> module = parse(Source("t.elig", 'inclusion I1 "Adults": age >= 18 years'))
>>> module.items[0].key
'I1'
"""

from __future__ import annotations

import functools
import hashlib
import re
from importlib import resources

import lark
from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from . import ast
from .cachedir import private_cache_dir
from .diagnostics import CompileError, DiagnosticSink
from .source import UNKNOWN_SPAN, Source, Span

# Readable names for grammar terminals in "expected …" messages.
_TERMINAL_NAMES = {
    "STRING": "a quoted text", "NAME": "a name", "NUMBER": "a number", "SIGNED_NUMBER": "a number",
    "UNIT": "a unit", "TIME_UNIT": "days, weeks, months or years", "COMPARATOR": "a comparison (>=, <, …)",
    "KEY": "a criterion key such as I1 or E3", "TRIAL_ID": "a registry id", "COLON": "':'",
    "LBRACE": "'{'", "RBRACE": "'}'", "LPAR": "'('", "RPAR": "')'", "CRITERION_KIND": "inclusion or exclusion",
    "CODE_SYSTEM": "a code system (icd10cm, icd10, snomed, atc, rxnorm, loinc, local)",
}
_MAX_EXPECTED = 8


@functools.cache
def _lark() -> Lark:
    """The LALR parser. It keeps every token and does not propagate positions: `_build` takes
    each node's span from its first and last token, which costs less than lark's position
    propagation did (a third of the parse) and gives the same spans, keywords and parentheses
    included (`test_the_ast_of_every_bundled_file_is_what_lark_s_transformer_built`)."""
    grammar = _grammar()
    return Lark(grammar, parser="lalr", keep_all_tokens=True, maybe_placeholders=False,
                cache=_tables_file(grammar) or False)


@functools.cache
def _grammar() -> str:
    return resources.files("grammar").joinpath("criteria.lark").read_text(encoding="utf-8")


def _tables_file(grammar: str) -> str | None:
    """Where lark keeps the parse tables it builds from the grammar, or None for no such file.

    Building them takes ~55 ms, loading them ~4 ms, and every process that parses pays it
    first: a service starting, its compile helper, each `elig` command. lark checks the file
    against a hash of the grammar, its options and lark's version, and rebuilds (and rewrites,
    atomically) when anything differs or the file is unreadable. The file is a pickle, so it is
    kept only in a directory of this user's that nobody else can write (`private_cache_dir`).
    """
    directory = private_cache_dir("grammar")
    if directory is None:
        return None
    digest = hashlib.sha256(grammar.encode("utf-8")).hexdigest()[:16]
    return str(directory / f"lark-{lark.__version__}-{digest}.tables")


_TERMINAL_DEFINITION = re.compile(r"^(?:%import\s+\w+\.)?([A-Z_][A-Z0-9_]*)\b", re.M)


@functools.cache
def _punctuation() -> frozenset[str]:
    """Terminals of the grammar's quoted strings (`"import"`, `"("`, `":"`): they place a node
    but are not passed to `_ToAst`, as lark would have filtered them out. They are the
    terminals the grammar does not name itself (defined or imported at the start of a line);
    the parser's tables may come from lark's cache, which does not keep the grammar."""
    named = set(_TERMINAL_DEFINITION.findall(_grammar()))
    return frozenset(t.name for t in _lark().terminals) - named


def parse(source: Source) -> ast.Module:
    """Parse one file; raise `CompileError` with every syntax error found."""
    sink = DiagnosticSink(source)
    tree = _parse_tree(source, sink)
    if sink.has_errors or tree is None:
        raise CompileError(sink.items)
    try:
        return _to_ast(tree)
    except _BadNode as exc:  # a malformed literal the grammar let through
        sink.error("syntax_error", str(exc.error), exc.span)
        raise CompileError(sink.items) from None


# Top-level items are self-delimiting, so after an error the parser can resume at the next
# line that starts one. The skipped text is blanked (newlines kept) so positions stay exact.
_ITEM_START = re.compile(
    r"^[ \t]*(inclusion|exclusion|define|analyte|conditions|medications|procedures|fact|import|trial|labs)\b", re.M
)
_MAX_ERRORS = 50


def _parse_tree(source: Source, sink: DiagnosticSink):
    text, resumed_at = source.text, -1
    while len(sink.items) < _MAX_ERRORS:
        try:
            tree = _lark().parse(text)
        except UnexpectedInput as exc:
            _report(exc, source, sink)
            resumed_at = _next_item_start(text, _error_offset(exc, text), resumed_at)
            if resumed_at is None:
                return None
            text = re.sub(r"[^\n]", " ", text[:resumed_at]) + text[resumed_at:]
            continue
        return None if sink.items else tree
    return None


def _error_offset(exc: UnexpectedInput, text: str) -> int:
    token = getattr(exc, "token", None)
    if token is not None and token.type != "$END":
        return token.start_pos
    pos = getattr(exc, "pos_in_stream", None)
    return len(text) if pos is None else pos


def _next_item_start(text: str, offset: int, previous: int) -> int | None:
    """Where to resume: the first item start at or after the error, past the last resume point.

    An error *at* an item keyword means the item before it was cut short, so parsing resumes
    right there; otherwise at the next line that starts an item.
    """
    line_start = text.rfind("\n", 0, offset) + 1
    for match in _ITEM_START.finditer(text, line_start):
        if match.start() > previous and (match.start() >= offset or match.end() > offset):
            return match.start()
    return None


def _report(exc: UnexpectedInput, source: Source, sink: DiagnosticSink) -> None:
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        if tok.type == "$END":
            span = Span.at(source.text, max(len(source.text) - 1, 0))
            sink.error("syntax_error", "unexpected end of file", span, _expected_hint(exc.expected))
        else:
            sink.error("syntax_error", f"unexpected {_describe(tok)}", Span.from_token(tok), _expected_hint(exc.expected))
    elif isinstance(exc, UnexpectedCharacters):
        span = Span.at(source.text, exc.pos_in_stream)
        char = source.text[exc.pos_in_stream]
        hint = "text must be in double quotes" if char in "'“”" else _expected_hint(exc.allowed)
        sink.error("unexpected_character", f"unexpected character {char!r}", span, hint)
    elif isinstance(exc, UnexpectedEOF):
        span = Span.at(source.text, max(len(source.text) - 1, 0))
        sink.error("syntax_error", "unexpected end of file", span, _expected_hint(exc.expected))


def _describe(tok: Token) -> str:
    return f"{tok.value!r}" if tok.type not in ("STRING",) else "quoted text"


def _expected_hint(expected) -> str | None:
    names = sorted({_TERMINAL_NAMES.get(t, _literal(t)) for t in (expected or ()) if t != "$END"})
    if not names:
        return None
    shown = names[:_MAX_EXPECTED] + (["…"] if len(names) > _MAX_EXPECTED else [])
    return "expected " + ", ".join(shown)


def _literal(terminal: str) -> str:
    pattern = _lark().get_terminal(terminal).pattern if terminal in _terminal_names() else None
    if pattern is not None and pattern.type == "str":
        return repr(pattern.value)
    return terminal.lower()


@functools.cache
def _terminal_names() -> frozenset[str]:
    return frozenset(t.name for t in _lark().terminals)


def _number(tok: Token) -> float:
    return float(tok)


_ESCAPE = re.compile(r'\\(u[0-9a-fA-F]{4}|.)')
_SIMPLE_ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "t": "\t"}


def _unquote(tok: Token) -> str:
    """The text between the quotes, with \\" \\\\ \\n \\t and \\uXXXX escapes read (non-ASCII kept)."""
    return _ESCAPE.sub(_unescape, tok[1:-1])


def _unescape(m: re.Match) -> str:
    code = m.group(1)
    if code.startswith("u") and len(code) == 5:
        return chr(int(code[1:], 16))
    return _SIMPLE_ESCAPES.get(code, code)


class _BadNode(Exception):
    def __init__(self, error: Exception, span: Span):
        super().__init__(str(error))
        self.error, self.span = error, span


def _to_ast(tree: Tree):
    """Build the `ast` node of a lark tree, bottom up: `_ToAst.<rule>(span, *children)`.

    A plain recursive walk with the rule methods looked up once: lark's `Transformer` with
    `v_args` wraps every method call in `functools` wrappers and generic dispatch, which cost
    more than building the nodes. Tokens other than punctuation are passed through as they are.
    """
    return _build(tree, _handlers(), _punctuation())[0]


def _build(t: Tree, handlers: dict, punctuation: frozenset):
    """(node, first token, last token) of a subtree; the tokens give the node its span.

    A module function, not a closure: a recursive closure is a reference cycle per parse.
    """
    args, first, last = [], None, None
    for child in t.children:
        if type(child) is Tree:
            value, start, end = _build(child, handlers, punctuation)
            args.append(value)
            if start is None:
                continue
        else:
            start = end = child
            if child.type not in punctuation:
                args.append(child)
        if first is None:
            first = start
        last = end
    span = _span(first, last)
    try:
        return handlers[t.data](span, *args), first, last
    except _BadNode:
        raise
    except Exception as exc:  # noqa: BLE001 — reported as a syntax error at the node
        raise _BadNode(exc, span) from exc


def _span(first: Token | None, last: Token | None) -> Span:
    if first is None:
        return UNKNOWN_SPAN
    return Span(first.line, first.column, last.end_line, last.end_column, first.start_pos, last.end_pos)


@functools.cache
def _handlers() -> dict:
    builder = _ToAst()
    return {name: getattr(builder, name) for name, value in vars(_ToAst).items()
            if callable(value) and not name.startswith("_")}


class _ToAst:
    """Builds `ast` nodes from lark's tree; names match grammar rules one to one (see `_to_ast`)."""

    def atom(self, span, expr):  # parentheses: the expression inside, spanning them in its parent
        return expr

    def start(self, span, *items):
        return ast.Module(tuple(items), span=span)

    def import_stmt(self, span, path):
        return ast.Import(_unquote(path), span=span)

    def trial_meta(self, span, trial_id, *fields):
        return ast.TrialMeta(str(trial_id), tuple(fields), span=span)

    def meta_field(self, span, name, value):
        return ast.MetaField(str(name), value, span=span)

    def string_lit(self, span, tok):
        return _unquote(tok)

    def number_lit(self, span, tok):
        value = float(tok)
        return int(value) if value.is_integer() else value

    def list_lit(self, span, *items):
        return list(items)

    def default_freshness(self, span, duration):
        return ast.DefaultFreshness(duration, span=span)

    def define(self, span, name, *rest):
        title = _unquote(rest[0]) if len(rest) == 2 else None
        return ast.Define(str(name), title, rest[-1], span=span)

    def analyte(self, span, name, title, *rest):
        kind = "quantitative"
        if rest and isinstance(rest[0], Token) and rest[0].type == "ANALYTE_KIND":
            kind, rest = str(rest[0]), rest[1:]
        fields = dict(rest)
        codes = fields.get("loinc", ())
        return ast.Analyte(
            str(name), _unquote(title), kind, tuple(_unquote(c) for c in codes), fields.get("unit"),
            fields.get("molar_mass"), fields.get("valence"),
            code_spans=tuple(Span.from_token(c) for c in codes), span=span,
        )

    def analyte_codes(self, span, *codes):
        return ("loinc", codes)

    def analyte_unit(self, span, unit):
        return ("unit", str(unit))

    def analyte_molar_mass(self, span, value):
        return ("molar_mass", float(value))

    def analyte_valence(self, span, value):
        return ("valence", int(float(value)))

    def code_set(self, span, kind, name, title, *rest):
        systemic = bool(rest) and isinstance(rest[0], Token) and rest[0].type == "SYSTEMIC"
        members = rest[1:] if systemic else rest
        return ast.CodeSet(str(kind), str(name), _unquote(title), systemic, tuple(members), span=span)

    def code_list(self, span, system, *codes):
        return ast.CodeMember(str(system), tuple(_unquote(c) for c in codes), span=span)

    def code_range(self, span, system, first, last):
        return ast.CodeMember(str(system), (_unquote(first), _unquote(last)), True, span=span)

    def fact_decl(self, span, name, title):
        return ast.FactDecl(str(name), _unquote(title), span=span)

    def criterion(self, span, kind, key, text, *rest):
        when = freshness = None
        for option in rest[:-1]:
            if isinstance(option, ast.Duration):
                freshness = option
            else:
                when = option.item
        body = rest[-1]
        common = dict(kind=str(kind), key=str(key), text=_unquote(text), when=when, freshness=freshness,
                      key_span=Span.from_token(key), span=span)
        if isinstance(body, _Manual):
            return ast.Criterion(body=None, manual_reason=body.reason, is_manual=True, **common)
        return ast.Criterion(body=body, **common)

    def applies_when(self, span, expr):
        return _When(expr)

    def freshness(self, span, duration):
        return duration

    def manual(self, span, *reason):
        return _Manual(_unquote(reason[0]) if reason else None)

    def or_(self, span, *items):
        return ast.Or(tuple(items), span=span)

    def and_(self, span, *items):
        return ast.And(tuple(items), span=span)

    def not_(self, span, item):
        return ast.Not(item, span=span)

    def ref(self, span, name):
        return ast.Ref(str(name), span=Span.from_token(name))

    def compare(self, span, operand, op, quantity):
        return ast.Compare(operand, _op(op), quantity, span=span)

    def range_compare(self, span, low, op1, operand, op2, high):
        return ast.RangeCompare(low, _op(op1), operand, _op(op2), high, span=span)

    def between(self, span, operand, low, high):
        return ast.Between(operand, low, high, span=span)

    def above_uln(self, span, operand, op, margin):
        return ast.AboveUln(operand, _op(op), margin, span=span)

    def rising(self, span, name, op, quantity, per):
        return ast.Rising(str(name), _op(op), quantity, ast.Duration(1, "1", str(per), span=Span.from_token(per)).canonical_unit,
                          span=span)

    def is_value(self, span, name, value):
        return ast.IsValue(str(name), str(value), Span.from_token(value), span=span)

    def has(self, span, name, *options):
        return ast.Has(str(name), options[0] if options else None, span=span)

    def for_more_than(self, span, duration):
        return duration

    def had(self, span, name, *within):
        return ast.Had(str(name), within[0] if within else None, span=span)

    def value_ref(self, span, name):
        return ast.ValueRef(str(name), span=Span.from_token(name))

    def age(self, span):
        return ast.Age(span=span)

    def quantity(self, span, number, unit=None):
        return ast.Quantity(float(number), str(number), str(unit) if unit else None, span=span)

    def duration(self, span, number, unit):
        return ast.Duration(float(number), str(number), str(unit), span=span)


class _When:
    def __init__(self, item):
        self.item = item


class _Manual:
    def __init__(self, reason):
        self.reason = reason


def _op(tok: Token) -> str:
    return {"≥": ">=", "≤": "<="}.get(str(tok), str(tok))
