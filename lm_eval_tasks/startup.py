"""Lets a plain `lm_eval --tasks 'merge3_*'` (and `simple_evaluate`, `lm_eval ls tasks`) find merge3 tasks.

`merge3-lm-eval.pth`, installed beside the packages, puts a tiny finder on `sys.meta_path` when
Python starts, defined inline so that nothing is imported then (not even this module). When
`lm_eval.tasks` is imported, and only then, the finder calls `find_spec` below, which wraps
`TaskManager.__init__` so that the shipped merge3 toy tasks (once the toy world is built) and the
user task folder ($MERGE3_TASKS_PATH or ~/.cache/merge3/tasks) join its include paths. Only for task managers that
include lm-eval's defaults: one built with `include_defaults=False` gets exactly what it asked for.

- `MERGE3_LM_EVAL_HOOK=0` turns it off.
- It never breaks lm-eval: any failure leaves lm-eval untouched.
- lm-eval's planned `lm_eval.tasks` entry point is declared too (pyproject.toml).
"""

import os
import sys

_TARGET = "lm_eval.tasks"


def task_dirs():
    """Folders to add: the shipped toy-world tasks once the default toy world is built (they cannot
    run before), and the user task folder if it exists. The benchmark configs (configs/) are
    templates, added only on request: `--include_path $(merge3 tasks path --configs)`."""
    import glob

    here = os.path.dirname(os.path.abspath(__file__))
    # merge3_plugin.files.cache_root, written out: this runs while lm-eval imports, and imports nothing of ours
    cache = os.environ.get("MERGE3_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "merge3")
    dirs = [os.path.join(here, "tasks")] if glob.glob(os.path.join(cache, "zoo", "default-*", "zoo.json")) else []
    user = os.environ.get("MERGE3_TASKS_PATH") or os.path.join(os.path.expanduser("~"), ".cache", "merge3", "tasks")
    if os.path.isdir(user):
        dirs.append(user)
    return dirs


def _patch(module):
    try:
        manager = module.TaskManager
        if getattr(manager.__init__, "merge3_wrapped", False):
            return
        original = manager.__init__

        def __init__(self, *args, **kwargs):
            include_defaults = kwargs.get("include_defaults", args[2] if len(args) > 2 else True)
            if include_defaults:
                try:
                    given = kwargs.get("include_path", args[1] if len(args) > 1 else None)
                    given = [] if not given else list(given) if isinstance(given, (list, tuple)) else [given]
                    paths = task_dirs() + given  # later paths override earlier: the user's win
                    if len(args) > 1:
                        args = (args[0], paths, *args[2:])
                    else:
                        kwargs["include_path"] = paths
                except Exception:
                    pass
            original(self, *args, **kwargs)

        __init__.merge3_wrapped = True
        manager.__init__ = __init__
        from .compat import quiet_shared_tag_notice

        quiet_shared_tag_notice()
    except Exception:
        pass


HOOK_CLASS = "Merge3LmEvalHook"  # the finder's class name in the .pth line


def find_spec(name, path=None, target=None):
    """The real spec of lm_eval.tasks, its loader wrapped to patch TaskManager once it has run."""
    if name != _TARGET:
        return None
    try:
        for finder in sys.meta_path:
            if type(finder).__name__ == HOOK_CLASS or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                exec_module = spec.loader.exec_module

                def patched_exec(module, _exec=exec_module):
                    _exec(module)
                    _patch(module)

                spec.loader.exec_module = patched_exec
                return spec
    except Exception:
        return None
    return None

