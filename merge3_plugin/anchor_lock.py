"""The lock file of a content-keyed bundle: which lm-eval document each anchor is, pinned on first use.

An imported bundle (tinybenchmarks.py) names its anchors by content (content_keys.py), not by
lm-eval doc_id. The first time a task's documents are at hand (`merge3 tasks build`, or the first
lm-eval run of a merge3 task on that bundle), each anchor is found among them by its key, and its
doc_id and doc_hash are written to `<bundle stem>.lock.json` beside the bundle, one entry per base
task (its documents). Later runs check the entry instead of matching again, and refuse when:

- an anchor matches no document, or several (nothing is guessed, nothing is taken by position);
- a locked document's hash changed (another dataset version: delete that entry to match again);
- the entry was written for other parameters (another source file) or other anchors.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .bundle import Bundle
from .content_keys import MissingField, match
from .errors import UserError

FORMAT = "merge3-anchor-lock"
VERSION = 1


def lock_path(bundle_path: Path) -> Path:
    return bundle_path.with_name(bundle_path.stem + ".lock.json")


@dataclass
class Locked:
    """Per anchor (the bundle's anchor order): its lm-eval doc_id and doc_hash in the base task."""
    doc_ids: list[int]
    doc_hashes: list[str]


def _keys(bundle: Bundle, bundle_path: Path) -> tuple[str, list[str]]:
    anchors = bundle.require_anchors(bundle_path)
    if not anchors.content_keys:
        raise UserError(f"{bundle_path}: its items are in the {bundle.item_order} order and its anchors carry no "
                        "content keys; re-import it with the tinyBenchmarks datasets (--datasets)")
    return anchors.content_keys["family"], list(anchors.content_keys["keys"])


def _tiebreak(bundle: Bundle) -> list[str | None] | None:
    keys = bundle.anchors.content_keys if bundle.anchors is not None else None
    return None if not keys or keys.get("tiebreak") is None else list(keys["tiebreak"])


def read(bundle_path: Path) -> dict:
    path = lock_path(bundle_path)
    if not path.exists():
        return {"format": FORMAT, "version": VERSION, "bundle": bundle_path.name, "tasks": {}}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise UserError(f"{path}: not a readable lock file ({err}); delete it to match the anchors again") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or not isinstance(data.get("tasks"), dict):
        raise UserError(f"{path}: not a merge3 anchor lock (field 'format' should be {FORMAT!r})")
    if data.get("version") != VERSION:
        raise UserError(f"{path}: field 'version' is {data.get('version')!r}; this merge3 reads version {VERSION}")
    return data


def resolve(bundle: Bundle, bundle_path: Path, base: str, docs: Sequence[Mapping],
            hash_of: Callable[[Mapping], str]) -> Locked:
    """The anchors' documents among `docs` (the base task's evaluation documents, in lm-eval's doc_id
    order): checked against the lock's entry for `base`, or matched by content and locked now."""
    family, keys = _keys(bundle, bundle_path)
    lock = read(bundle_path)
    entry = lock["tasks"].get(base)
    if entry is not None:
        return _check(bundle, bundle_path, base, entry, keys, docs, hash_of)
    try:
        found = match(family, keys, docs, _tiebreak(bundle))
    except MissingField as err:
        raise UserError(f"{base}: its documents have no field {err.field!r}, which the {family} content key needs "
                        f"({bundle_path.name}'s anchors are found by content only, never by position): this dataset "
                        "keeps no id of the original items") from None
    if found.ambiguous:
        key, where = next(iter(found.ambiguous.items()))
        raise UserError(f"{base}: {len(found.ambiguous)} anchor(s) of {bundle_path} match several documents (or "
                        f"share one), e.g. {key!r} matches doc_ids {where[:5]}; refusing to guess")
    if found.unmatched:
        shown = ", ".join(repr(keys[k]) for k in found.unmatched[:3])
        raise UserError(f"{base}: {len(found.unmatched)} of the {len(keys)} anchors of {bundle_path} match no document "
                        f"of the task ({len(docs)} documents), e.g. {shown}; another dataset, split or version? "
                        "Refusing to estimate without them")
    locked = Locked([int(i) for i in found.index], [hash_of(docs[i]) for i in found.index])
    _add_entry(bundle_path, base, {
        "source_sha256": bundle.source.get("sha256"), "documents": len(docs),
        "written": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "anchors": [{"position": int(p), "key": k, "doc_id": d, "doc_hash": h}
                    for p, k, d, h in zip(bundle.anchors.doc_ids, keys, locked.doc_ids, locked.doc_hashes)]})
    return locked


def _add_entry(bundle_path: Path, base: str, entry: dict) -> None:
    """Add `base`'s entry to the lock file, atomically: re-read just before writing (another process, e.g.
    another lm-eval rank or a Ray actor, may have locked another base task meanwhile; an entry for `base`
    already there is kept), written to a temporary file of a name of its own, then renamed over the lock."""
    path = lock_path(bundle_path)
    lock = read(bundle_path)
    lock["tasks"].setdefault(base, entry)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    except OSError as err:
        raise UserError(f"{path}: cannot write the anchor lock beside the bundle ({err.strerror})") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(lock, indent=1) + "\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check(bundle: Bundle, bundle_path: Path, base: str, entry: dict, keys: list[str], docs: Sequence[Mapping],
           hash_of: Callable[[Mapping], str]) -> Locked:
    where = f"{lock_path(bundle_path)}: task {base!r}"
    locked = _entry(bundle, bundle_path, base, entry, keys)
    for k, (doc_id, doc_hash) in enumerate(zip(locked.doc_ids, locked.doc_hashes)):
        if not 0 <= doc_id < len(docs) or hash_of(docs[doc_id]) != doc_hash:
            raise UserError(f"{where}: anchor {k} ({keys[k]!r}) was document {doc_id}, which is gone or changed since "
                            "the lock was written (another dataset version or order). Refusing to estimate; if the "
                            f"change is intended, delete the {base!r} entry of the lock to match again")
    return locked


