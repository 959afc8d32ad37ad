"""One deployment of faceaccord: the database, the key vault, the face engine, the policy, the
template indexes and the audit log, wired together. Only ``Platform.open`` builds real
collaborators; the use cases (``galleries``, ``enrolment``, ``identification``, ``erasure``)
receive a ``Platform``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType

import numpy as np
from sqlalchemy import Engine as Database
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from faceaccord.audit.log import AuditEvent, AuditLog
from faceaccord.audit.reports import AccountabilityReport, build_report
from faceaccord.biometrics.pipeline import Engine
from faceaccord.errors import ConfigurationError, InputError
from faceaccord.governance.decisions import Decision
from faceaccord.governance.engine import PolicyEngine
from faceaccord.governance.entities import (
    Organisation,
    OrganisationStatus,
    ScaleTier,
)
from faceaccord.governance.vocabulary import Jurisdiction, Purpose, Sector
from faceaccord.matching.exact import ExactIndex
from faceaccord.platform.organisation_rows import save_organisation
from faceaccord.protection.envelope import DecryptionError, Sealed, open_template
from faceaccord.protection.keys import SigningKey, load_master_key, load_signing_key
from faceaccord.settings import Settings
from faceaccord.store.database import create_database_engine, upgrade
from faceaccord.store.models import GalleryRow, SubjectRow, TemplateRow
from faceaccord.store.vault import KeyVault

__all__ = ["GalleryNotFoundError", "Platform", "local_organisation"]

Clock = Callable[[], datetime]


class GalleryNotFoundError(InputError):
    code = "gallery_not_found"


@dataclass
class Platform:
    settings: Settings
    db: Database
    vault: KeyVault
    signing_key: SigningKey
    policy: PolicyEngine
    audit: AuditLog
    organisation: Organisation
    clock: Clock
    engine_factory: Callable[[], Engine]
    _engine: Engine | None = None
    _indexes: dict[tuple[str, str], ExactIndex] = field(default_factory=dict)
    _indexes_lock: threading.RLock = field(default_factory=threading.RLock)

    @classmethod
    def open(
        cls,
        settings: Settings,
        *,
        engine: Engine | None = None,
        clock: Clock | None = None,
    ) -> Platform:
        """Open (creating and migrating if needed) the deployment under ``settings.home``."""
        settings.home.mkdir(parents=True, exist_ok=True)
        clock = clock or (lambda: datetime.now(UTC))
        db = create_database_engine(settings.resolved_database_url())
        upgrade(db)
        signing_key = load_signing_key(settings)
        vault = KeyVault(
            create_database_engine(settings.resolved_keyvault_url()), load_master_key(settings)
        )
        policy = PolicyEngine.from_settings(settings.policy)
        organisation = local_organisation(settings)
        platform = cls(
            settings=settings,
            db=db,
            vault=vault,
            signing_key=signing_key,
            policy=policy,
            audit=AuditLog(
                signing_key=signing_key,
                clock=clock,
                checkpoint_every=settings.audit_checkpoint_every,
            ),
            organisation=organisation,
            clock=clock,
            engine_factory=lambda: Engine.load(settings),
            _engine=engine,
        )
        platform._save_organisation()
        return platform

    @property
    def engine(self) -> Engine:
        """The face engine, loaded on first use (listing galleries needs no model)."""
        if self._engine is None:
            self._engine = self.engine_factory()
        return self._engine

    @property
    def engine_loaded(self) -> bool:
        return self._engine is not None

    def accountability_report(self) -> AccountabilityReport:
        """The report for the organisation this platform acts for."""
        with Session(self.db) as session:
            return build_report(
                session,
                organisation_id=self.organisation.id,
                card=self.engine.card,
                operating_point=self.settings.operating_point,
                policy=self.policy,
                fairness_audit=self.settings.policy.fairness_audit,
                now=self.clock(),
            )

    def close(self) -> None:
        self.db.dispose()
        self.vault.engine.dispose()

    def __enter__(self) -> Platform:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        with Session(self.db, expire_on_commit=False) as session, session.begin():
            yield session

    def record(self, session: Session, event: AuditEvent) -> None:
        self.audit.append(session, event)

    def record_decision(
        self,
        *,
        actor: str,
        operation: str,
        purpose: Purpose | None,
        decision: Decision,
        gallery_id: str | None = None,
        outcome: str,
        **details: object,
    ) -> None:
        """Audit a decision on its own (a denial, or a request that failed after the policy)."""
        with self.transaction() as session:
            self.record(
                session,
                AuditEvent(
                    actor=actor,
                    organisation_id=self.organisation.id,
                    operation=operation,
                    purpose=str(purpose) if purpose else None,
                    decision=decision.outcome,
                    rule_ids=tuple(decision.rule_ids()),
                    gallery_id=gallery_id,
                    details={"outcome": outcome, **details},
                ),
            )

    def gallery(
        self, session: Session, name: str, *, include_withdrawn: bool = False
    ) -> GalleryRow:
        row = session.scalar(
            select(GalleryRow).where(
                GalleryRow.organisation_id == self.organisation.id, GalleryRow.name == name
            )
        )
        if row is None or (row.withdrawn_at is not None and not include_withdrawn):
            state = "was withdrawn" if row is not None else "does not exist"
            raise GalleryNotFoundError(f"gallery {name!r} {state}")
        return row

    def gallery_id(self, name: str) -> str:
        with self.transaction() as session:
            return self.gallery(session, name).id

    def templates_in_use(self, session: Session) -> int:
        return int(
            session.scalar(
                select(func.count(TemplateRow.id))
                .join(SubjectRow)
                .join(GalleryRow)
                .where(GalleryRow.organisation_id == self.organisation.id)
            )
            or 0
        )

    def index_for(self, gallery_id: str) -> ExactIndex:
        """The gallery's index for the engine's model, rebuilt from the database on first use
        and kept in step by every enrolment and erasure."""
        key = (gallery_id, self.engine.model_id)
        with self._indexes_lock:
            index = self._indexes.get(key)
            if index is None:
                index = self._build_index(gallery_id)
                self._indexes[key] = index
            return index

    def acting_for(self, organisation: Organisation) -> Platform:
        """The same deployment (database, vault, engine, indexes, audit log) acting for another
        organisation: how the service serves its tenants."""
        return replace(self, organisation=organisation)

    def drop_subjects_from_indexes(self, gallery_id: str, subject_ids: list[str]) -> int:
        with self._indexes_lock:
            return sum(
                index.remove_subjects(subject_ids)
                for (gid, _), index in self._indexes.items()
                if gid == gallery_id
            )

    def drop_gallery_indexes(self, gallery_id: str) -> None:
        with self._indexes_lock:
            for key in [k for k in self._indexes if k[0] == gallery_id]:
                del self._indexes[key]

    def _build_index(self, gallery_id: str) -> ExactIndex:
        card = self.engine.card
        index = ExactIndex(model_id=card.id, dimension=card.embedding_dim)
        with Session(self.db) as session:
            rows = session.execute(
                select(
                    TemplateRow.id,
                    TemplateRow.subject_id,
                    TemplateRow.nonce,
                    TemplateRow.ciphertext,
                )
                .join(SubjectRow)
                .where(SubjectRow.gallery_id == gallery_id, TemplateRow.model_id == card.id)
                .order_by(TemplateRow.id)
            ).all()
        keys = self.vault.data_keys(sorted({row.subject_id for row in rows}))
        template_ids, subject_ids, vectors = [], [], []
        for template_id, subject_id, nonce, ciphertext in rows:
            data_key = keys.get(subject_id)
            if data_key is None:
                continue  # erased: its key is gone (the erasure's row deletion is completed later)
            try:
                vector = open_template(
                    data_key, Sealed(nonce, ciphertext), template_id=template_id, model_id=card.id
                )
            except DecryptionError as exc:
                raise ConfigurationError(f"template {template_id} cannot be read: {exc}") from None
            template_ids.append(template_id)
            subject_ids.append(subject_id)
            vectors.append(vector)
        if vectors:
            index.add(template_ids=template_ids, subject_ids=subject_ids, vectors=np.stack(vectors))
        return index

    def _save_organisation(self) -> None:
        with self.transaction() as session:
            save_organisation(
                session,
                self.organisation,
                now=self.clock(),
                retention_days=self.settings.organisation.retention_days,
            )


def local_organisation(settings: Settings) -> Organisation:
    """The organisation this deployment acts for, from settings (an operator running faceaccord
    for itself is approved for the purposes it configures)."""
    config = settings.organisation
    try:
        return Organisation(
            id=config.id,
            name=config.name,
            sector=Sector(config.sector),
            jurisdiction=Jurisdiction.parse(config.jurisdiction),
            status=OrganisationStatus.APPROVED,
            approved_purposes=frozenset(Purpose(p) for p in config.approved_purposes),
            scale_tier=ScaleTier.parse(config.scale_tier),
            retention_policy=config.retention_policy,
            accountability_report=config.accountability_report,
        )
    except ValueError as exc:
        raise ConfigurationError(f"FACEACCORD_ORGANISATION settings: {exc}") from None
