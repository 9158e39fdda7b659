"""Rule tests (`engine/cases.py`): cases files are read strictly, failures show the criterion,
want, got and the explanation, xfail works both ways, and coverage finds undecided criteria."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine import cases

ROOT = Path(__file__).resolve().parent.parent
TRIAL = '''trial T1 {
  title: "A small trial"
}

labs fresh within 7 days

analyte inr "INR" {
  loinc "6301-6"
  unit 1
}

inclusion I1 "Adults":
  age >= 18 years

inclusion I2 "INR at least 1.5":
  inr >= 1.5

inclusion I3 "Consent":
  manual "signed consent"
'''
ADULT = {"id": "p", "birth_date": "1980-01-01", "sex": "male"}
INR = {"id": "Observation/inr", "codes": [{"system": "loinc", "code": "6301-6"}], "effective": "2026-10-30",
       "value": {"value": 1.9, "unit": "{INR}"}}


def _write(tmp_path: Path, cases_yaml: str | None, trial: str = TRIAL) -> Path:
    folder = tmp_path / "trials"
    folder.mkdir(exist_ok=True)
    path = folder / "T1.elig"
    path.write_text(trial, encoding="utf-8")
    if cases_yaml is not None:
        (folder / "T1.cases.yaml").write_text(cases_yaml, encoding="utf-8")
    return path


def _run(tmp_path, cases_yaml, trial=TRIAL) -> cases.TrialReport:
    return cases.run_trial(_write(tmp_path, cases_yaml, trial))


def _case(patient: dict, want: dict, **extra) -> dict:
    return {"note": "a case", "patient": patient, "want": want, **extra}


def _yaml(*items, **top) -> str:
    return json.dumps({"as_of": "2026-11-01", **top, "cases": list(items)})  # JSON is YAML


def test_passing_cases_and_coverage(tmp_path):
    report = _run(tmp_path, _yaml(
        _case({**ADULT, "observations": [INR]}, {"I1": "met", "I2": "met", "I3": "manual"}, want_verdict="eligible"),
        _case({**ADULT, "birth_date": "2015-01-01"}, {"I1": "not_met", "I2": "unknown"})))
    assert report.ok and [r.outcome for r in report.results] == ["passed", "passed"]
    seen = {row.key: dict(row.seen) for row in report.coverage}
    assert seen == {"I1": {"met": 1, "not_met": 1}, "I2": {"met": 1, "unknown": 1}, "I3": {"manual": 1}}
    gaps = {row.key: row.gaps(strict=True) for row in report.coverage}
    assert gaps == {"I1": [], "I2": ["never not met"], "I3": []}
    assert cases.succeeded([report]) and not cases.succeeded([report], strict=True)


def test_a_failure_names_criterion_want_got_and_explanation(tmp_path):
    report = _run(tmp_path, _yaml(_case(ADULT, {"I2": "met"}, want_verdict="eligible")))
    [result] = report.results
    assert result.outcome == "failed"
    verdict, i2 = result.mismatches
    assert (verdict.key, verdict.want, verdict.got) == ("verdict", "eligible", "possibly_eligible")
    assert (i2.key, i2.want, i2.got) == ("I2", "met", "unknown")
    assert "no INR result on record" in i2.explanation
    assert i2.missing == ["INR (LOINC 6301-6) within 7 days"]
    text = cases.render([report])
    assert "  FAIL line 1: a case" in text  # the JSON-as-YAML file is one line
    assert "    I2       want met, got unknown" in text
    assert "needs: INR (LOINC 6301-6) within 7 days" in text


def test_xfail_and_xpass(tmp_path):
    report = _run(tmp_path, _yaml(_case(ADULT, {"I2": "met"}, xfail="engine bug #1"),
                                  _case(ADULT, {"I1": "met"}, xfail="fixed since")))
    assert [r.outcome for r in report.results] == ["xfailed", "xpassed"]
    assert not report.ok
    assert "marked xfail (fixed since) but now passes: remove the xfail" in cases.render([report])


def test_patient_file_is_relative_to_the_cases_file(tmp_path):
    (tmp_path / "patients").mkdir()
    (tmp_path / "patients" / "adult.json").write_text(json.dumps({**ADULT, "observations": [INR]}), encoding="utf-8")
    report = _run(tmp_path, _yaml({"note": "from a file", "patient_file": "../patients/adult.json",
                                   "want": {"I2": "met"}}))
    assert [r.outcome for r in report.results] == ["passed"]


def test_fhir_patient_files_are_read(tmp_path):
    example = ROOT / "examples" / "aclf_hbv_eligible.fhir.json"
    report = _run(tmp_path, _yaml({"note": "FHIR", "patient_file": str(example), "want": {"I1": "met", "I2": "met"}}))
    assert [r.outcome for r in report.results] == ["passed"]


@pytest.mark.parametrize("case, message", [
    (_case(ADULT, {"I9": "met"}), "no criterion I9 in T1 (it has I1, I2, I3)"),
    ({"note": "x", "patient_file": "missing.json", "want": {}}, "No such file"),
    (_case({"id": "p", "birth_date": "soon"}, {}), "patient: birth_date"),
])
def test_case_errors_are_reported_not_raised(tmp_path, case, message):
    [result] = _run(tmp_path, _yaml(case)).results
    assert result.outcome == "error" and message in result.error


def test_as_of_is_required(tmp_path):
    doc = json.dumps({"cases": [_case(ADULT, {})]})
    [result] = _run(tmp_path, doc).results
    assert "no `as_of` screening date" in result.error


def test_yaml_dates_stay_text(tmp_path):
    text = ("as_of: 2026-11-01\ncases:\n  - note: dates\n    patient: {id: p, birth_date: 1980-01-01}\n"
            "    want: {I1: met}\n")
    [result] = _run(tmp_path, text).results
    assert (result.outcome, result.line) == ("passed", 3)


@pytest.mark.parametrize("text, message", [
    ("cases: [", "not valid YAML"),
    ("cases: [{note: x, want: {}}]", "exactly one of `patient`"),
    ("cases: [{note: x, patient: {id: p}, want: {I1: yes}}]", "cases.0.want.I1"),
    ("cases: []\nextra: 1", "extra"),
    ("trial: T2\ncases: []", "written for T2, but the trial file is T1"),
])
def test_unreadable_cases_files(tmp_path, text, message):
    report = _run(tmp_path, text)
    assert report.error is not None and message in report.error and not report.ok


def test_a_trial_without_cases_is_an_error_and_every_criterion_a_gap(tmp_path):
    report = _run(tmp_path, None)
    assert "no cases for T1: write" in report.error
    assert [row.key for row in report.coverage if row.gaps()] == ["I1", "I2"]


def test_a_trial_that_does_not_compile(tmp_path):
    report = _run(tmp_path, _yaml(), trial='trial T1 { }\ninclusion I1 "x": has nothing_here\n')
    assert "does not compile" in report.error and "unknown_name" in report.error


def test_find_trials(tmp_path):
    path = _write(tmp_path, _yaml())
    (tmp_path / "trials" / "lib.elig").write_text('fact f "a fact"\n', encoding="utf-8")
    assert cases.find_trials([tmp_path]) == [path]
    assert cases.find_trials([path.with_name("T1.cases.yaml")]) == [path]


def test_json_report(tmp_path):
    report = _run(tmp_path, _yaml(_case(ADULT, {"I2": "met"})))
    doc = cases.to_json([report])
    assert doc["ok"] is False
    assert doc["trials"][0]["cases"][0]["mismatches"][0]["key"] == "I2"
    json.dumps(doc)


def test_bundled_trials_pass_with_every_criterion_covered_both_ways():
    reports = [cases.run_trial(t) for t in cases.find_trials([ROOT / "rules"])]
    assert len(reports) == 5
    problems = [(r.trial_id, row.key, row.gaps(strict=True))
                for r in reports for row in r.coverage if row.gaps(strict=True)]
    failures = [(r.trial_id, x.note, x.outcome)
                for r in reports for x in r.results if x.outcome not in ("passed", "xfailed")]
    assert (problems, failures, [r.error for r in reports if r.error]) == ([], [], [])


def test_a_library_is_not_a_trial(tmp_path):
    path = tmp_path / "lib.elig"
    path.write_text('fact f "a fact"\n', encoding="utf-8")
    assert "is not a trial file" in cases.run_trial(path).error
