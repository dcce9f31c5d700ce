"""Files: written so that an interruption never leaves a half-written one in place, and fingerprinted."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .crashpoints import crash_point
from .errors import UserError


def cache_root() -> Path:
    """merge3's cache folder: $MERGE3_CACHE, or ~/.cache/merge3 (the toy world is built under it)."""
    root = os.environ.get("MERGE3_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "merge3"


def check_writable(path: Path, param: str = "out") -> None:
    """A folder to be written (it may not exist yet): its nearest existing ancestor is a folder we may
    create files in; else a UserError naming `param` (a command line shows it as --<param>)."""
    probe = path
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise UserError(f"{probe} is a file, not a folder", param=param, value=path)
    if not os.access(probe, os.W_OK | os.X_OK):
        raise UserError(f"cannot write there ({probe} is not writable)", param=param, value=path)


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a sibling temporary file, then rename it over `path` (atomic on POSIX)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())  # the new version is on disk before it replaces the old one
    crash_point(f"write:{path.name}")
    tmp.replace(path)


def sha256_of(path: Path) -> str:
    """The file's sha256, hex (a bundle records its .npz sibling's, to notice a changed file)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
