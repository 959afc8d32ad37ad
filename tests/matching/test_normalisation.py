"""Score normalisers give each template an offset, and a comparison's normalised distance is
``d + (offset_a + offset_b) / 2``; calibrations are owner-only JSON files that load only for
the model they were made for; a ``NormalisedIndex`` answers exactly as a brute force over
normalised distances would."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import os
import re
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import pytest
from dlib_like import DIMENSION, MODEL, THRESHOLD, Gallery, brute_force, dlib_like

from faceaccord.fairness.mitigation import calibrate
from faceaccord.matching import ExactIndex
from faceaccord.matching import normalisation as module
from faceaccord.matching.normalisation import (
    NO_NORMALISATION,
    SCHEMA,
    ClusterNormaliser,
    CohortNormaliser,
    NoNormalisation,
    NormalisedIndex,
    NormaliserError,
    Provenance,
    ScoreNormaliser,
    load_normaliser,
    normalised_distances,
    save_normaliser,
)
from faceaccord.protection.envelope import MasterKeySealer
from faceaccord.protection.keys import MasterKey

MODEL_SHA = "ab" * 32
OTHER_SHA = "cd" * 32
SMALL = 6
"""The dimension of the small hand-made normalisers."""


def provenance() -> Provenance:
    return Provenance(
        model_id=MODEL,
        model_sha256=MODEL_SHA,
        data_sha256="ef" * 32,
        images=40,
        subjects=10,
        created_at="2026-11-22T10:00:00+00:00",
        target_fmr=0.01,
        selection={"parameter": "k", "chosen": 3, "criterion": "given"},
    )


def cluster_normaliser(seed: int = 1, dimension: int = SMALL, k: int = 3) -> ClusterNormaliser:
    rng = np.random.default_rng(seed)
    return ClusterNormaliser(
        centroids=rng.normal(0, 1, (k, dimension)),
        cluster_offsets=rng.normal(0, 0.1, k),
        provenance=provenance(),
    )


def cohort_normaliser(seed: int = 2, dimension: int = SMALL) -> CohortNormaliser:
    rng = np.random.default_rng(seed)
    return CohortNormaliser(
        cohort=rng.normal(0, 1, (20, dimension)),
        m=3,
        beta=0.75,
        reference=1.25,
        shift=-0.0625,
        provenance=provenance(),
    )


def load(path: Path, *, dimension: int = SMALL, model_id: str = MODEL, sha: str = MODEL_SHA):
    return load_normaliser(path, model_id=model_id, model_sha256=sha, dimension=dimension)


def encoded(array: np.ndarray) -> dict[str, Any]:
    data = np.ascontiguousarray(array, dtype="<f8")
    return {
        "shape": list(data.shape),
        "dtype": "<f8",
        "base64": base64.b64encode(data.tobytes()).decode("ascii"),
    }


def rewrite(path: Path, change: Callable[[dict[str, Any]], None]) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    change(document)
    path.write_text(json.dumps(document), encoding="utf-8")


# --- the offsets ---------------------------------------------------------------------------------


def test_no_normalisation_gives_zero_offsets_and_is_called_none() -> None:
    embeddings = np.random.default_rng(0).normal(0, 1, (7, SMALL)).astype(np.float32)
    offsets = NO_NORMALISATION.offsets(embeddings)
    assert offsets.dtype == np.float64
    assert np.array_equal(offsets, np.zeros(7))
    assert NO_NORMALISATION.offsets(np.zeros((0, SMALL), np.float32)).shape == (0,)
    assert NoNormalisation().id == NO_NORMALISATION.id == "none"
    assert NO_NORMALISATION.method == "none"
    assert NO_NORMALISATION.describe() == {"id": "none", "method": "none"}


def test_every_normaliser_is_a_score_normaliser() -> None:
    normalisers: list[ScoreNormaliser] = [
        NO_NORMALISATION,
        cluster_normaliser(),
        cohort_normaliser(),
    ]
    assert [n.method for n in normalisers] == ["none", "fsn", "cohort"]
    assert [n.id for n in normalisers] == ["none", "fsn:unsaved", "cohort:unsaved"]


def test_a_cluster_normaliser_gives_each_embedding_its_nearest_centroids_offset() -> None:
    normaliser = cluster_normaliser(k=4)
    embeddings = np.random.default_rng(3).normal(0, 1.5, (50, SMALL)).astype(np.float32)
    x = embeddings.astype(np.float64)
    nearest = np.argmin(
        np.linalg.norm(x[:, None, :] - normaliser.centroids[None, :, :], axis=2), axis=1
    )
    assert np.array_equal(normaliser.clusters(embeddings), nearest)
    assert np.array_equal(normaliser.offsets(embeddings), normaliser.cluster_offsets[nearest])
    assert len(set(nearest.tolist())) > 1  # the check is not vacuous
    assert normaliser.k == 4
    assert normaliser.offsets(np.zeros((0, SMALL), np.float32)).shape == (0,)


def test_an_embedding_at_a_centroid_gets_that_clusters_offset() -> None:
    normaliser = cluster_normaliser(k=3)
    at_centroids = normaliser.centroids.astype(np.float32)
    assert np.array_equal(normaliser.offsets(at_centroids), normaliser.cluster_offsets)


def test_a_cohort_normaliser_offsets_by_the_mean_distance_to_the_m_nearest_of_the_cohort() -> None:
    normaliser = cohort_normaliser()
    embeddings = np.random.default_rng(4).normal(0, 1, (9, SMALL)).astype(np.float32)
    distances = np.linalg.norm(
        embeddings.astype(np.float64)[:, None, :] - normaliser.cohort[None, :, :], axis=2
    )
    nearest = np.sort(distances, axis=1)[:, : normaliser.m].mean(axis=1)
    expected = normaliser.beta * (normaliser.reference - nearest) + normaliser.shift
    np.testing.assert_allclose(normaliser.offsets(embeddings), expected, rtol=0, atol=1e-12)


def test_normalisers_refuse_embeddings_of_another_dimension() -> None:
    wrong = np.zeros((2, SMALL + 1), np.float32)
    for normaliser in (cluster_normaliser(), cohort_normaliser()):
        with pytest.raises(NormaliserError, match=f"{SMALL}-dimensional"):
            normaliser.offsets(wrong)


def test_the_normalised_distance_is_the_distance_plus_the_mean_of_the_two_offsets() -> None:
    distances = np.array([0.25, 0.5, 1.0])
    offsets_a = np.array([0.1, -0.2, 0.0])
    offsets_b = np.array([0.3, 0.2, -0.5])
    assert np.allclose(
        normalised_distances(distances, offsets_a, offsets_b), [0.45, 0.5, 0.75], atol=1e-15
    )
    assert np.allclose(normalised_distances(distances, 0.1, -0.3), distances - 0.1, atol=1e-15)
    assert normalised_distances(distances, offsets_a, offsets_b).dtype == np.float64


def test_describe_holds_provenance_but_no_arrays() -> None:
    fsn = cluster_normaliser().describe()
    assert fsn["method"] == "fsn"
    assert fsn["k"] == 3
    assert fsn["model"] == {"id": MODEL, "sha256": MODEL_SHA}
    assert fsn["selection"]["criterion"] == "given"
    cohort = cohort_normaliser().describe()
    assert cohort["method"] == "cohort"
    assert cohort["m"] == 3
    assert cohort["cohort_size"] == 20
    for description in (fsn, cohort):
        assert "centroids" not in description
        assert "cohort" not in description
        json.dumps(description)  # plain data, ready for a report


# --- calibration files ---------------------------------------------------------------------------


@pytest.mark.parametrize("make", [cluster_normaliser, cohort_normaliser])
def test_save_then_load_gives_the_same_offsets_and_the_id_save_returned(
    make: Callable[[], ClusterNormaliser | CohortNormaliser], tmp_path: Path
) -> None:
    original = make()
    path = tmp_path / "calibrations" / "normaliser.json"
    saved_id = save_normaliser(original, path)
    loaded = load(path)
    assert type(loaded) is type(original)
    assert re.fullmatch(rf"{original.method}:[0-9a-f]{{12}}", saved_id)
    assert loaded.id == saved_id
    assert saved_id.split(":")[1] == hashlib.sha256(path.read_bytes()).hexdigest()[:12]
    probes = np.random.default_rng(5).normal(0, 1.2, (64, SMALL)).astype(np.float32)
    assert np.array_equal(loaded.offsets(probes), original.offsets(probes))
    assert loaded.provenance == original.provenance
    described, expected = loaded.describe(), original.describe()
    assert described.pop("id") == saved_id
    expected.pop("id")
    assert described == expected


def test_the_cohort_parameters_survive_the_file_exactly(tmp_path: Path) -> None:
    original = cohort_normaliser()
    path = tmp_path / "cohort.json"
    save_normaliser(original, path)
    loaded = load(path)
    assert isinstance(loaded, CohortNormaliser)
    assert (loaded.m, loaded.beta, loaded.reference, loaded.shift) == (
        original.m,
        original.beta,
        original.reference,
        original.shift,
    )
    assert np.array_equal(loaded.cohort, original.cohort)


def test_the_file_is_readable_by_its_owner_only_and_no_partial_file_is_left(
    tmp_path: Path,
) -> None:
    path = tmp_path / "normaliser.json"
    save_normaliser(cohort_normaliser(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["normaliser.json"]


def test_saving_over_a_world_readable_file_makes_it_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "normaliser.json"
    path.write_text("{}", encoding="utf-8")
    path.chmod(0o644)
    save_normaliser(cohort_normaliser(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_stale_partial_file_does_not_loosen_the_saved_files_mode(tmp_path: Path) -> None:
    path = tmp_path / "normaliser.json"
    stale = tmp_path / "normaliser.json.partial"
    stale.write_text("left over", encoding="utf-8")
    stale.chmod(0o644)
    save_normaliser(cohort_normaliser(), path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_save_writes_a_partial_file_and_renames_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "normaliser.json"
    save_normaliser(cluster_normaliser(seed=1), path)
    before = path.read_bytes()
    real_fsync = os.fsync
    seen: list[bool] = []

    def watching_fsync(descriptor: int) -> None:
        # While the new calibration is being written, the old one is intact.
        seen.append(path.read_bytes() == before and (tmp_path / "normaliser.json.partial").exists())
        real_fsync(descriptor)

    monkeypatch.setattr(module.os, "fsync", watching_fsync)
    save_normaliser(cluster_normaliser(seed=9), path)
    assert seen == [True]
    assert path.read_bytes() != before
    assert load(path).offsets(np.zeros((1, SMALL), np.float32)).shape == (1,)


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_a_failed_save_leaves_the_previous_calibration_whole(
    failing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "normaliser.json"
    saved_id = save_normaliser(cluster_normaliser(seed=1), path)
    before = path.read_bytes()

    def broken(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(module.os, failing, broken)
    with pytest.raises(OSError, match="disk full"):
        save_normaliser(cohort_normaliser(), path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert load(path).id == saved_id


def test_a_failed_first_save_leaves_no_calibration_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "normaliser.json"

    def broken(*args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(module.os, "replace", broken)
    with pytest.raises(OSError, match="disk full"):
        save_normaliser(cohort_normaliser(), path)
    assert not path.exists()


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "fsn.json"
    save_normaliser(cluster_normaliser(), path)
    return path


@pytest.fixture
def saved_cohort(tmp_path: Path) -> Path:
    path = tmp_path / "cohort.json"
    save_normaliser(cohort_normaliser(), path)
    return path


def test_load_refuses_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(NormaliserError, match="cannot read the score normaliser"):
        load(tmp_path / "absent.json")


def test_load_refuses_a_file_that_is_not_json(saved: Path) -> None:
    saved.write_text('{"schema": "faceaccord.score-normaliser/1", ', encoding="utf-8")
    with pytest.raises(NormaliserError, match="is not a calibration file"):
        load(saved)


@pytest.mark.parametrize("schema", ["faceaccord.score-normaliser/2", None, 1])
def test_load_refuses_another_schema(saved: Path, schema: object) -> None:
    rewrite(saved, lambda d: d.update(schema=schema))
    with pytest.raises(NormaliserError, match=re.escape(f"is not a {SCHEMA} calibration")):
        load(saved)


def test_load_refuses_a_json_document_that_is_not_an_object(saved: Path) -> None:
    saved.write_text("[1, 2, 3]", encoding="utf-8")
    with pytest.raises(NormaliserError, match="calibration"):
        load(saved)


def test_load_refuses_an_unknown_method(saved: Path) -> None:
    rewrite(saved, lambda d: d.update(method="zscore"))
    with pytest.raises(NormaliserError, match="unknown method 'zscore'"):
        load(saved)


def test_load_refuses_a_calibration_of_another_model_and_names_both(saved: Path) -> None:
    with pytest.raises(NormaliserError) as refused:
        load(saved, model_id="arcface-r100")
    message = str(refused.value)
    assert MODEL in message
    assert "arcface-r100" in message
    assert "calibrate again" in message


def test_load_refuses_the_same_model_name_with_other_weights_and_names_both(saved: Path) -> None:
    with pytest.raises(NormaliserError) as refused:
        load(saved, sha=OTHER_SHA)
    message = str(refused.value)
    assert MODEL_SHA[:12] in message
    assert OTHER_SHA[:12] in message


def test_load_refuses_centroids_of_the_wrong_dimension(saved: Path) -> None:
    with pytest.raises(NormaliserError, match=rf"do not fit {SMALL + 2}-dimensional embeddings"):
        load(saved, dimension=SMALL + 2)


def test_load_refuses_a_cohort_of_the_wrong_dimension(saved_cohort: Path) -> None:
    with pytest.raises(NormaliserError, match=r"does not fit 128-dimensional embeddings"):
        load(saved_cohort, dimension=128)


def test_load_refuses_one_offset_too_few(saved: Path) -> None:
    rewrite(saved, lambda d: d["arrays"].update(cluster_offsets=encoded(np.zeros(2))))
    with pytest.raises(NormaliserError, match="one offset per cluster"):
        load(saved)


@pytest.mark.parametrize(
    "damage",
    [
        lambda a: a.update(base64=a["base64"][:-7] + "!!!!!!="),  # not base64
        lambda a: a.update(base64=a["base64"][:-12]),  # bytes missing
        lambda a: a.update(shape=[4, SMALL]),  # more rows than bytes
        lambda a: a.pop("base64"),
        lambda a: a.update(shape="three"),
    ],
    ids=["not-base64", "truncated", "wrong-shape", "no-data", "shape-not-a-list"],
)
def test_load_refuses_a_damaged_array_and_names_it(
    saved: Path, damage: Callable[[dict[str, Any]], None]
) -> None:
    rewrite(saved, lambda d: damage(d["arrays"]["centroids"]))
    with pytest.raises(NormaliserError, match="the array 'centroids' is damaged"):
        load(saved)


def test_load_refuses_a_missing_array(saved: Path) -> None:
    rewrite(saved, lambda d: d["arrays"].pop("centroids"))
    with pytest.raises(NormaliserError, match="'centroids'"):
        load(saved)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_load_refuses_non_finite_numbers_in_the_arrays(saved: Path, value: float) -> None:
    offsets = np.array([0.1, value, -0.1])
    rewrite(saved, lambda d: d["arrays"].update(cluster_offsets=encoded(offsets)))
    with pytest.raises(NormaliserError, match="'cluster_offsets' holds non-finite numbers"):
        load(saved)


@pytest.mark.parametrize("parameter", ["beta", "reference", "shift"])
def test_load_refuses_non_finite_cohort_parameters(saved_cohort: Path, parameter: str) -> None:
    rewrite(saved_cohort, lambda d: d["parameters"].update({parameter: math.nan}))
    with pytest.raises(NormaliserError, match="cohort parameters out of range"):
        load(saved_cohort)


def test_load_refuses_a_cohort_without_nearest_templates(saved_cohort: Path) -> None:
    rewrite(saved_cohort, lambda d: d["parameters"].update(m=0))
    with pytest.raises(NormaliserError, match="out of range"):
        load(saved_cohort)


def test_load_refuses_missing_cohort_parameters(saved_cohort: Path) -> None:
    rewrite(saved_cohort, lambda d: d["parameters"].pop("reference"))
    with pytest.raises(NormaliserError, match="the cohort parameters lack 'reference'"):
        load(saved_cohort)


@pytest.mark.parametrize("key", ["model", "data", "created_at", "parameters", "arrays"])
def test_load_refuses_a_calibration_missing_a_section(saved: Path, key: str) -> None:
    rewrite(saved, lambda d: d.pop(key))
    with pytest.raises(NormaliserError, match=f"the calibration lacks '{key}'"):
        load(saved)


def test_load_refuses_arrays_that_are_not_an_object(saved: Path) -> None:
    rewrite(saved, lambda d: d.update(arrays=[]))
    with pytest.raises(NormaliserError):
        load(saved)


def test_a_changed_file_gets_another_id(saved: Path) -> None:
    first = load(saved).id
    rewrite(saved, lambda d: d.update(created_at="2026-11-23T10:00:00+00:00"))
    assert load(saved).id != first


# --- identification ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def small_gallery() -> Gallery:
    return dlib_like(identities=120, probes=12, seed=11)


@pytest.fixture(scope="module")
def calibrated() -> dict[str, ScoreNormaliser]:
    """Normalisers calibrated on other dlib-like people, and one with large hand-made offsets."""
    data = dlib_like(identities=50, probes=1, seed=12)
    subjects = np.array([int(s[1:]) for s in data.subject_ids])
    common = {
        "model_id": MODEL,
        "model_sha256": MODEL_SHA,
        "data_sha256": "00" * 32,
        "now": datetime(2026, 11, 22, tzinfo=UTC),
    }
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)  # k-means of a few hundred points: steadiest on one thread
    try:
        cohort = calibrate("cohort", data.vectors, subjects, parameter=5, **common)
        fsn = calibrate("fsn", data.vectors, subjects, parameter=3, **common)
    finally:
        faiss.omp_set_num_threads(threads)
    rng = np.random.default_rng(13)
    wide = ClusterNormaliser(
        centroids=data.vectors[rng.choice(len(data.vectors), 6, replace=False)].astype(np.float64),
        cluster_offsets=rng.uniform(-0.15, 0.15, 6),
        provenance=provenance(),
    )
    return {"cohort": cohort, "fsn": fsn, "wide-fsn": wide}


_OFFSETS: dict[tuple[int, bytes], tuple[ScoreNormaliser, dict[str, float]]] = {}


def template_offsets(
    normaliser: ScoreNormaliser, vectors: np.ndarray, template_ids: list[str]
) -> dict[str, float]:
    """The templates' offsets (computed once per normaliser and gallery)."""
    key = (id(normaliser), hashlib.sha256(vectors.tobytes()).digest())
    cached = _OFFSETS.get(key)
    if cached is None or cached[0] is not normaliser:
        offsets = normaliser.offsets(vectors).tolist()
        cached = _OFFSETS[key] = (normaliser, dict(zip(template_ids, offsets, strict=True)))
    return cached[1]


