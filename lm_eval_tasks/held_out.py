"""`HeldOutTask`: a merge3 task's documents outside its anchors, a seeded sample of them, scored with the
base task's plain metrics. The search never sees these items, so a merge chosen for its anchor score
is judged here without the winner's curse (mergekit_ext/never_worse.py: the duel with your config)."""

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
        anchors = set(self._anchor_ids(docs))
        outside = [i for i in range(len(docs)) if i not in anchors]
        items, seed = self._held_out
        chosen = sorted(np.random.default_rng(seed).choice(outside, size=min(items, len(outside)),
                                                           replace=False).tolist()) if outside else []
        return docs.select(chosen) if hasattr(docs, "select") else [docs[i] for i in chosen]
