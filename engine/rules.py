"""Rule sets: a directory of criteria files loaded, checked and compiled once.

Stage: assembly. Trial files live in `<root>/trials/*.elig` and import libraries by name
(`import "hepatology"` finds `<root>/lib/hepatology.elig`) or by relative path. Each library is
parsed once per load. A file with errors is reported and left out; the others still load, so a
broken edit never takes a whole rule set (or a running server) down.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gc
import itertools
import os
import pickle
import queue
import stat
import subprocess
import sys
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path

from . import ast
from .checker import check
from .cache import CompileCache
from .compiler import CompiledTrial, compile_checked, remember_shape, shape_bytecode
from .diagnostics import CompileError, Diagnostic
from .parser import parse
from .source import Source

DEFAULT_RULES_DIR = Path(__file__).resolve().parent.parent / "rules"


@dataclass
class RuleSet:
    root: Path
    trials: dict[str, CompiledTrial] = field(default_factory=dict)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    failed_files: list[str] = field(default_factory=list)
    cache_writer: threading.Thread | None = None  # with `write_behind`: stores the new cache entries once started

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


class ImportResolver:
    """Finds and parses imported libraries, once each, relative to the importer or `<root>/lib`.

    A resolver serves one load (or one check), during which the files are taken not to change:
    libraries are parsed once, and where an import leads is looked up once per name and
    importer directory (`_locate`).
    """

    def __init__(self, root: Path | None):
        self.root = root
        self.cache: dict[Path, tuple[Source, ast.Module]] = {}
        self.declarations: dict = {}  # the checker's per-library symbol tables (`checker._library_declarations`)
        self._located: dict[tuple[str, str | None], Path | FileNotFoundError] = {}

    def __call__(self, name: str, importer: Source) -> tuple[Source, ast.Module]:
        path = self._locate(name, importer)
        if path not in self.cache:
            source = Source.from_path(path, display_name(path))
            self.cache[path] = (source, parse(source))
        return self.cache[path]

    def _locate(self, name: str, importer: Source) -> Path:
        """`_search`, remembered per (name, importer directory): 1,000 trial files importing the
        same library made ~10 file-system calls each (~0.27 ms a file) to find the same path.

        What `_search` finds depends on the importer only through its directory, as long as the
        importer is a regular file and not a symbolic link (whose real directory is elsewhere),
        or does not exist at all; any other importer is searched every time, as before.
        """
        key = _directory_key(importer.name)
        if key is _UNKNOWN:
            return self._search(name, importer)
        found = self._located.get((name, key))
        if found is None:
            try:
                found = self._search(name, importer)
            except FileNotFoundError as exc:
                found = exc
            self._located[(name, key)] = found
        if isinstance(found, FileNotFoundError):
            raise FileNotFoundError(*found.args)
        return found

    def _search(self, name: str, importer: Source) -> Path:
        filename = name if name.endswith(".elig") else f"{name}.elig"
        candidates = []
        importer_path = Path(importer.name)
        if importer_path.exists():
            candidates.append(importer_path.resolve().parent / filename)
        if self.root is not None:
            candidates += [self.root / "lib" / filename, self.root / filename]
        for c in candidates:
            if c.is_file():
                return c.resolve()
        raise FileNotFoundError("looked in " + ", ".join(display_name(c) for c in candidates))


_UNKNOWN = object()


def _directory_key(name: str):
    """What an importer named `name` contributes to the search: its directory (as named) when it
    is a regular file, None when it does not exist, `_UNKNOWN` otherwise (a symbolic link,
    something unreadable...)."""
    try:
        mode = os.lstat(name).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (OSError, ValueError):
        return _UNKNOWN
    return os.path.dirname(name) if stat.S_ISREG(mode) else _UNKNOWN


def display_name(path: Path) -> str:
    """A path as authors see it: relative to the working directory when inside it."""
    try:
        return os.path.relpath(path)
    except ValueError:
        return str(path)


def compile_source(source: Source, resolver: ImportResolver) -> tuple[CompiledTrial | None, list[Diagnostic]]:
    """Parse, check and compile one trial file. Raises `CompileError` with every problem."""
    module = parse(source)
    checked, warnings = check(source, module, resolver)
    return (compile_checked(checked) if checked is not None else None), warnings


def load_rules(root: Path | str = DEFAULT_RULES_DIR, cache_dir: Path | str | None = None,
               *, workers: int | None = None, write_behind: bool = False,
               helpers: HelperStart | None = None) -> RuleSet:
    """Compile every trial file under `root/trials`; with `cache_dir`, reuse unchanged ones.

    Files the cache does not have are compiled in this process and, when there are many and a
    second CPU, in `workers` helper processes too (None: decide from the CPUs and the number of
    files; 0: never). The result is the same either way, in the same order.

    What was compiled is stored in the cache once the load is over: before returning, or with
    `write_behind` by a thread (`RuleSet.cache_writer`) that the caller starts once it has put the
    rules to use, so that a server starting with 1,000 new files is ready ~0.5 s sooner. The
    thread is not a daemon, so a process that exits normally waits for it; an entry it has not
    written yet is only a miss next time.

    `helpers` (from `prestart_helpers`) are helper processes started ahead of this load, used
    instead of starting new ones; whatever the load does not use is ended, as is everything
    once it is over, also when it fails.
    """
    cache = CompileCache(Path(cache_dir)) if cache_dir else None
    try:
        with _collector_paused():
            rules, fresh = _load_rules(Path(root).resolve(), cache, workers, helpers)
    finally:
        if helpers is not None:
            helpers.close()
    if cache is not None and fresh:
        if write_behind:
            # daemon=False explicitly: a thread inherits it from its creator, and a server loads
            # rules in a thread pool's daemon threads, whose children would die at exit mid-write.
            rules.cache_writer = threading.Thread(target=cache.put_all, args=(fresh,), name="elig-cache-writer",
                                                  daemon=False)
        else:
            cache.put_all(fresh)
    return rules


@contextlib.contextmanager
def _collector_paused():
    """No cyclic garbage collection while a rule set loads; what it built is then aged, not walked.

    Loading allocates hundreds of thousands of long-lived, acyclic objects (ASTs, IR, code), and
    the collector kept walking them as they accumulated: ~30 % of a cold load of 1,000 files.
    Reference counting still frees what the load drops; cycles wait until it is over. Re-enabled
    as it was, the collector's first run would walk everything the load built (a full
    collection, ~0.2 s for 1,000 files), so the young objects are first moved straight into the
    oldest generation (`freeze` then `unfreeze`, which also returns any frozen objects there:
    a server that keeps its rules frozen freezes again after a load, `tune_gc_for_serving`).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.unfreeze()
        if enabled:
            gc.enable()


