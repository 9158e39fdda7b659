"""Screening results as pydantic models: the JSON the CLI prints and the API returns.

Stage: output. `evidence` holds the evaluation trace as recorded by the runtime: one entry per
evaluated node, with `status`, the source `text` of the node, the `values` used (as recorded and
converted, with date and source record), the `threshold`, and for unknown results the `reason`
and the data that is `missing`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

Status = Literal["met", "not_met", "unknown", "not_applicable", "manual"]
Verdict = Literal["eligible", "possibly_eligible", "ineligible"]


class CriterionResult(BaseModel):
    key: str = Field(description="The criterion's key in its file, e.g. I3 or E6.")
    kind: Literal["inclusion", "exclusion"]
    text: str = Field(description="The protocol's verbatim criterion text.")
    line: int = Field(description="Line of the criterion in its criteria file.")
    status: Status
    explanation: str = Field(description="One sentence a clinician can read.")
    evidence: list[dict] = Field(description="Trace of every evaluated node, parents first.")
    missing: list[str] = Field(description="For an unknown criterion: the data that would decide it.")


class TrialResult(BaseModel):
    trial_id: str
    title: str
    verdict: Verdict
    criteria: list[CriterionResult]
    counts: dict[str, int]
    checks_for_a_person: list[str] = Field(description="Manual criteria, left to the screening clinician.")
    content_hash: str = Field(description="SHA-256 of the criteria file and its imports, for reproducibility.")
    source: str
    explained: bool = Field(True, description="False when statuses were asked for without explanations: "
                                              "`explanation`, `evidence` and `missing` are then empty.")


class ScreeningResult(BaseModel):
    as_of: str
    patient_id: str
    trials: list[TrialResult]
