"""docs/ is checked against the code: the generated reference is current, every relative link lands on
a file, and the example plugin of docs/plugins.md registers and computes what it says."""

from __future__ import annotations

import importlib.util
import re
import sys
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# -- the reference ------------------------------------------------------------------------------------
def test_the_reference_is_what_the_generator_writes_now():
    generator = _load(DOCS / "generate_reference.py", "merge3_docs_generate_reference")
    committed = (DOCS / "reference.md").read_text(encoding="utf-8")
    written_with = re.search(r"as Python (\d+\.\d+) prints it", committed)
    assert written_with, "docs/reference.md does not say which Python wrote it"
    fresh = generator.render()
    if fresh != committed and written_with.group(1) != generator.python_version():
        pytest.skip(f"docs/reference.md was written with Python {written_with.group(1)}; argparse lays out help "
                    f"a little differently in Python {generator.python_version()}")
    assert fresh == committed, "docs/reference.md is stale: run python docs/generate_reference.py"


def test_the_reference_lists_every_command_and_evolve_field():
    text = (DOCS / "reference.md").read_text(encoding="utf-8")
    for command in ("merge3 fit", "merge3 extract", "merge3 estimate", "merge3 report", "merge3 zoo build",
                    "merge3 zoo path", "merge3 tasks build", "merge3 tasks hook", "merge3 plugins",
                    "mergekit-evolve-lite"):
        assert f"### `{command}`" in text, command
    from mergekit_ext.config import EvolveSpec

    for name in EvolveSpec.model_fields:
        assert f"| `{name}` |" in text, name


# -- links --------------------------------------------------------------------------------------------
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


def _without_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


def _anchors(page: Path) -> set[str]:
    """The heading anchors GitHub makes: lower case, punctuation dropped, spaces to hyphens."""
    headings = re.findall(r"^#+ (.+)$", _without_code(page.read_text(encoding="utf-8")), re.M)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_every_relative_link_points_at_a_file():
    broken = []
    for page in _markdown_files():
        for target in LINK.findall(_without_code(page.read_text(encoding="utf-8"))):
            if re.match(r"[a-z]+:", target):
                continue  # a web address
            path, _, anchor = target.partition("#")
            linked = (page.parent / path) if path else page
            if not linked.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target}")
            elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert not broken, "links to nothing:\n" + "\n".join(broken)


def test_the_readme_points_into_docs_and_the_index_lists_every_page():
    assert "docs/README.md" in LINK.findall((ROOT / "README.md").read_text(encoding="utf-8"))
    index = set(LINK.findall((DOCS / "README.md").read_text(encoding="utf-8")))
    missing = [page.name for page in DOCS.glob("*.md") if page.name != "README.md" and page.name not in index]
    assert not missing, f"docs/README.md does not link {missing}"


# -- the example plugin -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def example():
    return _load(ROOT / "examples" / "example_plugin.py", "merge3_example_plugin")


@pytest.fixture(scope="module")
def population():
    """160 synthetic models x 200 items (d = 1): a bundle fit on the first 100, the other 60 to estimate."""
    from merge3_plugin.fitting import fit_bundle

    from .irt_helpers import synthetic_matrix

    matrix, _, _ = synthetic_matrix(160, 200, 1, seed=3)
    bundle = fit_bundle(replace(matrix, models=matrix.models[:100], scores=matrix.scores[:100]), dims=1)
    return bundle, matrix.scores[100:]


@pytest.fixture
def registered(example):
    """The example registered in merge3's own plugin manager, as an entry point would; removed after."""
    from merge3_plugin.plugins import plugin_manager

    plugin_manager().register(example, name="example-plugin")
    yield example
    plugin_manager().unregister(name="example-plugin")


def test_the_code_in_plugins_md_is_the_example_plugin():
    """Every Python block of docs/plugins.md that defines something is copied from the tested example."""
    source = (ROOT / "examples" / "example_plugin.py").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", (DOCS / "plugins.md").read_text(encoding="utf-8"), re.S)
    defining = [b for b in blocks if re.search(r"^(def|class|@hookimpl)", b, re.M)]
    assert len(defining) == 5
    for block in defining:
        for part in block.strip().split("\n\n\n"):  # each top-level definition on its own
            assert part.strip() in source, part[:80]


def test_the_example_registers_one_of_each_kind(example):
    from merge3_plugin.contracts import AlgorithmFactory, Estimator, Extractor, SearchSpace
    from merge3_plugin.plugins import new_plugin_manager, registry

    pm = new_plugin_manager(load_entry_points=False)
    pm.register(example)
    contract = {"extractor": ("every-kth", Extractor), "estimator": ("anchor-shrunk", Estimator),
                "algorithm": ("random-search", AlgorithmFactory)}
    for kind, (name, protocol) in contract.items():
        found = registry(kind, pm)
        assert name in found, kind
        assert isinstance(found[name], protocol), name
    assert registry("estimator", pm)["anchor-shrunk"].needs_endpoints is False
    assert "random" in registry("extractor", pm)  # beside the built-ins
    space = registry("search_space", pm)["one-weight"]
    config = SimpleNamespace(merge={"merge_method": "linear", "models": [{"model": "a"}, {"model": "b"}]},
                             evolve=SimpleNamespace(space_options={"range": [0.0, 2.0]}))
    assert isinstance(space(config), SearchSpace)


