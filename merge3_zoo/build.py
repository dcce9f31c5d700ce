"""`merge3 zoo build`: plan the toy world's jobs, run them on worker processes, write zoo.json.

zoo.json is written last, so a folder without it is never taken for a finished zoo. A build
in progress carries a marker file; re-running an interrupted build resumes in the same folder
from the jobs already done (each model and response folder is marked when complete). Task YAMLs
hold absolute data paths, which is why a build is not made elsewhere and moved.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from collections import defaultdict
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from merge3_plugin import __version__
from merge3_plugin.errors import UserError
from merge3_plugin.files import cache_root, check_writable, write_atomic

from . import workers
from .eta import BuildClock, format_left, job_units
from .manifest import MANIFEST, Zoo, metric_key
from .matters import merging_table
from .numerics import cpu_has_avx2
from .pretrained import check_can_convert, converted_model
from .recipe import PRESETS, Preset
from .tasks import TASKS, write_tasks, write_val_task

IN_PROGRESS = ".merge3-build-in-progress"


def default_cache() -> Path:
    return cache_root() / "zoo"


@dataclass
class Job:
    kind: str  # train | merge | eval
    key: str  # unique: the model it produces, or eval:<model>
    needs: list[str]
    args: tuple
    produces: list[str] = field(default_factory=list)


def plan(preset: Preset, seed: int, root: Path) -> tuple[list[Job], dict[str, dict]]:
    """All jobs of a build and every model's manifest row (without accuracies)."""
    models_root, tasks_dir, responses = root / "models", root / "tasks", root / "responses"
    # a world on a pre-trained base uses the base's tokenizer everywhere; its base is converted, not trained
    tokenizer = str(models_root / "base") if preset.pretrained else None
    jobs: list[Job] = []
    rows: dict[str, dict] = {}
    for run in preset.runs:
        produced = [f"{run.name}-s{step}" for step in run.checkpoints] + [run.name]
        recipe = {"kind": "train", **workers.run_to_dict(run)}
        for name in produced:
            is_ckpt = name != run.name
            rows[name] = {
                "name": name,
                "path": f"models/{name}",
                "role": "population" if is_ckpt else run.role,
                "parent": run.name if is_ckpt else run.parent,
                "recipe": {**recipe, "steps": int(name.rsplit("-s", 1)[1])} if is_ckpt else recipe,
                "seed": run.seed + 1000 * seed,
            }
        if preset.pretrained and run.role == "base":
            rows[run.name]["recipe"] = {"kind": "pretrained", "source": preset.pretrained}
            continue  # made before the workers start (see pretrained_base)
        jobs.append(Job("train", run.name, [run.parent] if run.parent else [],
                        (workers.run_to_dict(run), asdict(preset.shape), seed, str(models_root), preset.batch_size,
                         tokenizer, preset.dtype, preset.float_paths == "portable"),
                        produced))
    for merge in preset.merges:
        spec = asdict(merge)
        needs = sorted(set(merge.weights) | ({"base"} if merge.method != "linear" else set()))
        rows[merge.name] = {
            "name": merge.name,
            "path": f"models/{merge.name}",
            "role": merge.role,
            "parent": "base" if merge.method != "linear" else None,
            "recipe": {"kind": "merge", "mergekit": workers.mergekit_config(spec, "models", preset.dtype)},
            "seed": None,
        }
        jobs.append(Job("merge", merge.name, needs, (spec, str(models_root), tokenizer, preset.dtype), [merge.name]))
    for name in preset.heldout:
        if name not in rows:
            raise ValueError(f"recipe {preset.name}: heldout model {name!r} is not in the recipe")
        rows[name]["role"] = "heldout"
    task_names = [t.name for t in TASKS]
    for name in rows:
        jobs.append(Job("eval", f"eval:{name}", [name],
                        (name, str(models_root / name), str(tasks_dir), task_names, str(responses), preset.batch_size)))
    return jobs, rows


@dataclass
class BuildResult:
    zoo: Zoo
    cached: bool
    seconds: float

    def summary(self) -> str:
        head = f"toy world {'(from cache) ' if self.cached else ''}at {self.zoo.root} in {self.seconds:.1f} s"
        return "\n".join([head, self.zoo.describe()])


def _resolve_out(preset: Preset, seed: int, out: Path | None, force: bool) -> Path:
    recipe_hash = preset.recipe_hash(seed)
    if out is None:
        target = default_cache() / f"{preset.name}-{recipe_hash}"
        if force and target.exists():
            shutil.rmtree(target)  # our own cache entry: safe to replace
        return target
    out = out.expanduser().resolve()
    if out.exists():
        if not out.is_dir():
            raise UserError("exists and is not a directory", param="out", value=out)
        manifest = out / MANIFEST
        if manifest.exists():
            return out  # a finished zoo: reused if its recipe matches, refused otherwise (below)
        if any(out.iterdir()) and not (out / IN_PROGRESS).exists():
            raise UserError(f"folder exists, is not empty and holds no {MANIFEST}; "
                            "refusing to write into it (choose a new or empty folder)", param="out", value=out)
    return out


