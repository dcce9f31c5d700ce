"""Skills and task files of the toy world (fast: no training)."""

from __future__ import annotations

import json
import random

import pytest

from merge3_zoo.skills import L2_DIGITS, N_LEVELS, SKILLS, math_item, rev_distractors, rev_item, to_l2
from merge3_zoo.tasks import TASKS, write_tasks


def test_items_are_correct_and_reproducible():
    a = [SKILLS["math"](random.Random(7), lvl) for lvl in range(N_LEVELS)]
    b = [SKILLS["math"](random.Random(7), lvl) for lvl in range(N_LEVELS)]
    assert a == b
    for item in a:
        terms = item.prompt.rstrip("=").split("+")
        assert int(item.answer) == sum(map(int, terms))
    assert len(a[-1].prompt.split("+")) > len(a[0].prompt.split("+"))  # harder levels, more terms


def test_cross_lingual_items_need_both_skills():
    rng = random.Random(3)
    for level in range(N_LEVELS):
        item = SKILLS["math_l2"](rng, level)
        assert not set(item.prompt) & set("0123456789")  # the question is all L2
        question, result = item.answer.split("=")
        assert to_l2(question + "=") == item.prompt  # part 1: translate the question
        assert int(result) == sum(map(int, question.split("+")))  # part 2: solve it
    assert len(set(L2_DIGITS)) == 10


def test_reversal_distractors_are_distinct_near_misses():
    rng = random.Random(5)
    for level in range(N_LEVELS):
        for _ in range(50):
            item = rev_item(rng, level)
            wrong = rev_distractors(rng, item)
            assert len(wrong) == 5 and len(set(wrong)) == 5
            assert item.answer not in wrong
            assert all(len(w) == len(item.answer) for w in wrong)


@pytest.fixture(scope="module")
def small_tasks(tmp_path_factory):
    root = tmp_path_factory.mktemp("tasks")
    return root, write_tasks(root, seed=0, n_test=60, n_val=20, n_train=30)


def test_task_files_have_splits_without_shared_prompts(small_tasks):
    root, rows = small_tasks
    assert set(rows) == {t.name for t in TASKS}
    for spec in TASKS:
        prompts = {}
        for split, n in (("test", 60), ("validation", 20), ("train", 30)):
            docs = [json.loads(line) for line in (root / spec.name / f"{split}.jsonl").read_text().splitlines()]
            assert len(docs) == n
            prompts[split] = {d["prompt"] for d in docs}
            if spec.output_type == "multiple_choice":
                assert all(d["choices"][d["label"]] == d["answer"] for d in docs)
        assert not prompts["test"] & (prompts["validation"] | prompts["train"])
        levels = [json.loads(line)["level"] for line in (root / spec.name / "test.jsonl").read_text().splitlines()]
        assert set(levels) == set(range(N_LEVELS))


def test_task_yaml_loads_in_lm_eval(small_tasks):
    from lm_eval.tasks import TaskManager

    root, rows = small_tasks
    manager = TaskManager(include_path=str(root), include_defaults=False)
    assert {"toy_math", "toy_rev", "toy_world"} <= set(manager.all_tasks)
    assert set(manager.load("toy_world")["tasks"]) == {t.name for t in TASKS}  # the tag runs them all
    tasks = manager.load(["toy_rev", "toy_math_l2"])["tasks"]
    rev = tasks["toy_rev"]
    doc = rev.test_docs()[0]
    assert rev.OUTPUT_TYPE == "multiple_choice"
    assert rev.doc_to_choice(doc)[rev.doc_to_target(doc)] == doc["answer"]
    assert len(rev.test_docs()) == 60
    math_l2 = tasks["toy_math_l2"]
    assert math_l2.OUTPUT_TYPE == "generate_until"
    assert math_l2.doc_to_text(math_l2.test_docs()[0]) == math_l2.test_docs()[0]["prompt"]


def test_math_levels_cover_easy_and_hard():
    rng = random.Random(0)
    easy = [math_item(rng, 0) for _ in range(100)]
    assert all(int(i.answer) < 10 for i in easy)


def test_compose_world_never_trains_on_its_target_and_its_steps_are_familiar():
    """World v2 candidate (issue #10): no run of the compose preset has the target's skill in its data;
    the target's answer has the form the base learns on other list operations asked in L2."""
    from merge3_zoo.recipe import PRESETS
    from merge3_zoo.skills import LIST_OPS

    preset = PRESETS["compose"]
    target_skill = preset.dialect["math_l2"]
    assert all(target_skill not in run.mixture for run in preset.runs)
    rng = random.Random(4)
    for level in range(N_LEVELS):
        target = SKILLS[target_skill](rng, level)
        question, result = target.answer.split("=")
        assert to_l2(question + "=") == target.prompt and int(result) == sum(map(int, question.split("+")))
        seen = SKILLS["max_l2"](rng, level)  # trained: restate the L2 digits, then answer
        assert seen.prompt.startswith(LIST_OPS["max"]) and seen.answer.split("=")[1] == max(seen.answer.split("=")[0])
        assert to_l2(seen.answer.split("=")[0] + "=") == seen.prompt[1:]
