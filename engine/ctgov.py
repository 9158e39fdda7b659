"""Import a ClinicalTrials.gov API v2 study record → a criteria-file skeleton.

Stage: tooling, before a rule author's work. Input: the study JSON (`protocolSection` …, see
shared/reference/fhir-patient-data.md §4). Output: criteria text that passes `elig check`:
- a `trial` block from the identification, status, design, sponsor and condition modules;
- computable criteria from the structured fields: age from `minimumAge`/`maximumAge`
  ("18 Years"; absent means no limit; years and months only, other units stay manual) as key
  `I0a`, and sex from `sex` (FEMALE/MALE; ALL adds nothing) as `I0b`;
- every free-text criterion of `eligibilityCriteria` (Markdown) as a `manual` criterion with its
  text verbatim, keyed I1…, E1… in the registry's order, for the author to refine.

Splitting the Markdown: lines such as `Inclusion Criteria:` / `Exclusion Criteria:` (any case,
bold or not) open a section; each `*`, `-`, `+` or numbered (`1.`, `1)`) bullet is one
criterion; lines that follow a bullet without a blank line continue it; bullets indented under
another are folded into it (`parent child; child`). Text that is not a bullet, in a section
that has bullets, is kept as a comment for the author; a section without bullets takes each
paragraph as a criterion. Markdown backslash escapes (`\\>=`) are undone.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from .format import format_text, literal, quote

MANUAL_REASON = "imported from the registry text; not yet encoded"
_AGE = re.compile(r"^\s*(\d+)\s+(year|month|week|day|hour|minute)s?\s*$", re.I)
_HEADING = re.compile(r"^\W*(?:key\s+)?(inclusion|exclusion)\s+criteria\b[^a-z0-9]*$", re.I)
_BULLET = re.compile(r"^(\s*)(?:[*\-+•]|\d{1,3}[.)])\s+(.*\S)\s*$")
_ESCAPE = re.compile(r"\\([\\`*_{}\[\]()#+\-.!<>~|])")
_TRIAL_ID = re.compile(r"^[A-Za-z][A-Za-z0-9_-]*[0-9][A-Za-z0-9_-]*$")


class ImportProblem(ValueError):
    """A record this importer cannot read; the message says what is missing."""


def skeleton_from_json(text: str, imports: list[str] = ()) -> str:
    """The criteria-file skeleton for one study record given as JSON text."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ImportProblem(f"not JSON: {exc}") from None
    return skeleton(_one_study(doc), imports)


def skeleton(study: dict, imports: list[str] = ()) -> str:
    """The criteria-file skeleton for one study record (a parsed API v2 study object)."""
    protocol = study.get("protocolSection")
    if not isinstance(protocol, dict):
        raise ImportProblem("no protocolSection: is this a ClinicalTrials.gov API v2 study record?")
    trial_id = _trial_id(protocol)
    eligibility = protocol.get("eligibilityModule", {})
    sections = split_criteria(eligibility.get("eligibilityCriteria", ""))
    parts = [_preamble(trial_id, study, imports), _trial_block(trial_id, protocol, study),
             *_structured(eligibility), *_free_text(sections)]
    return format_text("\n\n".join(p for p in parts if p) + "\n", f"{trial_id}.elig")


def _one_study(doc) -> dict:
    if isinstance(doc, dict) and isinstance(doc.get("studies"), list):
        if len(doc["studies"]) != 1:
            raise ImportProblem(f"the file holds {len(doc['studies'])} studies; import one at a time")
        return doc["studies"][0]
    if not isinstance(doc, dict):
        raise ImportProblem("expected a JSON object")
    return doc


def _trial_id(protocol: dict) -> str:
    nct = protocol.get("identificationModule", {}).get("nctId")
    if not isinstance(nct, str) or not _TRIAL_ID.match(nct):
        raise ImportProblem(f"identificationModule.nctId is missing or not an id: {nct!r}")
    return nct.upper()


# ---- metadata ----------------------------------------------------------------------------------

