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
pickles, so a directory that another user owns or that others can write is not used at all
(`cachedir.private_dir`; one that is missing is created 0700), with a warning on the
`elig.cache` logger: an entry planted there would run code as this user.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import pickle
import sys
import threading
from pathlib import Path

from .cachedir import private_dir
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

_log = logging.getLogger("elig.cache")


class CompileCache:
    """A directory of entries, one per trial file version."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._libraries: dict[tuple[str, str], tuple[Source, str] | None] = {}
        self._private: bool | None = None

    @property
    def usable(self) -> bool:
        """Whether the directory is private, which is decided (and a missing one created) once."""
        if self._private is None:
            self._private = private_dir(self.directory) is not None
            if not self._private:
                _log.warning("compile cache %s not used: it cannot be made, or is not private to this user",
                             self.directory)
        return self._private

    def _entry_path(self, source: Source) -> Path:
        key = _sha("\0".join((engine_fingerprint(), source.name, source.text)))
        return self.directory / f"{key}.pickle"

    def get(self, source: Source) -> tuple[CompiledTrial, list[Diagnostic]] | None:
        """The cached trial and its warnings, or None when absent or out of date."""
        if not self.usable:
            return None
        try:
            with open(self._entry_path(source), "rb") as f:
                entry = _EntryUnpickler(f, self).load()
            if any(self._library(path, name) is None or self._library(path, name)[1] != digest
                   for path, name, digest in entry["libraries"]):
                return None
            for shape, code in entry["codes"]:
                remember_shape(shape, code)  # its bytecode, unless this process compiled it already
            return compile_checked(entry["checked"], entry["parts"]), entry["warnings"]
        except Exception:  # noqa: BLE001 — a cache must never stop rules from loading
            return None

    def put(self, source: Source, compiled: CompiledTrial, warnings: list[Diagnostic]) -> None:
        """Store an entry; a cache that cannot be written is simply not used."""
        if not self.usable:
            return
        libraries = {id(s): (os.path.abspath(s.name), s.name, _sha(s.text)) for s in compiled.checked.sources[1:]}
        shapes = dict.fromkeys(source for _name, source, _consts in compiled.parts)
        entry = {"libraries": list(libraries.values()), "checked": compiled.checked, "parts": compiled.parts,
                 "codes": [(s, shape_bytecode(s)) for s in shapes], "warnings": warnings}
        try:
            target = self._entry_path(source)
            partial = target.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
            with open(partial, "wb") as f:
                _EntryPickler(f, libraries).dump(entry)
            os.replace(partial, target)  # atomic: a reader never sees half an entry
        except OSError:
            pass

    def put_all(self, entries) -> None:
        """`put` each (source, compiled, warnings); a load calls it once it is over."""
        for source, compiled, warnings in entries:
            self.put(source, compiled, warnings)

    def _library(self, path: str, name: str) -> tuple[Source, str] | None:
        """The library as it is on disk now, one `Source` shared by every entry, and its hash."""
        key = (path, name)
        if key not in self._libraries:
            try:
                text = Path(path).read_text(encoding="utf-8")
                self._libraries[key] = (Source(name, text), _sha(text))
            except OSError:
                self._libraries[key] = None
        return self._libraries[key]


# Imported libraries are pickled by reference (path, name, hash), not by text: a library is the
# same in every entry that imports it, and a copy per trial made entries a third larger and
# kept 1,000 copies of the library's text in memory after a warm start of 1,000 trials.

class _EntryPickler(pickle.Pickler):
    def __init__(self, file, libraries: dict[int, tuple[str, str, str]]):
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.libraries = libraries

    def persistent_id(self, obj):
        return ("library", *self.libraries[id(obj)]) if type(obj) is Source and id(obj) in self.libraries else None


class _EntryUnpickler(pickle.Unpickler):
    def __init__(self, file, cache: CompileCache):
        super().__init__(file)
        self.cache = cache

    def persistent_load(self, pid):
        kind, path, name, digest = pid
        found = self.cache._library(path, name)
        if kind != "library" or found is None or found[1] != digest:
            raise pickle.UnpicklingError("an imported library changed since the entry was written")
        return found[0]