def _load_rules(root: Path, cache: CompileCache | None, workers: int | None,
                prestarted: HelperStart | None = None) -> tuple[RuleSet, list]:
    """The rule set, and (source, compiled, warnings) of each file compiled now, for the cache."""
    rules = RuleSet(root)
    resolver = ImportResolver(root)
    sources = [Source.from_path(path, display_name(path)) for path in sorted((root / "trials").glob("*.elig"))]
    outcomes: list = [cache.get(source) if cache is not None else None for source in sources]
    misses = [i for i, hit in enumerate(outcomes) if hit is None]
    helpers = _helper_count(workers, len(misses))
    started = prestarted.take(root, helpers) if prestarted is not None else []
    if helpers:
        _compile_shared(sources, misses, outcomes, resolver, root, helpers, started)
    for i in misses:
        if outcomes[i] is None:
            outcomes[i] = _compile_outcome(sources[i], resolver)
    for source, outcome in zip(sources, outcomes):
        if isinstance(outcome, CompileError):
            rules.diagnostics.extend(outcome.diagnostics)
            rules.failed_files.append(source.name)
            continue
        compiled, warnings = outcome
        rules.diagnostics.extend(warnings)
        if compiled is not None:
            rules.trials[compiled.trial_id] = compiled
    fresh = [(sources[i], *outcomes[i]) for i in misses
             if not isinstance(outcomes[i], CompileError) and outcomes[i][0] is not None]
    return rules, fresh


