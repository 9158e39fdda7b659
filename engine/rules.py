"""Rule sets: a directory of criteria files loaded, checked and compiled once.

Stage: assembly. Trial files live in `<root>/trials/*.elig` and import libraries by name
(`import "hepatology"` finds `<root>/lib/hepatology.elig`) or by relative path. Each library is
parsed once per load. A file with errors is reported and left out; the others still load, so a
broken edit never takes a whole rule set (or a running server) down.
"""

from __future__ import annotations

import gc
import os
from dataclasses import dataclass, field
from pathlib import Path

from . import ast
from .checker import check
from .cache import CompileCache
from .compiler import CompiledTrial, compile_checked
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

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


class ImportResolver:
    """Finds and parses imported libraries, once each, relative to the importer or `<root>/lib`."""

    def __init__(self, root: Path | None):
        self.root = root
        self.cache: dict[Path, tuple[Source, ast.Module]] = {}
        self.declarations: dict = {}  # the checker's per-library symbol tables (`checker._library_declarations`)

    def __call__(self, name: str, importer: Source) -> tuple[Source, ast.Module]:
        path = self._locate(name, importer)
        if path not in self.cache:
            source = Source.from_path(path, display_name(path))
            self.cache[path] = (source, parse(source))
        return self.cache[path]

    def _locate(self, name: str, importer: Source) -> Path:
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


def load_rules(root: Path | str = DEFAULT_RULES_DIR, cache_dir: Path | str | None = None) -> RuleSet:
    """Compile every trial file under `root/trials`; with `cache_dir`, reuse unchanged ones."""
    root = Path(root).resolve()
    rules = RuleSet(root)
    resolver = ImportResolver(root)
    cache = CompileCache(Path(cache_dir)) if cache_dir else None
    for path in sorted((root / "trials").glob("*.elig")):
        source = Source.from_path(path, display_name(path))
        try:
            compiled, warnings = _compile_cached(source, resolver, cache)
        except CompileError as exc:
            rules.diagnostics.extend(exc.diagnostics)
            rules.failed_files.append(source.name)
            continue
        rules.diagnostics.extend(warnings)
        if compiled is not None:
            rules.trials[compiled.trial_id] = compiled
    return rules


def _compile_cached(source: Source, resolver: ImportResolver, cache: "CompileCache | None"):
    hit = cache.get(source) if cache is not None else None
    if hit is not None:
        return hit
    compiled, warnings = compile_source(source, resolver)
    if cache is not None and compiled is not None:
        cache.put(source, compiled, warnings)
    return compiled, warnings


def tune_gc_for_serving() -> None:
    """Move what is loaded (compiled rules, modules) out of the collector's reach; collect less often.

    A rule set is tens of thousands of long-lived objects, and a screening allocates thousands
    of short-lived ones (a parsed bundle, the patient, explanations), so with the default
    thresholds full collections keep walking the rules in the middle of requests: ~15 % of
    throughput and most of the p99 (bench/README.md). Call it once the rules are loaded;
    objects a request creates are still collected.
    """
    gc.collect()
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
