"""Flat facts: a flat mapping screened by the compiled trials gives the same statuses, verdicts
and explanations as `PatientFacts` over the equivalent `Patient` record."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest

from engine import ir
from engine.explain import explain_trial
from engine.facts import PatientFacts, code_set_matcher
from engine.flat import FlatFacts, flat_keys
from engine.patient import Patient
from engine.rules import load_rules

AS_OF = date(2026, 11, 1)
RULES = load_rules()
TRIALS = list(RULES.trials.values())


def _vocabulary(trials):
    """Analytes, score names, code sets and facts the trials read."""
    analytes, scores, code_sets, facts = {}, set(), {}, {"on_dialysis"}
    for t in trials:
        for c in t.checked.criteria:
            for root in (c.when, c.body):
                for node in ir.walk(root) if root is not None else ():
                    if isinstance(node, (ir.LabTest, ir.UlnTest, ir.RisingTest, ir.QualTest)):
                        analytes[node.analyte.name] = node.analyte
                    elif isinstance(node, ir.ScoreTest):
                        scores.add(node.score)
                        analytes.update((a.name, a) for a in node.inputs)
                    elif isinstance(node, ir.RecordTest):
                        code_sets[node.codes.name] = node.codes
                    elif isinstance(node, ir.FactTest):
                        facts.add(node.name)
    return analytes, scores, code_sets, facts


ANALYTES, SCORES, CODE_SETS, FACTS = _vocabulary(TRIALS)
QUANTITATIVE_RANGE = {"bilirubin_total": (5, 600), "creatinine": (40, 400), "inr": (0.8, 4.0), "pta": (5, 100),
                      "sodium": (120, 150), "pt": (10, 25), "albumin": (15, 50)}


def _code_for(codes: ir.CodeSetInfo) -> tuple[str, str]:
    if codes.exact:
        return sorted(codes.exact)[0]
    if codes.prefixes:
        return sorted(codes.prefixes)[0]
    if not codes.ranges:
        return "local", codes.name
    system, lo, _hi = codes.ranges[0]
    return system, lo


def random_patient(rng: random.Random, n: int) -> tuple[dict, Patient]:
    """A flat mapping and the equivalent patient record, built together."""
    flat: dict = {"id": f"p{n}"}
    doc: dict = {"id": f"p{n}", "observations": [], "conditions": [], "medications": [], "procedures": [],
                 "trials": [], "facts": []}
    day = lambda days: (AS_OF - timedelta(days=days)).isoformat()  # noqa: E731
    if rng.random() < 0.9:
        age = rng.randint(5, 90)
        flat["age"] = age
        doc["birth_date"] = date(AS_OF.year - age, AS_OF.month, AS_OF.day).isoformat()
    sex = rng.choice(["male", "female", "female", "other", "unknown", None])
    if sex is not None:
        flat["sex"] = doc["sex"] = sex
    for name, analyte in ANALYTES.items():
        if rng.random() < 0.2:
            continue
        days = rng.choice([0, 0, 1, 3, 10, 20, 400])
        code = {"system": "loinc", "code": analyte.loinc[0]}
        obs = {"id": f"Observation/{name}-2", "codes": [code], "effective": day(days)}
        if analyte.kind == "qualitative":
            word = rng.choice(["positive", "negative", "negative", "indeterminate"])
            flat[name] = word
            obs["value_text"] = word
        else:
            lo, hi = QUANTITATIVE_RANGE.get(name, (0, 100))
            value = round(rng.uniform(lo, hi), 1)
            flat[name] = value
            obs["value"] = {"value": value, "unit": analyte.unit}
            if rng.random() < 0.7:
                uln = round(rng.uniform(lo, hi), 1)
                flat[name + "__uln"] = uln
                obs["reference_high"] = {"value": uln, "unit": analyte.unit}
            if rng.random() < 0.6:
                prev_days = days + rng.choice([0, 1, 2, 5, 9])
                prev = round(rng.uniform(lo, hi), 1)
                flat[name + "__prev"], flat[name + "__prev_days"] = prev, prev_days
                doc["observations"].append({"id": f"Observation/{name}-1", "codes": [code], "effective": day(prev_days),
                                            "value": {"value": prev, "unit": analyte.unit}})
        if days:
            flat[name + "__days"] = days
        doc["observations"].append(obs)
    for score in SCORES:
        if rng.random() < 0.5:
            value = round(rng.uniform(6, 40))
            flat[score] = value
            doc["observations"].append({"id": f"Observation/{score}", "codes": [{"system": "elig", "code": score}],
                                        "effective": day(0), "value": {"value": value, "unit": "1"}})
    # Records: pick some code sets, give each a record coded to match it, then set every flag from
    # what the records actually match (code sets overlap: C22.0 is also a malignancy).
    records = []
    for name, codes in CODE_SETS.items():
        if rng.random() < 0.25:
            system, code = _code_for(codes)
            days = rng.choice([None, 3, 20, 200, 400, 3000])
            if codes.kind == "conditions":
                item = {"id": f"Condition/{name}", "codes": [{"system": system, "code": code}],
                        "clinical_status": "active", "onset": None if days is None else day(days)}
                doc["conditions"].append(item)
            elif codes.kind == "medications":
                item = {"id": f"Medication/{name}", "codes": [{"system": system, "code": code}], "status": "active",
                        "route": "oral", "start": None if days is None else day(days)}
                doc["medications"].append(item)
            elif codes.kind == "trials":
                item = {"id": f"ResearchSubject/{name}", "study": name, "status": "on-study",
                        "start": None if days is None else day(days)}
                doc["trials"].append(item)
            else:
                continue
            records.append((codes.kind, item, days))
    patient = Patient.model_validate(doc)

    def _matches(record, codes) -> bool:
        return codes.kind == "trials" or code_set_matcher(codes)(tuple((c.system, c.code) for c in record.codes))

    kinds = {"conditions": patient.conditions, "medications": patient.medications, "trials": patient.trials}
    for name, codes in CODE_SETS.items():
        matching = [days for kind, item, days in records if kind == codes.kind
                    and _matches(next(r for r in kinds[kind] if r.id == item["id"]), codes)]
        if matching:
            flat[name] = True
            dated = [d for d in matching if d is not None]
            if dated and len(dated) == len(matching):
                flat[name + "__days"] = max(dated)
        elif rng.random() < 0.5:
            flat[name] = False
    for name in FACTS:
        if rng.random() < 0.5:
            value, days = rng.random() < 0.4, rng.choice([0, 5, 60])
            flat[name] = value
            if days:
                flat[name + "__days"] = days
            patient.facts.append(_fact(name, value, day(days)))
    return flat, patient


def _fact(name, value, when):
    from engine.patient import Fact
    return Fact(id=f"Fact/{name}", name=name, value=value, date=when)


def test_same_statuses_and_verdicts_as_patient_facts():
    rng = random.Random(20261101)
    seen = {"met": 0, "not_met": 0, "unknown": 0, "not_applicable": 0}
    verdicts = set()
    for n in range(400):
        flat, patient = random_patient(rng, n)
        ff, pf = FlatFacts(flat, AS_OF), PatientFacts(patient, AS_OF)
        for trial in TRIALS:
            expected = trial.statuses(pf)
            assert trial.statuses(ff) == expected, (trial.trial_id, flat)
            assert trial.verdict(FlatFacts(flat, AS_OF)) == trial.verdict(PatientFacts(patient, AS_OF))
            verdicts.add(trial.verdict(ff))
            for s in expected:
                if s in seen:
                    seen[s] += 1
    assert all(seen.values()), seen  # the sample exercises every status
    assert verdicts == {"eligible", "possibly_eligible", "ineligible"}


def test_explanations_agree_with_patient_facts():
    rng = random.Random(7)
    for n in range(60):
        flat, patient = random_patient(rng, n)
        for trial in TRIALS:
            got = explain_trial(trial, FlatFacts(flat, AS_OF))
            want = explain_trial(trial, PatientFacts(patient, AS_OF))
            assert got.verdict == want.verdict
            assert [c.status for c in got.criteria] == [c.status for c in want.criteria]
            assert all(c.explanation for c in got.criteria)


def test_missing_values_are_unknown_and_absent_records_are_not_met():
    trial = RULES.trials["NCT01844063"]
    statuses = dict(zip((c.key for c in trial.checked.criteria), trial.statuses(FlatFacts({}, AS_OF))))
    assert statuses["I1"] == "unknown"  # no age
    assert statuses["I5"] == "unknown"  # no HBsAg
    assert statuses["I8"] == "unknown"  # no MELD and no inputs to compute it
    assert statuses["I2"] == "not_met"  # no record of liver failure
    assert statuses["E1"] == "not_met"
    assert statuses["E3"] == "unknown"  # sex not recorded: the condition is unknown


def test_stale_values_do_not_count():
    trial = RULES.trials["NCT01844063"]
    keys = [c.key for c in trial.checked.criteria]
    fresh = dict(zip(keys, trial.statuses(FlatFacts({"inr": 2.0}, AS_OF))))
    stale = dict(zip(keys, trial.statuses(FlatFacts({"inr": 2.0, "inr__days": 8}, AS_OF))))
    assert fresh["I7"] == "met" and stale["I7"] == "unknown"


def test_meld_is_computed_from_inputs_when_not_given():
    trial = RULES.trials["NCT01844063"]
    keys = [c.key for c in trial.checked.criteria]
    # bilirubin 15 mg/dL, creatinine 1.5 mg/dL, INR 2.0: MELD 28 (as in tests/factories.aclf_patient)
    flat = {"bilirubin_total": 15 * 17.104, "creatinine": 1.5 * 88.42, "inr": 2.0}
    statuses = dict(zip(keys, trial.statuses(FlatFacts(flat, AS_OF))))
    assert statuses["I8"] == "met"


def test_flat_keys_lists_what_a_trial_reads():
    keys = flat_keys([RULES.trials["NCT01844063"]])
    for name in ("age", "sex", "hbsag", "bilirubin_total", "bilirubin_total__prev", "inr", "pta", "meld",
                 "liver_failure", "malignancy", "pregnant", "breastfeeding"):
        assert name in keys
    assert "umol/L" in keys["bilirubin_total"]


@pytest.mark.parametrize("birth", ["1980-06-15", "1980", "1980-11"])
def test_birth_date_gives_the_same_age_as_patient_facts(birth):
    pf = PatientFacts(Patient(id="p", birth_date=birth), AS_OF)
    ff = FlatFacts({"birth_date": birth}, AS_OF)
    for unit in ("year", "month"):
        assert ff.age_range(unit) == pf.age_range(unit)
