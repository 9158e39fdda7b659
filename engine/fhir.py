"""FHIR R4 ingestion: a Bundle (plain dict) → `engine.patient.Patient` plus a report.

Stage: input. Input is a parsed JSON document: a Bundle of type collection, searchset,
transaction, batch or document, or a bare Patient resource. Output is an `IngestResult`: the
engine's `Patient` and a list of `Note`s that say what was skipped, dropped, cleared or inferred.

Why plain dicts and no FHIR library: full validation with `fhir.resources` costs about 0.3 s per
MB, far beyond the CDS Hooks budget, while this path reads only the elements criteria use and
ingests a 300-resource bundle in a few milliseconds. Strict validation is a separate, optional
step. Anything malformed degrades to a note (a dropped record or a cleared field), never to an
exception: only a document that is not a patient at all raises `FhirError`.

What is kept: Observation (components become their own observations), Condition, Medication
Statement/Request/Administration, Procedure and ResearchSubject, each only when its
subject/patient is the target patient. Entered-in-error, cancelled, refuted and not-done records
are dropped here so that no criterion can count them. Every item keeps the id of the record it
came from (`Observation/abc`, `Observation/abc#0` for component 0) so explanations can cite it.

>>> result = bundle_to_patient({"resourceType": "Patient", "id": "p1", "gender": "female"})
>>> result.patient.sex, result.report
('female', [])
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.patient import ObservationStatus, Patient

__all__ = ["FhirError", "IngestResult", "Note", "bundle_to_patient", "looks_like_fhir"]

BUNDLE_TYPES = frozenset({"collection", "searchset", "transaction", "batch", "document"})
UCUM = "http://unitsofmeasure.org"
_OBS_STATUSES = frozenset(get_args(ObservationStatus))
UNREAD_OBSERVATION = "its codes are read by no loaded trial"
_COMPARATORS = frozenset({"<", "<=", ">=", ">"})
# Resources read only through a reference from another resource; never reported as skipped.
_REFERENCE_TARGETS = frozenset({"Medication", "ResearchStudy"})
# Model fields whose failure means the record is unusable; any other failing field is cleared.
_ESSENTIAL_FIELDS = frozenset({"id", "codes", "status", "source"})

# RxNorm clinical-drug names carry the dose form ("Hydrocortisone 10 MG/ML Topical Cream").
# Order matters: "Vaginal Cream" is vaginal and "Oral Gel" is oral, not topical.
_DOSE_FORM_ROUTES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), route)
    for pattern, route in (
        (r"\bvaginal\b", "vaginal"),
        (r"\brectal\b|\bsuppository\b", "rectal"),
        (r"\bophthalmic\b", "ophthalmic"),
        (r"\botic\b", "otic"),
        (r"\bnasal\b", "nasal"),
        (r"\binhal", "inhalation"),
        (r"\btransdermal\b", "transdermal"),
        (r"\boral\b|\bchewable\b", "oral"),
        (r"\btopical\b|\bcutaneous\b|\bcream\b|\bointment\b|\blotion\b", "topical"),
    )
)


class FhirError(ValueError):
    """The document is not a FHIR patient record this engine can screen."""


class Note(BaseModel):
    """One line of the ingest report: what happened to which record, and why."""

    model_config = ConfigDict(frozen=True)

    ref: str
    action: Literal["skipped", "dropped", "cleared", "inferred"]
    reason: str
    count: int = 1

    def __str__(self) -> str:
        times = f" ×{self.count}" if self.count > 1 else ""
        return f"{self.ref}{times} {self.action}: {self.reason}"


class IngestResult(BaseModel):
    """The patient as screening reads it, and the report of what ingestion left out."""

    patient: Patient
    report: list[Note] = []

    @property
    def skipped_types(self) -> dict[str, int]:
        """Resource types that were not read, with how many resources each had."""
        return {n.ref: n.count for n in self.report if n.action == "skipped"}

    def lines(self) -> list[str]:
        """The report as plain text lines."""
        return [str(n) for n in self.report]


# ---------------------------------------------------------------- tolerant accessors


def _obj(x: Any) -> dict:
    return x if isinstance(x, dict) else {}


def _list(x: Any) -> list:
    return x if isinstance(x, list) else []


def _str(x: Any) -> str | None:
    return x if isinstance(x, str) and x else None


def _first(x: Any) -> dict:
    items = _list(x)
    return _obj(items[0]) if items else {}


def _num(x: Any) -> float | None:
    """A finite JSON number; booleans and huge integers are not numbers here."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    try:
        value = float(x)
    except OverflowError:
        return None
    return value if math.isfinite(value) else None


