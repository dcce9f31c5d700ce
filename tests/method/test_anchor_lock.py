"""Anchors found by content and pinned in a lock file (issue #15): on documents that mimic each
benchmark's fields, in an order of their own (lm-eval's doc_id order is not the leaderboard's)."""

from __future__ import annotations

import hashlib
import json

import pytest

from merge3_plugin import anchor_lock, content_keys
from merge3_plugin import tinybenchmarks as tb
from merge3_plugin.bundle import Bundle
from merge3_plugin.errors import UserError
from tests.tinybenchmarks_reference import (SIZES, benchmark_doc, lm_eval_docs, local_position,
                                             synthetic_tinybenchmarks, write_pkl, write_tiny_datasets)


def doc_hash(doc) -> str:
    return hashlib.sha256(json.dumps(doc, sort_keys=True).encode()).hexdigest()


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("lock")
    data = synthetic_tinybenchmarks(seed=2, dims=2)
    pkl = write_pkl(data, root / "tinyBenchmarks.pkl")
    written = tb.import_tinybenchmarks(pkl, root / "bundles", write_tiny_datasets(data, root / "datasets"),
                                       allow_unpinned=True)
    return data, written


@pytest.fixture
def bundle_at(world, tmp_path):
    """A fresh copy of a benchmark's bundle (no lock yet): (bundle, path)."""
    def make(name):
        path = tmp_path / f"{name}.json"
        path.write_bytes(world[1][name].read_bytes())
        return Bundle.load(path), path
    return make


@pytest.mark.parametrize("bench", list(SIZES))
def test_each_benchmark_anchors_are_found_by_content_and_locked(world, bundle_at, bench):
    data, _ = world
    bundle, path = bundle_at(bench)
    docs = lm_eval_docs(bench, seed=5)
    locked = anchor_lock.resolve(bundle, path, "base", docs, doc_hash)
    expected = [benchmark_doc(bench, p) for p in local_position(data, bench)]
    assert [docs[d] for d in locked.doc_ids] == expected  # anchor k is the document of anchor k's content
    assert bundle.anchors.doc_ids == local_position(data, bench)  # and the bundle's column of its parameters
    lock = json.loads(anchor_lock.lock_path(path).read_text())
    rows = lock["tasks"]["base"]["anchors"]
    assert [r["doc_id"] for r in rows] == locked.doc_ids and rows[0]["doc_hash"] == doc_hash(expected[0])
    assert lock["tasks"]["base"]["source_sha256"] == bundle.source["sha256"]


def test_a_lock_is_checked_not_rematched(bundle_at, monkeypatch):
    bundle, path = bundle_at("arc")
    docs = lm_eval_docs("arc", seed=1)
    first = anchor_lock.resolve(bundle, path, "arc_challenge", docs, doc_hash)
    monkeypatch.setattr(anchor_lock, "match", lambda *a: pytest.fail("matched again"))
    assert anchor_lock.resolve(bundle, path, "arc_challenge", docs, doc_hash) == first
    assert anchor_lock.locked(bundle, path, "arc_challenge") == first


def test_a_changed_document_is_refused(bundle_at):
    bundle, path = bundle_at("gsm8k")
    docs = lm_eval_docs("gsm8k", seed=1)
    locked = anchor_lock.resolve(bundle, path, "gsm8k", docs, doc_hash)
    docs[locked.doc_ids[3]] = {**docs[locked.doc_ids[3]], "answer": "#### 0"}
    with pytest.raises(UserError, match="anchor 3 .* gone or changed") as err:
        anchor_lock.resolve(bundle, path, "gsm8k", docs, doc_hash)
    assert "delete the 'gsm8k' entry" in str(err.value)
    reordered = list(reversed(lm_eval_docs("gsm8k", seed=1)))  # same documents, another order
    with pytest.raises(UserError, match="gone or changed"):
        anchor_lock.resolve(bundle, path, "gsm8k", reordered, doc_hash)
    assert anchor_lock.resolve(bundle, path, "gsm8k_reordered", reordered, doc_hash)  # its own entry: matched


def test_an_anchor_that_matches_nothing_is_refused_and_nothing_locked(bundle_at):
    bundle, path = bundle_at("truthfulqa")
    key = bundle.anchors.content_keys["keys"][0]
    docs = [d for d in lm_eval_docs("truthfulqa") if content_keys.KEYS["truthfulqa"].key(d) != key]
    with pytest.raises(UserError, match="1 of the 100 anchors .* match no document"):
        anchor_lock.resolve(bundle, path, "truthfulqa_mc2", docs, doc_hash)
    assert not anchor_lock.lock_path(path).exists()


def test_an_anchor_that_matches_twice_is_refused(bundle_at):
    bundle, path = bundle_at("winogrande")
    docs = lm_eval_docs("winogrande")
    key = bundle.anchors.content_keys["keys"][5]
    twin = next(d for d in docs if content_keys.KEYS["winogrande"].key(d) == key)
    with pytest.raises(UserError, match="match several documents"):
        anchor_lock.resolve(bundle, path, "winogrande", docs + [dict(twin, answer="2")], doc_hash)


def test_a_translation_without_a_source_id_is_refused(bundle_at):
    """mgsm/m_mmlu-like documents: translated text, no id of the English item. Never by position."""
    bundle, path = bundle_at("mmlu")
    translated = [{"instruction": f"Was ist {i}?", "option_a": "1", "answer": "A", "id": str(i)} for i in range(14042)]
    with pytest.raises(UserError, match="no field 'subject'.* never by position"):
        anchor_lock.resolve(bundle, path, "m_mmlu_de", translated, doc_hash)
    bundle, path = bundle_at("gsm8k")
    mgsm = [{"question": f"Tom hat {i} Äpfel.", "answer": None} for i in range(250)]
    with pytest.raises(UserError, match="match no document"):
        anchor_lock.resolve(bundle, path, "mgsm_direct_de", mgsm, doc_hash)


