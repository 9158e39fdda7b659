"""The API in process (TestClient): trials, rules check, health, OpenAPI, CORS, problems, settings,
prefetch derivation, registry reloads, and fuzzing that bad input never yields a 500.
"""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from api.main import create_app
from api.registry import RuleRegistry
from api.settings import Settings
from conftest import AS_OF, ROOT, RULES, example, example_names


@pytest.fixture(scope="module")
def client():
    with TestClient(create_app(Settings(rules_dir=RULES))) as c:
        yield c


# ---- trials ------------------------------------------------------------------------------------

def test_trials_list_and_detail(client):
    listing = client.get("/v1/trials").json()
    ids = [t["trial_id"] for t in listing["trials"]]
    assert ids == sorted(p.stem for p in (RULES / "trials").glob("*.elig"))
    assert listing["engine_version"] and all(len(t["content_hash"]) == 64 for t in listing["trials"])
    detail = client.get("/v1/trials/NCT01844063").json()
    assert detail["meta"]["title"] == detail["title"] and detail["engine_version"]
    assert detail["source"] == "trials/NCT01844063.elig"
    assert detail["source_text"] == (RULES / "trials/NCT01844063.elig").read_text()
    assert {f["file"] for f in detail["files"]} == {"trials/NCT01844063.elig", "lib/hepatology.elig"}
    i4 = next(c for c in detail["criteria"] if c["key"] == "I4")
    assert i4["manual"] is True and i4["text"] == "Written consent" and i4["rule"] is None
    i3 = next(c for c in detail["criteria"] if c["key"] == "I3")
    assert i3["applies_when"] == "woman_of_childbearing_potential" and i3["rule"] == "hcg is negative"
    assert "inr" in {a["name"] for a in detail["analytes"]}


def test_unknown_trial_is_404_problem(client):
    r = client.get("/v1/trials/NCT00000000")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json() == {"type": "/problems/unknown-trial", "title": "Unknown trial", "status": 404,
                        "detail": "No trial 'NCT00000000' is loaded.", "instance": "/v1/trials/NCT00000000"}
    described = client.get("/problems/unknown-trial").json()
    assert described["title"] == "Unknown trial"


def test_plain_http_errors_are_problems_too(client):
    r = client.get("/v2/nothing")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["title"] == "Not Found"
    r = client.get("/v1/screen")
    assert r.status_code == 405 and r.json()["status"] == 405


# ---- rules check -------------------------------------------------------------------------------

def test_rules_check_accepts_a_valid_trial_with_imports(client):
    text = (RULES / "trials/NCT05106972.elig").read_text()
    body = client.post("/v1/rules/check", json={"text": text, "name": "draft.elig"}).json()
    assert body["ok"] is True and body["errors"] == 0


def test_rules_check_matches_elig_check(client, tmp_path):
    broken = (RULES / "trials/NCT05106972.elig").read_text().replace("age between 20 and 60 years",
                                                                   "age between 20 and sixty years")
    broken += '\ninclusion I9 "Unknown name":\n  has no_such_code_set\n'
    body = client.post("/v1/rules/check", json={"text": broken, "name": "draft.elig"}).json()
    assert body["ok"] is False and body["errors"] >= 1
    (tmp_path / "draft.elig").write_text(broken)
    cli = subprocess.run([sys.executable, "-m", "engine.cli", "check", str(tmp_path / "draft.elig"), "--rules",
                          str(RULES), "--format", "json"], capture_output=True, text=True, cwd=ROOT)
    expected = json.loads(cli.stdout)["diagnostics"]
    got = body["diagnostics"]
    keep = ("code", "severity", "message", "line", "column", "hint", "details", "excerpt")
    assert [{k: d[k] for k in keep} for d in got] == [{k: d[k] for k in keep} for d in expected]
    assert all(d["file"] == "draft.elig" for d in got)


def test_rules_check_refuses_a_path_as_name(client):
    r = client.post("/v1/rules/check", json={"text": "", "name": "../../etc/x.elig"})
    assert r.status_code == 422 and r.json()["errors"][0]["pointer"] == "/name"


# ---- health, OpenAPI, CORS, settings -------------------------------------------------------------

def test_health_and_readiness(client):
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz").json()
    assert ready["status"] == "ready" and ready["trials"] == 5 and ready["failed_files"] == []


