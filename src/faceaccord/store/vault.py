"""The key vault: each subject's data key, wrapped by the master key, in a database of its own.

Templates and keys are kept apart on purpose: erasing a subject deletes its wrapped key here,
and from then on no copy of its templates (a backup of the main database, a replica) can be
decrypted. Back the vault up on its own, shorter schedule, or not at all: losing it makes every
template unreadable, so subjects would have to be enrolled again.
"""

from __future__ import annotations

import contextlib
import uuid
from datetime import datetime

from sqlalchemy import Engine, LargeBinary, MetaData, String, delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from faceaccord.errors import FaceAccordError
from faceaccord.protection.envelope import Sealed, new_data_key, unwrap_data_key, wrap_data_key
from faceaccord.protection.keys import MasterKey
from faceaccord.store.models import UtcDateTime

__all__ = ["KeyVault", "MissingKeyError"]


class MissingKeyError(FaceAccordError):
    code = "missing_key"


class _VaultBase(DeclarativeBase):
    metadata = MetaData()


class SubjectKeyRow(_VaultBase):
    __tablename__ = "subject_keys"

    subject_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    master_key_id: Mapped[str] = mapped_column(String(16))
    nonce: Mapped[bytes] = mapped_column(LargeBinary)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class VaultInfoRow(_VaultBase):
    """One row: the vault's own id, which the main database records on first use so that a
    deployment never runs against the wrong vault (where every subject would look erased)."""

    __tablename__ = "vault_info"

    name: Mapped[str] = mapped_column(String(60), primary_key=True)
    value: Mapped[str] = mapped_column(String(300))


class KeyVault:
    def __init__(self, engine: Engine, master: MasterKey) -> None:
        self.engine = engine
        self.master = master
        _VaultBase.metadata.create_all(engine)

    @property
    def vault_id(self) -> str:
        """This vault's id, created the first time it is asked for."""
        for _ in range(2):  # a second process may create it at the same moment
            with contextlib.suppress(IntegrityError), Session(self.engine) as session:
                with session.begin():
                    row = session.get(VaultInfoRow, "vault_id")
                    if row is None:
                        row = VaultInfoRow(name="vault_id", value=str(uuid.uuid4()))
                        session.add(row)
                    value = row.value
                return value
        raise MissingKeyError("the key vault's id could not be read")

    def existing(self, subject_ids: list[str]) -> set[str]:
        """Which of these subjects have a key."""
        found: set[str] = set()
        with Session(self.engine) as session:
            for start in range(0, len(subject_ids), 500):
                chunk = subject_ids[start : start + 500]
                found.update(
                    session.scalars(
                        select(SubjectKeyRow.subject_id).where(SubjectKeyRow.subject_id.in_(chunk))
                    )
                )
        return found

    def create_key(self, subject_id: str, *, now: datetime) -> bytes:
        """A new data key for a subject, stored (committed) before anything is encrypted with it."""
        data_key = new_data_key()
        sealed = wrap_data_key(self.master, data_key, subject_id=subject_id)
        with Session(self.engine) as session, session.begin():
            session.add(
                SubjectKeyRow(
                    subject_id=subject_id,
                    master_key_id=self.master.id,
                    nonce=sealed.nonce,
                    wrapped=sealed.ciphertext,
                    created_at=now,
                )
            )
        return data_key

    def data_key(self, subject_id: str) -> bytes:
        with Session(self.engine) as session:
            row = session.get(SubjectKeyRow, subject_id)
        if row is None:
            raise MissingKeyError(f"subject {subject_id} has no key: it was erased")
        return self._unwrap(row)

    def data_keys(self, subject_ids: list[str]) -> dict[str, bytes]:
        keys: dict[str, bytes] = {}
        with Session(self.engine) as session:
            for start in range(0, len(subject_ids), 500):
                chunk = subject_ids[start : start + 500]
                rows = session.scalars(
                    select(SubjectKeyRow).where(SubjectKeyRow.subject_id.in_(chunk))
                )
                keys.update((row.subject_id, self._unwrap(row)) for row in rows)
        return keys

    def destroy(self, subject_ids: list[str]) -> int:
        """Delete the keys; returns how many existed."""
        if not subject_ids:
            return 0
        with Session(self.engine) as session, session.begin():
            result = session.execute(
                delete(SubjectKeyRow).where(SubjectKeyRow.subject_id.in_(subject_ids))
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def subject_ids(self, *, created_before: datetime | None = None) -> set[str]:
        query = select(SubjectKeyRow.subject_id)
        if created_before is not None:
            query = query.where(SubjectKeyRow.created_at < created_before)
        with Session(self.engine) as session:
            return set(session.scalars(query))

    def _unwrap(self, row: SubjectKeyRow) -> bytes:
        if row.master_key_id != self.master.id:
            raise MissingKeyError(
                f"subject {row.subject_id}'s key was wrapped by master key {row.master_key_id}, "
                f"not the configured {self.master.id}"
            )
        return unwrap_data_key(
            self.master, Sealed(row.nonce, row.wrapped), subject_id=row.subject_id
        )
