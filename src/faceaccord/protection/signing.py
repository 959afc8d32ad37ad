"""Ed25519 signatures over canonical JSON (sorted keys, no spaces, UTF-8)."""

from __future__ import annotations

import base64
import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from faceaccord.protection.keys import SigningKey

__all__ = ["canonical_json", "sign", "verify_signature"]


def canonical_json(document: Any) -> bytes:
    return json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def sign(key: SigningKey, document: Any) -> str:
    return base64.b64encode(key.private.sign(canonical_json(document))).decode("ascii")


def verify_signature(public: Ed25519PublicKey, document: Any, signature: str) -> bool:
    try:
        public.verify(base64.b64decode(signature), canonical_json(document))
    except (InvalidSignature, ValueError):
        return False
    return True
