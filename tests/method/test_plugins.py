"""The plugin system: built-ins and entry-point plugins behind one lookup."""

from __future__ import annotations

import sys
import textwrap

import pytest

from merge3_plugin import hookspecs
from merge3_plugin.errors import UserError
from merge3_plugin.plugins import KINDS, lookup, new_plugin_manager, registry


def builtins_only():
    """merge3's built-ins and the evolve room's algorithms (a plugin of its own), no entry points."""
    import mergekit_ext.algorithms

    pm = new_plugin_manager(load_entry_points=False)
    pm.register(mergekit_ext.algorithms, name="mergekit_ext.algorithms")
    return pm


def test_every_kind_has_a_hook():
    for hook in KINDS.values():
        assert hasattr(hookspecs, hook)


def test_builtin_algorithms_build_pymoo_objects():
    from pymoo.algorithms.moo.nsga2 import NSGA2
    from pymoo.algorithms.soo.nonconvex.ga import GA

    pm = builtins_only()
    assert isinstance(lookup("algorithm", "ga", pm)(pop_size=8), GA)
    assert isinstance(lookup("algorithm", "nsga2", pm)(pop_size=8), NSGA2)


def test_unknown_name_lists_the_available_ones():
    pm = builtins_only()
    with pytest.raises(UserError, match=r"unknown algorithm 'gaa'; available: .*\bga\b"):
        lookup("algorithm", "gaa", pm)
    with pytest.raises(UserError, match="unknown plugin kind"):
        registry("optimizer", pm)


@pytest.fixture
def third_party_plugin(tmp_path, monkeypatch):
    """A real installed distribution (dist-info on sys.path) declaring a `merge3` entry point."""
    pkg = tmp_path / "acme_merge3.py"
    pkg.write_text(textwrap.dedent(
        """
        from merge3_plugin.hookspecs import hookimpl

        def top_k(bundle, n, seed):
            return list(range(n)), [1.0 / n] * n

        @hookimpl
        def merge3_anchor_extractors():
            return {"acme-top-k": top_k}

        def acme_ga(**kw):
            return ("acme", kw)

        @hookimpl
        def merge3_algorithms():
            return {"acme-ga": acme_ga}
        """
    ))
    dist = tmp_path / "acme_merge3-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-merge3\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[merge3]\nacme = acme_merge3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    sys.modules.pop("acme_merge3", None)


def test_entry_point_plugins_are_found(third_party_plugin):
    """An installed distribution's entry point is loaded, and the product's own calls use it by name."""
    import acme_merge3

    from merge3_plugin.extraction import extract
    from merge3_plugin.fitting import fit_bundle
    from merge3_plugin.plugins import plugin_manager
    from tests.irt_helpers import synthetic_matrix

    pm = new_plugin_manager()
    assert registry("extractor", pm)["acme-top-k"] is acme_merge3.top_k
    algorithms = registry("algorithm", pm)
    assert "ga" in algorithms and algorithms["acme-ga"] is acme_merge3.acme_ga  # side by side
    plugin_manager.cache_clear()  # the product's manager, built as a new process builds it
    try:
        bundle = fit_bundle(synthetic_matrix(30, 40, 1, seed=0)[0], dims=1)
        anchors = extract(bundle, 4, "acme-top-k").anchors
        assert anchors.method == "acme-top-k" and anchors.doc_ids == bundle.doc_ids[:4]
    finally:
        plugin_manager.cache_clear()


def test_two_plugins_claiming_one_name_is_an_error():
    pm = builtins_only()

    class Clash:
        @hookspecs.hookimpl
        def merge3_algorithms(self):
            return {"ga": object}

    pm.register(Clash(), name="clash")
    with pytest.raises(UserError, match="algorithm 'ga' is provided by two plugins"):
        registry("algorithm", pm)


