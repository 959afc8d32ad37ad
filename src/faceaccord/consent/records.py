"""Consent records: who consented, how, to what notice, for what purpose, until when."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from faceaccord.errors import FaceAccordError, InputError
from faceaccord.governance.obligations import ConsentOnFile, NoticeGiven, Obligation
from faceaccord.governance.vocabulary import ConsentKind, Purpose

__all__ = [
    "MAX_CONSENT_DAYS",
    "ConsentInput",
    "ConsentRequiredError",
    "check_consent_obligations",
    "notice_digest",
]


MAX_CONSENT_DAYS = 36_500
"""A hundred years: longer is not a duration but a mistake (and would overflow the dates)."""


class ConsentRequiredError(FaceAccordError):
    """The policy allows the enrolment only with a consent (or notice) that was not given."""

    code = "consent_required"


@dataclass(frozen=True, slots=True)
class ConsentInput:
    kind: ConsentKind
    reference: str
    """Where the signed release or the record of consent is (a document id, a URL)."""
    purpose: Purpose
    collected_at: datetime
    notice_sha256: str | None = None
    notice_version: str | None = None
    duration_days: int | None = None

    def __post_init__(self) -> None:
        if self.kind is ConsentKind.NONE:
            raise InputError("a consent record needs a kind other than 'none'")
        if not self.reference.strip():
            raise InputError("a consent record needs a reference to the signed release")
        if self.duration_days is not None and not 0 < self.duration_days <= MAX_CONSENT_DAYS:
            raise InputError(
                f"a consent's duration must be between 1 and {MAX_CONSENT_DAYS} days, "
                f"not {self.duration_days}"
            )

    @property
    def expires_at(self) -> datetime | None:
        if self.duration_days is None:
            return None
        return self.collected_at + timedelta(days=self.duration_days)

    @property
    def notice_given(self) -> bool:
        return self.notice_sha256 is not None


def notice_digest(text: str) -> str:
    """The SHA-256 of a notice's text, so a record proves which wording the person saw."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# Which recorded kinds satisfy a required kind. BIPA counts an electronic signature as a
# written release; GDPR's explicit consent is also written.
_SATISFIES: dict[ConsentKind | None, frozenset[ConsentKind]] = {
    None: frozenset({ConsentKind.WRITTEN, ConsentKind.ELECTRONIC, ConsentKind.EXPLICIT}),
    ConsentKind.WRITTEN: frozenset(
        {ConsentKind.WRITTEN, ConsentKind.ELECTRONIC, ConsentKind.EXPLICIT}
    ),
    ConsentKind.ELECTRONIC: frozenset(
        {ConsentKind.WRITTEN, ConsentKind.ELECTRONIC, ConsentKind.EXPLICIT}
    ),
    ConsentKind.EXPLICIT: frozenset({ConsentKind.EXPLICIT}),
}


def check_consent_obligations(
    obligations: tuple[Obligation, ...], consent: ConsentInput | None
) -> None:
    """Raise ``ConsentRequiredError`` unless the consent meets every consent and notice
    obligation of the decision."""
    for obligation in obligations:
        if isinstance(obligation, ConsentOnFile):
            needed = obligation.kind
            if consent is None or consent.kind not in _SATISFIES[needed]:
                wanted = f"{needed} consent" if needed else "a consent"
                have = f"{consent.kind} consent" if consent else "no consent"
                raise ConsentRequiredError(
                    f"the policy requires {wanted} on file for this enrolment; {have} was given"
                )
        if isinstance(obligation, NoticeGiven) and (consent is None or not consent.notice_given):
            raise ConsentRequiredError(
                "the policy requires that the person was given notice before capture: "
                "record the notice's text (and version) with the consent"
            )
