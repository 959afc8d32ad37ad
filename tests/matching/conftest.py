"""Fixtures: a dlib-like gallery (see ``dlib_like``) and an empty index of every flavour."""

from __future__ import annotations

import pytest
from dlib_like import DIMENSION, FLAVOURS, MODEL, Gallery, IndexFactory, dlib_like

from faceaccord.matching import make_index


@pytest.fixture(scope="session")
def gallery() -> Gallery:
    """About 4,000 templates of 1,000 identities, 100 mated and 100 unmated probes."""
    return dlib_like(identities=1000, probes=100, seed=20261122)


@pytest.fixture(params=sorted(FLAVOURS))
def new_index(request: pytest.FixtureRequest) -> IndexFactory:
    """An empty index of each flavour (``dimension`` 128 unless the test builds its own)."""
    options = dict(FLAVOURS[request.param])
    kind = str(options.pop("kind"))
    return lambda: make_index(kind, model_id=MODEL, dimension=DIMENSION, **options)
