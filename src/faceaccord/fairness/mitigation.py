"""Calibrating score normalisers, choosing their parameters without demographic labels, and
measuring them on people they never saw.

Everything here takes embeddings and, for each, *which person* it shows (to tell genuine pairs
from impostor pairs): never a demographic label. The normalisers themselves live in
``faceaccord.matching.normalisation``.

- Calibration (``calibrate``): ``fsn`` clusters the embeddings with k-means (FAISS) and sets each
  cluster's offset from its threshold at the target false-match rate over the impostor pairs
  that involve it (Terhörst et al. 2020); ``cohort`` keeps the embeddings as an impostor cohort.
  Offsets are then re-centred so that the global threshold at FMR 1e-2 on the calibration set is
  the same before and after.
- Choosing parameters (``k`` for ``fsn``, ``m`` for ``cohort``) by label-free validation:
  subject-disjoint folds of the calibration set; on each held-out fold, every template's mean
  normalised distance to its three nearest held-out strangers; the criterion is the Gini
  coefficient of those distances (a normaliser that works makes everyone's closest strangers
  about equally far, whoever they are), the lowest wins, ties to the simplest.
- Measuring (``cross_validated_distances``): people are split into folds; the pairs between
  folds a and b are normalised by a normaliser calibrated on every other fold, so no pair is
  scored by a calibration that saw either of its people.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import faiss
import numpy as np
from numpy.typing import NDArray

from faceaccord.fairness.metrics import gini, threshold_for_fmr
from faceaccord.fairness.pairs import PairSet
from faceaccord.matching.normalisation import (
    ClusterNormaliser,
    CohortNormaliser,
    Provenance,
    ScoreNormaliser,
    pairwise_distances,
)

__all__ = [
    "ALIGN_FMR",
    "DEFAULT_CANDIDATES",
    "MITIGATIONS",
    "calibrate",
    "cross_validated_distances",
    "selection_score",
]

MITIGATIONS = ("none", "fsn", "cohort")
ALIGN_FMR = 1e-2
DEFAULT_CANDIDATES: dict[str, tuple[int, ...]] = {"fsn": (2, 3, 4, 6, 8), "cohort": (3, 5, 10)}
"""``k`` (clusters) for fsn, ``m`` (nearest cohort templates) for cohort."""
MIN_CLUSTER_ERRORS = 5
SELECTION_FOLDS = 3
NEAREST_STRANGERS = 3

Matrix = NDArray[np.float64]
Labels = NDArray[np.int64]


def calibrate(
    method: str,
    embeddings: Matrix,
    subjects: Labels,
    *,
    model_id: str,
    model_sha256: str,
    data_sha256: str,
    now: datetime,
    parameter: int | None = None,
    target_fmr: float = ALIGN_FMR,
    seed: int = 20261122,
) -> ClusterNormaliser | CohortNormaliser:
    """A normaliser calibrated on ``embeddings`` (rows; ``subjects[i]`` is row i's person).
    ``parameter`` is k or m; ``None`` chooses it by label-free validation."""
    x = _checked(embeddings, subjects)
    if method not in ("fsn", "cohort"):
        raise ValueError(f"unknown score normalisation {method!r} (fsn or cohort)")
    selection: dict[str, Any]
    if parameter is None:
        scores = {
            candidate: selection_score(
                method, candidate, x, subjects, target_fmr=target_fmr, seed=seed
            )
            for candidate in DEFAULT_CANDIDATES[method]
            if _feasible(method, candidate, x, subjects)
        }
        if not scores:
            raise ValueError("too few people to calibrate: at least 6 with two images help")
        parameter = min(scores, key=lambda c: (round(scores[c], 4), c))
        selection = {
            "parameter": "k" if method == "fsn" else "m",
            "criterion": "Gini of held-out nearest-stranger normalised distances "
            f"({SELECTION_FOLDS} subject-disjoint folds; lower is fairer); no demographic labels",
            "scores": {str(c): s for c, s in scores.items()},
            "chosen": parameter,
        }
    else:
        selection = {"parameter": "k" if method == "fsn" else "m", "chosen": parameter,
                     "criterion": "given"}  # fmt: skip
    provenance = Provenance(
        model_id=model_id, model_sha256=model_sha256, data_sha256=data_sha256,
        images=int(x.shape[0]), subjects=int(np.unique(subjects).size),
        created_at=now.isoformat(), target_fmr=target_fmr, selection=selection,
    )  # fmt: skip
    return _fit(method, parameter, x, subjects, target_fmr=target_fmr, seed=seed,
                provenance=provenance)  # fmt: skip


def _checked(embeddings: Matrix, subjects: Labels) -> Matrix:
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or len(x) != len(subjects):
        raise ValueError("one row of embeddings per subject label")
    if np.unique(subjects).size < 3:
        raise ValueError("calibration needs impostor pairs of at least three people")
    if not np.isfinite(x).all():
        raise ValueError("embeddings must be finite")
    return x


def _feasible(method: str, parameter: int, x: Matrix, subjects: Labels) -> bool:
    people = np.unique(subjects).size
    if method == "fsn":
        return parameter * 4 <= len(x) and people >= SELECTION_FOLDS * 2
    return parameter < len(x) and people >= SELECTION_FOLDS * 2


def _fit(
    method: str,
    parameter: int,
    x: Matrix,
    subjects: Labels,
    *,
    target_fmr: float,
    seed: int,
    provenance: Provenance,
) -> ClusterNormaliser | CohortNormaliser:
    distances = pairwise_distances(x, x)
    impostor = subjects[:, None] != subjects[None, :]
    upper = np.triu(impostor, k=1)
    a, b = np.nonzero(upper)
    raw = distances[a, b]
    if method == "fsn":
        centroids = kmeans(x, parameter, seed=seed)
        clusters = _nearest(x, centroids)
        global_threshold = threshold_for_fmr(raw, target_fmr)
        offsets = np.zeros(parameter, dtype=np.float64)
        enough = math.ceil(MIN_CLUSTER_ERRORS / target_fmr)
        for cluster in range(parameter):
            involved = (clusters[a] == cluster) | (clusters[b] == cluster)
            if involved.sum() >= enough:
                offsets[cluster] = global_threshold - threshold_for_fmr(raw[involved], target_fmr)
        own = offsets[clusters]
        shift = _recentring(raw, raw + (own[a] + own[b]) / 2)
        return ClusterNormaliser(centroids, offsets + shift, provenance)
    masked = np.where(impostor, distances, np.inf)
    m = min(parameter, int(impostor.sum(axis=1).min()))
    nearest = np.partition(masked, m - 1, axis=1)[:, :m].mean(axis=1)
    reference = float(nearest.mean())
    own = reference - nearest
    shift = _recentring(raw, raw + (own[a] + own[b]) / 2)
    return CohortNormaliser(x.copy(), parameter, 1.0, reference, shift, provenance)


def _recentring(raw: Matrix, normalised: Matrix) -> float:
    """The constant that keeps the global threshold at FMR 1e-2 where it was."""
    return threshold_for_fmr(raw, ALIGN_FMR) - threshold_for_fmr(normalised, ALIGN_FMR)


def kmeans(x: Matrix, k: int, *, seed: int) -> Matrix:
    """k centroids of the rows of ``x`` (FAISS k-means, five restarts, seeded)."""
    if not 1 <= k <= len(x):
        raise ValueError(f"k must be between 1 and the number of embeddings ({len(x)}), not {k}")
    clustering = faiss.Kmeans(
        x.shape[1], k, niter=50, nredo=5, seed=seed, verbose=False,
        min_points_per_centroid=1, max_points_per_centroid=1_000_000,
    )  # fmt: skip
    clustering.train(np.ascontiguousarray(x, dtype=np.float32))
    return np.asarray(clustering.centroids, dtype=np.float64)


def _nearest(x: Matrix, centroids: Matrix) -> Labels:
    labels: Labels = np.argmin(pairwise_distances(x, centroids), axis=1).astype(np.int64)
    return labels


def _folds(subjects: Labels, folds: int, seed: int) -> Labels:
    people = np.unique(subjects)
    order = np.random.default_rng(seed).permutation(people.size)
    fold_of_person = np.empty(people.size, dtype=np.int64)
    fold_of_person[order] = np.arange(people.size) % folds
    return fold_of_person[np.searchsorted(people, subjects)]


def selection_score(
    method: str,
    parameter: int,
    x: Matrix,
    subjects: Labels,
    *,
    target_fmr: float = ALIGN_FMR,
    seed: int = 20261122,
) -> float:
    """The label-free criterion (lower is fairer): the mean over held-out folds of the Gini
    coefficient of each template's mean normalised distance to its nearest held-out
    strangers."""
    fold = _folds(subjects, SELECTION_FOLDS, seed)
    scores = []
    for held_out in range(SELECTION_FOLDS):
        train, test = fold != held_out, fold == held_out
        provenance = Provenance("", "", "", 0, 0, "", target_fmr)
        normaliser = _fit(method, parameter, x[train], subjects[train], target_fmr=target_fmr,
                          seed=seed, provenance=provenance)  # fmt: skip
        xt, st = x[test], subjects[test]
        offsets = normaliser.offsets(xt.astype(np.float32))
        distances = pairwise_distances(xt, xt) + (offsets[:, None] + offsets[None, :]) / 2
        distances[st[:, None] == st[None, :]] = np.inf
        m = min(NEAREST_STRANGERS, len(xt) - 2)
        if m < 1:
            continue
        nearest = np.partition(distances, m - 1, axis=1)[:, :m].mean(axis=1)
        scores.append(gini(nearest[np.isfinite(nearest)].tolist()))
    return float(np.mean(scores)) if scores else math.inf


def cross_validated_distances(
    pairs: PairSet,
    embeddings: Matrix,
    subjects: Labels,
    *,
    fit: Callable[[Matrix, Labels], ScoreNormaliser],
    folds: int = 5,
    seed: int = 20261122,
) -> Matrix:
    """``pairs``' distances normalised subject-disjointly: the pairs between folds a and b (a may
    equal b) by a normaliser ``fit`` on the people of every other fold."""
    if folds < 3:
        raise ValueError("cross-validation needs at least three folds (two held out, one left)")
    fold = _folds(subjects, folds, seed)
    fold_a, fold_b = fold[pairs.row_a], fold[pairs.row_b]
    normalised = pairs.distance.copy()
    for first in range(folds):
        for second in range(first, folds):
            chosen = ((fold_a == first) & (fold_b == second)) | (
                (fold_a == second) & (fold_b == first)
            )
            if not chosen.any():
                continue
            train = (fold != first) & (fold != second)
            normaliser = fit(embeddings[train], subjects[train])
            rows = np.flatnonzero((fold == first) | (fold == second))
            offsets = np.zeros(len(embeddings), dtype=np.float64)
            offsets[rows] = normaliser.offsets(embeddings[rows].astype(np.float32))
            normalised[chosen] = (
                pairs.distance[chosen]
                + (offsets[pairs.row_a[chosen]] + offsets[pairs.row_b[chosen]]) / 2
            )
    return normalised


def fitter(
    method: str, *, parameter: int | None, target_fmr: float = ALIGN_FMR, seed: int = 20261122
) -> Callable[[Matrix, Labels], ScoreNormaliser]:
    """A function calibrating ``method`` on a training split (choosing its parameter there,
    by the label-free criterion, when none is given)."""

    def fit(x: Matrix, subjects: Labels) -> ScoreNormaliser:
        return calibrate(
            method, x, subjects, model_id="", model_sha256="", data_sha256="",
            now=datetime(1970, 1, 1), parameter=parameter, target_fmr=target_fmr, seed=seed,
        )  # fmt: skip

    return fit


def describe_methods(methods: Sequence[str]) -> list[str]:
    """Checked, de-duplicated names for ``--compare`` (``none`` first)."""
    chosen = []
    for given in methods:
        name = given.strip().lower()
        if name not in MITIGATIONS:
            raise ValueError(f"unknown mitigation {name!r}: choose from {', '.join(MITIGATIONS)}")
        if name not in chosen:
            chosen.append(name)
    return sorted(chosen, key=MITIGATIONS.index)
