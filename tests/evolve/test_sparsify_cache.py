"""The sparsify cache (issue #24): each task vector's magnitude ranks sorted once per run, each candidate's
mask cut from them, element for element what mergekit's own sparsification gives."""

from __future__ import annotations

import logging

import pytest
import torch
from mergekit.sparsify import RescaleNorm, SparsificationMethod, sparsify

from mergekit_ext.merging.sparsify_cache import SparsifyCache, rank_dtype

MAGNITUDE = SparsificationMethod.magnitude
OUTLIERS = SparsificationMethod.magnitude_outliers
DELLA = SparsificationMethod.della_magprune


def _task_vector(shape, dtype, seed=0):
    """Values with many exact ties (few distinct magnitudes, both signs, zeros): where an order could differ."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randint(-6, 7, shape, generator=g).float() / 8).to(dtype)


def _mergekit(tensor, density, method, seed=None, **kwargs):
    if seed is not None:
        torch.manual_seed(seed)
    return sparsify(tensor, density=density, method=method, **kwargs)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("shape", [(40, 24), (70,), (200, 180)])  # the last: int32 ranks
@pytest.mark.parametrize("method,kwargs", [(MAGNITUDE, {}), (MAGNITUDE, {"rescale_norm": RescaleNorm.l1}),
                                           (OUTLIERS, {"gamma": 0.05}), (OUTLIERS, {"gamma": 0.0}),
                                           (DELLA, {"epsilon": 0.1, "rescale_norm": RescaleNorm.l1})])
def test_every_cut_of_the_cached_ranks_is_mergekits_mask(dtype, shape, method, kwargs):
    cache = SparsifyCache(budget_bytes=1 << 20)
    tensor = _task_vector(shape, dtype)
    for density in (0.5, 0.13, 0.85, 0.5, 0.31):  # one sort, then cuts at other densities
        torch.manual_seed(3)
        cached = cache.sparsify("w", tensor, density=density, method=method, **kwargs)
        assert torch.equal(cached, _mergekit(tensor, density, method, seed=3, **kwargs)), density
    assert cache.hits == 5 and cache.fallbacks == 0 and len(cache._entries) == 1


@pytest.mark.parametrize("method,kwargs", [(MAGNITUDE, {}), (OUTLIERS, {"gamma": 0.01}), (DELLA, {"epsilon": 0.1})])
@pytest.mark.parametrize("density", [0.0, 1.0, 1.5])
def test_trivial_densities_are_left_to_mergekit_and_cache_nothing(method, kwargs, density):
    cache = SparsifyCache(budget_bytes=1 << 20)
    tensor = _task_vector((8, 8), torch.float32)
    assert torch.equal(cache.sparsify("w", tensor, density=density, method=method, **kwargs),
                       _mergekit(tensor, density, method, **kwargs))
    assert not cache._entries and cache.used_bytes == 0


def test_della_with_an_epsilon_too_wide_raises_mergekits_error():
    with pytest.raises(ValueError, match="Epsilon"):
        SparsifyCache(1 << 20).sparsify("w", torch.ones(4, 4), density=0.5, method=DELLA, epsilon=0.6)


def test_random_sparsification_is_never_cached():
    cache = SparsifyCache(budget_bytes=1 << 20)
    torch.manual_seed(0)
    out = cache.sparsify("w", torch.ones(16, 16), density=0.5, method=SparsificationMethod.random)
    assert torch.equal(out, _mergekit(torch.ones(16, 16), 0.5, SparsificationMethod.random, seed=0))
    assert not cache._entries


def test_past_its_budget_the_cache_sorts_per_candidate_and_says_so_once(caplog):
    small, large = _task_vector((10, 10), torch.float32), _task_vector((100, 100), torch.float32, seed=1)
    cache = SparsifyCache(budget_bytes=100 * 2 + 10)  # the small one's int16 ranks fit; the large one's do not
    with caplog.at_level(logging.WARNING, logger="mergekit_ext.merging.sparsify_cache"):
        for density in (0.3, 0.6):
            for key, tensor in (("small", small), ("large", large)):
                assert torch.equal(cache.sparsify(key, tensor, density=density, method=MAGNITUDE),
                                   _mergekit(tensor, density, MAGNITUDE))
    assert cache.used_bytes == 200 and list(cache._entries) == [(MAGNITUDE, "small", torch.float32, (10, 10),
                                                                 torch.device("cpu"))]
    assert (cache.hits, cache.fallbacks) == (2, 2)
    assert len([r for r in caplog.records if "full" in r.getMessage()]) == 1
    assert "1 sorted per candidate" in cache.describe()


def test_a_task_vector_that_changed_under_its_key_is_never_cut_from_stale_ranks(caplog):
    cache = SparsifyCache(budget_bytes=1 << 20)
    before, after = _task_vector((30, 30), torch.float32), _task_vector((30, 30), torch.float32, seed=9)
    cache.sparsify("w", before, density=0.5, method=MAGNITUDE)
    with caplog.at_level(logging.WARNING, logger="mergekit_ext.merging.sparsify_cache"):
        out = cache.sparsify("w", after, density=0.5, method=MAGNITUDE)
    assert torch.equal(out, _mergekit(after, 0.5, MAGNITUDE))
    assert "changed between candidates" in caplog.text and cache.used_bytes == 0
    cache.sparsify("w", after, density=0.4, method=MAGNITUDE)
    assert not cache._entries  # once seen changing, that key is sorted per candidate for the rest of the run


def test_a_nan_in_a_task_vector_does_not_trip_the_probe():
    cache = SparsifyCache(budget_bytes=1 << 20)
    tensor = _task_vector((30, 30), torch.float32)
    tensor.view(-1)[0] = float("nan")  # a probed position
    for density in (0.5, 0.3):
        cache.sparsify("w", tensor, density=density, method=OUTLIERS, gamma=0.01)
    assert cache.hits == 2 and cache.fallbacks == 0


def test_ranks_take_the_smallest_integer_type_that_holds_every_cut():
    assert rank_dtype(32767) == torch.int16
    assert rank_dtype(32768) == torch.int32
    assert rank_dtype(2 ** 31) == torch.int64
    cache = SparsifyCache(budget_bytes=1 << 30)
    cache.sparsify("a", _task_vector((64, 64), torch.bfloat16), density=0.5, method=MAGNITUDE)
    cache.sparsify("b", _task_vector((200, 200), torch.bfloat16), density=0.5, method=MAGNITUDE)
    assert [e.prepared.dtype for e in cache._entries.values()] == [torch.int16, torch.int32]
    assert cache.used_bytes == 64 * 64 * 2 + 200 * 200 * 4
