"""Files: written so that an interruption never leaves a half-written one in place, and fingerprinted."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def cache_root() -> Path:
    """merge3's cache folder: $MERGE3_CACHE, or ~/.cache/merge3 (the toy world is built under it)."""
    root = os.environ.get("MERGE3_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "merge3"


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a sibling temporary file, then rename it over `path` (atomic on POSIX)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def sha256_of(path: Path) -> str:
    """The file's sha256, hex (a bundle records its .npz sibling's, to notice a changed file)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
