"""Loading the master key and the signing key. In development a missing key is generated once
into a file under FACEACCORD_HOME (mode 0600); in production a missing key stops start-up.
There is never a built-in default key."""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from faceaccord.errors import ConfigurationError
from faceaccord.settings import Environment, Settings

__all__ = ["MasterKey", "SigningKey", "load_master_key", "load_signing_key"]

MASTER_KEY_BYTES = 32


@dataclass(frozen=True, slots=True, repr=False)
class MasterKey:
    material: bytes

    @property
    def id(self) -> str:
        """A public fingerprint: which master key wrapped a data key."""
        return hashlib.sha256(b"faceaccord-master-key" + self.material).hexdigest()[:16]


@dataclass(frozen=True, slots=True, repr=False)
class SigningKey:
    private: Ed25519PrivateKey

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()

    @property
    def id(self) -> str:
        raw = self.public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return hashlib.sha256(raw).hexdigest()[:16]

    def public_pem(self) -> str:
        return self.public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")


def load_master_key(settings: Settings) -> MasterKey:
    configured = settings.keys.master_key
    if configured is not None:
        return MasterKey(
            _decode_master(configured.get_secret_value(), "FACEACCORD_KEYS__MASTER_KEY")
        )
    path = settings.keys.master_key_file or settings.home / "master.key"
    if path.is_file():
        return MasterKey(_decode_master(path.read_text("ascii").strip(), str(path)))
    if settings.keys.master_key_file is not None or settings.environment is Environment.PRODUCTION:
        raise ConfigurationError(
            f"no master key: set FACEACCORD_KEYS__MASTER_KEY (base64 of 32 random bytes) or "
            f"FACEACCORD_KEYS__MASTER_KEY_FILE; {path} does not exist"
        )
    material = os.urandom(MASTER_KEY_BYTES)
    _write_secret(path, base64.b64encode(material) + b"\n")
    return MasterKey(material)


def load_signing_key(settings: Settings) -> SigningKey:
    path = settings.keys.signing_key_file or settings.home / "signing.key"
    if path.is_file():
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except ValueError as exc:
            raise ConfigurationError(f"{path} is not a PEM private key: {exc}") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise ConfigurationError(f"{path} holds a {type(key).__name__}, not an Ed25519 key")
        return SigningKey(key)
    if settings.keys.signing_key_file is not None or settings.environment is Environment.PRODUCTION:
        raise ConfigurationError(
            f"no signing key: set FACEACCORD_KEYS__SIGNING_KEY_FILE to an Ed25519 PEM key; "
            f"{path} does not exist"
        )
    private = Ed25519PrivateKey.generate()
    _write_secret(
        path,
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    return SigningKey(private)


def _decode_master(text: str, where: str) -> bytes:
    try:
        material = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigurationError(f"the master key in {where} is not base64") from None
    if len(material) != MASTER_KEY_BYTES:
        raise ConfigurationError(
            f"the master key in {where} has {len(material)} bytes; it needs {MASTER_KEY_BYTES}"
        )
    return material


def _write_secret(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
        handle.flush()
        os.fsync(handle.fileno())