def _compile_outcome(source: Source, resolver: ImportResolver):
    """(compiled, warnings), or the `CompileError` with the file's diagnostics."""
    try:
        return compile_source(source, resolver)
    except CompileError as exc:
        return exc


# ---- compiling in helper processes -------------------------------------------------------------
#
# A cold load of many files is CPU-bound (parse, check, compile ~3 ms a file), so with a second
# CPU a helper process takes chunks of files from the back of the list while this process takes
# them from the front. The helper is a fresh interpreter started with `subprocess` (fork+exec;
# never a bare fork, which is unsafe in a process with threads, as a server reloading rules is),
# and it imports the engine itself (~0.5 s), so it only pays for many files. It sends back per
# file what a compile-cache entry holds: the checked trial, the compiler's parts, the bytecode
# of shapes this process may not have, and the warnings, or the file's diagnostics. If it fails
# in any way, its unfinished chunks are compiled here: a file is never lost.

PARALLEL_MIN_FILES = 200  # fewer files than this: the helper's start-up costs more than it saves
_CHUNK = 16  # files per request; small, so neither side waits long for the other at the end
_HELPER = "from engine.rules import _helper_main; _helper_main()"
_HELPER_PATIENCE = 60.0  # seconds a helper may still take once this process has run out of work


def _helper_count(workers: int | None, files: int) -> int:
    if workers is not None:
        return max(0, workers) if files else 0
    return min(_cpus() - 1, 1) if files >= PARALLEL_MIN_FILES else 0


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def prestart_helpers(root: Path | str, workers: int | None = None) -> HelperStart:
    """Start the helper processes a first load of `root` will likely want, before it begins.

    A helper spends ~0.4 s importing the engine and what its first file needs (the units'
    registry) before it answers; started by the load, it did so while this process compiled
    alone. Started ahead, it does so while this process still has other things to do (a
    server: building the app, starting up). The guess is cheap: `_helper_count`'s rule
    (a second CPU, at least `PARALLEL_MIN_FILES` files) over a listing of `<root>/trials`,
    nothing read. Files the compile cache has are not known yet, so a server restarted with a
    warm cache starts a helper it does not need; the load ends it at once (a fraction of a
    CPU-second on the other CPU, in parallel with this process).

    Hand the result to that load (`load_rules(..., helpers=...)`), which ends what it does not
    use. A `HelperStart` never handed over ends its processes when it is garbage-collected or
    at interpreter exit; until then an idle helper waits for its input, using no CPU.
    """
    root = Path(root).resolve()
    try:
        files = sum(1 for _ in itertools.islice((root / "trials").glob("*.elig"), PARALLEL_MIN_FILES))
    except OSError:
        files = 0
    processes: list[subprocess.Popen] = []
    try:
        for _ in range(_helper_count(workers, files)):
            processes.append(_spawn_helper())
    except OSError:  # no process to spare now: the load starts its own, or compiles alone
        pass
    return HelperStart(root, processes)


class HelperStart:
    """Helper processes started ahead of one load (`prestart_helpers`); that load ends them.

    Used once, by a load of the same root from the same working directory (a helper names
    imported libraries relative to its own); any other load ignores them, and `close` ends them.
    """

    def __init__(self, root: Path, processes: list[subprocess.Popen]):
        self.root = root
        self.cwd = os.getcwd()
        self.processes = tuple(processes)
        self._taken = False
        self._finalizer = weakref.finalize(self, _end_helpers, self.processes)

    def take(self, root: Path, count: int) -> list[subprocess.Popen]:
        """Up to `count` processes for a load of `root`, once; those not taken are ended now, so
        that they do not compete with the load for a CPU."""
        usable = not self._taken and root == self.root and os.getcwd() == self.cwd
        self._taken = True
        taken = list(self.processes[:count]) if usable else []
        _end_helpers(self.processes[len(taken):])
        return taken

    def close(self) -> None:
        """End every process (idempotent); a load calls it once over, when those it used are done."""
        self._taken = True
        self._finalizer()


