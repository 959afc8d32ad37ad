"""Fairness audits in the deployment: embedding a dataset on all cores, recording an audit with
the figures the gate reads, and the gate itself: with ``FACEACCORD_FAIRNESS__GATE=true``
identification is refused unless the model and threshold in use have a recorded audit whose FMR
and FNMR ratios are within the configured bounds; the refusal names the audit and the figure."""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import or_, select

from faceaccord.audit.log import AuditEvent
from faceaccord.biometrics.folder_job import embed_files
from faceaccord.biometrics.pipeline import Engine
from faceaccord.fairness.audit import strict_json
from faceaccord.fairness.datasets import Dataset
from faceaccord.matching.normalisation import NormaliserError, ScoreNormaliser
from faceaccord.platform.deployment import Platform
from faceaccord.store.models import FairnessAuditRow

__all__ = [
    "GateStatus",
    "embed_dataset",
    "fail_interrupted_audits",
    "fairness_gate",
    "record_audit",
    "start_audit",
]


def embed_dataset(
    dataset: Dataset,
    *,
    engine: Engine,
    workers: int,
    advance: Callable[[], None] | None = None,
) -> list[NDArray[np.float32] | None]:
    """The largest face's embedding of each image (None when no face is found), in order."""
    embeddings: list[NDArray[np.float32] | None] = []
    for outcome in embed_files([i.path for i in dataset.images], engine=engine, workers=workers):
        embeddings.append(outcome.templates[0].embedding if outcome.templates else None)
        if advance is not None:
            advance()
    return embeddings


def gate_figures(report: dict[str, Any]) -> dict[str, Any]:
    return {
        attribute: {
            "fmr_ratio": (data.get("summary") or {}).get("fmr_ratio"),
            "fnmr_ratio": (data.get("summary") or {}).get("fnmr_ratio"),
            "groups": data.get("summary_groups", []),
        }
        for attribute, data in report["attributes"].items()
    }


def start_audit(
    platform: Platform, *, dataset: str, actor: str, organisation_id: str | None
) -> str:
    audit_id = str(uuid.uuid4())
    with platform.transaction() as session:
        session.add(
            FairnessAuditRow(
                id=audit_id, organisation_id=organisation_id, actor=actor, status="running",
                dataset=dataset, model_id=None, model_sha256=None, threshold=None,
                started_at=platform.clock(), finished_at=None, summary={}, report=None,
                error=None,
            )
        )  # fmt: skip
        platform.record(
            session,
            AuditEvent(
                actor=actor, organisation_id=organisation_id or "platform",
                operation="fairness_audit", decision="started",
                details={"audit": audit_id, "dataset": dataset},
            ),
        )  # fmt: skip
    return audit_id


def record_audit(
    platform: Platform,
    *,
    audit_id: str,
    report: dict[str, Any] | None,
    actor: str,
    organisation_id: str | None,
    error: str | None = None,
) -> None:
    """Finish an audit: its report and gate figures, or the error that stopped it."""
    with platform.transaction() as session:
        row = session.get(FairnessAuditRow, audit_id)
        if row is None:
            raise ValueError(f"no fairness audit {audit_id}")
        row.finished_at = platform.clock()
        row.status = "failed" if error else "done"
        row.error = error
        if report is not None:
            report = strict_json(report)
            row.report = report
            row.model_id = report["model"]["id"]
            row.model_sha256 = report["model"]["sha256"]
            row.threshold = float(report["threshold"]["value"])
            row.summary = gate_figures(report)
        platform.record(
            session,
            AuditEvent(
                actor=actor, organisation_id=organisation_id or "platform",
                operation="fairness_audit", decision=row.status,
                details={"audit": audit_id, "dataset": row.dataset, "figures": row.summary,
                         "error": error},
            ),
        )  # fmt: skip


def fail_interrupted_audits(platform: Platform) -> int:
    """At the service's start: audits it started that are still ``running`` were cut short by a
    restart (they run inside the service), so they are marked failed. Audits run from the
    command line (no organisation) finish on their own and are left alone."""
    with platform.transaction() as session:
        rows = session.scalars(
            select(FairnessAuditRow).where(
                FairnessAuditRow.status == "running",
                FairnessAuditRow.organisation_id.is_not(None),
            )
        ).all()
        for row in rows:
            row.status = "failed"
            row.finished_at = platform.clock()
            row.error = "interrupted: the service stopped while the audit ran"
            platform.record(
                session,
                AuditEvent(
                    actor="service", organisation_id=row.organisation_id or "platform",
                    operation="fairness_audit", decision="failed",
                    details={"audit": row.id, "dataset": row.dataset, "error": row.error},
                ),
            )  # fmt: skip
    return len(rows)