def cached_zoo_path(preset_name: str, seed: int = 0) -> Path:
    """Where `merge3 zoo build` keeps the zoo of a preset and seed; an error if it is not built yet."""
    if preset_name not in PRESETS:
        raise UserError(f"unknown preset {preset_name!r}; choose one of {', '.join(PRESETS)}", param="preset")
    root = default_cache() / f"{preset_name}-{PRESETS[preset_name].recipe_hash(seed)}"
    if not (root / MANIFEST).exists():
        raise UserError(f"no finished {preset_name} zoo (seed {seed}) at {root}; run `merge3 zoo build"
                        f"{'' if preset_name == 'default' else ' --preset ' + preset_name}` first")
    return root


def build_zoo(preset_name: str, out: Path | str | None = None, seed: int = 0, workers: int | None = None,
              force: bool = False, progress: bool = True) -> BuildResult:
    """Builds (or finds in the cache) the toy world of `preset_name`; see the module docstring."""
    start = time.perf_counter()
    if preset_name not in PRESETS:
        raise UserError(f"unknown preset {preset_name!r}; choose one of {', '.join(PRESETS)}", param="preset")
    preset = PRESETS[preset_name]
    if preset.pretrained:
        check_can_convert(preset.pretrained)
    if preset.float_paths == "portable" and not cpu_has_avx2():
        raise UserError("the toy worlds train on AVX2 float paths, so that a seed gives the same weights on any "
                        "machine (merge3_zoo/numerics.py); this CPU has no AVX2", param="preset", value=preset_name)
    root = _resolve_out(preset, seed, Path(out) if out is not None else None, force)
    recipe_hash = preset.recipe_hash(seed)
    if (root / MANIFEST).exists():
        zoo = Zoo.load(root)
        if zoo.recipe_hash != recipe_hash:
            raise UserError(f"holds a zoo of another recipe ({zoo.preset}, seed {zoo.seed}, "
                            f"hash {zoo.recipe_hash}); choose another folder", param="out", value=root)
        if not force:
            (root / IN_PROGRESS).unlink(missing_ok=True)  # left by a build killed after its manifest
            for task in zoo.tasks:  # zoos built before the _val tasks existed (a copy may hold no task files)
                task_file = zoo.tasks_dir / f"{task['name']}.yaml"
                if task_file.exists():
                    write_val_task(task_file)
            return BuildResult(_add_lineage(zoo), True, time.perf_counter() - start)
        raise UserError("force would replace a finished zoo; delete it yourself if you mean it", param="out", value=root)
    check_writable(root)
    marker = root / IN_PROGRESS
    if marker.exists():  # an interrupted build: resume it if it is ours
        if json.loads(marker.read_text()).get("recipe_hash") != recipe_hash:
            raise UserError("holds an unfinished build of another recipe; choose another folder", param="out", value=root)
    else:
        try:
            root.mkdir(parents=True, exist_ok=True)
            marker.write_text(json.dumps({"recipe_hash": recipe_hash}))
        except OSError as err:
            raise UserError(f"cannot create it: {err.strerror}", param="out", value=root) from None
    timings = _run_build(preset, seed, root, workers, progress)
    zoo = _finish(preset, seed, root, timings)
    (root / IN_PROGRESS).unlink()
    return BuildResult(zoo, False, time.perf_counter() - start)


