"""The rule-author commands through `elig`'s own entry point: test, fmt, explain, import, the
lint warnings of check, and the screening progress bar."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest

from engine.cli import main
from engine.toolchain import Progress

ROOT = Path(__file__).resolve().parent.parent
RULES = str(ROOT / "rules")


def test_elig_test_on_the_bundled_rules_passes_with_full_coverage(capsys):
    assert main(["test", RULES, "--strict"]) == 0
    out = capsys.readouterr().out
    assert out.rstrip().endswith("0 coverage gap(s)")
    assert re.search(r"\d+ (failed|xpassed|error)", out.splitlines()[-1]) is None


def test_elig_test_json(capsys):
    assert main(["test", str(ROOT / "rules" / "trials" / "NCT01844063.elig"), "--format", "json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["ok"] is True and [t["trial_id"] for t in doc["trials"]] == ["NCT01844063"]


def test_elig_test_fails_on_a_wrong_expectation(tmp_path, capsys):
    trial = tmp_path / "T1.elig"
    trial.write_text('trial T1 { }\ninclusion I1 "Adults": age >= 18 years\n', encoding="utf-8")
    (tmp_path / "T1.cases.yaml").write_text(
        'as_of: "2026-11-01"\ncases:\n  - note: child\n    patient: {id: c, birth_date: "2020-01-01"}\n'
        "    want: {I1: met}\n", encoding="utf-8")
    assert main(["test", str(trial)]) == 1
    out = capsys.readouterr().out
    assert "FAIL line 3: child" in out and "I1       want met, got not met" in out


def test_fmt_check_and_rewrite(tmp_path, capsys):
    path = tmp_path / "t.elig"
    path.write_text('trial T1 {title:"x"}\ninclusion I1 "Adults":age>=18 years # why\n', encoding="utf-8")
    assert main(["fmt", "--check", str(path)]) == 1
    assert "would reformat" in capsys.readouterr().out
    assert main(["fmt", str(path)]) == 0
    assert path.read_text(encoding="utf-8") == (
        'trial T1 {\n  title: "x"\n}\n\ninclusion I1 "Adults":\n  age >= 18 years' + " " * 26 + "# why\n")
    assert main(["fmt", "--check", str(path)]) == 0


def test_fmt_check_passes_on_the_bundled_rules(capsys):
    assert main(["fmt", "--check", RULES]) == 0
    assert capsys.readouterr().out == ""


def test_fmt_reports_syntax_errors_and_leaves_the_file(tmp_path, capsys):
    path = tmp_path / "broken.elig"
    path.write_text('inclusion I1 "x": age >=\n', encoding="utf-8")
    assert main(["fmt", str(path)]) == 1
    assert "error[syntax_error]" in capsys.readouterr().err
    assert path.read_text(encoding="utf-8") == 'inclusion I1 "x": age >=\n'


def test_explain_by_id_and_by_file(capsys):
    assert main(["explain", "NCT05106972"]) == 0
    by_id = capsys.readouterr().out
    assert by_id.startswith("# NCT05106972: Umbilical Cord")
    assert "| prothrombin time | 5902-2 | s | 14 days | E6 |" in by_id
    assert "prothrombin time more than 3 s above the upper limit of normal" in by_id
    assert "| human serum albumin infusion | medications | ATC B05AA01* | within 3 weeks | E7 |" in by_id
    assert main(["explain", str(ROOT / "rules" / "trials" / "NCT05106972.elig")]) == 0
    assert capsys.readouterr().out.split("\n", 4)[4] == by_id.split("\n", 4)[4]  # the file name line differs


def test_explain_unknown_trial(capsys):
    assert main(["explain", "NCT00000000"]) == 2
    assert "no trial 'NCT00000000'" in capsys.readouterr().err


def test_import_ctgov_to_stdout_and_file(tmp_path, capsys):
    record = str(ROOT / "tests" / "data" / "ctgov" / "NCT05106972.json")
    assert main(["import", "ctgov", record]) == 0
    text = capsys.readouterr().out
    assert "trial NCT05106972 {" in text and 'exclusion E12 "The researcher considers' in text
    out = tmp_path / "NCT05106972.elig"
    assert main(["import", "ctgov", record, "-o", str(out), "--import", "hepatology"]) == 0
    written = out.read_text(encoding="utf-8")
    assert 'import "hepatology"\n' in written and written.replace('import "hepatology"\n', "") == text
    assert main(["check", str(out), "--rules", RULES]) == 0


def test_import_ctgov_reports_a_bad_record(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text("{}", encoding="utf-8")
    assert main(["import", "ctgov", str(path)]) == 1
    assert "no protocolSection" in capsys.readouterr().err


def test_check_prints_lint_warnings(tmp_path, capsys):
    path = tmp_path / "t.elig"
    path.write_text('trial T1 { }\ninclusion I1 "x": age > 65 years and age < 18 years\n', encoding="utf-8")
    assert main(["check", str(path), "--format", "json"]) == 0  # warnings do not fail the check
    [d] = json.loads(capsys.readouterr().out)["diagnostics"]
    assert (d["code"], d["severity"], d["line"]) == ("never_met", "warning", 2)


# ---- progress bar ------------------------------------------------------------------------------

class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_and_clears():
    stream = _Terminal()
    bar = Progress(4, True, stream, width=8)
    for _ in range(4):
        bar.step()
    assert stream.getvalue().endswith("\r[########] 4/4 patients")
    bar.write("elig: cannot read a patient")
    bar.close()
    assert "\r\033[Kelig: cannot read a patient\n" in stream.getvalue()


def test_progress_for_screen(tmp_path):
    (tmp_path / "a.json").write_text("{}", encoding="utf-8")
    (tmp_path / "b.json").write_text("{}", encoding="utf-8")
    assert Progress.for_screen(tmp_path, False, _Terminal()).total == 2
    assert not Progress.for_screen(tmp_path, True, _Terminal()).enabled  # the table is the progress
    assert not Progress.for_screen(tmp_path / "a.json", False, _Terminal()).enabled  # one patient
    assert not Progress.for_screen(tmp_path, False, io.StringIO()).enabled  # not a terminal
    ndjson = tmp_path / "p.ndjson"
    ndjson.write_text("{}\n\n{}\n{}\n", encoding="utf-8")
    assert Progress.for_screen(ndjson, False, _Terminal()).total == 3


def test_progress_is_silent_when_disabled():
    stream = _Terminal()
    bar = Progress(3, False, stream)
    bar.step()
    bar.close()
    assert stream.getvalue() == ""


@pytest.mark.parametrize("argv", [["test", "--help"], ["fmt", "--help"], ["explain", "--help"], ["import", "--help"]])
def test_help(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 0


def test_language_reference_covers_vocabulary_and_diagnostics():
    """docs/language.md must name every library definition, score and diagnostic code."""
    from engine.parser import parse
    from engine.scores import SCORES
    from engine.source import Source
    from tests.test_golden_diagnostics import emitted_codes

    doc = (ROOT / "docs" / "language.md").read_text(encoding="utf-8")
    names = {item.name for lib in (ROOT / "rules" / "lib").glob("*.elig")
             for item in parse(Source(lib.name, lib.read_text(encoding="utf-8"))).items if hasattr(item, "name")}
    missing = sorted(n for n in names | set(SCORES) | emitted_codes() if f"`{n}`" not in doc)
    assert missing == []
