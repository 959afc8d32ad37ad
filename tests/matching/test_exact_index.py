"""``ExactIndex`` is exact: the same answers and distances as a float64 brute force, in either
storage, whatever the blocks, ties and removals."""

from __future__ import annotations

import math

import numpy as np
import pytest
from dlib_like import DIMENSION, MODEL, THRESHOLD, Gallery, brute_force
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from faceaccord.matching import ExactIndex, Storage

STORAGES = [Storage.FLOAT32, Storage.FLOAT16]


def _answer(index: ExactIndex, probe: np.ndarray, *, k: int, threshold: float) -> list[tuple]:
    return [
        (c.subject_id, c.template_id, c.distance)
        for c in index.search(probe, k=k, threshold=threshold)
    ]


@st.composite
def galleries(draw: st.DrawFn) -> tuple[np.ndarray, list[str], np.ndarray, int, float, int]:
    """Small galleries on a coarse grid (so ties and duplicate vectors are common)."""
    dimension = draw(st.integers(1, 6))
    count = draw(st.integers(1, 80))
    grid = st.integers(-4, 4).map(lambda v: v / 4)
    vectors = draw(hnp.arrays(np.float32, (count, dimension), elements=grid))
    subjects = [f"s{draw(st.integers(0, max(0, count // 3)))}" for _ in range(count)]
    probes = draw(hnp.arrays(np.float32, (3, dimension), elements=grid))
    k = draw(st.integers(1, 8))
    threshold = draw(st.sampled_from([0.0, 0.5, 1.0, 1.5, math.inf]))
    block_rows = draw(st.integers(1, 40))
    return vectors, subjects, probes, k, threshold, block_rows


@pytest.mark.parametrize("storage", STORAGES)
@settings(max_examples=60, deadline=None)
@given(case=galleries(), removed=st.sets(st.integers(0, 26), max_size=5))
def test_answers_and_distances_equal_a_float64_brute_force(
    storage: Storage, case: tuple, removed: set[int]
) -> None:
    vectors, subjects, probes, k, threshold, block_rows = case
    template_ids = [f"t{i}" for i in range(len(vectors))]
    index = ExactIndex(
        model_id=MODEL, dimension=vectors.shape[1], storage=storage, block_rows=block_rows
    )
    index.add(template_ids=template_ids, subject_ids=subjects, vectors=vectors)
    for probe in probes:
        expected = brute_force(vectors, subjects, template_ids, probe, k=k, threshold=threshold)
        assert _answer(index, probe, k=k, threshold=threshold) == expected
    gone = {f"s{i}" for i in removed}
    index.remove_subjects(sorted(gone))
    # Removal moves rows, so ties between templates may now break the other way: compare the
    # distances, and the subjects wherever the distances are distinct.
    keep = [i for i, s in enumerate(subjects) if s not in gone]
    for probe in probes:
        got = _answer(index, probe, k=k, threshold=threshold)
        expected = brute_force(
            vectors[keep],
            [subjects[i] for i in keep],
            [template_ids[i] for i in keep],
            probe,
            k=k,
            threshold=threshold,
        )
        assert [d for _, _, d in got] == [d for _, _, d in expected]
        assert all(s not in gone for s, _, _ in got)


def test_float16_storage_gives_the_float32_answers_on_dlib_like_templates(
    gallery: Gallery,
) -> None:
    indexes = [ExactIndex(model_id=MODEL, dimension=DIMENSION, storage=s) for s in STORAGES]
    for index in indexes:
        index.add(
            template_ids=gallery.template_ids,
            subject_ids=gallery.subject_ids,
            vectors=gallery.vectors,
        )
    for threshold in (THRESHOLD, math.inf):
        single, half = (i.search_many(gallery.probes, k=10, threshold=threshold) for i in indexes)
        assert half == single


def test_float16_storage_decides_by_the_float32_distance() -> None:
    """0.5001 and 0.5 are the same number in float16; the answer still uses the float32 one."""
    index = ExactIndex(model_id=MODEL, dimension=2, storage="float16")
    index.add(template_ids=["t"], subject_ids=["s"], vectors=np.array([[0.5001, 0.0]], np.float32))
    assert index.search(np.zeros(2, np.float32), k=1, threshold=0.5) == []
    (found,) = index.search(np.zeros(2, np.float32), k=1, threshold=0.50011)
    assert found.distance == pytest.approx(float(np.float32(0.5001)), rel=1e-15)


def test_float16_storage_refuses_values_it_cannot_hold() -> None:
    index = ExactIndex(model_id=MODEL, dimension=2, storage=Storage.FLOAT16)
    with pytest.raises(ValueError, match="float16"):
        index.add(template_ids=["t"], subject_ids=["s"], vectors=np.array([[7e4, 0]], np.float32))


def test_a_subject_with_hundreds_of_templates_does_not_hide_the_others() -> None:
    """A block's scan keeps at most 256 hits per probe; the dropped ones are scanned again when
    they could matter. Here 600 templates of one subject are nearer than everyone else."""
    rng = np.random.default_rng(3)
    crowd = rng.normal(0, 0.01, (600, 4)).astype(np.float32)
    others = (rng.normal(0, 1, (50, 4)) + 3).astype(np.float32)
    vectors = np.concatenate([crowd, others])
    subjects = ["crowd"] * 600 + [f"s{i}" for i in range(50)]
    template_ids = [f"t{i}" for i in range(len(vectors))]
    probe = np.zeros(4, np.float32)
    index = ExactIndex(model_id=MODEL, dimension=4, block_rows=1000)
    index.add(template_ids=template_ids, subject_ids=subjects, vectors=vectors)
    expected = brute_force(vectors, subjects, template_ids, probe, k=4, threshold=math.inf)
    assert _answer(index, probe, k=4, threshold=math.inf) == expected
    assert index.search_many(probe[None, :], k=4, threshold=math.inf)[0][0].subject_id == "crowd"


def test_capacity_grows_and_rows_stay_dense_through_removals() -> None:
    index = ExactIndex(model_id=MODEL, dimension=3, capacity=1)
    vectors = np.arange(3000, dtype=np.float32).reshape(1000, 3)
    index.add(
        template_ids=[f"t{i}" for i in range(1000)],
        subject_ids=[f"s{i % 10}" for i in range(1000)],
        vectors=vectors,
    )
    assert index.remove_subjects([f"s{i}" for i in range(0, 10, 2)]) == 500
    assert len(index) == 500
    assert index.template_ids() == {f"t{i}" for i in range(1000) if i % 2}
    for i in (1, 3, 999):
        (found,) = index.search(vectors[i], k=1, threshold=0.0)
        assert found.template_id == f"t{i}"


def test_an_unknown_storage_is_refused() -> None:
    with pytest.raises(ValueError, match="float8"):
        ExactIndex(model_id=MODEL, dimension=4, storage="float8")
