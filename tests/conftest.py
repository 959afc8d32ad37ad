"""Shared fixtures. Real photos come from the face_recognition 1.3.0 source distribution on the
package index, downloaded once into the user's cache (see faceaccord.samples)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from faceaccord.biometrics.pipeline import Engine
from faceaccord.samples import SamplePhotos, fetch_sample_photos
from faceaccord.settings import Settings
from postgres import PostgresServer, fresh_database, start_server


@pytest.fixture(scope="session")
def samples() -> SamplePhotos:
    return fetch_sample_photos(Settings().cache_dir)


@pytest.fixture(scope="session")
def engine() -> Engine:
    return Engine.load(Settings())


@pytest.fixture(scope="session")
def postgresql_server() -> Iterator[PostgresServer]:
    yield from start_server()


@pytest.fixture
def postgresql_url(postgresql_server: PostgresServer) -> Iterator[str]:
    yield from fresh_database(postgresql_server)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each store test runs on the embedded SQLite default and on a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'faceaccord.db'}"
    url: str = request.getfixturevalue("postgresql_url")
    return url