def _preamble(trial_id: str, study: dict, imports) -> str:
    updated = _get(study, "protocolSection", "statusModule", "lastUpdatePostDateStruct", "date")
    lines = [f"# {trial_id}: skeleton imported from a ClinicalTrials.gov API v2 study record"
             + (f" (last update posted {updated})" if updated else "") + ".",
             "# I0a/I0b come from the registry's structured age and sex fields; every other criterion is",
             "# the registry text, left `manual`. Encode each one that records can decide (keep its key",
             "# and text), drop duplicates of I0a/I0b, then run `elig check` and write the cases file."]
    lines += [f"import {quote(name)}" for name in imports]
    return "\n".join(lines)


def _trial_block(trial_id: str, protocol: dict, study: dict) -> str:
    fields = meta_fields(protocol, study)
    body = "\n".join(f"  {name}: {literal(value)}" for name, value in fields.items())
    return f"trial {trial_id} {{\n{body}\n}}"


def meta_fields(protocol: dict, study: dict) -> dict[str, object]:
    """The `trial` block's fields, named as the seed trials name them; absent ones left out."""
    ident, design = protocol.get("identificationModule", {}), protocol.get("designModule", {})
    eligibility = protocol.get("eligibilityModule", {})
    fields = {
        "title": ident.get("briefTitle") or ident.get("officialTitle"),
        "status": _get(protocol, "statusModule", "overallStatus"),
        "phases": design.get("phases"),
        "conditions": _get(protocol, "conditionsModule", "conditions"),
        "enrollment": _get(design, "enrollmentInfo", "count"),
        "sponsor": _get(protocol, "sponsorCollaboratorsModule", "leadSponsor", "name")
        or _get(ident, "organization", "fullName"),
        "ages": _ages_text(eligibility.get("minimumAge"), eligibility.get("maximumAge")),
        "sex": eligibility.get("sex"),
        "source": f"https://clinicaltrials.gov/study/{_trial_id(protocol)}",
        "last_update": _get(protocol, "statusModule", "lastUpdatePostDateStruct", "date"),
    }
    return {k: v for k, v in fields.items() if _is_literal(v)}


def _get(doc, *path):
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def _is_literal(value) -> bool:
    if isinstance(value, list):
        return bool(value) and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in value)
    return isinstance(value, (str, int, float)) and not isinstance(value, bool) and value != ""


def _ages_text(minimum: str | None, maximum: str | None) -> str | None:
    low, high = (m.lower() if m else None for m in (minimum, maximum))
    if low and high:
        low_n, low_u = low.split(maxsplit=1)
        return f"{low_n} to {high}" if high.endswith(low_u) else f"{low} to {high}"
    if low:
        return f"{low} and older"
    return f"up to {high}" if high else None


# ---- criteria from the structured fields ---------------------------------------------------------

def _structured(eligibility: dict) -> list[str]:
    found = []
    age = _age_criterion(eligibility.get("minimumAge"), eligibility.get("maximumAge"))
    if age:
        found.append(age)
    sex = (eligibility.get("sex") or "ALL").upper()
    if sex in ("FEMALE", "MALE"):
        found.append(f'inclusion I0b {quote(f"Sex: {sex.lower()} (registry field sex)")}:\n'
                     f"  sex is {sex.lower()}")
    return found


def _age_criterion(minimum: str | None, maximum: str | None) -> str | None:
    if not minimum and not maximum:
        return None
    words = [f"minimum age {minimum}" if minimum else "", f"maximum age {maximum}" if maximum else ""]
    text = quote(", ".join(w for w in words if w).capitalize() + " (registry fields minimumAge, maximumAge)")
    bounds = [b for b in (_age_bound(minimum, ">="), _age_bound(maximum, "<=")) if b != ""]
    if None in bounds:
        return f'inclusion I0a {text}:\n  manual "the language counts age in years or months only"'
    return f"inclusion I0a {text}:\n  " + _age_expression(bounds)


