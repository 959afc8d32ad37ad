"""The audit: from one template per image (or none: failure to acquire) to ``report.json``.

One global threshold for everyone (set on all impostor pairs at the target false-match rate, or
the deployed operating point), then per attribute and group: subjects, images, FTA, pair counts,
FMR on same-group impostor pairs and FNMR on genuine pairs, each with a subject-level bootstrap
95 % interval (and the rule-of-three bound when no error was seen), EER, FNMR at the target FMR
with the group's own threshold, a DET curve, score quantiles, flags for cells too small to
support a claim, the cross-group FMR matrix, summary measures, and bootstrap tests of the gaps.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import combinations
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceaccord.biometrics.models.cards import ModelCard, OperatingPoint
from faceaccord.fairness.bootstrap import BootstrapRates, bootstrap_rates, difference_p_value
from faceaccord.fairness.datasets import UNKNOWN, Dataset, dataset_sha256
from faceaccord.fairness.metrics import (
    DEFAULT_ALPHA,
    det_curve,
    equal_error_rate,
    false_match_rate,
    false_non_match_rate,
    fnmr_at_fmr,
    rule_of_three,
    summarize,
    threshold_for_fmr,
)
from faceaccord.fairness.pairs import PairSet, build_pairs
from faceaccord.matching.normalisation import ScoreNormaliser

Rescore = Callable[[PairSet, NDArray[np.float64], NDArray[np.int64]], NDArray[np.float64]]
"""New distances for the pairs, given them, the embeddings' rows and each row's subject."""

__all__ = ["SCHEMA", "AuditOptions", "run_audit", "strict_json"]

SCHEMA = "faceaccord.fairness-audit/1"
FEW_SUBJECTS = 20
FEW_ERRORS = 5


@dataclass(frozen=True, slots=True)
class AuditOptions:
    target_fmr: float = 1e-3
    deployed: OperatingPoint | None = None
    """Audit at this operating point's threshold instead of one set on the dataset."""
    replicates: int = 1000
    seed: int = 20261122
    genuine_cap: int = 100
    alpha: float = DEFAULT_ALPHA


Progress = Callable[[str], None]


