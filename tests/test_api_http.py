"""The HTTP API over real HTTP against uvicorn on loopback: screening, batch, limits, auth, reload.

Expected verdicts are the manifest of examples/README.md, screened as of 2026-11-01.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import threading
import time

import httpx
import pytest

from conftest import AS_OF, RULES, example, example_names, start_server, stop_server

ESLD = ("NCT06984497", "NCT06167473", "NCT06242405")
E, P, I = "eligible", "possibly_eligible", "ineligible"
# example → (the three ESLD trials, NCT01844063, NCT05106972)
MANIFEST = {
    "aclf_hbv_eligible.fhir.json": (E, E, I),
    "aclf_hbv_bilirubin_mgdl.fhir.json": (E, E, I),
    "aclf_hbv_woman_negative_hcg.json": (E, E, I),
    "aclf_hbv_missing_inr.json": (E, P, I),
    "aclf_hbv_stale_labs.fhir.json": (E, P, I),
    "aclf_hbv_with_hcc.fhir.json": (I, I, I),
    "aclf_hbv_oral_prednisone.json": (I, E, I),
    "aclf_hbv_topical_hydrocortisone.fhir.json": (E, E, I),
    "decompensated_hbv_cirrhosis.fhir.json": (E, I, E),
    "aclf_hbv_age_70.json": (E, I, I),
    "aclf_hbv_hcc_entered_in_error.json": (E, E, I),
    "aclf_hbv_recent_trial.json": (I, E, I),
    "derived_synthea_jordan_cruickshank.fhir.json": (I, I, I),
}
RANK = {E: 0, P: 1, I: 2}


def verdicts(result: dict) -> dict[str, str]:
    return {t["trial_id"]: t["verdict"] for t in result["trials"]}


def expected(name: str) -> dict[str, str]:
    esld, hbv_lf, cirrhosis = MANIFEST[name]
    return {**{t: esld for t in ESLD}, "NCT01844063": hbv_lf, "NCT05106972": cirrhosis}


def assert_ranked(result: dict) -> None:
    keys = [(RANK[t["verdict"]], t["counts"]["unknown"] if t["verdict"] == P else 0) for t in result["trials"]]
    assert keys == sorted(keys)


def test_manifest_covers_every_example():
    assert sorted(MANIFEST) == example_names()


# ---- POST /v1/screen --------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["aclf_hbv_eligible.fhir.json", "aclf_hbv_missing_inr.json",
                                  "decompensated_hbv_cirrhosis.fhir.json", "aclf_hbv_oral_prednisone.json"])
def test_screen_one_patient_fhir_or_native(http, name):
    r = http.post("/v1/screen", json={"patient": example(name), "as_of": AS_OF})
    assert r.status_code == 200, r.text
    body = r.json()
    assert verdicts(body) == expected(name)
    assert body["as_of"] == AS_OF and body["engine_version"]
    assert_ranked(body)
    for trial in body["trials"]:
        assert len(trial["content_hash"]) == 64 and trial["source"].startswith("trials/")
        for c in trial["criteria"]:
            assert {"status", "explanation", "evidence", "missing", "text", "key"} <= set(c)


def test_screen_reports_missing_data_and_hashes_of_files_on_disk(http):
    body = http.post("/v1/screen", json={"patient": example("aclf_hbv_missing_inr.json"), "as_of": AS_OF}).json()
    inr = [m for m in body["missing_data"] if m["data"].startswith("INR")]
    assert len(inr) == 1 and inr[0]["trials"] == ["NCT01844063"] and inr[0]["decides"] == 1
    assert set(inr[0]["criteria"]) == {"NCT01844063/I7", "NCT01844063/I8"}
    assert inr[0]["summary"].endswith("decides 1 trial")
    files = {f["file"]: f["sha256"] for f in body["criteria_files"]}
    assert files["lib/hepatology.elig"] == hashlib.sha256((RULES / "lib/hepatology.elig").read_bytes()).hexdigest()
    for path in (RULES / "trials").glob("*.elig"):
        assert files[f"trials/{path.name}"] == hashlib.sha256(path.read_bytes()).hexdigest()


def test_screen_selected_trials_and_unknown_trial(http):
    r = http.post("/v1/screen", json={"patient": example("aclf_hbv_eligible.fhir.json"), "as_of": AS_OF,
                                      "trial_ids": ["NCT05106972"]})
    assert [t["trial_id"] for t in r.json()["trials"]] == ["NCT05106972"]
    r = http.post("/v1/screen", json={"patient": example("aclf_hbv_eligible.fhir.json"),
                                      "trial_ids": ["NCT05106972", "NCT00000000"]})
    assert r.status_code == 422 and r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"][0]["pointer"] == "/trial_ids/1"


def test_screen_bad_field_is_422_with_json_pointer(http):
    patient = example("aclf_hbv_missing_inr.json") | {"birth_date": 19700101}
    r = http.post("/v1/screen", json={"patient": patient, "as_of": "1st of November"})
    assert r.status_code == 422
    problem = r.json()
    assert r.headers["content-type"] == "application/problem+json"
    assert {"type", "title", "status", "detail", "instance"} <= set(problem)
    assert problem["status"] == 422 and problem["instance"] == "/v1/screen"
    assert {e["pointer"] for e in problem["errors"]} == {"/patient/birth_date", "/as_of"}


def test_screen_fhir_bundle_without_patient_is_400(http):
    bundle = example("aclf_hbv_eligible.fhir.json")
    bundle["entry"] = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Patient"]
    r = http.post("/v1/screen", json={"patient": bundle, "as_of": AS_OF})
    assert r.status_code == 400
    assert r.json()["type"] == "/problems/unscreenable-fhir" and "no Patient" in r.json()["detail"]


def test_malformed_json_is_400(http):
    r = http.post("/v1/screen", content=b'{"patient": ', headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["type"] == "/problems/malformed-json"


# ---- POST /v1/screen/batch --------------------------------------------------------------------

def ndjson(docs) -> bytes:
    return b"".join(json.dumps(d).encode() + b"\n" for d in docs)


def read_lines(response: httpx.Response) -> list[dict]:
    return [json.loads(line) for line in response.iter_lines() if line]


def test_batch_screens_every_example_in_order_with_errors_as_lines(http):
    names = example_names()
    body = ndjson(example(n) for n in names) + b"\n{not json\n" + json.dumps({"id": 5}).encode() + b"\n"
    with http.stream("POST", f"/v1/screen/batch?as_of={AS_OF}", content=body,
                     headers={"content-type": "application/x-ndjson"}) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("application/x-ndjson")
        lines = read_lines(r)
    assert [line["line"] for line in lines] == list(range(1, len(names) + 1)) + [len(names) + 2, len(names) + 3]
    for name, line in zip(names, lines):
        assert verdicts(line["result"]) == expected(name), name
        assert line["result"]["engine_version"] and line["result"]["criteria_files"]
    bad_json, bad_patient = lines[-2]["error"], lines[-1]["error"]
    assert bad_json["status"] == 400 and bad_json["type"] == "/problems/malformed-json"
    assert bad_patient["status"] == 422 and {e["pointer"] for e in bad_patient["errors"]} == {"/id"}


def test_batch_accepts_a_chunked_upload_split_mid_line(http):
    """No Content-Length, and chunks that cut lines anywhere: lines are reassembled."""
    data = ndjson(example(n) for n in ("aclf_hbv_missing_inr.json", "aclf_hbv_eligible.fhir.json") * 3)

    def chunks():
        for i in range(0, len(data), 777):
            yield data[i:i + 777]

    with http.stream("POST", f"/v1/screen/batch?as_of={AS_OF}&trial_ids=NCT01844063", content=chunks()) as r:
        lines = read_lines(r)
    assert [verdicts(x["result"]) for x in lines] == [{"NCT01844063": P}, {"NCT01844063": E}] * 3


def test_batch_unknown_trial_is_422_before_streaming(http):
    r = http.post("/v1/screen/batch?trial_ids=NCT0", content=b"{}\n")
    assert r.status_code == 422 and r.json()["errors"][0]["parameter"] == "trial_ids"


class DuplexClient:
    """Sends a chunked body from a thread while reading the response, as curl does.

    httpx sends the whole body before reading; this client shows results arriving while the
    body is still going out, and lets a batch of any size through.
    """

    def __init__(self, base_url: str):
        host, port = base_url.removeprefix("http://").split(":")
        self.sock = socket.create_connection((host, int(port)), timeout=120)

    def post(self, path: str, chunks) -> tuple[int, list[dict]]:
        head = (f"POST {path} HTTP/1.1\r\nHost: test\r\nContent-Type: application/x-ndjson\r\n"
                "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        self.sock.sendall(head.encode())

        def send():
            for chunk in chunks:
                self.sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.sock.sendall(b"0\r\n\r\n")

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        stream = self.sock.makefile("rb")
        status = int(stream.readline().split()[1])
        while stream.readline() not in (b"\r\n", b""):
            pass
        body = bytearray()
        while (size := int(stream.readline().strip() or b"0", 16)) > 0:
            body += stream.read(size)
            stream.readline()
        sender.join(timeout=60)
        self.sock.close()
        return status, [json.loads(line) for line in body.splitlines() if line]


def test_batch_memory_is_flat_in_the_number_of_patients(live_server):
    """1,000 patients (2.2 MB in, 40 MB out) must not raise the server's peak memory by more
    than a fraction of what holding the results would take (measured: 74 → 76 MiB for 3,000)."""
    line = json.dumps(example("aclf_hbv_missing_inr.json")).encode() + b"\n"

    def batch(n):
        return (line * 50 for _ in range(n // 50))

    status, warm = DuplexClient(live_server.base_url).post(f"/v1/screen/batch?as_of={AS_OF}", batch(100))
    assert status == 200 and len(warm) == 100
    before = live_server.rss_peak_kib()
    status, lines = DuplexClient(live_server.base_url).post(f"/v1/screen/batch?as_of={AS_OF}", batch(1000))
    after = live_server.rss_peak_kib()
    assert status == 200 and len(lines) == 1000
    assert all(verdicts(x["result"])["NCT01844063"] == P for x in lines)
    assert after - before < 20 * 1024, f"peak RSS grew by {(after - before) // 1024} MiB"


# ---- a server with small limits and API keys --------------------------------------------------

@pytest.fixture(scope="module")
def guarded(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("guarded"), {
        "ELIG_RULES_DIR": str(RULES), "ELIG_API_KEYS": "key-one, key-two", "ELIG_MAX_BODY_BYTES": "16384",
        "ELIG_BATCH_MAX_BYTES": "60000", "ELIG_BATCH_BUFFER_BYTES": "65536"})
    yield server
    stop_server(server)


def test_keys_are_required_when_configured_and_health_stays_open(guarded):
    with guarded.client() as c:
        assert c.get("/healthz").status_code == 200 and c.get("/readyz").status_code == 200
        r = c.get("/v1/trials")
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert r.json()["type"] == "/problems/unauthorized"
        assert c.get("/v1/trials", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert c.get("/v1/trials", headers={"Authorization": "Bearer key-two"}).status_code == 200
        assert c.get("/v1/trials", headers={"X-API-Key": "key-one"}).status_code == 200
        assert c.get("/cds-services").status_code == 401


def test_body_over_the_limit_is_413_declared_or_streamed(guarded):
    auth = {"X-API-Key": "key-one", "content-type": "application/json"}
    big = json.dumps({"patient": example("aclf_hbv_missing_inr.json"), "pad": "x" * 20000}).encode()
    with guarded.client() as c:
        r = c.post("/v1/screen", content=big, headers=auth)
        assert r.status_code == 413 and r.json()["type"] == "/problems/body-too-large"
        r = c.post("/v1/screen", content=(big[i:i + 1000] for i in range(0, len(big), 1000)), headers=auth)
        assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"


def test_batch_limits_a_line_and_the_whole_stream(guarded):
    auth = {"X-API-Key": "key-one"}
    ok = json.dumps(example("aclf_hbv_missing_inr.json")).encode() + b"\n"
    long_line = b'{"id": "' + b"x" * 20000 + b'"}\n'
    with guarded.client() as c:
        with c.stream("POST", f"/v1/screen/batch?as_of={AS_OF}", headers=auth,
                      content=iter([ok, long_line[:9000], long_line[9000:], ok])) as r:
            lines = read_lines(r)
        assert [x["line"] for x in lines] == [1, 2, 3]
        assert lines[1]["error"]["status"] == 413 and "result" in lines[0] and "result" in lines[2]
        r = c.post("/v1/screen/batch", headers=auth, content=ok * 40)  # declared length over the limit
        assert r.status_code == 413
        # Streamed past the limit: a 413 problem if nothing was sent yet, else a last error line.
        with c.stream("POST", f"/v1/screen/batch?as_of={AS_OF}", headers=auth, content=iter([ok] * 40)) as r:
            if r.status_code == 413:
                r.read()
                assert r.json()["type"] == "/problems/body-too-large"
            else:
                lines = read_lines(r)
                assert r.status_code == 200 and lines[-1]["error"]["status"] == 413
                assert all("result" in x for x in lines[:-1]) and len(lines) < 40


# ---- reload: the last good version keeps serving -------------------------------------------------

@pytest.fixture()
def rules_copy(tmp_path):
    target = tmp_path / "rules"
    shutil.copytree(RULES, target)
    return target


def _wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_reload_keeps_the_last_good_trial_and_reports_the_broken_edit(rules_copy, tmp_path):
    server = start_server(tmp_path, {"ELIG_RULES_DIR": str(rules_copy)})
    patient = {"patient": example("aclf_hbv_eligible.fhir.json"), "as_of": AS_OF, "trial_ids": ["NCT01844063"]}
    trial_file = rules_copy / "trials" / "NCT01844063.elig"
    try:
        with server.client() as c:
            first = c.post("/v1/screen", json=patient).json()["trials"][0]
            assert first["verdict"] == E
            trial_file.write_text(trial_file.read_text() + "\ninclusion I99 \"broken\":\n  age >= \n")
            report = c.post("/v1/admin/reload").json()
            assert report["ok"] is False and report["kept_previous"] == ["NCT01844063"]
            assert report["failed_files"] == ["trials/NCT01844063.elig"]
            assert report["diagnostics"] and report["diagnostics"][0]["file"] == "trials/NCT01844063.elig"
            assert "NCT01844063" in report["trials"] and report["removed"] == []
            again = c.post("/v1/screen", json=patient).json()["trials"][0]
            assert again["verdict"] == E and again["content_hash"] == first["content_hash"]
            assert c.get("/v1/trials/NCT01844063").json()["serving_previous_version"] is True

            # SIGHUP: a valid edit is picked up; a broken one again keeps the last good version.
            text = (RULES / "trials" / "NCT01844063.elig").read_text()
            trial_file.write_text(text.replace("for Liver Failure\"", "for Liver Failure (edited)\"", 1))
            server.hangup()
            assert _wait_for(lambda: "(edited)" in c.get("/v1/trials/NCT01844063").json()["title"])
            edited = c.get("/v1/trials/NCT01844063").json()
            assert edited["serving_previous_version"] is False and edited["content_hash"] != first["content_hash"]
            generation = c.get("/readyz").json()["rules_generation"]
            trial_file.write_text("trial NCT01844063 { title: ")
            server.hangup()
            assert _wait_for(lambda: c.get("/readyz").json()["rules_generation"] > generation)
            assert c.get("/readyz").json()["failed_files"] == ["trials/NCT01844063.elig"]
            kept = c.post("/v1/screen", json=patient).json()["trials"][0]
            assert kept["verdict"] == E and kept["content_hash"] == edited["content_hash"]
    finally:
        stop_server(server)
