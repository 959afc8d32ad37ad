"""One deployment of faceaccord: the database, the key vault, the face engine, the policy, the
template indexes and the audit log, wired together. Only ``Platform.open`` builds real
collaborators; the use cases (``galleries``, ``enrolment``, ``identification``, ``erasure``)
receive a ``Platform``."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType

import numpy as np
from sqlalchemy import Engine as Database
from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
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
from faceaccord.matching import make_index
from faceaccord.matching.index import TemplateIndex
from faceaccord.matching.normalisation import (
    NO_NORMALISATION,
    NormalisedIndex,
    NormaliserError,
    ScoreNormaliser,
    load_normaliser,
)
from faceaccord.platform.organisation_rows import save_organisation
from faceaccord.protection.envelope import (
    DecryptionError,
    MasterKeySealer,
    Sealed,
    open_template,
)
from faceaccord.protection.keys import SigningKey, load_master_key, load_signing_key
from faceaccord.settings import Settings
from faceaccord.store.database import create_database_engine, create_vault_engine, upgrade
from faceaccord.store.models import DeploymentFactRow, GalleryRow, SubjectRow, TemplateRow
from faceaccord.store.vault import KeyVault

__all__ = [
    "GalleryChange",
    "GalleryNotFoundError",
    "Platform",
    "WrongKeyVaultError",
    "local_organisation",
]

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
    _normaliser: list[ScoreNormaliser] = field(default_factory=list)
    """The loaded normaliser (at most one), shared with every ``acting_for`` copy, like the
    indexes it scores: one calibration per process."""
    _indexes: dict[tuple[str, str], _Indexed] = field(default_factory=dict)
    _indexes_lock: threading.RLock = field(default_factory=threading.RLock)
    _gallery_locks: dict[str, threading.RLock] = field(default_factory=dict)

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
        vault_db = create_vault_engine(settings.resolved_keyvault_url())
        try:
            upgrade(db)
            signing_key = load_signing_key(settings)
            vault = KeyVault(vault_db, load_master_key(settings))
            _check_vault_belongs(db, vault, settings)
        except BaseException:
            db.dispose()
            vault_db.dispose()
            raise
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
    def normaliser(self) -> ScoreNormaliser:
        """The score normaliser in force (``FACEACCORD_FAIRNESS__SCORE_NORMALISER``), checked
        against the engine's model; plain distances when none is configured."""
        with self._indexes_lock:
            if not self._normaliser:
                path = self.settings.fairness.score_normaliser
                if path is None:
                    self._normaliser.append(NO_NORMALISATION)
                else:
                    card = self.engine.card
                    self._normaliser.append(
                        load_normaliser(
                            path,
                            model_id=card.id,
                            model_sha256=card.sha256,
                            dimension=card.embedding_dim,
                            sealer=MasterKeySealer(load_master_key(self.settings)),
                        )
                    )
            return self._normaliser[0]

    @property
    def normaliser_label(self) -> str:
        """The normaliser's id for an audit entry, without loading the model to learn it (a
        denial loads none)."""
        path = self.settings.fairness.score_normaliser
        if path is None:
            return "none"
        if not self.engine_loaded:
            return f"configured: {path.name}"
        try:
            return self.normaliser.id
        except NormaliserError as error:
            return f"unusable: {path.name} ({error.code})"

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
                score_normaliser=self.normaliser.describe(),
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

    def index_for(self, gallery_id: str) -> TemplateIndex:
        """The gallery's index for the engine's model: built from the database on first use,
        kept in step by this process's enrolments and erasures, and rebuilt when the gallery's
        generation shows that another process changed it."""
        key = (gallery_id, self.engine.model_id)
        with self._gallery_lock(gallery_id):
            with Session(self.db) as session:
                generation = session.scalar(
                    select(GalleryRow.generation).where(GalleryRow.id == gallery_id)
                )
            with self._indexes_lock:
                indexed = self._indexes.get(key)
            if indexed is None or indexed.generation != generation:
                indexed = self._build_index(gallery_id)
                with self._indexes_lock:
                    self._indexes[key] = indexed
            return indexed.index

    @contextmanager
    def changing_galleries(self, gallery_ids: Iterable[str]) -> Iterator[GalleryChange]:
        """A transaction that changes the templates of some galleries. It first bumps each
        gallery's generation (which takes the database's write lock on the gallery, so a
        concurrent takedown and enrolment are ordered), and the change's ``then`` callbacks are
        applied to this process's indexes once the transaction has committed, while no other
        thread of this process can rebuild or search-load those indexes."""
        ids = sorted(set(gallery_ids))
        with ExitStack() as locks:
            for gallery_id in ids:
                locks.enter_context(self._gallery_lock(gallery_id))
            with self.transaction() as session:
                for gallery_id in ids:
                    session.execute(
                        update(GalleryRow)
                        .where(GalleryRow.id == gallery_id)
                        .values(generation=GalleryRow.generation + 1)
                    )
                found = session.execute(
                    select(GalleryRow.id, GalleryRow.generation).where(GalleryRow.id.in_(ids))
                )
                generations = {row.id: row.generation for row in found}
                change = GalleryChange(session=session, generations=generations)
                yield change
            self._apply(change)

    def acting_for(self, organisation: Organisation) -> Platform:
        """The same deployment (database, vault, engine, indexes, audit log) acting for another
        organisation: how the service serves its tenants."""
        return replace(self, organisation=organisation)

    def forget_indexes(self, gallery_id: str) -> None:
        """Free the memory of a withdrawn gallery's indexes."""
        with self._indexes_lock:
            for key in [k for k in self._indexes if k[0] == gallery_id]:
                del self._indexes[key]

    def _gallery_lock(self, gallery_id: str) -> threading.RLock:
        with self._indexes_lock:
            return self._gallery_locks.setdefault(gallery_id, threading.RLock())

    def _apply(self, change: GalleryChange) -> None:
        """After the commit: an index that was exactly one generation behind gets the change;
        any other (another process changed the gallery meanwhile) is dropped, to be rebuilt."""
        with self._indexes_lock:
            for key, indexed in list(self._indexes.items()):
                generation = change.generations.get(key[0])
                if generation is None:
                    continue
                if indexed.generation == generation - 1:
                    for callback in change.callbacks:
                        callback(indexed.index)
                    self._indexes[key] = _Indexed(indexed.index, generation)
                else:
                    del self._indexes[key]

    def _build_index(self, gallery_id: str) -> _Indexed:
        card = self.engine.card
        index: TemplateIndex = make_index(
            self.settings.index.kind, model_id=card.id, dimension=card.embedding_dim
        )
        if self.normaliser.method != "none":
            index = NormalisedIndex(index, self.normaliser)
        with Session(self.db) as session, session.begin():
            # The generation is read first: rows committed after it make the index newer than
            # its label, which only costs one more rebuild, never a missed change.
            generation = int(
                session.scalar(select(GalleryRow.generation).where(GalleryRow.id == gallery_id))
                or 0
            )
            rows = session.execute(
                select(
                    TemplateRow.id,
                    TemplateRow.subject_id,
                    TemplateRow.nonce,
                    TemplateRow.ciphertext,
                )
                .join(SubjectRow)
                .where(
                    SubjectRow.gallery_id == gallery_id,
                    SubjectRow.erasing_at.is_(None),
                    TemplateRow.model_id == card.id,
                )
                .order_by(TemplateRow.id)
            ).all()
        keys = self.vault.data_keys(sorted({row.subject_id for row in rows}))
        template_ids, subject_ids, vectors = [], [], []
        for template_id, subject_id, nonce, ciphertext in rows:
            data_key = keys.get(subject_id)
            if data_key is None:
                continue  # its key is gone: retention reports it (see erasure.run_retention)
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
        return _Indexed(index, generation)

    def _save_organisation(self) -> None:
        with self.transaction() as session:
            save_organisation(
                session,
                self.organisation,
                now=self.clock(),
                retention_days=self.settings.organisation.retention_days,
            )


