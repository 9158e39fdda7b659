"""Parser and checker: diagnostics as data, every problem at once, never a traceback."""

import functools
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from hypothesis.extra.lark import from_lark
from lark.exceptions import UnexpectedInput

from engine import compile_text
from engine.diagnostics import CompileError
from engine.parser import _lark, parse
from engine.source import UNKNOWN_SPAN, Source, Span
from tests.factories import grammar_lark

RULES = Path(__file__).resolve().parents[1] / "rules"
HEADER = 'import "hepatology"\ntrial T1 { title: "t" }\nlabs fresh within 14 days\n'


def diagnostics(text: str) -> list:
    with pytest.raises(CompileError) as info:
        compile_text(HEADER + text, name="t.elig", rules_root=RULES)
    return info.value.diagnostics


def codes(text: str) -> list[str]:
    return [d.code for d in diagnostics(text) if d.severity == "error"]


def test_caret_rendering_is_pinned():
    [d] = diagnostics('inclusion I1 "x": bilirubin_total >= 171 s')
    assert d.render() == (
        "t.elig:4:38: error[unit_mismatch]: s cannot be compared with bilirubin_total\n"
        '4 | inclusion I1 "x": bilirubin_total >= 171 s\n'
        "  |                                      ^^^^^\n"
        "  = have: s (time)\n"
        "  = want: umol/L (substance concentration)\n"
        "  = s (time) cannot be converted to umol/L (substance concentration)\n"
        "  = hint: total bilirubin is measured in umol/L"
    )
    assert (d.code, d.span.line, d.span.column) == ("unit_mismatch", 4, 38)


def test_every_problem_is_reported_in_one_run():
    text = ('inclusion I1 "a": bilirubin_totl >= 171 umol/L\n'
            'inclusion I1 "b": hbsag >= 5\n'
            'inclusion I2 "c": age between 65 and 18 years\n'
            'exclusion E1 "d": had bilirubin_total\n'
            'exclusion E2 "e": 40 % < pta <= 20 %\n'
            'inclusion I3 "f": hbsag is maybe\n')
    found = codes(text)
    assert found == ["unknown_name", "duplicate_key", "coded_vs_number", "inverted_range", "wrong_kind",
                     "empty_range", "invalid_value"]


def test_unknown_name_suggests_the_closest():
    d = next(d for d in diagnostics('inclusion I1 "a": bilirubin_totl >= 171 umol/L') if d.code == "unknown_name")
    assert d.hint == "did you mean 'bilirubin_total'?"
    assert (d.span.line, d.span.column) == (4, 19)


def test_circular_definition():
    assert "circular_definition" in codes('define a = b\ndefine b = a\ninclusion I1 "x": a')


def test_syntax_errors_say_what_was_expected_and_resume_at_the_next_criterion():
    found = diagnostics('inclusion I1 "x": age >= \ninclusion I2 "y": had hiv within 3 fortnights\n'
                        "inclusion I3 'z': had hiv")
    assert [(d.code, d.span.line) for d in found] == [
        ("syntax_error", 5), ("syntax_error", 5), ("unexpected_character", 6)]
    assert "a number" in found[0].hint
    assert found[2].hint == "text must be in double quotes"


def test_a_bad_loinc_code_in_a_library_fails_its_check_digit():
    with pytest.raises(CompileError) as info:
        compile_text('trial T1 { }\nanalyte x "x" { loinc "1975-3" unit mg/dL }\ninclusion I1 "a": x > 1 mg/dL')
    assert [d.code for d in info.value.diagnostics if d.severity == "error"] == ["bad_code"]


def test_absurd_numbers_are_diagnosed_not_crashed_on():
    assert codes('inclusion I1 "x" fresh within 1E400 days: inr >= 1.5') == ["bad_number"]
    assert codes('inclusion I1 "x": inr >= 1E400') == ["bad_number"]


def test_missing_library_is_reported_at_the_import():
    with pytest.raises(CompileError) as info:
        compile_text('import "nonexistent"\ntrial T1 { }', rules_root=RULES)
    assert info.value.diagnostics[0].code == "import_not_found"


def test_diagnostics_are_data():
    d = diagnostics('inclusion I1 "a": hbsag >= 5')[0].to_dict()
    assert {"code", "severity", "message", "file", "line", "column", "hint", "details", "excerpt"} <= set(d)


# ---- properties ------------------------------------------------------------------------------

@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_random_text_never_crashes(text):
    try:
        compile_text(text, rules_root=RULES)
    except (CompileError, ValueError) as exc:
        if isinstance(exc, CompileError):
            assert exc.diagnostics
            exc.render()


