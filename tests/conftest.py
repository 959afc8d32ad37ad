"""Shared fixtures. Real photos come from the face_recognition 1.3.0 source distribution on the
package index, downloaded once into the user's cache (see faceaccord.samples)."""

from __future__ import annotations

import pytest

from faceaccord.biometrics.pipeline import Engine
from faceaccord.samples import SamplePhotos, fetch_sample_photos
from faceaccord.settings import Settings


@pytest.fixture(scope="session")
def samples() -> SamplePhotos:
    return fetch_sample_photos(Settings().cache_dir)


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.load(Settings())
