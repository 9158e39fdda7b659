"""CDS Hooks 2.0 request and response models (sections 1–5 of the spec).

The spec forbids `null`, `""`, `[]` and `{}` for optional fields, so responses are serialised
with `exclude_none` and optional lists default to None, never to an empty list.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, model_validator

SUMMARY_LIMIT = 139  # "<140-character"
SCREENING_DATE_EXTENSION = "org.elig.screening-date"


class CdsService(BaseModel):
    hook: str
    title: str | None = None
    description: str
    id: str
    prefetch: dict[str, str] | None = None
    usageRequirements: str | None = None


class Discovery(BaseModel):
    services: list[CdsService]


class FhirAuthorization(BaseModel):
    model_config = ConfigDict(extra="allow")

    access_token: str
    token_type: Literal["Bearer", "bearer"] = "Bearer"
    expires_in: int | None = None
    scope: str | None = None
    subject: str | None = None
    patient: str | None = None


class PatientViewContext(BaseModel):
    model_config = ConfigDict(extra="allow")

    userId: str
    patientId: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-.]+$",
                           description="The FHIR Patient.id (FHIR id syntax).")
    encounterId: str | None = None


class CdsRequest(BaseModel):
    hook: Literal["patient-view"]
    hookInstance: str = Field(min_length=1, max_length=200)
    fhirServer: HttpUrl | None = None
    fhirAuthorization: FhirAuthorization | None = None
    context: PatientViewContext
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = Field(
        None, description=f"`{SCREENING_DATE_EXTENSION}`: screening date YYYY-MM-DD (default today).")

    @model_validator(mode="after")
    def _server_with_authorization(self) -> "CdsRequest":
        if self.fhirAuthorization is not None and self.fhirServer is None:
            raise ValueError("fhirServer is required when fhirAuthorization is given")
        return self

    def screening_date(self) -> date | None:
        value = (self.extension or {}).get(SCREENING_DATE_EXTENSION)
        if value is None:
            return None
        if not isinstance(value, str):
            raise ValueError(f"{SCREENING_DATE_EXTENSION} must be a date as YYYY-MM-DD")
        return date.fromisoformat(value)


class Coding(BaseModel):
    system: str
    code: str
    display: str | None = None


class CardSource(BaseModel):
    label: str
    url: str | None = None
    topic: Coding | None = None


class Link(BaseModel):
    label: str
    url: str
    type: Literal["absolute", "smart"] = "absolute"


class Card(BaseModel):
    uuid: str
    summary: str = Field(max_length=SUMMARY_LIMIT)
    detail: str | None = None
    indicator: Literal["info", "warning", "critical"] = "info"
    source: CardSource
    links: list[Link] | None = None
    overrideReasons: list[Coding] | None = None


class CdsResponse(BaseModel):
    cards: list[Card]


class OverrideReason(BaseModel):
    reason: Coding | None = None
    userComment: str | None = None


class AcceptedSuggestion(BaseModel):
    id: str


class FeedbackItem(BaseModel):
    card: str
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] | None = None
    overrideReason: OverrideReason | None = None
    outcomeTimestamp: datetime


class FeedbackRequest(BaseModel):
    feedback: list[FeedbackItem] = Field(min_length=1)


class FeedbackAck(BaseModel):
    counted: int = Field(description="Items counted now.")
    repeated: int = Field(description="Items already counted before (feedback is idempotent).")


class FeedbackCounts(BaseModel):
    accepted: int
    overridden: int
    override_reasons: dict[str, int]
