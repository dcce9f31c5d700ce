"""`HeldOutTask`: a merge3 task's documents outside its anchors, a seeded sample of them, scored with the
base task's plain metrics. The search never sees these items, so a merge chosen for its anchor score
is judged here without the winner's curse (mergekit_ext/select/never_worse.py: the duel with your config)."""

from __future__ import annotations

import numpy as np

from .task import Merge3Task


class HeldOutTask(Merge3Task):
    """Built from a merge3 task's config plus `metadata.merge3_held_out: {items: N, seed: S}`."""

    def __init__(self, data_dir=None, cache_dir=None, download_mode=None, config: dict | None = None):
        config = dict(config or {})
        spec = (config.get("metadata") or {}).get("merge3_held_out") or {}
        self._held_out = int(spec.get("items", 200)), int(spec.get("seed", 0))
        super().__init__(data_dir=data_dir, cache_dir=cache_dir, download_mode=download_mode, config=config)

    def _estimators(self) -> list[str]:
        return []  # the plain metric per item: nothing is estimated

    def _anchor_docs(self, docs):
        chosen = held_out_ids(len(docs), self._anchor_ids(docs), *self._held_out)
        return docs.select(chosen) if hasattr(docs, "select") else [docs[i] for i in chosen]


def held_out_ids(n_docs: int, anchor_ids, items: int, seed: int) -> list[int]:
    """The positions of the held-out documents: `items` drawn by `seed` among those outside the anchors
    (all of them when there are fewer), in document order."""
    anchors = set(anchor_ids)
    outside = [i for i in range(n_docs) if i not in anchors]
    if not outside:
        return []
    return sorted(np.random.default_rng(seed).choice(outside, size=min(items, len(outside)), replace=False).tolist())
