"""The rules being served: one immutable snapshot, swapped whole on reload.

Why a snapshot: requests read `registry.snapshot` once and use that object to the end, so a
reload in the middle of a request can never mix two versions of a trial. Reloads are
serialised by a lock and swap one reference, which is atomic in Python.

Why "last good per trial": `engine.load_rules` leaves a broken file out and reports it. For a
running service, an edit that breaks one trial must not make that trial vanish, so a trial
whose file now fails keeps serving its previously compiled version, and the reload report
says so. A trial file that was deleted is dropped.

File names: the engine names sources relative to the working directory; the API names them
relative to the rules root (`trials/X.elig`, `lib/hepatology.elig`), which says nothing about
the server's file system and stays stable across deployments.
"""

from __future__ import annotations

import hashlib
import os
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from engine.compiler import CompiledTrial
from engine.diagnostics import Diagnostic
from engine.facts import observation_codes
from engine.rules import HelperStart, RuleSet, load_rules, prestart_helpers, tune_gc_for_serving


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Snapshot:
    """One consistent set of compiled trials and what loading them reported."""

    root: Path
    trials: dict[str, CompiledTrial]
    diagnostics: tuple[Diagnostic, ...] = ()
    failed_files: tuple[str, ...] = ()
    kept_previous: tuple[str, ...] = ()  # trial ids still served from an earlier load
    generation: int = 0
    loaded_at: str = ""
    file_hashes: dict[str, str] = field(default_factory=dict)  # label → sha256 of the file's text
    trial_sources: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)  # id → (label, sha256)…
    observation_codes: frozenset[str] | None = None  # what FHIR ingestion reads (`facts.observation_codes`)

    def label(self, name: str) -> str:
        """A source name as shown to API clients: relative to the rules root when inside it."""
        path = Path(os.path.abspath(name))
        try:
            return path.relative_to(self.root).as_posix()
        except ValueError:
            return Path(name).name

    def source_files(self, trial: CompiledTrial) -> tuple[tuple[str, str], ...]:
        """(label, sha256) of the trial file and every library it imports, the trial file first.

        Computed once per snapshot: hashing every source on every request cost ~0.9 ms.
        """
        known = self.trial_sources.get(trial.trial_id)
        if known is not None:
            return known
        return tuple((self.label(s.name), sha256(s.text)) for s in trial.checked.sources)

    def diagnostic_dict(self, d: Diagnostic) -> dict:
        """`Diagnostic.to_dict()` with the file named as clients see it."""
        return d.to_dict() | {"file": self.label(d.source.name)}


@dataclass(frozen=True)
class ReloadOutcome:
    snapshot: Snapshot
    added: list[str]
    updated: list[str]
    removed: list[str]


class RuleRegistry:
    """Holds the current snapshot of a rules directory and reloads it on request.

    The first load's helper process (`engine.rules.prestart_helpers`: many trial files and a
    second CPU) is started here, when the registry is made, so that it imports the engine while
    this process still builds the app and uvicorn starts up, instead of while the load compiles
    alone. A server makes its registry in `create_app` at the end of importing `api.main`
    (~0.45 s after the process starts); the load begins ~0.05 s later, and the helper answers
    ~0.4 s after it was started, ~0.15 s sooner than one started by the load.

    Earlier would be better for the helper but not for the code: `api.main` would have to read
    the settings and import the engine (~0.2 s) before the web framework, making the registry
    or its helpers above the imports, for ~0.15 s more of the helper's time (~0.07 s of the
    start); reading `ELIG_RULES_DIR` a second way, before any import, would guess at what the
    settings decide. The registry is the first point that knows what it will load, and the
    helper's life stays tied to that load.
    """

    def __init__(self, root: Path | str, cache_dir: Path | None = None, freeze_rules: bool = False):
        self.root = Path(root).resolve()
        self.cache_dir = cache_dir
        self.freeze_rules = freeze_rules  # keep loaded rules out of the collector (`tune_gc_for_serving`)
        self._snapshot: Snapshot | None = None
        self._lock = threading.Lock()
        self._cache_writers: list[threading.Thread] = []
        self._helpers: HelperStart | None = prestart_helpers(self.root)  # for the first load only

    @property
    def loaded(self) -> bool:
        return self._snapshot is not None

    @property
    def snapshot(self) -> Snapshot:
        """The current rules, loading them on first use (tests may skip the app's lifespan)."""
        if self._snapshot is None:
            self.reload()
        assert self._snapshot is not None
        return self._snapshot

    def reload(self) -> ReloadOutcome:
        """Load the directory again; trials whose file now fails keep their last good version."""
        with self._lock:
            previous = self._snapshot
            helpers, self._helpers = self._helpers, None  # ended by this load, whatever happens
            fresh = load_rules(self.root, self.cache_dir, write_behind=True,  # ready before the cache is
                               helpers=helpers)
            snapshot = self._merge(fresh, previous)
            self._snapshot = snapshot
            if self.freeze_rules:
                tune_gc_for_serving()
            if fresh.cache_writer is not None:  # after the swap: it competes for the GIL
                fresh.cache_writer.start()
            self._cache_writers = [t for t in [*self._cache_writers, fresh.cache_writer] if t and t.is_alive()]
        return _outcome(previous, snapshot)

    def finish_cache_writes(self, timeout: float = 30.0) -> None:
        """Wait for compile-cache entries still being written (call at shutdown).

        uvicorn ends a process by re-raising the signal that stopped it, which does not wait for
        threads: without this, a first start's entries would be cut short and the restart cold.
        """
        for writer in list(self._cache_writers):
            writer.join(timeout)

    def _merge(self, fresh: RuleSet, previous: Snapshot | None) -> Snapshot:
        failed = {os.path.abspath(name) for name in fresh.failed_files}
        kept = {}
        if previous is not None:
            for tid, trial in previous.trials.items():
                if tid not in fresh.trials and os.path.abspath(trial.checked.source.name) in failed:
                    kept[tid] = trial
        trials = dict(sorted({**fresh.trials, **kept}.items()))
        base = Snapshot(self.root, trials)
        sources = {tid: base.source_files(t) for tid, t in trials.items()}
        hashes = {label: digest for pairs in sources.values() for label, digest in pairs}
        return Snapshot(
            root=self.root, trials=trials, diagnostics=tuple(fresh.diagnostics),
            failed_files=tuple(base.label(n) for n in fresh.failed_files), kept_previous=tuple(sorted(kept)),
            generation=(previous.generation + 1) if previous else 1,
            loaded_at=datetime.now(UTC).isoformat(timespec="seconds"), file_hashes=dict(sorted(hashes.items())),
            trial_sources=sources, observation_codes=observation_codes(trials.values()))


def _outcome(previous: Snapshot | None, current: Snapshot) -> ReloadOutcome:
    """What changed, by trial content hash."""
    before = {tid: t.checked.content_hash for tid, t in (previous.trials.items() if previous else ())}
    after = {tid: t.checked.content_hash for tid, t in current.trials.items()}
    return ReloadOutcome(
        snapshot=current,
        added=sorted(set(after) - set(before)),
        updated=sorted(tid for tid in set(after) & set(before) if after[tid] != before[tid]),
        removed=sorted(set(before) - set(after)),
    )
