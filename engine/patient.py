"""Patient records: the engine's own model, the input of every evaluation.

Stage: input. FHIR ingestion (`engine/fhir.py`) and the native JSON form both end here.
The model keeps only what criteria read, and every item keeps the id of the record it came
from (`Observation/abc`) so that explanations can cite it. Dates are FHIR-style partial
dates (`2024`, `2024-05`, `2024-05-01`, or a dateTime); `date_bounds` turns one into the
interval of days it may mean, so that time windows can answer *unknown* when it straddles
an edge.

>>> p = Patient.model_validate({"id": "p1", "birth_date": "1970-05-02", "sex": "female"})
>>> p.sex
'female'
"""

from __future__ import annotations

import calendar
import functools
import re
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

# Short names for the code systems criteria files use, keyed by FHIR system URI.
SYSTEM_ALIASES: dict[str, str] = {
    "http://loinc.org": "loinc",
    "http://snomed.info/sct": "snomed",
    "http://hl7.org/fhir/sid/icd-10-cm": "icd10cm",
    "http://hl7.org/fhir/sid/icd-10": "icd10",
    "http://www.whocc.no/atc": "atc",
    "http://www.nlm.nih.gov/research/umls/rxnorm": "rxnorm",
    "http://unitsofmeasure.org": "ucum",
    "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation": "v3-interpretation",
}
KNOWN_SYSTEMS = frozenset(SYSTEM_ALIASES.values()) | {"local", "elig"}

_PARTIAL_DATE = re.compile(r"^(\d{4})(?:-(\d{2})(?:-(\d{2})(?:T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?)?)?$")

ObservationStatus = Literal[
    "registered", "preliminary", "final", "amended", "corrected", "cancelled", "entered-in-error", "unknown"
]
ClinicalStatus = Literal["active", "recurrence", "relapse", "inactive", "remission", "resolved"]
VerificationStatus = Literal["unconfirmed", "provisional", "differential", "confirmed", "refuted", "entered-in-error"]


def normalise_system(system: str) -> str:
    """Map a FHIR system URI to the short name criteria use; short names pass through."""
    return SYSTEM_ALIASES.get(system, system)


@functools.lru_cache(maxsize=4096)
def date_bounds(value: str | None) -> tuple[date, date] | None:
    """The first and last day a partial date can mean; None when absent or malformed.

    Remembered: validation and every time-window test ask again about the same few dates.
    """
    if not value:
        return None
    m = _PARTIAL_DATE.match(value)
    if not m:
        return None
    year, month, day = int(m.group(1)), m.group(2), m.group(3)
    try:
        if day:
            d = date(year, int(month), int(day))
            return d, d
        if month:
            last = calendar.monthrange(year, int(month))[1]
            return date(year, int(month), 1), date(year, int(month), last)
        return date(year, 1, 1), date(year, 12, 31)
    except ValueError:
        return None


class _Item(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Coding(_Item):
    """A code in a code system; `system` is kept as its short name (`loinc`, `snomed`, …)."""

    system: str
    code: str
    display: str | None = None

    @field_validator("system")
    @classmethod
    def _short_system(cls, v: str) -> str:
        return normalise_system(v)


class Quantity(_Item):
    """A measured amount. `unit` is the text as recorded; conversion happens at evaluation."""

    value: float
    unit: str | None = None
    comparator: Literal["<", "<=", ">=", ">"] | None = None


def _check_partial_date(v: str | None) -> str | None:
    if v is not None and date_bounds(v) is None:
        raise ValueError(f"not a date: {v!r} (want YYYY, YYYY-MM, YYYY-MM-DD or a dateTime)")
    return v


class Observation(_Item):
    """A lab result or other observation: a quantity, a coded value, text or a boolean."""

    id: str = Field(description="Source record id, e.g. 'Observation/123'.")
    codes: list[Coding] = Field(min_length=1)
    status: ObservationStatus = "final"
    effective: str | None = None
    value: Quantity | None = None
    value_codes: list[Coding] = []
    value_text: str | None = None
    value_boolean: bool | None = None
    interpretation: list[str] = Field(default=[], description="v3 interpretation codes: POS, NEG, H, L, …")
    reference_low: Quantity | None = None
    reference_high: Quantity | None = None
    data_absent_reason: str | None = None

    _dates = field_validator("effective")(_check_partial_date)


class Condition(_Item):
    """A diagnosis. Refuted and entered-in-error ones never count; resolved ones only as history."""

    id: str
    codes: list[Coding] = Field(min_length=1)
    clinical_status: ClinicalStatus | None = None
    verification_status: VerificationStatus | None = None
    onset: str | None = None
    abatement: str | None = None
    recorded: str | None = None

    _dates = field_validator("onset", "abatement", "recorded")(_check_partial_date)


class Medication(_Item):
    """A medication exposure from a statement, request or administration."""

    id: str
    codes: list[Coding] = Field(min_length=1)
    source: Literal["statement", "request", "administration"] = "statement"
    status: str = "active"
    route: str | None = Field(default=None, description="Route as text or code display, e.g. 'oral', 'topical'.")
    start: str | None = None
    end: str | None = None

    _dates = field_validator("start", "end")(_check_partial_date)


class Procedure(_Item):
    """A procedure performed on the patient."""

    id: str
    codes: list[Coding] = Field(min_length=1)
    status: str = "completed"
    start: str | None = None
    end: str | None = None

    _dates = field_validator("start", "end")(_check_partial_date)


class TrialParticipation(_Item):
    """Enrolment in another study (FHIR ResearchSubject)."""

    id: str
    study: str | None = None
    status: str = "on-study"
    start: str | None = None
    end: str | None = None

    _dates = field_validator("start", "end")(_check_partial_date)


class Fact(_Item):
    """A recorded yes/no status such as pregnancy, breastfeeding or dialysis, with its date."""

    id: str
    name: str = Field(description="The fact's name as criteria use it, e.g. 'pregnant', 'on_dialysis'.")
    value: bool
    date: str | None = None

    _dates = field_validator("date")(_check_partial_date)


class Patient(BaseModel):
    """One patient's record, as screening reads it."""

    model_config = ConfigDict(extra="forbid")

    id: str
    birth_date: str | None = None
    sex: Literal["male", "female", "other", "unknown"] | None = None
    deceased: bool | None = None
    observations: list[Observation] = []
    conditions: list[Condition] = []
    medications: list[Medication] = []
    procedures: list[Procedure] = []
    trials: list[TrialParticipation] = []
    facts: list[Fact] = []

    _dates = field_validator("birth_date")(_check_partial_date)


def patient_json_schema() -> dict:
    """The published JSON Schema of the native patient form."""
    return Patient.model_json_schema()
