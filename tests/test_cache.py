"""Compile cache: a hit gives the same trial; any change to what made an entry is a miss."""

import shutil
from datetime import date
from pathlib import Path

import pytest

from engine.cache import CompileCache
from engine.facts import PatientFacts
from engine.load import iter_patients
from engine.rules import load_rules

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def rules_copy(tmp_path):
    shutil.copytree(ROOT / "rules", tmp_path / "rules", ignore=shutil.ignore_patterns("*.cases.yaml"))
    return tmp_path / "rules"


def _statuses(rules):
    patients = [p.patient for p in iter_patients(ROOT / "examples")]
    return {tid: [t.statuses(PatientFacts(p, date(2026, 11, 1))) for p in patients] for tid, t in rules.trials.items()}


def test_a_warm_load_gives_the_same_trials_without_recompiling(rules_copy, tmp_path, monkeypatch):
    cold = load_rules(rules_copy, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.pickle"))) == 5

    def no_compiling(*args, **kwargs):
        raise AssertionError("a cached trial was compiled again")
    monkeypatch.setattr("engine.rules.compile_source", no_compiling)
    warm = load_rules(rules_copy, tmp_path / "cache")
    assert _statuses(warm) == _statuses(cold)
    assert {t: c.checked.content_hash for t, c in warm.trials.items()} == \
        {t: c.checked.content_hash for t, c in cold.trials.items()}


def test_an_edited_trial_or_library_is_recompiled(rules_copy, tmp_path):
    load_rules(rules_copy, tmp_path / "cache")
    trial = rules_copy / "trials" / "NCT01844063.elig"
    trial.write_text(trial.read_text().replace("age between 18 and 65 years", "age between 18 and 60 years"))
    library = rules_copy / "lib" / "hepatology.elig"
    library.write_text(library.read_text().replace("sex is female and age between 12 and 55 years",
                                                   "sex is female and age between 12 and 50 years"))
    reloaded = load_rules(rules_copy, tmp_path / "cache")
    texts = {c.key: c.body.text for c in reloaded.trials["NCT01844063"].checked.criteria if c.body is not None}
    assert texts["I1"] == "age between 18 and 60 years"
    sources = reloaded.trials["NCT06984497"].checked.sources
    assert "between 12 and 50 years" in sources[1].text  # the library edit reached an unedited trial


def test_a_corrupt_entry_is_a_miss_not_an_error(rules_copy, tmp_path):
    load_rules(rules_copy, tmp_path / "cache")
    for entry in (tmp_path / "cache").glob("*.pickle"):
        entry.write_bytes(b"not a pickle")
    assert len(load_rules(rules_copy, tmp_path / "cache").trials) == 5


def test_an_unwritable_cache_is_simply_not_used(rules_copy, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert len(load_rules(rules_copy, blocker / "cache").trials) == 5
    assert CompileCache(blocker / "cache").directory == blocker / "cache"


def test_a_cache_directory_others_can_write_is_neither_read_nor_written(rules_copy, tmp_path, monkeypatch, caplog):
    """Entries are pickles: one planted in a shared directory would run as this user."""
    cache = tmp_path / "cache"
    load_rules(rules_copy, cache)  # five good entries, in a directory made 0700
    assert cache.stat().st_mode & 0o777 == 0o700
    cache.chmod(0o777)

    def compiled_again(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)
    import engine.rules
    real, calls = engine.rules.compile_source, []
    monkeypatch.setattr("engine.rules.compile_source", compiled_again)
    entries = {entry: entry.stat().st_mtime_ns for entry in cache.iterdir()}
    with caplog.at_level("WARNING", logger="elig.cache"):
        assert len(load_rules(rules_copy, cache).trials) == 5
    assert len(calls) == 5  # no entry read: every trial compiled
    assert {entry: entry.stat().st_mtime_ns for entry in cache.iterdir()} == entries  # none written
    assert "not private" in caplog.text
    cache.chmod(0o700)
    calls.clear()
    load_rules(rules_copy, cache)
    assert calls == []  # private again: the entries are used


def test_an_entry_of_an_earlier_format_is_a_clean_miss(rules_copy, tmp_path):
    """Entries written before per-shape compilation held one marshalled module and its source."""
    import pickle

    from engine.cache import _EntryUnpickler
    from engine.source import Source
    cache = CompileCache(tmp_path / "cache")
    cold = load_rules(rules_copy, tmp_path / "cache")
    for path in sorted((rules_copy / "trials").glob("*.elig")):
        from engine.rules import display_name
        source = Source.from_path(path, display_name(path))
        target = cache._entry_path(source)
        with open(target, "rb") as f:
            entry = _EntryUnpickler(f, cache).load()
        old = {"libraries": [(path, digest) for path, _name, digest in entry["libraries"]], "checked": entry["checked"],
               "python_source": "def verdict(f): pass", "code": b"\x00", "warnings": entry["warnings"]}
        target.write_bytes(pickle.dumps(old))
        assert cache.get(source) is None
    again = load_rules(rules_copy, tmp_path / "cache")
    assert _statuses(again) == _statuses(cold)
    assert [d.render() for d in again.diagnostics] == [d.render() for d in cold.diagnostics]


def test_a_warm_load_in_a_fresh_process_uses_the_stored_bytecode(rules_copy, tmp_path, monkeypatch):
    """A restart has no compiled shapes yet: a hit must load them from the entry, not compile."""
    from engine import compiler
    cold = load_rules(rules_copy, tmp_path / "cache")
    compiler.clear_shape_memo()

    def no_compile(*args, **kwargs):
        raise AssertionError("a cached shape was compiled again")
    monkeypatch.setitem(compiler.__dict__, "compile", no_compile)
    warm = load_rules(rules_copy, tmp_path / "cache")
    assert _statuses(warm) == _statuses(cold)
    assert {t: c.python_source for t, c in warm.trials.items()} == {t: c.python_source for t, c in cold.trials.items()}


def test_entries_refer_to_the_library_and_warm_trials_share_one_copy_of_it(rules_copy, tmp_path):
    cold = load_rules(rules_copy, tmp_path / "cache")
    library_text = (rules_copy / "lib" / "hepatology.elig").read_text(encoding="utf-8")
    distinctive = library_text.splitlines()[0].encode()
    for entry in (tmp_path / "cache").glob("*.pickle"):
        assert distinctive not in entry.read_bytes()  # by reference, not by text
    warm = load_rules(rules_copy, tmp_path / "cache")
    libraries = {id(t.checked.sources[1]) for t in warm.trials.values()}
    assert len(libraries) == 1
    shared = next(iter(warm.trials.values())).checked.sources[1]
    assert shared.text == library_text
    assert shared.name == next(iter(cold.trials.values())).checked.sources[1].name
    assert [d.render() for d in warm.diagnostics] == [d.render() for d in cold.diagnostics]


def test_write_behind_returns_before_the_entries_are_stored_and_stores_them_all(rules_copy, tmp_path, monkeypatch):
    import threading

    from engine import cache as cache_module
    release = threading.Event()
    real_put = cache_module.CompileCache.put

    def held_put(self, *args):
        release.wait(10)
        real_put(self, *args)
    monkeypatch.setattr(cache_module.CompileCache, "put", held_put)
    cold = load_rules(rules_copy, tmp_path / "cache", write_behind=True)
    assert cold.trials and cold.cache_writer is not None and not cold.cache_writer.is_alive()  # caller starts it
    cold.cache_writer.start()
    assert not list((tmp_path / "cache").glob("*.pickle"))  # the caller goes on before any write
    release.set()
    cold.cache_writer.join(10)
    assert len(list((tmp_path / "cache").glob("*.pickle"))) == 5
    monkeypatch.setattr("engine.rules.compile_source", lambda *a: pytest.fail("a cached trial was compiled again"))
    warm = load_rules(rules_copy, tmp_path / "cache", write_behind=True)
    assert warm.cache_writer is None  # nothing new to store
    assert _statuses(warm) == _statuses(cold)
