"""Rule tests: the cases file beside each trial → pass/fail per case, and criterion coverage.

Stage: tooling over the screening facade. `rules/trials/<trial>.cases.yaml` lists patients with
the verdict and per-criterion statuses they must get, in the manner of OPA's YAML cases:

    trial: NCT01844063          # optional; checked against the trial file
    as_of: "2026-11-01"         # default screening date for every case
    fixtures: {...}             # optional: YAML anchors the cases reuse
    cases:
      - note: ACLF patient meets every computable criterion
        patient_file: ../../examples/aclf_hbv_eligible.fhir.json   # FHIR or native, relative
        want_verdict: eligible
        want: {I1: met, I3: not_applicable, E1: not_met}
      - note: no INR and no PTA
        patient: {id: p2, birth_date: "1980-06-15", sex: male}     # native JSON, inline
        want: {I7: unknown}
        xfail: "why the engine is believed wrong here"

A case passes when the verdict and every listed status match. An `xfail` case is expected to
fail; if it passes, it fails, so a fixed engine gets its case back. Coverage counts the
statuses that passing cases assert: a computable criterion that no case decides (never
asserted met or not met) is a gap.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from . import ir, screen
from .compiler import CompiledTrial
from .diagnostics import CompileError
from .format import code_only
from .load import patient_from_document
from .results import Status, Verdict
from .rules import ImportResolver, compile_source, display_name
from .source import Source

CASES_SUFFIX = ".cases.yaml"
STATUSES = ("met", "not_met", "unknown", "not_applicable", "manual")
LAB_TESTS = (ir.LabTest, ir.UlnTest, ir.RisingTest, ir.QualTest, ir.ScoreTest)
Outcome = Literal["passed", "failed", "xfailed", "xpassed", "error"]


# ---- the cases file ------------------------------------------------------------------------------

class CaseSpec(BaseModel):
    """One case as written in YAML."""

    model_config = ConfigDict(extra="forbid")

    note: str
    patient: dict | None = None
    patient_file: str | None = None
    as_of: str | None = None
    want_verdict: Verdict | None = None
    want: dict[str, Status] = {}
    xfail: str | None = None

    @model_validator(mode="after")
    def _one_patient(self):
        if (self.patient is None) == (self.patient_file is None):
            raise ValueError("give exactly one of `patient` (inline) or `patient_file`")
        return self

    @field_validator("as_of")
    @classmethod
    def _iso_date(cls, v):
        if v is not None:
            date.fromisoformat(v)
        return v


class CasesFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    trial: str | None = None
    as_of: str | None = None
    fixtures: dict = {}  # YAML anchors (`&aclf`) that cases reuse (`<<: *aclf`); not read otherwise
    cases: list[CaseSpec]


class CasesError(Exception):
    """A cases file that cannot be read; the message names the file and line."""


class _Loader(yaml.SafeLoader):
    """YAML without implicit dates: `2026-11-01` stays the text the patient model expects."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def read_cases(path: Path) -> tuple[CasesFile, list[int]]:
    """The parsed cases file and the line each case starts on."""
    text = path.read_text(encoding="utf-8")
    name = display_name(path)
    try:
        data = yaml.load(text, Loader=_Loader)
        parsed = CasesFile.model_validate(data)
    except yaml.YAMLError as exc:
        raise CasesError(f"{name}: not valid YAML: {exc}") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise CasesError(f"{name}: {where}: {first['msg']}") from None
    return parsed, _case_lines(text, len(parsed.cases))


def _case_lines(text: str, count: int) -> list[int]:
    root = yaml.compose(text, Loader=_Loader)
    for key, value in root.value:
        if key.value == "cases":
            return [item.start_mark.line + 1 for item in value.value]
    return [0] * count


# ---- running -----------------------------------------------------------------------------------

@dataclass
class Mismatch:
    key: str  # "verdict" or a criterion key
    want: str
    got: str
    explanation: str = ""
    missing: list[str] = field(default_factory=list)