def test_a_translation_that_keeps_the_id_maps(world, bundle_at):
    """okapi's m_arc keeps ARC's `id`: the German documents are found by it."""
    data, _ = world
    bundle, path = bundle_at("arc")
    docs = [{"id": d["id"], "query": "Frage: ...", "choices": ["a", "b"], "gold": 0} for d in lm_eval_docs("arc", 3)]
    locked = anchor_lock.resolve(bundle, path, "arc_de", docs, doc_hash)
    assert [docs[d]["id"] for d in locked.doc_ids] == [benchmark_doc("arc", p)["id"] for p in local_position(data, "arc")]


def test_a_lock_of_other_parameters_and_a_missing_lock_are_refused(bundle_at):
    bundle, path = bundle_at("hellaswag")
    with pytest.raises(UserError, match="not been matched .* yet"):
        anchor_lock.locked(bundle, path, "hellaswag")
    anchor_lock.resolve(bundle, path, "hellaswag", lm_eval_docs("hellaswag"), doc_hash)
    bundle.source["sha256"] = "f" * 64
    with pytest.raises(UserError, match="written for parameters from another file"):
        anchor_lock.resolve(bundle, path, "hellaswag", lm_eval_docs("hellaswag"), doc_hash)
    anchor_lock.lock_path(path).write_text("{not json")
    with pytest.raises(UserError, match="not a readable lock file"):
        anchor_lock.locked(bundle, path, "hellaswag")


def test_keys_ignore_whitespace_and_name_missing_fields():
    arc = content_keys.KEYS["arc"]
    assert arc.key({"id": "Mercury_1", "question": "x"}) == "id=Mercury_1"
    hs = content_keys.KEYS["hellaswag"]
    assert hs.key({"ind": 4, "ctx": "A  man\n walks. "}) == hs.key({"ind": "4", "ctx": "A man walks."})
    with pytest.raises(content_keys.MissingField):
        content_keys.KEYS["mmlu"].key({"question": "q"})
    with pytest.raises(UserError, match="unknown content key family"):
        content_keys.family("squad")


def test_keys_compare_unicode_forms_whole_floats_and_lists():
    """The same text in NFC and NFD (é as one code point or e + accent) is one key; a parquet id read as a
    float is the integer; list fields (MMLU's choices) compare item by item."""
    q = content_keys.KEYS["truthfulqa"]
    assert q.key({"question": "Caf\u00e9 au lait?"}) == q.key({"question": "Cafe\u0301 au  lait?"})
    assert q.key({"question": "Cafe au lait?"}) != q.key({"question": "Caf\u00e9 au lait?"})
    hs = content_keys.KEYS["hellaswag"]
    assert hs.key({"ind": 4.0, "ctx": "x"}) == hs.key({"ind": 4, "ctx": "x"}) != hs.key({"ind": 4.5, "ctx": "x"})
    mmlu = content_keys.KEYS["mmlu"]
    assert mmlu.tiebreak_key({"choices": ["a ", "b"]}) == mmlu.tiebreak_key({"choices": ("a", "b")})
    assert mmlu.tiebreak_key({"choices": ["a", "b"]}) != mmlu.tiebreak_key({"choices": ["b", "a"]})
    assert mmlu.tiebreak_key({"question": "q"}) is None and content_keys.KEYS["arc"].tiebreak_key({"id": 1}) is None


def test_a_key_shared_by_two_documents_is_settled_by_the_tiebreak(world, bundle_at):
    """MMLU repeats some questions within a subject with other choices: the anchor's choices pick its document;
    two documents alike in choices too are still refused."""
    data, _ = world
    bundle, path = bundle_at("mmlu")
    assert len(bundle.anchors.content_keys["tiebreak"]) == 100
    docs = lm_eval_docs("mmlu", seed=3)
    first = benchmark_doc("mmlu", local_position(data, "mmlu")[0])
    twin = dict(first, choices=["7", "8", "9", "10"], answer=0)  # same subject and question, other choices
    docs = [twin] + docs
    locked = anchor_lock.resolve(bundle, path, "with_twin", docs, doc_hash)
    assert docs[locked.doc_ids[0]] == first and locked.doc_ids[0] != 0
    with pytest.raises(UserError, match="match several documents"):
        anchor_lock.resolve(bundle, path, "with_clone", [dict(first, answer=0)] + docs, doc_hash)


def test_locking_keeps_entries_another_process_wrote_meanwhile(bundle_at, monkeypatch):
    """Two lm-eval ranks or Ray actors may lock base tasks at once: the lock is re-read before it is replaced,
    through a temporary file of its own name (nothing left behind)."""
    bundle, path = bundle_at("arc")
    anchor_lock.resolve(bundle, path, "first", lm_eval_docs("arc", 1), doc_hash)
    real_match = anchor_lock.match

    def match_while_another_process_writes(*args):
        other = json.loads(anchor_lock.lock_path(path).read_text())
        other["tasks"]["other"] = other["tasks"]["first"]
        anchor_lock.lock_path(path).write_text(json.dumps(other))
        return real_match(*args)

    monkeypatch.setattr(anchor_lock, "match", match_while_another_process_writes)
    anchor_lock.resolve(bundle, path, "second", lm_eval_docs("arc", 2), doc_hash)
    assert set(json.loads(anchor_lock.lock_path(path).read_text())["tasks"]) == {"first", "other", "second"}
    assert sorted(p.name for p in path.parent.iterdir()) == sorted([path.name, anchor_lock.lock_path(path).name])
