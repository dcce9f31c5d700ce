"""Files: written so that an interruption never leaves a half-written one in place, and fingerprinted."""

from __future__ import annotations

import hashlib
from pathlib import Path


def write_atomic(path: Path, text: str) -> None:
    """Write `text` to a sibling temporary file, then rename it over `path` (atomic on POSIX)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def sha256_of(path: Path) -> str:
    """The file's sha256, hex (a bundle records its .npz sibling's, to notice a changed file)."""
    return hashlib.sha256(path.read_bytes()).hexdigest()
