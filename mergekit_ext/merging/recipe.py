"""Multi-stage merge recipes: what one mergekit config cannot say, in the form `mergekit-multi` runs.

One mergekit config has one merge method. A candidate that merges different layers with different
methods (the LFS space) is a *recipe*: a list of mergekit configs, the YAML documents of one file,
each named stage a merge of its own, and one unnamed final config that stacks the stages' layers
with `passthrough` (a plain copy, so nothing is rounded twice):

    name: lfs-group0                  # layers 0-3, merged with TIES
    merge_method: ties
    slices: [{sources: [{model: /m/expert-math, layer_range: [0, 4], parameters: {...}}, ...]}]
    ---
    name: lfs-group1                  # layers 4-7, with SLERP
    ...
    ---
    merge_method: passthrough
    slices:
    - sources: [{model: lfs-group0, layer_range: [0, 4]}]
    - sources: [{model: lfs-group1, layer_range: [0, 4]}]

`mergekit-multi best.yaml --intermediate-dir DIR --out-path ./merged --no-lazy` builds it. In
memory nothing is written: each stage merges only the layers the final config takes from it (and
the embeddings from the first slice's stage, the final norm and head from the last one's, as
mergekit's planner takes them), straight into the live model, bit-identical to the files.
"""

from __future__ import annotations

from dataclasses import dataclass


def is_recipe(candidate) -> bool:
    """A candidate is either one mergekit config (a dict) or a recipe (a list of them)."""
    return isinstance(candidate, list)


@dataclass(frozen=True)
class StackedPart:
    """Layers [start, stop) of a stage's output, placed at `offset` in the final model."""

    stage: dict  # the stage's mergekit config, without its name
    start: int
    stop: int
    offset: int
    embeddings: bool  # the final model's pre-layer weights come from this stage (the first slice)
    head: bool  # and its post-layer weights (final norm, lm_head) from this one (the last slice)


def stacked_parts(recipe: list[dict]) -> tuple[list[StackedPart], dict]:
    """The parts of a recipe whose final config stacks layers of its stages, and that final config.
    Raises ValueError for any other shape (merge3 merges only these in memory)."""
    stages, final = {}, None
    for doc in recipe:
        doc = dict(doc)
        name = doc.pop("name", None)
        if name is None:
            if final is not None:
                raise ValueError("a recipe has one unnamed (final) config; this one has several")
            final = doc
        elif name in stages:
            raise ValueError(f"a recipe names each stage once; {name!r} is named twice")
        else:
            stages[name] = doc
    if final is None or final.get("merge_method") != "passthrough" or not final.get("slices"):
        raise ValueError("the final config of a recipe must stack slices with merge_method: passthrough")
    parts, offset = [], 0
    slices = final["slices"]
    for i, piece in enumerate(slices):
        sources = piece.get("sources") or []
        if len(sources) != 1 or sources[0].get("model") not in stages or piece.get("parameters"):
            raise ValueError(f"slice {i} of the final config must take one named stage's layers, unscaled")
        start, stop = sources[0]["layer_range"]
        parts.append(StackedPart(stages[sources[0]["model"]], int(start), int(stop), offset,
                                 embeddings=i == 0, head=i == len(slices) - 1))
        offset += int(stop) - int(start)
    return parts, final


def recipe_command(yaml_name: str, seed: int | None = None) -> str:
    """The mergekit-multi line that builds a recipe exactly. --no-lazy: mergekit-multi would otherwise
    reuse any intermediate model of the same name already in the folder, from another recipe."""
    extra = f" --random-seed {seed}" if seed is not None else ""
    return f"mergekit-multi {yaml_name} --intermediate-dir ./intermediate --out-path ./merged --no-lazy{extra}"
