"""Opt-in strict FHIR validation: real R4 passes, malformed resources are pointed at."""

import copy
import json
from pathlib import Path

import pytest

from engine.fhir_validate import strict_problems

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("path", sorted((ROOT / "examples").glob("*.fhir.json")), ids=lambda p: p.name)
def test_example_bundles_are_valid_r4(path):
    assert strict_problems(json.loads(path.read_text(encoding="utf-8"))) == []


def test_a_malformed_observation_is_reported_with_its_path():
    doc = json.loads((ROOT / "examples" / "aclf_hbv_eligible.fhir.json").read_text(encoding="utf-8"))
    broken = copy.deepcopy(doc)
    index = next(i for i, e in enumerate(broken["entry"]) if e["resource"]["resourceType"] == "Observation")
    broken["entry"][index]["resource"]["effectiveDateTime"] = "2026-13-45"
    problems = strict_problems(broken)
    assert problems and all(p["pointer"].startswith(f"/entry/{index}/resource") for p in problems)


def test_not_fhir_at_all():
    assert strict_problems({"id": "p"})[0]["pointer"] == "/resourceType"


def test_screen_with_strict_fhir_rejects_the_bundle_and_says_where(tmp_path, capsys):
    from engine.cli import main
    doc = json.loads((ROOT / "examples" / "aclf_hbv_eligible.fhir.json").read_text(encoding="utf-8"))
    doc["entry"][3]["resource"]["effectiveDateTime"] = "2026-13-45"
    bad = tmp_path / "bad.fhir.json"
    bad.write_text(json.dumps(doc), encoding="utf-8")
    assert main(["screen", str(bad), "--as-of", "2026-11-01", "--strict-fhir"]) == 1
    assert "/entry/3/resource/effectiveDateTime" in capsys.readouterr().err
    assert main(["screen", str(bad), "--as-of", "2026-11-01", "--json"]) == 0  # lenient by default
