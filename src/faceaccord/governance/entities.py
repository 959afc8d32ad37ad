"""Who asks, to do what, for what purpose, in what circumstances, under which deployment."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from enum import IntEnum, StrEnum

from faceaccord.governance.vocabulary import (
    AuthorisationType,
    CaptureDevice,
    ConsentKind,
    DataSource,
    DisclosureBasis,
    ExportRecipient,
    Jurisdiction,
    LegalGround,
    Operation,
    Purpose,
    Sector,
)

__all__ = [
    "Authorisation",
    "DeploymentSettings",
    "Organisation",
    "OrganisationStatus",
    "PolicyRequest",
    "RequestContext",
    "ScaleApproval",
    "ScaleTier",
]


class OrganisationStatus(StrEnum):
    PENDING_REVIEW = "pending_review"
    APPROVED = "approved"
    SUSPENDED = "suspended"


class ScaleTier(IntEnum):
    """How much an organisation may do. Each tier's limits are in ``TIER_LIMITS``; moving up
    needs a human reviewer's approval (Microsoft, June 2020: "strengthen review processes for
    any customer seeking to use this technology at scale")."""

    SMALL = 1
    MEDIUM = 2
    LARGE = 3
    NATIONAL = 4

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def parse(cls, text: str) -> ScaleTier:
        try:
            return cls[text.upper()]
        except KeyError:
            names = ", ".join(t.label for t in cls)
            raise ValueError(f"{text!r} is not a scale tier ({names})") from None

    @classmethod
    def needed_for(cls, *, gallery_size: int = 0, searches_per_day: int = 0) -> ScaleTier:
        """The smallest tier whose limits cover this much use."""
        for tier in cls:
            gallery_limit, search_limit = TIER_LIMITS[tier]
            if gallery_size <= gallery_limit and searches_per_day <= search_limit:
                return tier
        return cls.NATIONAL


TIER_LIMITS: dict[ScaleTier, tuple[int, int]] = {
    # tier: (templates in all galleries, searches per day)
    ScaleTier.SMALL: (1_000, 1_000),
    ScaleTier.MEDIUM: (100_000, 20_000),
    ScaleTier.LARGE: (10_000_000, 1_000_000),
    ScaleTier.NATIONAL: (2**62, 2**62),
}


@dataclass(frozen=True, slots=True)
class ScaleApproval:
    """A human reviewer's decision on an organisation's request for a higher scale tier."""

    tier: ScaleTier
    requested_by: str
    request_reason: str
    reviewer: str
    approved: bool
    reason: str
    decided_at: datetime


@dataclass(frozen=True, slots=True)
class Organisation:
    id: str
    name: str
    sector: Sector
    jurisdiction: Jurisdiction
    status: OrganisationStatus = OrganisationStatus.PENDING_REVIEW
    approved_purposes: frozenset[Purpose] = frozenset()
    scale_tier: ScaleTier = ScaleTier.SMALL
    acts_for_sector: Sector | None = None
    """When the organisation acts for another (a contractor for a police department)."""
    acts_for_jurisdiction: Jurisdiction | None = None
    scale_history: tuple[ScaleApproval, ...] = ()
    retention_policy: str | None = None
    """Where the organisation publishes its written biometric retention schedule (BIPA 15(a))."""
    accountability_report: str | None = None
    """Where an agency publishes its accountability report (RCW 43.386.020)."""


@dataclass(frozen=True, slots=True)
class Authorisation:
    type: AuthorisationType
    reference: str

    @classmethod
    def parse(cls, text: str) -> Authorisation:
        kind, _, reference = text.partition(":")
        try:
            auth_type = AuthorisationType(kind.strip())
        except ValueError:
            names = ", ".join(t.value for t in AuthorisationType)
            raise ValueError(f"{kind!r} is not an authorisation type ({names})") from None
        if not reference.strip():
            raise ValueError("an authorisation needs a reference: TYPE:REFERENCE")
        return cls(type=auth_type, reference=reference.strip())


@dataclass(frozen=True, slots=True)
class RequestContext:
    """The circumstances of one request. Defaults describe the least risky case."""

    realtime: bool = False
    public_space: bool = False
    authorisation: Authorisation | None = None
    emergency: bool = False
    subject_may_be_minor: bool = False
    reviewers: int | None = None
    """Human reviewers assigned to check the results (``None``: not stated)."""
    subject_jurisdiction: Jurisdiction | None = None
    location: Jurisdiction | None = None
    """Where the faces are captured or the search is used, when it matters (municipal rules)."""
    consent: ConsentKind = ConsentKind.NONE
    notice_given: bool = False
    data_source: DataSource = DataSource.CONSENTED_CAPTURE
    capture_device: CaptureDevice = CaptureDevice.FIXED
    requested_tier: ScaleTier | None = None
    """The scale the request needs, when it grows the organisation's use."""
    targeted: bool = True
    """Linked to a specific offence, proceeding, threat or missing person (EU AI Act 26(10))."""
    export_recipient: ExportRecipient = ExportRecipient.NONE
    disclosure_basis: DisclosureBasis | None = None
    legal_requirement: bool = False
    own_device: bool = False
    """A person verifying themselves to unlock their own device."""
    medical_or_safety: bool = False
    legal_ground: LegalGround | None = None
    consent_withdrawn: bool = False
    purpose_ended: bool = False
    fairness_gate_failed: bool = False
    """Set by the deployment when its fairness gate is on and the audit on record fails it."""


@dataclass(frozen=True, slots=True)
class DeploymentSettings:
    """What the operator of this faceaccord installation has put in force."""

    packs: tuple[str, ...] | None = None
    """Pack ids in force; ``None`` means every pack that ships."""
    national_law: str | None = None
    """The operator's attestation that a qualifying national law on face recognition is in
    force, as its reference (e.g. a statute citation). Lifts only rules that wait for one."""
    fairness_audit: str | None = None
    """Reference of the recorded fairness audit of the model and threshold in use."""
    log_retention_days: int | None = None
    """How long this deployment keeps its audit log (``None``: not stated)."""


@dataclass(frozen=True, slots=True)
class PolicyRequest:
    organisation: Organisation
    operation: Operation
    purpose: Purpose
    context: RequestContext = field(default_factory=RequestContext)
    on: date | None = None
    """The date the rules are evaluated for (default: today)."""
