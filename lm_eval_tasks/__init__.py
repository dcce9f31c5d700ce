"""The lm-eval room of merge3 (installed as `merge3_lm_eval_tasks`): the only package that knows lm-eval.

- `api`: the room's one door. The evolve room, the zoo and the examples import it and nothing else of
  this room (load a task index, build tasks once, wrap a live model, evaluate, log like `lm_eval`);
- `task.Merge3Task`: any lm-eval task restricted to a bundle's anchors, with IRT estimates as metrics;
- `task_files`: writing and checking merge3 task YAMLs, the user task folder, the start-up hook file;
- `startup`: the lazy hook that lets a plain `lm_eval --tasks 'merge3_*'` find merge3 tasks;
- `commands`: `merge3 tasks ...`, added to the `merge3` command line through a plugin hook;
- `compat`: every private or deprecated lm-eval API merge3 uses, contract-tested in tests/lm_eval/test_compat.py;
- `tasks/` (shipped toy-world tasks and bundles) and `configs/` (templates for popular benchmarks).
"""