def _end_helpers(processes) -> None:
    """End helper processes, whatever state they are in, and reap them.

    Killed rather than asked to stop: a helper not handed any work has nothing to finish and
    might still be importing the engine, which the caller (a starting load) would wait for.
    One that was used has exited already (its feeder closed its input and waited for it).
    """
    for process in processes:
        for pipe in (process.stdin, process.stdout):
            try:
                if pipe is not None:
                    pipe.close()
            except OSError:  # a buffered write to a helper that died: nothing to flush it to
                pass
        process.kill()  # nothing if it has exited
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _compile_shared(sources, misses, outcomes, resolver, root: Path, helpers: int,
                    started: list[subprocess.Popen] = ()) -> None:
    """Fill `outcomes[i]` for the `misses`, here and in `helpers` processes; any left are None.

    The first helpers are the `started` processes (`prestart_helpers`) when given; the others
    are started now."""
    work = collections.deque(misses[i:i + _CHUNK] for i in range(0, len(misses), _CHUNK))
    lock = threading.Lock()

    def take(from_back: bool):
        with lock:
            return (work.pop() if from_back else work.popleft()) if work else None

    running: list[subprocess.Popen] = []
    libraries = {(s.name, s.text): s for s, _module in resolver.cache.values()}  # see `_shared_libraries`
    started = list(started)[:helpers]
    feeders = [threading.Thread(target=_feed_helper,
                                args=(sources, outcomes, take, work, lock, root, running, libraries,
                                      started[k] if k < len(started) else None),
                                daemon=True) for k in range(helpers)]
    with _switching_often():
        for feeder in feeders:
            feeder.start()
        try:
            while (chunk := take(from_back=False)) is not None:
                for i in chunk:
                    outcomes[i] = _compile_outcome(sources[i], resolver)
        finally:
            with lock:
                if sys.exc_info()[0] is not None:
                    work.clear()  # this process failed: let the helpers stop after their current chunk
            for feeder in feeders:
                feeder.join(timeout=_HELPER_PATIENCE)
            for helper in list(running):  # stuck: its unanswered chunk goes back to the work, done below
                helper.kill()
            for feeder in feeders:
                feeder.join()


_SWITCH_INTERVAL = 0.001  # seconds, while feeder threads run (`_switching_often`); Python's default is 0.005


class _Switching:
    depth = 0
    previous = 0.005
    lock = threading.Lock()


@contextlib.contextmanager
def _switching_often():
    """A shorter thread switch interval while feeder threads run beside this process's compiling.

    A feeder needs the GIL only for moments, to read an answer and send the next chunk, while
    the loading thread holds it to compile. With the default 5 ms interval, in about one cold
    load of 1,000 files in four, a feeder went 0.1 to 1.1 s without reading an answer that lay
    whole in the pipe (both sides logged it), the helper sat idle meanwhile, and the load took
    ~0.5 s longer. Why the default lets the feeder wait that long was not pinned down; with
    1 ms, none of 48 loads stalled, and the others were no slower. The interval is
    process-wide, so overlapping loads share it: the first sets it, the last one out restores it.
    """
    with _Switching.lock:
        if _Switching.depth == 0:
            _Switching.previous = sys.getswitchinterval()
            sys.setswitchinterval(min(_Switching.previous, _SWITCH_INTERVAL))
        _Switching.depth += 1
    try:
        yield
    finally:
        with _Switching.lock:
            _Switching.depth -= 1
            if _Switching.depth == 0:
                sys.setswitchinterval(_Switching.previous)


_IN_FLIGHT = 2  # chunks sent ahead, so the helper never waits for this process to read its answer


