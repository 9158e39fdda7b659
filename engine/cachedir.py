"""Where the engine keeps what it can always rebuild: compile-cache entries, parse tables.

`$XDG_CACHE_HOME/elig` (or `~/.cache/elig`). What is kept there is pickled, so it is read only
from directories that this user owns and nobody else can write: a file planted by another
user would otherwise run code as this one.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


def default_cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "elig"


def private_cache_dir(name: str, base: Path | None = None) -> Path | None:
    """`<base>/<name>` (base: `default_cache_dir()`) as `private_dir` makes it."""
    return private_dir((base or default_cache_dir()) / name)


def private_dir(directory: Path) -> Path | None:
    """`directory`, created 0700 if missing; None if it cannot be made or is not private
    (owned by another user, or writable by its group or by anyone)."""
    try:
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        info = directory.stat()
    except (OSError, RuntimeError):  # RuntimeError: no home directory to expand
        return None
    if info.st_uid != os.getuid() or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        return None
    return directory
