"""The governance vocabulary: the exact snake_case words the CLI, the API and the packs use
(``../shared/design/POLICY_CATALOGUE.md``), and jurisdiction codes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache

__all__ = [
    "AuthorisationType",
    "CaptureDevice",
    "ConsentKind",
    "DataSource",
    "DisclosureBasis",
    "ExportRecipient",
    "Jurisdiction",
    "LegalGround",
    "Operation",
    "Purpose",
    "Sector",
]


class Sector(StrEnum):
    COMMERCIAL = "commercial"
    PUBLIC_SECTOR = "public_sector"
    POLICE = "police"
    FEDERAL_LAW_ENFORCEMENT = "federal_law_enforcement"
    NGO_MISSING_PERSONS = "ngo_missing_persons"
    NGO_ANTI_TRAFFICKING = "ngo_anti_trafficking"
    HUMANITARIAN = "humanitarian"
    RESEARCH = "research"
    EMPLOYER = "employer"
    SCHOOL = "school"
    HEALTHCARE = "healthcare"
    FINANCIAL_INSTITUTION = "financial_institution"


class Operation(StrEnum):
    DETECT = "detect"
    VERIFY = "verify"
    IDENTIFY = "identify"
    ENROLL = "enroll"
    DELETE = "delete"
    EXPORT = "export"
    EVALUATE = "evaluate"


class Purpose(StrEnum):
    IDENTITY_VERIFICATION = "identity_verification"
    ACCESS_CONTROL = "access_control"
    PERSONALISATION = "personalisation"
    DUPLICATE_ACCOUNT_DETECTION = "duplicate_account_detection"
    MEDIA_ARCHIVE_SEARCH = "media_archive_search"
    MISSING_PERSONS = "missing_persons"
    TRAFFICKING_VICTIMS = "trafficking_victims"
    CRIMINAL_INVESTIGATION = "criminal_investigation"
    SERIOUS_CRIME_SUSPECT = "serious_crime_suspect"
    """A suspect of an offence with a maximum sentence of 4 years or more."""
    IMMINENT_THREAT = "imminent_threat"
    PUBLIC_SPACE_MONITORING = "public_space_monitoring"
    EMOTION_INFERENCE = "emotion_inference"
    DEMOGRAPHIC_CATEGORISATION = "demographic_categorisation"
    RESEARCH_EVALUATION = "research_evaluation"
    MASS_SURVEILLANCE = "mass_surveillance"
    RACIAL_PROFILING = "racial_profiling"


class AuthorisationType(StrEnum):
    WARRANT = "warrant"
    COURT_ORDER = "court_order"
    JUDICIAL = "judicial"
    INDEPENDENT_AUTHORITY = "independent_authority"
    SUBPOENA = "subpoena"
    EXIGENT = "exigent"


class ConsentKind(StrEnum):
    NONE = "none"
    WRITTEN = "written"
    ELECTRONIC = "electronic"
    """An electronic signature: counts as written under BIPA."""
    EXPLICIT = "explicit"
    """Explicit consent in the sense of GDPR Article 9(2)(a); given in writing or electronically."""


class DataSource(StrEnum):
    CONSENTED_CAPTURE = "consented_capture"
    CUSTOMER_UPLOAD = "customer_upload"
    UNTARGETED_SCRAPING = "untargeted_scraping"


class CaptureDevice(StrEnum):
    FIXED = "fixed"
    MOBILE = "mobile"
    BODY_WORN = "body_worn"
    DASH = "dash"


class ExportRecipient(StrEnum):
    NONE = "none"
    """Not an export to anyone else (e.g. a backup under the organisation's own control)."""
    THIRD_PARTY = "third_party"
    SALE = "sale"
    """Sold, leased, traded or otherwise profited from."""


class DisclosureBasis(StrEnum):
    """Why templates may be disclosed to a third party (BIPA 15(d))."""

    CONSENT = "consent"
    FINANCIAL_TRANSACTION = "financial_transaction"
    LEGAL_REQUIREMENT = "legal_requirement"
    WARRANT = "warrant"
    SUBPOENA = "subpoena"


class LegalGround(StrEnum):
    """A GDPR Article 9(2) ground for processing biometric data for unique identification."""

    EXPLICIT_CONSENT = "explicit_consent"
    EMPLOYMENT_LAW = "employment_law"
    VITAL_INTERESTS = "vital_interests"
    LEGAL_CLAIMS = "legal_claims"
    SUBSTANTIAL_PUBLIC_INTEREST = "substantial_public_interest"


EU_MEMBER_STATES = frozenset(
    {
        "AT", "BE", "BG", "HR", "CY", "CZ", "DK", "EE", "FI", "FR", "DE", "GR", "IE", "IT",
        "LV", "LT", "LU", "MT", "NL", "PL", "PT", "RO", "SK", "SI", "ES", "SE",
    }
)  # fmt: skip
EEA_NON_EU = frozenset({"IS", "LI", "NO"})
_CODE = re.compile(
    r"^(?P<country>[A-Z]{2})(?:-(?P<sub>[A-Z0-9]{1,3}))?(?:/(?P<locality>[a-z0-9-]{1,60}))?$"
)


@dataclass(frozen=True, slots=True)
class Jurisdiction:
    """An ISO 3166 country, optionally a subdivision (``US-IL``), optionally a locality
    (``US-CA/san-francisco``) for municipal rules."""

    country: str
    subdivision: str | None = None
    locality: str | None = None

    @classmethod
    def parse(cls, code: str) -> Jurisdiction:
        match = _CODE.match(code.strip())
        if match is None:
            raise ValueError(
                f"{code!r} is not a jurisdiction code: use an ISO 3166 country (DE), a "
                "subdivision (US-IL), optionally with a locality of up to 60 lower-case letters, "
                "digits and hyphens (US-CA/san-francisco)"
            )
        country, sub = match["country"], match["sub"]
        return cls(
            country=country,
            subdivision=f"{country}-{sub}" if sub else None,
            locality=match["locality"],
        )

    @property
    def code(self) -> str:
        base = self.subdivision or self.country
        return f"{base}/{self.locality}" if self.locality else base

    @property
    def in_eu(self) -> bool:
        return self.country in EU_MEMBER_STATES

    @property
    def in_eea(self) -> bool:
        return self.in_eu or self.country in EEA_NON_EU

    def within(self, scope: str) -> bool:
        """Whether this place lies in ``scope``: ``*`` (anywhere), ``EU``, ``EEA``, a country,
        a subdivision or a subdivision with locality."""
        if scope == "*":
            return True
        if scope == "EU":
            return self.in_eu
        if scope == "EEA":
            return self.in_eea
        target = _parse_scope(scope)
        if target.country != self.country:
            return False
        if target.subdivision and target.subdivision != self.subdivision:
            return False
        return not target.locality or target.locality == self.locality

    def __str__(self) -> str:
        return self.code


@lru_cache(maxsize=256)
def _parse_scope(code: str) -> Jurisdiction:
    return Jurisdiction.parse(code)
