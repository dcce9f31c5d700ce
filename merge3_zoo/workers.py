"""The three kinds of build job, each run in a worker process with one torch thread.

One thread per process: on 2 cores two single-threaded jobs beat one two-threaded job for
models this small, and a fixed thread count keeps float results identical run to run.
"""

from __future__ import annotations

import copy
import ctypes
import logging
import os
import shutil
import signal
import time
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager, nullcontext
from dataclasses import asdict
from multiprocessing import get_context
from pathlib import Path

import yaml

from .numerics import float_paths, is_portable, portable_children, use_portable_floats
from .recipe import ModelShape
from .tokenizer import codec_for

DONE = ".done"  # written last into every finished model/response folder: resumable builds


def _die_with_parent() -> None:
    """Linux: this worker is killed when the build process dies, even by SIGKILL (which runs no clean-up
    of the process pool): no orphan keeps training, and the build resumes cleanly when run again."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
    except OSError:
        return  # not Linux/glibc: orphans finish their job and exit
    parent = os.getppid()
    libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before the line above
        os.kill(os.getpid(), signal.SIGKILL)


@contextmanager
def worker_pool(n_workers: int, hf_home: str, log_path: str, portable: bool = True):
    """Fresh (spawned) worker processes, each set up by `init_worker`; `portable`: on the float paths
    every x86 CPU with AVX2 shares (numerics.py), which a forked child of a process with torch loaded could not take."""
    # workers start when jobs are submitted, so the environment they inherit stays set throughout
    with portable_children() if portable else nullcontext(), \
            ProcessPoolExecutor(n_workers, mp_context=get_context("spawn"), initializer=init_worker,
                                initargs=(hf_home, log_path, portable)) as pool:
        yield pool


def init_worker(hf_home: str, log_path: str, portable: bool = True) -> None:
    if portable:
        use_portable_floats()  # first: torch reads these switches when it loads (numerics.py says why)
    _die_with_parent()
    # The build draws one progress bar of its own; what libraries print goes to the build log.
    fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ["TQDM_DISABLE"] = "1"
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    os.environ.setdefault("HF_DATASETS_CACHE", str(Path(hf_home) / "datasets"))
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    import torch

    torch.set_num_threads(1)
    for name in ("lm-eval", "lm_eval", "mergekit", "datasets", "transformers", "accelerate"):
        logging.getLogger(name).setLevel(logging.ERROR)


def is_done(path: Path) -> bool:
    return (path / DONE).exists()


def mark_done(path: Path) -> None:
    (path / DONE).write_text("")


def _save(model, codec, path: Path, dtype: str = "float32") -> None:
    import torch

    tmp = path.with_name(path.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if dtype == "float32":
        model.save_pretrained(tmp)
    else:  # trained in float32, saved as the world's checkpoints are (a copy: training may go on)
        copy.deepcopy(model).to(getattr(torch, dtype)).save_pretrained(tmp)
    codec.save(tmp)
    shutil.rmtree(path, ignore_errors=True)
    tmp.rename(path)
    mark_done(path)


def train_job(run: dict, shape: dict, seed_offset: int, models_root: str, batch_size: int,
              tokenizer_folder: str | None = None, dtype: str = "float32", portable: bool = True) -> float:
    """Trains one run (from scratch or from its parent) and saves it plus its checkpoints.
    `tokenizer_folder`: a pre-trained base's, for a world built on one (else the character codec);
    `portable`: refused unless this worker runs on the portable float paths."""
    from transformers import LlamaForCausalLM

    from .training import new_model, train

    if portable and not is_portable():  # weights that only this kind of CPU would give
        raise RuntimeError(f"train_job runs in a worker_pool() process on the portable float paths "
                           f"(numerics.py); this one computes with {float_paths()}")
    start = time.perf_counter()
    root = Path(models_root)
    codec = codec_for(tokenizer_folder)
    seed = run["seed"] + 1000 * seed_offset
    if run["parent"] is None:
        model = new_model(ModelShape(**shape), codec, seed)
    else:
        model = LlamaForCausalLM.from_pretrained(root / run["parent"], dtype="float32")
    checkpoints = set(run["checkpoints"])

    def on_step(step: int, loss: float) -> None:
        if step + 1 in checkpoints:
            _save(model, codec, root / f"{run['name']}-s{step + 1}", dtype)
            model.train()

    train(model, codec, run["mixture"], run["steps"], run["lr"], seed, batch_size=batch_size,
          max_levels=run["max_levels"], on_step=on_step, trainable_layers=run.get("trainable_layers", 0))
    _save(model, codec, root / run["name"], dtype)
    return time.perf_counter() - start


def mergekit_config(merge: dict, models_root: str, dtype: str = "float32") -> dict:
    """The plain mergekit YAML (as a dict) for one recipe merge: users can re-run it as is."""
    root = Path(models_root)
    models = []
    for name, weight in merge["weights"].items():
        params = {"weight": weight}
        if merge.get("density") is not None:
            params["density"] = merge["density"]
        models.append({"model": str(root / name), "parameters": params})
    config = {"merge_method": merge["method"], "models": models, "dtype": dtype}
    if merge["method"] != "linear":
        config["base_model"] = str(root / "base")
    return config


def merge_job(merge: dict, models_root: str, tokenizer_folder: str | None = None, dtype: str = "float32") -> float:
    from mergekit.config import MergeConfiguration
    from mergekit.merge import MergeOptions, run_merge

    start = time.perf_counter()
    out = Path(models_root) / merge["name"]
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    config = mergekit_config(merge, models_root, dtype)
    run_merge(MergeConfiguration.model_validate(config), str(tmp),
              options=MergeOptions(copy_tokenizer=False, lazy_unpickle=False, quiet=True))
    codec_for(tokenizer_folder).save(tmp)
    (tmp / "mergekit_config.yml").write_text(yaml.safe_dump(config, sort_keys=False))
    shutil.rmtree(out, ignore_errors=True)
    tmp.rename(out)
    mark_done(out)
    return time.perf_counter() - start


def eval_job(name: str, model_dir: str, tasks_dir: str, task_names: list[str], responses_root: str,
             batch_size: int) -> tuple[dict, float]:
    from .evaluate import evaluate_model

    start = time.perf_counter()
    out = Path(responses_root)
    shutil.rmtree(out / name, ignore_errors=True)  # a half-written folder from an interrupted build
    results = evaluate_model(name, Path(model_dir), Path(tasks_dir), task_names, out, batch_size)
    mark_done(out / name)
    return results, time.perf_counter() - start


def run_to_dict(run) -> dict:
    return asdict(run)