def _codings(concept: Any) -> list[dict]:
    """CodeableConcept.coding as model codings; a coding without a system is `local`."""
    out = []
    for c in _list(_obj(concept).get("coding")):
        c = _obj(c)
        if code := _str(c.get("code")):
            out.append({"system": _str(c.get("system")) or "local", "code": code, "display": _str(c.get("display"))})
    return out


def _concept_text(concept: Any) -> str | None:
    """What a person would read: the text, else the first coding's display or code."""
    concept = _obj(concept)
    if text := _str(concept.get("text")):
        return text
    first = _first(concept.get("coding"))
    return _str(first.get("display")) or _str(first.get("code"))


def _status_code(concept: Any) -> str | None:
    """The code of a status CodeableConcept (clinicalStatus, verificationStatus)."""
    return _str(_first(_obj(concept).get("coding")).get("code"))


def _period(p: Any) -> tuple[str | None, str | None]:
    p = _obj(p)
    return _str(p.get("start")), _str(p.get("end"))


# ---------------------------------------------------------------- context


class _Drop(Exception):
    """Raised by a reader: the record must not reach the model, for the given reason."""


class _Context:
    """Reference index, target patient and the report being built for one bundle."""

    def __init__(self, entries: list[tuple[str | None, dict]], target: tuple[str | None, dict], single: bool,
                 observation_codes: Collection[str] | None = None):
        self.entries = entries
        self.observation_codes = observation_codes
        self._index: dict[str, dict] | None = None
        self.target = target[1]
        self.patient_keys = _patient_keys(*target)
        self.single = single
        self.notes: list[Note] = []
        self.tally: Counter[tuple[str, str, str]] = Counter()

    @property
    def index(self) -> dict[str, dict]:
        """Resources by fullUrl and by `Type/id`; built on first use, as most bundles never need it."""
        if self._index is None:
            self._index = {}
            for full_url, res in self.entries:
                keys = (full_url, f"{res['resourceType']}/{res['id']}" if _str(res.get("id")) else None)
                for key in filter(None, keys):
                    self._index.setdefault(key, res)
        return self._index

    def resolve(self, ref: str | None, holder: dict | None = None) -> dict | None:
        """The resource a reference points at: `#contained`, fullUrl, `Type/id` or absolute URL."""
        if not ref:
            return None
        if ref.startswith("#") and holder is not None:
            return next((r for r in map(_obj, _list(holder.get("contained"))) if r.get("id") == ref[1:]), None)
        return self.index.get(ref) or self.index.get(_tail(ref))

    def reads(self, concept: Any) -> bool:
        """Whether screening could read an observation coded by `concept` (any code, when unfiltered).

        Matches on the code alone, as `PatientFacts` indexes observations.
        """
        if self.observation_codes is None:
            return True
        codings = map(_obj, _list(_obj(concept).get("coding")))
        return any(_str(c.get("code")) in self.observation_codes for c in codings)

    def note(self, ref: str, action: str, reason: str) -> None:
        self.notes.append(Note(ref=ref, action=action, reason=reason))

    def report(self) -> list[Note]:
        tallied = [Note(ref=r, action=a, reason=why, count=n) for (r, a, why), n in self.tally.items()]
        return self.notes + tallied


def _tail(ref: str) -> str:
    """`Type/id` from an absolute or versioned reference (`…/Patient/1/_history/2` → `Patient/1`)."""
    parts = ref.split("/_history/")[0].rstrip("/").split("/")
    return "/".join(parts[-2:])


def _patient_keys(full_url: str | None, res: dict) -> frozenset[str]:
    rid = _str(res.get("id"))
    keys = {full_url} if full_url else set()
    if rid:
        keys |= {f"Patient/{rid}", f"urn:uuid:{rid}"}
    return frozenset(keys)


def _subject_ref(res: dict) -> str | None:
    """The reference naming whose record this is; "" when present but not resolvable by text."""
    for key in ("subject", "patient", "individual"):
        if key in res:
            return _str(_obj(res[key]).get("reference")) or ""
    return None


