"""Graded responses (issue #26): on a multiple-choice task, the probability a model gives the right
choice, a continuous response that says more about its ability than right or wrong.

A model's graded response to an item is the softmax of its choices' log-likelihoods (lm-eval's
`filtered_resps`) at the right one. The graded channel of a bundle has two sets of 2PL parameters on one
ability scale:

- `items`: fit on the population's graded responses (the Bernoulli likelihood with the response as a soft
  label), they measure a model's ability and choose an adaptive test's items;
- `predict`: each item's binary parameters at those same abilities (a logistic regression of right/wrong
  on the graded abilities), they predict the accuracy of the items a model was not asked.

So the estimate stays one of accuracy (observed right/wrong plus predicted rest), while the ability behind
it is measured from the richer response. A log without per-choice log-likelihoods (a generation task) has
no graded response: `choice_probability` says so, and the caller falls back to binary or refuses.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .bundle import Bundle, GradedChannel
from .errors import UserError
from .irt import fit_ability, fit_items, fit_items_at
from .responses import GRADED, ResponseMatrix, choice_probability

__all__ = ["GRADED", "choice_probability", "fit_graded"]


def fit_graded(bundle: Bundle, graded: ResponseMatrix, seed: int = 0) -> Bundle:
    """`bundle` with a graded channel fit on `graded` (the same logs read as choice probabilities): graded
    items on the bundle's training models at its d, abilities for its whole population, and the binary
    channel at those abilities from the bundle's own right/wrong scores."""
    scores = bundle.require_scores()
    rows = _rows(bundle, graded)
    position = {d: j for j, d in enumerate(graded.doc_ids)}
    columns = [position.get(d) for d in bundle.doc_ids]
    if any(c is None for c in columns):
        raise UserError(f"{graded.task}: the graded logs lack items of the bundle; fit both from the same logs")
    responses = graded.scores[np.ix_(rows, np.array(columns))]
    train = bundle.split_index("train")
    items, theta_train = fit_items(responses[train], dims=bundle.dims, seed=seed)
    theta = fit_ability(items, responses)  # every population model, validation ones too
    theta[train] = theta_train
    predict = fit_items_at(theta_train, scores[train])
    return replace(bundle, graded=GradedChannel(items, predict, theta))


def _rows(bundle: Bundle, graded: ResponseMatrix) -> np.ndarray:
    missing = [m for m in bundle.models if m not in graded.models]
    if missing:
        raise UserError(f"{graded.task}: no graded responses of {', '.join(missing[:5])} (the bundle's models)")
    return np.array([graded.models.index(m) for m in bundle.models])
