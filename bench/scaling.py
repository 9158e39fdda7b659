"""Scaling: cost against the number of trials (1 → 1,000) and of patients (1 → 100,000).

Trials: one patient, the 300-resource FHIR bundle, from JSON text to the statuses of the first
N of 1,000 generated trials (fresh facts each run, so per-patient caches count as in service).
Patients: the first N native patients of an NDJSON file (as bench/batch.py writes), parsed,
indexed and screened against every bundled trial (statuses), in this process.

Linear means the time per trial (per patient) stays flat as N grows. Prints a table, and writes
bench/scaling.png when matplotlib is installed (`pip install '.[bench]'`).

Run: .venv/bin/python bench/scaling.py [--quick] [--no-plot]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, save, table  # noqa: E402
from _workload import AS_OF, load_trials, realistic_bundle, rules_dirs  # noqa: E402
from batch import synthetic_patient  # noqa: E402

from engine.facts import PatientFacts, observation_codes  # noqa: E402
from engine.fhir import bundle_to_patient  # noqa: E402
from engine.load import iter_patients, parse_json  # noqa: E402

AS_OF_DATE = date.fromisoformat(AS_OF)


def _best(fn, repeats: int) -> float:
    """The smallest of `repeats` measurements; `fn` returns the seconds its timed part took."""
    best = float("inf")
    for _ in range(repeats):
        gc.collect()
        best = min(best, fn())
    return best


def by_trials(counts: list[int], repeats: int) -> list[dict]:
    """Per trial count: bundle text → statuses, and the screening alone on fresh facts.

    The bundle is read as the service reads it, only what the trials can read. Screening is
    timed by itself (facts built fresh, outside the clock): subtracting the reading time from
    the total left only noise for a few trials.
    """
    text = json.dumps(realistic_bundle()[0])
    out = []
    with rules_dirs([max(counts)]) as dirs:
        trials = load_trials(dirs[max(counts)])
        codes = observation_codes(trials)
        patient = bundle_to_patient(parse_json(text), observation_codes=codes).patient
        for n in counts:
            chosen = trials[:n]

            def whole():
                t0 = time.perf_counter()
                facts = PatientFacts(bundle_to_patient(parse_json(text), observation_codes=codes).patient, AS_OF_DATE)
                for t in chosen:
                    t.statuses(facts)
                return time.perf_counter() - t0

            def screening():
                facts = PatientFacts(patient, AS_OF_DATE)
                t0 = time.perf_counter()
                for t in chosen:
                    t.statuses(facts)
                return time.perf_counter() - t0

            total, screen = _best(whole, repeats), _best(screening, repeats)
            out.append({"trials": n, "ms": total * 1000, "screening_ms": screen * 1000,
                        "us_per_trial": screen / n * 1e6})
    return out


def by_patients(counts: list[int], repeats: int) -> list[dict]:
    from engine.rules import load_rules

    trials = list(load_rules(ROOT / "rules").trials.values())
    out = []
    with tempfile.TemporaryDirectory(prefix="elig-scaling-") as tmp:
        path = Path(tmp) / "patients.ndjson"
        rng = random.Random(11)
        with path.open("w", encoding="utf-8") as f:
            for i in range(max(counts)):
                f.write(json.dumps(synthetic_patient(rng, i), separators=(",", ":")) + "\n")
        for n in counts:
            def run():
                t0 = time.perf_counter()
                for k, loaded in enumerate(iter_patients(path)):
                    if k == n:
                        break
                    facts = PatientFacts(loaded.patient, AS_OF_DATE)
                    for t in trials:
                        t.statuses(facts)
                return time.perf_counter() - t0

            seconds = _best(run, repeats if n <= 10_000 else 1)
            out.append({"patients": n, "seconds": seconds, "us_per_patient": seconds / n * 1e6})
    return out


def _panel(ax, xs: list, series: list[tuple[str, str, list]], **labels) -> None:
    """Log-log curves against N, with a linear reference through the first series' last point."""
    for label, style, ys in series:
        ax.loglog(xs, ys, style, label=label)
    ref = series[0][2][-1] / xs[-1]
    ax.loglog(xs, [ref * x for x in xs], ":", color="grey", label="linear")
    ax.set(**labels)
    ax.legend(fontsize=8)
    ax.grid(True, which="both", alpha=0.3)


def plot(trials: list[dict], patients: list[dict], path: Path) -> bool:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    _panel(a, [r["trials"] for r in trials],
           [("screening (statuses of N trials)", "o-", [r["screening_ms"] for r in trials]),
            ("bundle JSON → statuses", "s--", [r["ms"] for r in trials])],
           xlabel="trials", ylabel="ms per patient", title="one 300-resource patient, N trials")
    _panel(b, [r["patients"] for r in patients],
           [("NDJSON → statuses, 5 trials", "o-", [r["seconds"] for r in patients])],
           xlabel="patients", ylabel="seconds", title="N native patients, every bundled trial")
    fig.suptitle(f"elig scaling ({machine()})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: up to 30 trials and 300 patients")
    ap.add_argument("--no-plot", action="store_true")
    args = ap.parse_args(argv)
    print(f"scaling, as of {AS_OF}; {machine()}")
    if args.quick:
        t_counts, p_counts, repeats = [1, 3, 10, 30], [1, 10, 100, 300], 1
    else:
        t_counts, p_counts, repeats = [1, 3, 10, 30, 100, 300, 1000], [1, 10, 100, 1000, 10_000, 100_000], 5
    trials = by_trials(t_counts, repeats)
    print(table(["trials", "bundle → statuses ms", "screening ms", "µs per trial"],
                [[r["trials"], r["ms"], r["screening_ms"], r["us_per_trial"]] for r in trials],
                title="\ncost against trials (one patient; screening = statuses of fresh facts, timed alone)"))
    patients = by_patients(p_counts, repeats)
    print(table(["patients", "seconds", "µs per patient"],
                [[r["patients"], r["seconds"], r["us_per_patient"]] for r in patients],
                title="\ncost against patients (NDJSON → statuses of every bundled trial)"))
    if not args.quick:
        save("scaling", {"trials": trials, "patients": patients})
        if not args.no_plot:
            out = ROOT / "bench" / "scaling.png"
            print(f"\nplot: {out.relative_to(ROOT)}" if plot(trials, patients, out) else
                  "\nplot: matplotlib not installed, table only")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
