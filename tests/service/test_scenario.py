"""The whole platform over HTTP, as an organisation lives it: registration, approval by the
platform, keys, a gallery, consent, enrolment, identification with human review by two people,
erasure and the audit chain; and a US police department refused, with its reasons."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from faceaccord.biometrics.pipeline import Engine
from faceaccord.platform.deployment import Platform
from faceaccord.platform.keys import Role, create_key
from faceaccord.samples import SamplePhotos
from faceaccord.service.app import create_app
from faceaccord.settings import Settings

pytestmark = pytest.mark.real_model
NOTICE = "We compare your face with your enrolment photo to open the staff entrance."


class Api:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    def call(self, method: str, path: str, token: str | None, status: int, **kw: Any) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = self.client.request(method, path, headers=headers, **kw)
        assert response.status_code == status, response.text
        kind = response.headers.get("content-type", "").split(";")[0]
        is_json = kind in {"application/json", "application/problem+json"}
        return response.json() if is_json else response.text


@pytest.fixture
def deployment(tmp_path: Path, engine: Engine) -> Iterator[tuple[Api, str]]:
    settings = Settings(home=tmp_path / "home", database_url=None)
    with Platform.open(settings, engine=engine) as platform:
        _, platform_token = create_key(
            platform,
            organisation_id=None,
            name="pat@platform",
            roles=frozenset({Role.PLATFORM_REVIEWER}),
            created_by="ops",
        )
    with TestClient(create_app(settings, engine=engine)) as client:
        yield Api(client), platform_token


def _photo(path: Path) -> tuple[str, bytes, str]:
    return (path.name, path.read_bytes(), "image/jpeg")


def test_an_organisation_from_registration_to_erasure(
    deployment: tuple[Api, str], samples: SamplePhotos
) -> None:
    api, platform_key = deployment

    registered = api.call(
        "POST",
        "/v1/organisations",
        None,
        201,
        json={
            "name": "Müller Logistik GmbH",
            "sector": "employer",
            "jurisdiction": "DE",
            "admin_name": "anna@mueller.example",
        },
    )
    org_id = registered["organisation"]["id"]
    admin = registered["admin_key"]["token"]
    assert registered["organisation"]["status"] == "pending_review"
    pending = api.call(
        "POST",
        "/v1/policy/check",
        admin,
        200,
        json={"operation": "enroll", "purpose": "access_control"},
    )
    assert pending["decision"] == "deny"
    assert "CORE-STATUS" in [r["rule"] for r in pending["reasons"]]

    approved = api.call(
        "POST",
        f"/v1/organisations/{org_id}/approval",
        platform_key,
        200,
        json={
            "purposes": ["access_control"],
            "scale_tier": "small",
            "reason": "staff entrance; DPIA reviewed",
        },
    )
    assert approved["status"] == "approved"

    keys = {
        name: api.call("POST", "/v1/keys", admin, 201, json={"name": name, "roles": [role]})[
            "token"
        ]
        for name, role in [
            ("olga", "operator"),
            ("rita", "reviewer"),
            ("raj", "reviewer"),
            ("aude", "auditor"),
        ]
    }
    api.call(
        "POST", "/v1/galleries", admin, 201, json={"name": "staff", "purpose": "access_control"}
    )

    for subject, photo in (("alice", samples.person_a[0]), ("bob", samples.person_b)):
        api.call(
            "POST",
            "/v1/galleries/staff/subjects",
            keys["olga"],
            201,
            data={
                "subject": subject,
                "purpose": "access_control",
                "consent_kind": "explicit",
                "consent_reference": f"form-{subject}",
                "notice": NOTICE,
                "notice_version": "v1",
            },
            files={"images": _photo(photo)},
        )
    record = api.call("GET", "/v1/galleries/staff/subjects/alice", keys["olga"], 200)
    assert record["consents"][0]["kind"] == "explicit"
    assert record["consents"][0]["notice_version"] == "v1"
    assert "embedding" not in str(record)

    found = api.call(
        "POST",
        "/v1/galleries/staff/identify",
        keys["olga"],
        200,
        data={
            "purpose": "access_control",
            "consent": "explicit",
            "reviewers": "2",
        },
        files={"image": _photo(samples.person_a[1])},
    )
    assert found["status"] == "pending_review"
    assert found["required_reviewers"] == 2
    best = found["candidates"][0]
    assert best["subject"] == "alice"
    path = f"/v1/identifications/{found['identification_id']}/candidates/{best['candidate_id']}"

    api.call("POST", f"{path}/reviews", keys["olga"], 403, json={"outcome": "confirm"})
    first = api.call("POST", f"{path}/reviews", keys["rita"], 200, json={"outcome": "confirm"})
    assert first["status"] == "pending_review"
    again = api.call("POST", f"{path}/reviews", keys["rita"], 409, json={"outcome": "confirm"})
    assert again["type"].endswith("/review_error")
    second = api.call(
        "POST",
        f"{path}/reviews",
        keys["raj"],
        200,
        json={"outcome": "confirm", "note": "same person, badge photo"},
    )
    assert second["status"] == "confirmed"
    assert [r["reviewer"] for r in second["candidates"][0]["reviews"]] == ["rita", "raj"]

    receipt = api.call("DELETE", "/v1/galleries/staff/subjects/alice", admin, 200)
    assert receipt["counts"]["keys_destroyed"] == 1
    assert receipt["reason"] == "erasure_request"
    gone = api.call(
        "POST",
        "/v1/galleries/staff/identify",
        keys["olga"],
        200,
        data={
            "purpose": "access_control",
            "consent": "explicit",
            "reviewers": "2",
        },
        files={"image": _photo(samples.person_a[1])},
    )
    assert gone["candidates"] == []
    assert gone["status"] == "no_match"

    chain = api.call("GET", "/v1/audit/verify", keys["aude"], 200)
    assert chain["ok"] is True
    exported = api.call("GET", "/v1/audit/export", keys["aude"], 200)
    operations = [line.split('"operation": "')[1].split('"')[0] for line in exported.splitlines()]
    assert {"enroll", "identify", "review", "erase"} <= set(operations)
    report = api.call("GET", "/v1/reports/accountability", keys["aude"], 200)
    assert "Müller Logistik GmbH" in report
    assert "<script" not in report


def test_a_us_police_department_is_refused_with_its_reasons(
    deployment: tuple[Api, str], samples: SamplePhotos
) -> None:
    api, platform_key = deployment
    registered = api.call(
        "POST",
        "/v1/organisations",
        None,
        201,
        json={
            "name": "Springfield PD",
            "sector": "police",
            "jurisdiction": "US-IL",
            "admin_name": "chief@springfield.example",
        },
    )
    org_id, admin = registered["organisation"]["id"], registered["admin_key"]["token"]
    api.call(
        "POST",
        f"/v1/organisations/{org_id}/approval",
        platform_key,
        200,
        json={
            "purposes": ["criminal_investigation"],
            "reason": "reviewed: refused by policy anyway",
        },
    )
    operator = api.call(
        "POST", "/v1/keys", admin, 201, json={"name": "det", "roles": ["operator"]}
    )["token"]
    refused = api.call(
        "POST",
        "/v1/verify",
        operator,
        403,
        data={
            "purpose": "criminal_investigation",
        },
        files={"image_a": _photo(samples.person_a[0]), "image_b": _photo(samples.person_b)},
    )
    assert refused["type"].endswith("/policy_denied")
    assert [r["rule"] for r in refused["reasons"]] == ["MS-US-POLICE", "AMZ-MORATORIUM"]
    assert all(r["source"] for r in refused["reasons"])
