"""The `elig` command: screen patients, check criteria files, serve the API.

Stage: user interface. Each subcommand is one small function over the engine's facade; errors
in input files are printed as diagnostics or one-line messages, never as tracebacks.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import date
from pathlib import Path

from pydantic import ValidationError

from . import __version__, screen
from .facts import observation_codes
from .fhir import FhirError
from .load import iter_patients
from .rules import DEFAULT_RULES_DIR, load_rules

STATUS_MARK = {"met": "✓", "not_met": "✗", "unknown": "?", "not_applicable": "–", "manual": "✎"}
COLOURS = {"eligible": "32", "possibly_eligible": "33", "ineligible": "31", "met": "32", "not_met": "31",
           "unknown": "33", "not_applicable": "2", "manual": "36"}


def main(argv: list[str] | None = None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        return args.run(args)
    except BrokenPipeError:
        return 0
    except OSError as exc:  # a missing or unreadable file: one line, never a traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"elig: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="elig", description="Clinical-trial eligibility screening.")
    parser.add_argument("--version", action="version", version=f"elig {__version__}")
    sub = parser.add_subparsers(metavar="COMMAND")

    p = sub.add_parser("screen", help="screen patients (FHIR or native JSON; file, folder or NDJSON)")
    p.add_argument("patients", type=Path, help="a patient file, a folder of them, or an NDJSON file")
    p.add_argument("--as-of", type=date.fromisoformat, default=None, help="screening date, YYYY-MM-DD (default today)")
    p.add_argument("--trial", action="append", dest="trials", help="only this trial id (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--rules", type=Path, default=DEFAULT_RULES_DIR, help="rules directory (default: bundled)")
    p.add_argument("--strict-fhir", action="store_true",
                   help="reject FHIR input that fails full R4 validation (slower: about 0.2 s per MB)")
    p.set_defaults(run=cmd_screen)

    p = sub.add_parser("check", help="check criteria files and print diagnostics")
    p.add_argument("paths", nargs="*", type=Path, help="files or folders (default: the bundled rules)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--rules", type=Path, default=DEFAULT_RULES_DIR, help="rules root for imports")
    p.set_defaults(run=cmd_check)

    p = sub.add_parser("serve", help="serve the HTTP API with uvicorn")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--rules", type=Path, default=None, help="rules directory (default: bundled)")
    p.set_defaults(run=cmd_serve)

    _add_toolchain_commands(sub)
    return parser


def _add_toolchain_commands(sub) -> None:
    """Rule-author commands (test, fmt, explain, import) register themselves here when present."""
    try:
        from . import toolchain
    except ImportError:
        return
    toolchain.register(sub)


# ---- screen ----------------------------------------------------------------------------------

def cmd_screen(args) -> int:
    rules = load_rules(args.rules)
    for d in rules.errors:
        print(d.render(), file=sys.stderr)
    trials = [t for tid, t in rules.trials.items() if not args.trials or tid in args.trials]
    if args.trials and len(trials) != len(set(args.trials)):
        missing = sorted(set(args.trials) - set(rules.trials))
        print(f"elig: unknown trial id(s): {', '.join(missing)}", file=sys.stderr)
        return 2
    if not args.patients.exists():
        print(f"elig: no such file or folder: {args.patients}", file=sys.stderr)
        return 2
    as_of = args.as_of or date.today()
    results, failures = [], 0
    from .toolchain import Progress  # a bar on stderr (a terminal) while many patients are screened
    progress = Progress.for_screen(args.patients, stdout_shows_table=not args.json and sys.stdout.isatty())
    for loaded in _patients_or_errors(args.patients, args.strict_fhir, observation_codes(trials)):
        progress.step()
        if isinstance(loaded, str):
            failures += 1
            progress.write(loaded)
            continue
        result = screen(loaded.patient, trials, as_of)
        if args.json:
            results.append(result.model_dump(mode="json"))
        else:
            _print_table(result, loaded.origin, sys.stdout.isatty())
    progress.close()
    if args.json:
        doc = {"as_of": as_of.isoformat(), "trials": results[0]["trials"]} if len(results) == 1 else \
            {"as_of": as_of.isoformat(), "patients": results}
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    return 1 if failures else 0


def _patients_or_errors(path: Path, strict_fhir: bool = False, codes: frozenset[str] | None = None):
    """Patients one by one; a bad one becomes an error line, and the rest still run."""
    iterator = iter_patients(path, strict_fhir=strict_fhir, observation_codes=codes)
    while True:
        try:
            yield next(iterator)
        except StopIteration:
            return
        except (FhirError, ValidationError, ValueError) as exc:
            yield f"elig: cannot read a patient in {path}: {_one_line(exc)}"


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        where = "/".join(str(p) for p in first["loc"])
        return f"{where}: {first['msg']} ({exc.error_count()} problem(s))"
    return str(exc)


def _paint(text: str, key: str, colour: bool) -> str:
    return f"\033[{COLOURS[key]}m{text}\033[0m" if colour and key in COLOURS else text


def _print_table(result, origin: str, colour: bool) -> None:
    print(f"Patient {result.patient_id} ({origin}), screened as of {result.as_of}")
    for t in result.trials:
        counts = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in t.counts.items() if n)
        print(f"  {t.trial_id}  {_paint(t.verdict.replace('_', ' ').upper(), t.verdict, colour)}  ({counts})")
        for c in t.criteria:
            mark = _paint(f"{STATUS_MARK[c.status]} {c.status.replace('_', ' '):<14}", c.status, colour)
            print(f"    {c.key:<4} {mark} {c.explanation}")
            for m in c.missing:
                print(f"{'':24}→ needs: {m}")
    print()


# ---- check ------------------------------------------------------------------------------------

def cmd_check(args) -> int:
    from .rules import check_paths
    diagnostics, files = check_paths(args.paths or [args.rules], args.rules)
    errors = [d for d in diagnostics if d.severity == "error"]
    if args.format == "json":
        print(json.dumps({"files": files, "diagnostics": [d.to_dict() for d in diagnostics]}, indent=2,
                         ensure_ascii=False))
    else:
        for d in diagnostics:
            print(d.render() + "\n")
        warnings = len(diagnostics) - len(errors)
        print(f"{len(files)} file(s) checked: {len(errors)} error(s), {warnings} warning(s)")
    return 1 if errors else 0


# ---- serve ------------------------------------------------------------------------------------

def cmd_serve(args) -> int:
    import os

    import uvicorn

    if args.rules is not None:
        os.environ["ELIG_RULES_DIR"] = str(args.rules.resolve())
    uvicorn.run("api.main:app", host=args.host, port=args.port, workers=args.workers, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
