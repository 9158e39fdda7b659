"""Evaluation semantics, criterion by criterion: units, freshness, windows, closed world."""

from pathlib import Path

import pytest

from engine import compile_text, screen
from engine.facts import PatientFacts
from engine.interpreter import statuses as interpreted_statuses
from tests.factories import AS_OF, aclf_patient, condition, lab, medication, patient, qual

RULES = Path(__file__).resolve().parents[1] / "rules"


def trial(body: str, header: str = "labs fresh within 14 days"):
    return compile_text(f'import "hepatology"\ntrial T1 {{ title: "t" }}\n{header}\n{body}', rules_root=RULES)


def status(body: str, p, header: str = "labs fresh within 14 days", as_of: str = AS_OF) -> str:
    t = trial(f'inclusion I1 "x": {body}', header)
    from datetime import date
    facts = PatientFacts(p, date.fromisoformat(as_of))
    compiled = t.statuses(facts)[0]
    assert compiled == interpreted_statuses(t.checked, PatientFacts(p, date.fromisoformat(as_of)))[0]
    return compiled


def explained(body: str, p):
    t = trial(f'inclusion I1 "x": {body}')
    return screen(p, [t], AS_OF).trials[0].criteria[0]


# ---- units -------------------------------------------------------------------------------------

def test_bilirubin_in_mg_dl_meets_a_umol_threshold():
    # 10 mg/dL × 17.1 = 171 umol/L: exactly the threshold (17.104 with the molar mass, so above)
    assert status("bilirubin_total >= 171 umol/L", patient(observations=[lab("bilirubin_total", 10, "mg/dL")])) == "met"
    assert status("bilirubin_total >= 171 umol/L", patient(observations=[lab("bilirubin_total", 9.9, "mg/dL")])) == "not_met"


def test_bilirubin_recorded_in_si_with_greek_mu():
    p = patient(observations=[lab("bilirubin_total_si", 171, "μmol/L")])
    assert status("bilirubin_total >= 171 umol/L", p) == "met"


def test_threshold_written_in_mg_dl_is_converted_at_compile_time():
    p = patient(observations=[lab("bilirubin_total_si", 180, "umol/L")])
    assert status("bilirubin_total >= 10 mg/dL", p) == "met"


def test_unconvertible_unit_gives_unknown_with_reason():
    p = patient(observations=[lab("bilirubin_total", 12, "furlongs")])
    c = explained("bilirubin_total >= 171 umol/L", p)
    assert c.status == "unknown"
    assert "cannot be converted" in c.explanation
    assert c.missing and "total bilirubin" in c.missing[0]


def test_value_with_comparator_is_a_range():
    below = patient(observations=[lab("bilirubin_total_si", 20, "umol/L")])
    assert status("bilirubin_total >= 171 umol/L", below) == "not_met"
    p = patient(observations=[{**lab("bilirubin_total_si", 200, "umol/L"),
                               "value": {"value": 200, "unit": "umol/L", "comparator": "<"}}])
    assert status("bilirubin_total >= 171 umol/L", p) == "unknown"  # < 200 may or may not be ≥ 171
    p = patient(observations=[{**lab("bilirubin_total_si", 100, "umol/L"),
                               "value": {"value": 100, "unit": "umol/L", "comparator": "<"}}])
    assert status("bilirubin_total >= 171 umol/L", p) == "not_met"
    p = patient(observations=[{**lab("bilirubin_total_si", 500, "umol/L"),
                               "value": {"value": 500, "unit": "umol/L", "comparator": ">"}}])
    assert status("bilirubin_total >= 171 umol/L", p) == "met"


# ---- freshness and record status ---------------------------------------------------------------

def test_latest_fresh_value_is_used():
    p = patient(observations=[lab("inr", 1.2, None, day="2026-10-20"), lab("inr", 1.8, None, day="2026-10-30")])
    assert status("inr >= 1.5", p) == "met"
    p = patient(observations=[lab("inr", 1.8, None, day="2026-10-20"), lab("inr", 1.2, None, day="2026-10-30")])
    assert status("inr >= 1.5", p) == "not_met"


def test_stale_value_is_unknown_not_used():
    p = patient(observations=[lab("inr", 2.5, None, day="2026-09-01")])
    c = explained("inr >= 1.5", p)
    assert c.status == "unknown"
    assert "older than the window" in c.explanation
    assert c.missing == ["INR (LOINC 6301-6, 34714-6) within 14 days"]


def test_per_criterion_freshness_overrides_the_file_default():
    t = trial('inclusion I1 "x" fresh within 60 days: inr >= 1.5')
    p = patient(observations=[lab("inr", 2.5, None, day="2026-09-15")])
    from datetime import date
    assert t.statuses(PatientFacts(p, date(2026, 11, 1))) == ["met"]


