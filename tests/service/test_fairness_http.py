"""Fairness audits over HTTP: an auditor starts one on a dataset the operator placed on the
server, follows it, fetches its report; the run is in the audit log; paths cannot escape."""

from __future__ import annotations

import shutil
import time
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
from faceaccord.settings import FairnessSettings, Settings

pytestmark = pytest.mark.real_model


@pytest.fixture
def server(
    tmp_path: Path, engine: Engine, samples: SamplePhotos
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    datasets = tmp_path / "datasets"
    people = datasets / "sample"
    for name, photos in (("a", samples.person_a), ("b", (samples.person_b,))):
        (people / name).mkdir(parents=True)
        for photo in photos:
            shutil.copy(photo, people / name / photo.name)
    shutil.copy(samples.person_b, people / "b" / "biden-copy.jpg")
    (datasets / "labels.csv").write_text("identity,group\na,first\nb,second\n", encoding="utf-8")
    settings = Settings(
        home=tmp_path / "home", fairness=FairnessSettings(datasets_dir=datasets), workers=1
    )
    with Platform.open(settings, engine=engine) as platform:
        _, platform_key = create_key(
            platform,
            organisation_id=None,
            name="pat",
            roles=frozenset({Role.PLATFORM_REVIEWER}),
            created_by="ops",
        )
    with TestClient(create_app(settings, engine=engine)) as client:
        registered = client.post(
            "/v1/organisations",
            json={
                "name": "Audit Co",
                "sector": "research",
                "jurisdiction": "US-NY",
                "admin_name": "ada",
            },
        ).json()
        org_id, admin = registered["organisation"]["id"], registered["admin_key"]["token"]
        client.post(
            f"/v1/organisations/{org_id}/approval",
            headers={"Authorization": f"Bearer {platform_key}"},
            json={"purposes": ["research_evaluation"], "reason": "a fairness audit"},
        )
        auditor = client.post(
            "/v1/keys",
            headers={"Authorization": f"Bearer {admin}"},
            json={"name": "audrey", "roles": ["auditor"]},
        ).json()["token"]
        yield client, {"Authorization": f"Bearer {auditor}"}


def _wait(client: TestClient, headers: dict[str, str], audit_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        state: dict[str, Any] = client.get(
            f"/v1/fairness/audits/{audit_id}", headers=headers
        ).json()
        if state["status"] != "running":
            return state
        time.sleep(0.5)
    raise AssertionError("the audit did not finish in 3 minutes")


def test_an_auditor_runs_an_audit_over_http_and_reads_its_report(
    server: tuple[TestClient, dict[str, str]],
) -> None:
    client, headers = server
    started = client.post(
        "/v1/fairness/audits",
        headers=headers,
        json={"dataset": "sample", "labels": "labels.csv", "bootstrap": 100, "target_fmr": 0.1},
    )
    assert started.status_code == 202, started.text
    state = _wait(client, headers, started.json()["audit_id"])
    assert state["status"] == "done", state
    assert state["model"] == "dlib-resnet-v1"
    report = client.get(f"/v1/fairness/audits/{state['audit_id']}/report.json", headers=headers)
    assert report.status_code == 200
    groups = report.json()["attributes"]["group"]["groups"]
    assert (groups["first"]["subjects"], groups["second"]["subjects"]) == (1, 1)
    assert groups["first"]["genuine_pairs"] == 3
    page = client.get(f"/v1/fairness/audits/{state['audit_id']}/report.html", headers=headers)
    assert page.status_code == 200
    assert "data:image/png;base64," in page.text
    exported = client.get("/v1/audit/export", headers=headers).text
    assert exported.count('"operation": "fairness_audit"') == 2  # started, done


@pytest.mark.parametrize("dataset", ["../home", "/etc", "nope"])
def test_a_dataset_outside_the_datasets_directory_is_refused(
    server: tuple[TestClient, dict[str, str]], dataset: str
) -> None:
    client, headers = server
    refused = client.post("/v1/fairness/audits", headers=headers, json={"dataset": dataset})
    assert refused.status_code == 422
    assert refused.headers["content-type"] == "application/problem+json"


def test_another_organisations_audit_is_not_found(
    server: tuple[TestClient, dict[str, str]],
) -> None:
    client, headers = server
    missing = client.get(
        "/v1/fairness/audits/00000000-0000-0000-0000-000000000000", headers=headers
    )
    assert missing.status_code == 404