def audited_normaliser(report: dict[str, Any] | None) -> str:
    """The id of the score normaliser an audit report measured (``none`` before there were
    normalisers, or with none in force)."""
    scoring = (report or {}).get("scoring") or {}
    return str((scoring.get("score_normaliser") or {}).get("id", "none"))


@dataclass(frozen=True, slots=True)
class GateStatus:
    required: bool
    passed: bool
    audit_id: str | None
    message: str


def fairness_gate(platform: Platform, *, threshold: float | None = None) -> GateStatus:
    """Whether identification at ``threshold`` (default: the engine's operating point) may run
    under the fairness gate, and why (not)."""
    settings = platform.settings.fairness
    if not settings.gate:
        return GateStatus(required=False, passed=True, audit_id=None, message="gate off")
    card = platform.engine.card
    if threshold is None:
        threshold = platform.engine.operating_point.threshold
    in_force = _mitigation_in_force(platform, settings.require_mitigation)
    if isinstance(in_force, GateStatus):
        return in_force
    with platform.transaction() as session:
        # The operator's audits (run from the command line) and the organisation's own; never
        # another tenant's, whose existence this answer must not reveal.
        audit = session.scalar(
            select(FairnessAuditRow)
            .where(
                or_(
                    FairnessAuditRow.organisation_id.is_(None),
                    FairnessAuditRow.organisation_id == platform.organisation.id,
                ),
                FairnessAuditRow.status == "done",
                FairnessAuditRow.model_id == card.id,
                FairnessAuditRow.model_sha256 == card.sha256,
            )
            .order_by(FairnessAuditRow.finished_at.desc())
        )
        if audit is None or audit.threshold is None:
            return GateStatus(True, False, None,
                              f"no fairness audit of {card.id} is on record")  # fmt: skip
        if not math.isclose(audit.threshold, threshold, rel_tol=0, abs_tol=1e-9):
            return GateStatus(
                True, False, audit.id,
                f"the latest audit of {card.id} ({audit.id}) measured threshold "
                f"{audit.threshold:g}, not the {threshold:g} this search would use",
            )  # fmt: skip
        audited = audited_normaliser(audit.report)
        if audited != in_force.id:
            return GateStatus(
                True, False, audit.id,
                f"the latest audit of {card.id} ({audit.id}) measured scores normalised by "
                f"{audited!r}, not {in_force.id!r}, which is in force",
            )  # fmt: skip
        return _bounds(audit, settings.max_fmr_ratio, settings.max_fnmr_ratio, settings.attribute)


def _mitigation_in_force(platform: Platform, required: str | None) -> ScoreNormaliser | GateStatus:
    """The normaliser in force, or the refusal when it cannot be used or is not the one the gate
    requires."""
    try:
        in_force = platform.normaliser
    except NormaliserError as error:
        return GateStatus(True, False, None, f"the score normaliser cannot be used: {error}")
    if required is not None and (
        in_force.method == "none" if required == "any" else in_force.method != required
    ):
        wanted = (
            "a score normalisation (fsn or cohort)"
            if required == "any"
            else (f"the score normalisation {required!r}")
        )
        return GateStatus(
            True, False, None,
            f"the fairness gate requires {wanted} in force, and this deployment runs with "
            f"{in_force.id!r}: calibrate one with `faceaccord fairness calibrate` and set "
            "FACEACCORD_FAIRNESS__SCORE_NORMALISER",
        )  # fmt: skip
    return in_force


def _bounds(
    audit: FairnessAuditRow, max_fmr: float, max_fnmr: float, attribute: str | None
) -> GateStatus:
    figures = audit.summary
    if attribute is not None:
        figures = {attribute: figures.get(attribute, {})}
    if not figures:
        return GateStatus(True, False, audit.id,
                          f"audit {audit.id} measured no demographic attribute")  # fmt: skip
    for name, values in figures.items():
        for rate, bound in (("fmr_ratio", max_fmr), ("fnmr_ratio", max_fnmr)):
            value = values.get(rate)
            if value is None:
                return GateStatus(
                    True, False, audit.id,
                    f"audit {audit.id}: the {rate.replace('_', ' ')} for {name} is undefined "
                    "(a group had no errors or too few people), so it cannot be shown within "
                    f"{bound:g}",
                )  # fmt: skip
            if value > bound:
                return GateStatus(
                    True, False, audit.id,
                    f"audit {audit.id}: the {rate.replace('_', ' ')} for {name} is {value:.3g}, "
                    f"over the bound of {bound:g}",
                )  # fmt: skip
    return GateStatus(True, True, audit.id, f"audit {audit.id} is within bounds")