def test_results_after_the_screening_date_are_ignored():
    p = patient(observations=[lab("inr", 2.5, None, day="2026-11-05")])
    assert status("inr >= 1.5", p) == "unknown"


@pytest.mark.parametrize("obs_status,expected", [
    ("final", "met"), ("amended", "met"), ("corrected", "met"),
    ("preliminary", "unknown"), ("entered-in-error", "unknown"), ("cancelled", "unknown"),
])
def test_only_final_results_count(obs_status, expected):
    p = patient(observations=[lab("inr", 2.5, None, status=obs_status)])
    assert status("inr >= 1.5", p) == expected


def test_entered_in_error_newer_value_does_not_hide_the_valid_one():
    p = patient(observations=[lab("inr", 1.0, None, day="2026-10-31", status="entered-in-error"),
                              lab("inr", 2.0, None, day="2026-10-29")])
    assert status("inr >= 1.5", p) == "met"


# ---- qualitative results ------------------------------------------------------------------------

@pytest.mark.parametrize("shape,expected", [
    ({"value_codes": [{"system": "http://snomed.info/sct", "code": "10828004"}]}, "met"),
    ({"value_codes": [{"system": "snomed", "code": "260385009"}]}, "not_met"),
    ({"interpretation": ["POS"]}, "met"),
    ({"interpretation": ["NEG"]}, "not_met"),
    ({"value_text": "Reactive"}, "met"),
    ({"value_text": "阴性"}, "not_met"),
    ({"value_text": "see comment"}, "unknown"),
    ({"value_codes": [{"system": "snomed", "code": "82334004"}]}, "unknown"),  # indeterminate
    ({"value_codes": [{"system": "snomed", "code": "10828004"}], "interpretation": ["NEG"]}, "unknown"),
])
def test_qualitative_shapes(shape, expected):
    p = patient(observations=[qual("hbsag", None, **shape)])
    assert status("hbsag is positive", p) == expected


# ---- age ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("birth,expected", [
    ("2008-11-01", "met"),      # 18th birthday on the screening date
    ("2008-11-02", "not_met"),  # the day before the 18th birthday
    ("1960-11-02", "met"),      # 65, the day before the 66th birthday
    ("1960-11-01", "not_met"),  # 66th birthday
])
def test_age_range_is_inclusive_in_completed_years(birth, expected):
    assert status("age between 18 and 65 years", patient(birth_date=birth)) == expected


def test_partial_birth_date_gives_unknown_only_when_it_straddles():
    assert status("age >= 18 years", patient(birth_date="1990")) == "met"
    assert status("age >= 18 years", patient(birth_date="2008")) == "unknown"
    assert status("age >= 18 years", patient(birth_date=None)) == "unknown"


# ---- diagnoses, medications, trials: closed world and windows -----------------------------------

def test_no_record_means_absent_and_says_so():
    c = explained("had hepatocellular_carcinoma", patient())
    assert c.status == "not_met"
    assert "no record of hepatocellular carcinoma" in c.explanation


def test_icd_codes_match_by_prefix_and_range():
    assert status("had hepatocellular_carcinoma", patient(conditions=[condition("icd10cm", "C22.0")])) == "met"
    assert status("had malignancy", patient(conditions=[condition("icd10cm", "C50.911")])) == "met"
    assert status("had malignancy", patient(conditions=[condition("icd10cm", "D50.9")])) == "not_met"
    assert status("had malignancy", patient(conditions=[condition("icd10", "C97")])) == "met"


@pytest.mark.parametrize("verification,expected", [
    ("confirmed", "met"), (None, "met"), ("refuted", "not_met"), ("entered-in-error", "not_met"),
])
def test_refuted_and_entered_in_error_diagnoses_never_count(verification, expected):
    p = patient(conditions=[condition("icd10cm", "C22.0", verification_status=verification)])
    assert status("had hepatocellular_carcinoma", p) == expected


def test_resolved_condition_counts_as_history_not_as_current():
    resolved = condition("icd10cm", "K76.82", clinical_status="resolved", abatement="2025-01-01")
    assert status("had hepatic_encephalopathy", patient(conditions=[resolved])) == "met"
    assert status("has hepatic_encephalopathy", patient(conditions=[resolved])) == "not_met"
    assert status("not has hepatic_encephalopathy", patient(conditions=[resolved])) == "met"


def test_duration_of_a_condition():
    long = condition("icd10cm", "K74.60", onset="2019-06-01")
    short = condition("icd10cm", "K74.60", onset="2023-06-01")
    undated = condition("icd10cm", "K74.60", onset=None)
    assert status("has cirrhosis for more than 5 years", patient(conditions=[long])) == "met"
    assert status("has cirrhosis for more than 5 years", patient(conditions=[short])) == "not_met"
    assert status("has cirrhosis for more than 5 years", patient(conditions=[undated])) == "unknown"


