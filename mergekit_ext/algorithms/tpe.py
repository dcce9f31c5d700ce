"""`algorithm: tpe`: the model-based loop of "Fine, I'll Merge It Myself", with Optuna in SMAC's place.

Optuna's TPE sampler proposes candidates (a Bayesian model of good and bad genes, after
`n_startup_trials` random ones); with `evolve.racing` its HyperbandPruner is the intensifier: every
candidate climbs the anchor rungs (racing.climb) and is stopped where the pruner says so, against the
candidates of its bracket seen on that rung so far. The paper uses SMAC's random forest with a
Hyperband intensifier; Optuna installs in seconds and does the same job. All the optimisation is
Optuna's: this module only translates between its trials and pymoo's populations, so that the run
keeps pymoo's loop (budget, checkpoint.json after every "generation" of `pop_size` trials, replay on
resume).

Determinism: the sampler is seeded with evolve.seed, the study has a fixed name (Hyperband assigns
brackets by a hash of it and the trial number) and lives in memory; a resumed run tells Optuna every
recorded rung again (MergeSearch replays the history), so it proposes and prunes as the unbroken run.
"""

from __future__ import annotations

import numpy as np
from pymoo.core.algorithm import Algorithm
from pymoo.core.population import Population
from pymoo.util.display.single import SingleObjectiveOutput
from pymoo.util.optimum import filter_optimum

from merge3_plugin.errors import UserError

from .problem import NOT_EVALUATED

STUDY_NAME = "merge3"


class TPEHyperband(Algorithm):
    """Optuna's TPE over genes in [0, 1]^n_var, `pop_size` trials asked per pymoo generation (1: as
    sequential as the paper's loop); minimises F (MergeProblem negates the accuracies).

    With rungs (`use_rungs`, set by the run when evolve.racing is on), `report(row, anchors, value)` is
    the intensifier MergeSearch asks after each rung of the generation's row `row`."""

    def __init__(self, pop_size: int = 1, n_startup_trials: int = 10, multivariate: bool = False,
                 sampling=None, output=None, **kwargs):
        super().__init__(output=output or SingleObjectiveOutput(), **kwargs)
        self.pop_size = int(pop_size)
        self.n_startup_trials = int(n_startup_trials)
        self.multivariate = bool(multivariate)
        if sampling is not None and not hasattr(sampling, "rows"):
            raise UserError("field 'evolve.algorithm.sampling': tpe takes its first points from `warm_start: true`, "
                            "not from a sampling option")
        self.sampling = sampling  # evolve.warm_start: rows tried first (WarmStartSampling)
        self.rungs: list[int] | None = None
        self.eta = 3
        self._trials: list = []
        self._stopped: set[int] = set()  # rows of this generation the pruner stopped below the last rung

    def use_rungs(self, rungs: list[int], eta: int) -> None:
        """evolve.racing: anchors per rung, the last all of them (Hyperband's resources run from rungs[0]
        to rungs[-1]), and 1/eta, the share its successive halving keeps. Called before the run starts."""
        self.rungs, self.eta = list(rungs), int(eta)

    def _setup(self, problem, **kwargs):
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)  # a line per trial otherwise
        # several trials asked at once: the constant liar keeps TPE from proposing the same point to each
        sampler = optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=self.n_startup_trials,
                                             multivariate=self.multivariate, constant_liar=self.pop_size > 1)
        pruner = optuna.pruners.NopPruner()
        if self.rungs and len(self.rungs) > 1:
            pruner = optuna.pruners.HyperbandPruner(min_resource=self.rungs[0], max_resource=self.rungs[-1],
                                                    reduction_factor=self.eta)
        self.study = optuna.create_study(study_name=STUDY_NAME, sampler=sampler, pruner=pruner,
                                         direction="minimize")
        if self.sampling is not None:
            for row in np.atleast_2d(self.sampling.rows):
                self.study.enqueue_trial({self._name(i): float(v) for i, v in enumerate(row)})

    @staticmethod
    def _name(i: int) -> str:
        return f"x{i:04d}"

    def _ask(self) -> Population:
        self._trials = [self.study.ask() for _ in range(self.pop_size)]
        self._stopped = set()
        X = np.array([[trial.suggest_float(self._name(i), 0.0, 1.0) for i in range(self.problem.n_var)]
                      for trial in self._trials])
        return Population.new(X=X)

    def _initialize_infill(self):
        return self._ask()

    def _infill(self):
        return self._ask()

    def report(self, row: int, anchors: int, value: float) -> bool:
        """The generation's row `row` scored `value` (an accuracy, higher is better) on `anchors` anchors:
        whether it goes on to the next rung."""
        trial = self._trials[row]
        trial.report(-value, step=anchors)
        if trial.should_prune():
            self._stopped.add(row)
            return False
        return True

    def _initialize_advance(self, infills=None, **kwargs):
        self._advance(infills=infills, **kwargs)

    def _advance(self, infills=None, **kwargs):
        import optuna

        for row, (trial, f) in enumerate(zip(self._trials, infills.get("F")[:, 0])):
            if f >= NOT_EVALUATED:  # failed, or cut by the budget
                self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            elif row in self._stopped:
                self.study.tell(trial, state=optuna.trial.TrialState.PRUNED)  # TPE ranks it by its last rung
            else:
                self.study.tell(trial, float(f))
        self.pop = infills

    def _set_optimum(self):
        pop = self.pop if self.opt is None else Population.merge(self.opt, self.pop)
        self.opt = filter_optimum(pop, least_infeasible=True)
