"""Sparsification's per-input work, done once per run instead of once per candidate (issue #24).

TIES, breadcrumbs and DELLA rank every task vector (an expert minus the base) by magnitude, and
mergekit does that sort again for every candidate: on a CPU it is most of a merge (SmolLM2's
embedding, 49152x576: argsort 1.44 s of 1.82 s). A task vector does not change between candidates,
so neither does its order; only the cut at the candidate's density does. `SparsifyCache` keeps each
order as ranks, sorted by the very call mergekit makes and stored in the smallest integer type that
holds them; a candidate's mask is then one comparison, the same elements as mergekit's, bit for bit
(tests/evolve/test_sparsify_cache.py checks every rule against mergekit's own function).

Random sparsification (DARE's Bernoulli draws) is new for every candidate and stays mergekit's; so does
anything the cache has no room for (one logged line).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from dataclasses import dataclass

import torch
from mergekit.sparsify import RescaleNorm, SparsificationMethod, rescaled_masked_tensor
from mergekit.sparsify import sparsify as mergekit_sparsify

_log = logging.getLogger(__name__)
GIB = 1024 ** 3
PROBES = 64  # elements compared on every reuse: a tripwire, should a task vector ever not be the cached one


def rank_dtype(n: int) -> torch.dtype:
    """The smallest signed integer type whose values hold 0..n (a cut can equal n)."""
    for dtype in (torch.int16, torch.int32):
        if n <= torch.iinfo(dtype).max:
            return dtype
    return torch.int64


def ranks_of(order: torch.Tensor) -> torch.Tensor:
    """Each element's place in `order` (a permutation of 0..n-1), in the smallest type that holds it."""
    dtype = rank_dtype(order.numel())
    ranks = torch.empty(order.numel(), dtype=dtype, device=order.device)
    ranks[order] = torch.arange(order.numel(), dtype=dtype, device=order.device)
    return ranks


def _sortable(tensor: torch.Tensor) -> torch.Tensor:
    """What mergekit's `magnitude` and `magnitude_outliers` sort: |tensor| flat, in float32 on a CPU."""
    w = tensor.abs().reshape(-1)
    return w.float() if w.device.type == "cpu" else w


class _Rule:
    """One of mergekit's magnitude-based sparsifications, split into the part done once per task vector
    (`prepare`) and the part each candidate pays (`cut`). `cached` says whether a call needs the cache:
    the trivial densities mergekit answers without sorting are passed straight to it."""

    def cached(self, tensor: torch.Tensor, density: float, gamma: float, epsilon: float) -> bool:
        return 0 < density < 1 and tensor.numel() > 0

    def prepared_bytes(self, tensor: torch.Tensor) -> int:
        return tensor.numel() * torch.empty((), dtype=rank_dtype(tensor.numel())).element_size()


class _Magnitude(_Rule):
    """mergekit.sparsify.magnitude: keep the k = max(1, int(density * n)) largest |values| (TIES, DARE-TIES'
    sign step does not sort), ranked by `argsort(descending=True)` as mergekit ranks them."""

    def prepare(self, tensor):
        return ranks_of(torch.argsort(_sortable(tensor), descending=True))

    def cut(self, tensor, ranks, density, rescale_norm, gamma, epsilon):
        k = max(1, int(density * tensor.numel()))
        mask = (ranks < k).to(tensor.dtype)
        return rescaled_masked_tensor(tensor, mask.reshape_as(tensor), rescale_norm)


class _MagnitudeOutliers(_Rule):
    """mergekit.sparsify.magnitude_outliers (breadcrumbs): drop the gamma largest and the smallest, keeping
    int(density * n), ranked by `sort(descending=False)` as mergekit ranks them."""

    def cached(self, tensor, density, gamma, epsilon):
        # outside these, mergekit's slice bounds can run past n (or wrap): left to mergekit itself
        return 0 < density < 1 and gamma >= 0 and tensor.numel() > 0

    def prepare(self, tensor):
        return ranks_of(torch.sort(_sortable(tensor), descending=False).indices)

    def cut(self, tensor, ranks, density, rescale_norm, gamma, epsilon):
        n = tensor.numel()
        target_n = int(density * n)
        n_bot = max(0, n - target_n - int(gamma * n))
        mask = ((ranks >= n_bot) & (ranks < n_bot + target_n)).to(tensor.dtype)
        return rescaled_masked_tensor(tensor, mask.reshape_as(tensor), rescale_norm)