def test_readiness_before_the_rules_load():
    app = create_app(Settings(rules_dir=RULES))
    r = TestClient(app).get("/readyz")  # no lifespan: nothing loaded yet
    assert r.status_code == 503 and r.json()["status"] == "not_ready"


def test_openapi_documents_every_route(client):
    spec = client.get("/openapi.json").json()
    for path in ("/v1/screen", "/v1/screen/batch", "/v1/trials", "/v1/trials/{trial_id}", "/v1/rules/check",
                 "/v1/admin/reload", "/healthz", "/readyz", "/cds-services", "/cds-services/{service_id}",
                 "/cds-services/{service_id}/feedback"):
        assert path in spec["paths"], path
    schemas = set(spec["components"]["schemas"])
    assert {"ScreenRequest", "ScreenResponse", "ProblemDetails", "BatchLine", "Card"} <= schemas
    assert client.get("/docs").status_code == 200


def test_cors_only_for_configured_origins():
    app = create_app(Settings(rules_dir=RULES, cors_origins=["https://ehr.example"]))
    with TestClient(app) as c:
        pre = {"Origin": "https://ehr.example", "Access-Control-Request-Method": "POST",
               "Access-Control-Request-Headers": "content-type,authorization"}
        r = c.options("/v1/screen", headers=pre)
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "https://ehr.example"
        r = c.options("/v1/screen", headers=pre | {"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in r.headers
        big = {"Origin": "https://ehr.example", "content-type": "application/json"}
        r = c.post("/v1/screen", content=b"x" * (6 * 1024 * 1024), headers=big)
        assert r.status_code == 413 and r.headers["access-control-allow-origin"] == "https://ehr.example"


def test_settings_from_the_environment(monkeypatch):
    monkeypatch.setenv("ELIG_API_KEYS", "a, b ,")
    monkeypatch.setenv("ELIG_CORS_ORIGINS", '["https://x.example"]')
    monkeypatch.setenv("ELIG_MAX_BODY_BYTES", "2048")
    s = Settings()
    assert s.keys() == ["a", "b"] and s.keys(admin=True) == ["a", "b"]
    assert s.cors_origins == ["https://x.example"] and s.max_body_bytes == 2048
    assert "a" not in repr(s.api_keys)  # secrets are not printed


def test_admin_keys_guard_reload_separately():
    app = create_app(Settings(rules_dir=RULES, api_keys=["user"], admin_keys=["admin"]))
    with TestClient(app) as c:
        assert c.post("/v1/admin/reload", headers={"X-API-Key": "user"}).status_code == 401
        assert c.post("/v1/admin/reload", headers={"X-API-Key": "admin"}).status_code == 200
        assert c.get("/v1/trials", headers={"X-API-Key": "user"}).status_code == 200


# ---- prefetch derivation and registry -------------------------------------------------------------

def _rules_with(tmp_path, trials: list[str]):
    root = tmp_path / "rules"
    shutil.copytree(RULES / "lib", root / "lib")
    (root / "trials").mkdir()
    for t in trials:
        shutil.copy(RULES / "trials" / f"{t}.elig", root / "trials")
    return root


def test_prefetch_asks_only_for_what_the_loaded_criteria_read(tmp_path):
    root = _rules_with(tmp_path, ["NCT01844063"])  # labs and diagnoses, no medication criteria
    with TestClient(create_app(Settings(rules_dir=root))) as c:
        prefetch = c.get("/cds-services").json()["services"][0]["prefetch"]
    assert set(prefetch) == {"patient", "observations", "conditions"}
    assert "5902-2" not in prefetch["observations"]  # prothrombin time is read only by NCT05106972
    assert "http://loinc.org|5196-1" in prefetch["observations"]
    empty = _rules_with(tmp_path / "none", [])
    with TestClient(create_app(Settings(rules_dir=empty))) as c:
        assert c.get("/cds-services").json()["services"][0]["prefetch"] == {"patient": "Patient/{{context.patientId}}"}


def test_registry_reports_added_updated_and_removed(tmp_path):
    root = _rules_with(tmp_path, ["NCT01844063", "NCT05106972"])
    registry = RuleRegistry(root)
    assert registry.reload().added == ["NCT01844063", "NCT05106972"]
    shutil.copy(RULES / "trials/NCT06984497.elig", root / "trials")
    (root / "trials/NCT05106972.elig").unlink()
    path = root / "trials/NCT01844063.elig"
    path.write_text(path.read_text().replace('enrollment: 210', 'enrollment: 211'))
    outcome = registry.reload()
    assert (outcome.added, outcome.updated, outcome.removed) == (["NCT06984497"], ["NCT01844063"], ["NCT05106972"])
    assert outcome.snapshot.generation == 2 and outcome.snapshot.kept_previous == ()


def test_a_broken_library_keeps_every_trial_that_imports_it(tmp_path):
    root = _rules_with(tmp_path, ["NCT01844063", "NCT05106972"])
    registry = RuleRegistry(root)
    before = registry.snapshot
    (root / "lib/hepatology.elig").write_text("codes broken {")
    after = registry.reload().snapshot
    assert after.kept_previous == ("NCT01844063", "NCT05106972") and after.trials == before.trials
    assert after.diagnostics


# ---- fuzz: bad input never makes a 500 ------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=25)
FIELDS = ["id", "birth_date", "sex", "deceased", "observations", "conditions", "medications", "procedures",
          "trials", "facts", "resourceType", "type", "entry", "resource", "codes", "value", "status", "effective",
          "code", "coding", "system", "subject", "reference", "valueQuantity", "onsetDateTime", "unit"]
SHAPED = st.recursive(
    JSON,
    lambda children: st.dictionaries(st.sampled_from(FIELDS), children, max_size=5) | st.lists(children, max_size=3),
    max_leaves=30)


def _paths(node, prefix=()):
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, prefix + (i,))


def _set(doc, path, value):
    if not path:
        return value
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


EXAMPLES = {name: example(name) for name in example_names()}
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.function_scoped_fixture])