def run_audit(
    dataset: Dataset,
    *,
    embeddings: Sequence[NDArray[np.float32] | None],
    card: ModelCard,
    options: AuditOptions,
    progress: Progress | None = None,
    now: datetime | None = None,
    normaliser: ScoreNormaliser | None = None,
    rescore: Rescore | None = None,
    scoring: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The report (JSON-able) for ``dataset``; ``embeddings[i]`` is image i's template, or
    ``None`` when no face could be acquired. Pairs are scored by ``normaliser`` (the one in
    force) or ``rescore`` (a cross-validated calibration); ``scoring`` describes the latter."""
    say = progress or (lambda _: None)
    if len(embeddings) != len(dataset.images):
        raise ValueError("one embedding (or None) per image of the dataset")
    subjects = dataset.subjects
    index = {s: i for i, s in enumerate(subjects)}
    acquired = [i for i, e in enumerate(embeddings) if e is not None]
    if len(acquired) < 2:
        raise ValueError("fewer than two images yielded a face: nothing to compare")
    matrix = np.stack([np.asarray(embeddings[i], dtype=np.float64) for i in acquired])
    subject_of = np.array([index[dataset.images[i].subject] for i in acquired], dtype=np.int64)
    say("pairing")
    pairs = build_pairs(matrix, subject_of, genuine_cap=options.genuine_cap, seed=options.seed)
    if normaliser is not None and normaliser.method == "none":
        normaliser = None
    if normaliser is not None and rescore is not None:
        raise ValueError("score the pairs with a normaliser or a rescoring, not both")
    if normaliser is not None:
        offsets = normaliser.offsets(matrix.astype(np.float32))
        pairs = pairs.with_distances(
            pairs.distance + (offsets[pairs.row_a] + offsets[pairs.row_b]) / 2
        )
        described = normaliser.describe()
        same_data = (described.get("data") or {}).get("sha256") == dataset_sha256(dataset)
        scoring = {
            "score_normaliser": described,
            "cross_validated": False,
            "calibrated_on_this_dataset": same_data,
        }
    elif rescore is not None:
        say("normalising scores")
        pairs = pairs.with_distances(rescore(pairs, matrix, subject_of))
    scoring = scoring or {"score_normaliser": {"id": "none", "method": "none"}}
    impostor = pairs.distance[pairs.impostor]
    genuine = pairs.distance[pairs.genuine]
    if options.deployed is not None:
        threshold = options.deployed.threshold
        method = (
            f"the deployed operating point {options.deployed.name!r} of {card.id} "
            f"(calibrated for FMR {options.deployed.target_fmr} on {options.deployed.dataset})"
        )
    else:
        threshold = threshold_for_fmr(impostor, options.target_fmr)
        method = (
            f"set once on all {impostor.size:,} impostor pairs of this dataset at a target FMR "
            f"of {options.target_fmr:g}"
        )
    report: dict[str, Any] = {
        "schema": SCHEMA,
        "generated_at": (now or datetime.now(UTC)).isoformat(),
        "dataset": {
            "name": dataset.name,
            "path": str(dataset.root),
            "images": len(dataset.images),
            "subjects": len(subjects),
            "acquired_images": len(acquired),
            "attributes": list(dataset.attributes),
            "label_method": dataset.label_method,
            "provenance": dataset.provenance,
        },
        "model": {"id": card.id, "name": card.name, "sha256": card.sha256, "metric": card.metric},
        "scoring": scoring,
        "threshold": {
            "value": threshold,
            "method": method,
            "target_fmr": options.target_fmr if options.deployed is None else None,
            "comparison": "distance <= threshold is a match",
        },
        "overall": {
            "genuine_pairs": int(genuine.size),
            "impostor_pairs": int(impostor.size),
            "fmr": false_match_rate(impostor, threshold),
            "fnmr": false_non_match_rate(genuine, threshold),
            "eer": equal_error_rate(genuine, impostor),
            "fta": 1 - len(acquired) / len(dataset.images),
            "tmr_at_target_fmr": 1 - fnmr_at_fmr(genuine, impostor, options.target_fmr),
        },
        "bootstrap": {
            "replicates": options.replicates,
            "unit": "subject",
            "seed": options.seed,
            "interval": "percentile, 95 %",
        },
        "alpha": options.alpha,
        "small_cell_rules": (
            f"a group is flagged with fewer than {FEW_SUBJECTS} subjects, and a rate resting "
            f"on fewer than {FEW_ERRORS} errors; zero errors are reported with the rule-of-"
            "three 95 % upper bound"
        ),
        "attributes": {},
        "limitations": _limitations(dataset, scoring),
    }
    for attribute in dataset.attributes:
        say(f"measuring {attribute}")
        group_of_subject = _groups_of_subjects(dataset, attribute, index)
        report["attributes"][attribute] = _attribute(
            dataset, attribute, group_of_subject, pairs, threshold, embeddings, options
        )
    cleaned: dict[str, Any] = strict_json(report)
    return cleaned


def strict_json(value: Any) -> Any:
    """Undefined numbers (a rate with no pairs) become null: JSON has no NaN, and PostgreSQL's
    json type and most parsers refuse it."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [strict_json(item) for item in value]
    return value


def _groups_of_subjects(dataset: Dataset, attribute: str, index: dict[str, int]) -> list[str]:
    groups = [UNKNOWN] * len(index)
    for image in dataset.images:
        groups[index[image.subject]] = image.attributes.get(attribute, UNKNOWN)
    return groups


def _attribute(
    dataset: Dataset,
    attribute: str,
    group_of_subject: list[str],
    pairs: PairSet,
    threshold: float,
    embeddings: Sequence[NDArray[np.float32] | None],
    options: AuditOptions,
) -> dict[str, Any]:
    groups = sorted(set(group_of_subject))
    subject_group = np.array(group_of_subject)
    group_a, group_b = subject_group[pairs.subject_a], subject_group[pairs.subject_b]
    errors_fm = pairs.distance <= threshold
    cells: dict[str, dict[str, Any]] = {}
    replicates: dict[str, BootstrapRates] = {}
    for number, group in enumerate(groups):
        members = np.flatnonzero(subject_group == group)
        genuine = pairs.genuine & (group_a == group)
        impostor = pairs.impostor & (group_a == group) & (group_b == group)
        images = [i for i, image in enumerate(dataset.images)
                  if image.attributes.get(attribute, UNKNOWN) == group]  # fmt: skip
        acquired = sum(embeddings[i] is not None for i in images)
        rates = bootstrap_rates(
            subjects=members,
            genuine_subject=pairs.subject_a[genuine],
            genuine_error=~errors_fm[genuine],
            impostor_a=pairs.subject_a[impostor],
            impostor_b=pairs.subject_b[impostor],
            impostor_error=errors_fm[impostor],
            replicates=options.replicates,
            seed=options.seed + number,
        )
        replicates[group] = rates
        cells[group] = _cell(
            group_genuine=pairs.distance[genuine],
            group_impostor=pairs.distance[impostor],
            threshold=threshold,
            subjects=int(members.size),
            images=len(images),
            acquired=acquired,
            rates=rates,
            target_fmr=options.target_fmr,
        )
    compared = [g for g in groups if g != UNKNOWN and cells[g]["impostor_pairs"] > 0
                and cells[g]["genuine_pairs"] > 0]  # fmt: skip
    summary = (
        summarize(
            [cells[g]["fmr"]["value"] for g in compared],
            [cells[g]["fnmr"]["value"] for g in compared],
            alpha=options.alpha,
        ).as_dict()
        if len(compared) >= 2
        else None
    )
    return {
        "groups": cells,
        "summary": summary,
        "summary_groups": compared,
        "cross_group_fmr": _cross_group(groups, group_a, group_b, pairs, errors_fm),
        "differences": _differences(compared, cells, replicates),
    }


def _cell(
    *,
    group_genuine: NDArray[np.float64],
    group_impostor: NDArray[np.float64],
    threshold: float,
    subjects: int,
    images: int,
    acquired: int,
    rates: BootstrapRates,
    target_fmr: float,
) -> dict[str, Any]:
    false_matches = int((group_impostor <= threshold).sum())
    false_non_matches = int((group_genuine > threshold).sum())
    flags = []
    if subjects < FEW_SUBJECTS:
        flags.append(f"few_subjects: {subjects} < {FEW_SUBJECTS}")
    for rate, errors, trials in (
        ("fmr", false_matches, group_impostor.size),
        ("fnmr", false_non_matches, group_genuine.size),
    ):
        if trials == 0:
            flags.append(f"{rate}_has_no_pairs")
        elif errors < FEW_ERRORS:
            flags.append(f"{rate}_rests_on_{errors}_errors")
    det = det_curve(group_genuine, group_impostor, points=60)
    return {
        "subjects": subjects,
        "images": images,
        "fta": 1 - acquired / images if images else math.nan,
        "genuine_pairs": int(group_genuine.size),
        "impostor_pairs": int(group_impostor.size),
        "fmr": _rate(false_matches, int(group_impostor.size), rates.fmr),
        "fnmr": _rate(false_non_matches, int(group_genuine.size), rates.fnmr),
        "eer": equal_error_rate(group_genuine, group_impostor),
        "fnmr_at_target_fmr": fnmr_at_fmr(group_genuine, group_impostor, target_fmr),
        "det": [{"threshold": p.threshold, "fmr": p.fmr, "fnmr": p.fnmr} for p in det],
        "scores": {
            "genuine": _quantiles(group_genuine),
            "impostor": _quantiles(group_impostor),
        },
        "flags": flags,
    }


def _rate(errors: int, trials: int, samples: NDArray[np.float64]) -> dict[str, Any]:
    value = errors / trials if trials else math.nan
    return {
        "value": value,
        "errors": errors,
        "trials": trials,
        "ci95": list(BootstrapRates.interval(samples)),
        "upper_bound_if_zero": rule_of_three(trials) if errors == 0 and trials else None,
    }


def _quantiles(scores: NDArray[np.float64]) -> dict[str, float] | None:
    if scores.size == 0:
        return None
    p5, p50, p95 = np.quantile(scores, [0.05, 0.5, 0.95])
    return {"p5": float(p5), "median": float(p50), "p95": float(p95)}


def _cross_group(
    groups: list[str],
    group_a: NDArray[np.str_],
    group_b: NDArray[np.str_],
    pairs: PairSet,
    errors_fm: NDArray[np.bool_],
) -> dict[str, Any]:
    matrix: list[list[float | None]] = []
    counts: list[list[int]] = []
    for row in groups:
        values: list[float | None] = []
        sizes: list[int] = []
        for column in groups:
            cell = pairs.impostor & (
                ((group_a == row) & (group_b == column)) | ((group_a == column) & (group_b == row))
            )
            total = int(cell.sum())
            values.append(float(errors_fm[cell].mean()) if total else None)
            sizes.append(total)
        matrix.append(values)
        counts.append(sizes)
    return {"groups": groups, "fmr": matrix, "impostor_pairs": counts}


def _differences(
    groups: list[str], cells: dict[str, dict[str, Any]], replicates: dict[str, BootstrapRates]
) -> list[dict[str, Any]]:
    tests = []
    for first, second in combinations(groups, 2):
        for rate in ("fmr", "fnmr"):
            tests.append(
                {
                    "rate": rate,
                    "groups": [first, second],
                    "difference": cells[first][rate]["value"] - cells[second][rate]["value"],
                    "p_value": difference_p_value(
                        getattr(replicates[first], rate), getattr(replicates[second], rate)
                    ),
                }
            )
    return tests


def _limitations(dataset: Dataset, scoring: dict[str, Any]) -> list[str]:
    extra = []
    if scoring.get("calibrated_on_this_dataset"):
        extra.append(
            "The score normaliser in force was calibrated on this very dataset, so these rates "
            "are optimistic; audit on other people, or compare with cross-validation "
            "(--compare none,fsn,cohort)."
        )
    return [
        *extra,
        f"Demographic labels are {dataset.label_method}; groups are as the labels name them.",
        "Small groups give wide intervals: read the confidence intervals and the flags, and "
        "do not rank groups whose intervals overlap.",
        "Impostor pairs are drawn within a group (demographically matched, the harder case); "
        "the cross-group matrix shows the rest.",
        "The dataset's capture conditions (pose, light, camera, session) shape the rates; they "
        "may differ from the deployment's.",
        "Images with no detectable face are failure-to-acquire for their group and take no "
        "part in the pairs.",
    ]
