"""The bench scripts still run: each one's `--quick` smoke mode, as a subprocess.

No timing is asserted here: figures are for bench/README.md, measured on purpose. Peers that
are not installed (the `bench` extra) are skipped by the scripts themselves, with a message.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"


def run(script: str, *args: str, timeout: float = 180) -> str:
    proc = subprocess.run([sys.executable, str(BENCH / script), "--quick", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_peers_agree_on_every_patient():
    out = run("peers.py")
    assert "all peers agree with (a) on every patient" in out
    assert "(b) hand-written Python" in out


def test_end_to_end_in_process_and_over_http():
    out = run("end_to_end.py")
    assert "in process, per patient" in out
    assert "HTTP: " in out  # measured, or skipped with the reason


def test_batch_in_process():
    out = run("batch.py", "--no-api")
    assert "in process: iter_patients over NDJSON" in out


def test_compile():
    out = run("compile.py", "--no-api")
    assert "NCT01844063.elig" in out and "load_rules over 20 generated trial files" in out


def test_scaling():
    out = run("scaling.py", "--no-plot")
    assert "cost against trials" in out and "cost against patients" in out


def test_generated_trials_compile_and_differ_from_their_seeds(tmp_path):
    sys.path.insert(0, str(BENCH))
    try:
        from _workload import load_trials, make_rules_dir
    finally:
        sys.path.remove(str(BENCH))
    trials = load_trials(make_rules_dir(12, tmp_path))
    assert len(trials) == 12
    seed = (ROOT / "rules" / "trials" / "NCT01844063.elig").read_text(encoding="utf-8")
    generated = (tmp_path / "trials" / "NCT90000000.elig").read_text(encoding="utf-8")
    assert "trial NCT90000000 {" in generated
    assert generated.count("\n") == seed.count("\n") and generated != seed.replace("NCT01844063", "NCT90000000")


@pytest.mark.parametrize("script", ["peers.py", "end_to_end.py", "batch.py", "compile.py", "scaling.py"])
def test_help(script):
    proc = subprocess.run([sys.executable, str(BENCH / script), "--help"], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0 and "--quick" in proc.stdout
