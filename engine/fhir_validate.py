"""Optional strict FHIR validation with `fhir.resources` (R4B classes), off the request path.

Stage: input, opt-in. Ingestion (`fhir.py`) reads only the elements screening uses, from plain
dicts, in a few milliseconds. Strict validation checks the whole bundle against the FHIR
models — required elements, datatypes, date formats, unknown fields — and costs far more
(measured on the 1.6 MB sample bundle: about 0.2 s warm and 0.3 s to import, against about
4 ms to ingest), so it is something a caller asks for (`elig screen --strict-fhir`), not a
default. R4B is used because the package has no R4 classes and its default R5 classes
reject valid R4 data; R4B accepts every R4 sample bundle the project tests with.
"""

from __future__ import annotations

from pydantic import ValidationError

MAX_PROBLEMS = 50


def strict_problems(doc: dict) -> list[dict]:
    """Every validation problem as `{"pointer": "/entry/3/resource/status", "message": …}`."""
    model = _model_for(doc)
    if model is None:
        return [{"pointer": "/resourceType", "message": "expected a Bundle or a Patient resource"}]
    try:
        model.model_validate(doc)
    except ValidationError as exc:
        return [_problem(e) for e in exc.errors()[:MAX_PROBLEMS]]
    return []


def _model_for(doc: dict):
    kind = doc.get("resourceType") if isinstance(doc, dict) else None
    if kind == "Bundle":
        from fhir.resources.R4B.bundle import Bundle
        return Bundle
    if kind == "Patient":
        from fhir.resources.R4B.patient import Patient
        return Patient
    return None


def _problem(error: dict) -> dict:
    parts = [str(p) for p in error["loc"] if not str(p).startswith("function-")]
    return {"pointer": "/" + "/".join(parts), "message": error["msg"]}
