"""FHIR ingestion: each mapping rule on a small hand-written bundle, then the Synthea samples,
the example patients, and a property test that malformed input never escapes as a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from engine.fhir import FhirError, IngestResult, bundle_to_patient, looks_like_fhir
from engine.patient import Patient

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = Path(__file__).resolve().parents[2] / "shared" / "data" / "fhir-samples"
EXAMPLES = ROOT / "examples"

PID = "p1"
PATIENT = {"resourceType": "Patient", "id": PID, "gender": "male", "birthDate": "1980-02-03"}
LOINC_INR = {"coding": [{"system": "http://loinc.org", "code": "6301-6", "display": "INR"}]}
SUBJECT = {"reference": f"urn:uuid:{PID}"}


def bundle(*resources: dict, patient: dict | None = PATIENT, kind: str = "collection") -> dict:
    """A Bundle whose entries have urn:uuid fullUrls built from their ids."""
    res = ([patient] if patient else []) + list(resources)
    entries = [{"fullUrl": f"urn:uuid:{r['id']}", "resource": r} if "id" in r else {"resource": r} for r in res]
    return {"resourceType": "Bundle", "type": kind, "entry": entries}


def obs(rid: str = "o1", **fields) -> dict:
    return {"resourceType": "Observation", "id": rid, "status": "final", "code": LOINC_INR,
            "subject": SUBJECT, "effectiveDateTime": "2026-10-01T08:00:00+08:00", **fields}


def condition(rid: str = "c1", clinical: str = "active", verification: str = "confirmed", **fields) -> dict:
    return {"resourceType": "Condition", "id": rid, "subject": SUBJECT,
            "clinicalStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
                                           "code": clinical}]},
            "verificationStatus": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
                                               "code": verification}]},
            "code": {"coding": [{"system": "http://hl7.org/fhir/sid/icd-10-cm", "code": "C22.0"}]}, **fields}


def rxnorm(code: str, display: str) -> dict:
    return {"coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": code, "display": display}],
            "text": display}


def local_drug(display: str) -> dict:
    """A drug under a local code (no system), so that no RxNorm code has to be made up."""
    return {"coding": [{"code": "local-drug", "display": display}]}


PREDNISONE = rxnorm("312617", "predniSONE 5 MG Oral Tablet")
HYDROCORTISONE_CREAM = rxnorm("106258", "Hydrocortisone 10 MG/ML Topical Cream")


def med_request(rid: str = "m1", **fields) -> dict:
    return {"resourceType": "MedicationRequest", "id": rid, "status": "active", "intent": "order",
            "subject": SUBJECT, **fields}


def ingest(*resources: dict, **kw) -> IngestResult:
    return bundle_to_patient(bundle(*resources), **kw)


def lines(result: IngestResult) -> list[str]:
    return result.lines()


# ---------------------------------------------------------------- document shape


def test_bare_patient_resource_is_read():
    result = bundle_to_patient({**PATIENT, "deceasedDateTime": "2020-01-01"})
    assert (result.patient.id, result.patient.sex, result.patient.birth_date) == (PID, "male", "1980-02-03")
    assert result.patient.deceased is True


def test_deceased_boolean_is_kept():
    assert bundle_to_patient({**PATIENT, "deceasedBoolean": False}).patient.deceased is False


def test_looks_like_fhir():
    assert looks_like_fhir({"resourceType": "Bundle"}) and looks_like_fhir(PATIENT)
    assert not looks_like_fhir({"id": "p1", "observations": []}) and not looks_like_fhir([PATIENT])


@pytest.mark.parametrize("doc", [{"resourceType": "Observation"}, {"id": "x"}, [PATIENT], "Bundle"])
def test_not_a_bundle_raises(doc):
    with pytest.raises(FhirError):
        bundle_to_patient(doc)


def test_bundle_without_patient_raises():
    with pytest.raises(FhirError, match="no Patient"):
        bundle_to_patient(bundle(obs(), patient=None))


def test_unsupported_bundle_type_raises():
    with pytest.raises(FhirError, match="history"):
        bundle_to_patient(bundle(kind="history"))


@pytest.mark.parametrize("kind", ["collection", "searchset", "transaction", "batch"])
def test_supported_bundle_types(kind):
    assert len(bundle_to_patient(bundle(obs(), kind=kind)).patient.observations) == 1


def test_two_patients_need_a_patient_id():
    other = {"resourceType": "Patient", "id": "p2", "gender": "female"}
    nobody = obs("nobody")
    del nobody["subject"]
    doc = bundle(other, obs("mine"), obs("theirs", subject={"reference": "urn:uuid:p2"}), nobody)
    with pytest.raises(FhirError, match="2 Patient"):
        bundle_to_patient(doc)
    result = bundle_to_patient(doc, patient_id="p2")
    assert result.patient.sex == "female"
    assert [o.id for o in result.patient.observations] == ["Observation/theirs"]
    assert "Patient skipped: not the patient being screened" in lines(result)
    assert "Observation dropped: no subject in a bundle of several patients" in lines(result)
    with pytest.raises(FhirError, match="no Patient 'p9'"):
        bundle_to_patient(doc, patient_id="p9")


def test_patient_id_may_be_a_reference_or_full_url():
    doc = bundle({"resourceType": "Patient", "id": "p2"})
    assert bundle_to_patient(doc, patient_id="Patient/p2").patient.id == "p2"
    assert bundle_to_patient(doc, patient_id="urn:uuid:p1").patient.id == "p1"


# ---------------------------------------------------------------- references


@pytest.mark.parametrize("ref", ["urn:uuid:p1", "Patient/p1", "http://example.org/fhir/Patient/p1",
                                 "http://example.org/fhir/Patient/p1/_history/3"])
def test_subject_reference_forms(ref):
    assert len(ingest(obs(subject={"reference": ref})).patient.observations) == 1


def test_other_patients_records_are_left_out():
    result = ingest(obs("o1"), obs("o2", subject={"reference": "Patient/someone-else"}))
    assert [o.id for o in result.patient.observations] == ["Observation/o1"]
    assert "Observation dropped: subject is another patient" in lines(result)


def test_record_without_subject_belongs_to_the_only_patient():
    record = obs()
    del record["subject"]
    assert len(ingest(record).patient.observations) == 1


def test_item_id_falls_back_to_the_full_url_uuid():
    record = obs()
    del record["id"]
    doc = bundle()
    doc["entry"].append({"fullUrl": "urn:uuid:0a1b2c3d-0000-4000-8000-000000000001", "resource": record})
    assert bundle_to_patient(doc).patient.observations[0].id == "Observation/0a1b2c3d-0000-4000-8000-000000000001"


def test_duplicate_entry_is_dropped_once():
    result = ingest(obs("o1"), obs("o1"))
    assert len(result.patient.observations) == 1
    assert "Observation/o1 dropped: duplicate entry" in lines(result)


# ---------------------------------------------------------------- Observation


@pytest.mark.parametrize("status", ["entered-in-error", "cancelled"])
def test_withdrawn_observation_is_dropped_with_a_note(status):
    result = ingest(obs(status=status))
    assert result.patient.observations == []
    assert lines(result) == [f"Observation/o1 dropped: {status}"]


def test_preliminary_observation_is_kept_as_preliminary():
    assert ingest(obs(status="preliminary")).patient.observations[0].status == "preliminary"


def test_unknown_observation_status_reads_as_unknown():
    result = ingest(obs(status="bogus"))
    assert result.patient.observations[0].status == "unknown"
    assert any("'bogus'" in line for line in lines(result))


def test_quantity_prefers_the_ucum_code_and_keeps_the_comparator():
    q = {"value": 20, "comparator": "<", "unit": "IU/mL", "system": "http://unitsofmeasure.org", "code": "[IU]/mL"}
    value = ingest(obs(valueQuantity=q)).patient.observations[0].value
    assert (value.value, value.unit, value.comparator) == (20, "[IU]/mL", "<")


def test_quantity_without_ucum_system_uses_the_unit_text():
    value = ingest(obs(valueQuantity={"value": 1.9, "unit": "ratio", "code": "x"})).patient.observations[0].value
    assert value.unit == "ratio" and value.comparator is None


def test_coded_string_boolean_values_and_flags():
    hbsag = obs("o1", valueCodeableConcept={"coding": [{"system": "http://snomed.info/sct", "code": "10828004"}],
                                            "text": "Positive"},
                interpretation=[{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/"
                                                       "v3-ObservationInterpretation", "code": "POS"}]}])
    text, flag = obs("o2", valueString="阳性"), obs("o3", valueBoolean=True)
    o1, o2, o3 = ingest(hbsag, text, flag).patient.observations
    assert (o1.value_codes[0].system, o1.value_codes[0].code, o1.value_text) == ("snomed", "10828004", "Positive")
    assert o1.interpretation == ["POS"]
    assert o2.value_text == "阳性" and o3.value_boolean is True


def test_reference_range_and_data_absent_reason():
    pt = obs(referenceRange=[{"low": {"value": 11.5, "unit": "s"}, "high": {"value": 13.5, "unit": "s"}}],
             dataAbsentReason={"coding": [{"code": "not-performed"}]})
    o = ingest(pt).patient.observations[0]
    assert (o.reference_low.value, o.reference_high.value, o.reference_high.unit) == (11.5, 13.5, "s")
    assert o.data_absent_reason == "not-performed"


def test_unread_value_type_is_noted():
    result = ingest(obs(valueRange={"low": {"value": 1}}))
    assert result.patient.observations[0].value is None
    assert "Observation/o1 cleared: valueRange is not read" in lines(result)


@pytest.mark.parametrize(("fields", "expected"), [
    ({"effectivePeriod": {"start": "2026-01-01", "end": "2026-01-03"}}, "2026-01-03"),
    ({"effectivePeriod": {"start": "2026-01-01"}}, "2026-01-01"),
    ({"effectiveInstant": "2026-01-05T10:00:00Z"}, "2026-01-05T10:00:00Z"),
    ({"issued": "2026-01-07T10:00:00+00:00"}, "2026-01-07T10:00:00+00:00"),
])
def test_observation_date(fields, expected):
    record = obs(**fields)
    del record["effectiveDateTime"]
    assert ingest(record).patient.observations[0].effective == expected


def test_components_become_observations_sharing_date_and_status():
    mmhg = {"system": "http://unitsofmeasure.org", "code": "mm[Hg]", "unit": "mm[Hg]"}
    bp = obs("bp", status="amended", code={"coding": [{"system": "http://loinc.org", "code": "55284-4"}]},
             component=[{"code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}]},
                         "valueQuantity": {"value": 80, **mmhg}},
                        {"code": {"text": "no coding"}, "valueQuantity": {"value": 1}},
                        {"code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}]},
                         "valueQuantity": {"value": 130, **mmhg}}])
    panel, dia, sys_ = ingest(bp).patient.observations
    assert (panel.id, dia.id, sys_.id) == ("Observation/bp", "Observation/bp#0", "Observation/bp#2")
    assert panel.value is None and (dia.value.value, sys_.value.value) == (80, 130)
    assert {o.status for o in (dia, sys_)} == {"amended"}
    assert dia.effective == sys_.effective == panel.effective


def test_observation_without_coding_is_dropped():
    result = ingest(obs(code={"text": "HBsAg"}))
    assert result.patient.observations == []
    assert "Observation/o1 dropped: no coded Observation.code" in lines(result)


def test_coding_without_system_is_local():
    o = ingest(obs(code={"coding": [{"code": "HBSAG"}]})).patient.observations[0]
    assert (o.codes[0].system, o.codes[0].code) == ("local", "HBSAG")


# ---------------------------------------------------------------- Condition


@pytest.mark.parametrize("verification", ["refuted", "entered-in-error"])
def test_refuted_and_erroneous_conditions_are_dropped(verification):
    result = ingest(condition(verification=verification))
    assert result.patient.conditions == []
    assert lines(result) == [f"Condition/c1 dropped: {verification}"]


def test_resolved_condition_is_kept_with_its_abatement():
    c = ingest(condition(clinical="resolved", onsetDateTime="2019-01-01", abatementDateTime="2020-02-02",
                         recordedDate="2019-01-05")).patient.conditions[0]
    assert (c.clinical_status, c.verification_status) == ("resolved", "confirmed")
    assert (c.onset, c.abatement, c.recorded) == ("2019-01-01", "2020-02-02", "2019-01-05")


def test_condition_period_and_unread_onset_types():
    result = ingest(condition("c1", onsetPeriod={"start": "2018-03", "end": "2018-06"},
                              abatementPeriod={"start": "2019-01", "end": "2019-04"}),
                    condition("c2", onsetAge={"value": 40, "unit": "a"}, abatementString="in childhood"))
    c1, c2 = result.patient.conditions
    assert (c1.onset, c1.abatement) == ("2018-03", "2019-04")
    assert (c2.onset, c2.abatement) == (None, None)
    assert "Condition/c2 cleared: onsetAge is not a date" in lines(result)
    assert "Condition/c2 cleared: abatementString is not a date" in lines(result)


# ---------------------------------------------------------------- medications


def test_medication_request_dates_in_order_of_preference():
    timing = {"repeat": {"boundsPeriod": {"start": "2026-01-01", "end": "2026-02-01"}}}
    bounds = {"dosageInstruction": [{"timing": timing}],
              "dispenseRequest": {"validityPeriod": {"start": "2025-01-01"}}, "authoredOn": "2024-01-01"}
    validity = {"dispenseRequest": {"validityPeriod": {"start": "2025-01-01", "end": "2025-03-01"}},
                "authoredOn": "2024-01-01"}
    m1, m2, m3 = ingest(med_request("m1", medicationCodeableConcept=PREDNISONE, **bounds),
                        med_request("m2", medicationCodeableConcept=PREDNISONE, **validity),
                        med_request("m3", medicationCodeableConcept=PREDNISONE, authoredOn="2024-01-01")
                        ).patient.medications
    assert [(m.start, m.end) for m in (m1, m2, m3)] == [
        ("2026-01-01", "2026-02-01"), ("2025-01-01", "2025-03-01"), ("2024-01-01", None)]
    assert {m.source for m in (m1, m2, m3)} == {"request"}


def test_statement_and_administration():
    statement = {"resourceType": "MedicationStatement", "id": "s1", "status": "completed", "subject": SUBJECT,
                 "medicationCodeableConcept": PREDNISONE,
                 "effectivePeriod": {"start": "2026-03-01", "end": "2026-04-01"},
                 "dosage": [{"route": {"coding": [{"display": "Oral route"}]}}]}
    given_ = {"resourceType": "MedicationAdministration", "id": "a1", "status": "completed", "subject": SUBJECT,
              "medicationCodeableConcept": local_drug("Human serum albumin 200 MG/ML"),
              "effectiveDateTime": "2026-10-20",
              "dosage": {"route": {"text": "Intravenous"}}}
    s, a = ingest(statement, given_).patient.medications
    assert (s.id, s.source, s.status, s.route, s.start, s.end) == (
        "MedicationStatement/s1", "statement", "completed", "oral", "2026-03-01", "2026-04-01")
    assert (a.source, a.route, a.start, a.end) == ("administration", "intravenous", "2026-10-20", "2026-10-20")


def test_medication_reference_is_resolved():
    drug = {"resourceType": "Medication", "id": "med-1", "code": PREDNISONE}
    contained = {"resourceType": "Medication", "id": "inline", "code": HYDROCORTISONE_CREAM}
    result = ingest(drug, med_request("m1", medicationReference={"reference": "urn:uuid:med-1"}),
                    med_request("m2", medicationReference={"reference": "Medication/med-1"}),
                    med_request("m3", contained=[contained], medicationReference={"reference": "#inline"}))
    assert [m.codes[0].code for m in result.patient.medications] == ["312617", "312617", "106258"]
    assert "Medication" not in result.skipped_types


def test_unresolvable_medication_reference_is_dropped():
    result = ingest(med_request(medicationReference={"reference": "Medication/missing"}))
    assert result.patient.medications == []
    assert lines(result) == ["MedicationRequest/m1 dropped: medicationReference 'Medication/missing' "
                             "is not a Medication in the bundle"]


def test_topical_route_is_inferred_from_the_dose_form():
    result = ingest(med_request(medicationCodeableConcept=HYDROCORTISONE_CREAM, authoredOn="2026-07-14"))
    assert result.patient.medications[0].route == "topical"
    assert lines(result) == ["MedicationRequest/m1 inferred: route 'topical' from the dose form in "
                             "'Hydrocortisone 10 MG/ML Topical Cream'"]


def test_recorded_route_wins_over_the_dose_form():
    m = ingest(med_request(medicationCodeableConcept=HYDROCORTISONE_CREAM,
                           dosageInstruction=[{"route": {"text": "Oral"}}])).patient.medications[0]
    assert m.route == "oral"


@pytest.mark.parametrize(("display", "route"), [
    ("predniSONE 5 MG Oral Tablet", "oral"), ("Clotrimazole 10 MG/ML Vaginal Cream", "vaginal"),
    ("Betamethasone 0.5 MG/G Topical Ointment", "topical"),
    ("Prednisolone acetate 10 MG/ML Ophthalmic Suspension", "ophthalmic"),
    ("1 ML methylPREDNISolone 40 MG/ML Injection", None),
])
def test_dose_form_routes(display, route):
    assert ingest(med_request(medicationCodeableConcept=local_drug(display))).patient.medications[0].route == route


def test_erroneous_medication_is_dropped():
    result = ingest(med_request(status="entered-in-error", medicationCodeableConcept=PREDNISONE))
    assert result.patient.medications == [] and lines(result) == ["MedicationRequest/m1 dropped: entered-in-error"]


# ---------------------------------------------------------------- Procedure, ResearchSubject


def test_procedures():
    code = {"coding": [{"system": "http://snomed.info/sct", "code": "428191000124101"}]}  # from the Synthea samples
    done = {"resourceType": "Procedure", "id": "x1", "status": "completed", "code": code, "subject": SUBJECT,
            "performedPeriod": {"start": "2020-01-01T10:00:00Z", "end": "2020-01-01T14:00:00Z"}}
    point = {**done, "id": "x2", "performedDateTime": "2021-05-05"}
    del point["performedPeriod"]
    skipped = {**done, "id": "x3", "status": "not-done"}
    result = ingest(done, point, skipped)
    assert [(p.id, p.start, p.end) for p in result.patient.procedures] == [
        ("Procedure/x1", "2020-01-01T10:00:00Z", "2020-01-01T14:00:00Z"), ("Procedure/x2", "2021-05-05", "2021-05-05")]
    assert "Procedure/x3 dropped: not-done" in lines(result)


def test_research_subject_becomes_a_trial_participation():
    study = {"resourceType": "ResearchStudy", "id": "rs1", "status": "active",
             "identifier": [{"system": "https://clinicaltrials.gov", "value": "NCT01844063"}]}
    enrolled = {"resourceType": "ResearchSubject", "id": "s1", "status": "on-study", "individual": SUBJECT,
                "study": {"reference": "ResearchStudy/rs1"}, "period": {"start": "2026-10-15"}}
    logical = {**enrolled, "id": "s2", "status": "off-study", "study": {"identifier": {"value": "ChiCTR-local-1"}}}
    t1, t2 = ingest(study, enrolled, logical).patient.trials
    assert (t1.id, t1.study, t1.status, t1.start, t1.end) == ("ResearchSubject/s1", "NCT01844063", "on-study",
                                                             "2026-10-15", None)
    assert (t2.study, t2.status) == ("ChiCTR-local-1", "off-study")


# ---------------------------------------------------------------- reading only what the rules read

BP = {"coding": [{"system": "http://loinc.org", "code": "85354-9", "display": "Blood pressure panel"}]}
SYSTOLIC = {"coding": [{"system": "http://loinc.org", "code": "8480-6", "display": "Systolic blood pressure"}]}


def test_observations_no_trial_reads_are_counted_not_read():
    wanted = frozenset({"6301-6"})
    inr = obs("o1", valueQuantity={"value": 1.8, "unit": "{INR}"})
    bp = obs("o2", code=BP, component=[{"code": SYSTOLIC, "valueQuantity": {"value": 120, "unit": "mm[Hg]"}}])
    weight = obs("o3", code={"coding": [{"system": "http://loinc.org", "code": "29463-7"}]}, status="entered-in-error")
    result = ingest(inr, bp, weight, observation_codes=wanted)
    assert [o.id for o in result.patient.observations] == ["Observation/o1"]
    assert "Observation ×2 skipped: its codes are read by no loaded trial" in lines(result)


def test_a_component_a_trial_reads_is_kept_without_its_panel():
    panel = obs("o1", code=BP, component=[{"code": LOINC_INR, "valueQuantity": {"value": 1.8, "unit": "{INR}"}},
                                          {"code": SYSTOLIC, "valueQuantity": {"value": 120, "unit": "mm[Hg]"}}])
    result = ingest(panel, observation_codes=frozenset({"6301-6"}))
    assert [(o.id, o.value.value) for o in result.patient.observations] == [("Observation/o1#0", 1.8)]


def test_malformed_codes_are_not_read_and_do_not_crash_the_filter():
    odd = obs("o1", code={"coding": [{"code": {"not": "a string"}}, {"code": ["6301-6"]}, "junk"]})
    assert ingest(odd, observation_codes=frozenset({"6301-6"})).patient.observations == []


def _fhir_documents() -> list[Path]:
    samples = sorted(SAMPLES.glob("*.json")) if SAMPLES.is_dir() else []
    return sorted(EXAMPLES.glob("*.fhir.json")) + samples


@pytest.mark.parametrize("path", _fhir_documents(), ids=lambda p: p.name[:30])
def test_reading_only_what_the_rules_read_changes_no_screening(path):
    """The filter's promise: every result, explanation and missing datum is the same."""
    from engine import screen
    from engine.facts import observation_codes
    from engine.rules import load_rules

    trials = list(load_rules(ROOT / "rules").trials.values())
    doc = json.loads(path.read_text())
    whole = bundle_to_patient(doc).patient
    read = bundle_to_patient(doc, observation_codes=observation_codes(trials)).patient
    assert len(read.observations) <= len(whole.observations)
    for as_of in ("2021-06-01", "2026-11-01"):
        assert screen(read, trials, as_of).model_dump() == screen(whole, trials, as_of).model_dump()