def test_every_builtin_satisfies_the_contract_of_its_kind():
    """The Protocols in merge3_plugin.contracts are what the built-ins are (a third party's too)."""
    from merge3_plugin.contracts import AlgorithmFactory, Estimator, Extractor

    pm = builtins_only()
    contract = {"extractor": Extractor, "estimator": Estimator, "algorithm": AlgorithmFactory}
    for kind, protocol in contract.items():
        found = registry(kind, pm)
        assert found, kind
        wrong = [name for name, impl in found.items() if not isinstance(impl, protocol)]
        assert not wrong, f"{kind}s not satisfying {protocol.__name__}: {wrong}"
    estimators = registry("estimator", pm)
    assert [n for n, e in estimators.items() if e.needs_endpoints] == ["mpirt", "gmpirt"]


def test_the_estimator_names_come_from_the_registry(monkeypatch):
    """A third party's estimator becomes a fitness target and an lm-eval metric of merge3 tasks, by
    registering it: no second list of names anywhere."""
    from merge3_plugin.contracts import FunctionEstimator
    from merge3_plugin.plugins import endpoint_estimators, names, plugin_manager

    class Extra:
        @hookspecs.hookimpl
        def merge3_estimators(self):
            return {"median-ish": FunctionEstimator(lambda state: state.anchor_mean),
                    "merged-ish": FunctionEstimator(lambda state: None, needs_endpoints=True)}

    plugin_manager().register(Extra(), name="extra-estimators")
    try:
        assert names("estimator")[:5] == ["anchor", "pirt", "gpirt", "mpirt", "gmpirt"]
        assert {"median-ish", "merged-ish"} <= set(names("estimator"))
        assert endpoint_estimators() == ["mpirt", "gmpirt", "merged-ish"]
    finally:
        plugin_manager().unregister(name="extra-estimators")


def test_unknown_names_suggest_the_nearest_one():
    from merge3_plugin.plugins import unknown_name

    message = unknown_name("estimator", "gpirtt", ["anchor", "pirt", "gpirt"])
    assert message == "unknown estimator 'gpirtt'; available: anchor, gpirt, pirt; did you mean 'gpirt'?"
    assert "did you mean" not in unknown_name("estimator", "zzz", ["anchor", "pirt"])
    many = unknown_name("task", "x", [f"t{i:03d}" for i in range(50)], limit=3)
    assert "t000, t001, t002, ... (50 in all)" in many


def test_an_adaptive_estimator_is_asked_by_the_loop_and_left_out_on_fixed_anchors():
    """`adaptive`, `adaptive-accuracy` (and a third party's AdaptiveEstimator) are fitness estimators that
    choose items as they go; on fixed anchors, where one lm-eval run cannot adapt, they do not apply."""
    from merge3_plugin.contracts import AdaptiveEstimator
    from merge3_plugin.estimation import estimate
    from merge3_plugin.extraction import extract
    from merge3_plugin.fitting import fit_bundle
    from merge3_plugin.plugins import adaptive_estimators, plugin_manager
    from tests.irt_helpers import synthetic_matrix

    assert {n: e.criterion for n, e in adaptive_estimators(builtins_only()).items()} == {
        "adaptive": "information", "adaptive-accuracy": "accuracy"}

    class Extra:
        @hookspecs.hookimpl
        def merge3_estimators(self):
            return {"my-adaptive": AdaptiveEstimator("accuracy")}

    plugin_manager().register(Extra(), name="extra-adaptive")
    try:
        assert "my-adaptive" in adaptive_estimators()
        matrix, _, _ = synthetic_matrix(30, 60, 1)
        bundle = extract(fit_bundle(matrix, dims=1), 10, "random", seed=0)
        out = estimate(bundle, matrix.scores[:2, bundle.anchor_columns()])
        assert "gpirt" in out and not {"adaptive", "adaptive-accuracy", "my-adaptive"} & set(out)
    finally:
        plugin_manager().unregister(name="extra-adaptive")
