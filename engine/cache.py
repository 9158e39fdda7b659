"""Compile cache: checked trials and their bytecode, reused when nothing that made them changed.

Stage: assembly, beside `rules.py`. Parsing, checking and compiling cost ~5 ms per criteria
file, so a service with 1,000 trial files would take seconds to start; a cache entry loads in a
fraction of a millisecond. An entry is used only if *everything* that determined it is
unchanged, since a stale rule would be a wrong screening:

- the key hashes the engine's own code and grammar (every `engine/*.py` and `grammar/*.lark`),
  the Python version, the file's display name and its text;
- the entry lists every library the trial imported with the hash of its text, and each is
  re-read and compared before the entry is trusted.

An entry holds the checked trial and the parts the compiler built from it (their constants are
nodes of that same trial, pickled together), and the bytecode of each part's source, which
the compiler compiles once per shape per process (`compiler.shape_code`).

Anything unreadable, corrupt or from another engine is a miss, never an error. Entries are
pickles, so the directory must be writable only by the service's own user (it is created 0700).
"""

from __future__ import annotations

import functools
import hashlib
import os
import pickle
import sys
from pathlib import Path

from .compiler import CompiledTrial, compile_checked, remember_shape, shape_bytecode
from .diagnostics import Diagnostic
from .source import Source

_PACKAGE = Path(__file__).resolve().parent
_GRAMMAR = _PACKAGE.parent / "grammar"


@functools.cache
def engine_fingerprint() -> str:
    """Hash of the code that turns criteria into evaluators: any edit invalidates every entry."""
    digest = hashlib.sha256(sys.version.encode())
    for path in sorted([*_PACKAGE.glob("*.py"), *_GRAMMAR.glob("*.lark")]):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class CompileCache:
    """A directory of entries, one per trial file version."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._library_hashes: dict[str, str | None] = {}

    def _entry_path(self, source: Source) -> Path:
        key = _sha("\0".join((engine_fingerprint(), source.name, source.text)))
        return self.directory / f"{key}.pickle"

    def get(self, source: Source) -> tuple[CompiledTrial, list[Diagnostic]] | None:
        """The cached trial and its warnings, or None when absent or out of date."""
        try:
            entry = pickle.loads(self._entry_path(source).read_bytes())
            if any(self._library_hash(path) != digest for path, digest in entry["libraries"]):
                return None
            for shape, code in entry["codes"]:
                remember_shape(shape, code)  # its bytecode, unless this process compiled it already
            return compile_checked(entry["checked"], entry["parts"]), entry["warnings"]
        except Exception:  # noqa: BLE001 — a cache must never stop rules from loading
            return None

    def put(self, source: Source, compiled: CompiledTrial, warnings: list[Diagnostic]) -> None:
        """Store an entry; a cache that cannot be written is simply not used."""
        libraries = [(os.path.abspath(s.name), _sha(s.text)) for s in compiled.checked.sources[1:]]
        sources = dict.fromkeys(source for _name, source, _consts in compiled.parts)
        entry = {"libraries": libraries, "checked": compiled.checked, "parts": compiled.parts,
                 "codes": [(s, shape_bytecode(s)) for s in sources], "warnings": warnings}
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            target = self._entry_path(source)
            partial = target.with_suffix(f".{os.getpid()}.tmp")
            partial.write_bytes(pickle.dumps(entry, protocol=pickle.HIGHEST_PROTOCOL))
            os.replace(partial, target)  # atomic: a reader never sees half an entry
        except OSError:
            pass

    def _library_hash(self, path: str) -> str | None:
        if path not in self._library_hashes:
            try:
                self._library_hashes[path] = _sha(Path(path).read_text(encoding="utf-8"))
            except OSError:
                self._library_hashes[path] = None
        return self._library_hashes[path]