def _belongs(res: dict, ctx: _Context) -> str | None:
    """None when the resource is the target patient's, else why it is not."""
    ref = _subject_ref(res)
    if not ref:
        return None if ctx.single else "no subject in a bundle of several patients"
    if ref in ctx.patient_keys or _tail(ref) in ctx.patient_keys:
        return None
    return "subject is another patient"


# ---------------------------------------------------------------- Observation


def _quantity(q: Any) -> dict | None:
    """value, unit (the UCUM code when the system is UCUM, else the unit text) and comparator."""
    if not isinstance(q, dict) or (value := _num(q.get("value"))) is None:
        return None
    unit = _str(q.get("code")) if q.get("system") == UCUM else None
    out: dict = {"value": value, "unit": unit or _str(q.get("unit")) or _str(q.get("code"))}
    if (comparator := _str(q.get("comparator"))) in _COMPARATORS:
        out["comparator"] = comparator
    return out


_VALUE_READERS: dict[str, Callable[[Any], dict]] = {
    "valueQuantity": lambda v: {"value": _quantity(v)},
    "valueInteger": lambda v: {"value": _quantity({"value": v})},
    "valueCodeableConcept": lambda v: {"value_codes": _codings(v), "value_text": _str(_obj(v).get("text"))},
    "valueString": lambda v: {"value_text": _str(v)},
    "valueBoolean": lambda v: {"value_boolean": v if isinstance(v, bool) else None},
}
_UNREAD_VALUES = ("valueRange", "valueRatio", "valueSampledData", "valueTime", "valueDateTime", "valuePeriod")


def _observation_value(res: dict, rid: str, ctx: _Context) -> dict:
    """The value[x], reference range, interpretation and absent-data reason of an observation."""
    # Lists are always given: pydantic deep-copies a missing mutable default, which is slower.
    out: dict = {"value_codes": [], "interpretation": []}
    for key, read in _VALUE_READERS.items():
        if key in res:
            out.update(read(res[key]))
    for key in _UNREAD_VALUES:
        if key in res:
            ctx.note(rid, "cleared", f"{key} is not read")
    if "referenceRange" in res:
        ref_range = _first(res["referenceRange"])
        out["reference_low"], out["reference_high"] = _quantity(ref_range.get("low")), _quantity(ref_range.get("high"))
    if "interpretation" in res:
        out["interpretation"] = [c["code"] for i in _list(res["interpretation"]) for c in _codings(i)]
    if "dataAbsentReason" in res:
        out["data_absent_reason"] = _status_code(res["dataAbsentReason"])
    return out


def _observation_status(res: dict, rid: str, ctx: _Context) -> str:
    status = _str(res.get("status"))
    if status in ("entered-in-error", "cancelled"):
        raise _Drop(status)
    if status in _OBS_STATUSES:
        return status
    problem = f"status {status!r} is not an observation status" if status else "status missing"
    ctx.note(rid, "cleared", f"{problem}; read as unknown")
    return "unknown"


def _observation_date(res: dict, rid: str, ctx: _Context) -> str | None:
    """effective[x] (a Period gives its end, else start), else `issued`."""
    start, end = _when(res, "effective", ctx, rid)
    return end or start or _str(res.get("issued"))


def _read_observation(res: dict, rid: str, ctx: _Context) -> Iterator[tuple[str, dict]]:
    components = [_obj(c) for c in _list(res.get("component"))]
    read_main, read_parts = ctx.reads(res.get("code")), [ctx.reads(c.get("code")) for c in components]
    if not read_main and not any(read_parts):
        ctx.tally[("Observation", "skipped", UNREAD_OBSERVATION)] += 1
        return
    status = _observation_status(res, rid, ctx)
    shared = {"status": status, "effective": _observation_date(res, rid, ctx)}
    if codes := _codings(res.get("code")):
        if read_main:
            yield "observations", {"id": rid, "codes": codes, **shared, **_observation_value(res, rid, ctx)}
    else:
        ctx.note(rid, "dropped", "no coded Observation.code")
    for n, (comp, read) in enumerate(zip(components, read_parts)):
        if read and (codes := _codings(comp.get("code"))):
            cid = f"{rid}#{n}"
            yield "observations", {"id": cid, "codes": codes, **shared, **_observation_value(comp, cid, ctx)}


# ---------------------------------------------------------------- dates shared by readers

_UNREAD_DATE_TYPES = ("Age", "Range", "String", "Timing")


