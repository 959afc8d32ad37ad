"""The tables. Templates are stored only encrypted; the subjects' wrapped data keys live in a
separate database (``vault.py``) so that destroying a key makes every copy unreadable."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps are stored and returned as aware UTC datetimes on every backend (SQLite drops
    the zone; without this, times read back would not compare with, or hash like, the ones
    written). Naive datetimes are refused."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"refusing a naive datetime {value!r}: faceaccord stores UTC")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON,
        list[str]: JSON,
        list[dict[str, Any]]: JSON,
        bytes: LargeBinary,
    }


class DeploymentFactRow(Base):
    """Facts about the deployment itself, such as the id of the key vault it was created with."""

    __tablename__ = "deployment_facts"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(String(300))


class OrganisationRow(Base):
    __tablename__ = "organisations"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(300))
    sector: Mapped[str] = mapped_column(String(60))
    jurisdiction: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(30))
    approved_purposes: Mapped[list[str]]
    scale_tier: Mapped[int] = mapped_column(Integer)
    acts_for_sector: Mapped[str | None] = mapped_column(String(60))
    acts_for_jurisdiction: Mapped[str | None] = mapped_column(String(80))
    retention_policy: Mapped[str | None] = mapped_column(Text)
    accountability_report: Mapped[str | None] = mapped_column(Text)
    retention_days: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime]


class ScaleDecisionRow(Base):
    __tablename__ = "scale_decisions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    tier: Mapped[int] = mapped_column(Integer)
    requested_by: Mapped[str] = mapped_column(String(300))
    request_reason: Mapped[str] = mapped_column(Text)
    reviewer: Mapped[str] = mapped_column(String(300))
    approved: Mapped[bool]
    reason: Mapped[str] = mapped_column(Text)
    decided_at: Mapped[datetime]


class GalleryRow(Base):
    __tablename__ = "galleries"
    __table_args__ = (UniqueConstraint("organisation_id", "name"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"))
    name: Mapped[str] = mapped_column(String(200))
    purpose: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime]
    purpose_ends_at: Mapped[datetime | None]
    withdrawn_at: Mapped[datetime | None]
    generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    """Bumped in the same transaction as every change to the gallery's templates (enrolment,
    erasure, takedown): a process whose in-memory index was built at another generation rebuilds
    it, so an enrolment or erasure made by another process is seen by the next search."""

    subjects: Mapped[list[SubjectRow]] = relationship(
        back_populates="gallery", cascade="all, delete-orphan", passive_deletes=True
    )


class SubjectRow(Base):
    __tablename__ = "subjects"
    __table_args__ = (UniqueConstraint("gallery_id", "reference"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    gallery_id: Mapped[str] = mapped_column(ForeignKey("galleries.id", ondelete="CASCADE"))
    reference: Mapped[str] = mapped_column(String(300))
    """The organisation's own name or number for the person."""
    jurisdiction: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime]
    last_interaction_at: Mapped[datetime]
    retention_limits: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    """The retention limits the policy set at enrolment: [{"days": 1095, "after":
    "last_interaction", "rule": "BIPA-15a"}, ...]; the earliest deadline applies."""
    erasing_at: Mapped[datetime | None]
    """Set (and committed) before the subject's key is destroyed: an erasure interrupted after
    that is completed by retention. A subject whose key is missing *without* this mark is never
    erased automatically (it means the key vault is not the one this database was used with)."""

    gallery: Mapped[GalleryRow] = relationship(back_populates="subjects")
    templates: Mapped[list[TemplateRow]] = relationship(
        back_populates="subject", cascade="all, delete-orphan", passive_deletes=True
    )
    consents: Mapped[list[ConsentRow]] = relationship(
        back_populates="subject", cascade="all, delete-orphan", passive_deletes=True
    )


class TemplateRow(Base):
    __tablename__ = "templates"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str] = mapped_column(
        ForeignKey("subjects.id", ondelete="CASCADE"), index=True
    )
    model_id: Mapped[str] = mapped_column(String(100))
    model_sha256: Mapped[str] = mapped_column(String(64))
    nonce: Mapped[bytes]
    ciphertext: Mapped[bytes]
    quality: Mapped[dict[str, Any]]
    created_at: Mapped[datetime]

    subject: Mapped[SubjectRow] = relationship(back_populates="templates")


