"""Cards: one per eligible or possibly-eligible trial, written for a clinician in a hurry.

The summary says the verdict and the counts in under 140 characters (cut in code, with an
ellipsis, whatever the trial's title). The detail is GitHub Flavored Markdown: a table of what
is met, a list of what is unknown with the data that would decide it, and what a person has to
check. Ineligible trials get no card: a card is a prompt to act.
"""

from __future__ import annotations

import uuid

import engine
from engine.results import CriterionResult, TrialResult

from ..registry import Snapshot
from ..settings import Settings
from .models import SUMMARY_LIMIT, Card, CardSource, Coding, Link

OVERRIDE_SYSTEM = "urn:elig:cds:override-reason"
OVERRIDE_REASONS = [
    Coding(system=OVERRIDE_SYSTEM, code="not-interested", display="Patient not interested"),
    Coding(system=OVERRIDE_SYSTEM, code="clinically-inappropriate", display="Clinically inappropriate"),
    Coding(system=OVERRIDE_SYSTEM, code="already-screened", display="Already screened"),
]
VERDICT_WORDS = {"eligible": "Eligible", "possibly_eligible": "Possible match"}


def fit(text: str, limit: int = SUMMARY_LIMIT) -> str:
    """`text` cut to at most `limit` characters, at a word when possible, with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut[limit // 2:]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:–-") + "…"


def summary(t: TrialResult) -> str:
    """E.g. `Possible match: NCT01844063 – 4 met, 2 unknown, 5 to check (Safety and Efficacy of…)`."""
    counts = t.counts
    met = counts.get("met", 0) + sum(c.kind == "exclusion" and c.status == "not_met" for c in t.criteria)
    parts = [f"{met} met"]
    if counts.get("unknown"):
        parts.append(f"{counts['unknown']} unknown")
    if counts.get("manual"):
        parts.append(f"{counts['manual']} to check")
    head = f"{VERDICT_WORDS[t.verdict]}: {t.trial_id} – {', '.join(parts)}"
    room = SUMMARY_LIMIT - len(head) - 3
    return fit(f"{head} ({fit(t.title, room)})" if t.title and room >= 12 else head)


def _cell(text: str) -> str:
    """Text safe inside a GFM table cell."""
    return " ".join(text.split()).replace("\\", "\\\\").replace("|", "\\|")


def _line(text: str) -> str:
    return " ".join(text.split())


def _satisfied(c: CriterionResult) -> bool:
    return (c.kind == "inclusion" and c.status == "met") or (c.kind == "exclusion" and c.status == "not_met")


def detail(t: TrialResult, as_of: str) -> str:
    """GFM: what is met, what is unknown (and what would decide it), what a person must check."""
    verdict = t.verdict.replace("_", " ")
    out = [f"**{_line(t.title) or t.trial_id}** ({t.trial_id}): **{verdict}** as of {as_of}.", ""]
    met = [c for c in t.criteria if _satisfied(c)]
    if met:
        out += ["**Met**", "", "| Criterion | Status | Evidence |", "|---|---|---|"]
        status = {"met": "✅ met", "not_met": "✅ exclusion does not apply"}
        out += [f"| {c.key} {_cell(c.text)} | {status[c.status]} | {_cell(c.explanation)} |" for c in met]
        out.append("")
    unknown = [c for c in t.criteria if c.status == "unknown"]
    if unknown:
        out += ["**Unknown: data that would decide it**", ""]
        for c in unknown:
            needs = "; ".join(c.missing) or "see the explanation"
            out.append(f"- ❓ {c.key} {_line(c.text)}: needs {_line(needs)}")
        out.append("")
    manual = [c for c in t.criteria if c.status == "manual"]
    if manual:
        out += ["**To check in person**", ""]
        out += [f"- ✎ {c.key} {_line(c.text)}: {_line(c.explanation.removeprefix('Left to a person: '))}"
                for c in manual]
        out.append("")
    out.append(f"Criteria `{t.source}`, content hash `{t.content_hash[:12]}`, engine {engine.__version__}.")
    return "\n".join(out)


def trial_link(t: TrialResult, snapshot: Snapshot, settings: Settings) -> str:
    """The trial's own `source` URL when it is http(s), else the registry page."""
    trial = snapshot.trials.get(t.trial_id)
    url = str(trial.checked.meta.get("source", "")) if trial else ""
    return url if url.startswith(("https://", "http://")) else settings.trial_link_base + t.trial_id


def cards(results: list[TrialResult], as_of: str, hook_instance: str, snapshot: Snapshot,
          settings: Settings) -> list[Card]:
    """One card per trial the patient may enter, in the engine's ranking order."""
    out = []
    for t in results:
        if t.verdict not in VERDICT_WORDS:
            continue
        link = trial_link(t, snapshot, settings)
        out.append(Card(
            uuid=str(uuid.uuid5(uuid.NAMESPACE_URL, f"elig:{hook_instance}:{t.trial_id}")),
            summary=summary(t), detail=detail(t, as_of), indicator="info",
            source=CardSource(label=f"elig trial screening (engine {engine.__version__})", url=link),
            links=[Link(label=f"{t.trial_id} trial record", url=link, type="absolute")],
            overrideReasons=OVERRIDE_REASONS))
    return out
