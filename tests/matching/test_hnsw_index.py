"""``HnswIndex`` finds what the exact index finds on dlib-like templates, with exact distances,
and removes without a rebuild until its tombstones are due for compaction."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dlib_like import DIMENSION, MODEL, THRESHOLD, Gallery

from faceaccord.matching import ExactIndex
from faceaccord.matching.approximate import HnswIndex
from faceaccord.matching.index import Candidate


def _built(gallery: Gallery, **options: float) -> tuple[ExactIndex, HnswIndex]:
    exact = ExactIndex(model_id=MODEL, dimension=DIMENSION)
    approximate = HnswIndex(model_id=MODEL, dimension=DIMENSION, **options)  # type: ignore[arg-type]
    for index in (exact, approximate):
        index.add(
            template_ids=gallery.template_ids,
            subject_ids=gallery.subject_ids,
            vectors=gallery.vectors,
        )
    return exact, approximate


def _recall(truth: list[list[Candidate]], found: list[list[Candidate]]) -> float:
    """Of the subjects the exact index returns, the share the approximate one returns too."""
    wanted = sum(len(t) for t in truth)
    shared = sum(
        len({c.subject_id for c in t} & {c.subject_id for c in f})
        for t, f in zip(truth, found, strict=True)
    )
    return shared / wanted if wanted else 1.0


def test_recall_at_10_against_the_exact_index_is_at_least_0_99(gallery: Gallery) -> None:
    exact, approximate = _built(gallery)
    truth = exact.search_many(gallery.probes, k=10, threshold=math.inf)
    assert _recall(truth, approximate.search_many(gallery.probes, k=10, threshold=math.inf)) >= 0.99
    at_threshold = exact.search_many(gallery.probes, k=10, threshold=THRESHOLD)
    found = approximate.search_many(gallery.probes, k=10, threshold=THRESHOLD)
    assert sum(t == f for t, f in zip(at_threshold, found, strict=True)) >= 0.99 * len(found)


def test_every_distance_returned_is_exact(gallery: Gallery) -> None:
    _, approximate = _built(gallery)
    vectors = dict(zip(gallery.template_ids, gallery.vectors.astype(np.float64), strict=True))
    answers = approximate.search_many(gallery.probes, k=10, threshold=math.inf)
    for probe, answer in zip(gallery.probes, answers, strict=True):
        for candidate in answer:
            exact = float(np.linalg.norm(vectors[candidate.template_id] - probe.astype(np.float64)))
            assert candidate.distance == pytest.approx(exact, rel=1e-12)


def test_removed_and_replaced_templates_become_tombstones_never_results(gallery: Gallery) -> None:
    exact, approximate = _built(gallery, compact_at=0.9)
    gone = gallery.mated_subjects[:30]
    assert approximate.remove_subjects(gone) == exact.remove_subjects(gone)
    moved = gallery.template_ids[:5]
    for index in (exact, approximate):
        index.add(
            template_ids=moved,
            subject_ids=["moved"] * 5,
            vectors=gallery.vectors[:5] + 0.01,
        )
    removed = sum(s in set(gone) for s in gallery.subject_ids)
    assert approximate.tombstones == removed + sum(
        s not in set(gone) for s in gallery.subject_ids[:5]
    )
    assert len(approximate) == len(exact)
    assert approximate.template_ids() == exact.template_ids()
    truth = exact.search_many(gallery.probes, k=10, threshold=math.inf)
    found = approximate.search_many(gallery.probes, k=10, threshold=math.inf)
    assert all(c.subject_id not in gone for answer in found for c in answer)
    assert _recall(truth, found) >= 0.99


def test_tombstones_are_compacted_once_they_pass_the_fraction(gallery: Gallery) -> None:
    exact, approximate = _built(gallery, compact_at=0.3)
    subjects = sorted(set(gallery.subject_ids))
    exact.remove_subjects(subjects[:200])
    approximate.remove_subjects(subjects[:200])
    assert 0 < approximate.tombstones <= 0.3 * len(gallery.template_ids)
    exact.remove_subjects(subjects[200:400])
    approximate.remove_subjects(subjects[200:400])
    assert approximate.tombstones == 0, "40% of the nodes were tombstones: the graph is rebuilt"
    assert len(approximate) == len(exact)
    truth = exact.search_many(gallery.probes, k=10, threshold=math.inf)
    assert _recall(truth, approximate.search_many(gallery.probes, k=10, threshold=math.inf)) >= 0.99


def test_compact_on_demand_keeps_every_live_template(gallery: Gallery) -> None:
    exact, approximate = _built(gallery, compact_at=1.0)
    approximate.remove_subjects(gallery.mated_subjects)
    exact.remove_subjects(gallery.mated_subjects)
    approximate.compact()
    assert approximate.tombstones == 0
    assert approximate.template_ids() == exact.template_ids()
    approximate.compact()  # nothing to drop: still the same
    assert len(approximate) == len(exact)


def test_few_subjects_with_many_templates_are_fetched_until_k_are_found() -> None:
    """Ten templates per subject and k=5: the first fetch (fetch * k = 20 templates) holds only
    two or three subjects, so the search asks for more."""
    rng = np.random.default_rng(5)
    centres = rng.normal(0, 1, (20, 8))
    vectors = (np.repeat(centres, 10, axis=0) + rng.normal(0, 0.01, (200, 8))).astype(np.float32)
    subjects = [f"s{i // 10}" for i in range(200)]
    index = HnswIndex(model_id=MODEL, dimension=8, fetch=2)
    index.add(template_ids=[f"t{i}" for i in range(200)], subject_ids=subjects, vectors=vectors)
    found = index.search(centres[0].astype(np.float32), k=5, threshold=math.inf)
    assert len(found) == 5
    assert len({c.subject_id for c in found}) == 5
    assert found[0].subject_id == "s0"


@pytest.mark.parametrize(
    "options",
    [{"neighbours": 1}, {"ef_search": 0}, {"fetch": 0}, {"compact_at": 0.0}, {"compact_at": 1.5}],
)
def test_unusable_parameters_are_refused(options: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must"):
        HnswIndex(model_id=MODEL, dimension=DIMENSION, **options)  # type: ignore[arg-type]
