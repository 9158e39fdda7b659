"""Reference interpreter: evaluates checked criteria by walking the IR, as an oracle.

Stage: evaluation, beside the compiler (cel-python keeps `InterpretedRunner` beside
`CompiledRunner`). It evaluates every child eagerly and combines them with the `tri`
connectives, a different algorithm from the compiler's short-circuiting code, over the same
leaf evaluators; the differential tests check that both give the same status everywhere.
"""

from __future__ import annotations

from . import ir, runtime
from .facts import PatientFacts
from .tri import Tri, and3, criterion_word, not3, or3


def evaluate(node: ir.IR, facts: PatientFacts, trace: dict | None = None) -> Tri:
    if isinstance(node, ir.And):
        return _branch(node, and3([evaluate(c, facts, trace) for c in node.children]), trace)
    if isinstance(node, ir.Or):
        return _branch(node, or3([evaluate(c, facts, trace) for c in node.children]), trace)
    if isinstance(node, ir.Not):
        return _branch(node, not3(evaluate(node.child, facts, trace)), trace)
    if isinstance(node, ir.DefRef):
        return _branch(node, evaluate(node.child, facts, trace), trace)
    return runtime.LEAF_EVALUATORS[type(node)](facts, node, trace)


def _branch(node, value: Tri, trace) -> Tri:
    return runtime.record_branch(trace, node, value, tuple(c.nid for c in ir.children(node)))


def criterion_status(criterion: ir.CheckedCriterion, facts: PatientFacts) -> str:
    if criterion.is_manual:
        return "manual"
    applies = evaluate(criterion.when, facts) if criterion.when is not None else True
    return criterion_word(False, applies, evaluate(criterion.body, facts) if applies is True else None)


def statuses(trial: ir.CheckedTrial, facts: PatientFacts) -> list[str]:
    return [criterion_status(c, facts) for c in trial.criteria]
