"""Request and response models of the HTTP API (CDS Hooks models are in `api/cds/models.py`).

The screening results themselves are the engine's models (`engine.results`), reused unchanged
so that the API, the CLI's `--json` and the web page show one shape.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from engine.fhir import looks_like_fhir
from engine.patient import Patient
from engine.results import TrialResult

from .problems import ProblemDetails

_ISO_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class FhirDocument(BaseModel):
    """A FHIR R4 Bundle (collection, searchset, transaction, batch or document) or a bare Patient.

    Only `resourceType` is checked here; `engine.fhir` reads the rest tolerantly and reports
    what it left out in `ingest_notes`.
    """

    model_config = ConfigDict(extra="allow", json_schema_extra={
        "example": {"resourceType": "Bundle", "type": "collection", "entry": [
            {"resource": {"resourceType": "Patient", "id": "p1", "gender": "male", "birthDate": "1980-02-03"}}]}})

    resourceType: Literal["Bundle", "Patient"]

    def document(self) -> dict:
        """The document as parsed, without copying its (possibly large) content."""
        return {"resourceType": self.resourceType, **(self.model_extra or {})}


def _patient_kind(value: Any) -> str:
    """FHIR when the document has a FHIR resourceType, else the engine's native form."""
    if isinstance(value, FhirDocument):
        return "fhir"
    return "fhir" if looks_like_fhir(value) else "native"


PatientDocument = Annotated[
    Annotated[Patient, Tag("native")] | Annotated[FhirDocument, Tag("fhir")],
    Discriminator(_patient_kind),
]


def _iso_day(value: Any) -> Any:
    """Only `YYYY-MM-DD`: pydantic would also take timestamps, which no one means here."""
    if value is None or isinstance(value, date):
        return value
    if not isinstance(value, str) or not _ISO_DAY.match(value):
        raise ValueError("expected a date as YYYY-MM-DD")
    return value


class ScreenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    patient: PatientDocument = Field(description="The engine's patient JSON, or a FHIR R4 Bundle / Patient; "
                                                 "told apart by `resourceType`.")
    as_of: date | None = Field(None, description="Screening date, YYYY-MM-DD; default today (server time).")
    trial_ids: list[str] | None = Field(None, min_length=1, description="Only these trials; default all loaded.")
    patient_id: str | None = Field(None, description="Which Patient to screen when a Bundle holds several.")
    explain: bool = Field(True, description="False: statuses and verdicts only, without explanations, evidence "
                                            "or missing data (several times cheaper, for ranking many patients).")

    _day = field_validator("as_of", mode="before")(classmethod(lambda cls, v: _iso_day(v)))


class CriteriaFile(BaseModel):
    file: str = Field(description="Path relative to the rules root, e.g. trials/NCT01844063.elig.")
    sha256: str


class MissingData(BaseModel):
    """One datum that would settle unknown criteria, and the trials it would decide."""

    data: str = Field(description="What to obtain, as the criteria name it, e.g. 'INR (LOINC 6301-6) within 7 days'.")
    decides: int = Field(description="How many possibly-eligible trials this datum would help decide.")
    trials: list[str]
    criteria: list[str] = Field(description="`<trial id>/<criterion key>` of every unknown criterion that needs it.")
    summary: str = Field(description="E.g. 'HBsAg (LOINC 5196-1) within 1 year: decides 3 trials'.")


class ScreenResponse(BaseModel):
    as_of: str
    engine_version: str
    patient_id: str
    trials: list[TrialResult] = Field(description="Ranked: eligible, possibly eligible by fewest unknowns, ineligible.")
    missing_data: list[MissingData] = Field(description="Data that would resolve unknowns, most decisive first.")
    criteria_files: list[CriteriaFile] = Field(description="Every criteria file used, with its hash, to reproduce "
                                                           "the decision.")
    rules_generation: int = Field(description="Increases on every rules reload of this server process.")
    ingest_notes: list[str] = Field(description="What FHIR ingestion skipped, dropped, cleared or inferred.")


class BatchLine(BaseModel):
    """One NDJSON output line: the result for input line `line`, or why it could not be screened."""

    line: int
    result: ScreenResponse | None = None
    error: ProblemDetails | None = None


class CriterionInfo(BaseModel):
    key: str
    kind: Literal["inclusion", "exclusion"]
    text: str
    line: int
    manual: bool
    manual_reason: str | None = None
    applies_when: str | None = Field(None, description="Source of the `when` condition, if any.")
    rule: str | None = Field(None, description="Source of the criterion's expression; none for manual ones.")


class AnalyteOut(BaseModel):
    name: str
    title: str
    kind: str
    loinc: list[str]
    unit: str | None = None


class CodeSetOut(BaseModel):
    name: str
    title: str
    kind: str


class TrialSummary(BaseModel):
    trial_id: str
    title: str
    meta: dict[str, Any]
    content_hash: str = Field(description="SHA-256 of the criteria file and its imports.")
    source: str = Field(description="The trial's criteria file, relative to the rules root.")
    criteria_count: int
    serving_previous_version: bool = Field(
        description="True when the file is broken on disk and the last good version is still served.")


class TrialList(BaseModel):
    engine_version: str
    rules_generation: int
    trials: list[TrialSummary]


class TrialDetail(TrialSummary):
    engine_version: str
    criteria: list[CriterionInfo]
    source_text: str = Field(description="The criteria file as compiled.")
    files: list[CriteriaFile] = Field(description="The criteria file and every library it imports, with hashes.")
    analytes: list[AnalyteOut]
    code_sets: list[CodeSetOut]
    facts: list[str]


class DiagnosticOut(BaseModel):
    """`elig check --format json`'s diagnostic."""

    code: str
    severity: Literal["error", "warning"]
    message: str
    file: str
    line: int
    column: int
    end_line: int
    end_column: int
    hint: str | None = None
    details: list[str] = []
    excerpt: str


class CheckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(description="Criteria text: a trial file or a library.")
    name: str = Field("input.elig", pattern=r"^[A-Za-z0-9._-]{1,100}$",
                      description="File name to report diagnostics under (a bare name).")


class CheckResponse(BaseModel):
    ok: bool = Field(description="No errors (warnings allowed).")
    errors: int
    warnings: int
    diagnostics: list[DiagnosticOut]
    engine_version: str


class ReloadResponse(BaseModel):
    ok: bool = Field(description="Every file compiled; false when a broken file kept its last good version "
                                 "or was left out.")
    generation: int
    loaded_at: str
    trials: list[str]
    added: list[str]
    updated: list[str]
    removed: list[str]
    kept_previous: list[str] = Field(description="Trials whose file now fails; their last good version is served.")
    failed_files: list[str]
    diagnostics: list[DiagnosticOut]
    engine_version: str


class Health(BaseModel):
    status: Literal["ok"] = "ok"


class Ready(BaseModel):
    status: Literal["ready", "not_ready"]
    trials: int
    rules_generation: int
    failed_files: list[str]
    engine_version: str