# ---------------------------------------------------------------- report and robustness


def test_unknown_types_are_counted_never_fatal():
    enc = {"resourceType": "Encounter", "id": "e1", "subject": SUBJECT}
    result = ingest(enc, {**enc, "id": "e2"}, {"resourceType": "Claim", "id": "cl1"},
                    {"resourceType": "OperationOutcome", "id": "oo"}, obs())
    assert result.skipped_types == {"Encounter": 2, "Claim": 1, "OperationOutcome": 1}
    assert "Encounter ×2 skipped: resource type not read" in lines(result)
    assert len(result.patient.observations) == 1


def test_dates_the_model_rejects_are_cleared_not_fatal():
    result = bundle_to_patient(bundle(obs(effectiveDateTime="2024-13-45"),
                                      condition(onsetDateTime="last spring", recordedDate="2020-01-01"),
                                      patient={**PATIENT, "birthDate": "yesterday", "gender": "M"}))
    p = result.patient
    assert (p.birth_date, p.sex) == (None, None)
    assert p.observations[0].effective is None and len(p.observations[0].codes) == 1
    assert (p.conditions[0].onset, p.conditions[0].recorded) == (None, "2020-01-01")
    cleared = [line for line in lines(result) if " cleared: " in line]
    assert len(cleared) == 4 and any(line.startswith("Observation/o1 cleared: effective '2024-13-45'")
                                     for line in cleared)


