"""The flat back end agrees with the standard compiled trial on every row, and stays inert."""

from datetime import date

import pytest
from hypothesis import given, settings, strategies as st

from engine import compile_text, load_rules
from engine.explain import verdict_of
from engine.flat import FlatFacts, flat_keys
from engine.flat_compiler import compile_flat

AS_OF = date(2026, 11, 1)
RULES = load_rules()
TRIALS = list(RULES.trials.values())
KEYS = flat_keys(TRIALS)


def _value(key: str, meaning: str):
    if key == "age":
        return st.integers(0, 100)
    if key == "sex":
        return st.sampled_from(["male", "female", "other", "unknown"])
    if meaning.startswith("positive, negative"):
        return st.sampled_from(["positive", "negative", "indeterminate"])
    if key.endswith("__days") or key.endswith("__prev_days"):
        return st.integers(0, 2500)
    if meaning.startswith("true") or meaning.startswith("true or false"):
        return st.booleans()
    return st.floats(0, 600, allow_nan=False).map(lambda x: round(x, 1))


rows = st.fixed_dictionaries({}, optional={k: st.none() | _value(k, m) for k, m in KEYS.items()})
PROGRAMS = {t.trial_id: compile_flat(t, AS_OF) for t in TRIALS}
COLUMNS = tuple(KEYS)
TABLE_PROGRAMS = {t.trial_id: compile_flat(t, AS_OF, columns=COLUMNS) for t in TRIALS}


@settings(max_examples=300, deadline=None)
@given(rows)
def test_flat_back_end_agrees_with_the_compiled_trial(row):
    for trial in TRIALS:
        want = trial.statuses(FlatFacts(row, AS_OF))
        program = PROGRAMS[trial.trial_id]
        assert program.statuses(row) == want, trial.trial_id
        assert program.verdict(row) == verdict_of(list(trial.checked.criteria), want), trial.trial_id


@settings(max_examples=200, deadline=None)
@given(rows)
def test_known_columns_give_the_same_answers(row):
    full = {k: row.get(k) for k in COLUMNS}  # one table: every row has every column, None when empty
    for trial in TRIALS:
        want = trial.statuses(FlatFacts(full, AS_OF))
        assert TABLE_PROGRAMS[trial.trial_id].statuses(full) == want, trial.trial_id


def test_no_criteria_text_reaches_the_flat_source():
    hostile = "__import__('os').system('echo pwned')"
    trial = compile_text(f'trial T1 {{ title: "{hostile}" }}\nfact x "{hostile}"\ninclusion I1 "{hostile}": x')
    program = compile_flat(trial, AS_OF)
    assert "__import__" not in program.python_source
    assert program.statuses({"x": True}) == ["met"]


@pytest.mark.parametrize("row,verdict", [({"age": 40, "liver_failure": True}, "possibly_eligible"),
                                       ({"age": 40, "liver_failure": True, "sex": "male"}, "eligible"),
                                       ({"age": 90, "liver_failure": True}, "ineligible")])
def test_a_seed_trial_on_a_sparse_row(row, verdict):
    assert PROGRAMS["NCT06984497"].verdict(row) == verdict
