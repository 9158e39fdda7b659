"""Describe a trial in plain language: what each criterion asks and the data it needs.

Stage: tooling over the checked trial (`ir.CheckedTrial`), for `elig explain`. Output is
Markdown a study coordinator reads before screening: every criterion as a sentence (nested
`all of` / `any of` lists where the logic branches), then the data to collect — lab results
with their LOINC codes, units and freshness windows, code sets with their codes and look-back,
recorded facts, and the checks left to a person. Thresholds are shown in the analyte's
canonical unit, which is what the checker converted them to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import ir
from .scores import SCORES

WORDS = {">=": "at least", ">": "more than", "<=": "at most", "<": "less than", "=": "exactly"}
SYSTEMS = {"icd10cm": "ICD-10-CM", "icd10": "ICD-10", "snomed": "SNOMED CT", "atc": "ATC", "rxnorm": "RxNorm",
           "loinc": "LOINC", "local": "local"}
ICD = ("icd10", "icd10cm")


def describe_trial(trial: ir.CheckedTrial) -> str:
    """The trial as Markdown: header, criteria by kind, then the data to collect."""
    needs = _Needs()
    parts = [_header(trial)]
    for kind, title in (("inclusion", "Inclusion criteria"), ("exclusion", "Exclusion criteria")):
        chosen = [c for c in trial.criteria if c.kind == kind]
        if chosen:
            parts.append(f"## {title}\n\n" + "\n\n".join(_criterion(c, needs) for c in chosen))
    parts.append(_data_section(trial, needs))
    return "\n\n".join(parts) + "\n"


def _header(trial: ir.CheckedTrial) -> str:
    meta = trial.meta
    lines = [f"# {trial.trial_id}: {meta.get('title', '')}".rstrip(": "), ""]
    facts = [f"{k.capitalize()}: {_meta_value(meta[k])}" for k in ("status", "phases", "enrollment", "sponsor",
                                                                     "ages", "sex") if k in meta]
    if facts:
        lines.append("- " + " · ".join(facts))
    if "source" in meta:
        lines.append(f"- Registry record: {meta['source']}")
    lines.append(f"- Criteria file: {trial.source.name} (content hash {trial.content_hash[:12]})")
    lines += ["", "Each computable criterion comes out *met*, *not met* or *unknown* (the data it needs is "
              "missing or too old). Lab results count only when dated within the window shown."]
    return "\n".join(lines)


def _meta_value(value) -> str:
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)


# ---- criteria ----------------------------------------------------------------------------------

def _criterion(c: ir.CheckedCriterion, needs: "_Needs") -> str:
    lines = [f"### {c.key}: {c.text}", ""]
    if c.is_manual:
        needs.manual.append(c)
        lines.append(f"Checked by a person: {c.manual_reason or 'judgement or documentation records cannot give'}.")
        return "\n".join(lines)
    if c.when is not None:
        lines += _block("Applies only when", c.when)
        needs.collect(c.key, c.when)
    lines += _block("Met when" if c.kind == "inclusion" else "Excludes when", c.body)
    needs.collect(c.key, c.body)
    return "\n".join(lines)


def _block(label: str, node: ir.IR) -> list[str]:
    phrase, children = describe(node)
    if not children:
        return [f"{label}: {phrase}."]
    return [f"{label} {phrase}", *children]


def describe(node: ir.IR, depth: int = 0) -> tuple[str, list[str]]:
    """(sentence, nested Markdown list items) for one expression."""
    pad = "  " * depth
    if isinstance(node, (ir.And, ir.Or)):
        head = "all of:" if isinstance(node, ir.And) else "any of:"
        return head, [line for child in node.children for line in _item(child, depth, pad)]
    if isinstance(node, ir.DefRef):
        inner, children = describe(node.child, depth)
        title = node.title or node.name.replace("_", " ")
        return (f"{title} ({inner})" if not children else f"{title}, {inner}"), children
    if isinstance(node, ir.Not):
        inner, children = describe(node.child, depth)
        if children:
            return f"not the following ({inner})", children
        return ("no " + inner[2:] if inner.startswith("a ") else f"not: {inner}"), []
    return leaf(node), []


def _item(child: ir.IR, depth: int, pad: str) -> list[str]:
    phrase, children = describe(child, depth + 1)
    return [f"{pad}- {phrase}", *children]


def leaf(node: ir.IR) -> str:
    """One test in words, with its window."""
    return _LEAVES[type(node)](node)


def _bounds(bounds, unit: str = "") -> str:
    suffix = f" {unit}" if unit and unit != "1" else ""
    ops = dict(bounds)
    if set(ops) == {">=", "<="}:
        return f"from {ops['>=']:g} to {ops['<=']:g}{suffix} (inclusive)"
    return " and ".join(f"{WORDS[op]} {t:g}" for op, t in bounds) + suffix


def _unit(analyte: ir.AnalyteInfo) -> str:
    return "" if analyte.unit in (None, "1") else analyte.unit


def _lab(node: ir.LabTest) -> str:
    return f"{node.analyte.title} {_bounds(node.bounds, _unit(node.analyte))} (latest result within {node.fresh})"


def _uln(node: ir.UlnTest) -> str:
    return (f"{node.analyte.title} {WORDS[node.op]} {node.margin:g} {_unit(node.analyte)} above the upper limit "
            f"of normal of its own reference range (latest result within {node.fresh})")


def _rising(node: ir.RisingTest) -> str:
    return (f"{node.analyte.title} rising by {WORDS[node.op]} {node.rate_per_day:g} {_unit(node.analyte)} per day "
            f"between its two latest results (on different days, within {node.fresh})")


def _score(node: ir.ScoreTest) -> str:
    inputs = ", ".join(a.title for a in node.inputs) or "its inputs"
    return (f"{node.title} {_bounds(node.bounds)} (computed from {inputs} within {node.fresh}, "
            f"or a score recorded in that window)")


def _record(node: ir.RecordTest) -> str:
    title, kind = node.codes.title, node.codes.kind
    if kind == "trials":
        return f"{title} within the last {node.within}" if node.within else f"any {title} on record"
    if node.mode == "has":
        more = f", for more than {node.for_more_than} (by onset date)" if node.for_more_than else ""
        return {"conditions": f"a current diagnosis of {title}", "medications": f"currently on {title}",
                "procedures": f"{title} in progress"}[kind] + more
    when = f"within the last {node.within}" if node.within else "on record (current or past)"
    return {"conditions": f"a diagnosis of {title}", "medications": f"{title}",
            "procedures": f"{title}"}[kind] + f" {when}"


_LEAVES = {
    ir.AgeTest: lambda n: f"age {_bounds(n.bounds, n.unit + 's')} at the screening date",
    ir.SexTest: lambda n: f"sex recorded as {n.value}",
    ir.LabTest: _lab,
    ir.UlnTest: _uln,
    ir.RisingTest: _rising,
    ir.QualTest: lambda n: f"{n.analyte.title} {n.value} (latest result within {n.fresh})",
    ir.ScoreTest: _score,
    ir.RecordTest: _record,
    ir.FactTest: lambda n: f"recorded that {n.title} (within {n.fresh})",
}


# ---- data to collect ---------------------------------------------------------------------------

@dataclass
class _Needs:
    """What the criteria read, keyed by item, with the criteria that read it."""

    patient: dict[str, list[str]] = field(default_factory=dict)
    labs: dict[tuple, list[str]] = field(default_factory=dict)  # (analyte, window) → keys
    code_sets: dict[tuple, list[str]] = field(default_factory=dict)  # (code set, look-back) → keys
    facts: dict[tuple, list[str]] = field(default_factory=dict)  # (name, title, window) → keys
    manual: list[ir.CheckedCriterion] = field(default_factory=list)

    def collect(self, key: str, root: ir.IR) -> None:
        for node in ir.walk(root):
            for bucket, item in _needed(node):
                users = getattr(self, bucket).setdefault(item, [])
                if key not in users:
                    users.append(key)


def _needed(node: ir.IR) -> list[tuple[str, object]]:
    if isinstance(node, ir.AgeTest):
        return [("patient", "date of birth")]
    if isinstance(node, ir.SexTest):
        return [("patient", "sex")]
    if isinstance(node, (ir.LabTest, ir.UlnTest, ir.RisingTest, ir.QualTest)):
        return [("labs", (node.analyte, node.fresh))]
    if isinstance(node, ir.ScoreTest):
        return [("labs", (a, node.fresh)) for a in node.inputs] + _score_extras(node)
    if isinstance(node, ir.RecordTest):
        return [("code_sets", (node.codes, _look_back(node)))]
    if isinstance(node, ir.FactTest):
        return [("facts", (node.name, node.title, node.fresh))]
    return []


def _score_extras(node: ir.ScoreTest) -> list[tuple[str, object]]:
    names = {name for name, _unit in SCORES[node.score].inputs}
    extras = [("facts", ("on_dialysis", "the patient is on dialysis (taken as no when not recorded)", node.fresh))
              ] if "on_dialysis" in names else []
    if "sex" in names:
        extras.append(("patient", "sex"))
    extras += [("patient", f"{n.replace('_', ' ')} (not read from records: the score stays unknown unless "
                           f"recorded)") for n in sorted(names & {"ascites_grade", "encephalopathy_grade"})]
    return extras


def _look_back(node: ir.RecordTest) -> str:
    if node.mode == "has":
        return "current" + (f", for more than {node.for_more_than}" if node.for_more_than else "")
    return f"within {node.within}" if node.within else "ever"


def _data_section(trial: ir.CheckedTrial, needs: _Needs) -> str:
    parts = ["## Data to collect before screening"]
    if needs.patient:
        items = [f"- {what}: {', '.join(keys)}" for what, keys in needs.patient.items()]
        parts.append("### Patient\n\n" + "\n".join(items))
    if needs.labs:
        parts.append(_lab_table(needs.labs))
    if needs.code_sets:
        parts.append(_code_set_table(needs.code_sets))
    if needs.facts:
        rows = [f"| {title} | `{name}` | {window} | {', '.join(keys)} |"
                for (name, title, window), keys in needs.facts.items()]
        parts.append("### Recorded yes/no facts\n\n| Fact | Name | Fresh within | Used by |\n|---|---|---|---|\n"
                     + "\n".join(rows))
    if needs.manual:
        parts.append("### Checked by a person\n\n" + "\n".join(
            f"- {c.key}: {c.text}" + (f" ({c.manual_reason})" if c.manual_reason else "") for c in needs.manual))
    return "\n\n".join(parts)


def _lab_table(labs: dict) -> str:
    rows = []
    for (analyte, window), keys in labs.items():
        unit = "positive / negative" if analyte.kind == "qualitative" else \
            analyte.unit if analyte.unit != "1" else "(ratio, no unit)"
        rows.append(f"| {analyte.title} | {', '.join(analyte.loinc)} | {unit} | {window} | {', '.join(keys)} |")
    return ("### Lab results\n\nResults in other units are converted; only final, amended or corrected results "
            "count.\n\n| Result | LOINC | Unit | Fresh within | Used by |\n|---|---|---|---|---|\n" + "\n".join(rows))


def _code_set_table(code_sets: dict) -> str:
    rows = [f"| {codes.title} | {codes.kind}{' (systemic routes only)' if codes.systemic else ''} | "
            f"{_codes_text(codes)} | {look_back} | {', '.join(keys)} |"
            for (codes, look_back), keys in code_sets.items()]
    return ("### Diagnoses, medications, procedures and studies\n\n`*` after a code: the code and every code "
            "below it. Records refuted or entered in error never count.\n\n"
            "| Code set | Kind | Codes | Look-back | Used by |\n|---|---|---|---|---|\n" + "\n".join(rows))


def _codes_text(codes: ir.CodeSetInfo) -> str:
    if codes.kind == "trials":
        return "any study participation on record (FHIR ResearchSubject)"
    by_system: dict[str, list[str]] = {}
    for system, code in sorted(codes.prefixes):
        by_system.setdefault(system, []).append(_display_code(system, code) + "*")
    for system, first, last in codes.ranges:
        by_system.setdefault(system, []).append(f"{_display_code(system, first)}–{_display_code(system, last)}")
    for system, code in sorted(codes.exact):
        by_system.setdefault(system, []).append(code)
    return "; ".join(f"{SYSTEMS.get(s, s)} {', '.join(c)}" for s, c in by_system.items())


def _display_code(system: str, code: str) -> str:
    """ICD codes are matched without their dot; show them the way they are written."""
    return f"{code[:3]}.{code[3:]}" if system in ICD and len(code) > 3 else code