# ---------------------------------------------------------------- Synthea samples

# file → (sex, birthDate, deceased)
SAMPLE_PATIENTS = {
    "Adan_Pulido": ("male", "1936-08-18", True), "Alexis_Toy": ("male", "2018-06-22", None),
    "Dirk_Kuhlman": ("male", "1971-12-07", None), "Jordan_Cruickshank": ("female", "1965-07-05", None),
    "Karla_Kessler": ("female", "1993-06-30", None), "Micah_Schinner": ("male", "1959-12-07", True),
    "Murray_Hane": ("male", "1920-04-23", True), "Trey_Leffler": ("male", "1957-07-01", None),
}


def _sample_files() -> list[Path]:
    return sorted(SAMPLES.glob("*.json")) if SAMPLES.is_dir() else []


needs_samples = pytest.mark.skipif(not _sample_files(), reason=f"shared FHIR samples not found at {SAMPLES.name}/ "
                                                                "beside the repository")


def _resources(doc: dict, rtype: str) -> list[dict]:
    return [e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == rtype]


@needs_samples
@pytest.mark.parametrize("path", _sample_files(), ids=lambda p: p.name.split("_")[0])
def test_sample_bundle_loads_with_sensible_counts(path):
    doc = json.loads(path.read_text())
    result = bundle_to_patient(doc)
    p = result.patient
    assert (p.sex, p.birth_date, p.deceased) == SAMPLE_PATIENTS["_".join(path.name.split("_")[:2])]
    observations = _resources(doc, "Observation")
    components = sum(len(o.get("component", [])) for o in observations)
    assert len(p.observations) == len(observations) + components
    assert len(p.conditions) == len(_resources(doc, "Condition"))
    assert len(p.medications) == len(_resources(doc, "MedicationRequest"))
    assert len(p.procedures) == len(_resources(doc, "Procedure"))
    assert not [line for line in lines(result) if " dropped: " in line or " cleared: " in line]
    assert {"Encounter", "Claim"} <= result.skipped_types.keys() and "Observation" not in result.skipped_types


