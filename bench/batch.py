"""Batch: many patients from NDJSON, in process and through the API's streaming batch endpoint.

In process: `engine.load.iter_patients` over an NDJSON file of native patients, each screened
against every bundled trial (statuses and the verdict from them; with `--explain` full explanations as the CLI does),
in a fresh subprocess per size, which reports patients/s and its peak memory (ru_maxrss) and
the memory it had before the first patient (rules loaded). Peak memory that does not grow with
the number of patients is what "flat" means here.

Through the API (when present): `POST /v1/screen/batch` with the same NDJSON sent as a chunked
body from a raw asyncio client that reads results while it sends (the endpoint streams; a
client that sends everything before reading would stall once the server's bounded buffer is
full), one fresh server per size; patients/s and the server's peak RSS (VmHWM).

Run: .venv/bin/python bench/batch.py [--quick] [--sizes 1000,10000,100000] [--api-sizes 1000,10000]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, save, table  # noqa: E402
from _workload import AS_OF, PYTHON, api_available, serve  # noqa: E402

DAY0 = date.fromisoformat(AS_OF)
LABS = [("1975-2", "mg/dL", 1.0, 30.0), ("6301-6", None, 0.9, 3.5), ("2160-0", "mg/dL", 0.5, 4.0),
        ("2951-2", "mmol/L", 125.0, 145.0), ("3289-6", "%", 10.0, 90.0), ("5902-2", "s", 10.0, 25.0)]
CONDITIONS = [("icd10cm", "K72.90"), ("icd10cm", "B18.1"), ("icd10cm", "K74.60"), ("snomed", "59927004"),
              ("icd10cm", "C22.0"), ("icd10cm", "K70.30"), ("icd10cm", "I10"), ("icd10cm", "E11.9")]


def synthetic_patient(rng: random.Random, i: int) -> dict:
    """A small native patient (about a dozen items) that the hepatology trials have work on."""
    def day(back: int) -> str:
        return (DAY0 - timedelta(days=back)).isoformat()

    obs = []
    for k, (code, unit, lo, hi) in enumerate(LABS):
        if rng.random() < 0.85:
            for j in range(rng.choice((1, 1, 2))):
                o = {"id": f"Observation/{i}-{k}-{j}", "codes": [{"system": "loinc", "code": code}],
                     "effective": day(rng.randint(0, 20) + 3 * j),
                     "value": {"value": round(rng.uniform(lo, hi), 2), **({"unit": unit} if unit else {})}}
                obs.append(o)
    obs.append({"id": f"Observation/{i}-hbsag", "codes": [{"system": "loinc", "code": "5196-1"}],
                "effective": day(rng.randint(0, 300)), "value_text": rng.choice(["positive", "positive", "negative"])})
    conds = [{"id": f"Condition/{i}-{k}", "codes": [{"system": s, "code": c}], "clinical_status": "active",
              "onset": day(rng.randint(1, 4000))}
             for k, (s, c) in enumerate(rng.sample(CONDITIONS, rng.randint(1, 3)))]
    return {"id": f"batch-{i}", "birth_date": day(365 * rng.randint(15, 85) + rng.randint(0, 364)),
            "sex": rng.choice(["male", "female"]), "observations": obs, "conditions": conds}


def write_ndjson(path: Path, n: int, seed: int = 11) -> int:
    rng = random.Random(seed)
    with path.open("w", encoding="utf-8") as out:
        for i in range(n):
            out.write(json.dumps(synthetic_patient(rng, i), separators=(",", ":")) + "\n")
    return path.stat().st_size


# ---- in process, one subprocess per size ---------------------------------------------------

def child(path: Path, limit: int, explain: bool) -> None:
    """Screen the first `limit` patients of `path`; print one JSON line of figures."""
    import engine
    from engine.explain import verdict_of
    from engine.facts import PatientFacts
    from engine.load import iter_patients
    from engine.rules import load_rules

    trials = list(load_rules(ROOT / "rules").trials.values())
    trials_criteria = [(t, list(t.checked.criteria)) for t in trials]
    as_of = date.fromisoformat(AS_OF)
    base_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    counts: dict[str, int] = {}
    start = time.perf_counter()
    n = 0
    for loaded in itertools.islice(iter_patients(path), limit):
        if explain:
            result = engine.screen(loaded.patient, trials, as_of)
            for t in result.trials:
                counts[t.verdict] = counts.get(t.verdict, 0) + 1
        else:
            facts = PatientFacts(loaded.patient, as_of)
            for t, criteria in trials_criteria:
                v = verdict_of(criteria, t.statuses(facts))
                counts[v] = counts.get(v, 0) + 1
        n += 1
    seconds = time.perf_counter() - start
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"patients": n, "seconds": seconds, "base_kb": base_kb, "peak_kb": peak_kb,
                      "verdicts": counts}))


def in_process(path: Path, sizes: list[int], explain: bool) -> list[dict]:
    out = []
    for n in sizes:
        cmd = [PYTHON, __file__, "--child", str(path), "--limit", str(n)] + (["--explain"] if explain else [])
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            raise SystemExit(proc.stderr[-2000:])
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        r["per_s"] = r["patients"] / r["seconds"]
        out.append(r)
    return out


# ---- through the API -------------------------------------------------------------------------

async def _stream(base: str, path: Path, limit: int) -> dict:
    """POST the first `limit` lines as a chunked NDJSON body while reading the NDJSON result."""
    host, port = base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write((f"POST /v1/screen/batch?as_of={AS_OF} HTTP/1.1\r\nHost: {host}\r\n"
                  "Content-Type: application/x-ndjson\r\nTransfer-Encoding: chunked\r\n"
                  "Connection: close\r\n\r\n").encode())

    async def send() -> None:
        with path.open("rb") as f:
            block: list[bytes] = []
            size = 0
            for line in itertools.islice(f, limit):
                block.append(line)
                size += len(line)
                if size >= 64 * 1024:
                    data = b"".join(block)
                    writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                    await writer.drain()
                    block, size = [], 0
            if block:
                data = b"".join(block)
                writer.write(b"%x\r\n%s\r\n" % (len(data), data))
            writer.write(b"0\r\n\r\n")
            await writer.drain()

    async def receive() -> dict:
        status = (await reader.readline()).decode().strip()
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            k, _, v = line.decode().partition(":")
            headers[k.strip().lower()] = v.strip()
        lines = errors = 0
        tail = b""
        chunked = headers.get("transfer-encoding", "") == "chunked"
        while True:
            if chunked:
                size = int((await reader.readline()).strip() or b"0", 16)
                if size == 0:
                    break
                data = await reader.readexactly(size + 2)
                data = data[:-2]
            else:
                data = await reader.read(1 << 16)
                if not data:
                    break
            parts = (tail + data).split(b"\n")
            tail = parts.pop()
            lines += len(parts)
            errors += sum(1 for p in parts if p[:60].find(b'"error":{') >= 0)
        return {"status": status, "lines": lines, "errors": errors}

    t0 = time.perf_counter()
    sender = asyncio.create_task(send())
    got = await receive()
    await sender
    writer.close()
    got["seconds"] = time.perf_counter() - t0
    return got


def _vm_hwm_kb(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def through_api(path: Path, sizes: list[int]) -> list[dict] | None:
    why = api_available()
    if why:
        print(f"\nAPI batch: skipped ({why})")
        return None
    out = []
    for n in sizes:
        with serve() as (base, _ready, pid):
            before = _vm_hwm_kb(pid)
            r = asyncio.run(_stream(base, path, n))
            r.update(patients=n, per_s=r["lines"] / r["seconds"], base_kb=before, peak_kb=_vm_hwm_kb(pid))
            if r["lines"] != n:
                print(f"  warning: {r['lines']} result lines for {n} patients ({r['status']})")
        out.append(r)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 50 and 200 patients in process, 100 through the API")
    ap.add_argument("--sizes", default="1000,10000,100000", help="in-process sizes")
    ap.add_argument("--api-sizes", default="1000,10000", help="API sizes (100000 takes ~15 min here)")
    ap.add_argument("--explain", action="store_true", help="in process: full explanations (engine.screen)")
    ap.add_argument("--no-api", action="store_true")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        child(args.child, args.limit, args.explain)
        return 0
    sizes = [50, 200] if args.quick else [int(x) for x in args.sizes.split(",")]
    api_sizes = [100] if args.quick else [int(x) for x in args.api_sizes.split(",")]
    print(f"batch, as of {AS_OF}, every bundled trial; {machine()}")
    data: dict = {}
    with tempfile.TemporaryDirectory(prefix="elig-batch-") as tmp:
        path = Path(tmp) / "patients.ndjson"
        written = max(sizes + ([] if args.no_api else api_sizes))
        size = write_ndjson(path, written)
        print(f"NDJSON: {written:,} native patients (~{size / written / 1024:.1f} KiB each)")
        ip = in_process(path, sizes, args.explain)
        data["in_process"] = ip
        rows = [[f"{r['patients']:,}", r["seconds"], r["per_s"], r["base_kb"] / 1024, r["peak_kb"] / 1024,
                 (r["peak_kb"] - r["base_kb"]) / 1024] for r in ip]
        mode = "explained (engine.screen)" if args.explain else "statuses (verdict from them)"
        print(table(["patients", "seconds", "patients/s", "RSS before MiB", "peak RSS MiB", "growth MiB"], rows,
                    title=f"\nin process: iter_patients over NDJSON, {mode}, one subprocess per size"))
        if not args.no_api:
            api = through_api(path, api_sizes)
            data["api"] = api
            if api:
                rows = [[f"{r['patients']:,}", r["lines"], r["errors"], r["seconds"], r["per_s"],
                         (r["base_kb"] or 0) / 1024, (r["peak_kb"] or 0) / 1024] for r in api]
                print(table(["patients", "result lines", "errors", "seconds", "patients/s", "server RSS at ready MiB",
                             "server peak RSS MiB"], rows,
                            title="\nAPI: POST /v1/screen/batch, NDJSON streamed both ways, one server per size"))
    if not args.quick:
        save("batch", data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