def test_every_kth_spreads_anchors_over_difficulty(example, population):
    bundle = population[0]
    positions, weights = example.every_kth(bundle, 20, np.random.default_rng(0))
    assert len(set(positions.tolist())) == 20 and np.isclose(weights.sum(), 1.0) and np.all(weights > 0)
    beta = np.sort(bundle.items.beta)
    chosen = np.sort(bundle.items.beta[positions])
    assert chosen[0] <= beta[10] and chosen[-1] >= beta[-11]  # one from each end of the difficulty range
    assert np.all(np.diff(chosen) > 0)
    whole, _ = example.every_kth(bundle, bundle.n_items, None)
    assert sorted(whole.tolist()) == list(range(bundle.n_items))


def test_every_kth_through_merge3_extract(registered, population):
    """Registered like an installed plugin, it is a method of `merge3 extract` (checked and calibrated)."""
    from merge3_plugin.extraction import extract

    anchored = extract(population[0], 20, "every-kth")
    assert anchored.anchors.method == "every-kth" and anchored.anchors.size == 20
    assert 0 <= anchored.anchors.lambda_gpirt <= 1


def test_anchor_shrunk_estimates_sensibly(example, population):
    from merge3_plugin.bundle import Anchors
    from merge3_plugin.estimation import Estimation, estimate
    from merge3_plugin.plugins import new_plugin_manager, registry

    bundle, test = population
    positions, weights = example.every_kth(bundle, 20, None)
    anchors = Anchors("every-kth", 0, [bundle.doc_ids[i] for i in positions], weights, 0.0, 0.0)
    pm = new_plugin_manager(load_entry_points=False)
    pm.register(example)
    out = estimate(bundle, test[:, positions], anchors=anchors, estimators=registry("estimator", pm))
    truth = test.mean(axis=1)
    shrunk, mean = out["anchor-shrunk"], out["anchor"]
    population_mean = float(bundle.items.prob(bundle.theta).mean())
    # between the anchor mean and the population's mean, 20 / (20 + 5) of the way to the anchor mean
    np.testing.assert_allclose(shrunk, (20 * mean + 5 * population_mean) / 25)
    assert np.corrcoef(shrunk, truth)[0, 1] > 0.7  # 20 anchors, 60 models
    assert np.abs(shrunk - truth).mean() <= 1.1 * np.abs(mean - truth).mean()
    # all anchors right / all wrong: above / below the population's mean, inside (0, 1)
    extreme = Estimation(bundle, np.vstack([np.ones(20), np.zeros(20)]), anchors=anchors)
    high, low = example.anchor_shrunk(extreme)
    assert population_mean < high < 1 and 0 < low < population_mean


def test_one_weight_space_and_random_search(example):
    from pymoo.optimize import minimize
    from pymoo.problems import get_problem

    merge = {"merge_method": "linear", "models": [{"model": "a", "parameters": {"weight": 0.5}}, {"model": "b"}]}
    space = example.OneWeight(SimpleNamespace(merge=merge, evolve=SimpleNamespace(space_options={"range": [0, 2]})))
    config = space.to_config(np.array([0.25]))
    assert [m["parameters"]["weight"] for m in config["models"]] == [0.5, 0.5]
    assert merge["models"][1] == {"model": "b"}  # the input is not changed
    assert space.dims == 1 and "2 models" in space.describe()
    factory = example.RandomSearch()
    result = minimize(get_problem("sphere", n_var=2), factory(n_points_per_iteration=10), ("n_gen", 3), seed=0)
    assert result.algorithm.evaluator.n_eval == 30 and np.isfinite(result.F).all()


def test_the_example_config_of_plugins_md_validates(registered, tmp_path):
    """The evolve: section docs/plugins.md shows, with the example registered, passes every check."""
    from mergekit_ext.config import load_config
    from mergekit_ext.spaces.genes import space_for

    page = (DOCS / "plugins.md").read_text(encoding="utf-8")
    block = re.search(r"```yaml\n(merge_method:.*?)```", page, re.S).group(1)
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "config.json").write_text('{"num_hidden_layers": 2}')
    path = tmp_path / "config.yaml"
    path.write_text(block.replace("/models/", f"{tmp_path}/"))
    space = space_for(load_config(path))
    assert isinstance(space, registered.OneWeight)


def test_the_example_command(registered, population, tmp_path, capsys):
    from merge3_plugin.cli import main
    from merge3_plugin.extraction import extract

    path = extract(population[0], 5, "every-kth").save(tmp_path / "anchored.json")
    assert main(["anchors", str(path)]) == 0
    out = capsys.readouterr().out
    assert "5 anchors (every-kth) of 200 items" in out and out.count("doc_id") == 5
