"""Where a merge's inputs are kept and where it runs (issue #12): on the device when they fit, in pinned
CPU memory when only the host has room, read from disk per candidate when neither has."""

from __future__ import annotations

import logging

import pytest

from .test_evolve_config import _config_for

METHODS = ["ties", "task_arithmetic", "slerp", "della"]


def test_inputs_that_do_not_fit_are_read_per_candidate_said_once_and_merge_the_same(tiny_world, caplog):
    import torch
    from transformers import AutoModelForCausalLM

    from mergekit_ext.merging.inmemory import InMemoryMerger

    config = _config_for("ties", tiny_world.root / "models")
    kept = InMemoryMerger(config)
    assert kept.placement.cached and kept.placement.device == "cpu" and "held in cpu" in kept.placement.describe()
    with caplog.at_level(logging.WARNING, logger="mergekit_ext.merging.inmemory"):
        streamed = InMemoryMerger(config, cache_inputs=False)
        first = streamed.merge(config)
        streamed.merge(config)
    said = [r.getMessage() for r in caplog.records if "lazy loader" in r.getMessage()]
    assert len(said) == 1 and "do not fit" in said[0]  # once, when the merger is built; not per candidate
    assert streamed._inputs == {}  # nothing kept between candidates
    # the sparsify cache lives in the room the inputs leave; none when they themselves did not fit
    assert streamed.ranks is None and kept.ranks.budget_bytes == kept.placement.cache_bytes > 0
    expected = kept.merge(config)
    assert sorted(first) == sorted(expected)
    assert all(torch.equal(first[k], expected[k]) for k in expected)
    live = AutoModelForCausalLM.from_pretrained(tiny_world.model_path("base"), dtype=torch.float32)
    pointers = {k: v.data_ptr() for k, v in live.state_dict().items()}
    streamed.merge_into(live, config)
    assert {k: v.data_ptr() for k, v in live.state_dict().items()} == pointers  # written in place
    assert torch.equal(live.state_dict()["model.layers.0.mlp.up_proj.weight"],
                       expected["model.layers.0.mlp.up_proj.weight"])


@pytest.mark.skipif(not __import__("torch").cuda.is_available(),
                    reason="needs a CUDA GPU (run on a machine with one; CI has none)")
@pytest.mark.parametrize("method", METHODS)
def test_a_merge_on_the_gpu_matches_the_cpu_within_the_stated_tolerance(tiny_world, method):
    """On a GPU the inputs live on the GPU and every merged tensor is written there into the live model.
    The arithmetic runs in other kernels, so equality with mergekit-yaml on a CPU is not bit for bit:
    the stated tolerance is float32 rounding, |gpu - cpu| <= 1e-6 + 1e-5 * |cpu| per element (docs/evolve.md)."""
    import copy

    import torch
    from transformers import AutoModelForCausalLM

    from mergekit_ext.merging.inmemory import InMemoryMerger

    config = _config_for(method, tiny_world.root / "models")
    seed = 7 if method == "della" else None
    cpu = InMemoryMerger(config, random_seed=seed).merge(config)
    merger = InMemoryMerger(config, device="cuda", random_seed=seed)
    assert merger.placement.cached and merger.placement.device.startswith("cuda")
    other = copy.deepcopy(config)
    if "density" in other["models"][1].get("parameters", {}):
        other["models"][1]["parameters"]["density"] = 0.35
    merger.merge(other)  # a first candidate: TIES and DELLA keep their ranks, on the GPU beside the inputs
    gpu = merger.merge(config)
    if method in ("ties", "della"):  # cut from the cached ranks: bit for bit what the GPU gives without them
        assert merger.ranks.hits and all(e.prepared.device.type == "cuda" for e in merger.ranks._entries.values())
        plain = InMemoryMerger(config, device="cuda", random_seed=seed, cache_ranks=False).merge(config)
        assert all(torch.equal(gpu[k], plain[k]) for k in plain)
    assert sorted(gpu) == sorted(cpu)
    for name, value in gpu.items():
        assert value.device.type == "cuda"
        if method == "della":  # random masks: drawn by the CPU and the GPU generators alike only in shape
            assert value.shape == cpu[name].shape
            continue
        torch.testing.assert_close(value.cpu(), cpu[name], rtol=1e-5, atol=1e-6, msg=f"{method} {name}")
    live = AutoModelForCausalLM.from_pretrained(tiny_world.model_path("base"), dtype=torch.float32).to("cuda")
    pointers = {k: v.data_ptr() for k, v in live.state_dict().items()}
    merger.merge_into(live, config)
    assert {k: v.data_ptr() for k, v in live.state_dict().items()} == pointers


def test_inputs_go_on_the_gpu_when_they_fit_else_pinned_host_memory_else_disk(tiny_world, monkeypatch):
    """The placement rule itself, without a GPU: the GPU's free and total memory are stood in for
    (torch.cuda.mem_get_info), the inputs' size is the tiny world's real one."""
    import torch
    from mergekit.config import MergeConfiguration

    from mergekit_ext.merging import inmemory
    from mergekit_ext.merging.inmemory import InputPlacement, input_bytes

    config = MergeConfiguration.model_validate(_config_for("ties", tiny_world.root / "models"))
    size = input_bytes(config)
    assert size > 0
    gpu = torch.device("cuda:0")

    def gpu_with(free: int, total: int):
        monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (free, total))
        return InputPlacement.choose(config, gpu)

    roomy = gpu_with(free=10 * size, total=10 * size)  # a fifth kept for evaluation: 8x the inputs left
    assert (roomy.cached, roomy.device, roomy.pinned) == (True, "cuda:0", False)
    assert roomy.cache_bytes == 7 * size // 2  # the sparsify cache's: half of what the inputs leave on the GPU
    tight = gpu_with(free=size, total=2 * size)  # free minus a fifth of the GPU is below the inputs
    assert (tight.cached, tight.device, tight.pinned) == (True, "cpu", True)
    assert tight.cache_bytes == 0  # no room on the GPU, where the ranks would be used
    assert "pinned CPU memory" in tight.describe()
    monkeypatch.setattr(inmemory, "_host_memory", lambda: size)  # neither the GPU nor the host has room
    nowhere = gpu_with(free=size, total=2 * size)
    assert not nowhere.cached and "lazy loader" in nowhere.describe()
    assert not InputPlacement.choose(config, torch.device("cpu")).cached  # a CPU keeps them in a quarter of RAM
    assert nowhere.cache_bytes == 0
    monkeypatch.setattr(inmemory, "_host_memory", lambda: 4 * size + 400)
    host = InputPlacement.choose(config, torch.device("cpu"))
    assert host.cached and host.cache_bytes == 50  # half of a quarter of RAM less the inputs
