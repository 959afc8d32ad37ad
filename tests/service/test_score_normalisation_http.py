"""The service loads the calibration named by FACEACCORD_FAIRNESS__SCORE_NORMALISER: a
verification over HTTP answers with the normalised distance it decided on and the normaliser's
id, and its audit entry names it. On the fake engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_tenancy_and_errors import approve, deployment, photo, register

from faceaccord.biometrics.fakes import fake_card
from faceaccord.matching.normalisation import (
    ClusterNormaliser,
    NormaliserError,
    Provenance,
    save_normaliser,
)
from faceaccord.settings import FairnessSettings

CARD = fake_card()
THRESHOLD = CARD.operating_points[0].threshold


def calibration(path: Path, offset: float, *, model_id: str = CARD.id) -> str:
    """A saved fsn calibration of one cluster: every template's offset is ``offset``."""
    normaliser = ClusterNormaliser(
        centroids=np.zeros((1, CARD.embedding_dim)),
        cluster_offsets=np.array([offset]),
        provenance=Provenance(
            model_id=model_id, model_sha256=CARD.sha256, data_sha256="ef" * 32, images=40,
            subjects=10, created_at="2026-11-22T09:00:00+00:00", target_fmr=0.01,
        ),
    )  # fmt: skip
    return save_normaliser(normaliser, path)


def verification(a: bytes, b: bytes) -> dict[str, Any]:
    return {
        "data": {"purpose": "access_control", "consent": "explicit"},
        "files": {"image_a": ("a.jpg", a, "image/jpeg"), "image_b": ("b.jpg", b, "image/jpeg")},
    }


@pytest.mark.parametrize(("offset", "status"), [(0.2, "match"), (0.7, "no_match")])
def test_a_verification_over_http_answers_in_normalised_distances(
    tmp_path: Path, offset: float, status: str
) -> None:
    path = tmp_path / "calibrations" / "fsn.json"
    normaliser_id = calibration(path, offset)
    fairness = FairnessSettings(score_normaliser=path)
    with deployment(tmp_path / "home", fairness=fairness) as (api, platform_token, settings):
        assert settings.fairness.score_normaliser == path
        organisation_id, admin = register(api, "Alpha Logistik GmbH", admin="alpha-admin")
        approve(api, platform_token, organisation_id)
        operator = api.call(
            "POST", "/v1/keys", admin, 201, json={"name": "olga", "roles": ["operator"]}
        )["token"]
        same = api.call("POST", "/v1/verify", operator, 200, **verification(photo(1), photo(1)))
        different = api.call(
            "POST", "/v1/verify", operator, 200, **verification(photo(1), photo(2))
        )
        exported = api.call("GET", "/v1/audit/export", admin, 200)
    assert same["score_normaliser"] == different["score_normaliser"] == normaliser_id
    assert same["distance"] == pytest.approx(0.0, abs=1e-5)
    assert same["normalised_distance"] == pytest.approx(offset, abs=1e-5)
    assert same["threshold"] == THRESHOLD
    assert same["match"] is (status == "match")
    assert same["status"] == status
    assert different["normalised_distance"] == pytest.approx(
        different["distance"] + offset, abs=2e-6
    )
    assert different["status"] == "no_match"
    assert exported.count(f'"score_normaliser": "{normaliser_id}"') == 2


def test_a_calibration_for_another_model_stops_the_service_from_starting(tmp_path: Path) -> None:
    path = tmp_path / "calibrations" / "other.json"
    calibration(path, 0.1, model_id="dlib-resnet-v1")
    fairness = FairnessSettings(score_normaliser=path)
    with (
        pytest.raises(NormaliserError, match=r"calibrated for dlib-resnet-v1.*fake-v1"),
        deployment(tmp_path / "home", fairness=fairness),
    ):
        pass  # pragma: no cover - the start fails