@needs_samples
def test_sample_prednisone_is_oral_and_synthea_serum_codes_survive():
    alexis = bundle_to_patient(json.loads(next(SAMPLES.glob("Alexis_Toy_*.json")).read_text())).patient
    prednisone = [m for m in alexis.medications if m.codes[0].code == "312617"]
    assert [(m.route, m.source, m.end) for m in prednisone] == [("oral", "request", None)]
    jordan = bundle_to_patient(json.loads(next(SAMPLES.glob("Jordan_Cruickshank_*.json")).read_text())).patient
    alt = [o for o in jordan.observations if o.codes[0].code == "1742-6"]
    assert alt and alt[0].value.unit == "IU/L" and alt[0].codes[0].system == "loinc"


# ---------------------------------------------------------------- examples


def _example_files() -> list[Path]:
    return sorted(EXAMPLES.glob("*.json"))


def _load_example(path: Path) -> tuple[Patient, list[str]]:
    doc = json.loads(path.read_text())
    if looks_like_fhir(doc):
        result = bundle_to_patient(doc)
        return result.patient, lines(result)
    return Patient.model_validate(doc), []


def test_there_are_about_a_dozen_examples_in_both_formats():
    files = _example_files()
    fhir = [p for p in files if p.name.endswith(".fhir.json")]
    assert len(files) >= 12 and len(fhir) >= 6 and len(files) - len(fhir) >= 5
    assert all(looks_like_fhir(json.loads(p.read_text())) == p.name.endswith(".fhir.json") for p in files)


