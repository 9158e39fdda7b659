"""Compile: time to parse, check and compile each seed trial file, 1,000 generated files, and
the service's start time with 1,000 trial files (process start to `GET /readyz` OK).

Per seed file, two figures: cold (a fresh import resolver, so the imported library is parsed
too, as `elig check FILE` does) and warm (library already parsed, as when a rule set loads its
second and later files), each the median of several runs, split into parse / check / compile.
The compiler compiles each function once per shape per process; the per-file figures clear
that memo before every file, so they are what a file whose shapes are all new costs.

`load_rules` over the generated files three ways: as the service does (a helper process
compiles part of the files when there are two CPUs), in this process only, and in this process
with the shape memo cleared before every file (the generated files are threshold-perturbed
copies of the 5 seeds and share every shape; that row is the case of no shape in common).

Run: .venv/bin/python bench/compile.py [--quick] [--files 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, machine, save, table  # noqa: E402
from _workload import api_available, rules_dirs, serve  # noqa: E402

from engine.checker import check  # noqa: E402
from engine import compiler, rules as rules_module  # noqa: E402
from engine.compiler import compile_checked  # noqa: E402
from engine.parser import parse  # noqa: E402
from engine.rules import ImportResolver, load_rules  # noqa: E402
from engine.source import Source  # noqa: E402


def _stages(path: Path, resolver: ImportResolver) -> tuple[float, float, float]:
    source = Source.from_path(path, path.name)
    t0 = time.perf_counter()
    module = parse(source)
    t1 = time.perf_counter()
    checked, _warnings = check(source, module, resolver)
    compiler.clear_shape_memo()
    t2 = time.perf_counter()
    compile_checked(checked)
    t3 = time.perf_counter()
    return t1 - t0, t2 - t1, t3 - t2


def seed_files(runs: int) -> list[dict]:
    rules = ROOT / "rules"
    out = []
    for path in sorted((rules / "trials").glob("*.elig")):
        cold, warm = [], []
        for _ in range(runs):
            cold.append(_stages(path, ImportResolver(rules)))
        resolver = ImportResolver(rules)
        _stages(path, resolver)  # parses the library once
        for _ in range(runs):
            warm.append(_stages(path, resolver))
        med = lambda rows, i: statistics.median(r[i] for r in rows) * 1000  # noqa: E731
        lines = path.read_text(encoding="utf-8").count("\n")
        out.append({"file": path.name, "lines": lines,
                    "cold_ms": statistics.median(sum(r) for r in cold) * 1000,
                    "warm_ms": statistics.median(sum(r) for r in warm) * 1000,
                    "parse_ms": med(warm, 0), "check_ms": med(warm, 1), "compile_ms": med(warm, 2)})
    return out


def _timed_load(root: Path, kwargs: dict, hetero: bool) -> float:
    real = rules_module.compile_source

    def compile_with_no_shape_known(*args):
        compiler.clear_shape_memo()
        return real(*args)
    if hetero:
        rules_module.compile_source = compile_with_no_shape_known
    try:
        t0 = time.perf_counter()
        rules = load_rules(root, **kwargs)
        seconds = time.perf_counter() - t0
    finally:
        rules_module.compile_source = real
    assert not rules.failed_files, rules.failed_files[:3]
    return seconds


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 runs per seed, 20 generated files")
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--no-api", action="store_true")
    args = ap.parse_args(argv)
    runs, files = (2, 20) if args.quick else (15, args.files)
    print(f"compile; {machine()}")
    lib = ROOT / "rules" / "lib" / "hepatology.elig"
    print(f"library {lib.name}: {lib.read_text(encoding='utf-8').count(chr(10))} lines")
    seeds = seed_files(runs)
    print(table(["seed file", "lines", "cold ms", "warm ms", "parse ms", "check ms", "compile ms"],
                [[s["file"], s["lines"], s["cold_ms"], s["warm_ms"], s["parse_ms"], s["check_ms"], s["compile_ms"]]
                 for s in seeds], title=f"\ncheck and compile one file (median of {runs}; cold = library parsed too)"))
    data: dict = {"seeds": seeds}
    with rules_dirs([files]) as dirs:
        loads = {}
        for label, kwargs, hetero in (("default (helper process when >= 2 CPUs)", {}, False),
                                      ("this process only", {"workers": 0}, False),
                                      ("this process only, no shape in common", {"workers": 0}, True)):
            compiler.clear_shape_memo()
            seconds = _timed_load(dirs[files], kwargs, hetero)
            loads[label] = {"seconds": seconds, "ms_per_file": seconds / files * 1000}
        data["generated"] = {"files": files, **loads}
        print(table(["load_rules", "s", "ms per file"], [[k, v["seconds"], v["ms_per_file"]] for k, v in loads.items()],
                    title=f"\nload_rules over {files:,} generated trial files (no compile cache)"))
        why = None if not args.no_api else "--no-api"
        why = why or api_available()
        if why:
            print(f"service start: skipped ({why})")
        else:
            starts = {}
            cache = Path(tempfile.mkdtemp(prefix="elig-bench-cache-"))
            os.environ["ELIG_CACHE_DIR"] = str(cache)  # a fresh compile cache: first start cold, second warm
            try:
                for label, root in (("bundled rules (5 files)", None), (f"{files:,} trial files", dirs[files]),
                                    (f"{files:,} trial files, restart (compile cache warm)", dirs[files])):
                    with serve(root) as (_base, ready, _pid):
                        starts[label] = ready
            finally:
                os.environ.pop("ELIG_CACHE_DIR", None)
                shutil.rmtree(cache, ignore_errors=True)
            data["service_start_s"] = starts
            print(table(["service (uvicorn api.main:app)", "start to /readyz OK, s"],
                        [[k, v] for k, v in starts.items()], title="\nservice start"))
    if not args.quick:
        save("compile", data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
