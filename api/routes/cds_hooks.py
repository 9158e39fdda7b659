"""CDS Hooks 2.0: discovery, the `patient-view` service, and feedback.

The service screens the patient the EHR has open against every loaded trial and answers with
a card per trial the patient may enter. Data comes from prefetch, or from `fhirServer` with
the bearer token given; when it cannot be had, the answer is 412, as the spec requires.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

import httpx
from engine.fhir import FhirError, bundle_to_patient

from ..cds import cards, fetch, prefetch
from ..cds.models import CdsRequest, CdsResponse, CdsService, Discovery, FeedbackAck, FeedbackRequest
from ..strict_json import StrictJsonRoute
from ..deps import RulesDep, SettingsDep, require_cds_client
from ..problems import Problem, ProblemDetails
from ..registry import Snapshot
from ..screening import screen_patient
from ..settings import Settings

router = APIRouter(prefix="/cds-services", tags=["cds-hooks"], dependencies=[Depends(require_cds_client)],
                   route_class=StrictJsonRoute)
_412 = {412: {"model": ProblemDetails, "description": "The patient's data could be had neither from prefetch "
                                                      "nor from the FHIR server.",
              "content": {"application/problem+json": {}}},
        404: {"model": ProblemDetails, "content": {"application/problem+json": {}}}}


def service(settings: Settings, rules: Snapshot) -> CdsService:
    return CdsService(
        hook="patient-view", id=settings.cds_service_id, title="Clinical-trial eligibility screening",
        description="Screens the patient against the loaded trials' criteria and shows each trial the patient "
                    "may be eligible for, with what is met, what is unknown and what to check.",
        prefetch=prefetch.templates(rules),
        usageRequirements="Read access to the patient's record (the prefetch queries' resource types).")


def _known(service_id: str, settings: Settings) -> None:
    if service_id != settings.cds_service_id:
        raise Problem(404, "unknown-service", f"No CDS service {service_id!r}.")


@router.get("", response_model_exclude_none=True)
def discovery(settings: SettingsDep, rules: RulesDep) -> Discovery:
    """The one service, with prefetch templates for exactly the data the loaded criteria read."""
    return Discovery(services=[service(settings, rules)])


@router.post("/{service_id}", response_model_exclude_none=True, responses=_412)
async def patient_view(service_id: str, body: CdsRequest, request: Request, settings: SettingsDep,
                       rules: RulesDep) -> CdsResponse:
    """Cards for every trial the patient is eligible or possibly eligible for."""
    _known(service_id, settings)
    try:
        as_of = body.screening_date()
    except ValueError as exc:
        raise Problem(422, "validation", str(exc)) from None
    bundle = await _patient_bundle(body, settings, rules)
    result = await run_in_threadpool(_screen, bundle, body.context.patientId, as_of, rules)
    return CdsResponse(cards=cards.cards(result.trials, result.as_of, body.hookInstance, rules, settings))


async def _patient_bundle(body: CdsRequest, settings: Settings, rules: Snapshot) -> dict:
    """Prefetch plus whatever had to be read from the FHIR server, as one Bundle."""
    context = body.context.model_dump(exclude_none=True)
    queries = {k: prefetch.expand(t, context) for k, t in prefetch.templates(rules).items()}
    token = body.fhirAuthorization.access_token if body.fhirAuthorization else None
    server = str(body.fhirServer) if body.fhirServer else None
    async with httpx.AsyncClient(timeout=settings.fhir_timeout_seconds, follow_redirects=False) as client:
        reader = fetch.FhirReader(client, server, token, settings.fhir_max_pages)
        try:
            found = await fetch.gather(reader, queries, body.prefetch or {})
        except fetch.DataUnavailable as exc:
            raise Problem(412, "data-unavailable", str(exc)) from None
    if found.get("patient") is None:
        raise Problem(412, "data-unavailable", "No Patient resource for the context's patientId.")
    return fetch.as_bundle(found)


def _screen(bundle: dict, patient_id: str, as_of, rules: Snapshot):
    try:
        ingested = bundle_to_patient(bundle, patient_id=patient_id, observation_codes=rules.observation_codes)
    except FhirError as exc:
        raise Problem(412, "data-unavailable", f"The data does not hold the context's patient: {exc}") from None
    return screen_patient(rules, ingested.patient, ingested.lines(), as_of, list(rules.trials.values()))


@router.post("/{service_id}/feedback", responses={404: _412[404]})
def feedback(service_id: str, body: FeedbackRequest, request: Request, settings: SettingsDep) -> FeedbackAck:
    """Count accepted and overridden cards; reporting the same card again changes nothing."""
    _known(service_id, settings)
    return request.app.state.feedback.add(body.feedback)
