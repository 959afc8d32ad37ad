"""The policy packs, rule by rule: a specification in tables.

Every rule of every shipped pack has at least one request it denies and at least one request
that its exception (or its absence of reach) lets through; rules that allow with obligations
show the obligations they add. Each case is isolated by the packs in force, so that the rule
under test is the one deciding; the tests that follow the tables cover how packs combine, the
national-law attestation, jurisdictions, effective dates and the shape of a decision.

Requests are written in the catalogue's own vocabulary (``../shared/design/POLICY_CATALOGUE.md``):
``ask("police", "US-NY", "identify", "criminal_investigation", realtime=True)`` is a US police
department, approved for criminal investigations, asking to identify someone in real time.
Every case is decided on the same day, 22 November 2026, unless it is about effective dates.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from datetime import date
from typing import Any

import pytest

from faceaccord.governance.decisions import Decision
from faceaccord.governance.engine import PolicyEngine
from faceaccord.governance.entities import (
    Authorisation,
    DeploymentSettings,
    Organisation,
    OrganisationStatus,
    PolicyRequest,
    RequestContext,
    ScaleTier,
)
from faceaccord.governance.obligations import (
    AuthorisationWithin,
    ConsentOnFile,
    DeleteIfAuthorisationRefused,
    HumanReview,
    LogRetention,
    NoticeGiven,
    NotSoleBasis,
    Obligation,
    RetentionLimit,
    SimilarityFloor,
)
from faceaccord.governance.vocabulary import (
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

ON = date(2026, 11, 22)
"""The one day every case is decided on (after the EU AI Act's high-risk duties apply)."""

EVERY_PACK = DeploymentSettings()
NATIONAL_LAW = "Facial Recognition Act 2026, Pub. L. 119-42 (illustrative)"
FAIRNESS_AUDIT = "audit/2026-10-01/arcface-r100@fmr1e-4"
RETENTION_POLICY = "https://example.org/biometric-retention-schedule"
ACCOUNTABILITY_REPORT = "https://example.org/rcw-43-386-accountability-report"

RULES = {
    "core": ("CORE-BASE", "CORE-STATUS", "CORE-PURPOSE", "FAIRNESS-GATE"),
    "vendor-2020": (
        "MS-US-POLICE",
        "MS-LE-MOBILE",
        "MS-INFER",
        "AMZ-MORATORIUM",
        "AMZ-LE-OBLIGATIONS",
        "IBM-EXIT",
        "SCALE-REVIEW",
    ),
    "eu-ai-act": (
        "EU-5-1-e",
        "EU-5-1-f",
        "EU-5-1-g",
        "EU-5-1-h",
        "EU-26-10",
        "EU-14-5",
        "EU-26-6",
    ),
    "bipa": ("BIPA-15a", "BIPA-15b", "BIPA-15c", "BIPA-15d"),
    "texas-cubi": ("TX-b", "TX-c3"),
    "wa-sb6280": ("WA-SURVEIL", "WA-PROFILE", "WA-HUMAN", "WA-BIASTEST", "WA-REPORT"),
    "gdpr": ("GDPR-9", "GDPR-17"),
    "municipal": ("SF-19B", "BOSTON-16-62", "PDX-34.10"),
}


# --- Building requests ---------------------------------------------------------------------


def _same(value: Any) -> Any:
    return value


_ORGANISATION_FIELDS: dict[str, Callable[[Any], Any]] = {
    "status": OrganisationStatus,
    "scale_tier": ScaleTier.parse,
    "acts_for_sector": Sector,
    "acts_for_jurisdiction": Jurisdiction.parse,
    "approved_purposes": lambda purposes: frozenset(Purpose(p) for p in purposes),
}
_CONTEXT_FIELDS: dict[str, Callable[[Any], Any]] = {
    "authorisation": Authorisation.parse,
    "subject_jurisdiction": Jurisdiction.parse,
    "location": Jurisdiction.parse,
    "consent": ConsentKind,
    "data_source": DataSource,
    "capture_device": CaptureDevice,
    "requested_tier": ScaleTier.parse,
    "export_recipient": ExportRecipient,
    "disclosure_basis": DisclosureBasis,
    "legal_ground": LegalGround,
}


def organisation(sector: str, where: str, *purposes: str, **fields: Any) -> Organisation:
    """An approved organisation of ``sector`` in ``where``, approved for ``purposes``; ``fields``
    override (``status="pending_review"``, ``acts_for_sector="police"``, ...)."""
    values = {key: _ORGANISATION_FIELDS.get(key, _same)(value) for key, value in fields.items()}
    values.setdefault("status", OrganisationStatus.APPROVED)
    values.setdefault("approved_purposes", frozenset(Purpose(p) for p in purposes))
    return Organisation(
        id=f"{sector}@{where}",
        name=f"a {sector.replace('_', ' ')} organisation in {where}",
        sector=Sector(sector),
        jurisdiction=Jurisdiction.parse(where),
        **values,
    )


def ask(
    sector: str,
    where: str,
    operation: str,
    purpose: str,
    *,
    on: date = ON,
    org: dict[str, Any] | None = None,
    **context: Any,
) -> PolicyRequest:
    """``sector`` organisation in ``where``, approved for ``purpose``, asks to do ``operation``
    for it; ``context`` describes the circumstances (catalogue words, converted here)."""
    return PolicyRequest(
        organisation=organisation(sector, where, purpose, **(org or {})),
        operation=Operation(operation),
        purpose=Purpose(purpose),
        context=RequestContext(
            **{key: _CONTEXT_FIELDS.get(key, _same)(value) for key, value in context.items()}
        ),
        on=on,
    )


def only(*packs: str, **deployment: Any) -> DeploymentSettings:
    """A deployment with just these packs in force (core always is)."""
    return DeploymentSettings(packs=packs, **deployment)


def illinois(operation: str, purpose: str, **context: Any) -> PolicyRequest:
    """A company in Illinois that publishes its biometric retention schedule."""
    return ask(
        "commercial",
        "US-IL",
        operation,
        purpose,
        org={"retention_policy": RETENTION_POLICY},
        **context,
    )


def wa_agency(sector: str, operation: str, purpose: str, **context: Any) -> PolicyRequest:
    """A Washington state or local agency that has published its accountability report."""
    return ask(
        sector,
        "US-WA",
        operation,
        purpose,
        org={"accountability_report": ACCOUNTABILITY_REPORT},
        **context,
    )


@functools.cache
def policy_engine(settings: DeploymentSettings, *, validate: bool = True) -> PolicyEngine:
    """Every request of these tests is also checked against the Cedar schema."""
    return PolicyEngine.load(settings, validate_requests=validate)


def decide(query: PolicyRequest, settings: DeploymentSettings = EVERY_PACK) -> Decision:
    return policy_engine(settings).decide(query)


CORE = only()
VENDOR = only("vendor-2020")
EU = only("eu-ai-act")
BIPA = only("bipa")
TEXAS = only("texas-cubi")
WA = only("wa-sb6280", fairness_audit=FAIRNESS_AUDIT)
GDPR = only("gdpr")
MUNICIPAL = only("municipal")

PUBLIC_SAFETY = (
    SimilarityFloor(max_fmr=0.0001),
    HumanReview(reviewers=1),
    NotSoleBasis(),
)
"""AMZ-LE-OBLIGATIONS: the 99 % similarity floor, a person reviews, never the sole basis."""


def deny(
    rule: str, settings: DeploymentSettings, query: PolicyRequest, *, id: str, marks: Any = ()
) -> Any:
    return pytest.param(rule, settings, query, id=id, marks=marks)


def allow(
    rule: str,
    settings: DeploymentSettings,
    query: PolicyRequest,
    *,
    id: str,
    outcome: str = "allow",
    obligations: tuple[Obligation, ...] = (),
    reason: bool = False,
    marks: Any = (),
) -> Any:
    """``reason``: the rule itself allows (and is among the reasons, with its obligations);
    otherwise its exception, or its limited reach, lets the request through."""
    return pytest.param(rule, settings, query, outcome, obligations, reason, id=id, marks=marks)


# --- Denials: at least one per rule ----------------------------------------------------------

DENIALS = [
    # core
    deny(
        "FAIRNESS-GATE",
        CORE,
        ask("commercial", "US-NY", "identify", "media_archive_search", fairness_gate_failed=True),
        id="FAIRNESS-GATE: no identification while the deployment's fairness gate fails",
    ),
    deny(
        "CORE-STATUS",
        CORE,
        ask(
            "commercial",
            "US-NY",
            "verify",
            "identity_verification",
            org={"status": "pending_review"},
        ),
        id="CORE-STATUS: an organisation pending review may not verify",
    ),
    deny(
        "CORE-STATUS",
        CORE,
        ask("commercial", "US-NY", "identify", "media_archive_search", org={"status": "suspended"}),
        id="CORE-STATUS: a suspended organisation may not identify",
    ),
    deny(
        "CORE-PURPOSE",
        CORE,
        ask(
            "commercial",
            "US-NY",
            "identify",
            "media_archive_search",
            org={"approved_purposes": ["identity_verification"]},
        ),
        id="CORE-PURPOSE: no purpose the organisation was not approved for",
    ),
    # vendor-2020
    deny(
        "MS-US-POLICE",
        VENDOR,
        ask("police", "US-NY", "enroll", "missing_persons"),
        id="MS-US-POLICE: a US police department may not even enrol, for a missing person",
    ),
    deny(
        "MS-US-POLICE",
        VENDOR,
        ask(
            "commercial",
            "US-NY",
            "enroll",
            "missing_persons",
            org={"acts_for_sector": "police", "acts_for_jurisdiction": "US-CA"},
        ),
        id="MS-US-POLICE: nor a contractor acting for a US police department",
    ),
    deny(
        "MS-LE-MOBILE",
        VENDOR,
        ask(
            "police", "GB", "identify", "missing_persons", realtime=True, capture_device="body_worn"
        ),
        id="MS-LE-MOBILE: police, real time, body-worn camera",
    ),
    deny(
        "MS-LE-MOBILE",
        VENDOR,
        ask(
            "federal_law_enforcement",
            "US",
            "verify",
            "serious_crime_suspect",
            realtime=True,
            capture_device="dash",
        ),
        id="MS-LE-MOBILE: federal law enforcement, real time, dash camera",
    ),
    deny(
        "MS-LE-MOBILE",
        VENDOR,
        ask(
            "police",
            "GB",
            "identify",
            "trafficking_victims",
            realtime=True,
            capture_device="mobile",
        ),
        id="MS-LE-MOBILE: police, real time, mobile camera",
    ),
    deny(
        "MS-INFER",
        VENDOR,
        ask("commercial", "US-NY", "detect", "emotion_inference"),
        id="MS-INFER: no emotion inference",
    ),
    deny(
        "MS-INFER",
        VENDOR,
        ask("commercial", "US-NY", "detect", "demographic_categorisation"),
        id="MS-INFER: no gender or age inference",
    ),
    deny(
        "AMZ-MORATORIUM",
        VENDOR,
        ask("police", "GB", "identify", "criminal_investigation"),
        id="AMZ-MORATORIUM: police identify for a criminal investigation",
    ),
    deny(
        "AMZ-MORATORIUM",
        VENDOR,
        ask("police", "GB", "verify", "criminal_investigation"),
        id="AMZ-MORATORIUM: police verify for a criminal investigation",
    ),
    deny(
        "AMZ-MORATORIUM",
        VENDOR,
        ask(
            "commercial",
            "GB",
            "identify",
            "criminal_investigation",
            org={"acts_for_sector": "police", "acts_for_jurisdiction": "GB"},
        ),
        id="AMZ-MORATORIUM: a contractor acting for the police",
    ),
    deny(
        "AMZ-LE-OBLIGATIONS",
        VENDOR,
        ask("ngo_missing_persons", "US-NY", "identify", "missing_persons", reviewers=0),
        id="AMZ-LE-OBLIGATIONS: a public-safety search nobody will review",
    ),
    deny(
        "IBM-EXIT",
        VENDOR,
        ask("commercial", "US-NY", "identify", "mass_surveillance"),
        id="IBM-EXIT: no mass surveillance",
    ),
    deny(
        "IBM-EXIT",
        VENDOR,
        ask("commercial", "US-NY", "detect", "racial_profiling"),
        id="IBM-EXIT: no racial profiling",
    ),
    deny(
        "SCALE-REVIEW",
        VENDOR,
        ask("commercial", "US-NY", "enroll", "media_archive_search", requested_tier="large"),
        id="SCALE-REVIEW: a small-tier organisation growing to large without review",
    ),
    # eu-ai-act
    deny(
        "EU-5-1-e",
        EU,
        ask(
            "commercial", "FR", "enroll", "identity_verification", data_source="untargeted_scraping"
        ),
        id="EU-5-1-e: no enrolment of faces scraped from the internet or CCTV",
    ),
    deny(
        "EU-5-1-f",
        EU,
        ask("employer", "DE", "detect", "emotion_inference"),
        id="EU-5-1-f: no emotion inference at the workplace",
    ),
    deny(
        "EU-5-1-f",
        EU,
        ask("school", "FR", "detect", "emotion_inference"),
        id="EU-5-1-f: no emotion inference in education",
    ),
    deny(
        "EU-5-1-g",
        EU,
        ask("commercial", "IT", "detect", "racial_profiling"),
        id="EU-5-1-g: no categorisation by race",
    ),
    deny(
        "EU-5-1-g",
        EU,
        ask("commercial", "IT", "detect", "demographic_categorisation"),
        id="EU-5-1-g: no demographic categorisation",
    ),
    deny(
        "EU-5-1-h",
        EU,
        ask("police", "DE", "identify", "criminal_investigation", realtime=True, public_space=True),
        id="EU-5-1-h: police, real time, public space, ordinary investigation",
    ),
    deny(
        "EU-5-1-h",
        EU,
        ask(
            "federal_law_enforcement",
            "FR",
            "identify",
            "public_space_monitoring",
            realtime=True,
            public_space=True,
            authorisation="judicial:TJ-Paris-2026-118",
        ),
        id="EU-5-1-h: monitoring public spaces is no exception, even authorised",
    ),
    deny(
        "EU-5-1-h",
        EU,
        ask(
            "commercial",
            "DE",
            "identify",
            "criminal_investigation",
            org={"acts_for_sector": "police", "acts_for_jurisdiction": "DE"},
            realtime=True,
            public_space=True,
        ),
        id="EU-5-1-h: a contractor acting for the police",
    ),
    deny(
        "EU-5-1-h",
        EU,
        ask("police", "DE", "identify", "missing_persons", realtime=True, public_space=True),
        id="EU-5-1-h: an exception without authorisation and without urgency",
    ),
    deny(
        "EU-26-10",
        EU,
        ask("police", "DE", "identify", "criminal_investigation", targeted=False),
        id="EU-26-10: untargeted post identification by the police",
    ),
    deny(
        "EU-14-5",
        EU,
        ask("commercial", "DE", "identify", "media_archive_search", reviewers=1),
        id="EU-14-5: a 1:N search with fewer than two reviewers",
    ),
    deny(
        "EU-26-6",
        only("eu-ai-act", log_retention_days=90),
        ask("commercial", "DE", "identify", "media_archive_search"),
        id="EU-26-6: a deployment keeping its logs 90 days",
    ),
    # bipa
    deny(
        "BIPA-15a",
        BIPA,
        ask("commercial", "US-IL", "enroll", "access_control", consent="written"),
        id="BIPA-15a: enrolment without a published retention schedule",
    ),
    deny(
        "BIPA-15b",
        BIPA,
        illinois("enroll", "access_control"),
        id="BIPA-15b: enrolment without a written release",
    ),
    deny(
        "BIPA-15c",
        BIPA,
        illinois("export", "access_control", export_recipient="sale"),
        id="BIPA-15c: selling templates",
    ),
    deny(
        "BIPA-15c",
        BIPA,
        illinois(
            "export",
            "access_control",
            export_recipient="sale",
            consent="written",
            disclosure_basis="consent",
        ),
        id="BIPA-15c: selling templates, even with the subject's consent",
    ),
    deny(
        "BIPA-15d",
        BIPA,
        illinois("export", "access_control", export_recipient="third_party"),
        id="BIPA-15d: disclosure to a third party on no basis",
    ),
    # texas-cubi
    deny(
        "TX-b",
        TEXAS,
        ask("commercial", "US-NY", "verify", "identity_verification", subject_jurisdiction="US-TX"),
        id="TX-b: commercial capture of a Texan without notice or consent",
    ),
    deny(
        "TX-b",
        TEXAS,
        ask("commercial", "US-NY", "enroll", "access_control", location="US-TX", notice_given=True),
        id="TX-b: capture in Texas with notice but no consent",
    ),
    deny(
        "TX-c3",
        TEXAS,
        ask(
            "public_sector",
            "US-TX",
            "identify",
            "identity_verification",
            subject_jurisdiction="US-TX",
            purpose_ended=True,
        ),
        id="TX-c3: no further use once the purpose has expired",
    ),
    # wa-sb6280
    deny(
        "WA-SURVEIL",
        WA,
        wa_agency("police", "identify", "criminal_investigation", realtime=True),
        id="WA-SURVEIL: real-time identification without a warrant",
    ),
    deny(
        "WA-SURVEIL",
        WA,
        wa_agency("public_sector", "identify", "public_space_monitoring"),
        id="WA-SURVEIL: ongoing monitoring of public spaces without a warrant",
    ),
    deny(
        "WA-SURVEIL",
        WA,
        wa_agency(
            "police",
            "identify",
            "criminal_investigation",
            realtime=True,
            authorisation="court_order:KCSC-26-1-0042",
        ),
        id="WA-SURVEIL: a court order counts only to find a missing person",
    ),
    deny(
        "WA-SURVEIL",
        WA,
        wa_agency("police", "identify", "mass_surveillance"),
        id="WA-SURVEIL: ongoing (mass) surveillance without a warrant",
    ),
    deny(
        "WA-PROFILE",
        WA,
        wa_agency("police", "identify", "racial_profiling"),
        id="WA-PROFILE: an agency targeting by race",
    ),
    deny(
        "WA-PROFILE",
        WA,
        wa_agency("public_sector", "detect", "demographic_categorisation"),
        id="WA-PROFILE: an agency categorising by a protected trait",
    ),
    deny(
        "WA-HUMAN",
        WA,
        wa_agency("police", "identify", "missing_persons", reviewers=0),
        id="WA-HUMAN: an agency search nobody will review",
    ),
    deny(
        "WA-BIASTEST",
        only("wa-sb6280"),
        wa_agency("police", "identify", "missing_persons"),
        id="WA-BIASTEST: no fairness audit on record",
    ),
    deny(
        "WA-REPORT",
        WA,
        ask("public_sector", "US-WA", "verify", "identity_verification"),
        id="WA-REPORT: an agency without an accountability report",
    ),
    # gdpr
    deny(
        "GDPR-9",
        GDPR,
        ask("commercial", "DE", "verify", "identity_verification"),
        id="GDPR-9: verification without an Article 9(2) ground",
    ),
    deny(
        "GDPR-9",
        GDPR,
        ask("commercial", "FR", "enroll", "access_control", consent="written"),
        id="GDPR-9: written consent is not explicit consent",
    ),
    deny(
        "GDPR-9",
        GDPR,
        ask("commercial", "US-NY", "identify", "media_archive_search", subject_jurisdiction="FR"),
        id="GDPR-9: a non-EU organisation identifying a person in the EU",
    ),
    deny(
        "GDPR-17",
        GDPR,
        ask(
            "commercial",
            "DE",
            "verify",
            "identity_verification",
            consent="explicit",
            consent_withdrawn=True,
        ),
        id="GDPR-17: nothing but erasure once consent is withdrawn",
    ),
    deny(
        "GDPR-17",
        GDPR,
        ask("commercial", "DE", "export", "access_control", purpose_ended=True),
        id="GDPR-17: nothing but erasure once the purpose has ended",
    ),
    # municipal
    deny(
        "SF-19B",
        MUNICIPAL,
        ask("public_sector", "US-CA/san-francisco", "identify", "missing_persons"),
        id="SF-19B: a San Francisco city department",
    ),
    deny(
        "SF-19B",
        MUNICIPAL,
        ask("police", "US-CA/san-francisco", "verify", "criminal_investigation"),
        id="SF-19B: the San Francisco police department",
    ),
    deny(
        "BOSTON-16-62",
        MUNICIPAL,
        ask("police", "US-MA/boston", "identify", "criminal_investigation"),
        id="BOSTON-16-62: the Boston police department",
    ),
    deny(
        "BOSTON-16-62",
        MUNICIPAL,
        ask(
            "commercial",
            "US-NY",
            "identify",
            "missing_persons",
            org={"acts_for_sector": "public_sector", "acts_for_jurisdiction": "US-MA/boston"},
        ),
        id="BOSTON-16-62: a contractor acting for the City of Boston",
    ),
    deny(
        "PDX-34.10",
        MUNICIPAL,
        ask(
            "commercial",
            "US-NY",
            "identify",
            "access_control",
            location="US-OR/portland",
            public_space=True,
        ),
        id="PDX-34.10: a private entity in a Portland place of public accommodation",
    ),
    deny(
        "PDX-34.10",
        MUNICIPAL,
        ask(
            "commercial",
            "US-OR/portland",
            "verify",
            "identity_verification",
            location="US-OR/portland",
            public_space=True,
            own_device=False,
        ),
        id="PDX-34.10: a Portland shop verifying customers at its door",
    ),
]


# --- Allowed: the exception, the reach, or the obligations of each rule ----------------------

ALLOWANCES = [
    allow(
        "FAIRNESS-GATE",
        CORE,
        ask("commercial", "US-NY", "verify", "identity_verification", fairness_gate_failed=True),
        id="FAIRNESS-GATE: binds identification (1:N) only, not verification",
    ),
    # core
    allow(
        "CORE-BASE",
        CORE,
        ask("commercial", "US-NY", "verify", "identity_verification"),
        id="CORE-BASE: an approved organisation, for an approved purpose",
        reason=True,
    ),
    allow(
        "CORE-STATUS",
        CORE,
        ask(
            "commercial",
            "US-NY",
            "delete",
            "identity_verification",
            org={"status": "pending_review"},
        ),
        id="CORE-STATUS: an organisation pending review may still delete",
    ),
    allow(
        "CORE-STATUS",
        CORE,
        ask("commercial", "US-NY", "delete", "access_control", org={"status": "suspended"}),
        id="CORE-STATUS: a suspended organisation may still delete",
    ),
    allow(
        "CORE-PURPOSE",
        CORE,
        ask(
            "commercial",
            "US-NY",
            "delete",
            "media_archive_search",
            org={"approved_purposes": ["identity_verification"]},
        ),
        id="CORE-PURPOSE: deletion is allowed whatever the purpose",
    ),
    # vendor-2020
    allow(
        "MS-US-POLICE",
        only("vendor-2020", national_law=NATIONAL_LAW),
        ask("police", "US-NY", "identify", "missing_persons"),
        id="MS-US-POLICE: lifted once a national law is attested",
        outcome="allow_with_obligations",
        obligations=PUBLIC_SAFETY,
    ),
    allow(
        "MS-US-POLICE",
        VENDOR,
        ask("police", "GB", "enroll", "missing_persons"),
        id="MS-US-POLICE: police outside the US",
    ),
    allow(
        "MS-US-POLICE",
        VENDOR,
        ask("federal_law_enforcement", "US", "enroll", "missing_persons"),
        id="MS-US-POLICE: US federal law enforcement is not a police department",
    ),
    allow(
        "MS-LE-MOBILE",
        VENDOR,
        ask("police", "GB", "identify", "missing_persons", realtime=True, capture_device="fixed"),
        id="MS-LE-MOBILE: real time from a fixed camera",
        outcome="allow_with_obligations",
        obligations=PUBLIC_SAFETY,
    ),
    allow(
        "MS-LE-MOBILE",
        VENDOR,
        ask("police", "GB", "identify", "missing_persons", capture_device="body_worn"),
        id="MS-LE-MOBILE: body-worn footage searched afterwards",
        outcome="allow_with_obligations",
        obligations=PUBLIC_SAFETY,
    ),
    allow(
        "MS-LE-MOBILE",
        VENDOR,
        ask(
            "commercial",
            "US-NY",
            "verify",
            "identity_verification",
            realtime=True,
            capture_device="mobile",
        ),
        id="MS-LE-MOBILE: real-time mobile verification outside law enforcement",
    ),
    allow(
        "MS-INFER",
        VENDOR,
        ask("commercial", "US-NY", "detect", "access_control"),
        id="MS-INFER: detecting faces infers nothing about them",
    ),
    allow(
        "AMZ-MORATORIUM",
        VENDOR,
        ask("police", "GB", "identify", "missing_persons"),
        id="AMZ-MORATORIUM: except to find missing persons",
        outcome="allow_with_obligations",
        obligations=PUBLIC_SAFETY,
    ),
    allow(
        "AMZ-MORATORIUM",
        VENDOR,
        ask("police", "GB", "verify", "trafficking_victims"),
        id="AMZ-MORATORIUM: except to find victims of trafficking",
        outcome="allow_with_obligations",
        obligations=PUBLIC_SAFETY,
    ),
    allow(
        "AMZ-MORATORIUM",
        VENDOR,
        ask("police", "GB", "enroll", "criminal_investigation"),
        id="AMZ-MORATORIUM: covers identification and verification only",
    ),
    allow(
        "AMZ-LE-OBLIGATIONS",
        VENDOR,
        ask("ngo_missing_persons", "US-NY", "identify", "missing_persons", reviewers=1),
        id="AMZ-LE-OBLIGATIONS: a missing-persons charity's search",
        outcome="allow_with_obligations",
        obligations=PUBLIC_SAFETY,
        reason=True,
    ),
    allow(
        "AMZ-LE-OBLIGATIONS",
        VENDOR,
        ask("federal_law_enforcement", "US", "identify", "criminal_investigation"),
        id="AMZ-LE-OBLIGATIONS: federal law enforcement investigating",
        outcome="allow_with_obligations",
        obligations=PUBLIC_SAFETY,
        reason=True,
    ),
    allow(
        "AMZ-LE-OBLIGATIONS",
        VENDOR,
        ask("commercial", "US-NY", "verify", "imminent_threat"),
        id="AMZ-LE-OBLIGATIONS: anyone verifying for public safety",
        outcome="allow_with_obligations",
        obligations=PUBLIC_SAFETY,
        reason=True,
    ),
    allow(
        "IBM-EXIT",
        VENDOR,
        ask("commercial", "US-NY", "identify", "media_archive_search"),
        id="IBM-EXIT: searching a media archive is not surveillance",
    ),
    allow(
        "SCALE-REVIEW",
        VENDOR,
        ask(
            "commercial",
            "US-NY",
            "enroll",
            "media_archive_search",
            org={"scale_tier": "large"},
            requested_tier="large",
        ),
        id="SCALE-REVIEW: within the tier a reviewer approved",
    ),
    allow(
        "SCALE-REVIEW",
        VENDOR,
        ask("commercial", "US-NY", "delete", "media_archive_search", requested_tier="national"),
        id="SCALE-REVIEW: deletion is never held back by scale",
    ),
    # eu-ai-act
    allow(
        "EU-5-1-e",
        EU,
        ask("commercial", "FR", "enroll", "identity_verification", data_source="consented_capture"),
        id="EU-5-1-e: enrolling consented captures",
    ),
    allow(
        "EU-5-1-e",
        EU,
        ask("commercial", "FR", "enroll", "media_archive_search", data_source="customer_upload"),
        id="EU-5-1-e: enrolling the customer's own uploads",
    ),
    allow(
        "EU-5-1-f",
        EU,
        ask("employer", "DE", "detect", "emotion_inference", medical_or_safety=True),
        id="EU-5-1-f: at the workplace for medical or safety reasons",
    ),
    allow(
        "EU-5-1-f",
        EU,
        ask("healthcare", "DE", "detect", "emotion_inference"),
        id="EU-5-1-f: outside the workplace and education",
    ),
    allow(
        "EU-5-1-g",
        EU,
        ask("commercial", "IT", "detect", "access_control"),
        id="EU-5-1-g: detection categorises nobody",
    ),
    allow(
        "EU-5-1-g",
        EU,
        ask("commercial", "US-NY", "detect", "demographic_categorisation"),
        id="EU-5-1-g: not the EU's rule outside the EU",
    ),
    allow(
        "EU-5-1-h",
        EU,
        ask(
            "police",
            "DE",
            "identify",
            "missing_persons",
            realtime=True,
            public_space=True,
            authorisation="judicial:AG-Berlin-2026-7",
        ),
        id="EU-5-1-h: a targeted search for a missing person, judicially authorised",
        outcome="allow_with_obligations",
        obligations=(NotSoleBasis(), HumanReview(reviewers=2)),
        reason=True,
    ),
    allow(
        "EU-5-1-h",
        EU,
        ask(
            "police",
            "DE",
            "identify",
            "imminent_threat",
            realtime=True,
            public_space=True,
            emergency=True,
        ),
        id="EU-5-1-h: an imminent threat, authorisation to follow within 24 h",
        outcome="allow_with_obligations",
        obligations=(AuthorisationWithin(hours=24), DeleteIfAuthorisationRefused(), NotSoleBasis()),
        reason=True,
    ),
    allow(
        "EU-5-1-h",
        EU,
        ask(
            "police",
            "DE",
            "identify",
            "criminal_investigation",
            realtime=True,
            public_space=False,
            authorisation="warrant:AG-Berlin-2026-8",
        ),
        id="EU-5-1-h: real time in a space not publicly accessible",
        outcome="allow_with_obligations",
        obligations=(HumanReview(reviewers=2),),
    ),
    allow(
        "EU-26-10",
        EU,
        ask("police", "DE", "identify", "criminal_investigation"),
        id="EU-26-10: targeted post identification, authorisation to follow within 48 h",
        outcome="allow_with_obligations",
        obligations=(AuthorisationWithin(hours=48), DeleteIfAuthorisationRefused()),
        reason=True,
    ),
    allow(
        "EU-26-10",
        EU,
        ask(
            "police",
            "DE",
            "identify",
            "criminal_investigation",
            authorisation="court_order:LG-Koeln-2026-3",
        ),
        id="EU-26-10: authorised beforehand, nothing left to obtain",
        outcome="allow_with_obligations",
        obligations=(HumanReview(reviewers=2), LogRetention(days=183)),
    ),
    allow(
        "EU-14-5",
        EU,
        ask("commercial", "DE", "identify", "media_archive_search"),
        id="EU-14-5: a 1:N search, every match confirmed by two people",
        outcome="allow_with_obligations",
        obligations=(HumanReview(reviewers=2),),
        reason=True,
    ),
    allow(
        "EU-14-5",
        EU,
        ask("commercial", "DE", "identify", "media_archive_search", reviewers=2),
        id="EU-14-5: a 1:N search with two reviewers assigned",
        outcome="allow_with_obligations",
        obligations=(HumanReview(reviewers=2),),
        reason=True,
    ),
    allow(
        "EU-14-5",
        EU,
        ask("commercial", "DE", "verify", "identity_verification", reviewers=0),
        id="EU-14-5: 1:1 verification is not remote identification",
    ),
    allow(
        "EU-26-6",
        EU,
        ask("commercial", "DE", "identify", "media_archive_search"),
        id="EU-26-6: logs kept at least six months",
        outcome="allow_with_obligations",
        obligations=(LogRetention(days=183),),
        reason=True,
    ),
    allow(
        "EU-26-6",
        only("eu-ai-act", log_retention_days=365),
        ask("commercial", "DE", "identify", "media_archive_search"),
        id="EU-26-6: a deployment keeping its logs a year",
        outcome="allow_with_obligations",
        obligations=(LogRetention(days=183),),
        reason=True,
    ),
    # bipa
    allow(
        "BIPA-15a",
        BIPA,
        illinois("enroll", "access_control", consent="written"),
        id="BIPA-15a: templates destroyed 3 years after the last interaction",
        outcome="allow_with_obligations",
        obligations=(RetentionLimit(days=1095, after="last_interaction"),),
        reason=True,
    ),
    allow(
        "BIPA-15b",
        BIPA,
        illinois("enroll", "access_control", consent="written"),
        id="BIPA-15b: with a written release",
        outcome="allow_with_obligations",
        obligations=(ConsentOnFile(kind=ConsentKind.WRITTEN),),
        reason=True,
    ),
    allow(
        "BIPA-15b",
        BIPA,
        illinois("enroll", "access_control", consent="electronic"),
        id="BIPA-15b: an electronic signature counts as written",
        outcome="allow_with_obligations",
        obligations=(ConsentOnFile(kind=ConsentKind.WRITTEN),),
        reason=True,
    ),
    allow(
        "BIPA-15c",
        BIPA,
        illinois("export", "access_control", export_recipient="none"),
        id="BIPA-15c: an export under the organisation's own control",
    ),
    *(
        allow(
            "BIPA-15d",
            BIPA,
            illinois(
                "export", "access_control", export_recipient="third_party", disclosure_basis=basis
            ),
            id=f"BIPA-15d: disclosure to a third party on the basis of {basis.replace('_', ' ')}",
        )
        for basis in DisclosureBasis
    ),
    # texas-cubi
    allow(
        "TX-b",
        TEXAS,
        ask(
            "commercial",
            "US-NY",
            "verify",
            "identity_verification",
            subject_jurisdiction="US-TX",
            notice_given=True,
            consent="written",
        ),
        id="TX-b: with notice before capture and consent",
        outcome="allow_with_obligations",
        obligations=(NoticeGiven(), ConsentOnFile()),
        reason=True,
    ),
    allow(
        "TX-b",
        TEXAS,
        ask(
            "public_sector",
            "US-TX",
            "verify",
            "identity_verification",
            subject_jurisdiction="US-TX",
        ),
        id="TX-b: a government body's capture is not commercial",
    ),
    allow(
        "TX-c3",
        TEXAS,
        ask(
            "public_sector",
            "US-TX",
            "enroll",
            "identity_verification",
            subject_jurisdiction="US-TX",
        ),
        id="TX-c3: enrolled templates destroyed within a year of the purpose expiring",
        outcome="allow_with_obligations",
        obligations=(RetentionLimit(days=365, after="purpose_end"),),
        reason=True,
    ),
    allow(
        "TX-c3",
        TEXAS,
        ask(
            "public_sector",
            "US-TX",
            "delete",
            "identity_verification",
            subject_jurisdiction="US-TX",
            purpose_ended=True,
        ),
        id="TX-c3: deletion once the purpose has expired",
    ),
    # wa-sb6280
    *(
        allow(
            "WA-SURVEIL",
            WA,
            wa_agency("police", "identify", purpose, realtime=True, **circumstance),
            id=f"WA-SURVEIL: real-time identification {label}",
            outcome="allow_with_obligations",
            obligations=(HumanReview(reviewers=1), NotSoleBasis()),
        )
        for label, purpose, circumstance in [
            (
                "with a warrant",
                "criminal_investigation",
                {"authorisation": "warrant:KCSC-26-SW-311"},
            ),
            (
                "in exigent circumstances",
                "imminent_threat",
                {"authorisation": "exigent:KCSO-26-0917"},
            ),
            ("in an emergency", "imminent_threat", {"emergency": True}),
            (
                "under a court order to find a missing person",
                "missing_persons",
                {"authorisation": "court_order:KCSC-26-1-0043"},
            ),
        ]
    ),
    allow(
        "WA-SURVEIL",
        WA,
        wa_agency("police", "identify", "criminal_investigation"),
        id="WA-SURVEIL: a post-hoc search is not surveillance",
        outcome="allow_with_obligations",
        obligations=(HumanReview(reviewers=1), NotSoleBasis()),
    ),
    allow(
        "WA-PROFILE",
        WA,
        ask("commercial", "US-WA", "detect", "demographic_categorisation"),
        id="WA-PROFILE: binds agencies, not private companies",
    ),
    allow(
        "WA-PROFILE",
        WA,
        wa_agency("public_sector", "verify", "identity_verification"),
        id="WA-PROFILE: an agency verifying identities targets nobody",
        outcome="allow_with_obligations",
        obligations=(HumanReview(reviewers=1), NotSoleBasis()),
    ),
    allow(
        "WA-HUMAN",
        WA,
        wa_agency("police", "identify", "missing_persons", reviewers=1),
        id="WA-HUMAN: meaningful human review, never sole basis for probable cause",
        outcome="allow_with_obligations",
        obligations=(HumanReview(reviewers=1), NotSoleBasis()),
        reason=True,
    ),
    allow(
        "WA-BIASTEST",
        WA,
        wa_agency("public_sector", "enroll", "identity_verification"),
        id="WA-BIASTEST: with a fairness audit on record",
    ),
    allow(
        "WA-BIASTEST",
        only("wa-sb6280"),
        ask("commercial", "US-WA", "enroll", "access_control"),
        id="WA-BIASTEST: binds agencies, not private companies",
    ),
    allow(
        "WA-REPORT",
        WA,
        wa_agency("public_sector", "enroll", "identity_verification"),
        id="WA-REPORT: with an accountability report published",
    ),
    # gdpr
    allow(
        "GDPR-9",
        GDPR,
        ask("commercial", "DE", "verify", "identity_verification", consent="explicit"),
        id="GDPR-9: with the subject's explicit consent",
        outcome="allow_with_obligations",
        obligations=(ConsentOnFile(kind=ConsentKind.EXPLICIT),),
        reason=True,
    ),
    allow(
        "GDPR-9",
        GDPR,
        ask("employer", "FR", "verify", "access_control", legal_ground="employment_law"),
        id="GDPR-9: on another Article 9(2) ground",
    ),
    allow(
        "GDPR-9",
        GDPR,
        ask("police", "DE", "identify", "criminal_investigation"),
        id="GDPR-9: law enforcement falls under the Law Enforcement Directive",
    ),
    allow(
        "GDPR-9",
        GDPR,
        ask("commercial", "DE", "detect", "access_control"),
        id="GDPR-9: detection identifies nobody",
    ),
    allow(
        "GDPR-17",
        GDPR,
        ask("commercial", "DE", "delete", "identity_verification", consent_withdrawn=True),
        id="GDPR-17: erasure after consent is withdrawn",
    ),
    allow(
        "GDPR-17",
        GDPR,
        ask("commercial", "DE", "delete", "access_control", purpose_ended=True),
        id="GDPR-17: erasure once the purpose has ended",
    ),
    # municipal
    allow(
        "SF-19B",
        MUNICIPAL,
        ask("commercial", "US-CA/san-francisco", "verify", "identity_verification"),
        id="SF-19B: binds city departments, not San Francisco companies",
    ),
    allow(
        "SF-19B",
        MUNICIPAL,
        ask("public_sector", "US-CA/san-francisco", "detect", "access_control"),
        id="SF-19B: detecting faces recognises nobody",
    ),
    allow(
        "BOSTON-16-62",
        MUNICIPAL,
        ask("commercial", "US-MA/boston", "verify", "identity_verification"),
        id="BOSTON-16-62: binds the city, not Boston companies",
    ),
    allow(
        "BOSTON-16-62",
        MUNICIPAL,
        ask(
            "commercial",
            "US-NY",
            "verify",
            "identity_verification",
            org={"acts_for_sector": "commercial", "acts_for_jurisdiction": "US-MA/boston"},
        ),
        id="BOSTON-16-62: a contractor for a private Boston business",
    ),
    allow(
        "PDX-34.10",
        MUNICIPAL,
        ask(
            "commercial",
            "US-NY",
            "verify",
            "identity_verification",
            location="US-OR/portland",
            public_space=True,
            own_device=True,
        ),
        id="PDX-34.10: a person unlocking their own device",
    ),
    allow(
        "PDX-34.10",
        MUNICIPAL,
        ask(
            "financial_institution",
            "US-NY",
            "verify",
            "identity_verification",
            location="US-OR/portland",
            public_space=True,
            legal_requirement=True,
        ),
        id="PDX-34.10: to comply with the law",
    ),
    allow(
        "PDX-34.10",
        MUNICIPAL,
        ask(
            "commercial",
            "US-NY",
            "identify",
            "access_control",
            location="US-OR/portland",
            public_space=False,
        ),
        id="PDX-34.10: not a place of public accommodation",
    ),
    allow(
        "PDX-34.10",
        MUNICIPAL,
        ask(
            "public_sector",
            "US-OR/portland",
            "verify",
            "identity_verification",
            location="US-OR/portland",
            public_space=True,
        ),
        id="PDX-34.10: binds private entities only",
    ),
]


@pytest.mark.parametrize(("rule", "settings", "query"), DENIALS)
def test_rule_denies(rule: str, settings: DeploymentSettings, query: PolicyRequest) -> None:
    decision = decide(query, settings)
    assert decision.outcome == "deny", decision.as_dict()
    assert rule in decision.rule_ids()
    assert decision.obligations == ()
    assert policy_engine(settings, validate=False).decide(query) == decision


@pytest.mark.parametrize(
    ("rule", "settings", "query", "outcome", "obligations", "reason"), ALLOWANCES
)
def test_rule_allows(
    rule: str,
    settings: DeploymentSettings,
    query: PolicyRequest,
    outcome: str,
    obligations: tuple[Obligation, ...],
    reason: bool,
) -> None:
    decision = decide(query, settings)
    assert decision.outcome == outcome, decision.as_dict()
    for obligation in obligations:
        assert obligation in decision.obligations
    assert (rule in decision.rule_ids()) is reason
    assert policy_engine(settings, validate=False).decide(query) == decision


def _covered(cases: list[Any]) -> set[str]:
    return {case.values[0] for case in cases if not case.marks}


def test_every_rule_of_every_pack_has_a_denial_and_an_allowance() -> None:
    shipped = {
        pack.id: tuple(rule.id for rule in pack.rules)
        for pack in policy_engine(EVERY_PACK).available.values()
    }
    assert {pack: set(rules) for pack, rules in shipped.items()} == {
        pack: set(rules) for pack, rules in RULES.items()
    }
    every_rule = {rule for rules in RULES.values() for rule in rules}
    # CORE-BASE is the default permit: it never denies (see the test below).
    assert every_rule - _covered(DENIALS) == {"CORE-BASE"}
    assert every_rule - _covered(ALLOWANCES) == set()


def test_core_base_is_the_permit_a_denial_never_cites() -> None:
    """CORE-BASE allows whatever no pack forbids; when something is forbidden the reasons are
    the forbidding rules, never the base permit."""
    allowed = decide(ask("commercial", "US-NY", "verify", "identity_verification"), CORE)
    assert (allowed.outcome, allowed.rule_ids(), allowed.obligations) == (
        "allow",
        ["CORE-BASE"],
        (),
    )
    denied = decide(
        ask("commercial", "US-NY", "verify", "identity_verification", org={"status": "suspended"}),
        CORE,
    )
    assert denied.outcome == "deny"
    assert denied.rule_ids() == ["CORE-STATUS"]


# --- The "done when" scenarios -------------------------------------------------------


def test_done_when_1_us_police_identify_for_criminal_investigation_is_denied() -> None:
    decision = decide(ask("police", "US-NY", "identify", "criminal_investigation"))
    assert decision.outcome == "deny"
    assert {"MS-US-POLICE", "AMZ-MORATORIUM"} <= set(decision.rule_ids())


def test_done_when_2_us_police_missing_child_search_is_denied_by_ms_us_police_alone() -> None:
    decision = decide(
        ask("police", "US-NY", "identify", "missing_persons", subject_may_be_minor=True)
    )
    assert decision.outcome == "deny"
    assert decision.rule_ids() == ["MS-US-POLICE"]


def test_done_when_3_us_police_missing_child_search_allowed_once_national_law_attested() -> None:
    decision = decide(
        ask("police", "US-NY", "identify", "missing_persons", subject_may_be_minor=True),
        DeploymentSettings(national_law=NATIONAL_LAW),
    )
    assert decision.outcome == "allow_with_obligations"
    assert set(PUBLIC_SAFETY) <= set(decision.obligations)
    assert "MS-US-POLICE" not in decision.rule_ids()
    assert "AMZ-LE-OBLIGATIONS" in decision.rule_ids()


def test_done_when_4_missing_persons_ngo_search_is_allowed_with_obligations() -> None:
    decision = decide(ask("ngo_missing_persons", "US-NY", "identify", "missing_persons"))
    assert decision.outcome == "allow_with_obligations"
    assert {o.type for o in decision.obligations} >= {
        "human_review",
        "similarity_floor",
        "not_sole_basis",
    }
    assert set(PUBLIC_SAFETY) <= set(decision.obligations)
    assert "AMZ-LE-OBLIGATIONS" in decision.rule_ids()


def _eu_realtime(purpose: str, **context: Any) -> PolicyRequest:
    """A German police force identifying someone in real time in a public space."""
    return ask("police", "DE", "identify", purpose, realtime=True, public_space=True, **context)


def test_done_when_5_eu_realtime_public_identification_for_an_investigation_is_denied() -> None:
    for settings in (EU, EVERY_PACK):
        decision = decide(_eu_realtime("criminal_investigation"), settings)
        assert decision.outcome == "deny"
        assert "EU-5-1-h" in decision.rule_ids()
    # Not even with a judge's authorisation: an ordinary investigation is no exception.
    authorised = decide(
        _eu_realtime("criminal_investigation", authorisation="judicial:AG-Berlin-2026-1"), EU
    )
    assert authorised.outcome == "deny"
    assert authorised.rule_ids() == ["EU-5-1-h"]


EU_EXCEPTIONS = [
    pytest.param("missing_persons", id="(i) missing person"),
    pytest.param("trafficking_victims", id="(i) victim of trafficking"),
    pytest.param("imminent_threat", id="(ii) imminent threat"),
    pytest.param("serious_crime_suspect", id="(iii) serious-crime suspect"),
]


@pytest.mark.parametrize("purpose", EU_EXCEPTIONS)
def test_done_when_5_eu_exception_in_an_emergency_needs_authorisation_within_24_hours(
    purpose: str,
) -> None:
    decision = decide(_eu_realtime(purpose, emergency=True), EU)
    assert decision.outcome == "allow_with_obligations"
    assert "EU-5-1-h" in decision.rule_ids()
    for obligation in (
        AuthorisationWithin(hours=24),
        DeleteIfAuthorisationRefused(),
        HumanReview(reviewers=2),
        NotSoleBasis(),
    ):
        assert obligation in decision.obligations


@pytest.mark.parametrize("purpose", EU_EXCEPTIONS)
def test_done_when_5_eu_exception_with_judicial_authorisation_is_allowed(purpose: str) -> None:
    decision = decide(_eu_realtime(purpose, authorisation="judicial:AG-Berlin-2026-2"), EU)
    assert decision.outcome == "allow_with_obligations"
    assert "EU-5-1-h" in decision.rule_ids()
    assert HumanReview(reviewers=2) in decision.obligations
    assert NotSoleBasis() in decision.obligations
    assert not any(isinstance(o, AuthorisationWithin) for o in decision.obligations)


@pytest.mark.parametrize("purpose", EU_EXCEPTIONS)
def test_done_when_5_eu_exception_without_authorisation_or_emergency_is_denied(
    purpose: str,
) -> None:
    decision = decide(_eu_realtime(purpose), EU)
    assert decision.outcome == "deny"
    assert decision.rule_ids() == ["EU-5-1-h"]


@pytest.mark.parametrize(
    ("authorisation", "outcome"),
    [
        pytest.param("judicial:AG-Berlin-2026-3", "allow_with_obligations", id="judicial"),
        pytest.param(
            "independent_authority:BfDI-2026-4", "allow_with_obligations", id="independent"
        ),
        pytest.param("court_order:LG-Berlin-2026-5", "allow_with_obligations", id="court order"),
        pytest.param("warrant:AG-Berlin-2026-6", "allow_with_obligations", id="warrant"),
        pytest.param("subpoena:StA-Berlin-2026-7", "deny", id="a subpoena is no authorisation"),
    ],
)
def test_eu_exception_needs_judicial_or_independent_authorisation(
    authorisation: str, outcome: str
) -> None:
    decision = decide(_eu_realtime("serious_crime_suspect", authorisation=authorisation), EU)
    assert decision.outcome == outcome
    assert "EU-5-1-h" in decision.rule_ids()


@pytest.mark.parametrize(
    "subject",
    [
        pytest.param({"where": "US-IL"}, id="organisation in Illinois"),
        pytest.param({"where": "US-NY", "subject_jurisdiction": "US-IL"}, id="subject in Illinois"),
    ],
)
def test_done_when_6_bipa_enrolment_without_a_written_release_is_denied(
    subject: dict[str, str],
) -> None:
    context = dict(subject)
    query = ask(
        "commercial",
        context.pop("where"),
        "enroll",
        "access_control",
        org={"retention_policy": RETENTION_POLICY},
        **context,
    )
    decision = decide(query)
    assert decision.outcome == "deny"
    assert "BIPA-15b" in decision.rule_ids()
    assert "bipa" in decision.packs


# --- Precedence: a deny anywhere wins; obligations merge, strictest wins ---------------------


def test_a_missing_persons_ngo_allowed_by_vendor_2020_is_denied_by_an_eu_rule() -> None:
    search = ask("ngo_missing_persons", "DE", "identify", "missing_persons", reviewers=1)
    assert decide(search, VENDOR).outcome == "allow_with_obligations"
    both = decide(search, only("vendor-2020", "eu-ai-act"))
    assert both.outcome == "deny"
    assert both.rule_ids() == ["EU-14-5"]


def test_a_missing_persons_ngo_scraping_its_gallery_is_denied_by_the_eu_ai_act() -> None:
    scraped = ask(
        "ngo_missing_persons", "FR", "enroll", "missing_persons", data_source="untargeted_scraping"
    )
    assert decide(scraped, VENDOR).outcome == "allow"
    both = decide(scraped, only("vendor-2020", "eu-ai-act"))
    assert (both.outcome, both.rule_ids()) == ("deny", ["EU-5-1-e"])


def test_a_use_the_eu_ai_act_allows_is_denied_by_ibm_exit() -> None:
    watching = ask("ngo_missing_persons", "DE", "identify", "mass_surveillance")
    assert decide(watching, EU).outcome == "allow_with_obligations"
    both = decide(watching, only("eu-ai-act", "vendor-2020"))
    assert (both.outcome, both.rule_ids()) == ("deny", ["IBM-EXIT"])


@pytest.mark.parametrize("purpose", ["imminent_threat", "serious_crime_suspect"])
def test_an_eu_realtime_exception_is_denied_by_amz_moratorium_with_vendor_2020(
    purpose: str,
) -> None:
    query = _eu_realtime(purpose, authorisation="judicial:AG-Berlin-2026-9")
    assert decide(query, EU).outcome == "allow_with_obligations"
    both = decide(query, only("eu-ai-act", "vendor-2020"))
    assert both.outcome == "deny"
    assert both.rule_ids() == ["AMZ-MORATORIUM"]
    assert both.obligations == ()


def test_obligations_of_several_packs_merge_strictest_wins() -> None:
    query = _eu_realtime("missing_persons", authorisation="judicial:AG-Berlin-2026-10")
    amazon = decide(query, VENDOR)
    assert HumanReview(reviewers=1) in amazon.obligations
    decision = decide(query, only("vendor-2020", "eu-ai-act"))
    assert decision.outcome == "allow_with_obligations"
    reviews = [o for o in decision.obligations if isinstance(o, HumanReview)]
    assert reviews == [HumanReview(reviewers=2)]
    assert set(decision.obligations) == {
        HumanReview(reviewers=2),
        SimilarityFloor(max_fmr=0.0001),
        NotSoleBasis(),
        LogRetention(days=183),
    }
    assert {"AMZ-LE-OBLIGATIONS", "EU-5-1-h", "EU-14-5", "EU-26-6"} <= set(decision.rule_ids())
    assert decision.packs == ("core", "vendor-2020", "eu-ai-act")


def test_consent_obligations_merge_to_the_strongest_kind() -> None:
    """A German company enrolling someone from Illinois who lives in Texas: BIPA asks for
    written consent, Texas for any consent, the GDPR for explicit consent; explicit wins."""
    query = ask(
        "commercial",
        "DE",
        "enroll",
        "access_control",
        org={"retention_policy": RETENTION_POLICY},
        subject_jurisdiction="US-IL",
        location="US-TX",
        consent="explicit",
        notice_given=True,
    )
    decision = decide(query, only("bipa", "texas-cubi", "gdpr"))
    assert decision.outcome == "allow_with_obligations"
    consents = [o for o in decision.obligations if isinstance(o, ConsentOnFile)]
    assert consents == [ConsentOnFile(kind=ConsentKind.EXPLICIT)]
    # Retention limits counted from different events are both kept.
    assert RetentionLimit(days=1095, after="last_interaction") in decision.obligations
    assert RetentionLimit(days=365, after="purpose_end") in decision.obligations
    assert {"BIPA-15a", "BIPA-15b", "TX-b", "TX-c3", "GDPR-9"} <= set(decision.rule_ids())


def test_a_deny_lists_every_rule_that_forbids() -> None:
    query = ask(
        "police",
        "US-WA",
        "identify",
        "criminal_investigation",
        realtime=True,
        capture_device="body_worn",
    )
    decision = decide(query)
    assert decision.outcome == "deny"
    assert set(decision.rule_ids()) == {
        "MS-US-POLICE",
        "MS-LE-MOBILE",
        "AMZ-MORATORIUM",
        "WA-SURVEIL",
        "WA-BIASTEST",
        "WA-REPORT",
    }


def test_the_order_packs_are_listed_in_does_not_change_the_decision() -> None:
    query = _eu_realtime("missing_persons", emergency=True)
    forwards = decide(query, only("vendor-2020", "eu-ai-act"))
    backwards = decide(query, only("eu-ai-act", "vendor-2020"))
    assert forwards.outcome == backwards.outcome == "allow_with_obligations"
    assert set(forwards.obligations) == set(backwards.obligations)
    assert set(forwards.rule_ids()) == set(backwards.rule_ids())


# --- The national-law attestation lifts MS-US-POLICE and nothing else ------------------------


def test_national_law_does_not_lift_amz_moratorium() -> None:
    decision = decide(
        ask("police", "US-NY", "identify", "criminal_investigation"),
        DeploymentSettings(national_law=NATIONAL_LAW),
    )
    assert decision.outcome == "deny"
    assert decision.rule_ids() == ["AMZ-MORATORIUM"]


def test_national_law_lifts_ms_us_police_for_a_missing_child_search() -> None:
    decision = decide(
        ask("police", "US-NY", "identify", "missing_persons", subject_may_be_minor=True),
        DeploymentSettings(national_law=NATIONAL_LAW),
    )
    assert decision.outcome == "allow_with_obligations"
    assert {o.type for o in decision.obligations} == {
        "human_review",
        "similarity_floor",
        "not_sole_basis",
    }


@pytest.mark.parametrize(("rule", "settings", "query"), DENIALS)
def test_national_law_lifts_only_ms_us_police(
    rule: str, settings: DeploymentSettings, query: PolicyRequest
) -> None:
    attested = decide(query, dataclasses.replace(settings, national_law=NATIONAL_LAW))
    if rule == "MS-US-POLICE":
        assert "MS-US-POLICE" not in attested.rule_ids()
    else:
        assert attested.outcome == "deny"
        assert rule in attested.rule_ids()


# --- Jurisdiction: which packs reach which requests -----------------------------------------


@pytest.mark.parametrize(
    ("where", "context", "applies"),
    [
        pytest.param("US-IL", {}, True, id="organisation in Illinois"),
        pytest.param("US-IL/chicago", {}, True, id="organisation in Chicago"),
        pytest.param("US-NY", {"subject_jurisdiction": "US-IL"}, True, id="subject in Illinois"),
        pytest.param("DE", {"subject_jurisdiction": "US-IL"}, True, id="German org, Illinoisan"),
        pytest.param("US-NY", {"location": "US-IL"}, True, id="captured in Illinois"),
        pytest.param("US-NY", {}, False, id="nothing in Illinois"),
        pytest.param(
            "US-WI",
            {"subject_jurisdiction": "US-IN", "location": "US-MI"},
            False,
            id="neighbouring states",
        ),
        pytest.param("US", {}, False, id="the US without a state"),
    ],
)
def test_bipa_reaches_the_organisation_the_subject_or_the_place_in_illinois(
    where: str, context: dict[str, str], applies: bool
) -> None:
    query = ask(
        "commercial",
        where,
        "enroll",
        "access_control",
        org={"retention_policy": RETENTION_POLICY},
        **context,
    )
    decision = decide(query, BIPA)
    assert ("bipa" in decision.packs) is applies
    assert ("BIPA-15b" in decision.rule_ids()) is applies
    assert decision.outcome == ("deny" if applies else "allow")


@pytest.mark.parametrize(
    ("where", "subject", "applies"),
    [
        pytest.param("DE", None, True, id="German organisation"),
        pytest.param("FR", None, True, id="French organisation"),
        pytest.param("IE", None, True, id="Irish organisation"),
        pytest.param("NO", None, True, id="Norwegian organisation (EEA)"),
        pytest.param("IS", None, True, id="Icelandic organisation (EEA)"),
        pytest.param("US-NY", "FR", True, id="US organisation, subject in France"),
        pytest.param("GB", "ES", True, id="UK organisation, subject in Spain"),
        pytest.param("US-NY", "US-NY", False, id="US organisation, US subject"),
        pytest.param("CH", None, False, id="Swiss organisation"),
        pytest.param("GB", "GB", False, id="UK organisation, UK subject"),
    ],
)
def test_gdpr_reaches_eea_organisations_and_eu_subjects(
    where: str, subject: str | None, applies: bool
) -> None:
    context = {"subject_jurisdiction": subject} if subject else {}
    decision = decide(ask("commercial", where, "verify", "identity_verification", **context), GDPR)
    assert ("gdpr" in decision.packs) is applies
    assert ("GDPR-9" in decision.rule_ids()) is applies


@pytest.mark.parametrize(
    ("sector", "where", "context", "rule"),
    [
        pytest.param("police", "US-CA/san-francisco", {}, "SF-19B", id="San Francisco"),
        pytest.param("police", "US-MA/boston", {}, "BOSTON-16-62", id="Boston"),
        pytest.param(
            "commercial",
            "US-NY",
            {"location": "US-OR/portland", "public_space": True},
            "PDX-34.10",
            id="Portland, Oregon",
        ),
        pytest.param("police", "US-CA/los-angeles", {}, None, id="Los Angeles"),
        pytest.param("police", "US-CA", {}, None, id="California, no city"),
        pytest.param("police", "US-MA/cambridge", {}, None, id="Cambridge, Massachusetts"),
        pytest.param(
            "commercial",
            "US-NY",
            {"location": "US-ME/portland", "public_space": True},
            None,
            id="Portland, Maine",
        ),
        pytest.param("police", "GB-LIN/boston", {}, None, id="Boston, Lincolnshire"),
    ],
)
def test_municipal_bans_reach_only_their_three_cities(
    sector: str, where: str, context: dict[str, Any], rule: str | None
) -> None:
    decision = decide(ask(sector, where, "identify", "missing_persons", **context), MUNICIPAL)
    assert ("municipal" in decision.packs) is (rule is not None)
    if rule is None:
        assert decision.outcome == "allow"
    else:
        assert decision.outcome == "deny"
        assert decision.rule_ids() == [rule]


@pytest.mark.parametrize(
    ("code", "in_eu"),
    [
        *(pytest.param(code, True, id=code) for code in ("DE", "FR", "IT", "PL", "IE", "AT")),
        *(pytest.param(code, False, id=code) for code in ("GB", "CH", "NO", "US-NY", "TR")),
    ],
)
def test_eu_member_states_are_recognised_as_eu(code: str, in_eu: bool) -> None:
    assert Jurisdiction.parse(code).in_eu is in_eu
    assert Jurisdiction.parse(code).within("EU") is in_eu
    decision = decide(ask("commercial", code, "detect", "racial_profiling"), EU)
    assert ("eu-ai-act" in decision.packs) is in_eu
    assert decision.outcome == ("deny" if in_eu else "allow")


def test_the_eu_ai_act_reaches_a_non_eu_organisation_using_it_in_the_eu() -> None:
    query = ask("commercial", "US-NY", "detect", "racial_profiling", location="FR")
    decision = decide(query, EU)
    assert "eu-ai-act" in decision.packs
    assert decision.rule_ids() == ["EU-5-1-g"]


def test_wa_binds_washington_agencies_only() -> None:
    elsewhere = decide(ask("police", "US-OR", "identify", "criminal_investigation"), WA)
    assert "wa-sb6280" not in elsewhere.packs
    assert elsewhere.outcome == "allow"


# --- Effective dates -------------------------------------------------------------------------

HIGH_RISK_FROM_AUGUST_2026 = [
    pytest.param(
        "EU-14-5",
        EU,
        ask("commercial", "DE", "identify", "media_archive_search", reviewers=1),
        id="EU-14-5",
    ),
    pytest.param(
        "EU-26-6",
        only("eu-ai-act", log_retention_days=90),
        ask("commercial", "DE", "identify", "media_archive_search"),
        id="EU-26-6",
    ),
    pytest.param(
        "EU-26-10",
        EU,
        ask("police", "DE", "identify", "criminal_investigation", targeted=False),
        id="EU-26-10",
    ),
]


@pytest.mark.parametrize(("rule", "settings", "query"), HIGH_RISK_FROM_AUGUST_2026)
def test_eu_high_risk_duties_apply_from_2_august_2026(
    rule: str, settings: DeploymentSettings, query: PolicyRequest
) -> None:
    before = decide(dataclasses.replace(query, on=date(2026, 1, 1)), settings)
    assert before.outcome == "allow"
    assert rule not in before.rule_ids()
    assert "eu-ai-act" in before.packs
    on_the_day = decide(dataclasses.replace(query, on=date(2026, 8, 2)), settings)
    assert rule in on_the_day.rule_ids()
    after = decide(dataclasses.replace(query, on=ON), settings)
    assert after.outcome == "deny"
    assert rule in after.rule_ids()


def test_eu_obligations_of_the_high_risk_duties_appear_only_once_they_apply() -> None:
    query = ask("police", "DE", "identify", "criminal_investigation")
    before = decide(dataclasses.replace(query, on=date(2026, 1, 1)), EU)
    after = decide(query, EU)
    assert before.outcome == "allow"
    assert before.obligations == ()
    assert after.outcome == "allow_with_obligations"
    assert {HumanReview(reviewers=2), LogRetention(days=183), AuthorisationWithin(hours=48)} <= set(
        after.obligations
    )


def test_eu_article_5_prohibitions_already_apply_on_1_january_2026() -> None:
    query = _eu_realtime("criminal_investigation", on=date(2026, 1, 1))
    decision = decide(query, EU)
    assert decision.outcome == "deny"
    assert decision.rule_ids() == ["EU-5-1-h"]


@pytest.mark.parametrize(
    ("settings", "query", "pack", "first_day"),
    [
        pytest.param(
            EU,
            _eu_realtime("criminal_investigation"),
            "eu-ai-act",
            date(2025, 2, 2),
            id="eu-ai-act",
        ),
        pytest.param(
            WA,
            wa_agency("police", "identify", "criminal_investigation", realtime=True),
            "wa-sb6280",
            date(2021, 7, 1),
            id="wa-sb6280",
        ),
        pytest.param(
            VENDOR,
            ask("commercial", "US-NY", "identify", "mass_surveillance"),
            "vendor-2020",
            date(2020, 6, 8),
            id="vendor-2020",
        ),
    ],
)
def test_a_pack_is_skipped_before_it_takes_effect(
    settings: DeploymentSettings, query: PolicyRequest, pack: str, first_day: date
) -> None:
    day_before = decide(
        dataclasses.replace(query, on=date.fromordinal(first_day.toordinal() - 1)), settings
    )
    assert pack not in day_before.packs
    assert day_before.outcome == "allow"
    first = decide(dataclasses.replace(query, on=first_day), settings)
    assert pack in first.packs
    assert first.outcome == "deny"


@pytest.mark.parametrize(
    ("settings", "query", "outcome"),
    [
        pytest.param(
            GDPR,
            ask("commercial", "DE", "verify", "identity_verification", on=date(2018, 5, 24)),
            "allow",
            id="the day before the GDPR",
        ),
        pytest.param(
            BIPA,
            illinois("enroll", "access_control", consent="written", on=date(2015, 6, 1)),
            "allow_with_obligations",
            id="a BIPA enrolment in 2015",
        ),
        pytest.param(
            BIPA,
            ask(
                "commercial",
                "US-IL",
                "enroll",
                "access_control",
                on=date(2015, 6, 1),
                org={"status": "pending_review", "retention_policy": RETENTION_POLICY},
                consent="written",
            ),
            "deny",
            id="a BIPA enrolment in 2015 by an organisation pending review",
        ),
    ],
)
def test_core_is_in_force_on_any_date(
    settings: DeploymentSettings, query: PolicyRequest, outcome: str
) -> None:
    decision = decide(query, settings)
    assert "core" in decision.packs
    assert decision.outcome == outcome
    assert decision.reasons


def test_portland_ban_applies_from_1_january_2021() -> None:
    query = ask(
        "commercial",
        "US-NY",
        "identify",
        "access_control",
        location="US-OR/portland",
        public_space=True,
    )
    before = decide(dataclasses.replace(query, on=date(2020, 12, 31)), MUNICIPAL)
    assert "municipal" in before.packs
    assert before.outcome == "allow"
    after = decide(dataclasses.replace(query, on=date(2021, 1, 1)), MUNICIPAL)
    assert after.rule_ids() == ["PDX-34.10"]


def test_boston_ban_does_not_apply_before_it_was_enacted() -> None:
    query = ask("police", "US-MA/boston", "identify", "criminal_investigation", on=date(2020, 1, 1))
    decision = decide(query, MUNICIPAL)
    assert "BOSTON-16-62" not in decision.rule_ids()


# --- The shape of a decision ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "settings", "decision_", "outcome"),
    [
        pytest.param(
            ask("police", "US-NY", "identify", "criminal_investigation"),
            EVERY_PACK,
            "deny",
            "deny",
            id="deny",
        ),
        pytest.param(
            ask("commercial", "US-NY", "verify", "identity_verification"),
            CORE,
            "allow",
            "allow",
            id="allow",
        ),
        pytest.param(
            _eu_realtime("imminent_threat", emergency=True),
            EU,
            "allow",
            "allow_with_obligations",
            id="allow with obligations",
        ),
    ],
)
def test_a_decision_as_a_dict(
    query: PolicyRequest, settings: DeploymentSettings, decision_: str, outcome: str
) -> None:
    record = decide(query, settings).as_dict()
    assert set(record) == {"decision", "outcome", "obligations", "reasons", "packs"}
    assert (record["decision"], record["outcome"]) == (decision_, outcome)
    assert record["reasons"]
    for reason in record["reasons"]:
        assert set(reason) == {"rule", "pack", "summary", "source"}
        assert all(isinstance(value, str) and value.strip() for value in reason.values())
        assert reason["pack"] in record["packs"]
    assert all(isinstance(o, dict) and o["type"] for o in record["obligations"])
    assert bool(record["obligations"]) is (outcome == "allow_with_obligations")
    assert record["packs"][0] == "core"


def test_obligations_as_dicts_carry_their_parameters() -> None:
    record = decide(_eu_realtime("missing_persons", emergency=True), EU).as_dict()
    assert {"type": "authorisation_within", "hours": 24} in record["obligations"]
    assert {"type": "delete_if_authorisation_refused"} in record["obligations"]
    assert {"type": "human_review", "reviewers": 2} in record["obligations"]
    assert {"type": "log_retention", "days": 183} in record["obligations"]
    assert {"type": "not_sole_basis"} in record["obligations"]
    assert [r["rule"] for r in record["reasons"] if r["pack"] == "eu-ai-act"] == [
        "EU-5-1-h",
        "EU-14-5",
        "EU-26-6",
    ]