def _age_bound(value: str | None, op: str) -> tuple[str, int, str] | None | str:
    """(op, amount, years|months); None when the unit cannot be expressed; "" when absent."""
    if not value:
        return ""
    match = _AGE.match(value)
    if match is None or match.group(2).lower() not in ("year", "month"):
        return None
    return op, int(match.group(1)), match.group(2).lower() + "s"


def _age_expression(bounds: list[tuple[str, int, str]]) -> str:
    if len(bounds) == 2 and bounds[0][2] == bounds[1][2]:
        return f"age between {bounds[0][1]} and {bounds[1][1]} {bounds[0][2]}"
    return " and ".join(f"age {op} {n} {unit}" for op, n, unit in bounds)


# ---- criteria from the free text ---------------------------------------------------------------------

@dataclass
class Section:
    kind: str  # inclusion | exclusion
    items: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # text that is not a criterion


def _free_text(sections: list[Section]) -> list[str]:
    out = []
    for section in sections:
        prefix = "I" if section.kind == "inclusion" else "E"
        notes = "\n".join(f"# {line}" for line in section.notes)
        for n, text in enumerate(section.items, 1):
            item = f"{section.kind} {prefix}{n} {quote(text)}:\n  manual {quote(MANUAL_REASON)}"
            out.append(f"{notes}\n{item}" if n == 1 and notes else item)
        if notes and not section.items:
            out.append(notes)
    return out


def split_criteria(markdown: str) -> list[Section]:
    """The free text split into inclusion and exclusion sections of single criteria."""
    splitter = _Splitter()
    for line in _ESCAPE.sub(r"\1", markdown.replace("\r\n", "\n")).split("\n"):
        splitter.feed(line)
    return splitter.finish()


class _Splitter:
    """A line-by-line reader: section headings, bullets, continuations, sub-bullets."""

    def __init__(self):
        self.sections: list[Section] = []
        self.items: list[list] = []  # per section: [indent, text, [children]]
        self.paragraphs: list[str] = []
        self.after_blank = True

    def feed(self, line: str) -> None:
        if not line.strip():
            self.after_blank = True
            return
        heading, bullet = _HEADING.match(line.strip()), _BULLET.match(line)
        if heading and not bullet:
            self._open(heading.group(1).lower())
        elif bullet:
            self._bullet(len(bullet.group(1).expandtabs(4)), bullet.group(2))
        elif re.search(r"\w", line):
            self._text(line)
        self.after_blank = False

    def _open(self, kind: str) -> None:
        self._close()
        self.sections.append(Section(kind))

    def _section(self) -> Section:
        if not self.sections:
            self._open("inclusion")
            self.sections[-1].notes.append(
                "the registry text has no Inclusion/Exclusion headings: all read as inclusion")
        return self.sections[-1]

    def _bullet(self, indent: int, text: str) -> None:
        self._section()
        if self.items and indent > self.items[0][0]:
            self.items[-1][2].append(text)
        else:
            self.items.append([indent, text, []])

    def _text(self, line: str) -> None:
        section = self._section()
        if self.items and (not self.after_blank or line.startswith((" ", "\t"))):
            item = self.items[-1]
            if item[2]:
                item[2][-1] += " " + line.strip()
            else:
                item[1] += " " + line.strip()
        elif self.items:
            section.notes.append(" ".join(line.split()))
        elif self.paragraphs and not self.after_blank:
            self.paragraphs[-1] += " " + " ".join(line.split())
        else:
            self.paragraphs.append(" ".join(line.split()))

    def _close(self) -> None:
        if not self.sections:
            return
        section = self.sections[-1]
        texts = [_join(text, children) for _indent, text, children in self.items]
        section.items.extend(texts or self.paragraphs)
        if texts:
            section.notes[:0] = self.paragraphs
        self.items, self.paragraphs = [], []

    def finish(self) -> list[Section]:
        self._close()
        return [s for s in self.sections if s.items or s.notes]


def _join(text: str, children: list[str]) -> str:
    whole = text if not children else f"{text} {'; '.join(children)}"
    return " ".join(whole.split())
