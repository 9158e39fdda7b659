"""Loading a rule set: compiled in helper processes or here, the result is the same, in order."""

import shutil
import time
from datetime import date
from pathlib import Path

import pytest

import engine.rules as rules_module
from engine.facts import PatientFacts
from engine.load import iter_patients
from engine.rules import load_rules

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def many_rules(tmp_path):
    """The bundled rules, 6 renamed copies of each trial, a file with a syntax error and one with a check error."""
    root = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", root, ignore=shutil.ignore_patterns("*.cases.yaml"))
    for path in sorted((root / "trials").glob("*.elig")):
        text = path.read_text(encoding="utf-8")
        for k in range(6):
            copy = text.replace(f"trial {path.stem}", f"trial {path.stem}X{k}")
            (root / "trials" / f"{path.stem}X{k}.elig").write_text(copy, encoding="utf-8")
    (root / "trials" / "BROKEN1.elig").write_text('trial B1 { }\ninclusion I1 "x": age >= \n', encoding="utf-8")
    (root / "trials" / "BROKEN2.elig").write_text('import "hepatology"\ntrial B2 { }\ninclusion I1 "x": bilirubn >= 3\n',
                                                  encoding="utf-8")
    return root


def _summary(rules):
    patients = [p.patient for p in iter_patients(ROOT / "examples")]
    return {
        "trials": list(rules.trials),
        "diagnostics": [d.render() for d in rules.diagnostics],
        "failed": list(rules.failed_files),
        "sources": {t: c.python_source for t, c in rules.trials.items()},
        "statuses": {t: [c.statuses(PatientFacts(p, date(2026, 11, 1))) for p in patients] for t, c in rules.trials.items()},
        "verdicts": {t: [c.verdict(PatientFacts(p, date(2026, 11, 1))) for p in patients] for t, c in rules.trials.items()},
    }


@pytest.fixture
def slow_here(monkeypatch):
    """Make this process compile slowly, so the helper process surely gets files to compile."""
    real = rules_module._compile_outcome

    def slow(*args):
        time.sleep(0.05)
        return real(*args)
    monkeypatch.setattr(rules_module, "_compile_outcome", slow)
    answered = []
    real_reply = rules_module._from_reply
    monkeypatch.setattr(rules_module, "_from_reply",
                        lambda reply, libraries: answered.append(reply) or real_reply(reply, libraries))
    monkeypatch.setattr(rules_module, "_CHUNK", 2)
    return answered


def test_a_load_shared_with_a_helper_process_equals_a_serial_load(many_rules, tmp_path, slow_here):
    serial = load_rules(many_rules, workers=0)
    shared = load_rules(many_rules, tmp_path / "cache", workers=1)
    assert slow_here, "the helper compiled nothing"
    assert len(serial.trials) == 35 and len(serial.failed_files) == 2
    assert _summary(shared) == _summary(serial)
    # every trial, compiled here or by the helper, shares one copy of the library it imports
    assert len({id(t.checked.sources[1]) for t in shared.trials.values()}) <= 2
    assert len({t.checked.sources[1].text for t in shared.trials.values()}) == 1
    # the entries the helper wrote to the compile cache load back to the same trials
    assert len(list((tmp_path / "cache").glob("*.pickle"))) == 35
    assert _summary(load_rules(many_rules, tmp_path / "cache", workers=0)) == _summary(serial)


@pytest.mark.parametrize("helper", [
    "import sys; sys.exit(3)",                                          # dies at once
    "import sys; sys.stdin.buffer.read(200); sys.exit(1)",              # dies with work in hand
    "import sys; sys.stdout.buffer.write(b'\\xff' * 64); sys.stdout.flush(); sys.stdin.buffer.read()",  # talks nonsense
])
def test_a_helper_that_fails_loses_no_file(many_rules, monkeypatch, helper):
    serial = load_rules(many_rules, workers=0)
    monkeypatch.setattr(rules_module, "_HELPER", helper)
    assert _summary(load_rules(many_rules, workers=1)) == _summary(serial)


def test_few_files_or_one_cpu_use_no_helper():
    assert rules_module._helper_count(None, rules_module.PARALLEL_MIN_FILES - 1) == 0
    assert rules_module._helper_count(0, 10_000) == 0
    assert rules_module._helper_count(None, 10_000) in (0, 1)


def test_a_helper_that_hangs_is_stopped_and_loses_no_file(many_rules, monkeypatch):
    serial = load_rules(many_rules, workers=0)
    monkeypatch.setattr(rules_module, "_HELPER", "import sys, time; sys.stdin.buffer.read(100); time.sleep(600)")
    monkeypatch.setattr(rules_module, "_HELPER_PATIENCE", 1.0)
    assert _summary(load_rules(many_rules, workers=1)) == _summary(serial)


