"""Model cards carry the calibrated operating points; weights are checked against pinned hashes."""

from __future__ import annotations

from pathlib import Path

import pytest

from faceaccord.biometrics.models import weights
from faceaccord.biometrics.models.cards import load_card, load_shipped_card
from faceaccord.biometrics.models.weights import DlibWeights, weights_path
from faceaccord.errors import ModelError


def test_the_shipped_card_states_how_its_default_threshold_was_measured() -> None:
    card = load_shipped_card("dlib-resnet-v1")
    point = card.operating_point("default")
    assert card.sha256 == DlibWeights.RESNET_V1.sha256
    assert point.target_fmr == 1e-3
    assert point.measured_fmr <= point.measured_fmr_ci95[1]
    assert point.measured_fmr_ci95[0] <= point.measured_fmr
    assert point.impostor_pairs > 10_000
    assert "faces-demographic" in point.dataset
    assert point.command.startswith(".venv/bin/python benchmarks/")


def test_an_unknown_operating_point_lists_the_known_ones() -> None:
    card = load_shipped_card("dlib-resnet-v1")
    with pytest.raises(ModelError, match=r"no operating point 'lenient'.*default"):
        card.operating_point("lenient")


def test_a_broken_card_names_its_file(tmp_path: Path) -> None:
    broken = tmp_path / "mine.toml"
    broken.write_text('id = "x"\nthreshold = [', encoding="utf-8")
    with pytest.raises(ModelError, match=r"mine\.toml"):
        load_card(broken)


def test_an_incomplete_card_is_refused(tmp_path: Path) -> None:
    incomplete = tmp_path / "mine.toml"
    incomplete.write_text('id = "x"\n', encoding="utf-8")
    with pytest.raises(ModelError, match="invalid"):
        load_card(incomplete)


def test_the_pinned_weights_are_found_and_verified() -> None:
    path = weights_path(DlibWeights.LANDMARKS_5)
    assert path.name == "shape_predictor_5_face_landmarks.dat"


def test_an_altered_weights_file_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / DlibWeights.LANDMARKS_5.file_name).write_bytes(b"tampered")
    monkeypatch.setattr(weights, "models_dir", lambda: tmp_path)
    with pytest.raises(ModelError, match="SHA-256"):
        weights_path(DlibWeights.LANDMARKS_5)


def test_a_missing_weights_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(weights, "models_dir", lambda: tmp_path)
    with pytest.raises(ModelError, match="not found"):
        weights_path(DlibWeights.RESNET_V1)
