"""Response matrices from the micro zoo's real lm-eval logs (issue #3, first piece)."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from merge3_plugin.errors import UserError
from merge3_plugin.responses import find_sample_files, load_responses, parse_sample_file


def test_task_names_are_matched_whole(micro_zoo):
    math = find_sample_files([micro_zoo.responses_dir], "toy_math")
    assert {s.task for s in math} == {"toy_math"}
    assert len(math) == len(micro_zoo.models)
    assert parse_sample_file(math[0].path.with_name("samples_toy_math_l2_2026-01-01T00-00-00.1.jsonl")).task == "toy_math_l2"


def test_matrix_matches_the_manifest(micro_zoo):
    for task in micro_zoo.tasks:
        matrix = load_responses([micro_zoo.responses_dir], task["name"], task["metric"])
        assert matrix.scores.shape == (len(micro_zoo.models), task["n_items"])
        assert matrix.doc_ids == list(range(task["n_items"]))
        assert not np.isnan(matrix.scores).any()
        accuracy = dict(zip(matrix.models, matrix.accuracy()))
        for model in micro_zoo.models:
            assert accuracy[model["name"]] == pytest.approx(model["accuracy"][task["name"]])


def test_a_log_of_another_document_order_is_refused(micro_zoo, tmp_path):
    logs = tmp_path / "logs"
    for name in ("base", "expert-math"):
        shutil.copytree(micro_zoo.responses_dir / name, logs / name)
    victim = find_sample_files([logs / "expert-math"], "toy_math")[0].path
    rows = [json.loads(line) for line in victim.read_text().splitlines()]
    rows[0]["doc_hash"], rows[1]["doc_hash"] = rows[1]["doc_hash"], rows[0]["doc_hash"]
    victim.write_text("".join(json.dumps(r) + "\n" for r in rows))
    with pytest.raises(UserError, match=r"doc_id 0 of toy_math differs between .*samples_toy_math_.* and .*expert-math"):
        load_responses([logs], "toy_math", "exact_match")


def test_unknown_metric_and_missing_logs_are_clear_errors(micro_zoo, tmp_path):
    with pytest.raises(UserError, match=r"no metric 'acc'; this log has \['exact_match'\]"):
        load_responses([micro_zoo.responses_dir / "base"], "toy_math", "acc")
    with pytest.raises(UserError, match="no samples_toy_math_<date>.jsonl under"):
        load_responses([tmp_path], "toy_math", "exact_match")
    with pytest.raises(UserError, match="no such file or folder"):
        load_responses([tmp_path / "nowhere"], "toy_math", "exact_match")