def _when(res: dict, stem: str, ctx: _Context | None = None, rid: str = "") -> tuple[str | None, str | None]:
    """(start, end) of a `<stem>[x]` choice: a dateTime or instant is both; a Period its bounds."""
    if v := _str(res.get(stem + "DateTime")) or _str(res.get(stem + "Instant")):
        return v, v
    if stem + "Period" in res:
        return _period(res[stem + "Period"])
    for kind in _UNREAD_DATE_TYPES:
        if stem + kind in res and ctx is not None:
            ctx.note(rid, "cleared", f"{stem}{kind} is not a date")
    return None, None


# ---------------------------------------------------------------- Condition


def _read_condition(res: dict, rid: str, ctx: _Context) -> Iterator[tuple[str, dict]]:
    verification = _status_code(res.get("verificationStatus"))
    if verification in ("refuted", "entered-in-error"):
        raise _Drop(verification)
    codes = _codings(res.get("code"))
    if not codes:
        raise _Drop("no coded Condition.code")
    onset = _when(res, "onset", ctx, rid)[0]
    # An abatement Period is only surely over at its end.
    abate_start, abate_end = _when(res, "abatement", ctx, rid)
    yield "conditions", {
        "id": rid, "codes": codes, "clinical_status": _status_code(res.get("clinicalStatus")),
        "verification_status": verification, "onset": onset, "abatement": abate_end or abate_start,
        "recorded": _str(res.get("recordedDate")),
    }


# ---------------------------------------------------------------- medications


def _request_period(res: dict) -> tuple[str | None, str | None]:
    """boundsPeriod, else the dispense validity period, else authoredOn as the start."""
    bounds = _obj(_obj(_obj(_first(res.get("dosageInstruction")).get("timing")).get("repeat")).get("boundsPeriod"))
    validity = _obj(_obj(res.get("dispenseRequest")).get("validityPeriod"))
    for period in (bounds, validity):
        if any(period.get(k) for k in ("start", "end")):
            return _period(period)
    return _str(res.get("authoredOn")), None


def _effective_period(res: dict) -> tuple[str | None, str | None]:
    return _when(res, "effective")


# Per medication resource type: model source, exposure period, and where the route sits
# (Statement.dosage and Request.dosageInstruction are lists; Administration.dosage is not).
_MED_SOURCES: dict[str, tuple[str, Callable[[dict], tuple], Callable[[dict], Any]]] = {
    "MedicationStatement": ("statement", _effective_period, lambda r: _first(r.get("dosage")).get("route")),
    "MedicationRequest": ("request", _request_period, lambda r: _first(r.get("dosageInstruction")).get("route")),
    "MedicationAdministration": ("administration", _effective_period, lambda r: _obj(r.get("dosage")).get("route")),
}


def _medication_concept(res: dict, ctx: _Context) -> dict:
    """medicationCodeableConcept, or the code of the Medication that medicationReference names."""
    if "medicationCodeableConcept" in res:
        return _obj(res["medicationCodeableConcept"])
    ref = _str(_obj(res.get("medicationReference")).get("reference"))
    target = ctx.resolve(ref, res)
    if target is None or target.get("resourceType") != "Medication":
        raise _Drop(f"medicationReference {ref!r} is not a Medication in the bundle")
    return _obj(target.get("code"))


def _normal_route(text: str) -> str:
    """'Oral route' and 'Topical route (qualifier value)' read as 'oral' and 'topical'."""
    text = text.lower().replace("(qualifier value)", "").strip()
    return text.removesuffix(" route").strip()


def _infer_route(concept: dict, rid: str, ctx: _Context) -> str | None:
    """The route named by the dose form in the drug's name, when the record gives none."""
    names = [_str(concept.get("text"))] + [c["display"] for c in _codings(concept)]
    for name in filter(None, names):
        for pattern, route in _DOSE_FORM_ROUTES:
            if pattern.search(name):
                ctx.note(rid, "inferred", f"route {route!r} from the dose form in {name!r}")
                return route
    return None


def _read_medication(res: dict, rid: str, ctx: _Context) -> Iterator[tuple[str, dict]]:
    source, period_of, route_of = _MED_SOURCES[res["resourceType"]]
    status = _str(res.get("status")) or "unknown"
    if status == "entered-in-error":
        raise _Drop(status)
    concept = _medication_concept(res, ctx)
    if not (codes := _codings(concept)):
        raise _Drop("medication has no coding")
    route = _concept_text(route_of(res))
    route = _normal_route(route) if route else _infer_route(concept, rid, ctx)
    start, end = period_of(res)
    yield "medications", {"id": rid, "codes": codes, "source": source, "status": status,
                          "route": route, "start": start, "end": end}


