"""The one settings object. Read from the environment (prefix ``FACEACCORD_``, nested groups
separated by ``__``, e.g. ``FACEACCORD_IMAGES__MAX_BYTES=5000000``) only when ``Settings()`` is
built, which happens in ``main()`` / ``create_app()``, never at import time."""

from __future__ import annotations

import getpass
import os
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class DetectorKind(StrEnum):
    """Which face detector to use."""

    HOG = "hog"
    """dlib's HOG + linear SVM frontal face detector: fast on a CPU, frontal faces."""
    MMOD = "mmod"
    """dlib's MMOD CNN detector: finds more faces at more poses, about 10x slower on a CPU."""


class EmbeddingRuntime(StrEnum):
    """What runs the embedding network."""

    ONNX = "onnx"
    """ONNX Runtime, on dlib's ResNet converted once to ONNX (or on the model of ``model_card``)."""
    DLIB = "dlib"
    """dlib itself: the same weights, about ten times slower (the prebuilt dlib has no BLAS)."""


class EmbeddingSettings(BaseModel):
    runtime: EmbeddingRuntime = EmbeddingRuntime.ONNX
    threads: int = Field(default=0, ge=0)
    """ONNX Runtime's threads per embedding call; 0 means one per CPU core."""
    model_card: Path | None = None
    """The card (TOML with an ``[onnx]`` section) of an ONNX embedding model of your own, used
    instead of dlib's ResNet. Its templates carry its own model id and are never compared with
    another model's."""


class IndexSettings(BaseModel):
    kind: Literal["exact", "hnsw"] = "exact"
    """exact: a blocked scan of every template, exact answers (milliseconds up to about a
    million templates); hnsw: a FAISS HNSW graph for millions, approximate recall with exact
    distances (see benchmarks/bench_search.py for both)."""


class ImageLimits(BaseModel):
    """What intake accepts. Pixel limits are checked from the header, before decoding."""

    max_bytes: int = Field(default=25 * 1024 * 1024, gt=0)
    max_pixels: int = Field(default=50_000_000, gt=0)
    max_side: int = Field(default=20_000, gt=0)
    min_side: int = Field(default=16, gt=0)
    max_aspect_ratio: float = Field(default=12.0, ge=1.0)

    @model_validator(mode="after")
    def _consistent(self) -> ImageLimits:
        if self.min_side > self.max_side:
            raise ValueError(f"min_side ({self.min_side}) exceeds max_side ({self.max_side})")
        return self


class DetectionSettings(BaseModel):
    kind: DetectorKind = DetectorKind.HOG
    upsample: int = Field(default=1, ge=0, le=3)
    """Times the working image is doubled before detection (finds faces half as large each)."""
    max_side: int = Field(default=1024, ge=64)
    """Detection runs on a copy scaled so its longer side is at most this; landmarks, chips and
    embeddings always use the full-resolution image."""


class QualityGateSettings(BaseModel):
    """Enrolment quality gate. See ``biometrics/quality.py`` for how each figure is measured.

    The defaults pass every usable photo of faces-dev and a quarter of faces-demographic (114
    photos: smallest face 108 px, least sharp 93, brightness 0.23 to 0.74, |yaw| <= 21 degrees,
    |roll| <= 16) and refuse a 250-px face under a Gaussian blur of radius 4 (sharpness 20)."""

    min_face_px: int = Field(default=60, ge=1)
    """Smallest accepted face box side, in source pixels."""
    min_sharpness: float = Field(default=40.0, ge=0)
    max_yaw_deg: float = Field(default=35.0, gt=0)
    max_roll_deg: float = Field(default=30.0, gt=0)
    max_pitch_deg: float = Field(default=35.0, gt=0)
    min_brightness: float = Field(default=0.18, ge=0, le=1)
    max_brightness: float = Field(default=0.88, ge=0, le=1)
    min_detection_score: float = Field(default=0.3)
    max_faces: int = Field(default=1, ge=1)
    allow_cut_off: bool = False


class PolicySettings(BaseModel):
    """What the operator puts in force (see ``governance.entities.DeploymentSettings``)."""

    packs: list[str] | None = None
    """Pack ids in force; unset means every shipped pack (each applies only in its jurisdiction)."""
    pack_dirs: list[Path] = []
    """Folders of additional packs of the operator's own."""
    national_law: str | None = None
    """Attestation, by reference, that a qualifying national law on face recognition is in force."""
    fairness_audit: str | None = None
    log_retention_days: int | None = Field(default=None, ge=0)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    PRODUCTION = "production"


