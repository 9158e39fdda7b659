"""The five seed trials, compiled from rules/, at the boundaries of their criteria."""

from datetime import date

import pytest

from engine import load_rules, screen
from engine.facts import PatientFacts
from engine.interpreter import statuses as interpreted
from engine.patient import Patient
from tests.factories import aclf_patient, condition, lab, medication, qual

SEED_IDS = {"NCT06984497", "NCT06167473", "NCT06242405", "NCT01844063", "NCT05106972"}
AS_OF = date(2026, 11, 1)


@pytest.fixture(scope="module")
def rules():
    return load_rules()


def run(rules, trial_id: str, doc: dict) -> dict[str, str]:
    trial = rules.trials[trial_id]
    patient = Patient.model_validate({"id": "p", **doc})
    compiled = trial.statuses(PatientFacts(patient, AS_OF))
    assert compiled == interpreted(trial.checked, PatientFacts(patient, AS_OF))
    return dict(zip((c.key for c in trial.checked.criteria), compiled))


def test_all_seed_trials_load_without_diagnostics(rules):
    assert set(rules.trials) == SEED_IDS
    assert rules.diagnostics == []


def test_every_criterion_keeps_its_registry_text(rules):
    i6 = next(c for c in rules.trials["NCT01844063"].checked.criteria if c.key == "I6")
    assert i6.text == "TB≥171 μmol/L or ascend ≥17.1 μmol/L/per day,"
    assert rules.trials["NCT01844063"].checked.meta["enrollment"] == 210


def test_the_reference_aclf_patient_is_eligible(rules):
    result = screen(Patient.model_validate({"id": "p", **aclf_patient()}), [rules.trials["NCT01844063"]], AS_OF)
    trial = result.trials[0]
    assert trial.verdict == "eligible", [(c.key, c.status, c.explanation) for c in trial.criteria]
    assert trial.checks_for_a_person == [
        "Written consent", "Severe problems in other vital organs(e.g.the heart,renal or lungs)",
        "Severe bacteria infection", "Anticipated with difficulty of follow-up observation",
        "Other candidates who are judged to be not applicable to this study by doctors"]


def _with_labs(*labs) -> dict:
    doc = aclf_patient()
    replaced = {o["codes"][0]["code"] for o in labs} | {"1975-2"}
    doc["observations"] = [o for o in doc["observations"] if o["codes"][0]["code"] not in replaced] + list(labs)
    return doc


@pytest.mark.parametrize("meld,expected", [(16, "not_met"), (17, "met"), (30, "met"), (31, "not_met")])
def test_meld_17_to_30_inclusive(rules, meld, expected):
    recorded = {"id": "Observation/meld", "codes": [{"system": "elig", "code": "meld"}], "effective": "2026-10-31",
                "value": {"value": meld, "unit": "1"}}
    doc = aclf_patient()
    doc["observations"] = doc["observations"] + [recorded]
    assert run(rules, "NCT01844063", doc)["I8"] == expected


@pytest.mark.parametrize("inr,pta,expected", [
    (1.5, None, "met"), (1.49, None, "unknown"), (1.49, 20, "not_met"), (1.49, 20.1, "met"),
    (1.49, 40, "met"), (1.49, 40.1, "not_met"), (None, 30, "met"), (None, None, "unknown"),
])
def test_inr_or_pta(rules, inr, pta, expected):
    doc = aclf_patient()
    doc["observations"] = [o for o in doc["observations"] if o["codes"][0]["code"] != "6301-6"]
    if inr is not None:
        doc["observations"].append(lab("inr", inr, None))
    if pta is not None:
        doc["observations"].append(lab("pta", pta, "%"))
    assert run(rules, "NCT01844063", doc)["I7"] == expected


@pytest.mark.parametrize("bili,unit,expected", [(171, "umol/L", "met"), (170.9, "umol/L", "not_met"),
                                                (10, "mg/dL", "met"), (9.9, "mg/dL", "not_met")])
def test_total_bilirubin_threshold(rules, bili, unit, expected):
    code = "bilirubin_total_si" if unit == "umol/L" else "bilirubin_total"
    steady = lab(code, bili, unit, day="2026-10-28")  # two days earlier, same level: no rise
    doc = _with_labs(lab(code, bili, unit), steady)
    doc["observations"] = [o for o in doc["observations"] if o["codes"][0]["code"] != "1975-2" or unit == "mg/dL"]
    assert run(rules, "NCT01844063", doc)["I6"] == expected


def test_bilirubin_below_threshold_with_no_trend_is_unknown(rules):
    # TB < 171 but the rise per day needs a second value: the `or` cannot be decided (Kleene)
    doc = _with_labs(lab("bilirubin_total", 5, "mg/dL"))
    assert run(rules, "NCT01844063", doc)["I6"] == "unknown"


def test_pregnancy_criteria_for_a_woman_of_childbearing_potential(rules):
    woman = aclf_patient(sex="female", birth_date="1990-01-01")
    statuses = run(rules, "NCT01844063", woman)
    assert statuses["I3"] == "unknown" and statuses["E3"] == "unknown"
    woman["observations"] = woman["observations"] + [qual("hcg", False, day="2026-10-31")]
    woman["facts"] = [{"id": "Observation/bf", "name": "breastfeeding", "value": False, "date": "2026-10-31"}]
    statuses = run(rules, "NCT01844063", woman)
    assert statuses["I3"] == "met" and statuses["E3"] == "not_met"


def test_pregnancy_criteria_do_not_apply_to_a_man(rules):
    statuses = run(rules, "NCT01844063", aclf_patient())
    assert statuses["I3"] == "not_applicable" and statuses["E3"] == "not_applicable"


def test_esld_glucocorticoid_exclusion(rules):
    doc = aclf_patient(medications=[medication("rxnorm", "312617", "2026-03-01", "predniSONE 5 MG Oral Tablet")])
    assert run(rules, "NCT06984497", doc)["E6"] == "met"
    doc = aclf_patient(medications=[medication("rxnorm", "106258", "2026-03-01",
                                               "Hydrocortisone 10 MG/ML Topical Cream")])
    assert run(rules, "NCT06984497", doc)["E6"] == "not_met"


def test_decompensated_cirrhosis_trial(rules):
    doc = {"birth_date": "1975-01-01", "sex": "male",
           "conditions": [condition("icd10cm", "B18.1", onset="2010-01-01"),
                          condition("icd10cm", "K74.60", onset="2018-05-01")],
           "observations": [lab("pt", 15.0, "s", reference_high={"value": 13.5, "unit": "s"})]}
    statuses = run(rules, "NCT05106972", doc)
    assert statuses["I2"] == "met" and statuses["I5"] == "met" and statuses["E6"] == "not_met"
    doc["conditions"].append(condition("icd10cm", "K92.2", onset="2026-10-20"))
    doc["conditions"].append(condition("icd10cm", "K76.82", onset="2026-10-25"))
    statuses = run(rules, "NCT05106972", doc)
    assert statuses["E8"] == "met" and statuses["I5"] == "not_met"
