"""Rule-author commands: `elig test`, `elig fmt`, `elig explain`, `elig import ctgov`.

Stage: user interface, beside `cli.py`, which calls `register` (and `cmd_check` there runs the
lint stage through `rules.check_paths`). Each command is a thin function over one module:
`cases.py`, `format.py`, `describe.py`, `ctgov.py`. Problems in input files are printed as
diagnostics or one-line messages, never as tracebacks; exit status 1 means "look at this".
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from .diagnostics import CompileError
from .rules import DEFAULT_RULES_DIR, display_name


def register(sub) -> None:
    """Add the rule-author subcommands to `elig`'s argparse subparsers."""
    p = sub.add_parser("test", help="run the rule tests (<trial>.cases.yaml) and report coverage")
    p.add_argument("paths", nargs="*", type=Path, help="trial files, cases files or folders (default: bundled rules)")
    p.add_argument("--rules", type=Path, default=None, help="rules root for imports (default: beside the trial)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument("--strict", action="store_true",
                   help="also require each criterion met and not met, and lab criteria unknown, in some case")
    p.set_defaults(run=cmd_test)

    p = sub.add_parser("fmt", help="rewrite criteria files in the canonical layout")
    p.add_argument("paths", nargs="*", type=Path, help="files or folders (default: bundled rules)")
    p.add_argument("--check", action="store_true", help="change nothing; exit 1 if a file is not formatted")
    p.set_defaults(run=cmd_fmt)

    p = sub.add_parser("explain", help="a trial's criteria in plain language, with the data each needs")
    p.add_argument("trial", help="a trial id from the rules directory, or a criteria file")
    p.add_argument("--rules", type=Path, default=DEFAULT_RULES_DIR, help="rules directory (default: bundled)")
    p.set_defaults(run=cmd_explain)

    p = sub.add_parser("import", help="write a criteria-file skeleton from a registry record")
    p.add_argument("registry", choices=("ctgov",), help="ctgov: a ClinicalTrials.gov API v2 study JSON")
    p.add_argument("study", type=Path, help="the study record (JSON file)")
    p.add_argument("-o", "--output", type=Path, default=None, help="write here instead of stdout")
    p.add_argument("--import", dest="imports", action="append", default=[],
                   help="a library to import in the skeleton, e.g. hepatology (repeatable)")
    p.set_defaults(run=cmd_import)


# ---- test -----------------------------------------------------------------------------------------

def cmd_test(args) -> int:
    from . import cases

    trials = cases.find_trials(args.paths or [DEFAULT_RULES_DIR])
    if not trials:
        print("elig: no trial files found", file=sys.stderr)
        return 2
    reports = [cases.run_trial(t, args.rules) for t in trials]
    if args.format == "json":
        print(json.dumps(cases.to_json(reports, args.strict), indent=2, ensure_ascii=False))
    else:
        print(cases.render(reports, args.strict), end="")
    return 0 if cases.succeeded(reports, args.strict) else 1


# ---- fmt ------------------------------------------------------------------------------------------

def cmd_fmt(args) -> int:
    from .format import format_source
    from .source import Source

    changed, failed = [], 0
    for path in _elig_files(args.paths or [DEFAULT_RULES_DIR]):
        source = Source.from_path(path, display_name(path))
        try:
            formatted = format_source(source)
        except CompileError as exc:
            print(exc.render() + "\n", file=sys.stderr)
            failed += 1
            continue
        if formatted != source.text:
            changed.append(source.name)
            if not args.check:
                path.write_text(formatted, encoding="utf-8")
    return _fmt_summary(changed, failed, args.check)


def _fmt_summary(changed: list[str], failed: int, check: bool) -> int:
    verb = "would reformat" if check else "reformatted"
    for name in changed:
        print(f"{verb} {name}")
    if failed:
        print(f"{failed} file(s) not formatted: fix the errors above", file=sys.stderr)
    return 1 if failed or (check and changed) else 0


def _elig_files(paths) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        found.extend(sorted(p.rglob("*.elig")) if p.is_dir() else [p])
    return found


# ---- explain --------------------------------------------------------------------------------------

def cmd_explain(args) -> int:
    from .describe import describe_trial
    from .rules import load_rules

    path = Path(args.trial)
    try:
        trial = _trial_from_file(path) if path.suffix == ".elig" else load_rules(args.rules).trials.get(args.trial)
    except CompileError as exc:
        print(exc.render(), file=sys.stderr)
        return 1
    if trial is None:
        print(f"elig: no trial {args.trial!r} in {display_name(args.rules)}", file=sys.stderr)
        return 2
    print(describe_trial(trial.checked), end="")
    return 0


def _trial_from_file(path: Path):
    from .cases import compile_trial

    return compile_trial(path)


# ---- import ---------------------------------------------------------------------------------------

def cmd_import(args) -> int:
    from .ctgov import ImportProblem, skeleton_from_json

    try:
        text = skeleton_from_json(args.study.read_text(encoding="utf-8"), imports=args.imports)
    except (OSError, ImportProblem) as exc:
        print(f"elig: cannot import {args.study}: {exc}", file=sys.stderr)
        return 1
    if args.output is None:
        print(text, end="")
    else:
        args.output.write_text(text, encoding="utf-8")
        print(f"wrote {display_name(args.output)}", file=sys.stderr)
    return 0


# ---- progress on stderr (used by `elig screen`) ---------------------------------------------------

class Progress:
    """A one-line bar on stderr, redrawn at most ten times a second; silent unless enabled."""

    def __init__(self, total: int | None, enabled: bool, stream=None, width: int = 30):
        self.total, self.enabled, self.width = total, enabled, width
        self.stream = stream or sys.stderr
        self.done, self._drawn_at = 0, 0.0

    @classmethod
    def for_screen(cls, path: Path, stdout_shows_table: bool, stream=None) -> "Progress":
        """On when stderr is a terminal, more than one patient is read, and stdout is not already
        showing each patient's table on that terminal."""
        stream = stream or sys.stderr
        wanted = stream.isatty() and not stdout_shows_table
        total = count_patients(path) if wanted else None
        return cls(total, wanted and total != 1, stream)

    def write(self, message: str) -> None:
        """Print a line to the stream without leaving a half-drawn bar in front of it."""
        if self.enabled:
            self.stream.write("\r\033[K")
        print(message, file=self.stream)
        self._drawn_at = 0.0

    def step(self) -> None:
        self.done += 1
        now = time.monotonic()
        if self.enabled and (now - self._drawn_at >= 0.1 or self.done == self.total):
            self._drawn_at = now
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def line(self) -> str:
        if not self.total:
            return f"screened {self.done} patient(s)"
        filled = self.width * min(self.done, self.total) // self.total
        return f"[{'#' * filled}{'.' * (self.width - filled)}] {self.done}/{self.total} patients"

    def close(self) -> None:
        if self.enabled and self.done:
            self.stream.write("\r\033[K")
            self.stream.flush()


def count_patients(path: Path) -> int | None:
    """How many patients `elig screen` will read (None if it cannot tell cheaply)."""
    from .load import PATIENT_SUFFIXES

    if path.is_dir():
        return sum(1 for p in path.iterdir() if p.suffix in PATIENT_SUFFIXES)
    if path.suffix in (".ndjson", ".jsonl"):
        with path.open("rb") as f:
            return sum(1 for line in f if line.strip())
    return 1
