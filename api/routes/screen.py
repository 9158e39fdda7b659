"""`POST /v1/screen` (one patient, JSON) and `POST /v1/screen/batch` (many, NDJSON)."""

from __future__ import annotations

import asyncio
import json
from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from starlette.concurrency import run_in_threadpool
from pydantic import TypeAdapter, ValidationError

from .. import batch, strict_json
from ..strict_json import StrictJsonRoute
from ..deps import RulesDep, SettingsDep, require_key
from ..models import BatchLine, PatientDocument, ScreenRequest, ScreenResponse
from ..problems import (PROBLEM_TYPES, FieldError, Problem, ProblemDetails, field_errors, log_exception,
                        problem_response)
from ..registry import Snapshot
from ..screening import read_patient, screen_patient, select_trials

router = APIRouter(prefix="/v1", tags=["screening"], dependencies=[Depends(require_key)],
                   route_class=StrictJsonRoute)
_DOCUMENT = TypeAdapter(PatientDocument)
_PROBLEMS = {422: {"model": ProblemDetails, "description": "Invalid field(s); `errors` points at each.",
                   "content": {"application/problem+json": {}}},
             400: {"model": ProblemDetails, "description": "Malformed JSON, or a FHIR document with no patient.",
                   "content": {"application/problem+json": {}}},
             413: {"model": ProblemDetails, "description": "Body over the configured limit.",
                   "content": {"application/problem+json": {}}}}


# Screening is CPU work under the GIL, so a worker's thread pool adds a hop per request (about
# 1 ms of CPU here) without adding parallelism: a typical patient is screened on the event loop
# (bench/end_to_end.py: 295 -> 473 requests/s statuses-only, 60 -> 100/s for a 387 KiB bundle).
# A very large document goes to the pool, so one request cannot hold the loop for long.
INLINE_MAX_BYTES = 1024 * 1024


@router.post("/screen", response_model=ScreenResponse, responses=_PROBLEMS)
async def screen(request: Request, body: ScreenRequest, rules: RulesDep) -> Response:
    """Screen one patient against every loaded trial (or `trial_ids`), ranked, with explanations.

    The result is serialised here, once, by pydantic: FastAPI would validate the 40 kB model
    again first. Scale across cores with `elig serve --workers N`.
    """
    if int(request.headers.get("content-length") or INLINE_MAX_BYTES + 1) <= INLINE_MAX_BYTES:
        return _screen(body, rules)
    return await run_in_threadpool(_screen, body, rules)


def _screen(body: ScreenRequest, rules: Snapshot) -> Response:
    trials = select_trials(rules, body.trial_ids)
    patient, notes = read_patient(body.patient, body.patient_id, observation_codes=rules.observation_codes)
    result = screen_patient(rules, patient, notes, body.as_of, trials, body.explain)
    return Response(result.model_dump_json(), media_type="application/json")


def _screen_line(rules: Snapshot, trials, as_of: date | None, instance: str, number: int, line: bytes,
                 explain: bool = True) -> bytes:
    """One NDJSON line → one output line; bad input becomes an error line, never an exception."""
    try:
        document = _DOCUMENT.validate_python(strict_json.loads(line))
        patient, notes = read_patient(document, pointer="", observation_codes=rules.observation_codes)
        out = BatchLine(line=number, result=screen_patient(rules, patient, notes, as_of, trials, explain))
        return out.model_dump_json().encode("utf-8") + b"\n"
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as exc:
        return batch.error_line(number, 400, "malformed-json", f"Line {number} is not valid JSON: {exc}", instance)
    except ValidationError as exc:
        errors = field_errors(exc.errors(include_url=False, include_input=False))
        return batch.error_line(number, 422, "validation", f"{len(errors)} invalid field(s)", instance, errors)
    except Problem as exc:
        return batch.error_line(number, exc.status, exc.slug, exc.detail or PROBLEM_TYPES[exc.slug][0], instance,
                                exc.errors)
    except Exception as exc:  # noqa: BLE001 — one patient's failure must not end the others' screening
        log_exception(exc, instance)
        return batch.error_line(number, 500, "internal", f"Line {number} could not be screened.", instance)


_NDJSON_BODY = {"requestBody": {"required": True, "content": {batch.MEDIA_TYPE: {
    "schema": {"type": "string", "description": "One patient document (native JSON or FHIR) per line."}}}}}
_NDJSON_OUT = {200: {"model": BatchLine, "description": "One `BatchLine` per non-blank input line, in input order."}}


@router.post("/screen/batch", response_class=batch.NdjsonStream, status_code=200, openapi_extra=_NDJSON_BODY,
             responses={**_NDJSON_OUT, 413: _PROBLEMS[413], 422: _PROBLEMS[422]})
async def screen_batch(request: Request, rules: RulesDep, settings: SettingsDep,
                       as_of: Annotated[date | None, Query(description="Screening date, YYYY-MM-DD.")] = None,
                       trial_ids: Annotated[list[str] | None, Query(description="Only these trials.")] = None,
                       explain: Annotated[bool, Query(description="False: statuses and verdicts only.")] = True):
    """Screen many patients: NDJSON in, NDJSON out, in order, memory flat in the number of patients.

    Results stream while the body is still arriving (see `api.batch`). A line that is not a
    patient gets an `error` line; the rest of the batch goes on.
    """
    trials = _batch_trials(rules, trial_ids)
    queue = batch.ByteQueue(settings.batch_buffer_bytes)
    fatal: list = []
    instance = request.url.path
    producer = asyncio.create_task(batch.produce(
        request.stream(), settings.max_body_bytes, queue, instance,
        lambda n, line: _screen_line(rules, trials, as_of, instance, n, line, explain), fatal))
    first = await queue.get()
    if fatal and first is not None and first.startswith(b'{"line":0,'):
        producer.cancel()
        status, slug, detail = fatal[0]
        return problem_response(request, status, slug, detail)
    return batch.NdjsonStream(first, queue, producer)


def _batch_trials(rules: Snapshot, trial_ids: list[str] | None):
    """As `select_trials`, with unknown ids reported as query parameters."""
    try:
        return select_trials(rules, trial_ids)
    except Problem as exc:
        errors = [FieldError(parameter="trial_ids", detail=e.detail, code=e.code) for e in exc.errors or ()]
        raise Problem(exc.status, exc.slug, exc.detail, errors) from None
