"""Label-free bias mitigation on faces-demographic: false-match rates per ethnicity group before
and after score normalisation, cross-validated over people, and what normalisation costs.

The peer is the same model with no mitigation (``none``), measured on the same pairs in the same
run. For each of several random splits of the 102 people into folds, the pairs between folds a
and b are normalised by a calibration on every other fold (no pair is scored by a calibration
that saw either of its people), with parameters chosen on the training folds by the label-free
criterion. Self-reported ethnicity is read here only to measure.

Two operating points:
- the global threshold for FMR 1e-2 set on each method's own scores (the issue's protocol: every
  method at the same overall false-match rate, so true-match rates compare fairly);
- the deployed threshold (the model card's default operating point, FMR 1e-3), unchanged.

Speed: per-template offsets, and a 1:N search of a 20,000-template gallery with and without a
normalising index.

    .venv/bin/python benchmarks/bench_mitigation.py [--short]
"""

from __future__ import annotations

import argparse
import csv
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from _common import SHARED_DATA
from faceaccord.biometrics.pipeline import Engine
from faceaccord.fairness.datasets import load_dataset
from faceaccord.fairness.metrics import gini, threshold_for_fmr
from faceaccord.fairness.mitigation import calibrate, cross_validated_distances, fitter
from faceaccord.fairness.pairs import PairSet, build_pairs
from faceaccord.matching import IndexKind, make_index
from faceaccord.matching.normalisation import NormalisedIndex
from faceaccord.platform.fairness import embed_dataset
from faceaccord.settings import Settings

DATASET = SHARED_DATA / "faces-demographic"
GROUPS = ("white", "black", "east_asian", "west_asian")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--short", action="store_true", help="2 splits, 5 folds (CI)")
    args = parser.parse_args()
    if not DATASET.is_dir():
        print(f"skipped: {DATASET} is not here (../shared/data is for development benchmarks)")
        return 0
    splits, folds = (2, 5) if args.short else (6, 10)
    engine = Engine.load(Settings())
    started = time.perf_counter()
    data = load_dataset(DATASET)  # folders only: no labels read for the embeddings
    embeddings = embed_dataset(data, engine=engine, workers=Settings().worker_count())
    print(f"embedded {len(embeddings)} images in {time.perf_counter() - started:.1f} s")
    rows = [i for i, e in enumerate(embeddings) if e is not None]
    matrix = np.stack([np.asarray(embeddings[i], dtype=np.float64) for i in rows])
    people = sorted({data.images[i].subject for i in rows})
    subjects = np.array([people.index(data.images[i].subject) for i in rows], dtype=np.int64)
    ethnicity = _ethnicity(DATASET / "identities.csv")
    group = np.array([ethnicity.get(data.images[i].subject, "unknown") for i in rows])
    pairs = build_pairs(matrix, subjects)
    deployed = engine.operating_point.threshold
    methods: list[tuple[str, str, int | None]] = [
        ("none", "none", None), ("fsn", "fsn", None), ("cohort", "cohort", None),
    ]  # fmt: skip
    if not args.short:
        methods += [("fsn k=4", "fsn", 4), ("cohort m=3", "cohort", 3)]
    print(
        f"{len(people)} people, {int(pairs.genuine.sum())} genuine and "
        f"{int(pairs.impostor.sum())} impostor pairs; {splits} splits x {folds} folds; "
        f"deployed threshold {deployed:.4f} ({engine.operating_point.name})"
    )
    results: dict[str, list[dict[str, Any]]] = {label: [] for label, _, _ in methods}
    for split in range(splits):
        for label, method, parameter in methods:
            if method == "none":
                distances = pairs.distance
            else:
                fit = fitter(method, parameter=parameter, seed=split)
                distances = cross_validated_distances(
                    pairs, matrix, subjects, fit=fit, folds=folds, seed=split
                )
            results[label].append(_measure(pairs, distances, group, deployed))
    _print(results, deployed)
    _speed(matrix, subjects)
    return 0


def _ethnicity(path: Path) -> dict[str, str]:
    with path.open(newline="", encoding="utf-8") as handle:
        return {row["identity"]: row["ethnicity_self_reported"] for row in csv.DictReader(handle)}


