"""Source text and spans: where every node, diagnostic and explanation points back to.

Stage: shared by all stages. A `Span` is copied from lark's `Meta` onto each AST node so that
diagnostics and explanations can cite file, line and column long after parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Span:
    """A 1-based line/column range plus 0-based character offsets into the source text."""

    line: int
    column: int
    end_line: int
    end_column: int
    start: int
    end: int

    def __reduce__(self):  # slots dataclasses unpickle slowly through fields(); the compile cache loads many
        return Span, (self.line, self.column, self.end_line, self.end_column, self.start, self.end)

    @classmethod
    def from_token(cls, tok) -> "Span":
        return cls(tok.line, tok.column, tok.end_line, tok.end_column, tok.start_pos, tok.end_pos)

    @classmethod
    def at(cls, text: str, offset: int) -> "Span":
        """A one-character span at `offset`, for errors the lexer reports by position."""
        line = text.count("\n", 0, offset) + 1
        column = offset - (text.rfind("\n", 0, offset) + 1) + 1
        return cls(line, column, line, column + 1, offset, offset + 1)


UNKNOWN_SPAN = Span(1, 1, 1, 1, 0, 0)


@dataclass(frozen=True, slots=True)
class Source:
    """A criteria file's text with the name it is reported under."""

    name: str
    text: str

    def __reduce__(self):
        return Source, (self.name, self.text)

    @classmethod
    def from_path(cls, path: Path, display_name: str | None = None) -> "Source":
        return cls(display_name or str(path), path.read_text(encoding="utf-8"))

    def line_text(self, line: int) -> str:
        lines = self.text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else ""

    def snippet(self, span: Span) -> str:
        return self.text[span.start:span.end]
