"""Small builders for tests: patient records (one line per lab, diagnosis or drug), and the
parser that hypothesis generates criteria text from."""

from __future__ import annotations

import functools
import itertools

from engine.patient import Patient

AS_OF = "2026-11-01"
_ids = itertools.count(1)

LOINC = {
    "bilirubin_total": "1975-2", "bilirubin_total_si": "14631-6", "creatinine": "2160-0", "sodium": "2951-2",
    "albumin": "1751-7", "inr": "6301-6", "pt": "5902-2", "pta": "3289-6", "hbsag": "5196-1", "hcg": "2106-3",
}
POSITIVE, NEGATIVE = "10828004", "260385009"


def lab(analyte: str, value: float, unit: str | None, day: str = "2026-10-30", **extra) -> dict:
    code = LOINC[analyte]
    obs = {"id": f"Observation/{analyte}-{next(_ids)}", "codes": [{"system": "loinc", "code": code}],
           "effective": day, "value": {"value": value, "unit": unit}}
    obs.update(extra)
    return obs


def qual(analyte: str, positive: bool | None, day: str = "2026-10-30", **extra) -> dict:
    obs = {"id": f"Observation/{analyte}-{next(_ids)}", "codes": [{"system": "loinc", "code": LOINC[analyte]}],
           "effective": day}
    if positive is not None:
        obs["value_codes"] = [{"system": "snomed", "code": POSITIVE if positive else NEGATIVE}]
    obs.update(extra)
    return obs


def condition(system: str, code: str, onset: str | None = "2020-01-01", **extra) -> dict:
    item = {"id": f"Condition/{code}-{next(_ids)}", "codes": [{"system": system, "code": code}], "onset": onset,
            "clinical_status": "active", "verification_status": "confirmed"}
    item.update(extra)
    return item


def medication(system: str, code: str, start: str, display: str | None = None, **extra) -> dict:
    item = {"id": f"MedicationStatement/{code}-{next(_ids)}",
            "codes": [{"system": system, "code": code, "display": display}], "start": start, "status": "completed"}
    item.update(extra)
    return item


def patient(birth_date: str | None = "1980-06-15", sex: str | None = "male", **sections) -> Patient:
    return Patient.model_validate({"id": "test", "birth_date": birth_date, "sex": sex, **sections})


def aclf_patient(**overrides) -> dict:
    """A male with HBV liver failure who meets every NCT01844063 criterion (MELD 28)."""
    doc = {
        "birth_date": "1980-06-15", "sex": "male",
        "observations": [
            lab("bilirubin_total", 15, "mg/dL"), lab("creatinine", 1.5, "mg/dL"), lab("inr", 2.0, None),
            lab("sodium", 135, "mmol/L"), qual("hbsag", True, day="2026-06-01"),
        ],
        "conditions": [condition("icd10cm", "K72.10", onset="2026-10-20"), condition("icd10cm", "B18.1")],
    }
    doc.update(overrides)
    return doc


@functools.cache
def grammar_lark():
    """A parser built from the grammar text, for hypothesis's `from_lark` (which reads the
    grammar's rules): the engine's own may come from lark's table cache, which keeps none."""
    from lark import Lark

    from engine.parser import _grammar

    return Lark(_grammar(), parser="lalr", keep_all_tokens=True, maybe_placeholders=False)