@pytest.mark.parametrize("path", _example_files(), ids=lambda p: p.name)
def test_example_loads_cleanly(path):
    patient, report = _load_example(path)
    assert patient.birth_date and patient.sex in ("male", "female")
    assert not [line for line in report if " dropped: " in line or " cleared: " in line]


def test_examples_are_listed_in_the_manifest():
    manifest = (EXAMPLES / "README.md").read_text()
    assert all(f"`{p.name}`" in manifest for p in _example_files())


def test_bilirubin_unit_variants_differ_only_in_the_bilirubin_record():
    si, _ = _load_example(EXAMPLES / "aclf_hbv_eligible.fhir.json")
    mass, _ = _load_example(EXAMPLES / "aclf_hbv_bilirubin_mgdl.fhir.json")
    bili = {"14631-6", "1975-2"}

    def shape(p: Patient) -> list:
        return [(o.codes[0].code, o.value and o.value.value, o.effective) for o in p.observations
                if o.codes[0].code not in bili]

    assert shape(si) == shape(mass)
    (tb_si,) = [o.value for o in si.observations if o.codes[0].code in bili]
    (tb_mass,) = [o.value for o in mass.observations if o.codes[0].code in bili]
    assert (tb_si.unit, tb_mass.unit) == ("umol/L", "mg/dL") and tb_mass.value * 17.1 >= 171


