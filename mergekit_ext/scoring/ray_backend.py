"""The `ray` eval backend: a generation's candidates scored in parallel on Ray actors.

One actor per GPU (device cuda) or per CPU core: each loads the inputs once, builds its own live model
and fitness, and scores the candidates it is sent with `scoring.score_candidate`, the function the
serial backend runs. The driver (the `mergekit-evolve-lite` process) keeps the algorithm, the history
and the checkpoints; a candidate's record does not depend on which worker scored it, so a run gives the
serial backend's results. A worker that dies (killed, out of memory, its node lost) is replaced and its
candidate sent once more; if that one dies too, the candidate is recorded as failed.

`pip install 'merge3[ray]'`; `evolve.eval: {backend: ray, workers: N, address: auto}` (docs/evolve.md).
"""

from __future__ import annotations

import copy
import logging
import os
from collections import deque
from typing import Callable

from merge3_plugin.crashpoints import crash_point
from merge3_plugin.errors import UserError

from .candidate import Job, Scored, failed_record, score_candidate
from .failures import GenerationFailed

CPU_GROUP = 4  # on CPUs, the default is one worker per this many cores
SETUP_TIMEOUT = 1800  # seconds for a worker to be placed and load its models (a 70B model loads for minutes)

# passed to every worker when set here: where merge3's caches are, the hub kept offline, test crash points
FORWARDED_ENV = ("MERGE3_CACHE", "HF_HOME", "HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE",
                 "MERGE3_CRASH_AT", "TOKENIZERS_PARALLELISM")


class CandidateWorker:
    """A Ray actor (wrapped with `ray.remote` when the backend starts): one engine, many candidates."""

    def __init__(self, config, depth: int | None, life: int, threads: int):
        self.config, self.depth, self.life, self.threads = config, depth, life, threads
        self.engine = None

    def setup(self) -> int:
        """Load the inputs and build the live model and fitness; the worker's process id."""
        import torch

        from ..engine import build_engine

        torch.set_num_threads(self.threads)
        logging.getLogger().setLevel(logging.ERROR)  # a worker's console is Ray's log file
        self.engine = build_engine(self.config, depth=self.depth)
        return os.getpid()

    def score(self, job: Job, stage: str) -> Scored:
        # test crash points (crashpoints.py): a candidate that kills every worker that scores it, or
        # only the n-th worker started (life n)
        crash_point(f"candidate:{job.key}")
        crash_point(f"candidate:{job.key}:life{self.life}")
        return score_candidate(self.engine, job, self.engine.fitness_for(stage))


