"""Shared fixtures. Real photos come from the face_recognition 1.3.0 source distribution on the
package index, downloaded once into the user's cache (see faceaccord.samples)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from faceaccord.biometrics.pipeline import Engine
from faceaccord.samples import SamplePhotos, fetch_sample_photos
from faceaccord.settings import Settings

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def samples() -> SamplePhotos:
    return fetch_sample_photos(Settings().cache_dir)


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.load(Settings())


@pytest.fixture
def face_like_jpeg() -> bytes:
    """A 320x240 JPEG with smooth texture, for tests on fakes (no real face needed)."""
    rng = np.random.default_rng(3)
    noise = rng.integers(0, 255, size=(24, 32, 3), dtype=np.uint8)
    image = Image.fromarray(noise).resize((320, 240), Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()