@dataclass
class CaseResult:
    note: str
    line: int
    outcome: Outcome
    mismatches: list[Mismatch] = field(default_factory=list)
    error: str | None = None
    xfail: str | None = None
    asserted: dict[str, str] = field(default_factory=dict)


@dataclass
class TrialReport:
    trial_id: str
    trial_path: str
    cases_path: str | None
    results: list[CaseResult] = field(default_factory=list)
    coverage: list["CriterionCoverage"] = field(default_factory=list)
    error: str | None = None

    def count(self, outcome: Outcome) -> int:
        return sum(r.outcome == outcome for r in self.results)

    @property
    def ok(self) -> bool:
        return self.error is None and all(r.outcome in ("passed", "xfailed") for r in self.results)


def run_trial(trial_path: Path, rules_root: Path | None = None) -> TrialReport:
    """Compile one trial, run the cases beside it, and measure coverage."""
    cases_path = cases_path_for(trial_path)
    report = TrialReport(trial_path.stem, display_name(trial_path), display_name(cases_path) if cases_path else None)
    if not trial_path.is_file() or not _is_trial(trial_path):
        report.error = f"{report.trial_path} is not a trial file (no file, or no `trial` block)"
        return report
    try:
        compiled = compile_trial(trial_path, rules_root)
    except CompileError as exc:
        report.error = f"{report.trial_path} does not compile:\n{exc.render()}"
        return report
    report.trial_id = compiled.trial_id
    if cases_path is None:
        report.error = f"no cases for {compiled.trial_id}: write {display_name(trial_path.with_suffix(CASES_SUFFIX))}"
    else:
        _run_cases(report, compiled, cases_path)
    report.coverage = coverage(compiled.checked, report.results)
    return report


def cases_path_for(trial_path: Path) -> Path | None:
    path = trial_path.with_name(trial_path.stem + CASES_SUFFIX)
    return path if path.is_file() else None


def compile_trial(trial_path: Path, rules_root: Path | None = None) -> CompiledTrial:
    """Compile a trial file, importing from `rules_root` (default: the folder above `trials/`)."""
    root = rules_root or (trial_path.parent.parent if trial_path.parent.name == "trials" else trial_path.parent)
    compiled, _warnings = compile_source(Source.from_path(trial_path, display_name(trial_path)),
                                         ImportResolver(Path(root).resolve()))
    if compiled is None:
        raise CompileError([])
    return compiled


def _run_cases(report: TrialReport, compiled: CompiledTrial, cases_path: Path) -> None:
    try:
        spec, lines = read_cases(cases_path)
    except CasesError as exc:
        report.error = str(exc)
        return
    if spec.trial is not None and spec.trial != compiled.trial_id:
        report.error = f"{report.cases_path}: written for {spec.trial}, but the trial file is {compiled.trial_id}"
        return
    for case, line in zip(spec.cases, lines):
        report.results.append(run_case(case, line, compiled, cases_path, spec.as_of))


def run_case(case: CaseSpec, line: int, compiled: CompiledTrial, cases_path: Path,
             default_as_of: str | None) -> CaseResult:
    """Screen the case's patient and compare; an unreadable case is an error, not a crash."""
    result = CaseResult(case.note, line, "error", xfail=case.xfail, asserted=dict(case.want))
    keys = [c.key for c in compiled.checked.criteria]
    unknown = [k for k in case.want if k not in keys]
    as_of = case.as_of or default_as_of
    try:
        if unknown:
            raise CasesError(f"no criterion {', '.join(unknown)} in {compiled.trial_id} (it has {', '.join(keys)})")
        if as_of is None:
            raise CasesError("no `as_of` screening date, on the case or at the top of the file")
        patient = _load_patient(case, cases_path, line)
    except (CasesError, OSError, ValueError, ValidationError) as exc:
        result.error = _one_line(exc)
        return result
    trial = screen(patient, [compiled], as_of).trials[0]
    result.mismatches = _compare(case, trial)
    result.outcome = _outcome(not result.mismatches, case.xfail is not None)
    return result


