"""Shared helpers for the bench scripts: timing, tables, machine facts, result files.

Every figure a script prints is measured in that run; ratios compare figures of the same run,
because this machine is shared and its speed drifts between runs.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "out"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def machine() -> str:
    return (f"Python {platform.python_version()} ({platform.python_implementation()}), {os.cpu_count()} cores, "
            f"{platform.machine()}, {platform.system()}")


def best_rate(fn, items: int, repeats: int = 3, min_time: float = 0.0) -> float:
    """Items per second of the fastest of `repeats` runs of `fn()` (which processes `items`).

    The fastest run is the one least disturbed by other work on a shared machine.
    """
    best = float("inf")
    for _ in range(max(1, repeats)):
        gc.collect()
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return items / best if best > 0 else float("inf")


def percentiles(samples: list[float]) -> dict[str, float]:
    """p50/p90/p99/max of samples in seconds, returned in milliseconds."""
    s = sorted(samples)
    if not s:
        return {"p50": float("nan"), "p90": float("nan"), "p99": float("nan"), "max": float("nan"), "n": 0}

    def at(q: float) -> float:
        return s[min(len(s) - 1, int(round(q * (len(s) - 1))))] * 1000

    return {"p50": at(0.50), "p90": at(0.90), "p99": at(0.99), "max": s[-1] * 1000, "n": len(s),
            "mean": statistics.fmean(s) * 1000}


def table(headers: list[str], rows: list[list], title: str | None = None) -> str:
    """A plain-text table, right-aligned numbers, as printed by every bench."""
    cells = [[_fmt(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(h.ljust(w) if i == 0 else h.rjust(w) for i, (h, w) in enumerate(zip(headers, widths))))
    lines.append("  ".join("-" * w for w in widths))
    for r in cells:
        lines.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    return "\n".join(lines)


def _fmt(x) -> str:
    if isinstance(x, float):
        if x != x:
            return "–"
        if abs(x) >= 1000:
            return f"{x:,.0f}"
        if abs(x) >= 100:
            return f"{x:.0f}"
        if abs(x) >= 10:
            return f"{x:.1f}"
        return f"{x:.2f}" if abs(x) >= 0.1 else f"{x:.3g}"
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}"
    return str(x)


def save(name: str, data: dict) -> Path:
    """Write a run's figures as JSON under bench/out/ (not committed)."""
    OUT.mkdir(parents=True, exist_ok=True)
    path = OUT / f"{name}.json"
    data = {"machine": machine(), "when": time.strftime("%Y-%m-%d %H:%M:%S"), **data}
    path.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    return path