class KeySettings(BaseModel):
    """Template protection and signing. In development, missing keys are generated once into
    files under ``FACEACCORD_HOME`` (mode 0600); in production they must be configured, and
    start-up refuses otherwise: there is never a default key."""

    master_key: SecretStr | None = None
    """Base64 of 32 random bytes: wraps every subject's data key (AES-256-GCM)."""
    master_key_file: Path | None = None
    signing_key_file: Path | None = None
    """PEM (PKCS#8) Ed25519 private key: signs audit checkpoints and erasure receipts."""


class OrganisationSettings(BaseModel):
    """The organisation this local deployment acts for (the command line acts as it)."""

    id: str = "local"
    name: str = "local organisation"
    sector: str = "commercial"
    jurisdiction: str = "US-NY"
    approved_purposes: list[str] = [
        "identity_verification",
        "access_control",
        "duplicate_account_detection",
        "media_archive_search",
        "research_evaluation",
    ]
    scale_tier: str = "medium"
    retention_policy: str | None = None
    accountability_report: str | None = None
    retention_days: int | None = Field(default=None, gt=0)
    """The organisation's own retention: templates go this many days after the subject's last
    interaction (packs may require sooner)."""


class ServiceSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(default=60 * 1024 * 1024, gt=0)
    """The largest request accepted (several images of at most ``images.max_bytes`` each)."""
    rate_limit: str = "600/minute"
    """Per API key (per client address for unauthenticated calls), in slowapi's notation."""
    graceful_shutdown_seconds: int = Field(default=30, ge=0)


class FairnessSettings(BaseModel):
    gate: bool = False
    """Refuse identification unless the model and threshold in use have a recorded fairness
    audit whose FMR and FNMR ratios are within the bounds below."""
    max_fmr_ratio: float = Field(default=10.0, ge=1.0)
    max_fnmr_ratio: float = Field(default=10.0, ge=1.0)
    attribute: str | None = None
    """Which audited attribute the gate reads (default: every attribute must pass)."""
    datasets_dir: Path | None = None
    """Where audit datasets started over HTTP must live (none: audits over HTTP are off)."""
    score_normaliser: Path | None = None
    """A calibration file made by ``faceaccord fairness calibrate`` (label-free score
    normalisation, ``fsn`` or ``cohort``): verification and identification then decide on
    normalised distances. None: plain distances."""
    require_mitigation: Literal["fsn", "cohort", "any"] | None = None
    """With the gate on: refuse identification unless this score normalisation is in force
    (``any``: either)."""


def default_home() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "faceaccord"


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "faceaccord"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FACEACCORD_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    environment: Environment = Environment.DEVELOPMENT
    home: Path = Field(default_factory=default_home)
    """Where all data lives (FACEACCORD_HOME): the database, the key vault, generated keys."""
    database_url: str | None = None
    """SQLAlchemy URL; default ``sqlite:///<home>/faceaccord.db``. PostgreSQL:
    ``postgresql+psycopg://user:password@host/db``."""
    keyvault_url: str | None = None
    """Where subjects' wrapped data keys live, apart from the templates so that destroying a key
    makes every copy of the templates unreadable; default ``sqlite:///<home>/keyvault.db``."""
    keys: KeySettings = KeySettings()
    organisation: OrganisationSettings = OrganisationSettings()
    service: ServiceSettings = ServiceSettings()
    fairness: FairnessSettings = FairnessSettings()
    actor: str | None = None
    """Who is acting, as recorded in the audit log (default: the operating-system user)."""
    audit_checkpoint_every: int = Field(default=100, ge=1)
    """Sign a checkpoint of the audit chain after this many entries."""
    cache_dir: Path = Field(default_factory=default_cache_dir)
    images: ImageLimits = ImageLimits()
    detection: DetectionSettings = DetectionSettings()
    quality: QualityGateSettings = QualityGateSettings()
    policy: PolicySettings = PolicySettings()
    operating_point: str = "default"
    """Name of the verification operating point in the embedding model's card."""
    embedding: EmbeddingSettings = EmbeddingSettings()
    index: IndexSettings = IndexSettings()
    embed_batch_size: int = Field(default=32, ge=1, le=1024)
    workers: int = Field(default=0, ge=0)
    """Processes for folder jobs; 0 means one per CPU core."""

    def worker_count(self) -> int:
        return self.workers or (os.cpu_count() or 1)

    def model_cache_dir(self) -> Path:
        """Where converted models are cached (named by the hash of their source)."""
        return self.cache_dir / "models"

    def resolved_actor(self) -> str:
        if self.actor:
            return self.actor
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.home / 'faceaccord.db'}"

    def resolved_keyvault_url(self) -> str:
        return self.keyvault_url or f"sqlite:///{self.home / 'keyvault.db'}"