def test_topical_example_reads_as_topical():
    patient, report = _load_example(EXAMPLES / "aclf_hbv_topical_hydrocortisone.fhir.json")
    assert [m.route for m in patient.medications] == ["topical"]
    assert any("inferred: route 'topical'" in line for line in report)


# ---------------------------------------------------------------- property test

_KEYS = st.sampled_from([
    "resourceType", "id", "type", "entry", "fullUrl", "resource", "subject", "patient", "individual",
    "reference", "status", "code", "coding", "system", "value", "unit", "comparator", "text", "display",
    "effectiveDateTime", "effectivePeriod", "issued", "valueQuantity", "valueCodeableConcept", "valueString",
    "valueBoolean", "valueRange", "interpretation", "referenceRange", "low", "high", "component",
    "dataAbsentReason", "clinicalStatus", "verificationStatus", "onsetDateTime", "onsetAge", "abatementPeriod",
    "recordedDate", "medicationCodeableConcept", "medicationReference", "contained", "dosage",
    "dosageInstruction", "route", "timing", "repeat", "boundsPeriod", "authoredOn", "performedDateTime",
    "study", "period", "start", "end", "birthDate", "gender", "deceasedBoolean", "deceasedDateTime",
]) | st.text(max_size=5)
_SCALARS = (st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6) | st.sampled_from([
    "Patient", "Bundle", "Observation", "Condition", "MedicationRequest", "MedicationStatement",
    "MedicationAdministration", "Medication", "Procedure", "ResearchSubject", "ResearchStudy", "collection",
    "final", "entered-in-error", "refuted", "resolved", "Patient/p1", "urn:uuid:p1", "#m", "Medication/m",
    "2024", "2024-05-01", "2024-02-30", "2024-05-01T10:00:00Z", "http://loinc.org", "http://unitsofmeasure.org",
    "<", "Topical Cream", "p1",
]))
_JSON = st.recursive(_SCALARS, lambda kids: st.lists(kids, max_size=4) | st.dictionaries(_KEYS, kids, max_size=6),
                     max_leaves=5)