# ---------------------------------------------------------------- Procedure, ResearchSubject


def _read_procedure(res: dict, rid: str, ctx: _Context) -> Iterator[tuple[str, dict]]:
    status = _str(res.get("status")) or "unknown"
    if status in ("entered-in-error", "not-done"):
        raise _Drop(status)
    if not (codes := _codings(res.get("code"))):
        raise _Drop("no coded Procedure.code")
    start, end = _when(res, "performed", ctx, rid)
    yield "procedures", {"id": rid, "codes": codes, "status": status, "start": start, "end": end}


def _study_name(study: Any, ctx: _Context) -> str | None:
    """The study's identifier (e.g. an NCT number) when it can be found, else its reference."""
    study = _obj(study)
    target = _obj(ctx.resolve(_str(study.get("reference"))))
    for ident in (_first(target.get("identifier")), _obj(study.get("identifier"))):
        if value := _str(ident.get("value")):
            return value
    return _str(study.get("reference")) or _str(study.get("display"))


def _read_research_subject(res: dict, rid: str, ctx: _Context) -> Iterator[tuple[str, dict]]:
    status = _str(res.get("status")) or "unknown"
    if status == "entered-in-error":
        raise _Drop(status)
    start, end = _period(res.get("period"))
    yield "trials", {"id": rid, "study": _study_name(res.get("study"), ctx), "status": status,
                     "start": start, "end": end}


_READERS: dict[str, Callable[[dict, str, _Context], Iterator[tuple[str, dict]]]] = {
    "Observation": _read_observation,
    "Condition": _read_condition,
    "MedicationStatement": _read_medication,
    "MedicationRequest": _read_medication,
    "MedicationAdministration": _read_medication,
    "Procedure": _read_procedure,
    "ResearchSubject": _read_research_subject,
}
_BUCKETS = ("observations", "conditions", "medications", "procedures", "trials")


# ---------------------------------------------------------------- bundle and patient


def _entries(doc: Any) -> list[tuple[str | None, dict]]:
    """(fullUrl, resource) for each entry that holds a resource; a bare Patient is one entry."""
    if not isinstance(doc, dict):
        raise FhirError("not a FHIR resource: expected a JSON object")
    rtype = doc.get("resourceType")
    if rtype == "Patient":
        return [(None, doc)]
    if rtype != "Bundle":
        raise FhirError(f"expected a Bundle or a Patient, got resourceType {rtype!r}")
    btype = doc.get("type")
    if btype is not None and _str(btype) not in BUNDLE_TYPES:
        raise FhirError(f"Bundle type {btype!r} is not screened; expected one of {sorted(BUNDLE_TYPES)}")
    entries = (_obj(e) for e in _list(doc.get("entry")))
    return [(_str(e.get("fullUrl")), r) for e in entries if _str((r := _obj(e.get("resource"))).get("resourceType"))]


def _is_patient_id(full_url: str | None, res: dict, wanted: str) -> bool:
    return wanted in _patient_keys(full_url, res) or wanted == res.get("id")


def _select_patient(entries: list[tuple[str | None, dict]], patient_id: str | None) -> tuple[str | None, dict]:
    """The target Patient entry: the only one, or the one `patient_id` names."""
    patients = [(u, r) for u, r in entries if r.get("resourceType") == "Patient"]
    if patient_id is not None:
        patients = [(u, r) for u, r in patients if _is_patient_id(u, r, patient_id)]
        if not patients:
            raise FhirError(f"no Patient {patient_id!r} in the bundle")
    if not patients:
        raise FhirError("the bundle holds no Patient resource")
    if len(patients) > 1:
        raise FhirError(f"the bundle holds {len(patients)} Patient resources; pass patient_id to choose one")
    return patients[0]


def _local_id(full_url: str | None, res: dict, n: int) -> str:
    """The resource id, else the last segment of its fullUrl (a urn:uuid's uuid), else its position."""
    if rid := _str(res.get("id")):
        return rid
    if full_url:
        return full_url.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
    return f"entry-{n}"


def _patient_fields(full_url: str | None, res: dict) -> dict:
    deceased = res.get("deceasedBoolean")
    if not isinstance(deceased, bool):
        deceased = True if _str(res.get("deceasedDateTime")) else None
    return {"id": _local_id(full_url, res, 0), "birth_date": _str(res.get("birthDate")),
            "sex": _str(res.get("gender")), "deceased": deceased}


