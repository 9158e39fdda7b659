"""`GET /v1/trials` and `GET /v1/trials/{id}`: what is loaded, with sources and hashes."""

from __future__ import annotations

from fastapi import APIRouter, Depends

import engine
from engine.compiler import CompiledTrial

from ..strict_json import StrictJsonRoute
from ..deps import RulesDep, require_key
from ..models import AnalyteOut, CodeSetOut, CriteriaFile, CriterionInfo, TrialDetail, TrialList, TrialSummary
from ..problems import Problem, ProblemDetails
from ..registry import Snapshot

router = APIRouter(prefix="/v1/trials", tags=["trials"], dependencies=[Depends(require_key)],
                   route_class=StrictJsonRoute)


def _summary(rules: Snapshot, trial: CompiledTrial) -> dict:
    checked = trial.checked
    return dict(trial_id=trial.trial_id, title=str(checked.meta.get("title", "")), meta=checked.meta,
                content_hash=checked.content_hash, source=rules.label(checked.source.name),
                criteria_count=len(checked.criteria), serving_previous_version=trial.trial_id in rules.kept_previous)


@router.get("")
def list_trials(rules: RulesDep) -> TrialList:
    """Every loaded trial's metadata and content hash."""
    return TrialList(engine_version=engine.__version__, rules_generation=rules.generation,
                     trials=[TrialSummary(**_summary(rules, t)) for t in rules.trials.values()])


@router.get("/{trial_id}", responses={404: {"model": ProblemDetails, "content": {"application/problem+json": {}}}})
def get_trial(trial_id: str, rules: RulesDep) -> TrialDetail:
    """One trial: metadata, each criterion with its text and rule, the criteria file, hashes."""
    trial = rules.trials.get(trial_id)
    if trial is None:
        raise Problem(404, "unknown-trial", f"No trial {trial_id!r} is loaded.")
    checked = trial.checked
    criteria = [CriterionInfo(key=c.key, kind=c.kind, text=c.text, line=c.span.line, manual=c.is_manual,
                              manual_reason=c.manual_reason, applies_when=c.when.text if c.when else None,
                              rule=c.body.text if c.body is not None else None) for c in checked.criteria]
    return TrialDetail(
        **_summary(rules, trial), engine_version=engine.__version__, criteria=criteria,
        source_text=checked.source.text,
        files=[CriteriaFile(file=f, sha256=h) for f, h in rules.source_files(trial)],
        analytes=[AnalyteOut(name=a.name, title=a.title, kind=a.kind, loinc=list(a.loinc), unit=a.unit)
                  for a in checked.analytes],
        code_sets=[CodeSetOut(name=s.name, title=s.title, kind=s.kind) for s in checked.code_sets],
        facts=list(checked.facts))
