"""Which models are merges of which: `merged model -> [endpoint models]`, from a user's file.

Accepted: a YAML or JSON mapping (``ta-math-lang: [expert-math, expert-lang]``), or a document whose
top-level ``lineage`` field is that mapping (a toy-world `zoo.json` carries one). Names are
lm-eval's model folder names.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from .errors import UserError


def load_lineage(path: Path | str) -> dict[str, list[str]]:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError):
        raise UserError(f"{path}: no such lineage file") from None
    try:
        data = yaml.safe_load(text)  # JSON is YAML too
    except yaml.YAMLError as err:
        raise UserError(f"{path}: not valid YAML/JSON ({err})") from None
    if isinstance(data, dict) and "models" in data and "recipe_hash" in data and "lineage" not in data:
        raise UserError(f"{path}: a toy-world manifest without a 'lineage' field; run `merge3 zoo build` "
                        "once more (it adds the field to a finished zoo without rebuilding it)")
    if isinstance(data, dict) and isinstance(data.get("lineage"), dict):
        data = data["lineage"]
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping 'merged model: [endpoint models]'")
    out = {}
    for merged, endpoints in data.items():
        if not isinstance(endpoints, list) or len(endpoints) < 1 or not all(isinstance(e, str) for e in endpoints):
            raise UserError(f"{path}: field {merged!r} must be a list of endpoint model names")
        out[str(merged)] = endpoints
    return out