@dataclass(frozen=True, slots=True)
class _Indexed:
    index: TemplateIndex
    generation: int
    """The gallery's generation the index reflects."""


@dataclass
class GalleryChange:
    """The open transaction of ``Platform.changing_galleries`` and what to do to the indexes."""

    session: Session
    generations: dict[str, int]
    callbacks: list[Callable[[TemplateIndex], None]] = field(default_factory=list)

    def then(self, callback: Callable[[TemplateIndex], None]) -> None:
        """Apply ``callback`` to each of the galleries' indexes in this process after commit."""
        self.callbacks.append(callback)


VAULT_ID = "vault_id"


class WrongKeyVaultError(ConfigurationError):
    code = "wrong_key_vault"


def _check_vault_belongs(db: Database, vault: KeyVault, settings: Settings) -> None:
    """Refuse to run a database against a key vault it was not used with: every subject would
    look erased, and retention would delete them. The first opening records the vault's id."""
    try:
        _record_or_compare_vault(db, vault, settings)
    except IntegrityError:  # another process recorded it at the same moment: compare with it
        _record_or_compare_vault(db, vault, settings)


def _record_or_compare_vault(db: Database, vault: KeyVault, settings: Settings) -> None:
    vault_id = vault.vault_id
    with Session(db) as session, session.begin():
        recorded = session.get(DeploymentFactRow, VAULT_ID)
        if recorded is not None:
            if recorded.value != vault_id:
                raise WrongKeyVaultError(
                    f"the key vault at {settings.resolved_keyvault_url()} (id {vault_id}) is not "
                    f"the one this database was used with (id {recorded.value}); refusing to "
                    "start, because every enrolled subject would look erased. Point "
                    "FACEACCORD_KEYVAULT_URL at the deployment's own vault."
                )
            return
        # A database from before vault ids: the vault must hold keys of its subjects.
        sample = list(
            session.scalars(select(SubjectRow.id).where(SubjectRow.erasing_at.is_(None)).limit(200))
        )
        if sample and not vault.existing(sample):
            subjects = int(session.scalar(select(func.count(SubjectRow.id))) or 0)
            raise WrongKeyVaultError(
                f"the key vault at {settings.resolved_keyvault_url()} holds none of the keys of "
                f"the database's {subjects} subjects; refusing to start, because every one "
                "would look erased. Point FACEACCORD_KEYVAULT_URL at the deployment's own vault."
            )
        session.add(DeploymentFactRow(name=VAULT_ID, value=vault_id))


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