@pytest.mark.parametrize("start,end,expected", [
    ("2026-03-01", None, "met"), ("2025-11-02", None, "met"),
    ("2025-09-01", "2025-10-15", "not_met"),  # a course that ended before the window
    ("2025-10-15", None, "unknown"),          # completed, no end date: may have run into the window
    ("2025", "2025", "unknown"),              # partial dates straddling the window's start
])
def test_medication_within_a_year(start, end, expected):
    p = patient(medications=[medication("rxnorm", "312617", start, "predniSONE 5 MG Oral Tablet", end=end)])
    assert status("had glucocorticoid_systemic within 1 year", p) == expected


def test_an_administration_is_a_point_event():
    given = medication("atc", "B05AA01", "2026-09-01", "albumin", source="administration")
    assert status("had human_serum_albumin within 3 weeks", patient(medications=[given])) == "not_met"


@pytest.mark.parametrize("verification", ["unconfirmed", "provisional", "differential"])
def test_an_unconfirmed_diagnosis_leaves_it_unknown(verification):
    p = patient(conditions=[condition("icd10cm", "K72.90", verification_status=verification)])
    c = explained("has liver_failure", p)
    assert c.status == "unknown" and "unconfirmed" in c.explanation


def test_a_condition_known_only_by_its_recorded_date_began_on_or_before_it():
    old = condition("icd10cm", "K74.60", onset=None, recorded="2019-05-01")
    recent = condition("icd10cm", "K74.60", onset=None, recorded="2023-05-01")
    assert status("has cirrhosis for more than 5 years", patient(conditions=[old])) == "met"
    assert status("has cirrhosis for more than 5 years", patient(conditions=[recent])) == "unknown"


def test_topical_steroid_is_not_systemic_glucocorticoid_therapy():
    cream = medication("atc", "H02AB09", "2026-06-01", "Hydrocortisone 10 MG/ML Topical Cream")
    oral = medication("atc", "H02AB09", "2026-06-01", "hydrocortisone 10 MG Oral Tablet", route="oral")
    assert status("had glucocorticoid_systemic within 1 year", patient(medications=[cream])) == "not_met"
    assert status("had glucocorticoid_systemic within 1 year", patient(medications=[oral])) == "met"


def test_ongoing_medication_overlaps_any_window():
    ongoing = medication("atc", "L03AB11", "2020-01-01", status="active")
    assert status("had interferon within 1 year", patient(medications=[ongoing])) == "met"


def test_trial_participation_window():
    def subject(end, status_="off-study"):
        return {"id": "ResearchSubject/1", "study": "NCT000", "status": status_, "start": "2026-01-01", "end": end}
    assert status("had clinical_trial within 30 days", patient(trials=[subject("2026-10-15")])) == "met"
    assert status("had clinical_trial within 30 days", patient(trials=[subject("2026-09-01")])) == "not_met"
    assert status("had clinical_trial within 30 days", patient(trials=[subject(None, "on-study")])) == "met"
    assert status("had clinical_trial within 30 days", patient(trials=[subject(None, "candidate")])) == "not_met"


# ---- facts, conditional criteria, manual ----------------------------------------------------------

def test_unrecorded_fact_is_unknown_and_recorded_fact_decides():
    assert status("breastfeeding", patient(sex="female")) == "unknown"
    fact = {"id": "Observation/bf", "name": "breastfeeding", "value": False, "date": "2026-10-30"}
    assert status("breastfeeding", patient(sex="female", facts=[fact])) == "not_met"


def test_conditional_criterion_is_not_applicable_to_others():
    t = trial('inclusion I1 "Negative pregnancy test" when woman_of_childbearing_potential: hcg is negative')
    from datetime import date
    man = PatientFacts(patient(sex="male"), date(2026, 11, 1))
    woman = PatientFacts(patient(sex="female", birth_date="1995-01-01"), date(2026, 11, 1))
    tested = PatientFacts(patient(sex="female", birth_date="1995-01-01", observations=[qual("hcg", False)]),
                          date(2026, 11, 1))
    unknown_sex = PatientFacts(patient(sex=None), date(2026, 11, 1))
    assert t.statuses(man) == ["not_applicable"]
    assert t.statuses(woman) == ["unknown"]
    assert t.statuses(tested) == ["met"]
    assert t.statuses(unknown_sex) == ["unknown"]


def test_manual_criterion_is_left_to_a_person():
    t = trial('inclusion I1 "Signed informed consent": manual "signed consent"\ninclusion I2 "Adult": age >= 18 years')
    result = screen(patient(), [t], AS_OF).trials[0]
    assert [c.status for c in result.criteria] == ["manual", "met"]
    assert result.verdict == "eligible"
    assert result.checks_for_a_person == ["Signed informed consent"]


