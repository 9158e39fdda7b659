"""Reading patients: native JSON or FHIR R4, told apart by content; files, folders, NDJSON.

Stage: input. A patient document is FHIR when it has a `resourceType` (a Bundle or a bare
Patient); otherwise it is the engine's own JSON form. Folders are read in name order and NDJSON
line by line, so screening many patients keeps memory flat.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from .fhir import bundle_to_patient, looks_like_fhir
from .patient import Patient

PATIENT_SUFFIXES = (".json", ".ndjson", ".jsonl")


@dataclass
class LoadedPatient:
    patient: Patient
    origin: str  # file name (and line for NDJSON)
    notes: list = field(default_factory=list)  # FHIR ingestion report


def patient_from_document(doc: dict, origin: str = "<input>") -> LoadedPatient:
    """Parse one document; raises FhirError or pydantic ValidationError on bad input."""
    if looks_like_fhir(doc):
        ingested = bundle_to_patient(doc)
        return LoadedPatient(ingested.patient, origin, list(ingested.report))
    return LoadedPatient(Patient.model_validate(doc), origin)


def iter_patients(path: Path) -> Iterator[LoadedPatient]:
    """Every patient in a file, an NDJSON file or a folder of files, one at a time."""
    if path.is_dir():
        for child in sorted(p for p in path.iterdir() if p.suffix in PATIENT_SUFFIXES):
            yield from iter_patients(child)
        return
    if path.suffix in (".ndjson", ".jsonl"):
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    yield patient_from_document(json.loads(line), f"{path.name}:{number}")
        return
    yield patient_from_document(json.loads(path.read_text(encoding="utf-8")), path.name)
