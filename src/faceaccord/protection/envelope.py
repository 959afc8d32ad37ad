"""Envelope encryption of templates with AES-256-GCM.

Each subject has a random 256-bit data key. Templates are encrypted with it; the data key is
encrypted ("wrapped") with the master key. Associated data binds each ciphertext to where it
belongs (a template's id and model, a data key's subject), so a ciphertext moved to another
row does not decrypt. Destroying a subject's wrapped data key makes every copy of its
templates, in any backup, unreadable.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from numpy.typing import NDArray

from faceaccord.errors import FaceAccordError
from faceaccord.protection.keys import MasterKey

__all__ = [
    "DecryptionError",
    "MasterKeySealer",
    "Sealed",
    "new_data_key",
    "open_template",
    "seal_template",
    "unwrap_data_key",
    "wrap_data_key",
]

NONCE_BYTES = 12


class DecryptionError(FaceAccordError):
    code = "decryption_failed"


@dataclass(frozen=True, slots=True)
class Sealed:
    nonce: bytes
    ciphertext: bytes


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def wrap_data_key(master: MasterKey, data_key: bytes, *, subject_id: str) -> Sealed:
    return _seal(master.material, data_key, b"faceaccord/data-key/" + subject_id.encode())


def unwrap_data_key(master: MasterKey, sealed: Sealed, *, subject_id: str) -> bytes:
    return _open(master.material, sealed, b"faceaccord/data-key/" + subject_id.encode(), "data key")


def seal_template(
    data_key: bytes, embedding: NDArray[np.float32], *, template_id: str, model_id: str
) -> Sealed:
    plain = np.ascontiguousarray(embedding, dtype="<f4").tobytes()
    return _seal(data_key, plain, _template_aad(template_id, model_id))


def open_template(
    data_key: bytes, sealed: Sealed, *, template_id: str, model_id: str
) -> NDArray[np.float32]:
    plain = _open(data_key, sealed, _template_aad(template_id, model_id), "template")
    return np.frombuffer(plain, dtype="<f4").astype(np.float32)


@dataclass(frozen=True, slots=True, repr=False)
class MasterKeySealer:
    """Seals data at rest under the deployment's master key (AES-256-GCM, a fresh nonce each
    time, the caller's associated data): what a score-normaliser calibration's arrays use."""

    master: MasterKey

    @property
    def key_id(self) -> str:
        return self.master.id

    def seal(self, plain: bytes, *, aad: bytes) -> tuple[bytes, bytes]:
        sealed = _seal(self.master.material, plain, aad)
        return sealed.nonce, sealed.ciphertext

    def open(self, nonce: bytes, ciphertext: bytes, *, aad: bytes) -> bytes:
        return _open(self.master.material, Sealed(nonce, ciphertext), aad, "calibration")


def _template_aad(template_id: str, model_id: str) -> bytes:
    return f"faceaccord/template/{template_id}/{model_id}".encode()


def _seal(key: bytes, plain: bytes, aad: bytes) -> Sealed:
    nonce = os.urandom(NONCE_BYTES)
    return Sealed(nonce=nonce, ciphertext=AESGCM(key).encrypt(nonce, plain, aad))


def _open(key: bytes, sealed: Sealed, aad: bytes, what: str) -> bytes:
    try:
        return AESGCM(key).decrypt(sealed.nonce, sealed.ciphertext, aad)
    except InvalidTag:
        raise DecryptionError(
            f"the {what} does not decrypt: wrong key, or the data was altered or moved"
        ) from None
