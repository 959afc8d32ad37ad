"""Fairness audits over HTTP: start one on a dataset the operator placed under
``FACEACCORD_FAIRNESS__DATASETS_DIR``, follow it, and fetch its report. Audits run in the
background (one at a time), are recorded for the gate, and appear in the audit log."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, Field

from faceaccord.errors import InputError
from faceaccord.fairness.audit import AuditOptions, run_audit
from faceaccord.fairness.datasets import load_dataset
from faceaccord.fairness.report import render_html
from faceaccord.platform.deployment import Platform
from faceaccord.platform.fairness import embed_dataset, record_audit, start_audit
from faceaccord.platform.keys import Role
from faceaccord.service.auth import Caller, requires
from faceaccord.store.models import FairnessAuditRow

_log = logging.getLogger("faceaccord.service")
router = APIRouter(prefix="/v1/fairness/audits", tags=["fairness"])
AuditorDep = Annotated[Caller, Depends(requires(Role.AUDITOR, Role.ADMIN))]


class NewAudit(BaseModel):
    dataset: str = Field(description="A folder or manifest CSV under the datasets directory")
    labels: str | None = Field(default=None, description="Labels CSV under the same directory")
    target_fmr: float = Field(default=1e-3, gt=0, lt=0.5)
    deployed_threshold: bool = False
    bootstrap: int = Field(default=1000, ge=50, le=20_000)


@router.post("", status_code=202)
def start(body: NewAudit, who: AuditorDep, request: Request) -> dict[str, Any]:
    platform = who.platform
    root = platform.settings.fairness.datasets_dir
    if root is None:
        raise InputError(
            "audits over HTTP are off: the operator sets FACEACCORD_FAIRNESS__DATASETS_DIR"
        )
    dataset = _inside(root, body.dataset)
    labels = _inside(root, body.labels) if body.labels else None
    loaded = load_dataset(dataset, labels=labels)
    if not loaded.attributes:
        raise InputError("the dataset has no demographic labels to audit")
    audit_id = start_audit(
        platform, dataset=loaded.name, actor=who.actor, organisation_id=who.organisation.id
    )
    executor: ThreadPoolExecutor = request.app.state.fairness_executor
    executor.submit(_run, platform, audit_id, loaded, body, who.actor)
    return {"audit_id": audit_id, "status": "running"}


@router.get("/{audit_id}")
def status(audit_id: str, who: AuditorDep) -> dict[str, Any]:
    row = _row(who, audit_id)
    return {
        "audit_id": row.id,
        "status": row.status,
        "dataset": row.dataset,
        "started_at": row.started_at.isoformat(),
        "finished_at": row.finished_at.isoformat() if row.finished_at else None,
        "model": row.model_id,
        "threshold": row.threshold,
        "figures": row.summary,
        "error": row.error,
    }


@router.get("/{audit_id}/report.json")
def report_json(audit_id: str, who: AuditorDep) -> dict[str, Any]:
    row = _row(who, audit_id)
    if row.report is None:
        raise InputError(f"audit {audit_id} has no report yet ({row.status})")
    return row.report


@router.get("/{audit_id}/report.html", response_class=HTMLResponse)
def report_html(audit_id: str, who: AuditorDep) -> HTMLResponse:
    return HTMLResponse(render_html(report_json(audit_id, who)))


def _run(platform: Platform, audit_id: str, dataset: Any, body: NewAudit, actor: str) -> None:
    organisation_id = platform.organisation.id
    try:
        embeddings = embed_dataset(
            dataset, engine=platform.engine, workers=platform.settings.worker_count()
        )
        engine = platform.engine
        report = run_audit(
            dataset,
            embeddings=embeddings,
            card=engine.card,
            options=AuditOptions(
                target_fmr=body.target_fmr,
                deployed=engine.operating_point if body.deployed_threshold else None,
                replicates=body.bootstrap,
            ),
            now=platform.clock(),
            normaliser=platform.normaliser,  # an audit measures the deployment as it scores
        )
        report["audit_id"] = audit_id
        record_audit(platform, audit_id=audit_id, report=report, actor=actor,
                     organisation_id=organisation_id)  # fmt: skip
    except Exception as error:  # the audit fails, the service does not
        failure = f"{type(error).__name__}: {error}"
        try:
            record_audit(platform, audit_id=audit_id, report=None, actor=actor,
                         organisation_id=organisation_id, error=failure)  # fmt: skip
        except Exception:  # the database is gone too: the next start marks it interrupted
            _log.exception("fairness audit %s failed and could not be recorded", audit_id)


def _inside(root: Path, relative: str) -> Path:
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise InputError(f"{relative!r} is outside the datasets directory")
    if not path.exists():
        raise InputError(f"no dataset {relative!r} in the datasets directory")
    return path


class AuditNotFoundError(InputError):
    code = "fairness_audit_not_found"


def _row(who: Caller, audit_id: str) -> FairnessAuditRow:
    with who.platform.transaction() as session:
        row = session.get(FairnessAuditRow, audit_id)
        if row is None or row.organisation_id != who.organisation.id:
            raise AuditNotFoundError(f"no fairness audit {audit_id}")
        return row
