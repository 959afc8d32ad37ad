"""The ``TemplateIndex`` contract, for every flavour: exact float32, exact float16 and HNSW.

Open-set identification: up to k subjects, nearest first, one candidate per subject (its nearest
template), only within the threshold (inclusive), and an empty list means "no match".
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest
from dlib_like import DIMENSION, THRESHOLD, Gallery, IndexFactory
from numpy.typing import NDArray

from faceaccord.matching import ScalableIndex


def _vector(*values: float) -> NDArray[np.float32]:
    vector = np.zeros(DIMENSION, dtype=np.float32)
    vector[: len(values)] = values
    return vector


def _small(new_index: IndexFactory) -> ScalableIndex:
    """Three subjects on the first axis: a at 0.1 and 0.4, b at 0.2, c at 0.3 from the origin."""
    index = new_index()
    index.add(
        template_ids=["a-far", "a-near", "b", "c"],
        subject_ids=["a", "a", "b", "c"],
        vectors=np.stack([_vector(0.4), _vector(0.1), _vector(0, 0.2), _vector(0, 0, 0.3)]),
    )
    return index


def _filled(new_index: IndexFactory, gallery: Gallery) -> ScalableIndex:
    index = new_index()
    index.add(
        template_ids=gallery.template_ids,
        subject_ids=gallery.subject_ids,
        vectors=gallery.vectors,
    )
    return index


def test_an_empty_index_answers_no_match(new_index: IndexFactory) -> None:
    index = new_index()
    assert len(index) == 0
    assert index.template_ids() == set()
    assert index.search(_vector(1.0), k=5, threshold=math.inf) == []
    assert index.search_many(np.zeros((2, DIMENSION), np.float32), k=5, threshold=1.0) == [[], []]


def test_candidates_are_the_nearest_subjects_nearest_first(new_index: IndexFactory) -> None:
    found = _small(new_index).search(_vector(), k=2, threshold=1.0)
    assert [(c.subject_id, c.template_id) for c in found] == [("a", "a-near"), ("b", "b")]
    assert [c.distance for c in found] == pytest.approx([0.1, 0.2], abs=1e-7)


def test_each_subject_appears_once_with_its_nearest_template(new_index: IndexFactory) -> None:
    found = _small(new_index).search(_vector(0.35), k=10, threshold=math.inf)
    assert [(c.subject_id, c.template_id) for c in found] == [
        ("a", "a-far"),
        ("b", "b"),
        ("c", "c"),
    ]


def test_the_threshold_is_inclusive_and_beyond_it_is_no_match(new_index: IndexFactory) -> None:
    index = new_index()
    index.add(template_ids=["edge"], subject_ids=["x"], vectors=_vector(0.5)[None, :])
    index.add(template_ids=["beyond"], subject_ids=["y"], vectors=_vector(0, 0.5001)[None, :])
    assert [c.template_id for c in index.search(_vector(), k=5, threshold=0.5)] == ["edge"]
    assert index.search(_vector(), k=5, threshold=0.4999) == []


def test_distance_is_euclidean_and_similarity_is_cosine(new_index: IndexFactory) -> None:
    index = new_index()
    index.add(template_ids=["t"], subject_ids=["s"], vectors=_vector(3.0, 4.0)[None, :])
    (found,) = index.search(_vector(4.0, 3.0), k=1, threshold=math.inf)
    assert found.distance == pytest.approx(math.sqrt(2.0), rel=1e-12)
    assert found.similarity == pytest.approx(24 / 25, rel=1e-12)


def test_readding_a_template_id_replaces_it(new_index: IndexFactory) -> None:
    index = _small(new_index)
    index.add(template_ids=["b"], subject_ids=["d"], vectors=_vector(0.05)[None, :])
    assert len(index) == 4
    found = index.search(_vector(), k=10, threshold=1.0)
    assert [(c.subject_id, c.template_id) for c in found][:2] == [("d", "b"), ("a", "a-near")]
    assert "b" not in {c.subject_id for c in found}
    index.add(
        template_ids=["e", "e"],
        subject_ids=["first", "last"],
        vectors=np.stack([_vector(0.9), _vector(0.01)]),
    )
    assert index.search(_vector(), k=1, threshold=1.0)[0].subject_id == "last"
    assert len(index) == 5


def test_removing_subjects_removes_all_their_templates(new_index: IndexFactory) -> None:
    index = _small(new_index)
    assert index.remove_subjects(["a", "nobody", "a"]) == 2
    assert index.remove_subjects(["a"]) == 0
    assert len(index) == 2
    assert index.template_ids() == {"b", "c"}
    found = index.search(_vector(0.1), k=10, threshold=math.inf)
    assert [c.subject_id for c in found] == ["b", "c"]
    index.add(template_ids=["a-again"], subject_ids=["a"], vectors=_vector(0.1)[None, :])
    assert index.search(_vector(0.1), k=1, threshold=0.01)[0].template_id == "a-again"


def test_removal_keeps_every_other_subject_findable(
    new_index: IndexFactory, gallery: Gallery
) -> None:
    index = _filled(new_index, gallery)
    gone = set(gallery.mated_subjects[::2])
    removed = index.remove_subjects(sorted(gone))
    assert removed == sum(s in gone for s in gallery.subject_ids)
    assert len(index) == len(gallery.template_ids) - removed
    answers = index.search_many(gallery.mated_probes, k=1, threshold=THRESHOLD)
    for subject, answer in zip(gallery.mated_subjects, answers, strict=True):
        assert all(c.subject_id not in gone for c in answer)
        if subject not in gone:
            assert answer, f"{subject} is enrolled but was not found"


def test_search_many_answers_as_search_does(new_index: IndexFactory, gallery: Gallery) -> None:
    index = _filled(new_index, gallery)
    for threshold in (THRESHOLD, math.inf):
        batch = index.search_many(gallery.probes, k=5, threshold=threshold)
        assert batch == [index.search(p, k=5, threshold=threshold) for p in gallery.probes]


def test_mated_probes_find_their_subject_first(new_index: IndexFactory, gallery: Gallery) -> None:
    """A fresh sample of an enrolled identity; strangers may match (dlib's FMR at this threshold
    is about 1e-3 per comparison, so in a gallery of 1,000 people many do)."""
    index = _filled(new_index, gallery)
    mated = index.search_many(gallery.mated_probes, k=5, threshold=THRESHOLD)
    pairs = zip(mated, gallery.mated_subjects, strict=True)
    hits = sum(bool(answer) and answer[0].subject_id == s for answer, s in pairs)
    assert hits >= 0.95 * len(mated)


def test_nothing_is_asked_nothing_is_found(new_index: IndexFactory) -> None:
    index = _small(new_index)
    assert index.search(_vector(), k=0, threshold=1.0) == []
    assert index.search(_vector(), k=3, threshold=-0.1) == []
    assert index.search_many(np.zeros((0, DIMENSION), np.float32), k=3, threshold=1.0) == []


BAD_ADDS = {
    "one vector, not a matrix": (["t"], ["s"], np.zeros(DIMENSION), "shape"),
    "wrong dimension": (["t"], ["s"], np.zeros((1, DIMENSION - 1)), "shape"),
    "NaN": (["t"], ["s"], np.full((1, DIMENSION), np.nan), "NaN"),
    "infinity": (["t"], ["s"], np.full((1, DIMENSION), np.inf), "infinite"),
    "lengths differ": (["t", "u"], ["s"], np.zeros((1, DIMENSION)), "differ in length"),
}


@pytest.mark.parametrize("case", sorted(BAD_ADDS))
def test_bad_templates_are_refused_and_change_nothing(new_index: IndexFactory, case: str) -> None:
    template_ids, subject_ids, vectors, message = BAD_ADDS[case]
    index = _small(new_index)
    with pytest.raises(ValueError, match=message):
        index.add(template_ids=template_ids, subject_ids=subject_ids, vectors=vectors)
    assert len(index) == 4


BAD_SEARCHES = {
    "wrong probe length": (np.zeros(DIMENSION + 1), 1.0, "length"),
    "NaN probe": (np.full(DIMENSION, np.nan), 1.0, "NaN"),
    "infinite probe": (np.full(DIMENSION, -np.inf), 1.0, "infinite"),
    "NaN threshold": (np.zeros(DIMENSION), math.nan, "threshold is NaN"),
}


@pytest.mark.parametrize("case", sorted(BAD_SEARCHES))
def test_bad_searches_are_refused(new_index: IndexFactory, case: str) -> None:
    probe, threshold, message = BAD_SEARCHES[case]
    with pytest.raises(ValueError, match=message):
        _small(new_index).search(probe.astype(np.float32), k=3, threshold=threshold)


def test_search_many_wants_a_matrix_of_probes(new_index: IndexFactory) -> None:
    with pytest.raises(ValueError, match=r"shape \(m, 128\)"):
        _small(new_index).search_many(np.zeros(DIMENSION, np.float32), k=3, threshold=1.0)


def test_searches_adds_and_removals_may_run_in_parallel_threads(
    new_index: IndexFactory, gallery: Gallery
) -> None:
    index = _filled(new_index, gallery)
    errors: list[BaseException] = []
    churn = gallery.vectors[:50]

    def search() -> None:
        try:
            for probe in gallery.probes[:40]:
                for candidate in index.search(probe, k=3, threshold=math.inf):
                    assert candidate.distance >= 0
        except BaseException as error:  # reported below
            errors.append(error)

    def change() -> None:
        try:
            for round_ in range(5):
                ids = [f"churn-{round_}-{i}" for i in range(len(churn))]
                index.add(template_ids=ids, subject_ids=["churn"] * len(ids), vectors=churn)
                index.remove_subjects(["churn"])
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=f) for f in (search, search, change)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(index) == len(gallery.template_ids)
