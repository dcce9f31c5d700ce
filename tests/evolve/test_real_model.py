"""mergekit-evolve-lite end to end on a real pre-trained model (issue #12): SmolLM2-135M-Instruct, a Llama
with 30 layers, grouped-query attention, tied embeddings and a BPE tokenizer, and two short fine-tunes of
it (the smol world). The toy worlds untie embeddings, share one key per head and tokenize by character;
this is where those differences would break the search, its outputs or their rebuild in mergekit-yaml."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .evolve_helpers import write_ta_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smol_run(smol_zoo, tmp_path_factory):
    """merge3 tasks fit on the smol world (20 anchors) and a short search around a TA merge of its experts."""
    from merge3_zoo.toy_tasks import regenerate

    root = tmp_path_factory.mktemp("smol-evolve")
    regenerate(root / "tasks", size=20, preset="smol-mini")
    config = write_ta_config(root / "evolve.yaml", smol_zoo.root / "models", root / "tasks", {
        "fitness": [{"task": "merge3_toy_lang", "metric": "exact_match", "estimator": "gmpirt"}],
        "algorithm": {"name": "ga", "pop_size": 4}, "budget": {"evaluations": 4}},
        dtype="bfloat16", eval_spec={"batch_size": 16})
    out = root / "out"
    run = subprocess.run([sys.executable, "-m", "mergekit_ext.cli", str(config), "--out", str(out), "--save-model",
                          "--quiet"], capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    return smol_zoo, out


def test_the_smol_world_is_a_real_pretrained_architecture_with_fine_tuned_experts(smol_zoo):
    base = json.loads((smol_zoo.root / "models" / "base" / "config.json").read_text())
    assert base["tie_word_embeddings"] is True
    assert base["num_key_value_heads"] < base["num_attention_heads"]  # grouped-query attention
    assert base["num_hidden_layers"] == 30
    tokenizer = json.loads((smol_zoo.root / "models" / "base" / "tokenizer.json").read_text())
    assert tokenizer["model"]["type"] == "BPE" and len(tokenizer["model"]["vocab"]) == base["vocab_size"]
    # (whether the fine-tunes learned their skills is the full smol preset's business, a benchmark's:
    # this test-sized world fine-tunes for a few steps, for the mechanics)
    # only the trained layers moved: the experts' other weights are the base's, bit for bit
    from safetensors import safe_open

    with safe_open(smol_zoo.root / "models" / "base" / "model.safetensors", "pt") as b, \
            safe_open(smol_zoo.root / "models" / "expert-lang" / "model.safetensors", "pt") as e:
        import torch

        for layer in (0, 27):  # smol-mini trains the last two layers
            assert torch.equal(b.get_tensor(f"model.layers.{layer}.mlp.up_proj.weight"),
                               e.get_tensor(f"model.layers.{layer}.mlp.up_proj.weight"))
        assert not torch.equal(b.get_tensor("model.layers.29.mlp.up_proj.weight"),
                               e.get_tensor("model.layers.29.mlp.up_proj.weight"))


def test_a_search_on_the_real_model_rebuilds_bit_for_bit_in_mergekit_yaml(smol_run, tmp_path):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, AutoTokenizer

    zoo, out = smol_run
    summary = json.loads((out / "summary.json").read_text())
    assert summary["evaluations"] == 4 and 0 <= summary["best_objectives"][0] <= 1
    history = [json.loads(line) for line in (out / "history.jsonl").read_text().splitlines()]
    assert len(history) == 4 and all(r["merge_seconds"] > 0 for r in history)

    # the saved winner: tied (no separate output matrix), the base's tokenizer files byte for byte
    saved = out / "best_model"
    config = json.loads((saved / "config.json").read_text())
    assert config["tie_word_embeddings"] is True
    weights = load_file(saved / "model.safetensors")
    assert "lm_head.weight" not in weights
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert (saved / name).read_bytes() == (zoo.root / "models" / "base" / name).read_bytes()
    model = AutoModelForCausalLM.from_pretrained(saved)
    assert model.lm_head.weight.data_ptr() == model.model.embed_tokens.weight.data_ptr()
    assert AutoTokenizer.from_pretrained(saved).encode("tr 123>")

    # stock mergekit-yaml, given best.yaml, writes the same tensors
    mergekit_yaml = shutil.which("mergekit-yaml", path=str(Path(sys.executable).parent))
    rebuilt = tmp_path / "rebuilt"
    done = subprocess.run([mergekit_yaml, str(out / "best.yaml"), str(rebuilt)], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    theirs = load_file(rebuilt / "model.safetensors")
    assert set(theirs) == set(weights)
    assert [k for k in weights if not torch.equal(weights[k], theirs[k])] == []
    assert yaml.safe_load((out / "best.yaml").read_text())["dtype"] == "bfloat16"