@FUZZ
@given(body=st.one_of(JSON, st.fixed_dictionaries({"patient": SHAPED}, optional={"as_of": JSON, "trial_ids": JSON})))
def test_fuzz_random_json_never_500(client, body):
    r = client.post("/v1/screen", json=body)
    assert r.status_code < 500, r.text


@FUZZ
@given(data=st.data())
def test_fuzz_mutated_examples_never_500(client, data):
    name = data.draw(st.sampled_from(sorted(EXAMPLES)))
    doc = copy.deepcopy(EXAMPLES[name])
    paths = list(_paths(doc))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(paths))
        try:
            doc = _set(doc, path, data.draw(SHAPED))
        except (KeyError, IndexError, TypeError):
            continue
        paths = list(_paths(doc))
    r = client.post("/v1/screen", json={"patient": doc, "as_of": AS_OF})
    assert r.status_code < 500, r.text
    b = client.post("/v1/screen/batch", content=json.dumps(doc).encode() + b"\n")
    assert b.status_code == 200
    line = json.loads(b.content.split(b"\n")[0])
    assert "result" in line or line["error"]["status"] < 500, line


def test_non_standard_json_numbers_are_not_a_500(client):
    """Python's JSON parser accepts NaN and Infinity; they are malformed JSON here, not numbers."""
    text = json.dumps({"patient": example("aclf_hbv_missing_inr.json"), "as_of": AS_OF})
    for token in ("NaN", "Infinity", "-Infinity", "1e999"):
        body = text.replace('"value": 250', f'"value": {token}', 1)
        assert body != text
        r = client.post("/v1/screen", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 400 and r.json()["type"] == "/problems/malformed-json", r.text
        line = body.replace("\n", " ")[len('{"patient": '):body.index(', "as_of"')]
        r = client.post("/v1/screen/batch", content=line + "\n")
        assert r.status_code == 200 and json.loads(r.content)["error"]["status"] == 400


@FUZZ
@given(body=JSON)
def test_fuzz_other_endpoints_never_500(client, body):
    service = "/cds-services/elig-trial-screening"
    for path in ("/v1/rules/check", service, f"{service}/feedback"):
        r = client.post(path, json=body)
        assert r.status_code < 500, (path, r.text)


def test_a_bug_is_a_500_problem_logged_without_its_message(caplog):
    app = create_app(Settings(rules_dir=RULES))

    @app.get("/boom")
    def boom():
        raise ValueError("patient Jane Doe, born 1961-02-03")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom")
    assert r.status_code == 500 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "/problems/internal" and "Jane" not in r.text
    assert "ValueError" in caplog.text and "Jane" not in caplog.text


def test_screen_without_explanations_gives_the_same_verdicts_and_statuses(client):
    """`explain: false` is the fast path; it must never decide differently from the full answer."""
    import json as _json
    from pathlib import Path as _Path
    root = _Path(__file__).resolve().parents[1] / "examples"
    for path in sorted(root.glob("*.json")):
        patient = _json.loads(path.read_text(encoding="utf-8"))
        full = client.post("/v1/screen", json={"patient": patient, "as_of": "2026-11-01"}).json()
        fast = client.post("/v1/screen", json={"patient": patient, "as_of": "2026-11-01", "explain": False}).json()
        assert [(t["trial_id"], t["verdict"], [c["status"] for c in t["criteria"]]) for t in fast["trials"]] == \
            [(t["trial_id"], t["verdict"], [c["status"] for c in t["criteria"]]) for t in full["trials"]], path.name
        assert all(not t["explained"] and all(c["evidence"] == [] for c in t["criteria"]) for t in fast["trials"])
        assert all(t["explained"] for t in full["trials"])


def test_a_large_bundle_is_screened_off_the_event_loop_with_the_same_answer(client, monkeypatch):
    """Bodies over INLINE_MAX_BYTES run in the thread pool; the answer must not depend on where."""
    import json as _json
    from pathlib import Path as _Path

    from api.routes import screen as screen_route
    bundle = _json.loads((_Path(__file__).resolve().parents[1] / "examples" / "aclf_hbv_eligible.fhir.json").read_text())
    body = {"patient": bundle, "as_of": "2026-11-01"}
    inline = client.post("/v1/screen", json=body).json()
    monkeypatch.setattr(screen_route, "INLINE_MAX_BYTES", 10)
    pooled = client.post("/v1/screen", json=body).json()
    assert pooled["trials"] == inline["trials"] and pooled["trials"][0]["verdict"] == "eligible"


def test_a_bundle_is_read_only_as_far_as_the_loaded_trials_read_it(client):
    """Observations no loaded trial reads are counted in the ingest notes, and change nothing."""
    bundle = json.loads((ROOT / "examples" / "aclf_hbv_eligible.fhir.json").read_text())
    patient_ref = {"reference": bundle["entry"][0]["fullUrl"]}
    weight = {"resourceType": "Observation", "id": "w1", "status": "final", "subject": patient_ref,
              "code": {"coding": [{"system": "http://loinc.org", "code": "29463-7"}]},
              "effectiveDateTime": "2026-10-20", "valueQuantity": {"value": 61, "unit": "kg"}}
    before = client.post("/v1/screen", json={"patient": bundle, "as_of": "2026-11-01"}).json()
    bundle["entry"].append({"fullUrl": "urn:uuid:w1", "resource": weight})
    after = client.post("/v1/screen", json={"patient": bundle, "as_of": "2026-11-01"}).json()
    assert after["trials"] == before["trials"]
    unread = "Observation ×{} skipped: its codes are read by no loaded trial"
    n = next(int(line.split("×")[1].split()[0]) for line in before["ingest_notes"] if "no loaded trial" in line)
    assert unread.format(n) in before["ingest_notes"] and unread.format(n + 1) in after["ingest_notes"]


def test_the_registry_is_ready_before_the_cache_is_written_and_waits_for_it_at_shutdown(tmp_path, monkeypatch):
    """A first start serves as soon as rules compile; shutdown lets the cache entries finish."""
    import threading

    from engine import cache as cache_module
    release = threading.Event()
    real_put = cache_module.CompileCache.put
    monkeypatch.setattr(cache_module.CompileCache, "put", lambda self, *a: release.wait(10) and real_put(self, *a))
    registry = RuleRegistry(RULES, tmp_path / "cache")
    assert registry.snapshot.trials  # loaded and servable while nothing is written yet
    assert not list((tmp_path / "cache").glob("*.pickle"))
    threading.Timer(0.2, release.set).start()
    registry.finish_cache_writes()
    assert len(list((tmp_path / "cache").glob("*.pickle"))) == len(registry.snapshot.trials)