def _measure(
    pairs: PairSet, distances: NDArray[np.float64], group: NDArray[np.str_], deployed: float
) -> dict[str, Any]:
    impostor, genuine = distances[pairs.impostor], distances[pairs.genuine]
    group_a, group_b = group[pairs.row_a], group[pairs.row_b]
    measured: dict[str, Any] = {}
    for name, threshold in (("1e-2", threshold_for_fmr(impostor, 1e-2)), ("deployed", deployed)):
        counts = {}
        for g in GROUPS:
            cell = pairs.impostor & (group_a == g) & (group_b == g)
            counts[g] = (int((distances[cell] <= threshold).sum()), int(cell.sum()))
        fmrs = [errors / trials for errors, trials in counts.values()]
        white = counts["white"][0] / counts["white"][1]
        measured[name] = {
            "worst_vs_white": max(fmrs) / white if white > 0 else float("inf"),
            "threshold": threshold,
            "counts": counts,
            "ratio": max(fmrs) / min(fmrs) if min(fmrs) > 0 else float("inf"),
            "gini": gini(fmrs),
            "fmr": float((impostor <= threshold).mean()),
            "tmr": float((genuine <= threshold).mean()),
        }
    return measured


def _print(results: dict[str, list[dict[str, Any]]], deployed: float) -> None:
    baseline = results["none"]
    for point, title in (
        ("1e-2", "global threshold for FMR 1e-2 on each method's own scores"),
        ("deployed", f"the deployed threshold {deployed:.4f}"),
    ):
        print(f"\n== {title} (median over splits; [min-max]) ==")
        print(f"{'method':<12} {'FMR ratio':>20} {'worst/white':>11} {'Gini(FMR)':>8} "
              f"{'vs none':>8} {'overall FMR':>11} {'TMR':>6}  per group (first split): "
              "errors/pairs")  # fmt: skip
        base_ratio = statistics.median(r[point]["ratio"] for r in baseline)
        for label, runs in results.items():
            ratios = [r[point]["ratio"] for r in runs]
            ratio = statistics.median(ratios)
            versus = base_ratio / ratio if np.isfinite(ratio) and ratio > 0 else float("nan")
            groups = "  ".join(f"{g} {e}/{t}" for g, (e, t) in runs[0][point]["counts"].items())
            print(
                f"{label:<12} {ratio:>7.1f} [{min(ratios):.1f}-{max(ratios):.1f}]".ljust(34)
                + f"{statistics.median(r[point]['worst_vs_white'] for r in runs):>11.1f} "
                f"{statistics.median(r[point]['gini'] for r in runs):>8.3f} "
                f"{versus:>7.1f}x {statistics.median(r[point]['fmr'] for r in runs):>10.3%} "
                f"{statistics.median(r[point]['tmr'] for r in runs):>6.3f}  {groups}"
            )
    print("(FMR ratio: max/min over the four groups, 'inf' when a group had no false match; "
          "worst/white: the highest group FMR over white participants' (the largest group); "
          "vs none: how many times smaller the FMR ratio is than with no mitigation)")  # fmt: skip


def _speed(matrix: NDArray[np.float64], subjects: NDArray[np.int64]) -> None:
    now = datetime.now(UTC)
    rng = np.random.default_rng(7)
    gallery = 20_000
    base = matrix[rng.integers(0, len(matrix), gallery)]
    vectors = (base + rng.normal(0, 0.03, base.shape)).astype(np.float32)
    ids = [f"t{i}" for i in range(gallery)]
    probes = matrix[rng.integers(0, len(matrix), 200)].astype(np.float32)
    print("\n== cost ==")
    for method in ("fsn", "cohort"):
        normaliser = calibrate(method, matrix, subjects, model_id="m", model_sha256="s",
                               data_sha256="d", now=now)  # fmt: skip
        offsets_started = time.perf_counter()
        normaliser.offsets(vectors)
        per_template = (time.perf_counter() - offsets_started) / gallery * 1e6
        plain = make_index(IndexKind.EXACT, model_id="m", dimension=matrix.shape[1])
        plain.add(template_ids=ids, subject_ids=ids, vectors=vectors)
        normalised = NormalisedIndex(
            make_index(IndexKind.EXACT, model_id="m", dimension=matrix.shape[1]), normaliser
        )
        normalised.add(template_ids=ids, subject_ids=ids, vectors=vectors)
        timings = {}
        for name, index in (("plain", plain), ("normalised", normalised)):
            samples = []
            for probe in probes:
                begun = time.perf_counter()
                index.search(probe, k=5, threshold=0.5251)
                samples.append(time.perf_counter() - begun)
            timings[name] = statistics.median(samples) * 1e3
        print(
            f"{method:<7} offsets {per_template:.1f} us/template; search of {gallery:,} templates "
            f"p50 {timings['normalised']:.2f} ms normalised vs {timings['plain']:.2f} ms plain "
            f"({timings['normalised'] / timings['plain']:.2f}x)"
        )


if __name__ == "__main__":
    sys.exit(main())