def _feed_helper(sources, outcomes, take, work, lock, root: Path, running: list, libraries: dict,
                 helper: subprocess.Popen | None = None) -> None:
    """Run one helper process (`helper`, or one started now) until the work runs out or it fails.

    Two chunks are in flight: while this thread waits for the GIL (held by this process's own
    compiling, up to a switch interval) and reads an answer, the helper already works on the
    next chunk. With one chunk at a time the helper sat idle about a third of the time.
    """
    in_flight: collections.deque = collections.deque()
    try:
        with (helper if helper is not None else _spawn_helper()) as helper:
            running.append(helper)
            try:
                _send(helper.stdin, str(root))
                while True:
                    while len(in_flight) < _IN_FLIGHT and (chunk := take(from_back=True)) is not None:
                        in_flight.append(chunk)
                        _send(helper.stdin, [sources[i] for i in chunk])
                    if not in_flight:
                        break
                    replies = _receive(helper.stdout)
                    if len(replies) != len(in_flight[0]):
                        raise EOFError("helper answered for a different number of files")
                    for i, reply in zip(in_flight[0], replies):
                        outcomes[i] = _from_reply(reply, libraries)
                    in_flight.popleft()
            finally:
                running.remove(helper)
                helper.stdin.close()
                try:
                    helper.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    helper.kill()
    except Exception:  # noqa: BLE001 — the helper is an optimisation; this process compiles what is left
        for chunk in in_flight:
            for i in chunk:
                outcomes[i] = None
            with lock:
                work.append(chunk)


