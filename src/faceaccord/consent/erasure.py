"""Erasure receipts: signed proof of what was deleted, when, and why, that can be checked
later by anyone holding the deployment's public key, without keeping the person's data."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from faceaccord.protection.keys import SigningKey
from faceaccord.protection.signing import sign, verify_signature

__all__ = ["ErasureCounts", "ErasureReceipt", "reference_digest", "verify_receipt"]


@dataclass(frozen=True, slots=True)
class ErasureCounts:
    subjects: int = 0
    templates: int = 0
    consents: int = 0
    keys_destroyed: int = 0
    index_entries: int = 0
    """Entries removed from the indexes loaded in this process; any other process rebuilds its
    index from the database, where the templates are gone."""

    def __add__(self, other: ErasureCounts) -> ErasureCounts:
        return ErasureCounts(
            subjects=self.subjects + other.subjects,
            templates=self.templates + other.templates,
            consents=self.consents + other.consents,
            keys_destroyed=self.keys_destroyed + other.keys_destroyed,
            index_entries=self.index_entries + other.index_entries,
        )

    def as_dict(self) -> dict[str, int]:
        return {
            "subjects": self.subjects,
            "templates": self.templates,
            "consents": self.consents,
            "keys_destroyed": self.keys_destroyed,
            "index_entries": self.index_entries,
        }


@dataclass(frozen=True, slots=True)
class ErasureReceipt:
    document: dict[str, Any]
    signature: str
    key_id: str
    public_key_pem: str

    @classmethod
    def issue(
        cls,
        *,
        key: SigningKey,
        receipt_id: str,
        organisation_id: str,
        scope: str,
        reason: str,
        galleries: list[str],
        reference_sha256: str | None,
        counts: ErasureCounts,
        erased_at: datetime,
    ) -> ErasureReceipt:
        document = {
            "receipt": receipt_id,
            "organisation": organisation_id,
            "scope": scope,
            "reason": reason,
            "galleries": sorted(galleries),
            "subject_reference_sha256": reference_sha256,
            "counts": counts.as_dict(),
            "erased_at": erased_at.isoformat(),
            "key_id": key.id,
        }
        return cls(
            document=document, signature=sign(key, document), key_id=key.id,
            public_key_pem=key.public_pem(),
        )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return {
            **self.document,
            "signature": self.signature,
            "public_key_pem": self.public_key_pem,
        }


def reference_digest(organisation_id: str, reference: str) -> str:
    """A pseudonym of the subject's reference: lets the person (who knows it) match the
    receipt, without the receipt keeping the reference itself."""
    return hashlib.sha256(f"{organisation_id}\x00{reference}".encode()).hexdigest()


def verify_receipt(receipt: dict[str, Any]) -> bool:
    """Check a receipt (as ``ErasureReceipt.as_dict()`` gives it) against its own public key.
    Compare ``key_id`` with the deployment's published key to trust it."""
    document = {k: v for k, v in receipt.items() if k not in {"signature", "public_key_pem"}}
    try:
        public = load_pem_public_key(str(receipt["public_key_pem"]).encode())
    except (KeyError, ValueError):
        return False
    if not isinstance(public, Ed25519PublicKey):
        return False
    return verify_signature(public, document, str(receipt.get("signature", "")))