def _run_build(preset: Preset, seed: int, root: Path, n_workers: int | None, progress: bool) -> dict:
    wall = time.perf_counter()
    task_rows = write_tasks(root / "tasks", seed, preset.n_test, preset.n_val, preset.n_train, preset.dialect)
    write_atomic(root / "tasks.json", json.dumps(task_rows, indent=1))
    jobs, rows = plan(preset, seed, root)
    write_atomic(root / "models.json", json.dumps(rows, indent=1))
    (root / "models").mkdir(exist_ok=True)
    (root / "responses").mkdir(exist_ok=True)
    if preset.pretrained:
        pretrained_base(preset.pretrained, root / "models" / "base", log=print if progress else _quiet)
    timings: dict[str, float] = defaultdict(float)
    accuracy: dict[str, dict] = {}
    done_models = {name for name in rows if workers.is_done(root / "models" / name)}
    pending = []
    for job in jobs:
        if job.kind == "eval":
            name = job.needs[0]
            cached = root / "responses" / name / "accuracy.json"
            if workers.is_done(root / "responses" / name) and cached.exists():
                accuracy[name] = json.loads(cached.read_text())
                continue
        elif all(p in done_models for p in job.produces):
            continue
        pending.append(job)
    n_workers = n_workers or min(4, os.cpu_count() or 1)
    clock = BuildClock({j.key: job_units(j.kind, j.args, preset.n_test, len(TASKS)) for j in pending},
                       {j.key: j.kind for j in pending}, n_workers, priors=preset.pretrained is None)
    # tqdm's own forecast counts jobs, which differ a thousandfold in work: ours weighs them (eta.py)
    bar = tqdm(total=len(jobs), initial=len(jobs) - len(pending), desc="zoo build", unit="job",
               disable=not progress, file=sys.stderr, dynamic_ncols=True,
               bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} jobs [{elapsed}, {postfix}]")
    bar.set_postfix_str(format_left(clock.seconds_left()))
    last_done = ""
    with workers.worker_pool(n_workers, str(root / "hf"), str(root / "build.log"),
                             portable=preset.float_paths == "portable") as pool:
        running = {}
        while pending or running:
            ready = [j for j in pending if all(n in done_models for n in j.needs)]
            for job in ready:
                pending.remove(job)
                fn = {"train": workers.train_job, "merge": workers.merge_job, "eval": workers.eval_job}[job.kind]
                running[pool.submit(fn, *job.args)] = job
            if not running:
                raise RuntimeError(f"zoo build: jobs wait on models no job makes: {[j.key for j in pending]}")
            finished, _ = wait(running, timeout=5, return_when=FIRST_COMPLETED)
            if not finished:  # a long job: the forecast counts down meanwhile
                bar.set_postfix_str(format_left(clock.seconds_left()) + last_done)
                continue
            for future in finished:
                job = running.pop(future)
                result = future.result()  # a worker's exception stops the build here, with its traceback
                if job.kind == "eval":
                    results, seconds = result
                    name = job.needs[0]
                    accuracy[name] = {t.name: float(results[t.name][metric_key(t.metric)]) for t in TASKS}
                    write_atomic(root / "responses" / name / "accuracy.json", json.dumps(accuracy[name]))
                else:
                    seconds = result
                    done_models.update(job.produces)
                timings[job.kind] += seconds
                clock.finished(job.key, seconds)
                last_done = f"; done: {job.kind} {job.key.removeprefix('eval:')}"
                bar.set_postfix_str(format_left(clock.seconds_left()) + last_done)
                bar.update(1)
    bar.close()
    timings["wall"] = time.perf_counter() - wall
    write_atomic(root / "accuracy.json", json.dumps(accuracy, indent=1, sort_keys=True))
    return dict(timings)


def _quiet(message: str) -> None:
    pass


def pretrained_base(source: str, target: Path, log=print) -> None:
    """The world's base model: the pre-trained checkpoint, converted once per machine (cached with the
    downloads) and linked into the zoo (copied where links cannot be made)."""
    if workers.is_done(target):
        return
    converted = converted_model(source, log=log)
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for file in converted.iterdir():
        if file.is_file() and not file.name.startswith("."):
            try:
                os.link(file, tmp / file.name)
            except OSError:
                shutil.copy2(file, tmp / file.name)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    workers.mark_done(target)


def _finish(preset: Preset, seed: int, root: Path, timings: dict) -> Zoo:
    rows = json.loads((root / "models.json").read_text())
    tasks = json.loads((root / "tasks.json").read_text())
    accuracy = json.loads((root / "accuracy.json").read_text())
    for name, row in rows.items():
        row["accuracy"] = accuracy[name]
        row["responses"] = f"responses/{name}"
    table = merging_table(preset, accuracy)
    manifest = {
        "format": 1,
        "merge3_version": __version__,
        "preset": preset.name,
        "seed": seed,
        "recipe_hash": preset.recipe_hash(seed),
        "recipe": preset.to_dict(),
        "tokenizer": "models/base",
        "tasks_dir": "tasks",
        "responses_dir": "responses",
        "tasks": list(tasks.values()),
        "models": list(rows.values()),
        "merging_matters": table,
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
    }
    for scratch in ("models.json", "tasks.json", "accuracy.json"):
        (root / scratch).unlink()
    shutil.rmtree(root / "hf", ignore_errors=True)  # the datasets cache: rebuilt on demand
    manifest["lineage"] = Zoo(root, manifest).lineage()  # what `merge3 fit --lineage zoo.json` reads
    write_atomic(root / MANIFEST, json.dumps(manifest, indent=1))  # last: its presence means finished
    return Zoo.load(root)


def _add_lineage(zoo: Zoo) -> Zoo:
    """Zoos built before the manifest carried its lineage get it on first use (the file stays valid)."""
    if "lineage" not in zoo.data:
        zoo.data["lineage"] = zoo.lineage()
        write_atomic(zoo.root / MANIFEST, json.dumps(zoo.data, indent=1))
    return zoo