def _entry(bundle: Bundle, bundle_path: Path, base: str, entry: dict, keys: list[str]) -> Locked:
    where = f"{lock_path(bundle_path)}: task {base!r}"
    if entry.get("source_sha256") != bundle.source.get("sha256"):
        raise UserError(f"{where}: written for parameters from another file (sha256 {entry.get('source_sha256')}); "
                        "delete the lock to match the anchors of this bundle")
    rows = entry.get("anchors")
    try:
        same = [(r["position"], r["key"]) for r in rows] == list(zip(bundle.anchors.doc_ids, keys))
        locked = Locked([int(r["doc_id"]) for r in rows], [str(r["doc_hash"]) for r in rows])
    except (TypeError, KeyError, ValueError):
        raise UserError(f"{where}: field 'anchors' must be a list of {{position, key, doc_id, doc_hash}}") from None
    if not same:
        raise UserError(f"{where}: its anchors are not the bundle's; delete the lock to match them again")
    return locked


def locked(bundle: Bundle, bundle_path: Path, base: str) -> Locked:
    """The lock's entry for `base`, without documents to check it against (reading lm-eval logs, whose
    doc_hashes are checked instead); refuses when the anchors were never matched."""
    _, keys = _keys(bundle, bundle_path)
    entry = read(bundle_path)["tasks"].get(base)
    if entry is None:
        raise UserError(f"{bundle_path}: its anchors have not been matched to {base!r}'s documents yet (no entry in "
                        f"{lock_path(bundle_path)}); run `merge3 tasks build --bundle {bundle_path} --base-task {base}` "
                        "or the merge3 task once, with the dataset available")
    return _entry(bundle, bundle_path, base, entry, keys)