def normalised_brute_force(
    normaliser: ScoreNormaliser,
    vectors: np.ndarray,
    subject_ids: list[str],
    template_ids: list[str],
    probe: np.ndarray,
    *,
    k: int,
    threshold: float,
) -> list[tuple[str, str, float]]:
    """Each subject scored on its raw-nearest template with both offsets, within the threshold,
    best first, at most k."""
    offsets = template_offsets(normaliser, vectors, template_ids)
    probe_offset = float(normaliser.offsets(probe[None])[0])
    nearest = brute_force(vectors, subject_ids, template_ids, probe, k=10**9, threshold=math.inf)
    scored = [
        (subject, template, distance + (probe_offset + offsets[template]) / 2)
        for subject, template, distance in nearest
    ]
    kept = sorted((c for c in scored if c[2] <= threshold), key=lambda c: c[2])
    return kept[:k]


def normalised_index(normaliser: ScoreNormaliser, gallery: Gallery) -> NormalisedIndex:
    index = NormalisedIndex(ExactIndex(model_id=MODEL, dimension=DIMENSION), normaliser)
    index.add(
        template_ids=gallery.template_ids, subject_ids=gallery.subject_ids, vectors=gallery.vectors
    )
    return index


def answer(index: NormalisedIndex, probe: np.ndarray, *, k: int, threshold: float) -> list:
    return [
        (c.subject_id, c.template_id, c.distance)
        for c in index.search(probe, k=k, threshold=threshold)
    ]


