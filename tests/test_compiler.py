"""Compiler: generated code is built from the checked tree only, and agrees with the interpreter."""

import json
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from engine import compile_text, load_rules
from engine.explain import verdict_of
from engine.facts import PatientFacts
from engine.interpreter import statuses as interpreted
from engine.load import iter_patients

ROOT = Path(__file__).resolve().parents[1]


def test_criteria_text_never_reaches_the_generated_source():
    hostile = "__import__('os').system('echo pwned') \\\" + exit() + \\\""
    trial = compile_text(f'trial T1 {{ title: "{hostile}" }}\nfact x "{hostile}"\n'
                         f'inclusion I1 "{hostile}": x\nexclusion E1 "{hostile}": manual "{hostile}"')
    assert "__import__" not in trial.python_source and "exit" not in trial.python_source
    assert trial.checked.criteria[0].text.startswith("__import__")
    assert "'" not in trial.python_source.replace("'met'", "").replace("'not_met'", "").replace(
        "'unknown'", "").replace("'not_applicable'", "").replace("'manual'", "").replace(
        "'ineligible'", "").replace("'possibly_eligible'", "").replace("'eligible'", "")


def test_generated_code_has_no_builtins():
    trial = compile_text('trial T1 { }\nfact x "x"\ninclusion I1 "a": x')
    assert trial.verdict.__globals__["__builtins__"] == {}


def test_short_circuit_skips_work_but_tracing_evaluates_every_child():
    trial = compile_text('trial T1 { }\nfact a "a"\nfact b "b"\ninclusion I1 "x": a and b')
    source = trial.python_source
    assert "if v3 is not False or tr is not None:" in source  # `a and b` is node 3


@pytest.fixture(scope="module")
def example_patients():
    return [p.patient for p in iter_patients(ROOT / "examples")]


def test_compiled_and_interpreted_agree_on_every_example_and_trial(example_patients):
    rules = load_rules()
    for patient in example_patients:
        for trial in rules.trials.values():
            compiled = trial.statuses(PatientFacts(patient, date(2026, 11, 1)))
            assert compiled == interpreted(trial.checked, PatientFacts(patient, date(2026, 11, 1)))
            assert trial.verdict(PatientFacts(patient, date(2026, 11, 1))) == verdict_of(
                list(trial.checked.criteria), compiled)


def test_traced_evaluation_gives_the_same_statuses_as_the_fast_path(example_patients):
    """Leaves have a no-trace fast path; explanations must never disagree with it."""
    from engine.explain import checked_statuses
    rules = load_rules()
    for patient in example_patients:
        for trial in rules.trials.values():
            values, _trace = trial.trace(PatientFacts(patient, date(2026, 11, 1)))
            assert checked_statuses(trial.checked, values) == trial.statuses(PatientFacts(patient, date(2026, 11, 1)))


def test_same_input_same_output():
    cmd = [sys.executable, "-m", "engine.cli", "screen", str(ROOT / "examples"), "--as-of", "2026-11-01", "--json"]
    first = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True).stdout
    second = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert first == second
    doc = json.loads(first)
    criterion = doc["patients"][0]["trials"][0]["criteria"][0]
    assert {"key", "kind", "text", "status", "explanation", "evidence", "missing"} <= set(criterion)


def test_missing_files_give_one_line_not_a_traceback(tmp_path, capsys):
    from engine.cli import main
    missing = str(tmp_path / "nope.elig")
    for argv in (["check", missing], ["fmt", missing]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.startswith("elig: ") and "No such file" in err and "Traceback" not in err