class _DellaMagprune(_Rule):
    """mergekit.sparsify.della_magprune (DELLA): keep-probabilities that rise linearly with each element's
    magnitude rank in its row; the normalised ranks are kept, the Bernoulli draw stays per candidate."""

    def cached(self, tensor, density, gamma, epsilon):
        # mergekit's own checks (and its error for a bad epsilon) run in mergekit
        return 0 < density < 1 and 0 < density - epsilon and density + epsilon < 1

    @staticmethod
    def _work_dtype(tensor):
        return tensor.dtype if tensor.device.type != "cpu" or tensor.dtype == torch.bfloat16 else torch.float32

    def prepared_bytes(self, tensor):
        return tensor.numel() * torch.empty((), dtype=self._work_dtype(tensor)).element_size()

    def prepare(self, tensor):
        rows = tensor.unsqueeze(0) if tensor.dim() < 2 else tensor
        ranks = torch.argsort(rows.abs(), dim=1, descending=False).argsort(dim=1).to(self._work_dtype(tensor)) + 1
        low = ranks.min(dim=1, keepdim=True).values
        high = ranks.max(dim=1, keepdim=True).values
        return ((ranks - low) / (high - low)).clamp(0, 1)

    def cut(self, tensor, rank_norm, density, rescale_norm, gamma, epsilon):
        work = self._work_dtype(tensor)
        rows = tensor.unsqueeze(0) if tensor.dim() < 2 else tensor
        probs = (density - epsilon) + rank_norm * 2 * epsilon
        mask = torch.bernoulli(probs).to(work)
        return rescaled_masked_tensor(rows.to(work), mask, rescale_norm).to(tensor.dtype).reshape(tensor.shape)


RULES: dict[SparsificationMethod, _Rule] = {
    SparsificationMethod.magnitude: _Magnitude(),
    SparsificationMethod.magnitude_outliers: _MagnitudeOutliers(),
    SparsificationMethod.della_magprune: _DellaMagprune(),
}


@dataclass
class _Entry:
    prepared: torch.Tensor
    probe_at: torch.Tensor
    probe: torch.Tensor


def _bits(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor's bit patterns (so that a NaN equals itself and -0.0 differs from 0.0)."""
    return tensor.view({1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[tensor.element_size()])


def _label(key: Hashable) -> str:
    """A task vector's key as a person reads it: the input tensor's name and model where it has them
    (compat.sparsify_hooked's keys), else the key itself."""
    try:
        (tensor, model), _base = key
        return f"{tensor} of {model}"
    except (TypeError, ValueError):
        return str(key)


class SparsifyCache:
    """The ranks of every task vector a run sparsifies, up to `budget_bytes` (what the inputs' placement
    leaves: InputPlacement.cache_bytes); past it, mergekit sorts per candidate as it always does."""

    def __init__(self, budget_bytes: int, original: Callable = mergekit_sparsify):
        self.budget_bytes = max(0, int(budget_bytes))
        self.used_bytes = 0
        self.hits = 0
        self.fallbacks = 0
        self._original = original
        self._entries: dict[Hashable, _Entry] = {}
        self._refused: set = set()
        self._said_full = False

    def sparsify(self, key: Hashable, tensor: torch.Tensor, density: float, method: SparsificationMethod,
                 gamma: float = 0, epsilon: float = 0, rescale_norm: RescaleNorm | None = None) -> torch.Tensor:
        """mergekit.sparsify.sparsify, for the task vector `key` names (compat.sparsify_hooked's key)."""
        rule = RULES.get(method)
        if rule is not None and rule.cached(tensor, density, gamma, epsilon):
            entry = self._entry((method, key, tensor.dtype, tuple(tensor.shape), tensor.device), rule, tensor)
            if entry is not None:
                self.hits += 1
                return rule.cut(tensor, entry.prepared, density, rescale_norm, gamma, epsilon)
            self.fallbacks += 1
        return self._original(tensor, density=density, method=method, gamma=gamma, epsilon=epsilon,
                              rescale_norm=rescale_norm)

    def _entry(self, key, rule: _Rule, tensor: torch.Tensor) -> _Entry | None:
        entry = self._entries.get(key)
        if entry is not None:
            if torch.equal(_bits(tensor.reshape(-1)[entry.probe_at]), _bits(entry.probe)):
                return entry
            # The key (the tensors a task vector comes from) is what makes a reuse right; the probes are a
            # tripwire for a broken assumption (inputs changed under the run), caught at those positions only.
            _log.warning("sparsify cache: the task vector %s changed between candidates; it is sorted per "
                         "candidate from now on", _label(key[1]))
            del self._entries[key]
            self.used_bytes -= entry.prepared.numel() * entry.prepared.element_size()
            self._refused.add(key)
            return None
        if key in self._refused:
            return None
        size = rule.prepared_bytes(tensor)
        if self.used_bytes + size > self.budget_bytes:
            if not self._said_full:
                self._said_full = True
                _log.warning("sparsify cache: full at %.2f GiB of %.2f GiB; the task vectors that do not fit are "
                             "sorted per candidate, as mergekit does (slower, no more memory)",
                             self.used_bytes / GIB, self.budget_bytes / GIB)
            self._refused.add(key)
            return None
        flat = tensor.reshape(-1)
        count = min(PROBES, flat.numel())  # evenly spread, first and last included (integer steps: exact at any n)
        probe_at = torch.arange(count, device=flat.device) * (flat.numel() - 1) // max(1, count - 1)
        entry = _Entry(rule.prepare(tensor), probe_at, flat[probe_at].clone())
        self._entries[key] = entry
        self.used_bytes += size
        return entry

    def describe(self) -> str:
        refused = f"; {len(self._refused)} sorted per candidate (no room)" if self._refused else ""
        return (f"sparsify cache: {len(self._entries)} task vectors' ranks in {self.used_bytes / GIB:.2f} GiB "
                f"of {self.budget_bytes / GIB:.2f} GiB{refused}")
