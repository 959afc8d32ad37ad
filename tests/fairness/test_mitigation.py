"""Calibrating score normalisers without demographic labels: denser regions of face space get
larger offsets, the global operating point stays where it was, parameters are chosen by a
recorded label-free criterion, and cross-validation never scores a pair with a calibration that
saw either of its people."""

from __future__ import annotations

import ast
import importlib
import inspect
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import faiss
import numpy as np
import pytest

from faceaccord.fairness import mitigation
from faceaccord.fairness.metrics import threshold_for_fmr
from faceaccord.fairness.mitigation import (
    ALIGN_FMR,
    DEFAULT_CANDIDATES,
    calibrate,
    cross_validated_distances,
    describe_methods,
    fitter,
    kmeans,
    selection_score,
)
from faceaccord.fairness.pairs import PairSet, build_pairs
from faceaccord.matching.normalisation import (
    ClusterNormaliser,
    CohortNormaliser,
    Provenance,
    ScoreNormaliser,
    load_normaliser,
    save_normaliser,
)

DIMENSION = 8
PEOPLE_PER_CLUSTER = 30
IMAGES_PER_PERSON = 4
NOW = datetime(2026, 11, 22, 9, 30, tzinfo=UTC)
MODEL = {"model_id": "toy-model", "model_sha256": "12" * 32, "data_sha256": "34" * 32}