def _load_patient(case: CaseSpec, cases_path: Path, line: int):
    if case.patient is not None:
        return patient_from_document(case.patient, f"{display_name(cases_path)}:{line}").patient
    path = (cases_path.parent / case.patient_file)
    doc = json.loads(path.read_text(encoding="utf-8"))
    return patient_from_document(doc, display_name(path)).patient


def _compare(case: CaseSpec, trial) -> list[Mismatch]:
    found = []
    if case.want_verdict is not None and case.want_verdict != trial.verdict:
        found.append(Mismatch("verdict", case.want_verdict, trial.verdict))
    by_key = {c.key: c for c in trial.criteria}
    for key, want in case.want.items():
        got = by_key[key]
        if got.status != want:
            found.append(Mismatch(key, want, got.status, got.explanation, list(got.missing)))
    return found


def _outcome(matched: bool, xfail: bool) -> Outcome:
    if xfail:
        return "xpassed" if matched else "xfailed"
    return "passed" if matched else "failed"


def _one_line(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        first = exc.errors()[0]
        return f"patient: {'/'.join(str(p) for p in first['loc'])}: {first['msg']}"
    return str(exc)


# ---- coverage ----------------------------------------------------------------------------------

@dataclass
class CriterionCoverage:
    key: str
    kind: str
    computable: bool
    uses_labs: bool
    seen: Counter

    @property
    def decided(self) -> bool:
        return bool(self.seen["met"] or self.seen["not_met"])

    def gaps(self, strict: bool = False) -> list[str]:
        """What the cases leave untested; only `never decided` counts unless strict."""
        if not self.computable:
            return []
        if not self.decided:
            return ["never decided (no case asserts met or not met)"]
        if not strict:
            return []
        found = [f"never {s.replace('_', ' ')}" for s in ("met", "not_met") if not self.seen[s]]
        if self.uses_labs and not self.seen["unknown"]:
            found.append("never unknown (a missing or stale lab)")
        return found


def coverage(trial: ir.CheckedTrial, results: list[CaseResult]) -> list[CriterionCoverage]:
    """Per criterion, how many passing cases assert each status."""
    passing = [r for r in results if r.outcome == "passed"]
    return [CriterionCoverage(c.key, c.kind, not c.is_manual, _uses_labs(c),
                              Counter(r.asserted[c.key] for r in passing if c.key in r.asserted))
            for c in trial.criteria]


def _uses_labs(c: ir.CheckedCriterion) -> bool:
    roots = [n for n in (c.when, c.body) if n is not None]
    return any(isinstance(n, LAB_TESTS) for root in roots for n in ir.walk(root))


# ---- finding trials ----------------------------------------------------------------------------

_TRIAL_BLOCK = re.compile(r"(?m)^\s*trial\b")


def find_trials(paths) -> list[Path]:
    """Trial files named by the paths: `.elig` files with a `trial` block, the trial beside a
    cases file, and every trial under a folder."""
    found: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            found += [f for f in sorted(p.rglob("*.elig")) if _is_trial(f)]
        elif p.name.endswith(CASES_SUFFIX):
            found.append(p.with_name(p.name[: -len(CASES_SUFFIX)] + ".elig"))
        else:
            found.append(p)
    return list(dict.fromkeys(found))


def _is_trial(path: Path) -> bool:
    return bool(_TRIAL_BLOCK.search(code_only(path.read_text(encoding="utf-8"))))


# ---- reports -----------------------------------------------------------------------------------

_COLUMNS = ("met", "not_met", "unknown", "not_applicable", "manual")
_HEADINGS = ("met", "not met", "unknown", "n/a", "manual")


def render(reports: list[TrialReport], strict: bool = False) -> str:
    """The `elig test` report: failures with their explanations, then coverage per trial."""
    blocks = [_render_trial(r, strict) for r in reports]
    return "\n\n".join(blocks + [summary(reports, strict)]) + "\n"


def _render_trial(report: TrialReport, strict: bool) -> str:
    counts = ", ".join(f"{report.count(o)} {o}" for o in ("passed", "failed", "xfailed", "xpassed", "error")
                       if report.count(o))
    lines = [f"{report.trial_id}  {report.cases_path or report.trial_path}  {counts or 'no cases run'}"]
    if report.error:
        lines += ["  ERROR " + line for line in report.error.splitlines()[:1]]
        lines += ["        " + line for line in report.error.splitlines()[1:]]
    for r in report.results:
        lines += _render_result(r)
    if report.coverage:
        lines += _render_coverage(report.coverage, strict)
    return "\n".join(lines)


def _render_result(r: CaseResult) -> list[str]:
    if r.outcome == "passed":
        return []
    head = {"failed": "FAIL", "xpassed": "XPASS", "xfailed": "XFAIL", "error": "ERROR"}[r.outcome]
    lines = [f"  {head} line {r.line}: {r.note}"]
    if r.outcome == "xpassed":
        lines.append(f"    marked xfail ({r.xfail}) but now passes: remove the xfail")
    elif r.outcome == "xfailed":
        lines.append(f"    expected to fail: {r.xfail}")
    if r.error:
        lines.append(f"    {r.error}")
    for m in r.mismatches:
        lines += _render_mismatch(m, detail=r.outcome != "xfailed")
    return lines


def _render_mismatch(m: Mismatch, detail: bool) -> list[str]:
    lines = [f"    {m.key:<8} want {m.want.replace('_', ' ')}, got {m.got.replace('_', ' ')}"]
    if detail and m.explanation:
        lines.append(f"    {'':<8} {m.explanation}")
    lines += [f"    {'':<8} needs: {need}" for need in (m.missing if detail else ())]
    return lines


def _render_coverage(rows: list[CriterionCoverage], strict: bool) -> list[str]:
    lines = ["  coverage (statuses asserted by passing cases)",
             "    " + f"{'':<6}" + "".join(f"{h:>9}" for h in _HEADINGS)]
    for row in rows:
        cells = "".join(f"{row.seen[s] or '·':>9}" for s in _COLUMNS)
        gaps = row.gaps(strict)
        lines.append(f"    {row.key:<6}{cells}" + (f"   ← {'; '.join(gaps)}" if gaps else ""))
    return lines


def summary(reports: list[TrialReport], strict: bool = False) -> str:
    total = Counter(r.outcome for rep in reports for r in rep.results)
    gaps = sum(bool(row.gaps(strict)) for rep in reports for row in rep.coverage)
    errors = sum(rep.error is not None for rep in reports)
    parts = [f"{total[o]} {o}" for o in ("passed", "failed", "xfailed", "xpassed", "error") if total[o]]
    return (f"{len(reports)} trial(s), {sum(total.values())} case(s): {', '.join(parts) or 'none run'}; "
            f"{gaps} coverage gap(s)" + (f"; {errors} trial(s) with errors" if errors else ""))


def succeeded(reports: list[TrialReport], strict: bool = False) -> bool:
    """Every case as expected, every trial readable, and no coverage gap."""
    return all(rep.ok and not any(row.gaps(strict) for row in rep.coverage) for rep in reports)


def to_json(reports: list[TrialReport], strict: bool = False) -> dict:
    return {"ok": succeeded(reports, strict), "summary": summary(reports, strict),
            "trials": [_report_dict(r, strict) for r in reports]}


def _report_dict(report: TrialReport, strict: bool) -> dict:
    return {
        "trial_id": report.trial_id, "trial_file": report.trial_path, "cases_file": report.cases_path,
        "error": report.error,
        "cases": [{"note": r.note, "line": r.line, "outcome": r.outcome, "error": r.error, "xfail": r.xfail,
                   "mismatches": [vars(m) for m in r.mismatches]} for r in report.results],
        "coverage": [{"key": c.key, "kind": c.kind, "computable": c.computable, "statuses": dict(c.seen),
                      "gaps": c.gaps(strict)} for c in report.coverage],
    }
