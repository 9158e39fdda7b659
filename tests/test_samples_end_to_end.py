"""Every sample Synthea bundle, end to end through `elig screen`, as a user would run it."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT.parent / "shared" / "data" / "fhir-samples"
BUNDLES = sorted(SAMPLES.glob("*.json")) if SAMPLES.is_dir() else []


@pytest.mark.skipif(not BUNDLES, reason="shared/data/fhir-samples is not beside the checkout")
def test_every_sample_bundle_screens_end_to_end():
    cmd = [sys.executable, "-m", "engine.cli", "screen", str(SAMPLES), "--as-of", "2021-06-01", "--json"]
    run = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    assert run.returncode == 0, run.stderr
    patients = json.loads(run.stdout)["patients"]
    assert len(patients) == len(BUNDLES) == 8
    verdicts = {p["patient_id"]: {t["trial_id"]: t["verdict"] for t in p["trials"]} for p in patients}
    # None of the Synthea patients has liver disease: no trial can be more than a possibility.
    assert all(v != "eligible" for trials in verdicts.values() for v in trials.values())
    by_name = {p.name.split("_")[0]: p for p in BUNDLES}
    adan = json.loads(by_name["Adan"].read_text())
    adan_id = next(e["resource"]["id"] for e in adan["entry"] if e["resource"]["resourceType"] == "Patient")
    # Adán Pulido has metastatic prostate cancer: every trial's malignancy exclusion applies.
    adan_result = next(p for p in patients if p["patient_id"] == adan_id)
    for trial in adan_result["trials"]:
        assert trial["verdict"] == "ineligible"
        malignancy = [c for c in trial["criteria"]
                      if c["kind"] == "exclusion" and ("tumo" in c["text"].lower() or "malignan" in c["text"].lower())]
        assert any(c["status"] == "met" for c in malignancy), trial["trial_id"]
