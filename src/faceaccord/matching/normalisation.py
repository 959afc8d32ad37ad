"""Score normalisation: label-free mitigation of demographic differentials in comparison scores.

Every normaliser here gives each template an *offset* (a distance), and a comparison's
normalised distance is ``distance + (offset_a + offset_b) / 2``; decisions compare it with the
operating point's threshold as before. A template in a crowded region of face space (where
strangers look alike to the model and false matches pile up) gets a positive offset, so its
comparisons must be closer to match; one in a sparse region gets a negative offset.

- ``none``: every offset is 0 (plain distances).
- ``fsn``: fair score normalisation (Terhörst, Kolf, Damer, Kirchbuchner and Kuijper, "Post-
  comparison mitigation of demographic bias in face recognition using fair score
  normalization", Pattern Recognition Letters 140, 2020). k-means clusters of an unlabelled
  calibration set; each cluster's threshold at the target false-match rate over the impostor
  pairs that involve it; a template's offset is ``global threshold - its cluster's threshold``.
- ``cohort``: impostor-cohort normalisation. A template's offset is
  ``beta * (mean cohort distance - its own)``, where "its own" is the mean distance from the
  template to its ``m`` nearest templates of the calibration cohort: a per-template version of
  the same idea, which needs the cohort's templates at run time.

Neither reads a demographic label: calibration sees embeddings and which images show the same
person (to tell impostor pairs from genuine ones), nothing else. Offsets are re-centred at
calibration so that the global threshold at a populated false-match rate (1e-2) is unchanged on
the calibration set: the model card's operating points keep their meaning.

Calibrations are JSON files (``faceaccord.score-normaliser/1``) holding the model they were made
for, a hash of the calibration data, the method, its parameters (k), how they were chosen, the
date, and the arrays; the normaliser's id is ``<method>:<first 12 hex of the file's SHA-256>``.
A cohort calibration holds the calibration set's *templates* (without names), and an fsn
centroid may rest on few people: both are biometric data. Files are written readable by their
owner only, and ``faceaccord fairness calibrate`` seals the arrays under the deployment's master
key (AES-256-GCM; a ``Sealer``), so only that deployment can load them.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from faceaccord.errors import ConfigurationError, FaceAccordError
from faceaccord.matching.index import Candidate, TemplateIndex

__all__ = [
    "NO_NORMALISATION",
    "SCHEMA",
    "ClusterNormaliser",
    "CohortNormaliser",
    "NoNormalisation",
    "NormalisedIndex",
    "NormaliserError",
    "Provenance",
    "ScoreNormaliser",
    "Sealer",
    "load_normaliser",
    "normalised_distances",
    "pairwise_distances",
    "save_normaliser",
]

SCHEMA = "faceaccord.score-normaliser/1"
METHODS = ("fsn", "cohort")
Vectors = NDArray[np.float32]
Offsets = NDArray[np.float64]


class NormaliserError(ConfigurationError):
    code = "bad_score_normaliser"


class Sealer(Protocol):
    """Encrypts a calibration's arrays at rest (the deployment's master key, in
    ``faceaccord.protection.envelope.MasterKeySealer``)."""

    @property
    def key_id(self) -> str: ...

    def seal(self, plain: bytes, *, aad: bytes) -> tuple[bytes, bytes]:
        """``(nonce, ciphertext)``."""
        ...

    def open(self, nonce: bytes, ciphertext: bytes, *, aad: bytes) -> bytes: ...


class ScoreNormaliser(Protocol):
    """The port verification and identification use. ``id`` goes into every audit entry of a
    comparison; ``method`` is ``none``, ``fsn`` or ``cohort``."""

    @property
    def id(self) -> str: ...

    @property
    def method(self) -> str: ...

    def offsets(self, embeddings: Vectors) -> Offsets:
        """One offset per row of ``embeddings`` (n x d)."""
        ...

    def describe(self) -> dict[str, Any]:
        """Provenance for reports: method, model, data hash, parameters, date (no arrays)."""
        ...


def normalised_distances(
    distances: NDArray[np.float64], offset_a: Offsets | float, offset_b: Offsets | float
) -> NDArray[np.float64]:
    """``distance + (offset_a + offset_b) / 2``, element-wise."""
    return (
        np.asarray(distances, dtype=np.float64)
        + (np.asarray(offset_a, dtype=np.float64) + np.asarray(offset_b, dtype=np.float64)) / 2
    )


@dataclass(frozen=True, slots=True)
class NoNormalisation:
    """Plain distances."""

    @property
    def id(self) -> str:
        return "none"

    @property
    def method(self) -> str:
        return "none"

    def offsets(self, embeddings: Vectors) -> Offsets:
        return np.zeros(len(embeddings), dtype=np.float64)

    def describe(self) -> dict[str, Any]:
        return {"id": "none", "method": "none"}


NO_NORMALISATION = NoNormalisation()


@dataclass(frozen=True, slots=True)
class Provenance:
    model_id: str
    model_sha256: str
    data_sha256: str
    images: int
    subjects: int
    created_at: str
    target_fmr: float
    selection: Mapping[str, Any] = field(default_factory=dict)
    """How the parameters were chosen (label-free validation), with each candidate's score."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": {"id": self.model_id, "sha256": self.model_sha256},
            "data": {"sha256": self.data_sha256, "images": self.images,
                     "subjects": self.subjects},
            "created_at": self.created_at,
            "target_fmr": self.target_fmr,
            "selection": dict(self.selection),
        }  # fmt: skip