def same_answer(got: list, expected: list) -> bool:
    return [(s, t) for s, t, _ in got] == [(s, t) for s, t, _ in expected] and np.allclose(
        [d for _, _, d in got], [d for _, _, d in expected], rtol=0, atol=1e-12
    )


@pytest.mark.parametrize("name", ["cohort", "fsn", "wide-fsn"])
@pytest.mark.parametrize(("k", "threshold"), [(1, THRESHOLD), (5, THRESHOLD), (10, 0.8)])
def test_a_normalised_index_answers_as_a_brute_force_over_normalised_distances(
    name: str,
    k: int,
    threshold: float,
    small_gallery: Gallery,
    calibrated: dict[str, ScoreNormaliser],
) -> None:
    normaliser = calibrated[name]
    index = normalised_index(normaliser, small_gallery)
    found = 0
    for probe in small_gallery.probes:
        got = answer(index, probe, k=k, threshold=threshold)
        expected = normalised_brute_force(
            normaliser,
            small_gallery.vectors,
            small_gallery.subject_ids,
            small_gallery.template_ids,
            probe,
            k=k,
            threshold=threshold,
        )
        assert same_answer(got, expected), (got, expected)
        assert len(got) <= k
        assert all(d <= threshold for _, _, d in got)
        assert [d for _, _, d in got] == sorted(d for _, _, d in got)
        found += len(got)
    assert found > 0  # not vacuous


