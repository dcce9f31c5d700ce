"""How lm-eval finds merge3 tasks without flags: the lazy start-up hook, shipped tasks, wheel contents."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from merge3_plugin.bundle import Bundle

REPO = Path(__file__).resolve().parents[2]
PTH = REPO / "lm_eval_tasks" / "merge3-lm-eval.pth"
SHIPPED = REPO / "lm_eval_tasks" / "tasks"


def python(code: str, site_dir: Path, **env) -> subprocess.CompletedProcess:
    """A fresh interpreter that reads our .pth from `site_dir` (as site-packages would)."""
    prelude = f"import site; site.addsitedir({str(site_dir)!r})\n"
    return subprocess.run([sys.executable, "-c", prelude + code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **env})


@pytest.fixture
def site_dir(tmp_path):
    shutil.copy(PTH, tmp_path / PTH.name)
    return tmp_path


def test_the_hook_imports_nothing_at_start_up_and_can_be_switched_off(site_dir):
    probe = ("import sys; print(any(type(f).__name__ == 'Merge3LmEvalHook' for f in sys.meta_path), "
             "'merge3_lm_eval_tasks' in sys.modules, 'lm_eval' in sys.modules)")
    assert python(probe, site_dir).stdout.split() == ["True", "False", "False"]
    assert python(probe, site_dir, MERGE3_LM_EVAL_HOOK="0").stdout.split() == ["False", "False", "False"]


def test_a_broken_merge3_never_breaks_lm_eval(site_dir):
    code = ("import sys; sys.modules['merge3_lm_eval_tasks.startup'] = None  # importing it now fails\n"
            "import lm_eval.tasks\n"
            "print(getattr(lm_eval.tasks.TaskManager.__init__, 'merge3_wrapped', False))")
    run = python(code, site_dir)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "False"


@pytest.mark.slow
def test_plain_task_manager_and_simple_evaluate_find_merge3_tasks(site_dir, micro_zoo, tmp_path):
    """No --include_path: the user task folder is found, and simple_evaluate runs a merge3 task by name."""
    from merge3_plugin.extraction import extract
    from merge3_plugin.fitting import fit_bundle
    from merge3_plugin.responses import load_responses
    from merge3_lm_eval_tasks.task_files import build_task

    user = tmp_path / "user-tasks"
    matrix = load_responses([micro_zoo.responses_dir], "toy_rev", "acc")
    extract(fit_bundle(matrix, dims=1), 10, "random").save(tmp_path / "rev.json")
    build_task(tmp_path / "rev.json", user, base_yaml=micro_zoo.tasks_dir / "toy_rev.yaml", name="merge3_my_rev")
    code = ("import lm_eval\nfrom lm_eval.tasks import TaskManager\n"
            "print('merge3_my_rev' in TaskManager().all_tasks, "
            "'merge3_my_rev' in TaskManager(include_defaults=False).all_tasks)\n"
            f"out = lm_eval.simple_evaluate(model='hf', model_args='pretrained={micro_zoo.model_path('base')}', "
            "tasks=['merge3_my_rev'], batch_size=32, device='cpu')\n"
            "print(sorted(k for k in out['results']['merge3_my_rev'] if k.startswith('acc_') and 'stderr' not in k))")
    run = python(code, site_dir, MERGE3_TASKS_PATH=str(user))
    assert run.returncode == 0, run.stderr[-3000:]
    lines = run.stdout.strip().splitlines()
    assert lines[-2] == "True False"
    assert lines[-1] == "['acc_anchor,none', 'acc_gpirt,none', 'acc_pirt,none']"


def test_shipped_toy_tasks_are_consistent_with_their_bundles():
    import yaml

    from merge3_zoo.recipe import PRESETS

    names = sorted(p.stem for p in SHIPPED.glob("merge3_*.yaml"))
    assert names == ["merge3_toy_lang", "merge3_toy_math", "merge3_toy_math_l2", "merge3_toy_rev"]
    for name in names:
        text = (SHIPPED / f"{name}.yaml").read_text()
        assert "class: !function merge3_lm_eval_tasks.task.Merge3Task" in text
        config = yaml.safe_load(text.replace("!function ", ""))
        assert config["task"] == name and "merge3" in config["tag"]
        assert not any(t.startswith("merge3_") for t in config["tag"])  # no tag caught by the merge3_* glob
        meta = config["metadata"]
        zoo = f"default-{PRESETS['default'].recipe_hash(0)}"  # the world the bundles were fit on
        assert meta["merge3_base_yaml"] == f"${{MERGE3_CACHE}}/zoo/{zoo}/tasks/{name[len('merge3_'):]}.yaml"
        bundle = Bundle.load(SHIPPED / meta["merge3_bundle"])
        assert bundle.task == name[len("merge3_"):] and bundle.anchors.size == 50 and bundle.scores is None
        assert bundle.n_items == 500


def test_the_toy_task_generator_works_on_the_micro_world(micro_zoo, tmp_path):
    """`python -m merge3_zoo.toy_tasks` on the micro world; its tasks run in lm-eval (${MERGE3_CACHE} paths resolved)."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    from merge3_zoo.toy_tasks import regenerate

    written = regenerate(tmp_path, size=15, preset="micro")
    assert len(written) == 8
    manager = TaskManager(include_path=str(tmp_path), include_defaults=False)
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={micro_zoo.model_path('expert-math')}",
                                  tasks=["merge3_toy_math"], task_manager=manager, batch_size=32, device="cpu")
    result = out["results"]["merge3_toy_math"]
    assert result["sample_len"] == 15 and 0 <= result["exact_match_gpirt,none"] <= 1


@pytest.mark.slow
def test_a_wheel_ships_the_hook_tasks_and_bundles(tmp_path):
    run = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", str(REPO), "-w", str(tmp_path)],
                         capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    names = zipfile.ZipFile(next(tmp_path.glob("merge3-*.whl"))).namelist()
    assert "merge3-lm-eval.pth" in names  # at the wheel's root: lands in site-packages
    assert "merge3_lm_eval_tasks/tasks/merge3_toy_math.yaml" in names
    assert "merge3_lm_eval_tasks/tasks/bundles/toy_math.json" in names
    assert "merge3_zoo/commands.py" in names and "merge3_lm_eval_tasks/commands.py" in names
    wheel = zipfile.ZipFile(next(tmp_path.glob("merge3-*.whl")))
    entry_points = wheel.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "merge3_zoo.commands" in entry_points and "mergekit_ext.algorithms" in entry_points