_REFERENCE = st.sampled_from([{"reference": r}
                              for r in ("urn:uuid:p1", "Patient/p1", "Patient/p2", "#m", "Medication/m")])
_CODING = st.fixed_dictionaries({"code": st.text(min_size=1, max_size=4) | _SCALARS},
                                optional={"system": _SCALARS, "display": _SCALARS})
_CONCEPT = st.fixed_dictionaries({"coding": st.lists(_CODING | _JSON, max_size=3)}, optional={"text": _SCALARS})
_QUANTITY = st.fixed_dictionaries({"value": _SCALARS}, optional={"unit": _SCALARS, "system": _SCALARS,
                                                                 "code": _SCALARS, "comparator": _SCALARS})
_ANY = _JSON | _CONCEPT | _QUANTITY | _REFERENCE
_RESOURCE = st.fixed_dictionaries(
    {"resourceType": st.sampled_from(["Patient", "Observation", "Condition", "MedicationRequest",
                                      "MedicationStatement", "MedicationAdministration", "Medication",
                                      "Procedure", "ResearchSubject", "ResearchStudy", "Encounter"]),
     "code": _CONCEPT | _CONCEPT | _JSON},
    optional={"id": _SCALARS, "subject": _REFERENCE | _JSON, "status": _SCALARS,
              "valueQuantity": _QUANTITY | _JSON, "valueCodeableConcept": _CONCEPT, "component": st.lists(_ANY),
              "effectivePeriod": _JSON, "effectiveDateTime": _SCALARS, "onsetDateTime": _SCALARS,
              "abatementPeriod": _JSON, "birthDate": _SCALARS, "gender": _SCALARS,
              "medicationCodeableConcept": _CONCEPT, "medicationReference": _REFERENCE | _JSON,
              "dosageInstruction": _JSON, "study": _REFERENCE | _JSON, "verificationStatus": _CONCEPT | _JSON,
              "referenceRange": st.lists(st.fixed_dictionaries({}, optional={"low": _QUANTITY, "high": _QUANTITY})),
              "interpretation": st.lists(_CONCEPT), "contained": st.lists(_JSON, max_size=2)})