def two_clusters(seed: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Two well-separated regions of face space: a dense one (people close together, where
    strangers look alike) and a sparse one; several images per person. Returns the embeddings,
    each row's person, and whether the row is in the dense region."""
    rng = np.random.default_rng(seed)
    centre = np.zeros(DIMENSION)
    centre[0] = 10.0
    rows, subjects, dense = [], [], []
    for region, (sign, spread) in enumerate([(1.0, 0.25), (-1.0, 0.8)]):
        for person in range(PEOPLE_PER_CLUSTER):
            identity = sign * centre + rng.normal(0, spread, DIMENSION)
            rows.append(identity + rng.normal(0, 0.05, (IMAGES_PER_PERSON, DIMENSION)))
            subjects += [region * PEOPLE_PER_CLUSTER + person] * IMAGES_PER_PERSON
            dense += [region == 0] * IMAGES_PER_PERSON
    return np.concatenate(rows), np.array(subjects, dtype=np.int64), np.array(dense)


@pytest.fixture(scope="module", autouse=True)
def one_faiss_thread() -> Iterator[None]:
    """FAISS's k-means on a few hundred points is fastest, and steadiest, on one thread."""
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(1)
    yield
    faiss.omp_set_num_threads(threads)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return two_clusters()


def impostor_pairs(x: np.ndarray, subjects: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.triu_indices(len(x), k=1)
    keep = subjects[a] != subjects[b]
    return a[keep], b[keep]


# --- calibration ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "parameter"), [("fsn", 2), ("cohort", 5)])
def test_the_dense_region_gets_larger_offsets_than_the_sparse_one(
    method: str, parameter: int, data: tuple
) -> None:
    x, subjects, dense = data
    normaliser = calibrate(method, x, subjects, parameter=parameter, now=NOW, **MODEL)
    assert normaliser.method == method
    # People of each region never seen at calibration.
    fresh, _, fresh_dense = two_clusters(seed=8)
    offsets = normaliser.offsets(fresh.astype(np.float32))
    assert offsets[fresh_dense].mean() > offsets[~fresh_dense].mean()
    assert np.median(offsets[fresh_dense]) > offsets[~fresh_dense].max()
    # And on average over the calibration people themselves.
    own = normaliser.offsets(x.astype(np.float32))
    assert own[dense].mean() > own[~dense].mean()
    # Before the re-centring constant, the dense region's offsets are positive (its matches must
    # be closer) and the sparse region's negative. The constant keeps the global threshold at
    # FMR 1e-2, which only the dense region's strangers reach here, so it pulls the dense
    # region's offsets to about 0 (a cohort's per-template ones may dip just below it).
    if isinstance(normaliser, ClusterNormaliser):
        assert offsets[fresh_dense].mean() > 0 > offsets[~fresh_dense].mean()
    else:
        assert isinstance(normaliser, CohortNormaliser)
        centred = offsets - normaliser.shift
        assert np.median(centred[fresh_dense]) > 0 > np.median(centred[~fresh_dense])
        assert offsets[~fresh_dense].mean() < 0


def test_fsn_finds_the_two_regions(data: tuple) -> None:
    x, subjects, dense = data
    normaliser = calibrate("fsn", x, subjects, parameter=2, now=NOW, **MODEL)
    assert isinstance(normaliser, ClusterNormaliser)
    assert normaliser.k == 2
    clusters = normaliser.clusters(x.astype(np.float32))
    assert len(set(clusters[dense].tolist())) == 1
    assert len(set(clusters[~dense].tolist())) == 1
    assert clusters[dense][0] != clusters[~dense][0]


@pytest.mark.parametrize(
    ("method", "parameter"),
    [
        ("fsn", 2),
        ("fsn", 4),
    ],
)
def test_recentring_keeps_the_global_threshold_on_the_calibration_data(
    method: str, parameter: int, data: tuple
) -> None:
    x, subjects, _ = data
    normaliser = calibrate(method, x, subjects, parameter=parameter, now=NOW, **MODEL)
    a, b = impostor_pairs(x, subjects)
    raw = np.linalg.norm(x[a] - x[b], axis=1)
    offsets = normaliser.offsets(x.astype(np.float32))
    normalised = raw + (offsets[a] + offsets[b]) / 2
    assert not np.allclose(normalised, raw)  # the offsets do something
    assert threshold_for_fmr(normalised, ALIGN_FMR) == pytest.approx(
        threshold_for_fmr(raw, ALIGN_FMR), abs=1e-9
    )


def test_recentring_holds_for_the_cohort_calibration_on_the_offsets_it_calibrated(
    data: tuple,
) -> None:
    """The cohort calibration's own view: each template against the cohort without its person."""
    x, subjects, _ = data
    normaliser = calibrate("cohort", x, subjects, parameter=5, now=NOW, **MODEL)
    assert isinstance(normaliser, CohortNormaliser)
    a, b = impostor_pairs(x, subjects)
    raw = np.linalg.norm(x[a] - x[b], axis=1)
    distances = np.linalg.norm(x[:, None, :] - x[None, :, :], axis=2)
    distances[subjects[:, None] == subjects[None, :]] = np.inf
    nearest = np.sort(distances, axis=1)[:, :5].mean(axis=1)
    assert normaliser.reference == pytest.approx(nearest.mean(), rel=1e-12)
    offsets = normaliser.beta * (normaliser.reference - nearest) + normaliser.shift
    normalised = raw + (offsets[a] + offsets[b]) / 2
    assert threshold_for_fmr(normalised, ALIGN_FMR) == pytest.approx(
        threshold_for_fmr(raw, ALIGN_FMR), abs=1e-9
    )


def test_the_provenance_records_the_model_data_and_date(data: tuple) -> None:
    x, subjects, _ = data
    normaliser = calibrate("fsn", x, subjects, parameter=3, now=NOW, target_fmr=0.02, **MODEL)
    provenance = normaliser.provenance
    assert (provenance.model_id, provenance.model_sha256, provenance.data_sha256) == (
        MODEL["model_id"],
        MODEL["model_sha256"],
        MODEL["data_sha256"],
    )
    assert provenance.images == len(x)
    assert provenance.subjects == 2 * PEOPLE_PER_CLUSTER
    assert provenance.created_at == NOW.isoformat()
    assert provenance.target_fmr == 0.02


def test_calibration_is_deterministic_for_a_seed(data: tuple) -> None:
    x, subjects, _ = data
    first, second = (
        calibrate("fsn", x, subjects, parameter=3, now=NOW, seed=5, **MODEL) for _ in range(2)
    )
    probes = x[::7].astype(np.float32)
    assert np.array_equal(first.offsets(probes), second.offsets(probes))


# --- choosing the parameter ----------------------------------------------------------------------


@pytest.mark.parametrize("method", ["fsn", "cohort"])
def test_without_a_parameter_the_label_free_criterion_chooses_one_and_is_recorded(
    method: str, data: tuple
) -> None:
    x, subjects, _ = data
    normaliser = calibrate(method, x, subjects, parameter=None, now=NOW, **MODEL)
    selection = dict(normaliser.provenance.selection)
    assert selection["parameter"] == ("k" if method == "fsn" else "m")
    assert "Gini" in selection["criterion"]
    assert "no demographic labels" in selection["criterion"]
    scores = {int(c): s for c, s in selection["scores"].items()}
    assert set(scores) == set(DEFAULT_CANDIDATES[method])
    assert all(isinstance(s, float) and math.isfinite(s) and s >= 0 for s in scores.values())
    chosen = selection["chosen"]
    assert chosen in DEFAULT_CANDIDATES[method]
    assert chosen == min(scores, key=lambda c: (round(scores[c], 4), c))
    if isinstance(normaliser, ClusterNormaliser):
        assert normaliser.k == chosen
    else:
        assert isinstance(normaliser, CohortNormaliser)
        assert normaliser.m == chosen


def test_the_recorded_scores_are_the_selection_scores(data: tuple) -> None:
    x, subjects, _ = data
    normaliser = calibrate("cohort", x, subjects, parameter=None, now=NOW, seed=3, **MODEL)
    recorded = normaliser.provenance.selection["scores"]
    for candidate in DEFAULT_CANDIDATES["cohort"]:
        assert recorded[str(candidate)] == selection_score("cohort", candidate, x, subjects, seed=3)


@pytest.mark.parametrize(("method", "name"), [("fsn", "k"), ("cohort", "m")])
def test_a_given_parameter_is_recorded_as_given(method: str, name: str, data: tuple) -> None:
    x, subjects, _ = data
    normaliser = calibrate(method, x, subjects, parameter=3, now=NOW, **MODEL)
    assert dict(normaliser.provenance.selection) == {
        "parameter": name,
        "chosen": 3,
        "criterion": "given",
    }


def test_the_selection_survives_the_calibration_file(data: tuple, tmp_path: Path) -> None:
    x, subjects, _ = data
    normaliser = calibrate("fsn", x, subjects, parameter=None, now=NOW, **MODEL)
    path = tmp_path / "fsn.json"
    saved_id = save_normaliser(normaliser, path)
    loaded = load_normaliser(
        path,
        model_id=MODEL["model_id"],
        model_sha256=MODEL["model_sha256"],
        dimension=DIMENSION,
    )
    assert loaded.id == saved_id
    assert loaded.provenance == normaliser.provenance
    probes = x[::5].astype(np.float32)
    assert np.array_equal(loaded.offsets(probes), normaliser.offsets(probes))


def test_too_few_people_to_choose_a_parameter_is_refused() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(0, 1, (12, 4))
    subjects = np.repeat(np.arange(4), 3)
    with pytest.raises(ValueError, match="too few people to calibrate"):
        calibrate("fsn", x, subjects, parameter=None, now=NOW, **MODEL)
    # A given parameter needs no selection.
    assert calibrate("cohort", x, subjects, parameter=2, now=NOW, **MODEL).method == "cohort"


def test_the_selection_score_is_lower_for_a_normaliser_that_evens_out_the_regions(
    data: tuple,
) -> None:
    """A trivial cluster normaliser (k=1 gives every template the same offset) cannot even out
    the two regions; two clusters can."""
    x, subjects, _ = data
    assert selection_score("fsn", 2, x, subjects) < selection_score("fsn", 1, x, subjects)


# --- no demographic labels -----------------------------------------------------------------------

FORBIDDEN = ("ethnic", "race", "gender", "sex", "label", "attribute")


@pytest.mark.parametrize(
    "function",
    [calibrate, selection_score, cross_validated_distances, fitter, kmeans],
    ids=lambda f: f.__name__,
)
def test_calibration_takes_no_demographic_labels(function: object) -> None:
    names = list(inspect.signature(function).parameters)  # type: ignore[arg-type]
    assert not [n for n in names if any(word in n.lower() for word in FORBIDDEN)], names


def test_calibration_sees_only_embeddings_and_who_is_who() -> None:
    parameters = inspect.signature(calibrate).parameters
    positional = [
        name
        for name, p in parameters.items()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]
    assert positional == ["method", "embeddings", "subjects"]
    fit = fitter("fsn", parameter=2)
    assert list(inspect.signature(fit).parameters) == ["x", "subjects"]


# --- cross-validation ----------------------------------------------------------------------------


class SpyFit:
    """A ``fit`` that records the people of each training split and returns a normaliser whose
    every offset is the call's number (1, 2, ...): a pair's normalised distance minus its raw
    one tells which call's normaliser scored it."""

    def __init__(self, rows_of: dict[float, int]) -> None:
        self.trained_on: list[frozenset[int]] = []
        self.rows_of = rows_of

    def __call__(self, x: np.ndarray, subjects: np.ndarray) -> ScoreNormaliser:
        # The embeddings handed over are the rows of those people (column 0 is the row).
        assert [self.rows_of[float(v)] for v in x[:, 0]] == subjects.tolist()
        self.trained_on.append(frozenset(subjects.tolist()))
        call = len(self.trained_on)
        provenance = Provenance("", "", "", 0, 0, "", ALIGN_FMR)
        return ClusterNormaliser(np.zeros((1, x.shape[1])), np.array([float(call)]), provenance)


@pytest.mark.parametrize("folds", [3, 5])
def test_no_pair_is_normalised_by_a_calibration_that_saw_either_of_its_people(folds: int) -> None:
    rng = np.random.default_rng(21)
    people, images = 20, 3
    subjects = np.repeat(np.arange(people), images)
    x = rng.normal(0, 1, (people * images, 4))
    x[:, 0] = np.arange(len(x))  # so the spy can tell which rows it was given
    pairs = build_pairs(x, subjects)
    raw = pairs.distance.copy()
    spy = SpyFit({float(row): int(s) for row, s in enumerate(subjects)})

    normalised = cross_validated_distances(pairs, x, subjects, fit=spy, folds=folds, seed=4)

    assert np.array_equal(pairs.distance, raw)  # the pairs are not changed in place
    calls = np.rint(normalised - raw).astype(int)
    assert np.allclose(normalised - raw, calls, atol=1e-9)
    everyone = frozenset(subjects.tolist())
    held_out = [everyone - trained for trained in spy.trained_on]
    for a, b, call in zip(pairs.subject_a, pairs.subject_b, calls, strict=True):
        assert 1 <= call <= len(spy.trained_on)
        assert a in held_out[call - 1]
        assert b in held_out[call - 1]
        assert a not in spy.trained_on[call - 1]
        assert b not in spy.trained_on[call - 1]
    # Every fold, and every two folds, were held out once: the one-fold hold-outs split the
    # people, and the others are the unions of two of them.
    assert len(spy.trained_on) == folds * (folds + 1) // 2
    assert len(set(held_out)) == len(held_out)
    single = sorted((h for h in held_out if not any(o < h for o in held_out)), key=min)
    assert len(single) == folds
    assert frozenset().union(*single) == everyone
    assert sum(map(len, single)) == people
    doubles = {single[i] | single[j] for i in range(folds) for j in range(i + 1, folds)}
    assert set(held_out) == set(single) | doubles
    # Each pair is scored by the calibration that left out exactly the folds of its people.
    fold_of = {p: i for i, block in enumerate(single) for p in block}
    for a, b, call in zip(pairs.subject_a, pairs.subject_b, calls, strict=True):
        assert held_out[call - 1] == single[fold_of[a]] | single[fold_of[b]]


def test_cross_validation_with_a_real_calibration_scores_every_pair(data: tuple) -> None:
    x, subjects, _ = data
    pairs = build_pairs(x, subjects)
    normalised = cross_validated_distances(
        pairs, x, subjects, fit=fitter("fsn", parameter=2), folds=3
    )
    assert normalised.shape == pairs.distance.shape
    assert np.isfinite(normalised).all()
    assert not np.allclose(normalised, pairs.distance)
    rescored = pairs.with_distances(normalised)
    assert isinstance(rescored, PairSet)
    assert np.array_equal(rescored.genuine, pairs.genuine)
    assert np.array_equal(rescored.row_a, pairs.row_a)
    assert np.array_equal(rescored.row_b, pairs.row_b)


def test_pairs_know_the_rows_they_compare(data: tuple) -> None:
    x, subjects, _ = data
    pairs = build_pairs(x, subjects, genuine_cap=2)
    assert np.array_equal(subjects[pairs.row_a], pairs.subject_a)
    assert np.array_equal(subjects[pairs.row_b], pairs.subject_b)
    np.testing.assert_allclose(
        pairs.distance, np.linalg.norm(x[pairs.row_a] - x[pairs.row_b], axis=1), atol=1e-9
    )
    with pytest.raises(ValueError, match="one distance per pair"):
        pairs.with_distances(pairs.distance[:-1])


# --- errors --------------------------------------------------------------------------------------


def test_an_unknown_method_is_refused(data: tuple) -> None:
    x, subjects, _ = data
    with pytest.raises(ValueError, match="unknown score normalisation 'zscore'"):
        calibrate("zscore", x, subjects, parameter=2, now=NOW, **MODEL)


def test_fewer_than_three_people_are_refused() -> None:
    x = np.random.default_rng(2).normal(0, 1, (6, 4))
    with pytest.raises(ValueError, match="at least three people"):
        calibrate("fsn", x, np.array([0, 0, 0, 1, 1, 1]), parameter=2, now=NOW, **MODEL)


@pytest.mark.parametrize("value", [math.nan, math.inf])
def test_non_finite_embeddings_are_refused(value: float, data: tuple) -> None:
    x, subjects, _ = data
    broken = x.copy()
    broken[3, 2] = value
    with pytest.raises(ValueError, match="embeddings must be finite"):
        calibrate("cohort", broken, subjects, parameter=3, now=NOW, **MODEL)


def test_one_person_per_row_is_required(data: tuple) -> None:
    x, subjects, _ = data
    with pytest.raises(ValueError, match="one row of embeddings per subject label"):
        calibrate("fsn", x, subjects[:-1], parameter=2, now=NOW, **MODEL)


@pytest.mark.parametrize("folds", [0, 1, 2])
def test_cross_validation_needs_three_folds(folds: int, data: tuple) -> None:
    x, subjects, _ = data
    pairs = build_pairs(x, subjects)
    with pytest.raises(ValueError, match="at least three folds"):
        cross_validated_distances(pairs, x, subjects, fit=fitter("fsn", parameter=2), folds=folds)


@pytest.mark.parametrize("k", [0, 10_000])
def test_kmeans_refuses_an_impossible_k(k: int, data: tuple) -> None:
    x, _, _ = data
    with pytest.raises(ValueError, match="k must be between 1 and the number of embeddings"):
        kmeans(x, k, seed=1)


def test_describe_methods_orders_none_fsn_cohort_and_drops_repeats() -> None:
    assert describe_methods(["cohort", " FSN ", "none", "fsn"]) == ["none", "fsn", "cohort"]
    assert describe_methods(["cohort"]) == ["cohort"]
    assert describe_methods([]) == []
    assert mitigation.MITIGATIONS == ("none", "fsn", "cohort")


def test_describe_methods_rejects_an_unknown_name() -> None:
    with pytest.raises(ValueError, match=re.escape("unknown mitigation 'zscore'")) as refused:
        describe_methods(["fsn", "zscore"])
    assert "none, fsn, cohort" in str(refused.value)


LABEL_FREE_MODULES = (
    "faceaccord.fairness.mitigation",
    "faceaccord.matching.normalisation",
    "faceaccord.matching.verification",
    "faceaccord.platform.verification",
    "faceaccord.platform.identification",
)


@pytest.mark.parametrize("module", LABEL_FREE_MODULES)
def test_calibration_and_decisions_never_touch_demographic_labels(module: str) -> None:
    """Only the audit's measurement reads labels (``DatasetImage.attributes``, the labels CSV):
    the calibration and every decision path neither read an ``attributes`` field nor import
    the dataset loader."""
    source = Path(importlib.import_module(module).__file__ or "").read_text(encoding="utf-8")
    tree = ast.parse(source)
    touched = {
        node.attr
        for node in ast.walk(tree)
        if isinstance(node, ast.Attribute) and node.attr in {"attributes", "label_method"}
    }
    imported = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    assert not touched, f"{module} reads {touched}"
    assert "faceaccord.fairness.datasets" not in imported
