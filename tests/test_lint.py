"""Lint warnings: criteria that can never be met or never apply, and exclusions that overlap
inclusions. Each warning is checked on a minimal trial; a property test checks `never_met`
against evaluation on every age."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine import screen
from engine.checker import check
from engine.compiler import compile_checked
from engine.lint import Interval, lint
from engine.parser import parse
from engine.patient import Patient
from engine.rules import ImportResolver, check_paths
from engine.source import Source

ROOT = Path(__file__).resolve().parent.parent
HEAD = 'import "hepatology"\ntrial T1 { title: "t" }\nlabs fresh within 7 days\n'


def _checked(body: str):
    source = Source("t.elig", HEAD + body)
    trial, _warnings = check(source, parse(source), ImportResolver(ROOT / "rules"))
    return trial


def _lint(body: str) -> list[tuple[str, str]]:
    return [(d.code, d.message) for d in lint(_checked(body))]


@pytest.mark.parametrize("body", [
    'inclusion I1 "x": age >= 65 years and age < 18 years',
    'inclusion I1 "x": age > 17 years and age < 18 years',  # no whole number of years
    'inclusion I1 "x": bilirubin_total > 300 umol/L and bilirubin_total < 10 mg/dL',  # 171 umol/L
    'inclusion I1 "x": hbsag is positive and hbsag is negative',
    'inclusion I1 "x": sex is female and sex is male',
    'inclusion I1 "x": has cirrhosis and not has cirrhosis',
    'inclusion I1 "x": meld >= 30 and (meld < 10 or meld < 20)',
    'inclusion I1 "x": age >= 18 years and not age >= 18 years',
    'exclusion E1 "x": inr > 2 and not inr > 1.5',
])
def test_never_met(body):
    assert _lint(body) == [("never_met", "I1 can never be met" if "inclusion" in body else "E1 can never be met")]


@pytest.mark.parametrize("body", [
    'inclusion I1 "x": age >= 18 years and age <= 18 years',
    'inclusion I1 "x": age > 17 years and age < 19 years',
    'inclusion I1 "x": bilirubin_total > 100 umol/L and bilirubin_total < 10 mg/dL',
    'inclusion I1 "x": hbsag is positive or hbsag is negative',
    'inclusion I1 "x": not hbsag is positive and not hbsag is negative',  # indeterminate is neither
    'inclusion I1 "x": inr > 2 and not (inr > 1.5 and pta > 50 %)',
    'inclusion I1 "x": had cirrhosis within 1 year and not had cirrhosis within 1 month',
])
def test_satisfiable_bodies_are_not_flagged(body):
    assert _lint(body) == []


def test_never_applies():
    assert _lint('inclusion I1 "x" when sex is female and age < 10 years and age > 60 years: inr >= 1.5') == [
        ("never_applies", "I1 never applies: its `when` condition can never hold")]


def test_details_name_each_contradiction():
    [d] = lint(_checked('inclusion I1 "x": hbsag is positive and (hbsag is negative or not hbsag is positive)'))
    assert d.details == ("hbsag is positive and hbsag is negative cannot both hold",
                         "hbsag is positive and not hbsag is positive cannot both hold")


@pytest.mark.parametrize("inclusion, exclusion", [
    ("has cirrhosis", "had cirrhosis"),
    ("has cirrhosis for more than 5 years", "has cirrhosis"),
    ("had interferon within 3 weeks", "had interferon within 1 year"),
    ("inr >= 2", "inr > 1.5"),
    ("age between 18 and 65 years", "age >= 18 years"),
    ("has cirrhosis and inr >= 1.5", "had cirrhosis"),
    ("hbsag is positive", "hbsag is positive or has hiv"),
    ("sex is female and age < 40 years", "not sex is male"),
])
def test_exclusion_implied_by_an_inclusion(inclusion, exclusion):
    found = _lint(f'inclusion I1 "a": {inclusion}\nexclusion E1 "b": {exclusion}')
    assert found == [("overlapping_criteria", "every patient who meets I1 is excluded by E1")]


def test_exclusion_implied_with_when_conditions():
    body = ('inclusion I1 "a" when sex is female: hcg is positive\n'
            'exclusion E1 "b" when sex is female: hcg is positive or breastfeeding')
    assert [c for c, _ in _lint(body)] == ["overlapping_criteria"]


@pytest.mark.parametrize("inclusion, exclusion, shared", [
    ("age between 18 and 80 years", "age > 75 years", "age >= 76 and <= 80 years meets both"),
    ("bilirubin_total >= 171 umol/L", "bilirubin_total > 500 umol/L", "bilirubin_total > 500 umol/L meets both"),
    ("had liver_failure", "had liver_failure within 4 weeks", "both test records of liver failure"),
])
def test_partial_overlap_of_single_tests(inclusion, exclusion, shared):
    found = _lint(f'inclusion I1 "a": {inclusion}\nexclusion E1 "b": {exclusion}')
    assert found == [("overlapping_criteria", f"E1 excludes part of what I1 admits: {shared}")]


@pytest.mark.parametrize("inclusion, exclusion", [
    (': age between 20 and 60 years', ': age < 20 years or age > 60 years'),  # complementary: fine
    (': inr >= 1.5 or pta < 40 %', ': inr > 3'),  # the inclusion can be met without the exclusion
    (': has chronic_hepatitis_b', ': had hepatitis_c'),
    (' when sex is female: hcg is negative', ' when sex is female: hcg is positive'),
])
def test_ordinary_exclusions_are_not_flagged(inclusion, exclusion):
    assert _lint(f'inclusion I1 "a"{inclusion}\nexclusion E1 "b"{exclusion}') == []


def test_bundled_rules_have_no_lint_warnings():
    diagnostics, files = check_paths([ROOT / "rules"], ROOT / "rules")
    assert len(files) >= 6
    assert [d.render() for d in diagnostics] == []


def test_check_paths_reports_lint_warnings(tmp_path):
    path = tmp_path / "t.elig"
    path.write_text(HEAD + 'inclusion I1 "x": age >= 65 years and age < 18 years\n', encoding="utf-8")
    diagnostics, _files = check_paths([path], ROOT / "rules")
    assert [(d.code, d.severity) for d in diagnostics] == [("never_met", "warning")]


def test_interval_text_and_containment():
    assert str(Interval(1, True, 2, False)) == ">= 1 and < 2"
    assert Interval(2, True, 3, True).within(Interval(1, False))
    assert not Interval(1, True).within(Interval(1, False))


# ---- soundness and completeness on age, against evaluation ----------------------------------

_OPS = st.sampled_from([">=", ">", "<=", "<", "="])
_AGE_TEST = st.tuples(_OPS, st.integers(0, 90)).map(lambda t: f"age {t[0]} {t[1]} years")


@settings(max_examples=60, deadline=None)
@given(st.lists(_AGE_TEST, min_size=2, max_size=3), st.booleans())
def test_never_met_agrees_with_evaluation_on_every_age(tests, negate_last):
    if negate_last:
        tests = [*tests[:-1], f"not {tests[-1]}"]
    trial = _checked(f'inclusion I1 "x": {" and ".join(tests)}\n')
    compiled = compile_checked(trial)
    as_of = date(2026, 11, 1)
    met = any(screen(Patient(id="p", birth_date=f"{2026 - age}-01-01"), [compiled], as_of).trials[0].criteria[0].status
              == "met" for age in range(0, 100))
    flagged = any(d.code == "never_met" for d in lint(trial))
    assert flagged == (not met)
