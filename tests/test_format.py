"""Formatter: one canonical layout, meaning and comments preserved, idempotent.

The property tests generate criteria text from the grammar itself (`hypothesis.extra.lark`),
with tokens padded by spaces and comments dropped in between them, so that the formatter sees
layouts no hand-written fixture would.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.lark import from_lark

from engine import ast
from engine.diagnostics import CompileError
from engine.format import format_text, quote, scan_comments
from engine.parser import parse
from engine.source import Source
from tests.factories import grammar_lark

ROOT = Path(__file__).resolve().parent.parent
RULE_FILES = sorted((ROOT / "rules").rglob("*.elig"))


def _padded(*words: str) -> st.SearchStrategy[str]:
    return st.sampled_from([f" {w} " for w in words])


def _explicit() -> dict[str, st.SearchStrategy[str]]:
    """Terminal strategies that lex as intended: keywords and names padded with spaces."""
    grammar = grammar_lark()
    explicit = {t.name: st.just(f" {t.pattern.value} ") for t in grammar.terminals if t.pattern.type == "str"}
    explicit.update(
        NAME=_padded("bilirubin_total", "inr", "pta", "sex", "hbsag", "cirrhosis", "x_1", "pregnant"),
        FIELD=_padded("title", "status", "phases"),
        UNIT=_padded("umol/L", "mg/dL", "%", "s", "10*9/L", "g/L", "{INR}"),
        TIME_UNIT=_padded("day", "days", "week", "months", "year", "years"),
        NUMBER=_padded("0", "1", "17.1", "171", "2.50", "1e3", "0.5"),
        SIGNED_NUMBER=_padded("-3", "12", "4.25", "+7", "1e999"),
        STRING=_padded('""', '"plain"', '"TB≥171 μmol/L"', '"say \\"yes\\""', '"a\\\\b"', '"tab\\there"',
                       '"hash # inside"'),
        TRIAL_ID=_padded("NCT01844063", "T1"),
        KEY=_padded("I1", "E2", "I3a"),
        COMPARATOR=_padded(">=", "<", "≥", "≤", "="),
        CRITERION_KIND=_padded("inclusion", "exclusion"),
        CODE_SET_KIND=_padded("conditions", "medications", "procedures"),
        CODE_SYSTEM=_padded("icd10cm", "snomed", "atc"),
        ANALYTE_KIND=_padded("quantitative", "qualitative"),
        WS=st.sampled_from([" ", "\n", "\n\n", "\t"]),
        COMMENT=st.sampled_from([" # note\n", "\n# own line\n", "  #\n", " # ≥ \"q\" \n"]),
    )
    return explicit


criteria_text = from_lark(grammar_lark(), explicit=_explicit())


def _parses(text: str) -> ast.Module | None:
    try:
        return parse(Source("<gen>", text))
    except CompileError:
        return None


def _comment_texts(text: str) -> list[str]:
    return [c.text for c in scan_comments(text)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(criteria_text)
def test_format_preserves_meaning_and_is_idempotent(text):
    module = _parses(text)
    assume(module is not None)
    once = format_text(text)
    assert parse(Source("<fmt>", once)) == module
    assert format_text(once) == once
    assert sorted(_comment_texts(once)) == sorted(_comment_texts(text))


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_bundled_rules_are_formatted(path):
    text = path.read_text(encoding="utf-8")
    assert format_text(text) == text, f"run `elig fmt {path.relative_to(ROOT)}`"


@pytest.mark.parametrize("path", RULE_FILES, ids=lambda p: p.name)
def test_bundled_rules_keep_meaning(path):
    text = path.read_text(encoding="utf-8")
    assert parse(Source("<fmt>", format_text(text))) == parse(Source("<src>", text))


@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",))))
def test_quote_round_trips_any_text(text):
    module = parse(Source("<q>", f"fact x {quote(text)}"))
    assert module.items[0].title == text


def test_canonical_layout():
    text = ('trial T1 {title:"x" phases:["A","B"]}  labs fresh within 7 days\n'
            'inclusion I1 "Adults" when sex is female fresh within 1 year:age>=18 years and ( inr≥1.5 or pta<2 % )\n'
            'exclusion E1 "No"  :  manual "judged"')
    assert format_text(text) == (
        'trial T1 {\n  title: "x"\n  phases: ["A", "B"]\n}\n\n'
        "labs fresh within 7 days\n\n"
        'inclusion I1 "Adults"\n  when sex is female\n  fresh within 1 year:\n'
        "  age >= 18 years and (inr >= 1.5 or pta < 2 %)\n\n"
        'exclusion E1 "No":\n  manual "judged"\n'
    )


def test_and_inside_or_is_bracketed():
    assert format_text('define d = a or b and c').endswith("  a or (b and c)\n")


def test_long_expressions_break_at_top_level_operator():
    names = " or ".join(f"had condition_number_{i}" for i in range(6))
    out = format_text(f'exclusion E1 "x": {names}')
    continued = [f"    or had condition_number_{i}" for i in range(1, 6)]
    assert out.splitlines()[1:] == ["  had condition_number_0", *continued]


def test_comments_kept_in_place():
    text = ("# file header\n\n# section\n\nanalyte a \"A\" {\n  loinc \"1-1\" # why\n  # before unit\n"
            "  unit g/L\n}\ninclusion I1 \"x\": a > 1 g/L # trailing\n# the end\n")
    out = format_text(text)
    assert out == ("# file header\n\n# section\n\nanalyte a \"A\" {\n  loinc \"1-1\"" + " " * 30 + "# why\n"
                   "  # before unit\n  unit g/L\n}\n\ninclusion I1 \"x\":\n  a > 1 g/L" + " " * 32 + "# trailing\n"
                   "# the end\n")


def test_comment_inside_a_block_before_its_end_stays_inside():
    out = format_text('trial T1 {\n  title: "x"\n  # last\n}\n')
    assert out == 'trial T1 {\n  title: "x"\n  # last\n}\n'


def test_hash_inside_a_string_is_not_a_comment():
    assert format_text('fact f "a # b"') == 'fact f "a # b"\n'


def test_text_with_quotes_keeps_non_ascii_readable():
    literal = quote('TB≥171 "μmol/L"')
    assert literal == '"TB≥171 \\"μmol/L\\""'
    assert parse(Source("<q>", f"fact x {literal}")).items[0].title == 'TB≥171 "μmol/L"'
