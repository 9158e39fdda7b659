"""Glue between HTTP and the engine: read a patient, pick trials, screen, summarise.

Everything clinical happens in the engine (`engine.screen`, `engine.fhir`); this module only
turns its errors into problems, renames files for clients, and adds the cross-trial summary
of missing data that the CLI does not print.
"""

from __future__ import annotations

import re
from collections import defaultdict
from datetime import date

from pydantic import ValidationError

import engine
from engine.compiler import CompiledTrial
from engine.fhir import FhirError, bundle_to_patient
from engine.patient import Patient
from engine.results import TrialResult

from .models import CriteriaFile, FhirDocument, MissingData, ScreenResponse
from .problems import FieldError, Problem, validation_problem
from .registry import Snapshot

_LOINC_NOTE = re.compile(r" \(LOINC [^)]*\)")


def read_patient(document: Patient | FhirDocument, patient_id: str | None = None, pointer: str = "/patient",
                 observation_codes: frozenset[str] | None = None) -> tuple[Patient, list[str]]:
    """The patient and FHIR ingestion's notes; a FHIR document that holds no patient is a 400.

    With `observation_codes` (the snapshot's), observations no loaded trial reads are counted,
    not read: a 300-resource record is mostly vital signs and panels no criterion looks at.
    """
    if isinstance(document, Patient):
        return document, []
    try:
        ingested = bundle_to_patient(document.document(), patient_id=patient_id, observation_codes=observation_codes)
    except FhirError as exc:
        raise Problem(400, "unscreenable-fhir", str(exc)) from None
    except ValidationError as exc:  # ingestion repairs what it can; what is left is the document's fault
        raise validation_problem(exc, (pointer.strip("/"),)) from None
    return ingested.patient, ingested.lines()


def select_trials(snapshot: Snapshot, trial_ids: list[str] | None, pointer: str = "/trial_ids") -> list[CompiledTrial]:
    """The requested trials, or all; each unknown id is reported with its position."""
    if not trial_ids:
        return list(snapshot.trials.values())
    unknown = [FieldError(pointer=f"{pointer}/{i}", detail=f"no trial {tid!r} is loaded", code="unknown_trial")
               for i, tid in enumerate(trial_ids) if tid not in snapshot.trials]
    if unknown:
        raise Problem(422, "validation", f"{len(unknown)} unknown trial id(s)", unknown)
    return [snapshot.trials[tid] for tid in dict.fromkeys(trial_ids)]


def screen_patient(snapshot: Snapshot, patient: Patient, notes: list[str], as_of: date | None,
                   trials: list[CompiledTrial], explain: bool = True) -> ScreenResponse:
    """Screen with the engine's facade and add what makes the decision reproducible."""
    result = engine.screen(patient, trials, as_of, explain=explain)
    ranked = [t.model_copy(update={"source": snapshot.source_files(snapshot.trials[t.trial_id])[0][0]})
              for t in result.trials]
    return ScreenResponse(
        as_of=result.as_of, engine_version=engine.__version__, patient_id=result.patient_id, trials=ranked,
        missing_data=missing_data(ranked), criteria_files=criteria_files(snapshot, trials),
        rules_generation=snapshot.generation, ingest_notes=notes)


def criteria_files(snapshot: Snapshot, trials: list[CompiledTrial]) -> list[CriteriaFile]:
    """Each file used (trial files and libraries) once, with the hash of the text compiled."""
    seen: dict[tuple[str, str], None] = {}
    for trial in trials:
        for pair in snapshot.source_files(trial):
            seen.setdefault(pair)
    return [CriteriaFile(file=f, sha256=h) for f, h in sorted(seen)]


def missing_data(results: list[TrialResult]) -> list[MissingData]:
    """Across possibly-eligible trials: each missing datum, the trials it would decide, most first.

    Only possibly-eligible trials count: an ineligible trial is decided already, and more data
    cannot make it eligible. "INR (LOINC 6301-6) within 7 days" and "INR within 7 days" (a score's
    input) are one datum, shown with its codes.
    """
    trials: dict[str, list[str]] = defaultdict(list)
    criteria: dict[str, list[str]] = defaultdict(list)
    shown: dict[str, str] = {}
    for t in results:
        if t.verdict != "possibly_eligible":
            continue
        for c in t.criteria:
            for datum in (d for m in c.missing for d in _data(m)):
                key = _LOINC_NOTE.sub("", datum)
                shown[key] = max(shown.get(key, ""), datum, key=len)
                if t.trial_id not in trials[key]:
                    trials[key].append(t.trial_id)
                if (ref := f"{t.trial_id}/{c.key}") not in criteria[key]:
                    criteria[key].append(ref)
    ordered = sorted(trials, key=lambda k: (-len(trials[k]), k))
    return [MissingData(data=shown[k], decides=len(trials[k]), trials=trials[k], criteria=criteria[k],
                        summary=f"{shown[k]}: decides {len(trials[k])} trial{'s' if len(trials[k]) != 1 else ''}")
            for k in ordered]


def _data(missing: str) -> list[str]:
    """A score's "bilirubin within 7 days, INR within 7 days" as its separate data."""
    parts, depth, start = [], 0, 0
    for i, ch in enumerate(missing):
        depth += {"(": 1, ")": -1}.get(ch, 0)
        if ch == "," and depth == 0:
            parts.append(missing[start:i].strip())
            start = i + 1
    parts.append(missing[start:].strip())
    return parts if len(parts) > 1 and all(" within " in p for p in parts) else [missing]
