"""The bad-input corpus (issue #13): every way a user's input can be wrong that we know of, each answered
with exit code 2, one message naming the file and the field (or flag), no traceback, nothing written
or overwritten; for mergekit-evolve-lite, found by --dry-run wherever no model is needed, and always
before any model is loaded (the runs here would fail loudly if one were: these models are never merged).

Each case is one row: an id, how to make the bad input from a good one, and what the message must say.
Commands run in this process (their `main`), which is what their console scripts call."""

from __future__ import annotations

import copy
import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import yaml

from merge3_lm_eval_tasks.api import shipped_tasks_dir
from mergekit_ext import cli as evolve_cli
from mergekit_ext.engine import Engine  # noqa: F401  (imported so that a patch below can refuse to build one)
from merge3_plugin import cli as merge3_cli


@pytest.fixture(scope="module")
def world(untrained_toy_tasks, tmp_path_factory, tiny_world):
    """A good evolve config over the tiny random Llamas, scored on merge3's toy tasks (never evaluated
    here, so no trained world is needed), variants of one model for the architecture cases, and the
    folder of the plain toy tasks (what a merge3 task's base_yaml names)."""
    root = tmp_path_factory.mktemp("bad-input")
    shutil.copytree(untrained_toy_tasks / "merge3", root / "tasks")
    models = tiny_world.root / "models"
    for name, edit in {"other-arch": {"model_type": "mistral", "architectures": ["MistralForCausalLM"]},
                       "other-shape": {"hidden_size": 48}, "other-vocab": {"vocab_size": 96}}.items():
        shutil.copytree(models / "expert-lang", root / name)
        config = json.loads((root / name / "config.json").read_text())
        config.update(edit)
        (root / name / "config.json").write_text(json.dumps(config))
    good = {
        "merge_method": "ties", "base_model": str(models / "base"), "dtype": "float32",
        "models": [{"model": str(models / "expert-math"), "parameters": {"weight": 0.5, "density": 0.5}},
                   {"model": str(models / "expert-lang"), "parameters": {"weight": 0.5, "density": 0.5}}],
        "evolve": {"search": {"weight": [0.0, 1.5]},
                   "fitness": [{"task": "merge3_toy_math_l2", "metric": "exact_match", "estimator": "gpirt"}],
                   "budget": {"evaluations": 4},
                   "include_path": [str(root / "tasks"), str(untrained_toy_tasks / "data")],
                   "include_defaults": False}}
    # a merge3 task with seeded random anchors: no IRT parameters (what an adaptive estimator cannot use)
    (root / "tasks" / "merge3_toy_math_random.yaml").write_text(yaml.safe_dump({
        "task": "merge3_toy_math_random", "class": "!function merge3_lm_eval_tasks.task.Merge3Task",
        "metadata": {"merge3_base_yaml": str(untrained_toy_tasks / "data" / "toy_math.yaml"),
                     "merge3_random_anchors": {"size": 20, "seed": 0}}}).replace("'!function", "!function")
        .replace("Merge3Task'", "Merge3Task"))
    # a multiple-choice task whose bundle has no graded fit (the shipped toy_rev bundle has one)
    plain = json.loads((shipped_tasks_dir() / "bundles" / "toy_rev.json").read_text())
    plain.pop("graded")
    (root / "toy_rev_plain.json").write_text(json.dumps(plain))
    (root / "tasks" / "merge3_toy_rev_plain.yaml").write_text(yaml.safe_dump({
        "task": "merge3_toy_rev_plain", "class": "!function merge3_lm_eval_tasks.task.Merge3Task",
        "metadata": {"merge3_base_yaml": str(untrained_toy_tasks / "data" / "toy_rev.yaml"),
                     "merge3_bundle": str(root / "toy_rev_plain.json")}}).replace("'!function", "!function")
        .replace("Merge3Task'", "Merge3Task"))
    return root, good, untrained_toy_tasks / "data"


def _edit(path: str, value):
    """An edit that sets (or, with value DELETE, removes) a dotted path in the config."""
    def apply(config: dict) -> None:
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if value is DELETE:
            del node[last]
        elif isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value
    return apply