def test_the_offsets_change_the_answer(
    small_gallery: Gallery, calibrated: dict[str, ScoreNormaliser]
) -> None:
    """The normalised index's distances are not the raw ones (else the tests above say little)."""
    plain = ExactIndex(model_id=MODEL, dimension=DIMENSION)
    plain.add(
        template_ids=small_gallery.template_ids,
        subject_ids=small_gallery.subject_ids,
        vectors=small_gallery.vectors,
    )
    index = normalised_index(calibrated["wide-fsn"], small_gallery)
    probe = small_gallery.mated_probes[0]
    raw = plain.search(probe, k=3, threshold=2.0)
    normalised = index.search(probe, k=3, threshold=2.0)
    assert [c.distance for c in raw] != pytest.approx([c.distance for c in normalised])


@pytest.mark.parametrize("name", ["cohort", "wide-fsn"])
def test_removed_subjects_are_never_found_again(
    name: str, small_gallery: Gallery, calibrated: dict[str, ScoreNormaliser]
) -> None:
    normaliser = calibrated[name]
    index = normalised_index(normaliser, small_gallery)
    gone = set(small_gallery.mated_subjects[:8])
    removed = index.remove_subjects(sorted(gone))
    keep = [i for i, s in enumerate(small_gallery.subject_ids) if s not in gone]
    assert removed == len(small_gallery.subject_ids) - len(keep)
    assert len(index) == len(keep)
    assert index.template_ids() == {small_gallery.template_ids[i] for i in keep}
    for probe in small_gallery.probes:
        got = answer(index, probe, k=5, threshold=0.8)
        assert all(s not in gone for s, _, _ in got)
        expected = normalised_brute_force(
            normaliser,
            small_gallery.vectors[keep],
            [small_gallery.subject_ids[i] for i in keep],
            [small_gallery.template_ids[i] for i in keep],
            probe,
            k=5,
            threshold=0.8,
        )
        assert same_answer(got, expected)


