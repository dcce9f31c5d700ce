"""Shared fixtures: an offline HF environment and one micro toy world per test session."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# No hub here: every HF library must know it before it is imported.
_HF_HOME = tempfile.mkdtemp(prefix="merge3-hf-home-")
os.environ["HF_HOME"] = _HF_HOME
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# A cache of our own unless CI (or a developer) points at one to reuse between runs.
os.environ.setdefault("MERGE3_CACHE", tempfile.mkdtemp(prefix="merge3-cache-"))


@pytest.fixture(scope="session")
def micro_zoo():
    """The micro toy world, built once per session (about a minute on 2 cores)."""
    from merge3_plugin.zoo.build import build_zoo

    return build_zoo("micro", progress=False).zoo


@pytest.fixture
def tmp_out(tmp_path: Path) -> Path:
    return tmp_path / "out"