# ---- scores -----------------------------------------------------------------------------------------

def test_meld_is_computed_from_fresh_inputs_and_explained():
    p = patient(**{k: v for k, v in aclf_patient().items() if k != "sex"})
    c = explained("17 <= meld <= 30", p)
    assert c.status == "met"
    assert "MELD (original UNOS) = 28" in c.explanation
    sources = [v.get("source") for e in c.evidence for v in e.get("values", [])]
    assert [s for s in sources if s and s.startswith("Observation/")] and len(sources) == 4  # 3 labs + dialysis


def test_meld_with_a_missing_input_is_unknown_and_names_it():
    doc = aclf_patient()
    doc["observations"] = [o for o in doc["observations"] if o["codes"][0]["code"] != "6301-6"]
    c = explained("17 <= meld <= 30", patient(**{k: v for k, v in doc.items() if k != "sex"}))
    assert c.status == "unknown"
    assert any("INR" in m for m in c.missing)


def test_recorded_meld_is_used_as_recorded():
    recorded = {"id": "Observation/meld", "codes": [{"system": "elig", "code": "meld"}], "effective": "2026-10-30",
                "value": {"value": 31, "unit": "1"}}
    assert status("17 <= meld <= 30", patient(observations=[recorded])) == "not_met"


# ---- trends and reference ranges --------------------------------------------------------------------

def test_bilirubin_rise_per_day():
    rising = [lab("bilirubin_total_si", 100, "umol/L", day="2026-10-28"),
              lab("bilirubin_total_si", 140, "umol/L", day="2026-10-30")]  # +20 umol/L per day
    flat = [lab("bilirubin_total_si", 100, "umol/L", day="2026-10-28"),
            lab("bilirubin_total_si", 110, "umol/L", day="2026-10-30")]
    assert status("bilirubin_total rising >= 17.1 umol/L per day", patient(observations=rising)) == "met"
    assert status("bilirubin_total rising >= 17.1 umol/L per day", patient(observations=flat)) == "not_met"
    assert status("bilirubin_total rising >= 17.1 umol/L per day", patient(observations=flat[1:])) == "unknown"


def test_pt_prolonged_against_the_reference_range():
    def pt(value, high):
        extra = {"reference_high": {"value": high, "unit": "s"}} if high else {}
        return patient(observations=[lab("pt", value, "s", **extra)])
    assert status("pt > uln + 3 s", pt(17.5, 14)) == "met"
    assert status("pt > uln + 3 s", pt(17.0, 14)) == "not_met"
    assert status("pt > uln + 3 s", pt(17.5, None)) == "unknown"


# ---- code sets: the cross-patient memo answers as matching does ---------------------------------

from unittest import mock  # noqa: E402

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from engine import facts as facts_module  # noqa: E402
from engine.ir import CodeSetInfo  # noqa: E402

_SYSTEMS = st.sampled_from(["icd10", "icd10cm", "atc", "snomed"])
_CODES = st.text(alphabet="ABCDHK0123456789.", min_size=1, max_size=7)


@settings(max_examples=150, deadline=None)
@given(exact=st.frozensets(st.tuples(_SYSTEMS, _CODES), max_size=4),
       prefixes=st.frozensets(st.tuples(_SYSTEMS, _CODES), max_size=4),
       ranges=st.lists(st.tuples(_SYSTEMS, _CODES, _CODES), max_size=2),
       records=st.lists(st.lists(st.tuples(_SYSTEMS, _CODES), min_size=1, max_size=3), min_size=1, max_size=8))
def test_code_set_memo_agrees_with_matching_every_time(exact, prefixes, ranges, records):
    """Asked twice, and after the memo restarts, the memo gives the uncached answer."""
    codes = CodeSetInfo("cs", "code set", "conditions", exact=exact, prefixes=prefixes, ranges=tuple(ranges))
    with mock.patch.object(facts_module, "_MEMO_LIMIT", 3):
        matcher = facts_module.code_set_matcher(codes)
        for coded in [tuple(r) for r in records] * 2:
            assert matcher(coded) == any(facts_module._code_matches(s, c, codes) for s, c in coded)


def test_equal_code_sets_from_two_trials_share_one_memo_and_different_ones_do_not():
    a = CodeSetInfo("hbv", "HBV", "conditions", exact=frozenset({("icd10", "B18.1")}))
    same = CodeSetInfo("hbv", "HBV", "conditions", exact=frozenset({("icd10", "B18.1")}))
    edited = CodeSetInfo("hbv", "HBV", "conditions", exact=frozenset({("icd10", "B18.0")}))
    assert facts_module.code_set_matcher(a) is facts_module.code_set_matcher(same)
    assert facts_module.code_set_matcher(edited)((("icd10", "B18.0"),))
    assert not facts_module.code_set_matcher(a)((("icd10", "B18.0"),))