@dataclass(frozen=True, slots=True)
class ClusterNormaliser:
    """Fair score normalisation: the offset of the template's nearest k-means centroid."""

    centroids: NDArray[np.float64]
    cluster_offsets: Offsets
    provenance: Provenance
    digest: str = ""

    @property
    def id(self) -> str:
        return f"fsn:{self.digest[:12]}" if self.digest else "fsn:unsaved"

    @property
    def method(self) -> str:
        return "fsn"

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    def clusters(self, embeddings: Vectors) -> NDArray[np.int64]:
        x = _rows(embeddings, self.centroids.shape[1])
        labels: NDArray[np.int64] = np.argmin(pairwise_distances(x, self.centroids), axis=1)
        return labels.astype(np.int64)

    def offsets(self, embeddings: Vectors) -> Offsets:
        if len(embeddings) == 0:
            return np.zeros(0, dtype=np.float64)
        return self.cluster_offsets[self.clusters(embeddings)]

    def describe(self) -> dict[str, Any]:
        return {"id": self.id, "method": "fsn", "k": self.k, **self.provenance.as_dict()}

    def arrays(self) -> dict[str, NDArray[np.float64]]:
        return {"centroids": self.centroids, "cluster_offsets": self.cluster_offsets}


@dataclass(frozen=True, slots=True)
class CohortNormaliser:
    """Impostor-cohort normalisation: ``beta * (reference - mean distance to the m nearest)``.

    Calibration measures each cohort template against the cohort without its own person, which
    is how a stranger to the cohort is measured at run time. A person who *is* in the cohort
    (enrolled later, say) meets their own templates among the nearest, so their offset comes
    out higher: their comparisons must be closer to match (stricter, never laxer)."""

    cohort: NDArray[np.float64]
    m: int
    beta: float
    reference: float
    """The mean, over the calibration templates, of their own m-nearest-impostor distance."""
    shift: float
    provenance: Provenance
    digest: str = ""

    @property
    def id(self) -> str:
        return f"cohort:{self.digest[:12]}" if self.digest else "cohort:unsaved"

    @property
    def method(self) -> str:
        return "cohort"

    def nearest_mean(self, embeddings: Vectors) -> NDArray[np.float64]:
        x = _rows(embeddings, self.cohort.shape[1])
        distances = pairwise_distances(x, self.cohort)
        m = min(self.m, distances.shape[1])
        nearest: NDArray[np.float64] = np.partition(distances, m - 1, axis=1)[:, :m].mean(axis=1)
        return nearest

    def offsets(self, embeddings: Vectors) -> Offsets:
        if len(embeddings) == 0:
            return np.zeros(0, dtype=np.float64)
        return self.beta * (self.reference - self.nearest_mean(embeddings)) + self.shift

    def describe(self) -> dict[str, Any]:
        return {
            "id": self.id, "method": "cohort", "m": self.m, "beta": self.beta,
            "cohort_size": int(self.cohort.shape[0]), **self.provenance.as_dict(),
        }  # fmt: skip

    def arrays(self) -> dict[str, NDArray[np.float64]]:
        return {"cohort": self.cohort}


