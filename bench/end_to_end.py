"""End to end: one realistic FHIR bundle (300 resources) screened in process and over HTTP.

In process, per patient, for every bundled trial and for 10, 100 and 1,000 generated trials:
  statuses:  bundle JSON text → engine.load.parse_json (orjson) → bundle_to_patient → PatientFacts → statuses of every trial
  explained: bundle JSON text → engine.load.parse_json (orjson) → bundle_to_patient → engine.screen (every criterion
             explained, ranked pydantic results)
with p50/p99 per patient and the share of each stage.

Over HTTP: `uvicorn api.main:app` in a subprocess on 127.0.0.1, `POST /v1/screen` with
`{"patient": ..., "as_of": ...}` over concurrent keep-alive connections of a lean asyncio client
(prepared request bytes, replies read by length, as wrk does), bounded in count and time:
the patient in the engine's JSON (40 items) and as the 300-resource FHIR bundle, against every
bundled trial. Skipped with a message when the API is not there. Client and server share the
machine's 2 cores, so the client's own CPU time is reported too.

Run: .venv/bin/python bench/end_to_end.py [--quick] [--seconds S] [--concurrency C] [--workers W]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, percentiles, save, table  # noqa: E402
from _workload import AS_OF, api_available, count_items, load_trials, native_patient, realistic_bundle, \
    rules_dirs, serve  # noqa: E402

import engine  # noqa: E402
from engine.facts import PatientFacts, observation_codes  # noqa: E402
from engine.fhir import bundle_to_patient  # noqa: E402
from engine.load import parse_json  # noqa: E402
from engine.rules import tune_gc_for_serving  # noqa: E402

AS_OF_DATE = engine._as_date(AS_OF)


def time_statuses(text: str, trials: list, iterations: int, budget: float) -> dict:
    """Per-patient wall time, bundle text to statuses, split by stage.

    The bundle is read as the service reads it: only observations the trials can read.
    """
    codes = observation_codes(trials)
    stages = {"json": [], "fhir": [], "facts": [], "statuses": [], "total": [], "cpu": []}
    deadline = time.perf_counter() + budget
    for i in range(iterations):
        c0 = time.thread_time()
        t0 = time.perf_counter()
        doc = parse_json(text)
        t1 = time.perf_counter()
        patient = bundle_to_patient(doc, observation_codes=codes).patient
        t2 = time.perf_counter()
        facts = PatientFacts(patient, AS_OF_DATE)
        t3 = time.perf_counter()
        for t in trials:
            t.statuses(facts)
        t4 = time.perf_counter()
        stages["cpu"].append(time.thread_time() - c0)
        for key, a, b in (("json", t0, t1), ("fhir", t1, t2), ("facts", t2, t3), ("statuses", t3, t4),
                          ("total", t0, t4)):
            stages[key].append(b - a)
        if i >= 4 and time.perf_counter() > deadline:
            break
    return {k: percentiles(v) for k, v in stages.items()}


def time_explained(text: str, trials: list, iterations: int, budget: float) -> dict:
    codes = observation_codes(trials)
    samples, cpu = [], []
    deadline = time.perf_counter() + budget
    for i in range(iterations):
        c0 = time.thread_time()
        t0 = time.perf_counter()
        patient = bundle_to_patient(parse_json(text), observation_codes=codes).patient
        engine.screen(patient, trials, AS_OF_DATE)
        samples.append(time.perf_counter() - t0)
        cpu.append(time.thread_time() - c0)
        if i >= 2 and time.perf_counter() > deadline:
            break
    return {**percentiles(samples), "cpu_p50": percentiles(cpu)["p50"]}


def in_process(quick: bool) -> dict:
    bundle, origin = realistic_bundle()
    text = json.dumps(bundle)
    patient = bundle_to_patient(bundle).patient
    print(f"bundle: {len(bundle['entry'])} resources, {len(text) // 1024} KiB ({origin}); read as "
          f"{len(patient.observations)} observations, {len(patient.conditions)} conditions, "
          f"{len(patient.medications)} medications, {len(patient.procedures)} procedures")
    counts = [10, 100] if quick else [10, 100, 1000]
    bundled = load_trials(ROOT / "rules")
    rows, out = [], {}
    with rules_dirs(counts) as dirs:
        sets = [(f"bundled ({len(bundled)})", bundled)] + [(f"{n:,} generated", load_trials(dirs[n])) for n in counts]
        # As the service does once its rules are loaded: without it, every full collection walks
        # ~1,100 compiled trials and lands in some patient's time.
        tune_gc_for_serving()
        for label, trials in sets:
            n = len(trials)
            its = 5 if quick else (300 if n <= 10 else 150 if n <= 100 else 30)
            budget = 1.0 if quick else 20.0
            st = time_statuses(text, trials, its, budget)
            ex = time_explained(text, trials, max(3, its // (3 if n <= 100 else 6)), budget)
            out[label] = {"trials": n, "statuses": st, "explained": ex}
            total = st["total"]["p50"]
            share = ", ".join(f"{k} {st[k]['p50'] / total:.0%}" for k in ("json", "fhir", "facts", "statuses"))
            rows.append([label, st["total"]["p50"], st["total"]["p99"], st["cpu"]["p50"],
                         st["statuses"]["p50"] / n * 1000, ex["p50"], ex["p99"], ex["cpu_p50"], share,
                         st["total"]["n"]])
    print(table(["trials", "statuses p50 ms", "p99 ms", "CPU p50 ms", "µs/trial", "explained p50 ms", "p99 ms",
                 "CPU p50 ms", "share of statuses p50 by stage", "runs"], rows,
                title="\nin process, per patient (bundle JSON text → results); CPU = this thread's CPU time, "
                      "which other work on the machine does not inflate"))
    return out


# ---- HTTP -------------------------------------------------------------------------------------

def _cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process (Linux /proc), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        import os
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


class _Connection:
    """One keep-alive HTTP/1.1 connection that posts a prepared request and reads the reply.

    A load generator in the spirit of wrk: the request bytes are built once, and a reply is read
    by its Content-Length, so the client spends microseconds per request and the two cores of
    this machine go to the server being measured (httpx cost ~1 ms of client CPU per request,
    half a core at 300 requests/s).
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes):
        self.reader, self.writer, self.request = reader, writer, request

    @classmethod
    async def open(cls, base: str, body: bytes) -> "_Connection":
        host, port = base.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        head = (f"POST /v1/screen HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\n\r\n").encode()
        return cls(reader, writer, head + body)

    async def post(self) -> tuple[int, bytes]:
        self.writer.write(self.request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


async def _load(base: str, body: bytes, concurrency: int, seconds: float, max_requests: int) -> dict:
    latencies: list[float] = []
    errors = 0
    connections = [await _Connection.open(base, body) for _ in range(concurrency)]
    for conn in connections[:4]:  # warm up: first-request work
        await conn.post()
    sent = 0
    deadline = time.perf_counter() + seconds

    async def worker(conn: _Connection):
        nonlocal errors, sent
        while time.perf_counter() < deadline and sent < max_requests:
            sent += 1
            t0 = time.perf_counter()
            status, reply = await conn.post()
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                errors += 1
                if errors == 1:
                    print(f"  first error: HTTP {status} {reply[:300]!r}")

    cpu0, t0 = time.process_time(), time.perf_counter()
    await asyncio.gather(*(worker(c) for c in connections))
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    for conn in connections:
        conn.close()
    return {"requests": len(latencies), "errors": errors, "seconds": wall, "per_s": len(latencies) / wall,
            "latency": percentiles(latencies), "client_cpu_share": cpu / wall}


def over_http(quick: bool, seconds: float, concurrency: int, workers: int = 1) -> dict | None:
    why = api_available()
    if why:
        print(f"\nHTTP: skipped ({why})")
        return None
    native = native_patient(40)
    bundle, _ = realistic_bundle()
    payloads = [("engine JSON, 40 items", {"patient": native, "as_of": AS_OF}),
                ("engine JSON, statuses only", {"patient": native, "as_of": AS_OF, "explain": False}),
                ("FHIR bundle, 300 resources", {"patient": bundle, "as_of": AS_OF}),
                ("FHIR bundle, statuses only", {"patient": bundle, "as_of": AS_OF, "explain": False})]
    rows, out = [], {}
    with serve(workers=workers) as (base, ready, pid):
        print(f"\nHTTP: uvicorn api.main:app, {workers} worker(s), on {base}; ready in {ready:.2f} s; "
              f"{concurrency} concurrent clients, {seconds:g} s per payload")
        for label, payload in payloads:
            body = json.dumps(payload).encode()
            cpu0 = _cpu_seconds(pid) if workers == 1 else None  # several workers: not measured
            r = asyncio.run(_load(base, body, concurrency, seconds, 50 if quick else 1_000_000))
            cpu1 = _cpu_seconds(pid)
            warm = min(concurrency, 4)
            r["server_cpu_ms_per_request"] = (cpu1 - cpu0) / (r["requests"] + warm) * 1000 \
                if cpu0 is not None and cpu1 is not None else float("nan")
            out[label] = r
            rows.append([label, f"{len(body) // 1024} KiB", r["requests"], r["errors"], r["per_s"],
                         r["latency"]["p50"], r["latency"]["p99"], r["server_cpu_ms_per_request"],
                         1000 / r["server_cpu_ms_per_request"], f"{r['client_cpu_share']:.0%}"])
    assert count_items(native) == 40
    print(table(["POST /v1/screen (all bundled trials)", "body", "requests", "errors", "per s", "p50 ms", "p99 ms",
                 "server CPU ms/req", "per s per core (CPU bound)", "client CPU"], rows))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: few iterations, 10 and 100 trials, 2 s of HTTP")
    ap.add_argument("--seconds", type=float, default=10.0, help="HTTP load per payload (default 10)")
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--workers", type=int, default=1, help="uvicorn worker processes (default 1)")
    ap.add_argument("--no-http", action="store_true")
    ap.add_argument("--no-in-process", action="store_true")
    args = ap.parse_args(argv)
    print(f"end to end, as of {AS_OF}; {machine()}")
    data = {} if args.no_in_process else {"in_process": in_process(args.quick)}
    if not args.no_http:
        data["http"] = over_http(args.quick, 1.0 if args.quick else args.seconds, args.concurrency, args.workers)
    if not args.quick:
        save("end_to_end", data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