DELETE = object()


def _lfs(options: dict | None = None, keep_search: bool = False, edit=None, space: str = "lfs"):
    """An edit that turns the good config into one of another space (default the layer-wise fusion one,
    lfs), then applies `edit`."""
    def apply(config: dict) -> None:
        config["evolve"]["space"] = space
        config["evolve"]["space_options"] = options or {}
        if not keep_search:
            del config["evolve"]["search"]
        if edit:
            edit(config)
    return apply

# id -> (edit of the good config, or raw text for the file; words the message must contain)
EVOLVE_CASES = {
    "malformed YAML": ("merge_method: [ties\nevolve: {", ["not valid YAML"]),
    "not a mapping": ("- just\n- a list\n", ["expected a mergekit config"]),
    "no evolve section": (_edit("evolve", DELETE), ["field 'evolve' is missing"]),
    "unknown evolve key": (_edit("evolve.serch", {"weight": [0, 1]}), ["field 'evolve.serch'", "not a known field"]),
    "unknown merge method": (_edit("merge_method", "tiez"), ["field 'merge_method'", "unknown method 'tiez'"]),
    "a parameter the method does not take": (_edit("models.0.parameters.densty", 0.5),
                                             ["field 'models[0].parameters.densty'", "takes no parameter"]),
    "a searched parameter the method lacks": (_edit("evolve.search.t", [0.0, 1.0]),
                                              ["field 'evolve.search.t'", "no number parameter"]),
    "a range outside what the parameter allows": (_edit("evolve.search.density", [0.0, 1.5]),
                                                  ["field 'evolve.search.density'", "[0.0, 1.5]"]),
    "a reversed range": (_edit("evolve.search.weight", [1.0, 0.0]), ["evolve.search"]),
    "a missing model folder": (_edit("models.1.model", "/nowhere/expert"),
                               ["field 'models[1].model'", "/nowhere/expert", "not a local model folder"]),
    "models of another architecture": (lambda c: c["models"][1].update(model="ROOT/other-arch"),
                                       ["field 'models[1].model'", "MistralForCausalLM"]),
    "models of another shape": (lambda c: c["models"][1].update(model="ROOT/other-shape"),
                                ["field 'models[1].model'", "hidden_size 48"]),
    "models of another vocabulary": (lambda c: c["models"][1].update(model="ROOT/other-vocab"),
                                     ["field 'models[1].model'", "vocab_size 96"]),
    "an unknown fitness task": (_edit("evolve.fitness.0.task", "merge3_toy_math_l3"),
                                ["field 'evolve.fitness.0.task'", "did you mean 'merge3_toy_math_l2'"]),
    "an empty fitness task name": (_edit("evolve.fitness.0.task", ""), ["field 'evolve.fitness.0.task'"]),
    "no fitness at all": (_edit("evolve.fitness", []), ["field 'evolve.fitness'"]),
    "an unknown estimator": (_edit("evolve.fitness.0.estimator", "gpirtt"),
                             ["field 'evolve.fitness.0.estimator'", "did you mean 'gpirt'"]),
    "an endpoint estimator on a task without a bundle": (
        lambda c: c["evolve"]["fitness"][0].update(task="toy_math_l2", estimator="gmpirt"),
        ["field 'evolve.fitness.0.estimator'", "plain lm-eval task"]),
    "an adaptive estimator without items": (_edit("evolve.fitness.0.estimator", "adaptive"),
                                            ["field 'evolve.fitness.0.items'", "say how many"]),
    "items for a fixed-anchor estimator": (_edit("evolve.fitness.0.items", 10),
                                           ["field 'evolve.fitness.0.items'", "only an adaptive estimator"]),
    "more adaptive items than the split": (
        lambda c: c["evolve"]["fitness"][0].update(estimator="adaptive", items=100000),
        ["field 'evolve.fitness.0.items'", "100000 items per candidate", "has only"]),
    "an adaptive estimator on a plain task": (
        lambda c: c["evolve"]["fitness"][0].update(task="toy_math_l2", estimator="adaptive", items=10),
        ["field 'evolve.fitness.0.task'", "plain lm-eval task"]),
    "an adaptive estimator on a task without IRT parameters": (
        lambda c: c["evolve"]["fitness"][0].update(task="merge3_toy_math_random", estimator="adaptive", items=10),
        ["field 'evolve.fitness.0.estimator'", "merge3_toy_math_random", "random anchors"]),
    "graded responses of a generation task": (
        lambda c: c["evolve"]["fitness"][0].update(estimator="adaptive", items=10, adaptive={"graded": True}),
        ["field 'evolve.fitness.0.estimator'", "generate_until, not multiple_choice"]),
    "graded responses without a graded fit": (
        lambda c: c["evolve"]["fitness"][0].update(task="merge3_toy_rev_plain", metric="acc", estimator="adaptive", items=10,
                                                   adaptive={"graded": True}),
        ["field 'evolve.fitness.0.estimator'", "merge3 fit --graded"]),
    "an adaptive estimator with racing": (
        lambda c: c["evolve"].update(racing={"eta": 2}, fitness=[{**c["evolve"]["fitness"][0], "estimator": "adaptive",
                                                                  "items": 10}]),
        ["field 'evolve.fitness.0.estimator'", "racing"]),
    "an unknown algorithm": (_edit("evolve.algorithm", {"name": "gaa"}),
                             ["field 'evolve.algorithm.name'", "did you mean 'ga'"]),
    "an unknown algorithm option": (_edit("evolve.algorithm", {"name": "ga", "pop_sise": 8}),
                                    ["field 'evolve.algorithm.pop_sise'"]),
    "one objective's algorithm for several": (
        lambda c: c["evolve"].update(objectives="multi", fitness=c["evolve"]["fitness"] * 2),
        ["field 'evolve.algorithm.name'", "optimises one objective"]),
    "an unknown tpe option": (_edit("evolve.algorithm", {"name": "tpe", "n_startup": 4}),
                              ["field 'evolve.algorithm.n_startup'", "n_startup_trials"]),
    "tpe for several objectives": (
        lambda c: c["evolve"].update(objectives="multi", fitness=c["evolve"]["fitness"] * 2,
                                     algorithm={"name": "tpe"}),
        ["field 'evolve.algorithm.name'", "tpe optimises one objective"]),
    "a budget of no items": (_edit("evolve.budget", {"items": 0}), ["evolve.budget.items"]),
    "no budget": (_edit("evolve.budget", DELETE), ["field 'evolve.budget'"]),
    "an empty budget": (_edit("evolve.budget", {}), ["evolve.budget", "at least one of"]),
    "an unknown search space": (_edit("evolve.space", "lfss"), ["field 'evolve.space'"]),
    "lfs with searched ranges": (_lfs(keep_search=True), ["field 'evolve.search'", "lfs space"]),
    "an unknown lfs method": (_lfs({"methods": ["linear", "dare"]}),
                              ["field 'evolve.space_options.methods'", "'dare'"]),
    "more lfs groups than layers": (_lfs({"groups": 9}), ["field 'evolve.space_options.groups'", "[1, 4]"]),
    "an unknown lfs option": (_lfs({"group": 2}), ["field 'evolve.space_options.group'", "groups"]),
    "lfs ties without a base model": (_lfs({"methods": ["ties"]}, edit=lambda c: c.pop("base_model")),
                                      ["field 'base_model'", "ties", "needs a base model"]),
    "an unknown depth mode": (_lfs({"mode": "stacks"}, space="depth"),
                              ["field 'evolve.space_options.mode'", "'stacks'"]),
    "a dis depth cap below the models' depth": (_lfs({"mode": "dis", "max_depth": 2}, space="depth"),
                                                ["field 'evolve.space_options.max_depth'", "base's 4"]),
    "a device torch does not have": (_edit("evolve.eval", {"device": "gpu0"}), ["field 'evolve.eval.device'"]),
    "an unknown eval backend": (_edit("evolve.eval", {"backend": "rey"}),
                                ["field 'evolve.eval.backend'", "did you mean 'ray'"]),
    "several workers on the serial backend": (_edit("evolve.eval", {"workers": 4}),
                                              ["field 'evolve.eval.workers'", "backend: ray"]),
    "a Ray cluster address on the serial backend": (_edit("evolve.eval", {"address": "auto"}),
                                                    ["field 'evolve.eval.address'", "backend: ray"]),
}


