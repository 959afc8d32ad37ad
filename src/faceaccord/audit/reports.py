"""The accountability report (in the manner of Washington's RCW 43.386.020): what the system
is, what it may not be used for, which rules are in force, how it has been used, and how it
has been tested, as one self-contained HTML page built from the model card, the packs and the
audit log."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy import select
from sqlalchemy.orm import Session

from faceaccord.biometrics.models.cards import ModelCard
from faceaccord.governance.engine import PolicyEngine
from faceaccord.store.models import AuditEntryRow, GalleryRow, OrganisationRow

__all__ = ["AccountabilityReport", "build_report", "render_html"]


@dataclass(frozen=True, slots=True)
class AccountabilityReport:
    generated_at: datetime
    organisation: dict[str, Any]
    model: ModelCard
    operating_point: str
    packs: list[dict[str, Any]]
    galleries: list[dict[str, Any]]
    usage: list[dict[str, Any]]
    """Counts by operation, purpose and decision, from the audit log."""
    audit_entries: int
    first_entry: datetime | None
    last_entry: datetime | None
    fairness_audit: str | None
    score_normaliser: dict[str, Any]
    """The score normaliser in force (its ``describe()``: method, model, data hash, k, date)."""
    comparisons: list[dict[str, Any]]
    """Verifications and identifications by the score normaliser their entries record."""


def build_report(
    session: Session,
    *,
    organisation_id: str,
    card: ModelCard,
    operating_point: str,
    policy: PolicyEngine,
    fairness_audit: str | None,
    now: datetime,
    score_normaliser: dict[str, Any] | None = None,
) -> AccountabilityReport:
    org = session.get(OrganisationRow, organisation_id)
    entries = session.execute(
        select(AuditEntryRow.operation, AuditEntryRow.purpose, AuditEntryRow.decision,
               AuditEntryRow.at, AuditEntryRow.details)
        .where(AuditEntryRow.organisation_id == organisation_id)
    ).all()  # fmt: skip
    usage = Counter((op, purpose or "", decision) for op, purpose, decision, _, _ in entries)
    normalised = Counter(
        (op, str((details or {}).get("score_normaliser", "none (not recorded)")))
        for op, _, _, _, details in entries
        if op in ("verify", "identify")
    )
    moments = [at for _, _, _, at, _ in entries]
    galleries = session.scalars(
        select(GalleryRow).where(GalleryRow.organisation_id == organisation_id)
    ).all()
    return AccountabilityReport(
        generated_at=now,
        organisation={
            "id": organisation_id,
            "name": org.name if org else organisation_id,
            "sector": org.sector if org else "",
            "jurisdiction": org.jurisdiction if org else "",
            "approved_purposes": org.approved_purposes if org else [],
            "retention_policy": org.retention_policy if org else None,
        },
        model=card,
        operating_point=operating_point,
        packs=[
            {
                "id": pack.id,
                "title": pack.title,
                "version": pack.version,
                "jurisdictions": ", ".join(pack.jurisdictions),
                "rules": [
                    {"id": r.id, "summary": r.summary, "source": r.source} for r in pack.rules
                ],
            }
            for pack in policy.in_force
        ],
        galleries=[
            {
                "name": g.name,
                "purpose": g.purpose,
                "created_at": g.created_at,
                "withdrawn_at": g.withdrawn_at,
            }
            for g in galleries
        ],
        usage=[
            {"operation": op, "purpose": purpose, "decision": decision, "count": count}
            for (op, purpose, decision), count in sorted(usage.items())
        ],
        audit_entries=len(entries),
        first_entry=min(moments, default=None),
        last_entry=max(moments, default=None),
        fairness_audit=fairness_audit,
        score_normaliser=score_normaliser or {"id": "none", "method": "none"},
        comparisons=[
            {"operation": op, "score_normaliser": normaliser, "count": count}
            for (op, normaliser), count in sorted(normalised.items())
        ],
    )


def render_html(report: AccountabilityReport) -> str:
    """A self-contained HTML page (no scripts, no external resources)."""
    environment = Environment(
        loader=PackageLoader("faceaccord.audit", "templates"),
        autoescape=select_autoescape(default=True),
        trim_blocks=True,
    )
    return environment.get_template("accountability.html.j2").render(r=report)
