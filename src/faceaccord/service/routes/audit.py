"""The audit log and the accountability report."""

from __future__ import annotations

import io
import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from faceaccord.audit.log import entry_record
from faceaccord.audit.reports import render_html
from faceaccord.platform.keys import Role
from faceaccord.service.auth import Caller, requires
from faceaccord.store.models import AuditEntryRow

router = APIRouter(prefix="/v1", tags=["audit"])
AuditorDep = Annotated[Caller, Depends(requires(Role.AUDITOR, Role.ADMIN))]


@router.get("/audit/verify")
def verify(who: AuditorDep) -> dict[str, Any]:
    """Verify the deployment's whole hash chain and its signed checkpoints (one chain holds every
    organisation's entries). The answer speaks of this organisation's entries only: how many
    there are, and where the chain breaks only when the break is at one of them."""
    mine = AuditEntryRow.organisation_id == who.organisation.id
    with Session(who.platform.db) as session:
        result = who.platform.audit.verify(session)
        entries = session.scalar(select(func.count()).select_from(AuditEntryRow).where(mine))
        bad_is_mine = result.first_bad is not None and bool(
            session.scalar(
                select(AuditEntryRow.seq).where(AuditEntryRow.seq == result.first_bad, mine)
            )
        )
    reason = result.reason
    if not result.ok and not bad_is_mine:
        reason = "the chain does not verify at an entry of another organisation or of the platform"
    return {
        "ok": result.ok,
        "entries": int(entries or 0),
        "first_bad": result.first_bad if bad_is_mine else None,
        "reason": reason,
    }


@router.get("/audit/export")
def export(who: AuditorDep) -> Response:
    """This organisation's entries as JSON lines (each with its hash and the previous hash)."""
    out = io.StringIO()
    with Session(who.platform.db) as session:
        rows = session.scalars(
            select(AuditEntryRow)
            .where(AuditEntryRow.organisation_id == who.organisation.id)
            .order_by(AuditEntryRow.seq)
        )
        for row in rows:
            out.write(json.dumps(entry_record(row)) + "\n")
    return Response(out.getvalue(), media_type="application/x-ndjson")


@router.get("/reports/accountability", response_class=HTMLResponse)
def accountability(who: AuditorDep) -> HTMLResponse:
    return HTMLResponse(render_html(who.platform.accountability_report()))
