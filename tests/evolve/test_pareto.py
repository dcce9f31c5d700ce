"""Several objectives (issue #14): the hypervolume of a front, the order of Pareto points (best.yaml
first), and the Pareto plot for two and for three or more objectives."""

from __future__ import annotations

import numpy as np
import pytest

from mergekit_ext.select.pareto import archive_front, best_first, hypervolume, plot_front


def test_hypervolume_is_the_share_of_the_unit_box_a_front_dominates():
    assert hypervolume([[0.5, 0.5]]) == pytest.approx(0.25)
    # two points: 0.5*0.5 + 0.8*0.2 - their overlap 0.5*0.2
    assert hypervolume([[0.5, 0.5], [0.8, 0.2]]) == pytest.approx(0.31)
    assert hypervolume([[0.5, 0.5], [0.4, 0.4]]) == pytest.approx(0.25)  # a dominated point adds nothing
    assert hypervolume([[1.0, 1.0, 1.0]]) == pytest.approx(1.0)
    # candidates cut by the budget (-1e9 after negation) or failed do not count
    assert hypervolume([[0.5, 0.5], [-1e9, -1e9]]) == pytest.approx(0.25)
    assert hypervolume(np.empty((0, 2))) == 0.0


def test_the_archive_front_keeps_every_non_dominated_candidate_ever_scored():
    """What NSGA-III's survivors may drop stays in the archive's front, so its hypervolume never falls."""
    records = [{"genes": [0.1 * i], "objectives": o} for i, o in
               enumerate([[0.2, 0.9], [0.5, 0.5], [0.9, 0.1], [0.4, 0.4], [0.6, 0.6]])]
    X, F = archive_front(records)
    assert sorted(map(tuple, F.tolist())) == [(0.2, 0.9), (0.6, 0.6), (0.9, 0.1)]
    assert sorted(X[:, 0].round(1).tolist()) == [0.0, 0.2, 0.4]
    volumes = [hypervolume(archive_front(records[:n])[1]) for n in range(1, len(records) + 1)]
    assert volumes == sorted(volumes) and volumes[-1] > volumes[0]


def test_the_highest_mean_comes_first_and_ties_keep_their_order():
    F = np.array([[0.2, 0.9], [0.6, 0.6], [0.9, 0.3], [0.3, 0.9]])
    assert best_first(F).tolist() == [1, 2, 3, 0]  # means 0.55, 0.6, 0.6, 0.6: ties stay in order


@pytest.mark.parametrize("n_obj", [2, 3, 5])
def test_the_pareto_plot_is_drawn_for_any_number_of_objectives(tmp_path, n_obj):
    rng = np.random.default_rng(0)
    values = rng.random((20, n_obj))
    plot_front(values, values[:4], [f"task{j}" for j in range(n_obj)], tmp_path)
    from matplotlib.image import imread

    image = imread(tmp_path / "pareto.png")[..., :3]
    # a scatter for two objectives, parallel coordinates (one axis per objective, wider) beyond
    assert image.shape[:2] == ((550, 550) if n_obj == 2 else (440, round(110 * (1.6 * n_obj + 2))))
    red = (image[..., 0] > 0.9) & (image[..., 1] < 0.1) & (image[..., 2] < 0.1)  # best.yaml, marked in red
    blue = image[..., 2] - image[..., 0] > 0.25  # the other points, tab:blue (half transparent)
    assert red.sum() > 50 and blue.sum() > 50
