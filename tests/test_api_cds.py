"""CDS Hooks over real HTTP: discovery, prefetch, fetching from a FHIR stub on loopback, 412s, cards,
feedback. The stub serves the resources of an example bundle, paginated, and records every
Authorization header it receives.
"""

from __future__ import annotations

import uuid
from urllib.parse import parse_qs, urlsplit

import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from conftest import AS_OF, example, serve_app_in_thread

SERVICE = "/cds-services/elig-trial-screening"
TOKEN = "token-for-the-fhir-server"
EXTENSION = {"org.elig.screening-date": AS_OF}
EXAMPLE = "aclf_hbv_eligible.fhir.json"
PATIENT_ID = "ex-aclf-eligible"


def resources(name: str) -> list[dict]:
    """The example's resources with references as a FHIR server writes them (`Patient/<id>`)."""
    entries = example(name)["entry"]
    local = {e["fullUrl"]: f"{e['resource']['resourceType']}/{e['resource']['id']}" for e in entries if "fullUrl" in e}

    def fix(node):
        if isinstance(node, dict):
            return {k: (local.get(v, v) if k == "reference" else fix(v)) for k, v in node.items()}
        return [fix(x) for x in node] if isinstance(node, list) else node

    return [fix(e["resource"]) for e in entries]


def subject_id(res: dict) -> str | None:
    ref = (res.get("subject") or res.get("patient") or {}).get("reference", "")
    return ref.rsplit("/", 1)[-1].rsplit(":", 1)[-1] or None


class FhirStub:
    """A FHIR server: read Patient/{id}, search by patient (and LOINC `code`), 2 entries a page."""

    def __init__(self, records: list[dict], page_size: int = 2):
        self.records, self.page_size = records, page_size
        self.authorizations: list[str | None] = []
        self.paths: list[str] = []
        self.fail_with: dict[str, tuple[int, dict]] = {}  # resource type → (status, body)
        self.next_origin: str | None = None
        self.app = self._app()

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.get("/fhir/Patient/{pid}")
        def read(pid: str, request: Request):
            self._saw(request)
            if "Patient" in self.fail_with:
                status, body = self.fail_with["Patient"]
                return JSONResponse(body, status_code=status)
            found = [r for r in self.records if r["resourceType"] == "Patient" and r["id"] == pid]
            if not found:
                return JSONResponse(_outcome("not found"), status_code=404)
            return JSONResponse(found[0], media_type="application/fhir+json")

        @app.get("/fhir/{rtype}")
        def search(rtype: str, request: Request):
            self._saw(request)
            if rtype in self.fail_with:
                status, body = self.fail_with[rtype]
                return JSONResponse(body, status_code=status)
            q = request.query_params
            codes = {c.split("|")[-1] for c in q.get("code", "").split(",") if c}
            hits = [r for r in self.records if r["resourceType"] == rtype and subject_id(r) == q.get("patient")
                    and (not codes or any(c["code"] in codes for c in r.get("code", {}).get("coding", [])))]
            page = int(q.get("_page", "0"))
            chunk = hits[page * self.page_size:(page + 1) * self.page_size]
            base = str(request.base_url).rstrip("/")
            bundle = {"resourceType": "Bundle", "type": "searchset", "total": len(hits),
                      "entry": [{"fullUrl": f"{base}/fhir/{rtype}/{r['id']}", "resource": r,
                                 "search": {"mode": "match"}} for r in chunk]}
            if (page + 1) * self.page_size < len(hits):
                params = dict(q) | {"_page": str(page + 1)}
                origin = self.next_origin or base
                bundle["link"] = [{"relation": "next", "url": f"{origin}/fhir/{rtype}?" + "&".join(
                    f"{k}={v}" for k, v in params.items())}]
            return JSONResponse(bundle, media_type="application/fhir+json")

        return app

    def _saw(self, request: Request) -> None:
        self.authorizations.append(request.headers.get("authorization"))
        self.paths.append(request.url.path + "?" + request.url.query)