def test_a_load_pauses_the_collector_and_restores_it_as_it_was():
    import gc

    assert gc.isenabled()
    load_rules(rules_module.DEFAULT_RULES_DIR)
    assert gc.isenabled()
    gc.disable()
    try:
        load_rules(rules_module.DEFAULT_RULES_DIR)
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_a_rule_set_holds_no_reference_cycles():
    """What lets the server freeze it without a full collection first, and drop it on reload;
    nor does a load leave cyclic garbage behind (the collector is paused while it runs).

    In a fresh interpreter, so that no other test's garbage is counted.
    """
    import subprocess
    import sys

    script = ("import gc; from engine.rules import load_rules; load_rules(); gc.collect(); "
              "rules = load_rules(); assert rules.trials; del rules; print(gc.collect())")
    run = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=Path(rules_module.__file__).resolve().parents[1])
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "0"


def test_big_files_through_default_sized_pipes_do_not_deadlock_the_helper(tmp_path, monkeypatch):
    """Chunks and answers larger than a pipe's buffer, two chunks in flight: both sides keep moving."""
    import threading

    root = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", root, ignore=shutil.ignore_patterns("*.cases.yaml", "trials"))
    (root / "trials").mkdir()
    padding = "".join(f"# {'x' * 76}\n" for _ in range(500))  # ~40 KB of comment per file
    for path in sorted((ROOT / "rules" / "trials").glob("*.elig")):
        text = path.read_text(encoding="utf-8")
        for k in range(5):
            (root / "trials" / f"{path.stem}P{k}.elig").write_text(
                padding + text.replace(f"trial {path.stem}", f"trial {path.stem}P{k}"), encoding="utf-8")
    monkeypatch.setattr(rules_module, "_widen", lambda pipe: None)  # the OS default, 64 KiB here
    monkeypatch.setattr(rules_module, "_CHUNK", 2)
    done = {}
    loader = threading.Thread(target=lambda: done.setdefault("rules", load_rules(root, workers=1)), daemon=True)
    loader.start()
    loader.join(120)
    assert "rules" in done, "the load with a helper process did not finish"
    assert _summary(done["rules"]) == _summary(load_rules(root, workers=0))


# ---- where an import leads, looked up once per name and importer directory ----------------------

def test_an_import_is_searched_once_per_name_and_directory(many_rules, monkeypatch):
    from engine.source import Source

    searched = []
    real_search = rules_module.ImportResolver._search
    monkeypatch.setattr(rules_module.ImportResolver, "_search",
                        lambda self, name, importer: searched.append(name) or real_search(self, name, importer))
    resolver = rules_module.ImportResolver(many_rules)
    trials = sorted((many_rules / "trials").glob("*.elig"))[:3]
    found = {resolver._locate("hepatology", Source(str(t), "")) for t in trials}
    assert found == {(many_rules / "lib" / "hepatology.elig").resolve()} and searched == ["hepatology"]
    for _ in range(2):  # a miss is remembered too, and raised the same way each time
        with pytest.raises(FileNotFoundError) as missing:
            resolver._locate("nowhere", Source(str(trials[0]), ""))
        assert str(missing.value).startswith("looked in ")
    assert searched == ["hepatology", "nowhere"]
    assert load_rules(many_rules, workers=0).diagnostics  # BROKEN1/2 still report as before


def test_an_importer_that_is_a_symbolic_link_looks_beside_its_target(tmp_path):
    from engine.source import Source

    root, elsewhere = tmp_path / "rules", tmp_path / "elsewhere"
    (root / "trials").mkdir(parents=True)
    elsewhere.mkdir()
    (elsewhere / "sibling.elig").write_text("", encoding="utf-8")
    (elsewhere / "A.elig").write_text("", encoding="utf-8")
    (root / "trials" / "A.elig").symlink_to(elsewhere / "A.elig")
    (root / "trials" / "B.elig").write_text("", encoding="utf-8")
    linked, plain = Source(str(root / "trials" / "A.elig"), ""), Source(str(root / "trials" / "B.elig"), "")
    for order in ([linked, plain], [plain, linked]):
        resolver = rules_module.ImportResolver(root)
        for importer in order:
            if importer is linked:
                assert resolver._locate("sibling", importer) == (elsewhere / "sibling.elig").resolve()
            else:
                with pytest.raises(FileNotFoundError):
                    resolver._locate("sibling", importer)
    resolver = rules_module.ImportResolver(root)  # an importer that is no file: only the root is searched
    with pytest.raises(FileNotFoundError, match="looked in"):
        resolver._locate("sibling", Source("<text>", ""))


# ---- helpers started ahead of the load (`prestart_helpers`) -------------------------------------

def _ended(process) -> bool:
    return process.poll() is not None


def test_a_prestarted_helper_is_the_one_the_load_uses(many_rules, monkeypatch, slow_here):
    serial = load_rules(many_rules, workers=0)
    start = rules_module.prestart_helpers(many_rules, workers=1)
    assert len(start.processes) == 1
    spawned = []
    real_spawn = rules_module._spawn_helper
    monkeypatch.setattr(rules_module, "_spawn_helper", lambda: spawned.append(1) or real_spawn())
    shared = load_rules(many_rules, workers=1, helpers=start)
    assert slow_here, "the prestarted helper compiled nothing"
    assert not spawned, "the load started a helper of its own"
    assert _summary(shared) == _summary(serial)
    assert _ended(start.processes[0])


