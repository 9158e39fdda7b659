"""Explanations: a trial's trace → per-criterion results a clinician can read.

Stage: after evaluation. The compiled evaluators record, per node, the status and the values
used; this module keeps what decided each criterion (OPA's lineage: the deciding leaves and the
chain above them), writes one sentence per criterion, lists the data that would settle an
unknown, and derives the trial's verdict from the statuses.
"""

from __future__ import annotations

from .compiler import CompiledTrial
from .facts import PatientFacts
from .ir import CheckedCriterion, CheckedTrial
from .results import CriterionResult, TrialResult
from .tri import Tri, criterion_word, status_word

VERDICT_ORDER = {"eligible": 0, "possibly_eligible": 1, "ineligible": 2}


def verdict_of(criteria: list[CheckedCriterion], statuses: list[str]) -> str:
    """Ineligible on a failed inclusion or an applying exclusion; unknowns make it possible only."""
    unknown = False
    for c, s in zip(criteria, statuses):
        if (c.kind == "inclusion" and s == "not_met") or (c.kind == "exclusion" and s == "met"):
            return "ineligible"
        unknown = unknown or s == "unknown"
    return "possibly_eligible" if unknown else "eligible"


def explain_trial(trial: CompiledTrial, facts: PatientFacts) -> TrialResult:
    values, trace = trial.trace(facts)
    criteria = [_criterion_result(c, w, b, trace) for c, (w, b) in zip(trial.checked.criteria, values)]
    return _trial_result(trial, criteria)


def summarise_trial(trial: CompiledTrial, facts: PatientFacts) -> TrialResult:
    """Statuses and verdict without explanations: the compiled fast path, no trace, no text.

    For callers that only rank or count (pre-screening a population); explaining every
    criterion is most of the cost of a full screening.
    """
    criteria = [CriterionResult(key=c.key, kind=c.kind, text=c.text, line=c.span.line, status=s, explanation="",
                                evidence=[], missing=[])  # validating in Rust beats model_construct's Python
                for c, s in zip(trial.checked.criteria, trial.statuses(facts))]
    return _trial_result(trial, criteria, explained=False)


def _trial_result(trial: CompiledTrial, criteria: list[CriterionResult], explained: bool = True) -> TrialResult:
    statuses = [c.status for c in criteria]
    return TrialResult(
        trial_id=trial.trial_id,
        title=str(trial.checked.meta.get("title", "")),
        verdict=verdict_of(list(trial.checked.criteria), statuses),
        criteria=criteria,
        counts={s: statuses.count(s) for s in ("met", "not_met", "unknown", "not_applicable", "manual")},
        checks_for_a_person=[c.text for c in criteria if c.status == "manual"],
        content_hash=trial.checked.content_hash,
        source=trial.checked.source.name,
        explained=explained,
    )


def _criterion_result(c: CheckedCriterion, when: Tri, body: Tri, trace: dict) -> CriterionResult:
    base = {"key": c.key, "kind": c.kind, "text": c.text, "line": c.span.line}
    if c.is_manual:
        reason = c.manual_reason or "judgement or documentation that records cannot give"
        return CriterionResult(status="manual", explanation=f"Left to a person: {reason}.", evidence=[],
                               missing=[], **base)
    if when is not True:
        return _conditional(c, when, trace, base)
    status = status_word(body)
    leaves = _deciding_leaves(c.body.nid, trace)
    return CriterionResult(status=status, explanation=_sentence(c, status, leaves),
                           evidence=_evidence(c.body.nid, trace), missing=_missing(leaves, status), **base)


def _conditional(c: CheckedCriterion, when: Tri, trace: dict, base: dict) -> CriterionResult:
    leaves = _deciding_leaves(c.when.nid, trace)
    phrases = "; ".join(_phrase(leaf) for leaf in leaves)
    if when is False:
        return CriterionResult(status="not_applicable", explanation=f"Not applicable: {phrases}.",
                               evidence=_evidence(c.when.nid, trace), missing=[], **base)
    return CriterionResult(status="unknown", explanation=f"Unknown whether it applies: {phrases}.",
                           evidence=_evidence(c.when.nid, trace), missing=_missing(leaves, "unknown"), **base)


def _deciding_leaves(nid: int, trace: dict) -> list[dict]:
    entry = trace.get(nid)
    if entry is None:
        return []
    if "children" not in entry:
        return [entry]
    picked = entry["decided_by"] or entry["children"]
    return [leaf for child in picked for leaf in _deciding_leaves(child, trace)]


def _evidence(nid: int, trace: dict) -> list[dict]:
    """The node and everything evaluated below it, parents first, as recorded."""
    entry = trace.get(nid)
    if entry is None:
        return []
    out = [entry]
    for child in entry.get("children", ()):
        out.extend(_evidence(child, trace))
    return out


def _sentence(c: CheckedCriterion, status: str, leaves: list[dict]) -> str:
    if c.kind == "exclusion":
        head = {"met": "Exclusion applies", "not_met": "Exclusion does not apply", "unknown": "Unknown"}[status]
    else:
        head = {"met": "Met", "not_met": "Not met", "unknown": "Unknown"}[status]
    return f"{head}: {'; '.join(_phrase(leaf) for leaf in leaves)}."


def _phrase(leaf: dict) -> str:
    """`bilirubin_total >= 171 umol/L` met — 15 mg/dL = 256.5 umol/L on 2026-10-30 (Observation/x)."""
    parts = [leaf.get("absent"), leaf.get("reason"), ", ".join(_value_text(v) for v in leaf.get("values", ()))]
    if not leaf.get("reason"):
        parts.append(leaf.get("computed"))
    parts = [p for p in parts if p]
    word = leaf["status"].replace("_", " ")
    return f"{leaf['text']} {word}" + (f" — {'; '.join(parts)}" if parts else "")


def _value_text(v: dict) -> str:
    recorded = v.get("recorded")
    value, unit = v.get("value"), v.get("unit")
    shown = recorded or (f"{value}" if value is not None else "")
    if isinstance(value, float) and recorded and unit and unit != "1" and not recorded.endswith(unit):
        shown += f" = {value:g} {unit}"
    where = ", ".join(p for p in (v.get("date"), v.get("source")) if p)
    return f"{v.get('name')} {shown}".strip() + (f" ({where})" if where else "")


def _missing(leaves: list[dict], status: str) -> list[str]:
    if status != "unknown":
        return []
    seen: list[str] = []
    for leaf in leaves:
        m = leaf.get("missing")
        if m and m not in seen:
            seen.append(m)
    return seen


def rank(results: list[TrialResult]) -> list[TrialResult]:
    """Eligible first, then possibly eligible by fewest unknowns, then ineligible."""
    return sorted(results, key=lambda r: (VERDICT_ORDER[r.verdict], r.counts.get("unknown", 0), r.trial_id))


def checked_statuses(trial: CheckedTrial, values) -> list[str]:
    """Statuses from `CompiledTrial.trace` values, to compare with the fast path."""
    return [criterion_word(c.is_manual, w, b) for c, (w, b) in zip(trial.criteria, values)]