class ConsentRow(Base):
    __tablename__ = "consents"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    subject_id: Mapped[str] = mapped_column(
        ForeignKey("subjects.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(30))
    reference: Mapped[str] = mapped_column(String(300))
    notice_sha256: Mapped[str | None] = mapped_column(String(64))
    notice_version: Mapped[str | None] = mapped_column(String(60))
    purpose: Mapped[str] = mapped_column(String(60))
    duration_days: Mapped[int | None] = mapped_column(Integer)
    collected_at: Mapped[datetime]
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    subject: Mapped[SubjectRow] = relationship(back_populates="consents")


class ErasureReceiptRow(Base):
    __tablename__ = "erasure_receipts"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(String(100), index=True)
    scope: Mapped[str] = mapped_column(String(20))
    """``subject`` (an erasure request, a revocation, retention) or ``gallery`` (a takedown)."""
    reason: Mapped[str] = mapped_column(String(60))
    document: Mapped[dict[str, Any]]
    """The signed receipt: galleries, a hash of the subject's reference, counts, time."""
    erased_at: Mapped[datetime]
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[str] = mapped_column(Text)


class AuditEntryRow(Base):
    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(300))
    organisation_id: Mapped[str] = mapped_column(String(100), index=True)
    operation: Mapped[str] = mapped_column(String(40))
    purpose: Mapped[str | None] = mapped_column(String(60))
    decision: Mapped[str] = mapped_column(String(40))
    rule_ids: Mapped[list[str]]
    gallery_id: Mapped[str | None] = mapped_column(String(36))
    subject_id: Mapped[str | None] = mapped_column(String(36))
    threshold: Mapped[float | None] = mapped_column(Float)
    candidates: Mapped[int | None] = mapped_column(Integer)
    review_outcome: Mapped[str | None] = mapped_column(String(40))
    details: Mapped[dict[str, Any]]
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


Index("ix_audit_entries_at", AuditEntryRow.at)
# Counting an organisation's searches today (scale tiers) must not read its whole history.
Index(
    "ix_audit_entries_usage",
    AuditEntryRow.organisation_id,
    AuditEntryRow.operation,
    AuditEntryRow.at,
)


class AuditHeadRow(Base):
    """One row: the chain's last sequence number and hash, locked while appending."""

    __tablename__ = "audit_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    hash: Mapped[str] = mapped_column(String(64))
    anchor_seq: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    """Entries up to here were pruned under the retention rules; the chain starts after it."""
    anchor_hash: Mapped[str] = mapped_column(String(64))
    checkpoint_every: Mapped[int] = mapped_column(Integer)
    """Fixed when the log starts: a checkpoint is signed every this many entries."""


class AuditCheckpointRow(Base):
    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    )
    hash: Mapped[str] = mapped_column(String(64))
    signed_at: Mapped[datetime]
    key_id: Mapped[str] = mapped_column(String(16))
    public_key_pem: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(Text)


class ApiKeyRow(Base):
    """An API key: shown once, stored as a SHA-256 of its secret (the secret is 256 random bits,
    so a fast hash is enough), scoped to one organisation (or to the platform) and to roles."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    secret_sha256: Mapped[str] = mapped_column(String(64))
    organisation_id: Mapped[str | None] = mapped_column(ForeignKey("organisations.id"), index=True)
    """None for a platform key (the platform's own reviewers)."""
    name: Mapped[str] = mapped_column(String(300))
    """The person or system holding the key, as the audit log records them."""
    roles: Mapped[list[str]]
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(300))
    revoked_at: Mapped[datetime | None]


class ScaleRequestRow(Base):
    __tablename__ = "scale_requests"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(ForeignKey("organisations.id"), index=True)
    tier: Mapped[int] = mapped_column(Integer)
    requested_by: Mapped[str] = mapped_column(String(300))
    reason: Mapped[str] = mapped_column(Text)
    requested_at: Mapped[datetime]
    decided: Mapped[bool]


class IdentificationRow(Base):
    """A 1:N search and its candidates, kept so that reviewers can confirm or reject them."""

    __tablename__ = "identifications"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organisation_id: Mapped[str] = mapped_column(String(100), index=True)
    gallery_id: Mapped[str] = mapped_column(String(36))
    purpose: Mapped[str] = mapped_column(String(60))
    actor: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(30))
    required_reviewers: Mapped[int] = mapped_column(Integer)
    threshold: Mapped[float] = mapped_column(Float)
    operating_point: Mapped[str] = mapped_column(String(60))
    decision: Mapped[dict[str, Any]]

    candidates: Mapped[list[CandidateRow]] = relationship(
        back_populates="identification",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="CandidateRow.rank",
    )


class CandidateRow(Base):
    __tablename__ = "identification_candidates"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    identification_id: Mapped[str] = mapped_column(
        ForeignKey("identifications.id", ondelete="CASCADE"), index=True
    )
    rank: Mapped[int] = mapped_column(Integer)
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    """No foreign key: the subject may be erased later; the review record stays."""
    subject_reference: Mapped[str | None] = mapped_column(String(300))
    distance: Mapped[float] = mapped_column(Float)
    similarity: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(30))

    identification: Mapped[IdentificationRow] = relationship(back_populates="candidates")
    reviews: Mapped[list[ReviewRow]] = relationship(
        back_populates="candidate", cascade="all, delete-orphan", passive_deletes=True
    )


class ReviewRow(Base):
    __tablename__ = "reviews"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    candidate_id: Mapped[str] = mapped_column(
        ForeignKey("identification_candidates.id", ondelete="CASCADE"), index=True
    )
    subject_id: Mapped[str] = mapped_column(String(36), index=True)
    reviewer: Mapped[str] = mapped_column(String(300))
    outcome: Mapped[str] = mapped_column(String(30))
    """``confirm``, ``reject`` or ``not_this_person`` (kept and shown on later searches)."""
    note: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]

    candidate: Mapped[CandidateRow] = relationship(back_populates="reviews")


class FairnessAuditRow(Base):
    """A fairness audit: its report, and the figures the identification gate checks."""

    __tablename__ = "fairness_audits"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    organisation_id: Mapped[str | None] = mapped_column(String(100), index=True)
    """Who started it (None: the operator, from the command line)."""
    actor: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(20))
    """``running``, ``done`` or ``failed``."""
    dataset: Mapped[str] = mapped_column(String(300))
    model_id: Mapped[str | None] = mapped_column(String(100))
    model_sha256: Mapped[str | None] = mapped_column(String(64))
    threshold: Mapped[float | None] = mapped_column(Float)
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    summary: Mapped[dict[str, Any]]
    """Per attribute: the FMR and FNMR ratios over its groups (the gate's figures)."""
    report: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
