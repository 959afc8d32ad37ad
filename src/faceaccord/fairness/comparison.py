"""Side by side: the audit with no mitigation and with each label-free score normalisation, each
calibrated subject-disjointly (cross-validation over people) on the audit's own dataset.

For every method: the full audit (per-group FMR and FNMR with subject-level bootstrap intervals,
the summary measures) at the same threshold rule, plus the overall false-match rate and
true-match rate at that threshold and the true-match rate at the target false-match rate set on
the method's own scores. The demographic labels are read here only to measure; calibration
never sees them (``fairness.mitigation`` takes embeddings and person ids).
"""

from __future__ import annotations

from collections.abc import Sequence
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
    progress: Progress | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """``{"methods": [...], "reports": {method: report}, "table": {...}}``."""
    try:
        chosen = describe_methods(methods)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if len(chosen) < 2:
        raise InputError("a comparison needs at least two methods, e.g. none,fsn")
    people = len({dataset.images[i].subject for i, e in enumerate(embeddings) if e is not None})
    calibrated_on = people * (folds - 2) // folds
    if calibrated_on < MIN_CALIBRATION_PEOPLE:
        raise InputError(
            f"{people} people with a face are too few for {folds}-fold cross-validation: each "
            f"calibration would see {calibrated_on}, and it needs {MIN_CALIBRATION_PEOPLE}"
        )
    reports: dict[str, dict[str, Any]] = {}
    for method in chosen:
        if method == "none":
            reports[method] = run_audit(
                dataset, embeddings=embeddings, card=card, options=options,
                progress=progress, now=now,
            )  # fmt: skip
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
    return {
        "methods": chosen,
        "folds": folds,
        "reports": reports,
        "table": _table(reports),
    }


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