def pairwise_distances(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """Euclidean distances between the rows of ``x`` and of ``y`` (len(x) x len(y))."""
    squared = (x * x).sum(1)[:, None] - 2 * x @ y.T + (y * y).sum(1)[None, :]
    distances: NDArray[np.float64] = np.sqrt(np.maximum(squared, 0.0))
    return distances


def _rows(embeddings: Vectors, dimension: int) -> NDArray[np.float64]:
    x = np.asarray(embeddings, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] != dimension:
        raise NormaliserError(
            f"the normaliser takes {dimension}-dimensional embeddings, not shape {x.shape}"
        )
    return x


# --- files -------------------------------------------------------------------------------------


def save_normaliser(
    normaliser: ClusterNormaliser | CohortNormaliser, path: Path, *, sealer: Sealer | None = None
) -> str:
    """Write the calibration atomically (owner-only), its arrays encrypted by ``sealer`` when
    one is given; returns the normaliser's id."""
    document = _document(normaliser, sealer)
    text = json.dumps(document, indent=1, sort_keys=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.unlink(missing_ok=True)  # a leftover: never reuse its mode, nor follow a link
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, path)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return f"{normaliser.method}:{digest[:12]}"


def _document(
    normaliser: ClusterNormaliser | CohortNormaliser, sealer: Sealer | None
) -> dict[str, Any]:
    parameters: dict[str, Any]
    if isinstance(normaliser, ClusterNormaliser):
        parameters = {"k": normaliser.k}
    else:
        parameters = {"m": normaliser.m, "beta": normaliser.beta,
                      "reference": normaliser.reference, "shift": normaliser.shift}  # fmt: skip
    return {
        "schema": SCHEMA,
        "method": normaliser.method,
        **normaliser.provenance.as_dict(),
        "parameters": parameters,
        "arrays": {
            name: _encode(array, name, sealer) for name, array in normaliser.arrays().items()
        },
    }


def _aad(name: str) -> bytes:
    return f"faceaccord/score-normaliser/{name}".encode()


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _encode(array: NDArray[np.float64], name: str, sealer: Sealer | None) -> dict[str, Any]:
    data = np.ascontiguousarray(array, dtype="<f8").tobytes()
    encoded: dict[str, Any] = {"shape": list(array.shape), "dtype": "<f8"}
    if sealer is None:
        encoded["base64"] = _b64(data)
    else:
        nonce, ciphertext = sealer.seal(data, aad=_aad(name))
        encoded["sealed"] = {"key_id": sealer.key_id, "nonce": _b64(nonce),
                             "ciphertext": _b64(ciphertext)}  # fmt: skip
    return encoded


def _decode(value: Any, name: str, path: Path, sealer: Sealer | None) -> NDArray[np.float64]:
    try:
        shape = tuple(int(n) for n in value["shape"])
        if "sealed" in value:
            raw = _unseal(value["sealed"], name, path, sealer)
        else:
            raw = base64.b64decode(value["base64"], validate=True)
        array = np.frombuffer(raw, dtype="<f8").reshape(shape).astype(np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise NormaliserError(f"{path}: the array {name!r} is damaged ({exc})") from None
    if not np.isfinite(array).all():
        raise NormaliserError(f"{path}: the array {name!r} holds non-finite numbers")
    return array


def _unseal(sealed: Any, name: str, path: Path, sealer: Sealer | None) -> bytes:
    key_id = str(sealed["key_id"])
    if sealer is None:
        raise NormaliserError(
            f"{path}: the array {name!r} is sealed with master key {key_id}; load it in the "
            "deployment that holds that key"
        )
    if key_id != sealer.key_id:
        raise NormaliserError(
            f"{path}: the array {name!r} is sealed with master key {key_id}, not this "
            f"deployment's ({sealer.key_id})"
        )
    nonce = base64.b64decode(sealed["nonce"], validate=True)
    ciphertext = base64.b64decode(sealed["ciphertext"], validate=True)
    try:
        return sealer.open(nonce, ciphertext, aad=_aad(name))
    except FaceAccordError as exc:
        raise NormaliserError(f"{path}: the array {name!r} does not decrypt ({exc})") from None


def load_normaliser(
    path: Path, *, model_id: str, model_sha256: str, dimension: int, sealer: Sealer | None = None
) -> ClusterNormaliser | CohortNormaliser:
    """A calibration file, checked: its schema, that it was made for this model (id and weights'
    hash), and that its arrays fit the model's embeddings (sealed arrays need ``sealer``)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise NormaliserError(f"cannot read the score normaliser {path}: {exc}") from None
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise NormaliserError(f"{path} is not a calibration file (JSON: {exc})") from None
    if not isinstance(document, dict) or document.get("schema") != SCHEMA:
        raise NormaliserError(f"{path} is not a {SCHEMA} calibration")
    method = document.get("method")
    if method not in METHODS:
        raise NormaliserError(f"{path}: unknown method {method!r} (known: {', '.join(METHODS)})")
    try:
        model = document["model"]
        provenance = Provenance(
            model_id=str(model["id"]), model_sha256=str(model["sha256"]),
            data_sha256=str(document["data"]["sha256"]),
            images=int(document["data"]["images"]), subjects=int(document["data"]["subjects"]),
            created_at=str(document["created_at"]), target_fmr=float(document["target_fmr"]),
            selection=dict(document.get("selection") or {}),
        )  # fmt: skip
        parameters, arrays = document["parameters"], document["arrays"]
    except (KeyError, TypeError, ValueError) as exc:
        raise NormaliserError(f"{path}: the calibration lacks {exc}") from None
    if not isinstance(parameters, dict) or not isinstance(arrays, dict):
        raise NormaliserError(f"{path}: 'parameters' and 'arrays' must be JSON objects")
    if provenance.model_id != model_id or provenance.model_sha256 != model_sha256:
        raise NormaliserError(
            f"{path} was calibrated for {provenance.model_id} "
            f"({provenance.model_sha256[:12]}), not the model in use, {model_id} "
            f"({model_sha256[:12]}): calibrate again with this model"
        )
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
    return _from_arrays(path, method, parameters, arrays, provenance, digest, dimension, sealer)


def _from_arrays(
    path: Path,
    method: str,
    parameters: dict[str, Any],
    arrays: dict[str, Any],
    provenance: Provenance,
    digest: str,
    dimension: int,
    sealer: Sealer | None,
) -> ClusterNormaliser | CohortNormaliser:
    if method == "fsn":
        centroids = _decode(arrays.get("centroids"), "centroids", path, sealer)
        offsets = _decode(arrays.get("cluster_offsets"), "cluster_offsets", path, sealer)
        if centroids.ndim != 2 or centroids.shape[1] != dimension or centroids.shape[0] < 1:
            raise NormaliserError(f"{path}: centroids of shape {centroids.shape} do not fit "
                                  f"{dimension}-dimensional embeddings")  # fmt: skip
        if offsets.shape != (centroids.shape[0],):
            raise NormaliserError(f"{path}: one offset per cluster is needed")
        return ClusterNormaliser(centroids, offsets, provenance, digest)
    cohort = _decode(arrays.get("cohort"), "cohort", path, sealer)
    if cohort.ndim != 2 or cohort.shape[1] != dimension or cohort.shape[0] < 1:
        raise NormaliserError(f"{path}: a cohort of shape {cohort.shape} does not fit "
                              f"{dimension}-dimensional embeddings")  # fmt: skip
    try:
        m, beta = int(parameters["m"]), float(parameters["beta"])
        reference, shift = float(parameters["reference"]), float(parameters["shift"])
    except (KeyError, TypeError, ValueError) as exc:
        raise NormaliserError(f"{path}: the cohort parameters lack {exc}") from None
    if m < 1 or not all(np.isfinite([beta, reference, shift])):
        raise NormaliserError(f"{path}: cohort parameters out of range (m {m}, beta {beta})")
    return CohortNormaliser(cohort, m, beta, reference, shift, provenance, digest)


# --- identification ----------------------------------------------------------------------------


class NormalisedIndex:
    """A template index whose searches answer in normalised distances.

    Each template's offset is computed once, when it is added. A search widens the raw radius
    by the most any stored template's offset can take away, asks the inner index for more
    subjects than wanted, scores each returned subject's nearest template with both offsets,
    and keeps those within the threshold, nearest first. (A subject is scored on its nearest
    template in raw distance; its templates' offsets are nearly equal, as they sit in the same
    region of face space.) Candidates' ``distance`` is the normalised one."""

    def __init__(self, inner: TemplateIndex, normaliser: ScoreNormaliser) -> None:
        self.inner = inner
        self.normaliser = normaliser
        self.model_id = inner.model_id
        self.dimension = inner.dimension
        self._offsets: dict[str, float] = {}
        self._subject_of: dict[str, str] = {}
        self._lowest: float | None = None
        """The lowest stored offset (None: to be recomputed)."""

    def add(
        self, *, template_ids: Sequence[str], subject_ids: Sequence[str], vectors: Vectors
    ) -> None:
        self.inner.add(template_ids=template_ids, subject_ids=subject_ids, vectors=vectors)
        offsets = self.normaliser.offsets(np.asarray(vectors, dtype=np.float32))
        for template_id, subject_id, offset in zip(template_ids, subject_ids, offsets,
                                                   strict=True):  # fmt: skip
            self._offsets[template_id] = float(offset)
            self._subject_of[template_id] = subject_id
        self._lowest = None

    def remove_subjects(self, subject_ids: Sequence[str]) -> int:
        removed = self.inner.remove_subjects(subject_ids)
        gone = set(subject_ids)
        for template_id in [t for t, s in self._subject_of.items() if s in gone]:
            del self._offsets[template_id], self._subject_of[template_id]
        self._lowest = None
        return removed

    def search(self, probe: Vectors, *, k: int, threshold: float) -> list[Candidate]:
        if not self._offsets:
            return []
        probe_offset = float(self.normaliser.offsets(np.asarray(probe, np.float32)[None])[0])
        if self._lowest is None:
            self._lowest = min(self._offsets.values())
        lowest = self._lowest
        radius = threshold - (probe_offset + lowest) / 2
        if radius < 0:
            return []
        wanted = 4 * k + 16
        while True:
            found = self.inner.search(probe, k=wanted, threshold=radius)
            scored = sorted(
                (
                    Candidate(
                        c.subject_id,
                        c.template_id,
                        c.distance + (probe_offset + self._offsets[c.template_id]) / 2,
                        c.similarity,
                    )
                    for c in found
                ),
                key=lambda c: c.distance,
            )
            scored = [c for c in scored if c.distance <= threshold][:k]
            if len(found) < wanted:
                return scored  # every subject within the radius was scored
            # A subject not returned is at least as far, raw, as the last one returned, so its
            # normalised distance is at least this; when the k-th best is no farther, it is
            # final. Otherwise ask for more.
            floor = found[-1].distance + (probe_offset + lowest) / 2
            if len(scored) == k and scored[-1].distance <= floor:
                return scored
            wanted *= 4

    def template_ids(self) -> set[str]:
        return self.inner.template_ids()

    def __len__(self) -> int:
        return len(self.inner)
