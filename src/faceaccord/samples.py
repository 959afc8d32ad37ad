"""Sample photos for the demo and the tests, obtained from the package index and cached.

The face_recognition 1.3.0 source distribution on PyPI ships ``tests/test_images`` with three
photos of one person (Barack Obama), one of another (Joe Biden), two of the first person's
face cut off by the frame, and a 32-bit RGBA PNG. The archive is fetched once with
``pip download`` (so it honours the machine's pip configuration, mirrors and proxies), checked
against a pinned SHA-256, and only the photos are kept, under ``<cache_dir>/samples``.
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from faceaccord.errors import FaceAccordError

__all__ = ["SampleFetchError", "SamplePhotos", "fetch_sample_photos"]

REQUIREMENT = "face_recognition==1.3.0"
ARCHIVE = "face_recognition-1.3.0.tar.gz"
ARCHIVE_SHA256 = "5e5efdd1686aa566af0d3cc1313b131e4b197657a8ffd03669e6d3fad92705ec"
MEMBER_DIR = "face_recognition-1.3.0/tests/test_images/"
FILES = (
    "obama.jpg",
    "obama2.jpg",
    "obama3.jpg",
    "biden.jpg",
    "obama_partial_face.jpg",
    "obama_partial_face2.jpg",
    "32bit.png",
)
_COMPLETE = ".complete"


class SampleFetchError(FaceAccordError):
    code = "sample_fetch_failed"


@dataclass(frozen=True, slots=True)
class SamplePhotos:
    folder: Path

    @property
    def person_a(self) -> tuple[Path, Path, Path]:
        """Three photos of one person."""
        return (self.folder / "obama.jpg", self.folder / "obama2.jpg", self.folder / "obama3.jpg")

    @property
    def person_b(self) -> Path:
        """A photo of a different person."""
        return self.folder / "biden.jpg"

    @property
    def partial_faces(self) -> tuple[Path, Path]:
        """Person A with the face cut off by the frame."""
        return (self.folder / "obama_partial_face.jpg", self.folder / "obama_partial_face2.jpg")

    @property
    def rgba_png(self) -> Path:
        """Person A as a 32-bit RGBA PNG."""
        return self.folder / "32bit.png"


def fetch_sample_photos(cache_dir: Path) -> SamplePhotos:
    """The sample photos, downloading them into ``cache_dir`` the first time."""
    folder = cache_dir / "samples" / "face_recognition-1.3.0"
    if (folder / _COMPLETE).is_file():
        return SamplePhotos(folder)
    cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache_dir, prefix=".samples-") as scratch:
        archive = _download(Path(scratch))
        staging = Path(scratch) / "photos"
        _extract(archive, staging)
        (staging / _COMPLETE).write_text(ARCHIVE_SHA256 + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging.rename(folder)
    return SamplePhotos(folder)


def _download(into: Path) -> Path:
    command = [
        sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
        "--no-binary", ":all:", "--dest", str(into), REQUIREMENT,
    ]  # fmt: skip
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=600, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SampleFetchError(f"could not run pip to fetch the sample photos: {exc}") from None
    archive = into / ARCHIVE
    if completed.returncode != 0 or not archive.is_file():
        detail = (completed.stderr or completed.stdout).strip().splitlines()[-3:]
        raise SampleFetchError(
            f"could not download {REQUIREMENT} from the package index to get the sample photos "
            f"(pip exited {completed.returncode}): {' | '.join(detail)}"
        )
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    if digest != ARCHIVE_SHA256:
        raise SampleFetchError(
            f"{ARCHIVE} from the package index has SHA-256 {digest}, expected {ARCHIVE_SHA256}"
        )
    return archive


def _extract(archive: Path, into: Path) -> None:
    into.mkdir()
    with tarfile.open(archive, "r:gz") as tar:
        for name in FILES:
            member = tar.getmember(MEMBER_DIR + name)
            source = tar.extractfile(member)
            if not member.isfile() or source is None:
                raise SampleFetchError(f"{ARCHIVE} has no regular file {MEMBER_DIR + name}")
            with source, (into / name).open("wb") as target:
                shutil.copyfileobj(source, target)