@pytest.mark.parametrize("workers", [None, 0])
def test_a_prestarted_helper_the_load_does_not_need_is_ended(many_rules, tmp_path, monkeypatch, workers):
    """As when a server restarts with a warm compile cache: too few misses to share, or no sharing."""
    monkeypatch.setattr(rules_module, "PARALLEL_MIN_FILES", 10)
    monkeypatch.setattr(rules_module, "_cpus", lambda: 2)
    load_rules(many_rules, tmp_path / "cache", workers=0)  # all but the 2 broken files are cached
    start = rules_module.prestart_helpers(many_rules)
    assert len(start.processes) == 1
    while_compiling = []
    real = rules_module._compile_outcome
    monkeypatch.setattr(rules_module, "_compile_outcome",
                        lambda *args: while_compiling.append(_ended(start.processes[0])) or real(*args))
    rules = load_rules(many_rules, tmp_path / "cache", workers=workers, helpers=start)
    assert len(rules.trials) == 35 and len(rules.failed_files) == 2
    assert while_compiling == [True, True]  # ended before this process compiled the 2 misses


@pytest.mark.parametrize("where", ["before the compiling", "while compiling"])
def test_a_prestarted_helper_is_ended_when_the_load_fails(many_rules, monkeypatch, where):
    start = rules_module.prestart_helpers(many_rules, workers=1)

    def boom(*args):
        raise RuntimeError("boom")
    monkeypatch.setattr(rules_module, "ImportResolver" if where == "before the compiling" else "_compile_outcome", boom)
    with pytest.raises(RuntimeError, match="boom"):
        load_rules(many_rules, workers=1, helpers=start)
    assert _ended(start.processes[0])


def test_a_prestarted_helper_that_died_before_the_load_loses_no_file(many_rules):
    serial = load_rules(many_rules, workers=0)
    start = rules_module.prestart_helpers(many_rules, workers=1)
    start.processes[0].kill()
    start.processes[0].wait()
    assert _summary(load_rules(many_rules, workers=1, helpers=start)) == _summary(serial)


def test_a_prestarted_helper_serves_one_load_of_its_own_root(many_rules, monkeypatch):
    spawned = []
    real_spawn = rules_module._spawn_helper
    start = rules_module.prestart_helpers(many_rules, workers=1)
    monkeypatch.setattr(rules_module, "_spawn_helper", lambda: spawned.append(1) or real_spawn())
    other = load_rules(rules_module.DEFAULT_RULES_DIR, workers=1, helpers=start)  # another root: not used
    assert other.trials and _ended(start.processes[0]) and spawned == [1]
    load_rules(many_rules, workers=1, helpers=start)  # already spent: the load starts its own
    assert spawned == [1, 1]


def test_prestarting_takes_many_files_and_a_second_cpu(many_rules, monkeypatch):
    assert rules_module.prestart_helpers(many_rules).processes == ()  # 37 files, fewer than PARALLEL_MIN_FILES
    monkeypatch.setattr(rules_module, "PARALLEL_MIN_FILES", 10)
    monkeypatch.setattr(rules_module, "_cpus", lambda: 1)
    assert rules_module.prestart_helpers(many_rules).processes == ()
    monkeypatch.setattr(rules_module, "_cpus", lambda: 2)
    start = rules_module.prestart_helpers(many_rules)
    try:
        assert len(start.processes) == 1
    finally:
        start.close()
    assert _ended(start.processes[0])
    assert rules_module.prestart_helpers(many_rules.parent / "no such rules").processes == ()


def test_the_registry_hands_its_prestarted_helper_to_its_first_load(many_rules, monkeypatch, slow_here):
    from api.registry import RuleRegistry

    serial = load_rules(many_rules, workers=0)
    monkeypatch.setattr(rules_module, "PARALLEL_MIN_FILES", 10)
    monkeypatch.setattr(rules_module, "_cpus", lambda: 2)
    registry = RuleRegistry(many_rules)
    process = registry._helpers.processes[0]
    assert list(registry.snapshot.trials) == sorted(serial.trials)
    assert slow_here, "the prestarted helper compiled nothing"
    assert _ended(process) and registry._helpers is None
    assert registry.reload().snapshot.generation == 2  # later loads start helpers when they need them


def test_a_shared_load_restores_the_switch_interval():
    import sys

    before = sys.getswitchinterval()
    with rules_module._switching_often():
        with rules_module._switching_often():
            assert sys.getswitchinterval() == min(before, rules_module._SWITCH_INTERVAL)
        assert sys.getswitchinterval() == min(before, rules_module._SWITCH_INTERVAL)
    assert sys.getswitchinterval() == before