def _write_case(world, case: str, folder: Path) -> Path:
    root, good, _ = world
    edit, _ = EVOLVE_CASES[case]
    path = folder / "evolve.yaml"
    if isinstance(edit, str):
        path.write_text(edit)
    else:
        config = copy.deepcopy(good)
        edit(config)
        path.write_text(yaml.safe_dump(config, sort_keys=False).replace("ROOT/", f"{root}/"))
    return path


@pytest.fixture
def no_model_loads(monkeypatch):
    """Any attempt to build the engine (load models) fails the test: every case must be found before."""
    import mergekit_ext.search as search

    def refuse(*args, **kwargs):
        raise AssertionError("a model was about to be loaded")

    monkeypatch.setattr("mergekit_ext.engine.build_engine", refuse)
    return search


def _said(capsys) -> str:
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return captured.err


@pytest.mark.parametrize("case", list(EVOLVE_CASES))
def test_evolve_bad_config(world, case, tmp_path, capsys, no_model_loads):
    path = _write_case(world, case, tmp_path)
    for args in (["--dry-run"], ["--out", str(tmp_path / "out")]):
        assert evolve_cli.main([str(path), *args, "--quiet"]) == 2, (case, args)
        said = _said(capsys)
        assert str(path) in said and said.count("\n") >= 1, said
        for words in EVOLVE_CASES[case][1]:
            assert words in said, (case, said)
    assert not (tmp_path / "out").exists()