def _spawn_helper() -> subprocess.Popen:
    """A helper process, told nothing yet: its first message names the rules root."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [str(_ENGINE_HOME), *filter(None, [os.environ.get("PYTHONPATH")])]))
    # numpy, which pint imports for the units, starts OpenBLAS threads that spin ~0.1 s of CPU
    # each once started, taken from the compiling on a 2-CPU machine; a helper does no algebra.
    env.setdefault("OPENBLAS_NUM_THREADS", "1")
    helper = subprocess.Popen([sys.executable, "-c", _HELPER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, env=env, cwd=os.getcwd())
    _widen(helper.stdout)
    return helper


def _from_reply(reply, libraries: dict):
    kind, *rest = reply
    if kind == "error":
        return CompileError(rest[0])
    checked, parts, codes, warnings = rest
    for shape, code in codes:
        remember_shape(shape, code)
    if checked is None:
        return None, warnings
    return compile_checked(_shared_libraries(checked, libraries), parts), warnings


def _shared_libraries(checked, libraries: dict):
    """The trial with its imported libraries' `Source`s replaced by one shared copy each.

    A helper's reply carries its own copy of each library's text; kept, 1,000 trials would hold
    1,000 copies. `libraries` maps (name, text) to the copy every trial of this load shares.
    """
    own = tuple(libraries.setdefault((s.name, s.text), s) for s in checked.sources[1:])
    return dataclasses.replace(checked, sources=(checked.sources[0], *own))


def _helper_main() -> None:
    """The helper process: read chunks of sources from stdin, answer each with its outcomes."""
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # the pipe carries only the answers
    gc.disable()  # a short-lived process that only loads (see `_collector_paused`)
    resolver = ImportResolver(Path(_receive(stdin)))
    chunks = _drained(stdin)
    sent: set[str] = set()
    while True:
        chunk = chunks.get()
        if chunk is None:
            return
        replies = []
        for source in chunk:
            outcome = _compile_outcome(source, resolver)
            if isinstance(outcome, CompileError):
                replies.append(("error", outcome.diagnostics))
                continue
            compiled, warnings = outcome
            parts = compiled.parts if compiled is not None else ()
            new = [s for s in dict.fromkeys(p[1] for p in parts) if s not in sent]
            sent.update(new)
            replies.append(("ok", compiled.checked if compiled is not None else None, parts,
                            [(s, shape_bytecode(s)) for s in new], warnings))
        _send(stdout, replies)


def _widen(pipe) -> None:
    """Give a pipe room for a whole answer (~0.4 MB for 16 files) where the OS allows (Linux).

    With the default 64 KiB the helper blocked mid-answer until this process read on, and the
    thread reading here gets the GIL only every switch interval (5 ms) while this process
    compiles: the helper sat idle, and two processes did the work of 1.17.
    """
    try:
        import fcntl

        fcntl.fcntl(pipe.fileno(), getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError, ValueError):
        pass


def _drained(stdin) -> "queue.Queue":
    """Chunks read from stdin by a thread as soon as they come, then None at the end.

    The parent sends chunks ahead while the answers, bigger than a pipe's buffer, are being
    written; a helper that read stdin only between chunks could block on stdout while the
    parent blocks on its stdin.
    """
    chunks: queue.Queue = queue.Queue()

    def read() -> None:
        try:
            while True:
                chunks.put(_receive(stdin))
        except Exception:  # noqa: BLE001 — end of input or garbage: the helper stops, the parent goes on
            chunks.put(None)

    threading.Thread(target=read, daemon=True).start()
    return chunks


def _send(stream, value) -> None:
    data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(len(data).to_bytes(8, "little") + data)
    stream.flush()


def _receive(stream):
    head = stream.read(8)
    if len(head) < 8:
        raise EOFError("the other side closed the pipe")
    size = int.from_bytes(head, "little")
    data = stream.read(size)
    if len(data) < size:
        raise EOFError("a truncated message")
    return pickle.loads(data)


_ENGINE_HOME = Path(__file__).resolve().parent.parent  # holds the `engine` and `grammar` packages


def tune_gc_for_serving() -> None:
    """Move what is loaded (compiled rules, modules) out of the collector's reach; collect less often.

    A rule set is tens of thousands of long-lived objects, and a screening allocates thousands
    of short-lived ones (a parsed bundle, the patient, explanations), so with the default
    thresholds full collections keep walking the rules in the middle of requests: ~15 % of
    throughput and most of the p99 (bench/README.md). Call it once the rules are loaded;
    objects a request creates are still collected. Nothing is collected first: a collection found
    nothing to free after a load (rule sets hold no reference cycles, a test says so) and took
    0.2 s with 1,000 trials.
    """
    gc.freeze()
    gc.set_threshold(10_000, 20, 20)


def check_paths(paths, rules_root: Path) -> tuple[list[Diagnostic], list[str]]:
    """Check criteria files (folders are searched for *.elig); every diagnostic, and the files read.

    Trial files are checked whole; library files (no criteria) are checked on their own.
    """
    resolver = ImportResolver(Path(rules_root).resolve())
    diagnostics: list[Diagnostic] = []
    files: list[str] = []
    for path in _elig_files(paths):
        source = Source.from_path(path, display_name(path))
        files.append(source.name)
        diagnostics.extend(check_source(source, resolver))
    unique = {(d.source.name, d.span.start, d.code, d.message): d for d in diagnostics}
    return sorted(unique.values(), key=Diagnostic.sort_key), files


def check_source(source: Source, resolver: ImportResolver) -> list[Diagnostic]:
    """Every diagnostic of one criteria text: a trial file checked whole and linted (suspicious but
    legal rules, `engine/lint.py`), a library on its own. `elig check` and the API both use this."""
    from .checker import library_symbols
    from .lint import lint

    try:
        module = parse(source)
        if module.of_type(ast.Criterion) or module.of_type(ast.TrialMeta):
            checked, warnings = check(source, module, resolver)
            return list(warnings) + (lint(checked) if checked is not None else [])
        library_symbols(source, module, resolver)
        return []
    except CompileError as exc:
        return list(exc.diagnostics)


def _elig_files(paths) -> list[Path]:
    found: list[Path] = []
    for p in map(Path, paths):
        found.extend(sorted(p.rglob("*.elig")) if p.is_dir() else [p])
    return found
