"""Formatter: criteria text → its one canonical layout, comments kept.

Stage: tooling beside the parser. Input: a `Source` that parses. Output: text that parses to
an equal `ast.Module` (spans aside) and that formats to itself.

Layout:
- Top-level items are separated by one blank line; runs of `import`s and of `fact`s stay
  together. Blocks (`trial`, `analyte`, code sets) put one field per line, indented two spaces.
- A criterion is `inclusion KEY "text":` with its body on the next line, indented two
  spaces. Options go on their own lines between the two, `when` before `fresh`:
  `exclusion E3 "…"` / `  when sex is female:` / `  currently_pregnant or breastfeeding`.
- `define NAME "title" =` puts its expression on the next line, like a criterion body.
- An expression that does not fit in `WIDTH` columns is broken at its top-level `or`/`and`,
  one operand per line, continuation lines indented two more spaces and led by the operator.
- Brackets appear where precedence needs them, and always around an `and` inside an `or`.
- Spelling is normalised (`≥` → `>=`, one space around tokens, `per days` → `per day`);
  numbers, units and durations are printed as written.

Comments: lark drops them (`%ignore COMMENT`), so they are read from the source lines. That is
exact here because a string never spans a line, and `#` outside a string always starts a
comment. Each output line remembers the source lines it prints; a comment is attached to one:
- an end-of-line comment stays at the end of the line printing its source line (the last such
  line), or of the nearest line before it; it starts at column `COMMENT_COLUMN + 1`, or two
  spaces after longer code. If that line already has one, it moves above the line.
- a comment on its own line goes above the line it sits inside (e.g. within a multi-line
  expression), otherwise above the next line; after the last item it stays at the end.
  One blank line around own-line comments is kept, so section headers stay set apart.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from . import ast
from .parser import parse
from .source import Source

WIDTH = 100
COMMENT_COLUMN = 43
INDENT = 2

_STRING = re.compile(r'"(\\.|[^"\\\n])*"')
_PRECEDENCE = {ast.Or: 1, ast.And: 2, ast.Not: 3}
_GROUPED = (ast.Import, ast.FactDecl)  # consecutive one-liners of these kinds stay together


@dataclass
class Comment:
    line: int
    text: str
    own_line: bool
    blank_before: bool = False
    blank_after: bool = False


@dataclass
class Line:
    """One output line and the source lines (first..last) it prints."""

    text: str
    indent: int
    first: int
    last: int
    comment_indent: int | None = None
    blank_before: bool = False
    leading: list[Comment] = field(default_factory=list)
    trailing: Comment | None = None

    @property
    def comment_pad(self) -> str:
        """Indentation of the comments above this line (inside a block for its closing brace)."""
        return " " * (self.indent if self.comment_indent is None else self.comment_indent)


def format_source(source: Source) -> str:
    """The canonical text of `source`; raises `CompileError` when it does not parse."""
    module = parse(source)
    lines = _Layout(source).module(module)
    footer = _attach(lines, scan_comments(source.text))
    return _render(lines, footer)


def format_text(text: str, name: str = "<text>") -> str:
    """`format_source` for a string.

    >>> format_text('inclusion  I1 "Adults" :age>=18 years')
    'inclusion I1 "Adults":\\n  age >= 18 years\\n'
    """
    return format_source(Source(name, text))


# ---- comments ------------------------------------------------------------------------------

def scan_comments(text: str) -> list[Comment]:
    """Every `#` comment with its line, and whether it stands on a line of its own."""
    lines = text.split("\n")
    blank = [not ln.strip() for ln in lines]
    found = []
    for number, line in enumerate(lines, 1):
        at = _comment_start(line)
        if at is None:
            continue
        found.append(Comment(number, line[at:].rstrip(), not line[:at].strip(),
                             number > 1 and blank[number - 2], number < len(lines) and blank[number]))
    return found


def _comment_start(line: str) -> int | None:
    pos = 0
    while pos < len(line):
        if line[pos] == '"':
            match = _STRING.match(line, pos)
            pos = match.end() if match else pos + 1
        elif line[pos] == "#":
            return pos
        else:
            pos += 1
    return None


def code_only(text: str) -> str:
    """`text` with strings and comments blanked (same length), for keyword searches."""
    out = []
    for line in text.split("\n"):
        line = _STRING.sub(lambda m: " " * len(m.group()), line)
        at = line.find("#")
        out.append(line if at < 0 else line[:at] + " " * (len(line) - at))
    return "\n".join(out)


def _attach(lines: list[Line], comments: list[Comment]) -> list[Comment]:
    """Hang each comment on an output line; return those left for the end of the file."""
    footer = []
    for c in comments:
        target = _trailing_target(lines, c.line) if not c.own_line else _leading_target(lines, c.line)
        if target is None:
            footer.append(c)
        elif c.own_line:
            target.leading.append(c)
        elif target.trailing is None:
            target.trailing = c
        else:
            target.leading.append(Comment(c.line, c.text, True))
    return footer


def _trailing_target(lines: list[Line], at: int) -> Line | None:
    inside = [ln for ln in lines if ln.first <= at <= ln.last]
    if inside:
        return max(reversed(inside), key=lambda ln: ln.first)  # latest start; last in output on ties
    before = [ln for ln in lines if ln.last < at]
    return max(reversed(before), key=lambda ln: ln.last) if before else None


def _leading_target(lines: list[Line], at: int) -> Line | None:
    inside = [ln for ln in lines if ln.first < at <= ln.last]
    if inside:
        return max(reversed(inside), key=lambda ln: ln.first)
    after = [ln for ln in lines if ln.first > at]
    return min(after, key=lambda ln: ln.first) if after else None


# ---- rendering -----------------------------------------------------------------------------

def _render(lines: list[Line], footer: list[Comment]) -> str:
    out: list[str] = []
    for line in lines:
        if line.blank_before and out:
            out.append("")
        _render_comments(out, line.leading, line.comment_pad)
        out.append(_with_trailing(" " * line.indent + line.text, line.trailing))
    if footer:
        if out and footer[0].blank_before:
            out.append("")
        _render_comments(out, footer, "", trailing_blank=False)
    return "\n".join(out) + "\n" if out else ""


def _render_comments(out: list[str], comments: list[Comment], pad: str, trailing_blank: bool = True) -> None:
    for i, c in enumerate(comments):
        if i and (c.blank_before or comments[i - 1].blank_after):
            out.append("")
        out.append(pad + c.text)
    if comments and comments[-1].blank_after and trailing_blank:
        out.append("")


def _with_trailing(code: str, comment: Comment | None) -> str:
    if comment is None:
        return code
    if len(code) <= COMMENT_COLUMN - 2:
        return code.ljust(COMMENT_COLUMN) + comment.text
    return f"{code}  {comment.text}"


# ---- layout --------------------------------------------------------------------------------

class _Layout:
    """Turns a module into output lines; `item_<Class>` per item kind, `expr` for expressions."""

    def __init__(self, source: Source):
        self.source = source
        self.code = code_only(source.text)

    def module(self, module: ast.Module) -> list[Line]:
        lines: list[Line] = []
        previous = None
        for item in module.items:
            item_lines = getattr(self, f"item_{type(item).__name__}")(item)
            grouped = isinstance(item, _GROUPED) and type(item) is type(previous)
            item_lines[0].blank_before = not grouped
            lines.extend(item_lines)
            previous = item
        return lines

    def item_Import(self, item: ast.Import) -> list[Line]:
        return [_line(f"import {quote(item.path)}", 0, item.span)]

    def item_DefaultFreshness(self, item: ast.DefaultFreshness) -> list[Line]:
        return [_line(f"labs fresh within {duration(item.duration)}", 0, item.span)]

    def item_FactDecl(self, item: ast.FactDecl) -> list[Line]:
        return [_line(f"fact {item.name} {quote(item.title)}", 0, item.span)]

    def item_TrialMeta(self, item: ast.TrialMeta) -> list[Line]:
        fields = [_line(f"{f.name}: {literal(f.value)}", INDENT, f.span) for f in item.fields]
        return self._block(f"trial {item.trial_id}", item, fields)

    def item_CodeSet(self, item: ast.CodeSet) -> list[Line]:
        head = f"{item.kind} {item.name} {quote(item.title)}" + (" systemic" if item.systemic else "")
        return self._block(head, item, [_line(code_member(m), INDENT, m.span) for m in item.members])

    def item_Analyte(self, item: ast.Analyte) -> list[Line]:
        head = f"analyte {item.name} {quote(item.title)}" + (" qualitative" if item.kind == "qualitative" else "")
        return self._block(head, item, self._analyte_fields(item))

    def _analyte_fields(self, item: ast.Analyte) -> list[Line]:
        fields = []
        if item.loinc:
            first = item.code_spans[0].line if item.code_spans else item.span.line
            fields.append(Line("loinc " + " ".join(quote(c) for c in item.loinc), INDENT, first, first))
        for word, value in (("unit", item.unit), ("molar_mass", item.molar_mass), ("valence", item.valence)):
            if value is not None:
                shown = value if word == "unit" else number(value)
                at = self._keyword_line(word, item)
                fields.append(Line(f"{word} {shown}", INDENT, at, at))
        return fields

    def _keyword_line(self, word: str, item: ast.Node) -> int:
        """Source line of the last `word` keyword inside `item` (the one the parser kept)."""
        hits = list(re.finditer(rf"(?<![\w.]){word}(?![\w])", self.code[item.span.start:item.span.end]))
        if not hits:
            return item.span.line
        return self.source.text.count("\n", 0, item.span.start + hits[-1].start()) + 1

    def _block(self, head: str, item: ast.Node, fields: list[Line]) -> list[Line]:
        span = item.span
        if not fields:
            return [Line(head + " {}", 0, span.line, span.end_line)]
        header = Line(head + " {", 0, span.line, span.line)
        closing = Line("}", 0, span.end_line, span.end_line, comment_indent=INDENT)
        return [header, *fields, closing]

    def item_Define(self, item: ast.Define) -> list[Line]:
        title = f" {quote(item.title)}" if item.title is not None else ""
        body = self.expr_lines(item.expr, INDENT)
        return [Line(f"define {item.name}{title} =", 0, item.span.line, item.span.line), *body]

    def item_Criterion(self, item: ast.Criterion) -> list[Line]:
        parts: list[Line] = []
        if item.when is not None:
            parts.append(_line(f"when {expr(item.when)}", INDENT, item.when.span))
        if item.freshness is not None:
            parts.append(_line(f"fresh within {duration(item.freshness)}", INDENT, item.freshness.span))
        body = self._body(item)
        header = Line(f"{item.kind} {item.key} {quote(item.text)}", 0, item.span.line, item.span.line)
        (parts or [header])[-1].text += ":"
        return [header, *parts, *body]

    def _body(self, item: ast.Criterion) -> list[Line]:
        if not item.is_manual:
            return self.expr_lines(item.body, INDENT)
        text = "manual" + (f" {quote(item.manual_reason)}" if item.manual_reason is not None else "")
        return [Line(text, INDENT, self._keyword_line("manual", item), item.span.end_line)]

    def expr_lines(self, node, indent: int) -> list[Line]:
        """One line, or one per top-level operand when the expression is too wide."""
        text = expr(node)
        if indent + len(text) <= WIDTH or not isinstance(node, (ast.Or, ast.And)):
            return [_line(text, indent, node.span)]
        word = "or" if isinstance(node, ast.Or) else "and"
        first, *rest = node.items
        lines = [_line(_operand(first, node), indent, first.span)]
        lines += [_line(f"{word} {_operand(i, node)}", indent + INDENT, i.span) for i in rest]
        return lines


def _line(text: str, indent: int, span) -> Line:
    return Line(text, indent, span.line, span.end_line)


# ---- expressions and literals ----------------------------------------------------------------

def expr(node) -> str:
    """An expression on one line, parenthesised only where precedence needs it."""
    return _EXPR[type(node)](node)


def _operand(child, parent) -> str:
    """A child of and/or/not: brackets when it binds no tighter than its parent, and always
    around an `and` inside an `or`, so a mixed condition reads the way it is evaluated."""
    text = expr(child)
    inner = _PRECEDENCE.get(type(child))
    mixed = isinstance(child, ast.And) and isinstance(parent, ast.Or)
    return f"({text})" if mixed or (inner is not None and inner <= _PRECEDENCE[type(parent)]) else text


def _operand_name(operand) -> str:
    return "age" if isinstance(operand, ast.Age) else operand.name


_EXPR = {
    ast.Or: lambda n: " or ".join(_operand(i, n) for i in n.items),
    ast.And: lambda n: " and ".join(_operand(i, n) for i in n.items),
    ast.Not: lambda n: "not " + (expr(n.item) if isinstance(n.item, ast.Not) else _operand(n.item, n)),
    ast.Ref: lambda n: n.name,
    ast.Compare: lambda n: f"{_operand_name(n.operand)} {n.op} {quantity(n.quantity)}",
    ast.RangeCompare: lambda n: f"{quantity(n.low)} {n.op1} {_operand_name(n.operand)} {n.op2} {quantity(n.high)}",
    ast.Between: lambda n: f"{_operand_name(n.operand)} between {quantity(n.low)} and {quantity(n.high)}",
    ast.AboveUln: lambda n: f"{_operand_name(n.operand)} {n.op} uln + {quantity(n.margin)}",
    ast.Rising: lambda n: f"{n.name} rising {n.op} {quantity(n.quantity)} per {n.per}",
    ast.IsValue: lambda n: f"{n.name} is {n.value}",
    ast.Has: lambda n: f"has {n.name}" + (f" for more than {duration(n.for_more_than)}" if n.for_more_than else ""),
    ast.Had: lambda n: f"had {n.name}" + (f" within {duration(n.within)}" if n.within else ""),
}


def quantity(q: ast.Quantity) -> str:
    return f"{q.text} {q.unit}" if q.unit else q.text


def duration(d: ast.Duration) -> str:
    return f"{d.text} {d.unit}"


def code_member(m: ast.CodeMember) -> str:
    if m.is_range:
        return f"{m.system} {quote(m.codes[0])} .. {quote(m.codes[1])}"
    return f"{m.system} " + " ".join(quote(c) for c in m.codes)


def literal(value) -> str:
    """A `trial` field value: text, number or list, as the grammar's `literal` reads it."""
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    return number(value)


def number(value: float | int) -> str:
    """A number the grammar reads back as the same value (1e999 for infinity)."""
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "1e999" if value > 0 else "-1e999"
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


def quote(text: str) -> str:
    """A string literal the parser reads back as `text` (its escapes: \\" \\\\ \\n \\t \\uXXXX).

    Quotes, backslashes and control characters are escaped; everything else, non-ASCII
    included, is kept as written so protocol text stays readable (`TB≥171 μmol/L`).
    """
    return '"' + "".join(_escape(ch) for ch in text) + '"'


def _escape(ch: str) -> str:
    if ch in '"\\':
        return "\\" + ch
    if ch == "\n":
        return "\\n"
    if ch == "\t":
        return "\\t"
    code = ord(ch)
    return f"\\u{code:04x}" if code < 32 or code == 127 or 0xD800 <= code <= 0xDFFF else ch