def _outcome(text: str) -> dict:
    return {"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "processing",
                                                          "diagnostics": text}]}


@pytest.fixture()
def fhir():
    stub = FhirStub(resources(EXAMPLE))
    with serve_app_in_thread(stub.app) as base:
        stub.base = base + "/fhir"
        yield stub


def call(http, prefetch: dict | None = None, fhir_server: str | None = None, token: str | None = TOKEN,
         patient_id: str = PATIENT_ID, **extra):
    body = {"hook": "patient-view", "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/example", "patientId": patient_id}, "extension": EXTENSION, **extra}
    if prefetch is not None:
        body["prefetch"] = prefetch
    if fhir_server:
        body["fhirServer"] = fhir_server
        if token:
            body["fhirAuthorization"] = {"access_token": token, "token_type": "Bearer", "expires_in": 300,
                                         "scope": "user/*.read", "subject": "cds-service"}
    return http.post(SERVICE, json=body)


def prefetch_from(name: str, templates: dict[str, str]) -> dict:
    """What an EHR would prefetch for these templates, as searchset Bundles."""
    records = resources(name)
    out = {}
    for key, template in templates.items():
        rtype = template.split("?")[0].split("/")[0]
        if rtype == "Patient":
            out[key] = next(r for r in records if r["resourceType"] == "Patient")
            continue
        query = parse_qs(urlsplit(template).query)
        codes = {c.split("|")[-1] for c in query.get("code", [""])[0].split(",") if c}
        hits = [r for r in records if r["resourceType"] == rtype
                and (not codes or any(c["code"] in codes for c in r.get("code", {}).get("coding", [])))]
        out[key] = {"resourceType": "Bundle", "type": "searchset", "entry": [{"resource": r} for r in hits]}
    return out


def expected_cards() -> set[str]:
    return {"NCT06984497", "NCT06167473", "NCT06242405", "NCT01844063"}


def card_trials(cards: list[dict]) -> set[str]:
    return {c["links"][0]["label"].split()[0] for c in cards}


def test_discovery_lists_the_patient_view_service(http):
    services = http.get("/cds-services").json()["services"]
    assert len(services) == 1
    svc = services[0]
    assert svc["hook"] == "patient-view" and svc["id"] == "elig-trial-screening" and svc["description"]
    prefetch = svc["prefetch"]
    assert prefetch["patient"] == "Patient/{{context.patientId}}"
    assert "http://loinc.org|6301-6" in prefetch["observations"]  # INR, used by NCT01844063
    assert {"conditions", "medication_requests", "medication_statements"} <= set(prefetch)
    assert "procedures" not in prefetch and "research_subjects" not in prefetch  # no bundled trial needs them
    assert all(v not in (None, "", [], {}) for s in services for v in s.values())


def test_cards_from_prefetch(http):
    templates = http.get("/cds-services").json()["services"][0]["prefetch"]
    r = call(http, prefetch=prefetch_from(EXAMPLE, templates))
    assert r.status_code == 200, r.text
    cards = r.json()["cards"]
    assert card_trials(cards) == expected_cards()
    for card in cards:
        assert len(card["summary"]) < 140 and card["indicator"] == "info" and card["source"]["label"]
        assert card["uuid"] and card["links"][0]["type"] == "absolute"
        assert card["links"][0]["url"].startswith("https://clinicaltrials.gov/study/NCT")
        assert "**Met**" in card["detail"] and "| Criterion | Status | Evidence |" in card["detail"]
        assert "**To check in person**" in card["detail"]
        assert all(o["display"] for o in card["overrideReasons"])


def test_possibly_eligible_card_says_what_is_unknown(http):
    templates = http.get("/cds-services").json()["services"][0]["prefetch"]
    r = call(http, prefetch=prefetch_from("aclf_hbv_stale_labs.fhir.json", templates), patient_id="ex-aclf-stale")
    cards = {c["links"][0]["label"].split()[0]: c for c in r.json()["cards"]}
    card = cards["NCT01844063"]
    assert card["summary"].startswith("Possible match: NCT01844063") and "unknown" in card["summary"]
    assert "**Unknown: data that would decide it**" in card["detail"] and "needs INR" in card["detail"]