_ENTRY = st.fixed_dictionaries({"resource": _RESOURCE}, optional={"fullUrl": _SCALARS}) | _JSON
_PATIENT_ENTRY = st.fixed_dictionaries({"fullUrl": st.just("urn:uuid:p1"), "resource": st.fixed_dictionaries(
    {"resourceType": st.just("Patient"), "id": st.just("p1")},
    optional={"birthDate": _SCALARS, "gender": _SCALARS, "deceasedBoolean": _SCALARS})})
_ENTRIES = st.lists(_ENTRY, max_size=8) | st.tuples(_PATIENT_ENTRY, st.lists(_ENTRY, max_size=8)).map(
    lambda t: [t[0], *t[1]])
_PATIENT_BUNDLE = st.fixed_dictionaries({"resourceType": st.just("Bundle"), "type": st.just("collection"),
                                         "entry": st.tuples(_PATIENT_ENTRY, st.lists(_ENTRY, min_size=1, max_size=5))
                                         .map(lambda t: [t[0], *t[1]])})
_BUNDLE = st.fixed_dictionaries({"resourceType": st.just("Bundle")},
                                optional={"type": st.sampled_from(["collection", "searchset"]) | _SCALARS,
                                          "entry": _ENTRIES | _JSON})


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(doc=st.one_of(_PATIENT_BUNDLE, _PATIENT_BUNDLE, _PATIENT_BUNDLE, _BUNDLE, _RESOURCE, _JSON),
       patient_id=st.none() | _SCALARS.filter(lambda v: isinstance(v, str)))
def test_arbitrary_input_raises_only_fhir_or_validation_errors(doc, patient_id):
    try:
        result = bundle_to_patient(doc, patient_id=patient_id, observation_codes=frozenset({"6301-6", "1975-2"}))
    except (FhirError, ValidationError):
        return
    assert isinstance(result.patient, Patient)
    assert all(isinstance(line, str) for line in result.lines())
