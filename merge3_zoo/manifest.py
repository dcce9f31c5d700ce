"""zoo.json: the toy world's manifest, and the `Zoo` view that other components read it through."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from merge3_plugin.errors import UserError

from .matters import format_table

MANIFEST = "zoo.json"
ROLES = ("base", "expert", "population", "heldout")
_REQUIRED = ("format", "preset", "seed", "recipe_hash", "tasks", "models", "merging_matters")


def metric_key(metric: str, filter_name: str = "none") -> str:
    """lm-eval's results key for a metric under a filter, e.g. 'exact_match,none'."""
    return f"{metric},{filter_name}"


@dataclass
class Zoo:
    root: Path
    data: dict

    @classmethod
    def load(cls, root: Path | str) -> "Zoo":
        root = Path(root)
        path = root / MANIFEST if root.is_dir() else root
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise UserError(f"{path}: no toy-world manifest here (run `merge3 zoo build`)") from None
        except json.JSONDecodeError as err:
            raise UserError(f"{path}: not valid JSON ({err.msg} at line {err.lineno})") from None
        missing = [k for k in _REQUIRED if k not in data]
        if missing:
            raise UserError(f"{path}: missing field(s) {', '.join(missing)}")
        if data["format"] != 1:
            raise UserError(f"{path}: field 'format' is {data['format']!r}; this merge3 reads format 1")
        for i, model in enumerate(data["models"]):
            if model.get("role") not in ROLES:
                raise UserError(f"{path}: models[{i}].role is {model.get('role')!r}; expected one of {ROLES}")
        return cls(path.parent, data)

    # -- plain accessors -------------------------------------------------------------------------
    @property
    def preset(self) -> str:
        return self.data["preset"]

    @property
    def seed(self) -> int:
        return self.data["seed"]

    @property
    def recipe_hash(self) -> str:
        return self.data["recipe_hash"]

    @property
    def models(self) -> list[dict]:
        return self.data["models"]

    @property
    def tasks(self) -> list[dict]:
        return self.data["tasks"]

    @property
    def tasks_dir(self) -> Path:
        return self.root / self.data["tasks_dir"]

    @property
    def responses_dir(self) -> Path:
        return self.root / self.data["responses_dir"]

    def model(self, name: str) -> dict:
        for model in self.models:
            if model["name"] == name:
                return model
        raise UserError(f"{self.root / MANIFEST}: no model named {name!r}")

    def model_path(self, name: str) -> Path:
        return self.root / self.model(name)["path"]

    def names(self, *roles: str) -> list[str]:
        return [m["name"] for m in self.models if not roles or m["role"] in roles]

    def lineage(self) -> dict[str, list[str]]:
        """Merged model -> its endpoints: the models it merges, and the base of a task-vector merge
        (base + sum_j w_j (expert_j - base) mixes the base's ability in too)."""
        out = {}
        for m in self.models:
            config = m["recipe"].get("mergekit") if m["recipe"].get("kind") == "merge" else None
            if config:
                out[m["name"]] = [Path(entry["model"]).name for entry in config["models"]]
                if config.get("base_model"):
                    out[m["name"]].append(Path(config["base_model"]).name)
        return out

    # -- text ------------------------------------------------------------------------------------
    def describe(self) -> str:
        task_names = [t["name"] for t in self.tasks]
        counts = {role: len(self.names(role)) for role in ROLES}
        lines = [
            f"preset {self.preset}, seed {self.seed}, recipe {self.recipe_hash}: "
            + ", ".join(f"{n} {role}" for role, n in counts.items())
            + f" models; {len(task_names)} tasks x {self.tasks[0]['n_items']} test items",
            f"lm-eval tasks: lm_eval --include_path {self.tasks_dir} --tasks toy_world ...",
            "",
            f"{'model':<24}{'role':<11}" + "".join(f"{t:>13}" for t in task_names),
        ]
        order = {role: i for i, role in enumerate(ROLES)}
        for m in sorted(self.models, key=lambda m: (order[m["role"]], m["name"])):
            if m["role"] in ("base", "expert"):
                lines.append(f"{m['name']:<24}{m['role']:<11}"
                             + "".join(f"{m['accuracy'][t]:>13.3f}" for t in task_names))
        pop = [m for m in self.models if m["role"] in ("population", "heldout")]
        for t in task_names:
            values = sorted(m["accuracy"][t] for m in pop)
            if values:
                lines.append(f"  population {t}: min {values[0]:.3f}, median {values[len(values) // 2]:.3f}, "
                             f"max {values[-1]:.3f}")
        lines += ["", format_table(self.data["merging_matters"])]
        timings = self.data.get("timings_s", {})
        if timings:
            lines += ["", "build time (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items())]
        return "\n".join(lines)