def _ingest(full_url: str | None, res: dict, n: int, ctx: _Context, data: dict, seen: set[str]) -> None:
    """Read one resource into `data`, or record in the report why it was not."""
    rtype = res["resourceType"]
    reader = _READERS.get(rtype)
    if reader is None:
        if rtype == "Patient" and res is not ctx.target:
            ctx.tally[(rtype, "skipped", "not the patient being screened")] += 1
        elif rtype not in _REFERENCE_TARGETS and rtype != "Patient":
            ctx.tally[(rtype, "skipped", "resource type not read")] += 1
        return
    rid = f"{rtype}/{_local_id(full_url, res, n)}"
    if (why := _belongs(res, ctx)) is not None:
        ctx.tally[(rtype, "dropped", why)] += 1
        return
    if rid in seen:
        ctx.note(rid, "dropped", "duplicate entry")
        return
    seen.add(rid)
    try:
        for bucket, item in reader(res, rid, ctx):
            data[bucket].append(item)
    except _Drop as why:
        ctx.note(rid, "dropped", str(why))


# ---------------------------------------------------------------- validation


def _repair(data: dict, errors: list[dict], ctx: _Context) -> None:
    """Clear each field the model rejected, or drop the record when the field is essential."""
    doomed: set[tuple[str, int]] = set()
    for err in errors:
        loc = err["loc"]
        if len(loc) >= 3 and loc[0] in _BUCKETS and isinstance(loc[1], int):
            item, field = data[loc[0]][loc[1]], loc[2]
            if field in _ESSENTIAL_FIELDS:
                doomed.add((loc[0], loc[1]))
                ctx.note(str(item.get("id")), "dropped", f"{field}: {err['msg']}")
            elif item.pop(field, None) is not None:
                ctx.note(str(item.get("id")), "cleared", f"{field} {_short(err.get('input'))}: {err['msg']}")
        elif loc and loc[0] in data and loc[0] != "id":
            ctx.note(f"Patient/{data['id']}", "cleared", f"{loc[0]} {_short(data.pop(loc[0]))}: {err['msg']}")
    for bucket, i in sorted(doomed, reverse=True):
        del data[bucket][i]


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _validated(data: dict, ctx: _Context) -> Patient:
    """One fast validation of the whole record; on failure, repair what was rejected and retry."""
    for _ in range(3):
        try:
            return Patient.model_validate(data)
        except ValidationError as exc:
            _repair(data, exc.errors(include_url=False), ctx)
    return Patient.model_validate(data)


# ---------------------------------------------------------------- public API


def looks_like_fhir(doc: Any) -> bool:
    """True for a FHIR Bundle or Patient resource, as opposed to the engine's native JSON."""
    return isinstance(doc, dict) and doc.get("resourceType") in ("Bundle", "Patient")


def bundle_to_patient(bundle: dict, *, patient_id: str | None = None,
                      observation_codes: Collection[str] | None = None) -> IngestResult:
    """Read one patient's record out of a FHIR R4 Bundle (or a bare Patient resource).

    Parameters:
        bundle: the parsed JSON document.
        patient_id: which Patient to read when the bundle holds several: its id, `Patient/<id>`
            or its fullUrl. Other patients' resources are left out.
        observation_codes: when given, only Observations (and components) carrying one of these
            codes are read, the others counted in the report. Screening reads observations by
            code only, so passing the codes of the trials to be screened
            (`facts.observation_codes`) changes no result; it spares reading and validating
            the vital signs and panels of a real record that no criterion looks at.

    Returns the patient and the ingest report. Raises `FhirError` when the document is not a
    Bundle or Patient, the Bundle type is not screened, or the Patient cannot be chosen.
    """
    entries = _entries(bundle)
    target = _select_patient(entries, patient_id)
    patients = sum(r.get("resourceType") == "Patient" for _, r in entries)
    ctx = _Context(entries, target, single=patients == 1, observation_codes=observation_codes)
    data: dict = _patient_fields(*target) | {bucket: [] for bucket in _BUCKETS}
    seen: set[str] = set()
    for n, (full_url, res) in enumerate(entries):
        _ingest(full_url, res, n, ctx, data, seen)
    return IngestResult(patient=_validated(data, ctx), report=ctx.report())