@pytest.mark.parametrize(
    "normaliser",
    [
        NO_NORMALISATION,
        ClusterNormaliser(np.zeros((2, DIMENSION)), np.zeros(2), provenance()),
    ],
    ids=["none", "zero-offsets"],
)
def test_with_all_offsets_zero_it_answers_as_the_inner_index(
    normaliser: ScoreNormaliser, small_gallery: Gallery
) -> None:
    plain = ExactIndex(model_id=MODEL, dimension=DIMENSION)
    plain.add(
        template_ids=small_gallery.template_ids,
        subject_ids=small_gallery.subject_ids,
        vectors=small_gallery.vectors,
    )
    index = normalised_index(normaliser, small_gallery)
    assert len(index) == len(plain)
    assert index.template_ids() == plain.template_ids()
    for threshold in (THRESHOLD, 0.9):
        for probe in small_gallery.probes:
            assert index.search(probe, k=7, threshold=threshold) == plain.search(
                probe, k=7, threshold=threshold
            )


def test_an_empty_normalised_index_finds_no_one() -> None:
    index = NormalisedIndex(ExactIndex(model_id=MODEL, dimension=SMALL), cluster_normaliser())
    assert index.search(np.zeros(SMALL, np.float32), k=3, threshold=10.0) == []
    assert len(index) == 0
    assert index.model_id == MODEL
    assert index.dimension == SMALL