def test_the_good_config_passes_the_dry_run(world, tmp_path, capsys, no_model_loads):
    """The baseline of the corpus: without its edit, every case's config is valid."""
    _, good, _ = world
    path = tmp_path / "evolve.yaml"
    path.write_text(yaml.safe_dump(good))
    assert evolve_cli.main([str(path), "--dry-run"]) == 0
    assert "genes" in capsys.readouterr().out


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _good_run_folder(world, tmp_path, other_config: bool) -> tuple[Path, Path]:
    """An --out holding a run (run.json, a history line), of this config or of another one."""
    from mergekit_ext.config import load_config
    from mergekit_ext.search import RUN_FILE, run_identity

    _, good, _ = world
    path = tmp_path / "evolve.yaml"
    path.write_text(yaml.safe_dump(good))
    out = tmp_path / "out"
    out.mkdir()
    theirs = copy.deepcopy(good)
    if other_config:
        theirs["merge_method"] = "task_arithmetic"
        for entry in theirs["models"]:
            entry["parameters"].pop("density")
    (tmp_path / "theirs.yaml").write_text(yaml.safe_dump(theirs))
    identity = run_identity(load_config(tmp_path / "theirs.yaml"))
    (out / RUN_FILE).write_text(json.dumps({"config": str(tmp_path / "theirs.yaml"), "identity": identity}))
    (out / "history.jsonl").write_text('{"n": 0, "config_hash": "x", "objectives": [0.5]}\n')
    return path, out


def test_an_out_that_holds_another_configs_run(world, tmp_path, capsys, no_model_loads):
    path, out = _good_run_folder(world, tmp_path, other_config=True)
    before = _snapshot(out)
    assert evolve_cli.main([str(path), "--out", str(out), "--resume", "--quiet"]) == 2
    said = _said(capsys)
    assert f"--out {out}" in said and "holds the run of another config" in said and "theirs.yaml" in said
    assert _snapshot(out) == before


def test_an_out_that_holds_a_run_without_resume(world, tmp_path, capsys, no_model_loads):
    path, out = _good_run_folder(world, tmp_path, other_config=False)
    before = _snapshot(out)
    assert evolve_cli.main([str(path), "--out", str(out), "--quiet"]) == 2
    said = _said(capsys)
    assert f"--out {out}" in said and "--resume" in said
    assert _snapshot(out) == before