names = st.sampled_from(["bilirubin_total", "inr", "pta", "hbsag", "meld", "cirrhosis", "hiv", "sex", "age",
                         "pregnant", "woman_of_childbearing_potential", "nonsense"])
generated_text = from_lark(grammar_lark(), start="start", explicit={
    "NAME": names, "STRING": st.just('"text"'), "UNIT": st.sampled_from(["umol/L", "mg/dL", "%", "s", "years"]),
    "FIELD": st.just("title"), "TRIAL_ID": st.just("NCT01234567"), "KEY": st.sampled_from(["I1", "E1", "I2"]),
    "COMMENT": st.just("# c"),
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(generated_text)
def test_grammar_generated_text_compiles_or_gives_diagnostics(text):
    try:
        compile_text(text, rules_root=RULES)
    except CompileError as exc:
        assert all(d.span.line >= 1 for d in exc.diagnostics)
    except ValueError as exc:
        assert "defines no trial" in str(exc)


def test_parser_is_lalr_and_loaded_once():
    assert _lark().options.parser == "lalr"
    assert _lark() is _lark()


def test_parse_keeps_spans():
    module = parse(Source("s.elig", '\n\ninclusion I1 "x": age >= 18 years'))
    assert module.items[0].span.line == 3


# ---- a library's symbols are declared once per load -------------------------------------------

BROKEN_LIBRARY = '''fact pregnant "pregnant"
fact pregnant "pregnant again"
fact meld "not the score"
analyte odd "Odd" {
  loinc "1234-5"
  unit furlongs
}
analyte alt "ALT" {
  loinc "1742-6"
  unit U/L
}
conditions hbv "HBV" {
  icd10 "B18.1"
}
inclusion I9 "not here": manual
define adult "adult" = age >= 18 years
'''


def _trial(n: int, extra: str = "") -> str:
    return (f'import "shared"\ntrial T{n} {{ }}\nlabs fresh within 14 days\n{extra}'
            f'inclusion I1 "a": odd >= 3 furlongs\ninclusion I2 "b": alt >= 40 U/L and adult\n'
            f'exclusion E1 "c": has hbv\n')


def test_trials_sharing_a_library_get_the_diagnostics_each_would_alone(tmp_path):
    from engine.rules import ImportResolver, check_source
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "shared.elig").write_text(BROKEN_LIBRARY)
    texts = [_trial(1), _trial(2, 'fact pregnant "again, in the trial"\n'), _trial(3, 'analyte alt "x" {\n  loinc "1742-6"\n}\n')]
    sources = [Source(str(tmp_path / f"t{i}.elig"), text) for i, text in enumerate(texts)]
    shared = ImportResolver(tmp_path)
    together = [[d.render() for d in check_source(s, shared)] for s in sources]
    alone = [[d.render() for d in check_source(s, ImportResolver(tmp_path))] for s in sources]
    assert together == alone
    assert len(shared.declarations) == 1  # declared once, reused by the other two trials
    first = " ".join(together[0])
    for code in ("duplicate_definition", "bad_code", "unknown_unit", "library_has_criteria"):
        assert code in first
    assert "unit_mismatch" not in first  # an analyte with an unknown unit is not reported again at each use
    assert "t1.elig:4:1: error[duplicate_definition]: 'pregnant'" in " ".join(together[1])
    assert "t2.elig:4:1: error[duplicate_definition]: 'alt'" in " ".join(together[2])


def test_every_golden_file_checked_in_one_run_gives_what_it_gives_alone(monkeypatch):
    from engine.rules import ImportResolver, check_source
    golden = Path(__file__).resolve().parent / "golden" / "diagnostics"
    monkeypatch.chdir(golden)
    sources = [Source.from_path(p, p.name) for p in sorted(golden.glob("*.elig"))]
    shared = ImportResolver(RULES)
    assert [[d.render() for d in check_source(s, shared)] for s in sources] == \
        [[d.render() for d in check_source(s, ImportResolver(RULES))] for s in sources]


def test_a_literal_the_grammar_lets_through_but_python_cannot_read_is_a_syntax_error_at_it():
    with pytest.raises(CompileError) as info:
        parse(Source("l.elig", 'analyte x "x" {\n  loinc "1742-6"\n  unit U/L\n  valence 1E400\n}\n'))
    [d] = info.value.diagnostics
    assert d.render() == ("l.elig:4:3: error[syntax_error]: cannot convert float infinity to integer\n"
                          "4 |   valence 1E400\n  |   ^^^^^^^^^^^^^")


def test_the_ast_of_every_bundled_file_is_what_lark_s_transformer_built():
    """The AST builder is a plain walk over a tree with every token kept, spans taken from the
    tokens; the oracle is lark's own Transformer over lark's usual tree (punctuation filtered
    out) with lark's own position propagation."""
    from engine.parser import _punctuation

    lark = _oracle_lark()
    assert _punctuation() == {s.name for r in lark.rules for s in r.expansion if s.is_term and s.filter_out}
    golden = Path(__file__).resolve().parent / "golden" / "diagnostics"
    sources = [*(Source.from_path(p, p.name) for p in [*RULES.rglob("*.elig"), *golden.rglob("*.elig")]),
               *EXTRA_TEXTS]
    compared = sum(_same_as_oracle(source) for source in sources)
    assert compared >= len(list(RULES.rglob("*.elig"))) + len(EXTRA_TEXTS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
@given(generated_text)
def test_the_ast_of_grammar_generated_text_is_what_lark_s_transformer_built(text):
    _same_as_oracle(Source("generated.elig", text))


def _same_as_oracle(source: Source) -> bool:
    """Assert `parse` gives lark's Transformer's AST, spans included; False if lark rejects the text."""
    from lark import Transformer
    from engine.parser import _ToAst

    class Oracle(Transformer):
        def __default__(self, data, children, meta):
            return getattr(_ToAst(), data)(_span_of(meta), *children)
    try:
        tree = _oracle_lark().parse(source.text)
    except UnexpectedInput:
        return False
    try:
        theirs = Oracle().transform(tree)
    except Exception:  # noqa: BLE001 — a literal the grammar lets through but the AST rejects
        with pytest.raises(CompileError):
            parse(source)
        return True
    ours = parse(source)
    assert ours == theirs and list(_with_spans(ours)) == list(_with_spans(theirs)), source.name
    return True


def _span_of(meta) -> Span:
    """A span from lark's propagated positions (the engine no longer asks lark for them)."""
    if getattr(meta, "empty", True):
        return UNKNOWN_SPAN
    return Span(meta.line, meta.column, meta.end_line, meta.end_column, meta.start_pos, meta.end_pos)


@functools.cache
def _oracle_lark():
    from importlib import resources

    from lark import Lark

    grammar = resources.files("grammar").joinpath("criteria.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=False)


# Parenthesised and nested shapes whose spans come from punctuation (lark's "container" positions).
EXTRA_TEXTS = [Source(f"extra{i}.elig", text) for i, text in enumerate([
    "",
    "# only a comment\n",
    'inclusion I1 "x": (a or b) and not (c)',
    'inclusion I1 "x": ((a)) or ((b and (c)))',
    'exclusion E2 "y" when (sex is female) fresh within 3 days: not not (a)',
    'define d "t" = (age >= 18 years) and (bili between 1 mg/dL and 2 mg/dL)',
    'trial NCT1 { title: "t" phases: [] ids: [1, -2.5, "x"] }',
    'inclusion I3 "z": 1 < inr <= 2 mg/dL',
])]


def _with_spans(value):
    """Every node of an AST with its span (which AST equality leaves out)."""
    import dataclasses
    if dataclasses.is_dataclass(value):
        yield type(value).__name__, getattr(value, "span", None)
        for f in dataclasses.fields(value):
            yield from _with_spans(getattr(value, f.name))
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _with_spans(v)


def test_parse_tables_are_kept_in_a_private_cache_and_a_bad_file_is_rebuilt(tmp_path, monkeypatch):
    """lark's tables are built once per machine and user, not once per process (~55 ms)."""
    from engine import parser

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    text = 'inclusion I1 "x": (a or b) and age >= 18 years'
    expected = parser._lark().parse(text)
    built = parser._lark.__wrapped__()
    [tables] = (tmp_path / "elig" / "grammar").iterdir()
    assert (tmp_path / "elig" / "grammar").stat().st_mode & 0o777 == 0o700
    assert built.parse(text) == expected
    written = tables.stat().st_mtime_ns
    loaded = parser._lark.__wrapped__()
    assert loaded.parse(text) == expected and not hasattr(loaded, "grammar")  # from the file, not rebuilt
    assert tables.stat().st_mtime_ns == written
    tables.write_bytes(b"not tables\n")
    assert parser._lark.__wrapped__().parse(text) == expected  # rebuilt, and the file rewritten
    assert tables.read_bytes() != b"not tables\n"


def test_parse_tables_are_not_read_from_a_directory_others_can_write(tmp_path, monkeypatch):
    from engine import parser

    (tmp_path / "elig" / "grammar").mkdir(parents=True)
    (tmp_path / "elig" / "grammar").chmod(0o777)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert parser._tables_file(parser._grammar()) is None
    assert parser._lark.__wrapped__().parse('inclusion I1 "x": a')
    assert list((tmp_path / "elig" / "grammar").iterdir()) == []
