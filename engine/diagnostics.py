"""Diagnostics: coded, located problems in criteria files, kept as data.

Stage: shared by parser and checker. Shaped after OPA's `Error{Code, Message, Location,
Details}`: a stable code, a span, one line of message, detail lines and a hint. Stages collect
them and raise once (`CompileError`), so an author sees every problem in one run and `api/`
can serialise them unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from .source import Source, Span

Severity = Literal["error", "warning"]


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    source: Source
    span: Span
    severity: Severity = "error"
    hint: str | None = None
    details: tuple[str, ...] = ()

    def sort_key(self) -> tuple:
        return (self.source.name, self.span.start, self.code)

    def caret(self) -> str:
        """The source line with a caret under the span, like a compiler prints it."""
        line = self.source.line_text(self.span.line)
        width = self.span.end_column - self.span.column if self.span.end_line == self.span.line else 1
        pad = "".join("\t" if ch == "\t" else " " for ch in line[: self.span.column - 1])
        return f"{line}\n{pad}{'^' * max(width, 1)}"

    def render(self) -> str:
        """`file:line:col: error[code]: message`, the caret excerpt, then details and hint."""
        head = f"{self.source.name}:{self.span.line}:{self.span.column}: {self.severity}[{self.code}]: {self.message}"
        gutter = f"{self.span.line} | "
        excerpt = "\n".join(
            (gutter if i == 0 else " " * (len(gutter) - 2) + "| ") + part
            for i, part in enumerate(self.caret().split("\n"))
        )
        tail = [f"  = {d}" for d in self.details]
        if self.hint:
            tail.append(f"  = hint: {self.hint}")
        return "\n".join([head, excerpt, *tail])

    def to_dict(self) -> dict:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "file": self.source.name,
            "line": self.span.line,
            "column": self.span.column,
            "end_line": self.span.end_line,
            "end_column": self.span.end_column,
            "hint": self.hint,
            "details": list(self.details),
            "excerpt": self.caret(),
        }


@dataclass
class DiagnosticSink:
    """Collects diagnostics for one source; stages report through `error`/`warning`."""

    source: Source
    items: list[Diagnostic] = field(default_factory=list)

    def error(self, code: str, message: str, span: Span, hint: str | None = None, details=()) -> None:
        self.items.append(Diagnostic(code, message, self.source, span, "error", hint, tuple(details)))

    def warning(self, code: str, message: str, span: Span, hint: str | None = None, details=()) -> None:
        self.items.append(Diagnostic(code, message, self.source, span, "warning", hint, tuple(details)))

    @property
    def has_errors(self) -> bool:
        return any(d.severity == "error" for d in self.items)


class CompileError(Exception):
    """Raised once with every diagnostic a file produced, sorted by position."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        super().__init__(self.render())

    def render(self) -> str:
        return "\n\n".join(d.render() for d in self.diagnostics)
