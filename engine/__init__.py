"""elig: clinical-trial criteria compiled to three-valued evaluators.

Three calls, in the manner of cel-python's `Environment.compile → program → evaluate`:

>>> from engine import compile_text, screen
>>> trial = compile_text('trial T1 { title: "Adults" }  inclusion I1 "Adults": age >= 18 years')
>>> from engine.patient import Patient
>>> result = screen(Patient(id="p", birth_date="1980-01-01"), [trial], as_of="2026-01-01")
>>> result.trials[0].verdict
'eligible'
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from .compiler import CompiledTrial
from .explain import explain_trial, rank, summarise_trial
from .facts import PatientFacts
from .patient import Patient
from .results import ScreeningResult
from .rules import ImportResolver, RuleSet, compile_source, load_rules
from .source import Source

__version__ = "0.1.0"
__all__ = ["compile_text", "load_rules", "screen", "CompiledTrial", "RuleSet", "Patient", "__version__"]


def compile_text(text: str, name: str = "<text>", rules_root: Path | str | None = None) -> CompiledTrial:
    """Compile one trial's criteria text; raises `CompileError` with every diagnostic."""
    resolver = ImportResolver(Path(rules_root) if rules_root else None)
    compiled, _warnings = compile_source(Source(name, text), resolver)
    if compiled is None:
        raise ValueError("the text defines no trial")
    return compiled


def screen(patient: Patient, trials, as_of: date | str | None = None, *, explain: bool = True) -> ScreeningResult:
    """Screen one patient against compiled trials; ranked results.

    With `explain` (the default) every criterion carries its sentence, evidence and missing
    data; without, only statuses and verdicts, from the compiled fast path.
    """
    day = _as_date(as_of)
    facts = PatientFacts(patient, day)
    results = [(explain_trial if explain else summarise_trial)(t, facts) for t in trials]
    return ScreeningResult(as_of=day.isoformat(), patient_id=patient.id, trials=rank(results))


def _as_date(as_of: date | str | None) -> date:
    if as_of is None:
        return date.today()
    return as_of if isinstance(as_of, date) else date.fromisoformat(as_of)
