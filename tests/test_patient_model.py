"""The native patient model: its published JSON Schema, partial dates, code systems."""

import json
from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.patient import Coding, Patient, date_bounds, patient_json_schema

SCHEMA = Path(__file__).resolve().parents[1] / "schemas" / "patient.schema.json"


def test_published_schema_is_up_to_date():
    assert json.loads(SCHEMA.read_text(encoding="utf-8")) == patient_json_schema(), \
        "regenerate schemas/patient.schema.json from engine.patient.patient_json_schema()"


@pytest.mark.parametrize("text,bounds", [
    ("2024", (date(2024, 1, 1), date(2024, 12, 31))),
    ("2024-02", (date(2024, 2, 1), date(2024, 2, 29))),
    ("2023-02", (date(2023, 2, 1), date(2023, 2, 28))),
    ("2024-05-01", (date(2024, 5, 1), date(2024, 5, 1))),
    ("2024-05-01T10:00:00+08:00", (date(2024, 5, 1), date(2024, 5, 1))),
    ("2024-13", None), ("yesterday", None), (None, None),
])
def test_partial_dates_are_intervals(text, bounds):
    assert date_bounds(text) == bounds


def test_fhir_system_uris_become_short_names():
    assert Coding(system="http://hl7.org/fhir/sid/icd-10-cm", code="C22.0").system == "icd10cm"
    assert Coding(system="http://loinc.org", code="1975-2").system == "loinc"


def test_bad_records_are_rejected_with_a_path():
    with pytest.raises(ValidationError) as info:
        Patient.model_validate({"id": "p", "observations": [{"id": "o", "codes": [], "effective": "2024-99-01"}]})
    locations = {tuple(e["loc"]) for e in info.value.errors()}
    assert ("observations", 0, "codes") in locations and ("observations", 0, "effective") in locations
