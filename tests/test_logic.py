"""Three-valued logic: truth tables, Kleene laws, and compiled code against the interpreter.

Formulas are written in the criteria language over declared yes/no facts, so each leaf can be
true, false or unknown (not recorded) at will; hypothesis generates the formulas and records.
"""

from datetime import date
from itertools import product

from hypothesis import given, settings, strategies as st

from engine import compile_text
from engine.facts import PatientFacts
from engine.interpreter import statuses as interpreted
from engine.patient import Patient
from engine.tri import and3, not3, or3

T, F, U = True, False, None
VALUES = (T, F, U)
FACTS = ("a", "b", "c", "d")
DECLS = "\n".join(f'fact {n} "{n}"' for n in FACTS)


# ---- truth tables (cql-execution's TT, TF, TU …) --------------------------------------------------

def test_and_truth_table():
    expected = {(T, T): T, (T, F): F, (T, U): U, (F, T): F, (F, F): F, (F, U): F, (U, T): U, (U, F): F, (U, U): U}
    assert {(x, y): and3([x, y]) for x, y in product(VALUES, VALUES)} == expected


def test_or_truth_table():
    expected = {(T, T): T, (T, F): T, (T, U): T, (F, T): T, (F, F): F, (F, U): U, (U, T): T, (U, F): U, (U, U): U}
    assert {(x, y): or3([x, y]) for x, y in product(VALUES, VALUES)} == expected


def test_not_truth_table():
    assert [not3(v) for v in VALUES] == [F, T, U]


# ---- formulas in the language -------------------------------------------------------------------

formulas = st.recursive(
    st.sampled_from(FACTS),
    lambda inner: st.one_of(
        st.builds(lambda x: f"not {x}", inner),
        st.builds(lambda x, y: f"({x} and {y})", inner, inner),
        st.builds(lambda x, y: f"({x} or {y})", inner, inner),
    ),
    max_leaves=8,
)
assignments = st.fixed_dictionaries({n: st.sampled_from(VALUES) for n in FACTS})


def _compile(*bodies: str):
    criteria = "\n".join(f'inclusion I{i + 1} "c{i}": {b}' for i, b in enumerate(bodies))
    return compile_text(f'trial T1 {{ }}\nlabs fresh within 30 days\n{DECLS}\n{criteria}')


def _facts(assignment: dict) -> PatientFacts:
    facts = [{"id": f"Observation/{n}", "name": n, "value": v, "date": "2026-10-30"}
             for n, v in assignment.items() if v is not None]
    return PatientFacts(Patient(id="p", facts=facts), date(2026, 11, 1))




STATUS = {"met": T, "not_met": F, "unknown": U}


@settings(max_examples=150, deadline=None)
@given(formulas, assignments)
def test_compiled_code_agrees_with_the_interpreter(formula, assignment):
    trial = _compile(formula)
    assert trial.statuses(_facts(assignment)) == interpreted(trial.checked, _facts(assignment))


@settings(max_examples=100, deadline=None)
@given(formulas, formulas, assignments)
def test_de_morgan(x, y, assignment):
    trial = _compile(f"not ({x} and {y})", f"(not {x}) or (not {y})", f"not ({x} or {y})", f"(not {x}) and (not {y})")
    s = trial.statuses(_facts(assignment))
    assert s[0] == s[1] and s[2] == s[3]


@settings(max_examples=100, deadline=None)
@given(formulas, assignments)
def test_double_negation_and_excluded_middle_is_not_assumed(x, assignment):
    trial = _compile(f"not not {x}", x, f"{x} or not {x}")
    s = trial.statuses(_facts(assignment))
    assert s[0] == s[1]
    assert s[2] in ("met", "unknown")  # never not met; unknown when x is unknown (Kleene, not classical)


@settings(max_examples=150, deadline=None)
@given(formulas, assignments, st.data())
def test_an_unknown_replaced_by_a_value_never_flips_a_decided_result(formula, assignment, data):
    trial = _compile(formula)
    before = STATUS[trial.statuses(_facts(assignment))[0]]
    refined = {n: (data.draw(st.sampled_from((T, F))) if v is None else v) for n, v in assignment.items()}
    after = STATUS[trial.statuses(_facts(refined))[0]]
    if before is not None:
        assert after == before


@settings(max_examples=60, deadline=None)
@given(formulas, assignments)
def test_verdict_fast_path_matches_the_statuses(formula, assignment):
    from engine.explain import verdict_of
    trial = _compile(formula, "a or b")
    facts = _facts(assignment)
    assert trial.verdict(facts) == verdict_of(list(trial.checked.criteria), trial.statuses(_facts(assignment)))