class RayBackend:
    def __init__(self, config, depth: int | None = None):
        import ray

        self.ray, self.actors = ray, []
        spec = config.evolve.eval
        self.started_ray = not ray.is_initialized()
        if self.started_ray:
            try:  # Ray's own console output (start-up banner, worker logs) stays in its session log folder
                ray.init(address=spec.address, include_dashboard=False, log_to_driver=False,
                         logging_level=logging.ERROR, configure_logging=True)
            except (ConnectionError, RuntimeError, ValueError) as err:
                where = "field 'evolve.eval.address'" if spec.address else "RAY_ADDRESS / a local Ray instance"
                raise UserError(f"{config.path}: {where}: cannot start or join Ray ({err})") from None
        try:
            self._start_workers(config, spec, depth)
        except BaseException:  # bad input, a worker that cannot load, Ctrl-C: no actor or Ray left behind
            self.close()
            raise

    def _start_workers(self, config, spec, depth) -> None:
        ray = self.ray
        self.gpu = spec.device.startswith("cuda")
        if self.gpu:  # each worker sees its one GPU as cuda (Ray sets CUDA_VISIBLE_DEVICES)
            config = _with_device(config, "cuda")
        kind = "GPU" if self.gpu else "CPU"
        available = int(ray.cluster_resources().get(kind, 0))
        largest_node = max((int(node["Resources"].get(kind, 0)) for node in ray.nodes() if node.get("Alive")),
                           default=0)
        # default: one worker per GPU; on CPUs one per CPU_GROUP cores (each holds its own copy of the models)
        self.workers = spec.workers or max(1, available if self.gpu else available // CPU_GROUP)
        if available == 0 or self.workers > available:
            what = "GPUs" if self.gpu else "CPU cores"
            raise UserError(f"{config.path}: field 'evolve.eval.workers': {self.workers} worker(s) asked for, but the "
                            f"Ray cluster has {available} {what}" + (f"; ask for at most {available}" if available
                                                                    else ""))
        # CPU threads per worker: an even share of the cores, but never more than one node has
        self.threads = 1 if self.gpu else max(1, min(available // self.workers, largest_node))
        self.config, self.depth = config, depth
        self.remote = ray.remote(CandidateWorker)
        self.started = 0  # workers started so far; the n-th is "life n" (crash points, logs)
        self.actors = [self._start() for _ in range(self.workers)]
        self._wait_ready(list(range(self.workers)))

    def _start(self):
        self.started += 1
        env = {name: os.environ[name] for name in FORWARDED_ENV if name in os.environ}
        env["OMP_NUM_THREADS"] = str(self.threads)
        return self.remote.options(num_cpus=0 if self.gpu else self.threads, num_gpus=1 if self.gpu else 0,
                                   max_restarts=0, runtime_env={"env_vars": env}).remote(
            self.config, self.depth, self.started, self.threads)

    def _wait_ready(self, slots: list[int]) -> None:
        """Every worker in `slots` has loaded its models; one that cannot (bad input, a bug) stops the run,
        and so do workers the cluster cannot place (no free GPU or cores) within SETUP_TIMEOUT seconds."""
        ray = self.ray
        refs = [self.actors[slot].setup.remote() for slot in slots]
        try:
            ray.get(refs, timeout=SETUP_TIMEOUT)
        except ray.exceptions.GetTimeoutError:
            raise UserError(f"field 'evolve.eval.workers': {len(slots)} Ray worker(s) did not start within "
                            f"{SETUP_TIMEOUT} s; the cluster may have no free {'GPU' if self.gpu else 'cores'} for "
                            f"them (ray status shows what is free)") from None
        except ray.exceptions.RayTaskError as err:
            raise _cause(err) from err

    def _replace(self, slot: int) -> None:
        try:
            self.ray.kill(self.actors[slot], no_restart=True)
        except Exception:  # already gone
            pass
        self.actors[slot] = self._start()
        self._wait_ready([slot])  # the others go on scoring meanwhile; their results wait for the next ray.wait

    def score(self, jobs: list[Job], stage: str, done: Callable[[Job, Scored], None]) -> None:
        ray = self.ray
        lost = _worker_lost_errors(ray)
        queue, idle = deque(jobs), deque(range(self.workers))
        running: dict = {}  # object ref -> (slot, job)
        deaths: dict[str, str] = {}  # candidate -> what its first worker died of
        while queue or running:
            while queue and idle:
                slot, job = idle.popleft(), queue.popleft()
                running[self.actors[slot].score.remote(job, stage)] = (slot, job)
            ready, _ = ray.wait(list(running), num_returns=1)
            for ref in ready:
                slot, job = running.pop(ref)
                try:
                    scored = ray.get(ref)
                except ray.exceptions.RayTaskError as err:  # raised in the worker: bad input or a bug
                    raise _cause(err) from err
                except lost as err:  # the worker is gone: killed, out of memory, its node lost
                    self._replace(slot)
                    idle.append(slot)
                    died = f"--- candidate {job.key}: its worker died ({type(err).__name__})\n{err}\n\n"
                    if job.key not in deaths:
                        deaths[job.key] = died
                        queue.appendleft(job)  # sent once more, to the next free worker
                        continue
                    reason = f"its worker died twice while scoring it ({type(err).__name__})"
                    scored = Scored(failed_record(job, reason), deaths[job.key] + died)
                else:
                    idle.append(slot)
                    if job.key in deaths:  # it died once, then scored: the death is still worth a log line
                        scored = Scored(scored.record, deaths[job.key] + (scored.traceback or ""))
                done(job, scored)

    def close(self) -> None:
        for actor in self.actors:
            try:
                self.ray.kill(actor, no_restart=True)
            except Exception:
                pass
        self.actors = []
        if self.started_ray and self.ray.is_initialized():
            self.ray.shutdown()


def _worker_lost_errors(ray) -> tuple:
    """The errors that mean a worker process or its node is gone (not an error of the candidate's own)."""
    names = ("RayActorError", "WorkerCrashedError", "OutOfMemoryError", "NodeDiedError")
    return tuple(getattr(ray.exceptions, name) for name in names if hasattr(ray.exceptions, name))


def _with_device(config, device: str):
    config = copy.copy(config)
    config.evolve = config.evolve.model_copy(deep=True)
    config.evolve.eval.device = device
    return config


def _cause(err) -> BaseException:
    """What a worker raised, as the driver should raise it: bad input, a stopped run and a file error
    (a model folder missing on a worker's node, a full disk) as themselves, anything else with its text."""
    cause = getattr(err, "cause", None)
    if isinstance(cause, (UserError, GenerationFailed, OSError)):
        return cause
    return RuntimeError(f"a Ray worker failed: {str(err).strip().splitlines()[-1] if str(err).strip() else err}")
