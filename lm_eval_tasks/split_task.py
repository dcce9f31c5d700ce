"""`SplitTask`: every document of a merge3 task's split, for an adaptive test that asks a few at a time.

An adaptive estimator (merge3_plugin/adaptive.py) chooses a candidate's next items from its answers so
far, which no single lm-eval run can do. The evolve loop builds this task once and, each round, hands
lm-eval's public `evaluate(..., samples={task: [positions]})` the documents chosen. Every document must
be the bundle's item of the same position (checked by lm-eval's doc_hash when the task loads), since the
IRT parameters of all of them are what the test chooses with.
"""

from __future__ import annotations

from .compat import doc_hash
from .errors import Merge3ConfigError
from .task import Merge3Task


class SplitTask(Merge3Task):
    """A merge3 task's config, all of its bundle's items, the base task's plain metric per document."""

    def _estimators(self) -> list[str]:
        return []  # the estimate is the adaptive test's, made outside lm-eval from the logged samples

    def _anchor_docs(self, docs):
        check_split_bundle(self._merge3_name, self._bundle)
        bundle = self._bundle
        if len(docs) != bundle.n_items:
            raise Merge3ConfigError(f"{self._merge3_name}: the dataset has {len(docs)} documents, the bundle "
                                    f"{bundle.n_items} items: another version of the task")
        position = {doc_id: column for column, doc_id in enumerate(bundle.doc_ids)}
        self._columns_of_hash: dict[str, list[int]] = {}
        for doc_id in range(len(docs)):
            found, column = doc_hash(docs[doc_id]), position.get(doc_id)
            if column is None or found != bundle.doc_hashes[column]:
                raise Merge3ConfigError(f"{self._merge3_name}: document {doc_id} differs from the one the bundle "
                                        "was fit on (another task version or document order); refit the bundle")
            self._columns_of_hash.setdefault(found, []).append(column)
        return docs

    def positions(self, columns: list[int]) -> list[int]:
        """The documents (lm-eval's positions in the split) of bundle item columns."""
        return [int(self._bundle.doc_ids[c]) for c in columns]

    def columns_of(self, doc) -> list[int]:
        """The bundle item columns of a logged document (more than one only for identical documents)."""
        self.eval_docs  # noqa: B018  (loads and checks the split on first use)
        return self._columns_of_hash.get(doc_hash(doc), [])


def check_split_bundle(name: str, bundle) -> None:
    """An adaptive test needs the IRT parameters of every document: a fitted bundle, not random anchors
    and not an imported one (its lock maps only the anchors to documents)."""
    if bundle is None:
        raise Merge3ConfigError(f"{name}: an adaptive estimator needs IRT parameters of the task's items, and this "
                                "task has seeded random anchors (no bundle); fit one with `merge3 fit` and "
                                "`merge3 extract`, then `merge3 tasks build`")
    if bundle.content_keyed:
        raise Merge3ConfigError(f"{name}: an adaptive estimator asks any item of the split, but this bundle was "
                                "imported (tinyBenchmarks) and only its anchors are matched to documents; use a fixed "
                                "estimator (gpirt) or a bundle fit with `merge3 fit`")
