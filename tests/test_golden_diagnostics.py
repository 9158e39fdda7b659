"""Golden diagnostics: one small criteria file per diagnostic code, and the exact text
`elig check` prints for it (tests/golden/diagnostics/<code>.elig → <code>.expected).

Regenerate after a deliberate change with `ELIG_UPDATE_GOLDEN=1 pytest tests/test_golden_diagnostics.py`
and review the diff: these files are what a rule author reads.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from engine.lint import CODES as LINT_CODES
from engine.rules import check_paths

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "diagnostics"
CASES = sorted(GOLDEN.glob("*.elig"))
UPDATE = os.environ.get("ELIG_UPDATE_GOLDEN") == "1"
EMITTERS = ("engine/parser.py", "engine/checker.py")


def rendered(path: Path) -> tuple[str, set[str]]:
    """What `elig check <file>` prints for the file's diagnostics, and their codes."""
    diagnostics, _files = check_paths([path.name], ROOT / "rules")
    return "\n\n".join(d.render() for d in diagnostics) + "\n", {d.code for d in diagnostics}


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_golden_rendering(path, monkeypatch):
    monkeypatch.chdir(GOLDEN)  # file names print as authors see them, relative to where they run
    text, codes = rendered(path)
    assert path.stem in codes, f"{path.name} no longer produces {path.stem}"
    expected = path.with_suffix(".expected")
    if UPDATE:
        expected.write_text(text, encoding="utf-8")
    assert text == expected.read_text(encoding="utf-8")


def emitted_codes() -> set[str]:
    """Every code the parser and checker can emit (read from their source), and the lint codes."""
    pattern = re.compile(r'\.(?:error|warning)\(\s*"([a-z_]+)"')
    found = {code for f in EMITTERS for code in pattern.findall((ROOT / f).read_text(encoding="utf-8"))}
    return found | set(LINT_CODES)


def test_every_diagnostic_code_has_a_golden_file():
    codes = emitted_codes()
    assert {"syntax_error", "unit_mismatch", "never_met", "overlapping_criteria"} <= codes
    assert sorted(codes - {p.stem for p in CASES}) == []


def test_no_golden_file_for_a_code_that_no_longer_exists():
    assert sorted({p.stem for p in CASES} - emitted_codes()) == []