def test_an_out_that_is_a_file(world, tmp_path, capsys, no_model_loads):
    _, good, _ = world
    path = tmp_path / "evolve.yaml"
    path.write_text(yaml.safe_dump(good))
    (tmp_path / "out").write_text("mine")
    assert evolve_cli.main([str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert "is a file" in _said(capsys) and (tmp_path / "out").read_text() == "mine"


def test_an_out_that_cannot_be_written(world, tmp_path, capsys, no_model_loads):
    """/proc takes no new folders, not even from root (CI runs as root: chmod alone proves nothing)."""
    _, good, _ = world
    path = tmp_path / "evolve.yaml"
    path.write_text(yaml.safe_dump(good))
    assert evolve_cli.main([str(path), "--out", "/proc/merge3-evolve", "--quiet"]) == 2
    assert "/proc/merge3-evolve" in _said(capsys)


def test_a_full_disk(world, tmp_path, capsys, monkeypatch, no_model_loads):
    """The disk fills as the run starts writing: a clear error naming the file, nothing half-written."""
    import mergekit_ext.search as search

    _, good, _ = world
    path = tmp_path / "evolve.yaml"
    path.write_text(yaml.safe_dump(good))

    def full(target, text):
        raise OSError(errno.ENOSPC, "No space left on device", str(target))

    monkeypatch.setattr(search, "write_atomic", full)
    assert evolve_cli.main([str(path), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    said = _said(capsys)
    assert "No space left on device" in said and "run.json" in said
    assert [p.name for p in (tmp_path / "out").iterdir()] == []


# --- merge3 commands ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def bundle():
    """A good anchored bundle of toy_rev (the shipped one), as JSON."""
    from merge3_lm_eval_tasks.task_files import shipped_tasks_dir

    return json.loads((shipped_tasks_dir() / "bundles" / "toy_rev.json").read_text())


def _bundle_file(tmp_path: Path, data) -> Path:
    path = tmp_path / "bundle.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data).replace("NaN", "NaN"))
    return path


BUNDLE_CASES = {
    "a bundle that is not JSON": (lambda b: '{"format": "merge3-irt-bundle", ', ["invalid JSON"]),
    "a bundle of another schema": (lambda b: {**b, "format": "tinybenchmarks"}, ["not a merge3 bundle"]),
    "a bundle of another version": (lambda b: {**b, "version": 99}, ["'version' is 99"]),
    "a bundle with NaN item parameters": (
        lambda b: {**b, "irt": {**b["irt"], "beta": [float("nan")] + b["irt"]["beta"][1:]}}, ["'irt.beta'"]),
    "a bundle with anchors outside the dataset": (
        lambda b: {**b, "anchors": {**b["anchors"], "doc_ids": [10 ** 6] + b["anchors"]["doc_ids"][1:]}},
        ["'anchors.doc_ids'"]),
}


@pytest.mark.parametrize("case", list(BUNDLE_CASES))
def test_merge3_tasks_build_with_a_bad_bundle(bundle, case, tmp_path, capsys):
    make, words = BUNDLE_CASES[case]
    path = _bundle_file(tmp_path, make(copy.deepcopy(bundle)))
    code = merge3_cli.main(["tasks", "build", "--bundle", str(path), "--base-task", "toy_rev",
                            "--name", "merge3_my_rev", "--out", str(tmp_path / "tasks")])
    said = _said(capsys)
    assert code == 2 and str(path) in said, said
    for w in words:
        assert w in said, said
    assert not (tmp_path / "tasks").exists()


def test_merge3_tasks_build_with_a_base_task_that_does_not_exist(world, bundle, tmp_path, capsys):
    path = _bundle_file(tmp_path, bundle)
    code = merge3_cli.main(["tasks", "build", "--bundle", str(path), "--base-task", "arc_chalenge",
                            "--name", "merge3_my_rev", "--out", str(tmp_path / "tasks")])
    said = _said(capsys)
    assert code == 2 and "--base-task: unknown lm-eval task 'arc_chalenge'" in said
    assert "did you mean 'arc_challenge'" in said and not (tmp_path / "tasks").exists()


def test_merge3_tasks_build_with_a_name_that_shadows_a_shipped_task(world, bundle, tmp_path, capsys):
    path = _bundle_file(tmp_path, bundle)
    code = merge3_cli.main(["tasks", "build", "--bundle", str(path), "--base-yaml",
                            str(world[2] / "toy_rev.yaml"), "--name", "merge3_toy_rev",
                            "--out", str(tmp_path / "tasks")])
    said = _said(capsys)
    assert code == 2 and "--name 'merge3_toy_rev'" in said and "merge3 ships a task of this name" in said
    assert not (tmp_path / "tasks").exists()


def test_merge3_tasks_check_finds_a_user_task_that_shadows_a_shipped_one(world, tmp_path, capsys):
    from merge3_lm_eval_tasks.task_files import shipped_tasks_dir

    user = tmp_path / "user"
    user.mkdir()
    text = (shipped_tasks_dir() / "merge3_toy_rev.yaml").read_text()
    bundle_line = next(line for line in text.splitlines() if "merge3_bundle" in line)
    text = text.replace(bundle_line, f"  merge3_bundle: {shipped_tasks_dir() / 'bundles' / 'toy_rev.json'}")
    (user / "mine.yaml").write_text(text)
    assert merge3_cli.main(["tasks", "check", str(user)]) == 2
    said = _said(capsys)
    assert str(user / "mine.yaml") in said and "field 'task'" in said and "merge3 ships" in said


# --- merge3 import-tinybenchmarks (issue #15) --------------------------------------------------------

@pytest.fixture(scope="module")
def tiny_good(tmp_path_factory):
    """A good synthetic tinyBenchmarks.pkl (the real structure) and its six tiny datasets."""
    from tests.tinybenchmarks_reference import synthetic_tinybenchmarks, write_pkl, write_tiny_datasets

    root = tmp_path_factory.mktemp("tiny-good")
    data = synthetic_tinybenchmarks(seed=0, dims=2)
    return data, write_pkl(data, root / "tinyBenchmarks.pkl"), write_tiny_datasets(data, root / "datasets")


def _evil(marker: Path) -> bytes:
    import os
    import pickle

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    return pickle.dumps({"lb": Evil()}, protocol=4)


def _forged_dtype() -> bytes:
    """An array whose dtype's pickled state claims its object field holds no objects (numpy trusts it)."""
    import pickle

    from numpy._core.multiarray import _reconstruct

    class Dtype:
        def __reduce__(self):
            return (np.dtype, ("V8", False, True), (3, "|", None, ("a",), {"a": (np.dtype("O"), 0)}, 8, 1, 0))

    class Array:
        def __reduce__(self):
            return (_reconstruct, (np.ndarray, (0,), b"b"), (1, (1,), Dtype(), False, b"\x41" * 8))

    return pickle.dumps({"lb": {"irt_parameters": {"A": Array()}}}, protocol=4)


def _pickled(edit):
    def make(data, folder: Path) -> bytes:
        import pickle

        data = copy.deepcopy(data)
        edit(data)
        return pickle.dumps(data, protocol=4)
    return make


def _drop_dataset(name: str):
    def apply(datasets: Path, folder: Path) -> Path:
        shutil.copytree(datasets, folder / "datasets")
        (folder / "datasets" / f"{name}.jsonl").unlink()
        return folder / "datasets"
    return apply


def _edit_rows(name: str, edit):
    def apply(datasets: Path, folder: Path) -> Path:
        shutil.copytree(datasets, folder / "datasets")
        path = folder / "datasets" / f"{name}.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps(r) + "\n" for r in edit(rows)))
        return folder / "datasets"
    return apply


# id -> (the pkl's bytes from the good data, or None: the good file; the datasets folder, or None: the good
# one; extra flags; words the message must contain)
IMPORT_CASES = {
    "a pkl that does not exist": ("missing", None, [], ["no such file"]),
    "a file that is not a pickle": (lambda d, f: b"PK\x03\x04 this is a zip", None, [], ["not a readable pickle"]),
    "a malicious pickle": (lambda d, f: _evil(f / "ran"), None, [], ["refused to unpickle", "posix.system"]),
    "a pickle with a forged dtype": (lambda d, f: _forged_dtype(), None, [], ["refused to unpickle", "numpy.dtype('V8')"]),
    "a pickle with an object array": (lambda d, f: __import__("pickle").dumps(
        {"lb": np.array([{"A": 1}], dtype=object)}, protocol=4), None, [], ["refused to unpickle", "numpy.dtype('O8')"]),
    "a pickle of another structure": (lambda d, f: __import__("pickle").dumps([1, 2, 3]), None, [],
                                      ["not tinyBenchmarks' parameter file"]),
    "A of the wrong shape": (_pickled(lambda d: d["lb"]["irt_parameters"].update(A=np.ones((1, 2, 50)))), None, [],
                             ["field 'lb.irt_parameters.A' has shape (1, 2, 50)"]),
    "B of the wrong shape": (_pickled(lambda d: d["mmlu"]["irt_parameters"].update(B=np.ones((1, 14042)))), None,
                             [], ["field 'mmlu.irt_parameters.B'"]),
    "a benchmark with too few anchors": (_pickled(lambda d: d["mmlu"].update(seen_examples=d["mmlu"]["seen_examples"][:50])),
                                         None, [], ["field 'mmlu.seen_examples' has 50 entries"]),
    "an unpinned file without the flag": (None, None, ["--no-allow"], ["--allow-unpinned", "eb2a0276"]),
    "a datasets folder without tinyHellaswag": (None, _drop_dataset("tinyHellaswag"), [], ["no tinyHellaswag"]),
    "a tiny dataset of 99 rows": (None, _edit_rows("tinyGSM8k", lambda rows: rows[:99]), [],
                                  ["tinyGSM8k.jsonl", "99 rows"]),
    "a tiny dataset without the key fields": (None, _edit_rows("tinyAI2_arc", lambda rows: [
        {k: v for k, v in r.items() if k != "id"} for r in rows]), [], ["tinyAI2_arc.jsonl", "no field 'id'"]),
    "a tiny dataset with a row twice": (None, _edit_rows("tinyTruthfulQA", lambda rows: rows[:99] + rows[:1]), [],
                                        ["tinyTruthfulQA.jsonl", "rows [0, 99] have the same content key"]),
}


@pytest.mark.parametrize("case", list(IMPORT_CASES))
def test_merge3_import_tinybenchmarks_with_bad_input(tiny_good, case, tmp_path, capsys):
    data, good_pkl, good_datasets = tiny_good
    make_pkl, make_datasets, flags, words = IMPORT_CASES[case]
    pkl = good_pkl
    if make_pkl == "missing":
        pkl = tmp_path / "nowhere.pkl"
    elif make_pkl is not None:
        pkl = tmp_path / "tinyBenchmarks.pkl"
        pkl.write_bytes(make_pkl(data, tmp_path))
    datasets = good_datasets if make_datasets is None else make_datasets(good_datasets, tmp_path)
    allow = [] if flags == ["--no-allow"] else ["--allow-unpinned"]
    out = tmp_path / "bundles"
    code = merge3_cli.main(["import-tinybenchmarks", str(pkl), "--datasets", str(datasets), "--out", str(out), *allow])
    said = _said(capsys)
    assert code == 2, (case, said)
    assert str(pkl) in said or str(datasets) in said, said
    for w in words:
        assert w in said, (case, said)
    assert not out.exists() and not (tmp_path / "ran").exists()


def test_the_good_tinybenchmarks_import(tiny_good, tmp_path, capsys):
    _, pkl, datasets = tiny_good
    assert merge3_cli.main(["import-tinybenchmarks", str(pkl), "--datasets", str(datasets), "--out",
                            str(tmp_path / "b"), "--allow-unpinned"]) == 0
    assert len(list((tmp_path / "b").glob("*.json"))) == 6
