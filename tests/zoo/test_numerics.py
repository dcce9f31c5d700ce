"""Worlds that build the same on every x86 CPU: the zoo's workers train on portable float paths."""

from __future__ import annotations

import hashlib
from dataclasses import asdict

import pytest

from merge3_zoo import workers
from merge3_zoo.numerics import PORTABLE_ENV, is_portable, use_portable_floats
from merge3_zoo.recipe import ModelShape, Run

TINY_SHAPE = ModelShape(hidden=32, layers=2, heads=2, intermediate=64, max_positions=48)
TINY_RUN = Run("tiny", "base", {"math": 0.5, "lang": 0.5}, steps=12, lr=3e-3, seed=7)
# sha256 of the tiny run's tensors (sorted by name) on the portable paths, torch 2.13.0. Measured on an
# AMD EPYC (Zen 4, AVX-512; 2026-12-06) with and without MKL and ATen limited to AVX2, and with MKL
# told it runs on an Intel CPU (benchmarks/portable_floats.py's shim): the same. MKL's AVX2 branch, the
# zoo's paths before, gave 5fb8850d... on an AVX-512 Xeon and here only with that shim, 41b0009e... without it.
TINY_WEIGHTS_SHA256 = "7e214689ed65dd4cf8ddfd2404f88e4cb0f66448d671678cb6de66a40c1ecb58"


def weights_sha256(folder) -> str:
    from safetensors.torch import load_file

    digest = hashlib.sha256()
    for name, tensor in sorted(load_file(folder / "model.safetensors").items()):
        digest.update(name.encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def train_tiny(tmp_path, label: str) -> str:
    models = tmp_path / label
    models.mkdir()
    with workers.worker_pool(1, str(tmp_path / "hf"), str(tmp_path / "build.log")) as pool:
        pool.submit(workers.train_job, asdict(TINY_RUN), asdict(TINY_SHAPE), 0, str(models), 8).result()
    return weights_sha256(models / TINY_RUN.name)


def test_a_tiny_training_run_gives_the_pinned_weights_on_any_x86_cpu(tmp_path, monkeypatch):
    import torch

    if not torch.__version__.startswith("2.13."):
        pytest.skip(f"the hash is pinned for torch 2.13 (the README's install); this is {torch.__version__}")
    assert train_tiny(tmp_path, "own") == TINY_WEIGHTS_SHA256
    # what an AVX2-only machine would run, also when its environment asks for other ATen kernels
    monkeypatch.setenv("MKL_ENABLE_INSTRUCTIONS", "AVX2")
    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    assert train_tiny(tmp_path, "avx2") == TINY_WEIGHTS_SHA256


def test_the_pool_leaves_the_parents_environment_as_it_was(tmp_path, monkeypatch):
    import os

    monkeypatch.setenv("ATEN_CPU_CAPABILITY", "avx2")
    monkeypatch.delenv("MKL_CBWR", raising=False)
    with workers.worker_pool(1, str(tmp_path / "hf"), str(tmp_path / "log")):
        assert {k: os.environ[k] for k in PORTABLE_ENV} == PORTABLE_ENV
    assert os.environ["ATEN_CPU_CAPABILITY"] == "avx2" and "MKL_CBWR" not in os.environ


def test_training_outside_a_portable_worker_is_refused(tmp_path):
    if is_portable():
        pytest.skip("this test process itself runs on the portable paths")
    with pytest.raises(RuntimeError, match="worker_pool"):
        workers.train_job(asdict(TINY_RUN), asdict(TINY_SHAPE), 0, str(tmp_path), 8)
    with pytest.raises(RuntimeError, match="before the portable float paths"):
        use_portable_floats()
