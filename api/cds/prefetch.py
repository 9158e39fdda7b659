"""Prefetch templates derived from the loaded trials: ask the EHR for what criteria read, no more.

Patient always. Observation only when some trial tests an analyte or a score, and then only
the LOINC codes in use. Condition, the three medication resources, Procedure and ResearchSubject
only when some trial's code sets are of that kind. Medication and ResearchStudy come along by
`_include`, since ingestion reads drug codes and study names through those references.
"""

from __future__ import annotations

from urllib.parse import quote

from ..registry import Snapshot

PATIENT = "{{context.patientId}}"
LOINC = "http://loinc.org"

_BY_KIND: dict[str, dict[str, str]] = {
    "conditions": {"conditions": f"Condition?patient={PATIENT}"},
    "medications": {
        "medication_requests": f"MedicationRequest?patient={PATIENT}&_include=MedicationRequest:medication",
        "medication_statements": f"MedicationStatement?patient={PATIENT}&_include=MedicationStatement:medication",
        "medication_administrations":
            f"MedicationAdministration?patient={PATIENT}&_include=MedicationAdministration:medication",
    },
    "procedures": {"procedures": f"Procedure?patient={PATIENT}"},
    "trials": {"research_subjects": f"ResearchSubject?patient={PATIENT}&_include=ResearchSubject:study"},
}


def templates(snapshot: Snapshot) -> dict[str, str]:
    """Prefetch key → FHIR query template, for the trials in this snapshot."""
    checked = [t.checked for t in snapshot.trials.values()]
    out = {"patient": f"Patient/{PATIENT}"}
    codes = sorted({code for c in checked for a in c.analytes for code in a.loinc})
    if codes:
        out["observations"] = f"Observation?patient={PATIENT}&code=" + ",".join(f"{LOINC}|{c}" for c in codes)
    kinds = {s.kind for c in checked for s in c.code_sets}
    for kind, queries in _BY_KIND.items():
        if kind in kinds:
            out.update(queries)
    return out


def expand(template: str, context: dict[str, object]) -> str:
    """Fill `{{context.x}}` tokens with URL-quoted first-level primitive context values."""
    out = template
    for name, value in context.items():
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            out = out.replace("{{context.%s}}" % name, quote(str(value), safe=""))
    return out