def test_a_threshold_no_offset_can_reach_finds_no_one() -> None:
    normaliser = ClusterNormaliser(np.zeros((1, 2)), np.array([0.5]), provenance())
    index = NormalisedIndex(ExactIndex(model_id=MODEL, dimension=2), normaliser)
    index.add(template_ids=["t"], subject_ids=["s"], vectors=np.zeros((1, 2), np.float32))
    # The probe is the template itself, yet 0 + (0.5 + 0.5) / 2 > 0.4.
    assert index.search(np.zeros(2, np.float32), k=1, threshold=0.4) == []
    (found,) = index.search(np.zeros(2, np.float32), k=1, threshold=0.5)
    assert found.distance == pytest.approx(0.5)


def test_a_subject_far_in_raw_distance_but_nearest_normalised_is_found() -> None:
    """40 subjects around a probe at raw distances 1.000 ... 1.039; the farthest sits in a
    cluster with offset -1, so its normalised distance, 1.039 - 0.5, is the best by far."""
    angles = np.linspace(0.1, math.pi - 0.1, 39)
    radii = 1.0 + 0.001 * np.arange(39)
    near = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    vectors = np.concatenate([near, [[0.0, -1.039]]]).astype(np.float32)
    subjects = [f"s{i}" for i in range(40)]
    templates = [f"t{i}" for i in range(40)]
    normaliser = ClusterNormaliser(
        centroids=np.array([[0.0, 1.0], [0.0, -1.0]]),
        cluster_offsets=np.array([0.0, -1.0]),
        provenance=provenance(),
    )
    index = NormalisedIndex(ExactIndex(model_id=MODEL, dimension=2), normaliser)
    index.add(template_ids=templates, subject_ids=subjects, vectors=vectors)
    probe = np.array([0.0, 0.001], np.float32)
    expected = normalised_brute_force(
        normaliser, vectors, subjects, templates, probe, k=1, threshold=2.0
    )
    assert expected[0][0] == "s39"
    assert same_answer(answer(index, probe, k=1, threshold=2.0), expected)


