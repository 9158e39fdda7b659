"""Workloads shared by the bench scripts: generated trials, a realistic FHIR bundle, native
patients, and a server started on loopback.

Trials: N renamed copies of the seed trials (NCT9xxxxxxx) with every threshold in the criteria
moved by up to ±10 %, written into a temporary rules directory beside a copy of rules/lib.

Bundle: the eligible ACLF example's Patient and liver labs (examples/aclf_hbv_eligible.fhir.json)
plus the first resources of a Synthea sample bundle from the shared data folder, re-pointed at
that patient, 300 resources in all. Without the shared folder, a synthetic history is generated.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

from _common import ROOT

SEED_TRIALS = ROOT / "rules" / "trials"
EXAMPLE_BUNDLE = ROOT / "examples" / "aclf_hbv_eligible.fhir.json"
SAMPLES = ROOT.parent / "shared" / "data" / "fhir-samples"
SAMPLE = "Jordan_Cruickshank_5de38439-d320-46d3-854d-3c098e88de4c.json"
AS_OF = "2026-11-01"
PYTHON = sys.executable

_NUMBER = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.])")
_QUOTED = re.compile(r'"[^"]*"')


# ---- trials ----------------------------------------------------------------------------------

def _perturb_line(line: str, rng: random.Random) -> str:
    """Move every number outside quotes by up to ±10 %, keeping integers integers."""
    def move(m: re.Match) -> str:
        text = m.group(1)
        value = float(text) * rng.uniform(0.9, 1.1)
        if "." in text:
            return f"{value:.{len(text.split('.')[1])}f}"
        return str(max(1, round(value)))

    parts, last = [], 0
    for q in _QUOTED.finditer(line):
        parts.append(_NUMBER.sub(move, line[last:q.start()]))
        parts.append(q.group(0))
        last = q.end()
    parts.append(_NUMBER.sub(move, line[last:]))
    return "".join(parts)


def variant(text: str, trial_id: str, rng: random.Random) -> str:
    """A seed trial renamed to `trial_id`, with the thresholds of its criteria perturbed."""
    out, in_body = [], False
    for line in text.splitlines():
        if line.startswith("trial "):
            line = re.sub(r"^trial \S+", f"trial {trial_id}", line)
        elif line.startswith(("inclusion", "exclusion")):
            in_body = True
        elif in_body and line.startswith(" ") and "manual" not in line:
            line = _perturb_line(line, rng)
        out.append(line)
    return "\n".join(out) + "\n"


def make_rules_dir(n: int, dest: Path, seed: int = 6) -> Path:
    """`dest` with lib/ copied from rules/ and `n` generated trial files in trials/."""
    rng = random.Random(seed)
    shutil.copytree(ROOT / "rules" / "lib", dest / "lib", dirs_exist_ok=True)
    (dest / "trials").mkdir(parents=True, exist_ok=True)
    seeds = [p.read_text(encoding="utf-8") for p in sorted(SEED_TRIALS.glob("*.elig"))]
    for i in range(n):
        trial_id = f"NCT9{i:07d}"
        (dest / "trials" / f"{trial_id}.elig").write_text(variant(seeds[i % len(seeds)], trial_id, rng),
                                                          encoding="utf-8")
    return dest


@contextmanager
def rules_dirs(counts):
    """{count: rules root} for each count, in one temporary folder removed afterwards."""
    with tempfile.TemporaryDirectory(prefix="elig-bench-") as tmp:
        yield {n: make_rules_dir(n, Path(tmp) / f"rules-{n}") for n in counts}


def load_trials(root: Path) -> list:
    from engine.rules import load_rules

    rules = load_rules(root)
    if rules.failed_files:
        raise SystemExit(f"generated trials failed to compile: {rules.failed_files[:3]} "
                         f"{[d.render() for d in rules.errors[:2]]}")
    return list(rules.trials.values())


# ---- one realistic patient ------------------------------------------------------------------

def realistic_bundle(size: int = 300) -> tuple[dict, str]:
    """A FHIR Bundle of `size` resources for one patient, and where it came from."""
    example = json.loads(EXAMPLE_BUNDLE.read_text(encoding="utf-8"))
    patient_entry = example["entry"][0]
    assert patient_entry["resource"]["resourceType"] == "Patient"
    patient_uuid = patient_entry["fullUrl"].removeprefix("urn:uuid:")
    entries = list(example["entry"])
    sample = SAMPLES / SAMPLE
    if sample.is_file():
        text = sample.read_text(encoding="utf-8")
        bundle = json.loads(text)
        synthea_patient = next(e for e in bundle["entry"] if e["resource"]["resourceType"] == "Patient")
        old = synthea_patient["fullUrl"].removeprefix("urn:uuid:")
        bundle = json.loads(text.replace(old, patient_uuid))
        extra = [e for e in bundle["entry"] if e["resource"]["resourceType"] != "Patient"]
        origin = f"{EXAMPLE_BUNDLE.name} + {SAMPLE.split('_')[0]} {SAMPLE.split('_')[1]} (Synthea sample)"
    else:
        extra = list(_synthetic_history(patient_uuid, size))
        origin = f"{EXAMPLE_BUNDLE.name} + a generated history (shared samples not found)"
    entries += extra[: max(0, size - len(entries))]
    return {"resourceType": "Bundle", "type": "collection", "entry": entries}, origin


def _synthetic_history(patient_uuid: str, n: int):
    rng = random.Random(3)
    codes = [("2339-0", "Glucose", "mg/dL"), ("8867-4", "Heart rate", "/min"), ("8480-6", "Systolic BP", "mm[Hg]"),
             ("29463-7", "Body weight", "kg"), ("718-7", "Hemoglobin", "g/dL"), ("777-3", "Platelets", "10*3/uL")]
    for i in range(n):
        code, name, unit = rng.choice(codes)
        day = f"20{rng.randint(10, 25):02d}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        yield {"fullUrl": f"urn:uuid:gen-{i}", "resource": {
            "resourceType": "Observation", "id": f"gen-{i}", "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": code, "display": name}]},
            "subject": {"reference": f"urn:uuid:{patient_uuid}"}, "effectiveDateTime": day,
            "valueQuantity": {"value": round(rng.uniform(1, 200), 1), "unit": unit,
                              "system": "http://unitsofmeasure.org", "code": unit}}}


def native_patient(items: int = 40) -> dict:
    """The realistic bundle's patient in the engine's own JSON, cut to `items` items: its
    conditions and medications first (up to a third each), then its newest observations."""
    from engine.fhir import bundle_to_patient

    patient = bundle_to_patient(realistic_bundle()[0]).patient
    doc = patient.model_dump(mode="json", exclude_none=True)
    budget = items
    for section in ("conditions", "medications", "procedures", "trials", "facts"):
        doc[section] = doc.get(section, [])[: min(budget, items // 3)]
        budget -= len(doc[section])
    doc["observations"] = _newest(doc.get("observations", []), budget)
    return doc


def _newest(observations: list, n: int) -> list:
    return sorted(observations, key=lambda o: o.get("effective") or "", reverse=True)[:n]


def count_items(doc: dict) -> int:
    return sum(len(doc.get(s, [])) for s in ("observations", "conditions", "medications", "procedures", "trials",
                                             "facts"))


# ---- a server on loopback --------------------------------------------------------------------

def api_available() -> str | None:
    """None when the HTTP API can be served here, else why not."""
    if not (ROOT / "api" / "main.py").is_file():
        return "api/main.py is not there yet"
    probe = subprocess.run([PYTHON, "-c", "import api.main"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        return "api.main does not import: " + (probe.stderr.strip().splitlines() or ["?"])[-1]
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serve(rules_root: Path | None = None, ready_timeout: float = 120.0, workers: int = 1):
    """`uvicorn api.main:app` on 127.0.0.1:<free port>; yields (base url, seconds to /readyz OK, pid)."""
    import httpx

    port = free_port()
    env = dict(os.environ)
    if rules_root is not None:
        env["ELIG_RULES_DIR"] = str(rules_root)
    env.pop("ELIG_API_KEYS", None)
    cmd = [PYTHON, "-m", "uvicorn", "api.main:app", "--host", "127.0.0.1", "--port", str(port),
           "--log-level", "warning", "--no-access-log", "--workers", str(workers)]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    ready = None
    try:
        with httpx.Client(timeout=2.0) as client:
            while time.perf_counter() - start < ready_timeout:
                if proc.poll() is not None:
                    raise RuntimeError("the server exited: " + proc.stderr.read().decode(errors="replace")[-800:])
                try:
                    if client.get(base + "/readyz").status_code == 200:
                        ready = time.perf_counter() - start
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.01)
        if ready is None:
            raise RuntimeError(f"/readyz not OK within {ready_timeout:.0f} s")
        yield base, ready, proc.pid
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