def test_cards_from_the_fhir_server_with_the_bearer_token(http, fhir):
    r = call(http, fhir_server=fhir.base)
    assert r.status_code == 200, r.text
    assert card_trials(r.json()["cards"]) == expected_cards()
    assert fhir.authorizations and set(fhir.authorizations) == {f"Bearer {TOKEN}"}
    assert any("_page=1" in p for p in fhir.paths), "next links were followed"
    observation_queries = [p for p in fhir.paths if p.startswith("/fhir/Observation")]
    assert observation_queries and "6301-6" in observation_queries[0]


def test_missing_prefetch_keys_are_fetched(http, fhir):
    templates = http.get("/cds-services").json()["services"][0]["prefetch"]
    partial = {k: v for k, v in prefetch_from(EXAMPLE, templates).items() if k == "patient"}
    r = call(http, prefetch=partial, fhir_server=fhir.base)
    assert r.status_code == 200 and card_trials(r.json()["cards"]) == expected_cards()
    assert not any(p.startswith("/fhir/Patient") for p in fhir.paths)
    assert any(p.startswith("/fhir/Condition") for p in fhir.paths)


def test_prefetch_null_means_no_data(http):
    templates = http.get("/cds-services").json()["services"][0]["prefetch"]
    prefetch = {k: None for k in templates} | {"patient": prefetch_from(EXAMPLE, templates)["patient"]}
    r = call(http, prefetch=prefetch)
    assert r.status_code == 200
    assert card_trials(r.json()["cards"]) == set()  # no diagnosis on record: no liver failure, no ESLD


@pytest.mark.parametrize("failure", [
    ("Observation", 200, _outcome("search failed")),
    ("Condition", 500, {"resourceType": "OperationOutcome"}),
    ("Patient", 401, _outcome("token rejected")),
])
def test_unavailable_data_is_412(http, fhir, failure):
    rtype, status, body = failure
    fhir.fail_with[rtype] = (status, body)
    r = call(http, fhir_server=fhir.base)
    assert r.status_code == 412 and r.json()["type"] == "/problems/data-unavailable"
    assert PATIENT_ID not in r.json()["detail"]


def test_412_without_prefetch_or_server_and_for_an_unknown_patient(http, fhir):
    assert call(http).status_code == 412
    assert call(http, fhir_server=fhir.base, patient_id="nobody").status_code == 412


def test_next_link_to_another_origin_is_not_followed_with_the_token(http, fhir):
    fhir.next_origin = "http://127.0.0.2:9"
    r = call(http, fhir_server=fhir.base)
    assert r.status_code == 412 and "leaves the FHIR server" in r.json()["detail"]


def test_bad_requests(http):
    assert http.post("/cds-services/nope", json={}).status_code in (404, 422)
    r = http.post(SERVICE, json={"hook": "order-sign", "hookInstance": "x", "context": {}})
    assert r.status_code == 422 and "/hook" in {e["pointer"] for e in r.json()["errors"]}


def test_feedback_is_idempotent(http):
    card = str(uuid.uuid4())
    item = {"card": card, "outcome": "overridden", "outcomeTimestamp": "2026-11-01T10:05:31Z",
            "overrideReason": {"reason": {"system": "urn:elig:cds:override-reason", "code": "already-screened"}}}
    first = http.post(f"{SERVICE}/feedback", json={"feedback": [item]})
    second = http.post(f"{SERVICE}/feedback", json={"feedback": [item]})
    assert first.status_code == second.status_code == 200
    assert first.json() == {"counted": 1, "repeated": 0} and second.json() == {"counted": 0, "repeated": 1}
    counts = http.get("/v1/admin/feedback").json()
    assert counts["overridden"] >= 1 and counts["override_reasons"]["already-screened"] >= 1
