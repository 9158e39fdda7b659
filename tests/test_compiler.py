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
    assert "if v0 is not False or tr is not None:" in source  # v0: the value of `a and b`


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


# ---- one compiled function per shape --------------------------------------------------------

SHAPED = ('trial T{n} {{ }}\nlabs fresh within 30 days\nfact smoker "s"\nfact pregnant "p"\n'
          'inclusion I1 "adult": age >= {age} years\n'
          'exclusion E1 "risk": {fact} or not smoker\n'
          'inclusion I2 "old" when pregnant: age between {age} and 90 years\n'
          'exclusion E2 "m": manual\n')


def _patients():
    from engine.patient import Patient
    facts = [{"id": "Observation/s", "name": "smoker", "value": True, "date": "2026-10-30"},
             {"id": "Observation/p", "name": "pregnant", "value": False, "date": "2026-10-30"}]
    return [Patient(id="a", birth_date="1990-01-01", sex="female", facts=facts),
            Patient(id="b", birth_date="2001-06-01", sex="male", facts=facts[:1]),
            Patient(id="c")]


def _everything(trial, patient):
    """Statuses, verdict and trace of a compiled trial, and the interpreter's statuses and trace."""
    from engine.interpreter import evaluate
    facts = lambda: PatientFacts(patient, date(2026, 11, 1))  # noqa: E731 — fresh caches each time
    values, trace = trial.trace(facts())
    oracle_trace: dict = {}
    for c in trial.checked.criteria:
        w = evaluate(c.when, facts(), oracle_trace) if c.when is not None else True
        if c.body is not None and w is True:
            evaluate(c.body, facts(), oracle_trace)
    return {"statuses": trial.statuses(facts()), "verdict": trial.verdict(facts()), "values": values,
            "trace": trace, "oracle_statuses": interpreted(trial.checked, facts()), "oracle_trace": oracle_trace}


def test_trials_of_one_shape_share_code_but_each_keeps_its_own_constants():
    from engine.compiler import clear_shape_memo
    clear_shape_memo()
    t25 = compile_text(SHAPED.format(n=1, age=25, fact="pregnant"))
    t40 = compile_text(SHAPED.format(n=2, age=40, fact="smoker"))
    for a, b in zip(t25.bodies + t25.whens, t40.bodies + t40.whens):
        assert (a is None) == (b is None)
        if a is not None:
            assert a.__code__ is b.__code__ and a.__closure__ != b.__closure__
    assert t25.verdict.__code__ is t40.verdict.__code__
    for patient in _patients():
        for trial in (t25, t40):
            got = _everything(trial, patient)
            assert got["statuses"] == got["oracle_statuses"]
            assert got["trace"] == got["oracle_trace"]
            assert got["verdict"] == verdict_of(list(trial.checked.criteria), got["statuses"])
    # patient a (36 years old) is met by the 25-year threshold and not by the 40-year one
    a = _patients()[0]
    assert _everything(t25, a)["statuses"][0] == "met" and _everything(t40, a)["statuses"][0] == "not_met"


def test_a_cold_shape_memo_gives_the_same_trials_as_a_warm_one(example_patients):
    from engine.compiler import clear_shape_memo
    warm = load_rules()
    clear_shape_memo()
    cold = load_rules()
    for tid, trial in warm.trials.items():
        assert cold.trials[tid].python_source == trial.python_source
        for patient in example_patients + _patients():
            assert _everything(cold.trials[tid], patient) == _everything(trial, patient)


def test_python_source_names_every_constant_and_compiles():
    trial = compile_text(SHAPED.format(n=1, age=25, fact="pregnant"))
    source = trial.python_source
    assert "def crit_0(f, tr):" in source and "def when_2(f, tr):" in source and "def verdict(f):" in source
    assert "# crit_1: K0 = node " in source and "children (" in source
    compile(source, "<readable>", "exec")
