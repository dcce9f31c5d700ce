"""lm-eval glue for merge3 (installed as `merge3_lm_eval_tasks`): the only place that knows lm-eval internals.

The toy world's plain tasks are written by `merge3 zoo build` next to its data; the reduced
`merge3_*` tasks and the IRT metric arrive with the lm-eval plugin issue.
"""
