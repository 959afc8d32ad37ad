"""Settings come from FACEACCORD_ environment variables, nested with '__', and refuse nonsense."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from faceaccord.settings import DetectorKind, ImageLimits, Settings


def test_defaults_are_the_embedded_ones() -> None:
    settings = Settings()
    assert settings.detection.kind is DetectorKind.HOG
    assert settings.operating_point == "default"
    assert settings.images.max_pixels == 50_000_000


def test_nested_values_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEACCORD_IMAGES__MAX_BYTES", "1234")
    monkeypatch.setenv("FACEACCORD_DETECTION__KIND", "mmod")
    settings = Settings()
    assert settings.images.max_bytes == 1234
    assert settings.detection.kind is DetectorKind.MMOD


def test_an_unknown_detector_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACEACCORD_DETECTION__KIND", "yolo")
    with pytest.raises(ValidationError, match="hog"):
        Settings()


def test_inconsistent_image_limits_are_refused() -> None:
    with pytest.raises(ValidationError, match="min_side"):
        ImageLimits(min_side=100, max_side=50)


def test_worker_count_defaults_to_the_cores() -> None:
    assert Settings(workers=3).worker_count() == 3
    assert Settings().worker_count() >= 1
