"""Side by side: the audit with no mitigation and with each label-free score normalisation, each
calibrated subject-disjointly (cross-validation over people) on the audit's own dataset.

For every method: the full audit (per-group FMR and FNMR with subject-level bootstrap intervals,
the summary measures) at the same threshold rule, plus the overall false-match rate and
true-match rate at that threshold and the true-match rate at the target false-match rate set on
the method's own scores. The demographic labels are read here only to measure; calibration
never sees them (``fairness.mitigation`` takes embeddings and person ids).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from faceaccord.biometrics.models.cards import ModelCard
from faceaccord.errors import InputError
from faceaccord.fairness.audit import AuditOptions, Progress, Rescore, run_audit
from faceaccord.fairness.datasets import Dataset
from faceaccord.fairness.mitigation import cross_validated_distances, describe_methods, fitter
from faceaccord.fairness.pairs import PairSet

__all__ = ["compare_mitigations"]

DEFAULT_FOLDS = 10
MIN_CALIBRATION_PEOPLE = 6


def compare_mitigations(
    dataset: Dataset,
    *,
    embeddings: Sequence[NDArray[np.float32] | None],
    card: ModelCard,
    options: AuditOptions,
    methods: Sequence[str],
    folds: int = DEFAULT_FOLDS,
    parameter: int | None = None,
    repeats: int = 1,
    progress: Progress | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``{"methods": [...], "reports": {method: report}, "table": {...}}``. With ``repeats`` >
    1, each normalisation is also measured on that many different random splits of the people
    into folds (the full report is the first split's), and the table gives the summary measures
    of every split: how much the figures owe to one split."""
    try:
        chosen = describe_methods(methods)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if len(chosen) < 2:
        raise InputError("a comparison needs at least two methods, e.g. none,fsn")
    if not 1 <= repeats <= 50:
        raise InputError(f"repeats must be between 1 and 50, not {repeats}")
    people = len({dataset.images[i].subject for i, e in enumerate(embeddings) if e is not None})
    calibrated_on = people * (folds - 2) // folds
    if calibrated_on < MIN_CALIBRATION_PEOPLE:
        raise InputError(
            f"{people} people with a face are too few for {folds}-fold cross-validation: each "
            f"calibration would see {calibrated_on}, and it needs {MIN_CALIBRATION_PEOPLE}"
        )
    reports: dict[str, dict[str, Any]] = {}
    splits: dict[str, list[dict[str, Any]]] = {}
    for method in chosen:
        if method == "none":
            reports[method] = run_audit(
                dataset, embeddings=embeddings, card=card, options=options,
                progress=progress, now=now,
            )  # fmt: skip
            splits[method] = [_summaries(reports[method])]  # no calibration: no split
            continue
        reports[method] = run_audit(
            dataset, embeddings=embeddings, card=card, options=options, progress=progress,
            now=now, rescore=_cross_validated(method, parameter, folds, options.seed),
            scoring={
                "score_normaliser": {"id": method, "method": method,
                                     "parameter": parameter if parameter else "chosen per fold"},
                "cross_validated": True,
                "folds": folds,
                "protocol": (
                    f"people split into {folds} folds; the pairs between folds a and b are "
                    "normalised by a calibration on every other fold, so no pair is scored by a "
                    "calibration that saw either of its people; parameters are chosen on the "
                    "training folds by the label-free criterion"
                ),
            },
        )  # fmt: skip
        splits[method] = [_summaries(reports[method])]
        for repeat in range(1, repeats):
            quick = replace(options, replicates=50)  # only the point summaries are kept
            again = run_audit(
                dataset, embeddings=embeddings, card=card, options=quick, progress=progress,
                now=now, rescore=_cross_validated(method, parameter, folds, options.seed + repeat),
            )  # fmt: skip
            splits[method].append(_summaries(again))
    table = _table(reports)
    table["splits"] = {method: _over_splits(runs) for method, runs in splits.items()}
    return {
        "methods": chosen,
        "folds": folds,
        "repeats": repeats,
        "reports": reports,
        "table": table,
    }


def _summaries(report: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    return {
        attribute: {
            "fmr_ratio": (data["summary"] or {}).get("fmr_ratio"),
            "garbe": (data["summary"] or {}).get("garbe"),
        }
        for attribute, data in report["attributes"].items()
    }


def _over_splits(runs: list[dict[str, dict[str, float | None]]]) -> dict[str, Any]:
    """Per attribute and measure: every split's value, and their median, min and max (a ratio
    that is undefined in a split counts as the largest)."""
    result: dict[str, Any] = {}
    for attribute in runs[0]:
        result[attribute] = {}
        for measure in ("fmr_ratio", "garbe"):
            values = [run[attribute][measure] for run in runs]
            ordered = sorted(math.inf if v is None else v for v in values)
            median = statistics.median(ordered)
            result[attribute][measure] = {
                "values": values,
                "median": None if math.isinf(median) else median,
                "min": None if math.isinf(ordered[0]) else ordered[0],
                "max": None if math.isinf(ordered[-1]) else ordered[-1],
            }
    return result


def _cross_validated(method: str, parameter: int | None, folds: int, seed: int) -> Rescore:
    fit = fitter(method, parameter=parameter, seed=seed)

    def rescore(
        pairs: PairSet, matrix: NDArray[np.float64], subjects: NDArray[np.int64]
    ) -> NDArray[np.float64]:
        return cross_validated_distances(pairs, matrix, subjects, fit=fit, folds=folds, seed=seed)

    return rescore


def _table(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per attribute: per method, the groups' rates and the summary; per method, overall."""
    first = next(iter(reports.values()))
    table: dict[str, Any] = {"overall": {}, "attributes": {}}
    for method, report in reports.items():
        overall = report["overall"]
        table["overall"][method] = {
            "threshold": report["threshold"]["value"],
            "fmr": overall["fmr"],
            "tmr": None if overall["fnmr"] is None else 1 - overall["fnmr"],
            "tmr_at_target_fmr": overall["tmr_at_target_fmr"],
            "eer": overall["eer"],
        }
    for attribute in first["attributes"]:
        per_method = {}
        for method, report in reports.items():
            data = report["attributes"][attribute]
            per_method[method] = {
                "groups": {
                    group: {
                        "fmr": cell["fmr"],
                        "fnmr": cell["fnmr"],
                        "subjects": cell["subjects"],
                    }
                    for group, cell in data["groups"].items()
                },
                "summary": data["summary"],
                "summary_groups": data["summary_groups"],
            }
        table["attributes"][attribute] = per_method
    return table
