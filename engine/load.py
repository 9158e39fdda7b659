"""Reading patients: native JSON or FHIR R4, told apart by content; files, folders, NDJSON.

Stage: input. A patient document is FHIR when it has a `resourceType` (a Bundle or a bare
Patient); otherwise it is the engine's own JSON form. Folders are read in name order and NDJSON
line by line, so screening many patients keeps memory flat.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import orjson

from .fhir import FhirError, bundle_to_patient, looks_like_fhir
from .fhir_validate import strict_problems
from .patient import Patient

PATIENT_SUFFIXES = (".json", ".ndjson", ".jsonl")


def parse_json(data: str | bytes):
    """Strict JSON (RFC 8259: no NaN, Infinity or overflowing numbers), parsed by orjson.

    Half the in-process cost of screening a 300-resource bundle was `json.loads` (4.7 ms
    against 2.2 ms; bench/end_to_end.py), and NaN would reach the engine as a number that
    compares false with every threshold. Errors are `json.JSONDecodeError`s.
    """
    return orjson.loads(data)


@dataclass
class LoadedPatient:
    patient: Patient
    origin: str  # file name (and line for NDJSON)
    notes: list = field(default_factory=list)  # FHIR ingestion report


def patient_from_document(doc: dict, origin: str = "<input>", *, strict_fhir: bool = False,
                          observation_codes: frozenset[str] | None = None) -> LoadedPatient:
    """Parse one document; raises FhirError or pydantic ValidationError on bad input.

    With `strict_fhir`, a FHIR document must also pass full R4 validation (`fhir_validate`);
    `observation_codes` is passed to `bundle_to_patient`.
    """
    if looks_like_fhir(doc) and strict_fhir:
        problems = strict_problems(doc)
        if problems:
            shown = "; ".join(f"{p['pointer']}: {p['message']}" for p in problems[:5])
            raise FhirError(f"not valid FHIR R4 ({len(problems)} problem(s)): {shown}")
    if looks_like_fhir(doc):
        ingested = bundle_to_patient(doc, observation_codes=observation_codes)
        return LoadedPatient(ingested.patient, origin, list(ingested.report))
    return LoadedPatient(Patient.model_validate(doc), origin)


def iter_patients(path: Path, *, strict_fhir: bool = False,
                  observation_codes: frozenset[str] | None = None) -> Iterator[LoadedPatient]:
    """Every patient in a file, an NDJSON file or a folder of files, one at a time."""
    options = {"strict_fhir": strict_fhir, "observation_codes": observation_codes}
    if path.is_dir():
        for child in sorted(p for p in path.iterdir() if p.suffix in PATIENT_SUFFIXES):
            yield from iter_patients(child, **options)
        return
    if path.suffix in (".ndjson", ".jsonl"):
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    yield patient_from_document(parse_json(line), f"{path.name}:{number}", **options)
        return
    doc = parse_json(path.read_bytes())
    yield patient_from_document(doc, path.name, **options)