# --- sealed calibrations ---------------------------------------------------------------------


def sealer(byte: int = 7) -> MasterKeySealer:
    return MasterKeySealer(MasterKey(bytes([byte]) * 32))


def test_a_sealed_calibration_round_trips_and_keeps_no_array_in_clear(tmp_path: Path) -> None:
    normaliser = cohort_normaliser()
    path = tmp_path / "sealed.json"
    save_normaliser(normaliser, path, sealer=sealer())
    stored = json.loads(path.read_text(encoding="utf-8"))["arrays"]["cohort"]
    assert "base64" not in stored
    assert stored["sealed"]["key_id"] == sealer().key_id
    clear = base64.b64encode(normaliser.cohort.astype("<f8").tobytes()).decode()
    assert clear[:40] not in path.read_text(encoding="utf-8")
    loaded = load_normaliser(path, model_id=MODEL, model_sha256=MODEL_SHA, dimension=SMALL,
                             sealer=sealer())  # fmt: skip
    assert isinstance(loaded, CohortNormaliser)
    assert np.array_equal(loaded.cohort, normaliser.cohort)


def test_a_sealed_calibration_needs_its_deployments_key(tmp_path: Path) -> None:
    path = tmp_path / "sealed.json"
    save_normaliser(cohort_normaliser(), path, sealer=sealer(7))
    with pytest.raises(NormaliserError, match=r"sealed with master key .*load it in the deploy"):
        load(path)
    with pytest.raises(NormaliserError, match=f"not this deployment's \\({sealer(8).key_id}\\)"):
        load_normaliser(path, model_id=MODEL, model_sha256=MODEL_SHA, dimension=SMALL,
                        sealer=sealer(8))  # fmt: skip


def test_an_altered_sealed_array_does_not_decrypt(tmp_path: Path) -> None:
    path = tmp_path / "sealed.json"
    save_normaliser(cohort_normaliser(), path, sealer=sealer())
    document = json.loads(path.read_text(encoding="utf-8"))
    ciphertext = bytearray(base64.b64decode(document["arrays"]["cohort"]["sealed"]["ciphertext"]))
    ciphertext[0] ^= 1
    document["arrays"]["cohort"]["sealed"]["ciphertext"] = base64.b64encode(ciphertext).decode()
    path.write_text(json.dumps(document), encoding="utf-8")
    with pytest.raises(NormaliserError, match="'cohort' does not decrypt"):
        load_normaliser(path, model_id=MODEL, model_sha256=MODEL_SHA, dimension=SMALL,
                        sealer=sealer())  # fmt: skip
