"""The service's edges, on the fake engine: two tenants that must never see or change each other's
data, the role behind every endpoint, authentication, RFC 9457 problem details for every error,
request limits, and the health endpoints.

Two organisations, A and B, are both German employers approved for access control: each has a key
for every role, a gallery ``staff`` with an enrolled ``alice`` (a different photo in each), and an
identification that waits for two reviewers (EU AI Act Art. 14(5)). A also has a gallery
``visitors`` (with ``bob``) that B does not have. B's keys then try every tenant endpoint on A's
ids and on the gallery name both share; afterwards A's data must be exactly as it was.
"""

from __future__ import annotations

import io
import secrets
import shutil
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx2 as httpx
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from faceaccord.biometrics.fakes import fake_engine
from faceaccord.biometrics.pipeline import Engine
from faceaccord.governance.entities import OrganisationStatus
from faceaccord.governance.vocabulary import Purpose
from faceaccord.platform.deployment import Platform
from faceaccord.platform.galleries import create_gallery
from faceaccord.platform.keys import Role, create_key
from faceaccord.platform.organisation_rows import load_organisation
from faceaccord.service.app import create_app
from faceaccord.service.problems import PROBLEM_BASE
from faceaccord.settings import ImageLimits, ServiceSettings, Settings

NOTICE = "We compare your face with your enrolment photo to open the staff entrance."
ROLES = ("admin", "operator", "reviewer", "auditor")
EVERY_ROLE = frozenset(ROLES)


# --- helpers -------------------------------------------------------------------------------------


def photo(seed: int, *, size: tuple[int, int] = (320, 240)) -> bytes:
    """A textured picture; the fake engine finds one face in it, distinct per seed."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(120, 160, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize(size).save(buffer, format="JPEG", quality=95)
    return buffer.getvalue()


def bearer(token: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"} if token else {}


def enrol_form(subject: str, image: bytes) -> dict[str, Any]:
    return {
        "data": {
            "subject": subject,
            "purpose": "access_control",
            "consent_kind": "explicit",
            "consent_reference": f"form-{subject}",
            "notice": NOTICE,
            "notice_version": "v1",
        },
        "files": {"images": ("photo.jpg", image, "image/jpeg")},
    }


def identify_form(image: bytes) -> dict[str, Any]:
    return {
        "data": {"purpose": "access_control", "consent": "explicit", "reviewers": "2"},
        "files": {"image": ("probe.jpg", image, "image/jpeg")},
    }


def assert_problem(
    response: httpx.Response, status: int, code: str | None = None
) -> dict[str, Any]:
    """An RFC 9457 problem with the stable type, and never a traceback."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0] == "application/problem+json"
    assert "Traceback" not in response.text
    assert 'File "' not in response.text
    body: dict[str, Any] = response.json()
    assert {"type", "title", "status", "detail"} <= body.keys(), body
    assert body["status"] == status
    assert body["type"].startswith(PROBLEM_BASE)
    assert isinstance(body["title"], str)
    assert body["title"]
    assert isinstance(body["detail"], str)
    assert body["detail"]
    if code is not None:
        assert body["type"] == PROBLEM_BASE + code, body
    return body


class Api:
    def __init__(self, client: TestClient) -> None:
        self.client = client

    def request(
        self, method: str, path: str, token: str | None = None, **kw: Any
    ) -> httpx.Response:
        headers = {**bearer(token), **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def call(self, method: str, path: str, token: str | None, status: int, **kw: Any) -> Any:
        response = self.request(method, path, token, **kw)
        assert response.status_code == status, response.text
        kind = response.headers.get("content-type", "").split(";")[0]
        if kind in {"application/json", "application/problem+json"}:
            return response.json()
        return response.text


@dataclass
class Org:
    id: str
    name: str
    tokens: dict[str, str]
    key_ids: dict[str, str]
    alice_photo: bytes
    alice_id: str = ""
    gallery_ids: dict[str, str] = field(default_factory=dict)
    subject_ids: dict[str, str] = field(default_factory=dict)
    identification: dict[str, Any] = field(default_factory=dict)

    @property
    def ident(self) -> str:
        return str(self.identification["identification_id"])

    @property
    def candidate(self) -> str:
        return str(self.identification["candidates"][0]["candidate_id"])


@dataclass
class World:
    api: Api
    platform_token: str
    a: Org
    b: Org
    a_record: dict[str, Any] = field(default_factory=dict)
    """A's identification as A saw it right after the search."""

    def fill(self, path: str) -> str:
        return path.format(
            a_org=self.a.id,
            b_org=self.b.id,
            a_ident=self.a.ident,
            a_cand=self.a.candidate,
            b_ident=self.b.ident,
            b_cand=self.b.candidate,
            a_key_admin=self.a.key_ids["admin"],
            a_key_operator=self.a.key_ids["operator"],
            a_key_auditor=self.a.key_ids["auditor"],
        )


def open_platform_key(settings: Settings, engine: Engine) -> str:
    with Platform.open(settings, engine=engine) as platform:
        _, token = create_key(
            platform,
            organisation_id=None,
            name="pat@platform",
            roles=frozenset({Role.PLATFORM_REVIEWER}),
            created_by="ops",
        )
    return token


def register(api: Api, name: str, *, admin: str, jurisdiction: str = "DE") -> tuple[str, str]:
    registered = api.call(
        "POST",
        "/v1/organisations",
        None,
        201,
        json={
            "name": name,
            "sector": "employer",
            "jurisdiction": jurisdiction,
            "admin_name": admin,
        },
    )
    return registered["organisation"]["id"], registered["admin_key"]["token"]


def approve(api: Api, platform_token: str, organisation_id: str) -> None:
    approved = api.call(
        "POST",
        f"/v1/organisations/{organisation_id}/approval",
        platform_token,
        200,
        json={
            "purposes": ["access_control"],
            "scale_tier": "medium",
            "reason": "staff entrance; DPIA reviewed",
        },
    )
    assert approved["status"] == "approved"


def build_org(
    api: Api, platform_token: str, name: str, tag: str, seed: int, *, visitors: bool
) -> Org:
    organisation_id, admin = register(api, name, admin=f"{tag}-admin")
    approve(api, platform_token, organisation_id)
    me = api.call("GET", "/v1/organisations/me", admin, 200)
    admin_key_id = next(
        k["key_id"]
        for k in api.call("GET", "/v1/keys", admin, 200)["keys"]
        if k["name"] == me["key"]
    )
    org = Org(
        id=organisation_id,
        name=name,
        tokens={"admin": admin},
        key_ids={"admin": admin_key_id},
        alice_photo=photo(seed),
    )
    for key_name, role in [
        ("operator", "operator"),
        ("reviewer", "reviewer"),
        ("reviewer2", "reviewer"),
        ("auditor", "auditor"),
    ]:
        key = api.call(
            "POST", "/v1/keys", admin, 201, json={"name": f"{tag}-{key_name}", "roles": [role]}
        )
        assert key["organisation_id"] == organisation_id
        org.tokens[key_name], org.key_ids[key_name] = key["token"], key["key_id"]
    galleries = [("staff", "alice", org.alice_photo)]
    if visitors:
        galleries.append(("visitors", "bob", photo(seed + 100)))
    for gallery, subject, image in galleries:
        created = api.call(
            "POST", "/v1/galleries", admin, 201, json={"name": gallery, "purpose": "access_control"}
        )
        org.gallery_ids[gallery] = created["id"]
        enrolled = api.call(
            "POST",
            f"/v1/galleries/{gallery}/subjects",
            org.tokens["operator"],
            201,
            **enrol_form(subject, image),
        )
        org.subject_ids[subject] = enrolled["subject_id"]
    org.alice_id = org.subject_ids["alice"]
    found = api.call(
        "POST",
        "/v1/galleries/staff/identify",
        org.tokens["operator"],
        200,
        **identify_form(org.alice_photo),
    )
    assert found["status"] == "pending_review"
    assert found["required_reviewers"] == 2
    assert [c["subject_id"] for c in found["candidates"]] == [org.alice_id]
    org.identification = found
    return org


@contextmanager
def deployment(
    home: Path, *, engine: Engine | None = None, **settings: Any
) -> Iterator[tuple[Api, str, Settings]]:
    engine = engine or fake_engine()
    config = Settings(home=home, **settings)
    platform_token = open_platform_key(config, engine)
    with TestClient(create_app(config, engine=engine)) as client:
        yield Api(client), platform_token, config


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, World]:
    """The two tenants, built once over HTTP; each test gets a copy of this deployment's home
    (database, key vault, signing keys), so that building them costs one copy per test."""
    home = tmp_path_factory.mktemp("template") / "home"
    with deployment(home) as (api, platform_token, _):
        a = build_org(api, platform_token, "Alpha Logistik GmbH", "alpha", 1, visitors=True)
        b = build_org(api, platform_token, "Beta Bau AG", "beta", 2, visitors=False)
        world = World(api=api, platform_token=platform_token, a=a, b=b)
        world.a_record = api.call(
            "GET", f"/v1/identifications/{a.ident}", a.tokens["operator"], 200
        )
    return home, world


@contextmanager
def copy_of(template: tuple[Path, World], home: Path) -> Iterator[World]:
    source, built = template
    shutil.copytree(source, home)
    engine = fake_engine()
    with TestClient(create_app(Settings(home=home), engine=engine)) as client:
        yield replace(built, api=Api(client), a=deepcopy(built.a), b=deepcopy(built.b))


@pytest.fixture
def world(template: tuple[Path, World], tmp_path: Path) -> Iterator[World]:
    """A fresh pair of tenants, for tests that change data."""
    with copy_of(template, tmp_path / "home") as fresh:
        yield fresh


@pytest.fixture(scope="module")
def shared(
    template: tuple[Path, World], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """One pair of tenants for the tests that only get refused (they change nothing)."""
    with copy_of(template, tmp_path_factory.mktemp("shared") / "home") as fresh:
        yield fresh


def assert_a_untouched(world: World) -> None:
    """A's keys, galleries, subjects, identification and audit trail are as they were."""
    api, a, b = world.api, world.a, world.b
    for name, token in a.tokens.items():
        me = api.call("GET", "/v1/organisations/me", token, 200)
        assert me["id"] == a.id, name
    keys = api.call("GET", "/v1/keys", a.tokens["admin"], 200)["keys"]
    assert {k["key_id"] for k in keys} == set(a.key_ids.values())
    assert all(k["revoked_at"] is None for k in keys)
    galleries = api.call("GET", "/v1/galleries", a.tokens["admin"], 200)["galleries"]
    assert {g["name"]: (g["id"], g["subjects"]) for g in galleries} == {
        "staff": (a.gallery_ids["staff"], 1),
        "visitors": (a.gallery_ids["visitors"], 1),
    }
    for gallery, subject in [("staff", "alice"), ("visitors", "bob")]:
        record = api.call(
            "GET", f"/v1/galleries/{gallery}/subjects/{subject}", a.tokens["operator"], 200
        )
        assert record["subject_id"] == a.subject_ids[subject]
        assert len(record["templates"]) == 1
        assert [c["reference"] for c in record["consents"]] == [f"form-{subject}"]
    assert api.call("GET", f"/v1/identifications/{a.ident}", a.tokens["auditor"], 200) == (
        world.a_record
    )
    due = api.call("POST", "/v1/retention/run?dry_run=true", a.tokens["admin"], 200)
    assert due["erased"] == [], "A's subjects have lost their keys"
    exported = api.call("GET", "/v1/audit/export", a.tokens["auditor"], 200)
    assert b.id not in exported
    assert "beta-" not in exported, "an action of B's keys was recorded in A's log"
    found = api.call(
        "POST",
        "/v1/galleries/staff/identify",
        a.tokens["operator"],
        200,
        **identify_form(a.alice_photo),
    )
    assert [c["subject_id"] for c in found["candidates"]] == [a.alice_id]


# --- 1. cross-tenant isolation -------------------------------------------------------------------


@dataclass(frozen=True)
class Crossing:
    """B's key of ``role`` sends this request; it must get ``status`` and pass ``check``."""

    method: str
    path: str
    role: str
    status: int
    code: str | None = None
    body: Callable[[World], dict[str, Any]] | None = None
    check: Callable[[World, Any], None] | None = None


def _own_org(world: World, me: dict[str, Any]) -> None:
    assert me["id"] == world.b.id
    assert me["name"] == world.b.name
    assert world.a.name not in str(me)


def _new_key_is_bs(world: World, key: dict[str, Any]) -> None:
    assert key["organisation_id"] == world.b.id


def _only_bs_keys(world: World, listed: dict[str, Any]) -> None:
    assert {k["organisation_id"] for k in listed["keys"]} == {world.b.id}
    assert not {k["key_id"] for k in listed["keys"]} & set(world.a.key_ids.values())


def _new_gallery_is_bs(world: World, created: dict[str, Any]) -> None:
    assert created["name"] == "visitors"
    assert created["id"] != world.a.gallery_ids["visitors"]
    assert created["subjects"] == 0
    mine = world.api.call("GET", "/v1/galleries", world.b.tokens["admin"], 200)["galleries"]
    assert {g["name"] for g in mine} == {"staff", "visitors"}


def _only_bs_galleries(world: World, listed: dict[str, Any]) -> None:
    assert [(g["name"], g["id"]) for g in listed["galleries"]] == [
        ("staff", world.b.gallery_ids["staff"])
    ]


def _withdrew_bs_staff(world: World, receipt: dict[str, Any]) -> None:
    assert receipt["counts"]["subjects"] == 1
    assert receipt["organisation"] == world.b.id
    mine = world.api.call("GET", "/v1/galleries", world.b.tokens["admin"], 200)["galleries"]
    assert mine == []


def _enrolled_into_bs_staff(world: World, enrolled: dict[str, Any]) -> None:
    assert enrolled["gallery"] == "staff"
    record = world.api.call(
        "GET", "/v1/galleries/staff/subjects/carol", world.b.tokens["operator"], 200
    )
    assert record["subject_id"] == enrolled["subject_id"]
    assert_problem(
        world.api.request("GET", "/v1/galleries/staff/subjects/carol", world.a.tokens["operator"]),
        404,
        "subject_not_found",
    )


def _bs_alice(world: World, record: dict[str, Any]) -> None:
    assert record["subject_id"] == world.b.alice_id
    assert world.a.alice_id not in str(record)


def _erased_bs_alice(world: World, receipt: dict[str, Any]) -> None:
    assert receipt["counts"]["subjects"] == 1
    assert receipt["organisation"] == world.b.id
    assert_problem(
        world.api.request("GET", "/v1/galleries/staff/subjects/alice", world.b.tokens["operator"]),
        404,
        "subject_not_found",
    )


def _never_as_alice(world: World, found: dict[str, Any]) -> None:
    assert world.a.alice_id not in str(found)
    assert all(c["subject_id"] == world.b.alice_id for c in found["candidates"])


def _finds_bs_alice(world: World, found: dict[str, Any]) -> None:
    assert [c["subject_id"] for c in found["candidates"]] == [world.b.alice_id]


def _export_is_bs(world: World, exported: str) -> None:
    assert exported.strip()
    a = world.a
    for secret in [
        a.id,
        a.name,
        *a.subject_ids.values(),
        *a.gallery_ids.values(),
        *a.key_ids.values(),
        a.ident,
    ]:
        assert secret not in exported
    assert world.b.id in exported


def _report_is_bs(world: World, report: str) -> None:
    assert world.b.name in report
    assert world.a.name not in report
    assert world.a.id not in report


def _retention_is_bs(world: World, report: dict[str, Any]) -> None:
    assert report["erased"] == []
    assert report["orphan_keys_removed"] == 0, "B's retention run destroyed keys it does not own"


CROSSINGS: list[Any] = [
    pytest.param(Crossing("GET", "/v1/organisations/me", "admin", 200, check=_own_org), id="me"),
    pytest.param(
        Crossing(
            "POST",
            "/v1/keys",
            "admin",
            201,
            body=lambda w: {"json": {"name": "beta-new", "roles": ["operator"]}},
            check=_new_key_is_bs,
        ),
        id="create-key",
    ),
    pytest.param(Crossing("GET", "/v1/keys", "admin", 200, check=_only_bs_keys), id="list-keys"),
    pytest.param(
        Crossing("DELETE", "/v1/keys/{a_key_admin}", "admin", 404, "key_not_found"),
        id="revoke-as-admin-key",
    ),
    pytest.param(
        Crossing("DELETE", "/v1/keys/{a_key_operator}", "admin", 404, "key_not_found"),
        id="revoke-as-operator-key",
    ),
    pytest.param(
        Crossing(
            "POST",
            "/v1/galleries",
            "admin",
            201,
            body=lambda w: {"json": {"name": "visitors", "purpose": "access_control"}},
            check=_new_gallery_is_bs,
        ),
        id="create-gallery-named-like-as",
    ),
    pytest.param(
        Crossing("GET", "/v1/galleries", "auditor", 200, check=_only_bs_galleries),
        id="list-galleries",
    ),
    pytest.param(
        Crossing("DELETE", "/v1/galleries/staff", "admin", 200, check=_withdrew_bs_staff),
        id="withdraw-shared-name",
    ),
    pytest.param(
        Crossing("DELETE", "/v1/galleries/visitors", "admin", 404, "gallery_not_found"),
        id="withdraw-as-only-gallery",
    ),
    pytest.param(
        Crossing(
            "POST",
            "/v1/galleries/staff/subjects",
            "operator",
            201,
            body=lambda w: enrol_form("carol", photo(3)),
            check=_enrolled_into_bs_staff,
        ),
        id="enrol-shared-name",
    ),
    pytest.param(
        Crossing(
            "POST",
            "/v1/galleries/visitors/subjects",
            "operator",
            404,
            "gallery_not_found",
            body=lambda w: enrol_form("bob", photo(3)),
        ),
        id="enrol-as-only-gallery",
    ),
    pytest.param(
        Crossing("GET", "/v1/galleries/staff/subjects/alice", "operator", 200, check=_bs_alice),
        id="subject-shared-name",
    ),
    pytest.param(
        Crossing(
            "GET", "/v1/galleries/visitors/subjects/bob", "operator", 404, "gallery_not_found"
        ),
        id="subject-as-only-gallery",
    ),
    pytest.param(
        Crossing(
            "DELETE", "/v1/galleries/staff/subjects/alice", "admin", 200, check=_erased_bs_alice
        ),
        id="erase-shared-name",
    ),
    pytest.param(
        Crossing(
            "DELETE", "/v1/galleries/visitors/subjects/bob", "admin", 404, "gallery_not_found"
        ),
        id="erase-as-only-gallery",
    ),
    pytest.param(
        Crossing(
            "POST",
            "/v1/galleries/staff/subjects/alice/consent/revocation",
            "admin",
            200,
            check=_erased_bs_alice,
        ),
        id="revoke-consent-shared-name",
    ),
    pytest.param(
        Crossing(
            "POST",
            "/v1/galleries/visitors/subjects/bob/consent/revocation",
            "admin",
            404,
            "gallery_not_found",
        ),
        id="revoke-consent-as-only-gallery",
    ),
    pytest.param(
        Crossing(
            "POST",
            "/v1/galleries/staff/identify",
            "operator",
            200,
            body=lambda w: identify_form(w.a.alice_photo),
            check=_never_as_alice,
        ),
        id="identify-as-photo",
    ),
    pytest.param(
        Crossing(
            "POST",
            "/v1/galleries/staff/identify",
            "operator",
            200,
            body=lambda w: identify_form(w.b.alice_photo),
            check=_finds_bs_alice,
        ),
        id="identify-own-photo",
    ),
    pytest.param(
        Crossing(
            "POST",
            "/v1/galleries/visitors/identify",
            "operator",
            404,
            "gallery_not_found",
            body=lambda w: identify_form(w.a.alice_photo),
        ),
        id="identify-as-only-gallery",
    ),
    *[
        pytest.param(
            Crossing("GET", "/v1/identifications/{a_ident}", role, 404, "identification_not_found"),
            id=f"identification-as-{role}",
        )
        for role in ROLES
    ],
    pytest.param(
        Crossing(
            "POST",
            "/v1/identifications/{a_ident}/candidates/{a_cand}/reviews",
            "reviewer",
            404,
            "identification_not_found",
            body=lambda w: {"json": {"outcome": "confirm"}},
        ),
        id="review-as-candidate",
    ),
    pytest.param(
        Crossing(
            "POST",
            "/v1/identifications/{a_ident}/candidates/{a_cand}/reviews",
            "reviewer",
            404,
            "identification_not_found",
            body=lambda w: {"json": {"outcome": "not_this_person", "note": "nope"}},
        ),
        id="reject-as-candidate",
    ),
    pytest.param(
        Crossing(
            "POST",
            "/v1/identifications/{b_ident}/candidates/{a_cand}/reviews",
            "reviewer",
            404,
            "identification_not_found",
            body=lambda w: {"json": {"outcome": "confirm"}},
        ),
        id="review-as-candidate-under-own-identification",
    ),
    pytest.param(
        Crossing("GET", "/v1/audit/export", "auditor", 200, check=_export_is_bs),
        id="audit-export",
    ),
    pytest.param(
        Crossing("GET", "/v1/reports/accountability", "auditor", 200, check=_report_is_bs),
        id="accountability-report",
    ),
    pytest.param(
        Crossing("POST", "/v1/retention/run", "admin", 200, check=_retention_is_bs),
        id="retention-run",
    ),
    pytest.param(
        Crossing("POST", "/v1/retention/run?dry_run=true", "admin", 200),
        id="retention-dry-run",
    ),
]


@pytest.mark.parametrize("case", CROSSINGS)
def test_a_tenant_never_reads_or_changes_another_tenants_data(world: World, case: Crossing) -> None:
    kw = case.body(world) if case.body else {}
    response = world.api.request(
        case.method, world.fill(case.path), world.b.tokens[case.role], **kw
    )
    if case.status >= 400:
        body = assert_problem(response, case.status, case.code)
        assert world.a.name not in str(body)
    else:
        assert response.status_code == case.status, response.text
        kind = response.headers["content-type"].split(";")[0]
        result = response.json() if kind == "application/json" else response.text
        if case.check is not None:
            case.check(world, result)
    assert_a_untouched(world)


def test_a_tenant_cannot_approve_or_suspend_another(world: World) -> None:
    api, a, b = world.api, world.a, world.b
    for action, body in [
        ("approval", {"purposes": ["access_control"], "scale_tier": "national", "reason": "x"}),
        ("suspension", {"reason": "competitor"}),
    ]:
        assert_problem(
            api.request("POST", f"/v1/organisations/{a.id}/{action}", b.tokens["admin"], json=body),
            403,
            "forbidden",
        )
    me = api.call("GET", "/v1/organisations/me", a.tokens["admin"], 200)
    assert (me["status"], me["scale_tier"]) == ("approved", "medium")
    assert_a_untouched(world)


# --- 2. roles ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    roles: frozenset[str]
    """The organisation roles let through; empty for the platform's own endpoints."""
    body: Callable[[World], dict[str, Any]] | None = None


def _json(document: dict[str, Any]) -> Callable[[World], dict[str, Any]]:
    return lambda w: {"json": document}


def _detect(w: World) -> dict[str, Any]:
    return {
        "data": {"purpose": "access_control"},
        "files": {"image": ("probe.jpg", w.a.alice_photo, "image/jpeg")},
    }


def _verify(w: World) -> dict[str, Any]:
    return {
        "data": {"purpose": "access_control", "consent": "explicit"},
        "files": {
            "image_a": ("a.jpg", w.a.alice_photo, "image/jpeg"),
            "image_b": ("b.jpg", w.a.alice_photo, "image/jpeg"),
        },
    }


ADMIN, OPERATING = frozenset({"admin"}), frozenset({"operator", "admin"})
AUDITING = frozenset({"auditor", "admin"})
TENANT_ENDPOINTS: dict[str, Endpoint] = {
    "me": Endpoint("GET", "/v1/organisations/me", EVERY_ROLE),
    "create-key": Endpoint("POST", "/v1/keys", ADMIN, _json({"name": "x", "roles": ["operator"]})),
    "list-keys": Endpoint("GET", "/v1/keys", ADMIN),
    "revoke-key": Endpoint("DELETE", "/v1/keys/{a_key_auditor}", ADMIN),
    "create-gallery": Endpoint(
        "POST", "/v1/galleries", ADMIN, _json({"name": "new", "purpose": "access_control"})
    ),
    "list-galleries": Endpoint("GET", "/v1/galleries", frozenset({"operator", "admin", "auditor"})),
    "withdraw-gallery": Endpoint("DELETE", "/v1/galleries/staff", ADMIN),
    "enrol": Endpoint(
        "POST", "/v1/galleries/staff/subjects", OPERATING, lambda w: enrol_form("dave", photo(4))
    ),
    "subject": Endpoint("GET", "/v1/galleries/staff/subjects/alice", OPERATING),
    "erase": Endpoint("DELETE", "/v1/galleries/staff/subjects/alice", ADMIN),
    "revoke-consent": Endpoint(
        "POST", "/v1/galleries/staff/subjects/alice/consent/revocation", ADMIN
    ),
    "identify": Endpoint(
        "POST",
        "/v1/galleries/staff/identify",
        OPERATING,
        lambda w: identify_form(w.a.alice_photo),
    ),
    "identification": Endpoint("GET", "/v1/identifications/{a_ident}", EVERY_ROLE),
    "review": Endpoint(
        "POST",
        "/v1/identifications/{a_ident}/candidates/{a_cand}/reviews",
        frozenset({"reviewer"}),
        _json({"outcome": "confirm"}),
    ),
    "audit-export": Endpoint("GET", "/v1/audit/export", AUDITING),
    "audit-verify": Endpoint("GET", "/v1/audit/verify", AUDITING),
    "report": Endpoint("GET", "/v1/reports/accountability", AUDITING),
    "retention": Endpoint("POST", "/v1/retention/run", ADMIN),
    "detect": Endpoint("POST", "/v1/detect", OPERATING, _detect),
    "verify": Endpoint("POST", "/v1/verify", OPERATING, _verify),
    "policy-check": Endpoint(
        "POST",
        "/v1/policy/check",
        EVERY_ROLE,
        _json({"operation": "identify", "purpose": "access_control"}),
    ),
    "scale-request": Endpoint(
        "POST", "/v1/scale-requests", ADMIN, _json({"tier": "large", "reason": "growth"})
    ),
}
PLATFORM_ENDPOINTS: dict[str, Endpoint] = {
    "approve": Endpoint(
        "POST",
        "/v1/organisations/{a_org}/approval",
        frozenset(),
        _json({"purposes": ["access_control"], "scale_tier": "national", "reason": "self"}),
    ),
    "suspend": Endpoint(
        "POST", "/v1/organisations/{a_org}/suspension", frozenset(), _json({"reason": "x"})
    ),
    "decide-scale": Endpoint(
        "POST",
        "/v1/scale-requests/00000000-0000-0000-0000-000000000000/decision",
        frozenset(),
        _json({"approve": True, "reason": "self"}),
    ),
}
ALL_ENDPOINTS = {**TENANT_ENDPOINTS, **PLATFORM_ENDPOINTS}
REFUSALS = [
    pytest.param(name, role, id=f"{name}-{role}")
    for name, endpoint in ALL_ENDPOINTS.items()
    for role in ROLES
    if role not in endpoint.roles
]


def send(world: World, endpoint: Endpoint, token: str | None, **kw: Any) -> httpx.Response:
    body = endpoint.body(world) if endpoint.body else {}
    return world.api.request(endpoint.method, world.fill(endpoint.path), token, **body, **kw)


@pytest.mark.parametrize(("name", "role"), REFUSALS)
def test_each_endpoint_refuses_keys_without_its_role(shared: World, name: str, role: str) -> None:
    endpoint = ALL_ENDPOINTS[name]
    body = assert_problem(send(shared, endpoint, shared.a.tokens[role]), 403, "forbidden")
    if endpoint.roles:
        assert "role" in body["detail"]
    else:
        assert "platform" in body["detail"]


def test_refused_requests_changed_nothing(shared: World) -> None:
    """Runs after the refusals (same module world): nothing they tried happened."""
    api, a = shared.api, shared.a
    me = api.call("GET", "/v1/organisations/me", a.tokens["admin"], 200)
    assert (me["status"], me["scale_tier"]) == ("approved", "medium")
    keys = api.call("GET", "/v1/keys", a.tokens["admin"], 200)["keys"]
    assert "x" not in {k["name"] for k in keys}
    assert all(k["revoked_at"] is None for k in keys if k["key_id"] in a.key_ids.values())
    galleries = api.call("GET", "/v1/galleries", a.tokens["admin"], 200)["galleries"]
    assert sorted((g["name"], g["subjects"]) for g in galleries) == [
        ("staff", 1),
        ("visitors", 1),
    ]
    record = api.call("GET", f"/v1/identifications/{a.ident}", a.tokens["auditor"], 200)
    assert record == shared.a_record


def test_admin_cannot_mint_a_platform_key(shared: World) -> None:
    response = shared.api.request(
        "POST",
        "/v1/keys",
        shared.a.tokens["admin"],
        json={"name": "sneaky", "roles": ["platform_reviewer"]},
    )
    body = assert_problem(response, 422)
    assert "platform reviewer" in body["detail"]


def test_only_a_platform_key_approves_an_organisation(shared: World) -> None:
    api = shared.api
    organisation_id, admin = register(api, "Gamma Pending GmbH", admin="gamma-admin")
    decision = {"purposes": ["access_control"], "reason": "self-approval"}
    for token in [admin, shared.a.tokens["admin"], shared.b.tokens["admin"]]:
        assert_problem(
            api.request(
                "POST", f"/v1/organisations/{organisation_id}/approval", token, json=decision
            ),
            403,
            "forbidden",
        )
    assert api.call("GET", "/v1/organisations/me", admin, 200)["status"] == "pending_review"
    approved = api.call(
        "POST",
        f"/v1/organisations/{organisation_id}/approval",
        shared.platform_token,
        200,
        json=decision,
    )
    assert approved["status"] == "approved"


def test_reviews_need_distinct_reviewers(shared: World) -> None:
    api, a = shared.api, shared.a
    found = api.call(
        "POST",
        "/v1/galleries/staff/identify",
        a.tokens["operator"],
        200,
        **identify_form(a.alice_photo),
    )
    path = (
        f"/v1/identifications/{found['identification_id']}/candidates/"
        f"{found['candidates'][0]['candidate_id']}/reviews"
    )
    first = api.call("POST", path, a.tokens["reviewer"], 200, json={"outcome": "confirm"})
    assert first["status"] == "pending_review"
    assert_problem(
        api.request("POST", path, a.tokens["reviewer"], json={"outcome": "confirm"}),
        409,
        "review_error",
    )
    second = api.call("POST", path, a.tokens["reviewer2"], 200, json={"outcome": "confirm"})
    assert second["status"] == "confirmed"


def test_the_person_who_searched_cannot_review_the_candidates(shared: World) -> None:
    api, a = shared.api, shared.a
    both = api.call(
        "POST",
        "/v1/keys",
        a.tokens["admin"],
        201,
        json={"name": "alpha-sam", "roles": ["operator", "reviewer"]},
    )["token"]
    found = api.call(
        "POST", "/v1/galleries/staff/identify", both, 200, **identify_form(a.alice_photo)
    )
    path = (
        f"/v1/identifications/{found['identification_id']}/candidates/"
        f"{found['candidates'][0]['candidate_id']}/reviews"
    )
    response = api.request("POST", path, both, json={"outcome": "confirm"})
    body = assert_problem(response, 409, "review_error")
    assert "ran the search" in body["detail"]


# --- 3. authentication ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", list(ALL_ENDPOINTS))
def test_every_endpoint_needs_a_key(shared: World, name: str) -> None:
    response = send(shared, ALL_ENDPOINTS[name], None)
    body = assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"
    assert "API key" in body["detail"]


@pytest.mark.parametrize("name", list(TENANT_ENDPOINTS))
def test_a_platform_key_does_not_act_for_an_organisation(shared: World, name: str) -> None:
    body = assert_problem(
        send(shared, TENANT_ENDPOINTS[name], shared.platform_token), 403, "forbidden"
    )
    assert "platform key" in body["detail"]


@pytest.fixture(scope="module")
def revoked(shared: World) -> str:
    api, admin = shared.api, shared.a.tokens["admin"]
    key = api.call("POST", "/v1/keys", admin, 201, json={"name": "alpha-gone", "roles": ["admin"]})
    assert api.call("GET", "/v1/organisations/me", key["token"], 200)["id"] == shared.a.id
    api.call("DELETE", f"/v1/keys/{key['key_id']}", admin, 204)
    token: str = key["token"]
    return token


BAD_CREDENTIALS: list[Any] = [
    pytest.param(lambda w, r: {"Authorization": "Bearer nonsense"}, id="not-a-key"),
    pytest.param(lambda w, r: {"Authorization": "Bearer fa_"}, id="bare-prefix"),
    pytest.param(lambda w, r: {"Authorization": "Bearer fa_abc"}, id="no-secret"),
    pytest.param(lambda w, r: {"Authorization": "Bearer fa__"}, id="empty-parts"),
    pytest.param(
        lambda w, r: {
            "Authorization": f"Bearer fa_{secrets.token_hex(6)}_{secrets.token_urlsafe(32)}"
        },
        id="unknown",
    ),
    pytest.param(
        lambda w, r: {"Authorization": "Bearer " + w.a.tokens["admin"][:-4] + "AAAA"},
        id="wrong-secret",
    ),
    pytest.param(
        lambda w, r: {"Authorization": "Bearer " + w.a.tokens["admin"].replace("fa_", "fb_", 1)},
        id="wrong-scheme-marker",
    ),
    pytest.param(lambda w, r: {"Authorization": f"Bearer {r}"}, id="revoked"),
    pytest.param(lambda w, r: {"X-API-Key": r}, id="revoked-x-api-key"),
    pytest.param(lambda w, r: {"X-API-Key": "fa_0123456789ab_nope"}, id="unknown-x-api-key"),
    pytest.param(lambda w, r: {"Authorization": "Basic " + w.a.tokens["admin"]}, id="basic-scheme"),
]


@pytest.mark.parametrize("name", ["me", "identify", "audit-export", "approve"])
@pytest.mark.parametrize("credentials", BAD_CREDENTIALS)
def test_bad_keys_are_unauthenticated(
    shared: World,
    revoked: str,
    name: str,
    credentials: Callable[[World, str], dict[str, str]],
) -> None:
    response = send(shared, ALL_ENDPOINTS[name], None, headers=credentials(shared, revoked))
    assert_problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"] == "Bearer"


def test_the_x_api_key_header_and_any_bearer_case_work(shared: World) -> None:
    token = shared.a.tokens["auditor"]
    for headers in [{"X-API-Key": token}, {"Authorization": f"bearer {token}"}]:
        response = shared.api.request("GET", "/v1/organisations/me", headers=headers)
        assert response.status_code == 200, response.text
        assert response.json()["key"] == "alpha-auditor"


# --- 4. problem details --------------------------------------------------------------------------


def _text(w: World) -> bytes:
    return b"hello, this is plain text and not a picture"


PROBLEMS: list[Any] = [
    pytest.param(
        "POST",
        "/v1/galleries/staff/identify",
        "operator",
        lambda w: {
            "data": {"consent": "explicit", "reviewers": "2"},
            "files": {"image": ("p.jpg", w.a.alice_photo, "image/jpeg")},
        },
        422,
        "purpose_required",
        id="identify-without-purpose",
    ),
    pytest.param(
        "POST",
        "/v1/galleries/staff/subjects",
        "operator",
        lambda w: {
            "data": {"subject": "erin"},
            "files": {"images": ("p.jpg", w.a.alice_photo, "image/jpeg")},
        },
        422,
        "purpose_required",
        id="enrol-without-purpose",
    ),
    pytest.param(
        "POST",
        "/v1/detect",
        "operator",
        lambda w: {"files": {"image": ("p.jpg", w.a.alice_photo, "image/jpeg")}},
        422,
        "purpose_required",
        id="detect-without-purpose",
    ),
    pytest.param(
        "POST",
        "/v1/galleries",
        "admin",
        lambda w: {"json": {"name": "no-purpose"}},
        422,
        "purpose_required",
        id="gallery-without-purpose",
    ),
    pytest.param(
        "POST",
        "/v1/galleries/staff/identify",
        "operator",
        lambda w: {
            "data": {"purpose": "world_domination"},
            "files": {"image": ("p.jpg", w.a.alice_photo, "image/jpeg")},
        },
        422,
        "purpose_required",
        id="identify-with-an-invalid-purpose",
    ),
    pytest.param(
        "POST",
        "/v1/galleries",
        "admin",
        lambda w: {
            "content": b'{"name": "x", "purpose": ',
            "headers": {"content-type": "application/json"},
        },
        422,
        "invalid_request",
        id="invalid-json",
    ),
    pytest.param(
        "POST",
        "/v1/keys",
        "admin",
        lambda w: {"json": {"name": ["not", "a", "name"], "roles": "admin"}},
        422,
        "invalid_request",
        id="key-with-wrong-field-types",
    ),
    pytest.param(
        "POST",
        "/v1/keys",
        "admin",
        lambda w: {"json": {"name": "x", "roles": ["superuser"]}},
        422,
        "invalid_request",
        id="key-with-an-unknown-role",
    ),
    pytest.param(
        "POST",
        "/v1/keys",
        "admin",
        lambda w: {"json": ["name", "roles"]},
        422,
        "invalid_request",
        id="json-array-instead-of-object",
    ),
    pytest.param(
        "POST",
        "/v1/galleries/staff/identify",
        "operator",
        lambda w: {
            **identify_form(w.a.alice_photo),
            "data": {"purpose": "access_control", "k": "many"},
        },
        422,
        "invalid_request",
        id="identify-k-not-a-number",
    ),
    pytest.param(
        "POST",
        "/v1/galleries/staff/identify",
        "operator",
        lambda w: {
            **identify_form(w.a.alice_photo),
            "data": {"purpose": "access_control", "reviewers": "-1", "realtime": "sometimes"},
        },
        422,
        "invalid_request",
        id="identify-bad-context-types",
    ),
    pytest.param(
        "POST",
        "/v1/galleries/staff/identify",
        "operator",
        lambda w: {"data": {"purpose": "access_control"}},
        422,
        "invalid_request",
        id="identify-without-image",
    ),
    pytest.param(
        "POST",
        "/v1/identifications/{a_ident}/candidates/{a_cand}/reviews",
        "reviewer",
        lambda w: {"json": {"outcome": "maybe"}},
        422,
        "invalid_request",
        id="review-unknown-outcome",
    ),
    pytest.param(
        "POST",
        "/v1/galleries/staff/identify",
        "operator",
        lambda w: identify_form(_text(w)),
        422,
        "not_an_image",
        id="identify-not-an-image",
    ),
    pytest.param(
        "POST",
        "/v1/galleries/staff/subjects",
        "operator",
        lambda w: enrol_form("frank", _text(w)),
        422,
        "not_an_image",
        id="enrol-not-an-image",
    ),
    pytest.param(
        "POST",
        "/v1/detect",
        "operator",
        lambda w: {**_detect(w), "files": {"image": ("x.txt", _text(w), "text/plain")}},
        422,
        "not_an_image",
        id="detect-not-an-image",
    ),
    pytest.param(
        "POST",
        "/v1/galleries/staff/subjects",
        "operator",
        lambda w: enrol_form("gina", b""),
        422,
        "empty_image",
        id="enrol-empty-upload",
    ),
    pytest.param(
        "POST",
        "/v1/galleries/staff/identify",
        "operator",
        lambda w: identify_form(b""),
        422,
        None,
        id="identify-empty-upload",
    ),
    pytest.param(
        "POST",
        "/v1/galleries/staff/subjects",
        "operator",
        lambda w: enrol_form("hank", w.a.alice_photo[: len(w.a.alice_photo) // 2]),
        422,
        "truncated_image",
        id="enrol-truncated-jpeg",
    ),
    pytest.param("GET", "/v1/nothing-here", "admin", None, 404, "not_found", id="unknown-route"),
    pytest.param("GET", "/v2/galleries", None, None, 404, "not_found", id="unknown-version"),
    pytest.param(
        "PUT", "/v1/galleries", "admin", None, 405, "method_not_allowed", id="wrong-method"
    ),
    pytest.param(
        "DELETE", "/v1/organisations/me", "admin", None, 405, "method_not_allowed", id="delete-me"
    ),
    pytest.param(
        "POST",
        "/v1/galleries/nope/identify",
        "operator",
        lambda w: identify_form(w.a.alice_photo),
        404,
        "gallery_not_found",
        id="identify-unknown-gallery",
    ),
    pytest.param(
        "GET",
        "/v1/galleries/nope/subjects/alice",
        "operator",
        None,
        404,
        "gallery_not_found",
        id="subject-in-unknown-gallery",
    ),
    pytest.param(
        "DELETE",
        "/v1/galleries/nope",
        "admin",
        None,
        404,
        "gallery_not_found",
        id="withdraw-unknown",
    ),
    pytest.param(
        "GET",
        "/v1/galleries/staff/subjects/nobody",
        "operator",
        None,
        404,
        "subject_not_found",
        id="unknown-subject",
    ),
    pytest.param(
        "GET",
        "/v1/identifications/not-an-id",
        "auditor",
        None,
        404,
        "identification_not_found",
        id="unknown-identification",
    ),
    pytest.param(
        "DELETE", "/v1/keys/not-a-key", "admin", None, 404, "key_not_found", id="unknown-key"
    ),
    pytest.param(
        "POST",
        "/v1/organisations/nobody/approval",
        "platform",
        lambda w: {"json": {"purposes": ["access_control"], "reason": "x"}},
        404,
        "organisation_not_found",
        id="approve-unknown-organisation",
    ),
    pytest.param(
        "POST",
        "/v1/galleries/staff/identify",
        "operator",
        lambda w: {
            "data": {"purpose": "access_control"},
            "files": {"image": ("p.jpg", w.a.alice_photo, "image/jpeg")},
        },
        403,
        "policy_denied",
        id="identify-without-consent-or-reviewers",
    ),
    pytest.param(
        "POST",
        "/v1/galleries/staff/identify",
        "operator",
        lambda w: {
            "data": {"purpose": "media_archive_search"},
            "files": {"image": ("p.jpg", w.a.alice_photo, "image/jpeg")},
        },
        422,
        "invalid_input",
        id="identify-for-another-purpose",
    ),
    pytest.param(
        "POST",
        "/v1/organisations",
        None,
        lambda w: {
            "json": {
                "name": "Delta",
                "sector": "employer",
                "jurisdiction": "Atlantis",
                "admin_name": "d",
            }
        },
        422,
        "invalid_input",
        id="register-unknown-jurisdiction",
    ),
]


@pytest.mark.parametrize(("method", "path", "role", "body", "status", "code"), PROBLEMS)
def test_every_error_is_a_problem(
    shared: World,
    method: str,
    path: str,
    role: str | None,
    body: Callable[[World], dict[str, Any]] | None,
    status: int,
    code: str | None,
) -> None:
    token = shared.platform_token if role == "platform" else shared.a.tokens[role] if role else None
    kw = body(shared) if body else {}
    problem = assert_problem(
        shared.api.request(method, shared.fill(path), token, **kw), status, code
    )
    if code == "purpose_required":
        assert all(p.value in problem["detail"] for p in Purpose)
        assert any(e["field"].endswith("purpose") for e in problem["errors"])
    if code == "invalid_request":
        assert problem["errors"], problem
        assert all({"field", "problem"} <= e.keys() for e in problem["errors"])
    if code == "policy_denied":
        assert [r["rule"] for r in problem["reasons"]], problem


def test_wrong_field_types_name_the_fields(shared: World) -> None:
    response = shared.api.request(
        "POST",
        "/v1/keys",
        shared.a.tokens["admin"],
        json={"name": ["not", "a", "name"], "roles": "admin"},
    )
    problem = assert_problem(response, 422, "invalid_request")
    assert {e["field"] for e in problem["errors"]} >= {"name", "roles"}


def test_wrong_method_says_what_is_allowed(shared: World) -> None:
    response = shared.api.request("PUT", "/v1/galleries", shared.a.tokens["admin"])
    assert_problem(response, 405, "method_not_allowed")
    allowed = set(response.headers["allow"].replace(" ", "").split(","))
    # Starlette names the methods of the first route on the path only (here POST), not GET too.
    assert allowed
    assert allowed <= {"GET", "POST"}


def test_a_pending_organisation_cannot_enrol(shared: World) -> None:
    """A gallery can only be created once approved, so the test puts one in place directly
    (as if the organisation had been approved, and a reviewer had since re-opened its case)."""
    api = shared.api
    organisation_id, admin = register(api, "Epsilon Pending GmbH", admin="epsilon-admin")
    platform: Platform = api.client.app.state.platform  # type: ignore[attr-defined]
    with platform.transaction() as session:
        pending = load_organisation(session, organisation_id)
    as_if_approved = replace(
        pending,
        status=OrganisationStatus.APPROVED,
        approved_purposes=frozenset({Purpose.ACCESS_CONTROL}),
    )
    create_gallery(
        platform.acting_for(as_if_approved),
        name="staff",
        purpose=Purpose.ACCESS_CONTROL,
        actor="test",
    )
    for path, form in [
        ("/v1/galleries/staff/subjects", enrol_form("ida", photo(5))),
        (
            "/v1/detect",
            {
                "data": {"purpose": "access_control"},
                "files": {"image": ("p.jpg", photo(5), "image/jpeg")},
            },
        ),
    ]:
        problem = assert_problem(api.request("POST", path, admin, **form), 403, "policy_denied")
        assert "CORE-STATUS" in [r["rule"] for r in problem["reasons"]]
        assert problem["decision"] == "deny"
        assert "CORE-STATUS" in problem["detail"]
    refused = api.request(
        "POST", "/v1/galleries", admin, json={"name": "more", "purpose": "access_control"}
    )
    assert_problem(refused, 422, "invalid_input")


def test_a_suspended_organisation_can_only_delete(world: World) -> None:
    api, a = world.api, world.a
    api.call(
        "POST",
        f"/v1/organisations/{a.id}/suspension",
        world.platform_token,
        200,
        json={"reason": "complaint under investigation"},
    )
    problem = assert_problem(
        api.request(
            "POST",
            "/v1/galleries/staff/identify",
            a.tokens["operator"],
            **identify_form(a.alice_photo),
        ),
        403,
        "policy_denied",
    )
    assert "CORE-STATUS" in [r["rule"] for r in problem["reasons"]]
    receipt = api.call("DELETE", "/v1/galleries/staff/subjects/alice", a.tokens["admin"], 200)
    assert receipt["counts"]["subjects"] == 1


def test_the_quality_gate_refuses_a_face_cut_off(tmp_path: Path) -> None:
    cut_off = fake_engine(faces=[((-0.3, 0.1, 0.4, 0.9), 1.5)])
    with deployment(tmp_path / "home", engine=cut_off) as (api, platform_token, _):
        organisation_id, admin = register(api, "Zeta GmbH", admin="zeta-admin")
        approve(api, platform_token, organisation_id)
        api.call(
            "POST", "/v1/galleries", admin, 201, json={"name": "staff", "purpose": "access_control"}
        )
        response = api.request(
            "POST", "/v1/galleries/staff/subjects", admin, **enrol_form("jo", photo(6))
        )
        problem = assert_problem(response, 422, "quality_rejected")
        assert problem["reasons"] == ["face_cut_off"]
        assert api.call("GET", "/v1/galleries", admin, 200)["galleries"][0]["subjects"] == 0


# --- 5. limits -----------------------------------------------------------------------------------

BODY_LIMIT = 4_000


@pytest.fixture
def small_bodies(tmp_path: Path) -> Iterator[tuple[Api, str]]:
    with deployment(tmp_path / "home", service=ServiceSettings(max_body_bytes=BODY_LIMIT)) as (
        api,
        platform_token,
        _,
    ):
        organisation_id, admin = register(api, "Eta GmbH", admin="eta-admin")
        approve(api, platform_token, organisation_id)
        api.call(
            "POST", "/v1/galleries", admin, 201, json={"name": "staff", "purpose": "access_control"}
        )
        yield api, admin


def _too_large(response: httpx.Response) -> None:
    problem = assert_problem(response, 413, "request_too_large")
    assert f"{BODY_LIMIT:,}" in problem["detail"]


def test_a_declared_body_over_the_limit_is_refused(small_bodies: tuple[Api, str]) -> None:
    api, admin = small_bodies
    big_json = {"name": "x" * BODY_LIMIT, "roles": ["operator"]}
    _too_large(api.request("POST", "/v1/keys", admin, json=big_json))
    _too_large(api.request("POST", "/v1/keys", None, json=big_json))
    _too_large(
        api.request("POST", "/v1/galleries/staff/subjects", admin, **enrol_form("kim", photo(7)))
    )
    keys = api.call("GET", "/v1/keys", admin, 200)["keys"]
    assert [k["name"] for k in keys] == ["eta-admin"]


def _streamed(chunks: list[bytes]) -> Iterator[bytes]:
    yield from chunks


def test_a_streamed_json_body_over_the_limit_is_refused(small_bodies: tuple[Api, str]) -> None:
    api, admin = small_bodies
    document = b'{"name": "' + b"x" * BODY_LIMIT + b'", "roles": ["operator"]}'
    response = api.request(
        "POST",
        "/v1/keys",
        admin,
        content=_streamed([document[:1000], document[1000:]]),
        headers={"content-type": "application/json"},
    )
    assert "content-length" not in {k.lower() for k in response.request.headers}
    _too_large(response)


def test_a_streamed_upload_over_the_limit_is_refused(small_bodies: tuple[Api, str]) -> None:
    api, admin = small_bodies
    request = api.client.build_request(
        "POST", "/v1/galleries/staff/subjects", **enrol_form("lee", photo(8))
    )
    payload = request.read()
    headers = {
        **bearer(admin),
        "content-type": request.headers["content-type"],
    }
    response = api.client.post(
        "/v1/galleries/staff/subjects",
        headers=headers,
        content=_streamed([payload[i : i + 1024] for i in range(0, len(payload), 1024)]),
    )
    _too_large(response)


def test_a_streamed_body_under_the_limit_is_accepted(small_bodies: tuple[Api, str]) -> None:
    api, admin = small_bodies
    document = b'{"name": "streamed", "roles": ["auditor"]}'
    response = api.request(
        "POST",
        "/v1/keys",
        admin,
        content=_streamed([document[:10], document[10:]]),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 201, response.text


def test_an_image_over_the_image_limit_is_refused_clearly(tmp_path: Path) -> None:
    limit = 6_000
    with deployment(tmp_path / "home", images=ImageLimits(max_bytes=limit)) as (
        api,
        platform_token,
        _,
    ):
        organisation_id, admin = register(api, "Theta GmbH", admin="theta-admin")
        approve(api, platform_token, organisation_id)
        api.call(
            "POST", "/v1/galleries", admin, 201, json={"name": "staff", "purpose": "access_control"}
        )
        big = photo(9)
        assert len(big) > limit
        small = photo(9, size=(64, 48))
        assert len(small) <= limit
        for path, form in [
            ("/v1/galleries/staff/subjects", enrol_form("max", big)),
            ("/v1/galleries/staff/identify", identify_form(big)),
            (
                "/v1/detect",
                {
                    "data": {"purpose": "access_control"},
                    "files": {"image": ("p.jpg", big, "image/jpeg")},
                },
            ),
        ]:
            response = api.request("POST", path, admin, **form)
            assert response.status_code in {413, 422}, response.text
            problem = assert_problem(response, response.status_code)
            assert f"{limit:,} bytes" in problem["detail"]
            assert (
                "photo.jpg" in problem["detail"]
                or "probe.jpg" in problem["detail"]
                or ("p.jpg" in problem["detail"])
            )
        detected = api.call(
            "POST",
            "/v1/detect",
            admin,
            200,
            data={"purpose": "access_control"},
            files={"image": ("p.jpg", small, "image/jpeg")},
        )
        assert len(detected["faces"]) == 1


def test_the_rate_limit_is_per_key(tmp_path: Path) -> None:
    engine = fake_engine()
    settings = Settings(home=tmp_path / "home", service=ServiceSettings(rate_limit="5/minute"))
    with Platform.open(settings, engine=engine) as platform:
        tokens = [
            create_key(
                platform,
                organisation_id="local",
                name=name,
                roles=frozenset({Role.AUDITOR}),
                created_by="test",
            )[1]
            for name in ("first", "second")
        ]
    with TestClient(create_app(settings, engine=engine)) as client:
        api = Api(client)
        for _ in range(5):
            api.call("GET", "/v1/organisations/me", tokens[0], 200)
        response = api.request("GET", "/v1/organisations/me", tokens[0])
        problem = assert_problem(response, 429, "rate_limited")
        assert int(response.headers["retry-after"]) > 0
        assert "5 per 1 minute" in problem["detail"]
        assert api.call("GET", "/v1/organisations/me", tokens[1], 200)["key"] == "second"


# --- 6. health, metrics, docs --------------------------------------------------------------------


def test_health_readiness_metrics_and_docs(shared: World) -> None:
    client = shared.api.client
    health = client.get("/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"ready": True, "checks": {"database": "ok", "engine": "ok"}}
    echoed = client.get("/healthz", headers={"X-Request-ID": "trace-me-42"})
    assert echoed.headers["x-request-id"] == "trace-me-42"
    assert client.get("/healthz").headers["x-request-id"]

    shared.api.call(
        "POST",
        "/v1/galleries/staff/identify",
        shared.a.tokens["operator"],
        200,
        **identify_form(shared.a.alice_photo),
    )
    metrics = client.get("/metrics")
    assert metrics.status_code == 200
    assert metrics.headers["content-type"].startswith("text/plain")
    assert "# TYPE faceaccord_requests_total counter" in metrics.text
    assert 'faceaccord_requests_total{method="GET",route="/healthz",status="200"}' in metrics.text
    assert 'route="/v1/galleries/{gallery}/identify"' in metrics.text
    assert "faceaccord_request_seconds_bucket" in metrics.text
    assert shared.a.tokens["admin"] not in metrics.text

    docs = client.get("/docs")
    assert docs.status_code == 200
    assert "text/html" in docs.headers["content-type"]
    schema = client.get("/openapi.json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for endpoint in ALL_ENDPOINTS.values():
        template = endpoint.path.split("?")[0]
        template = template.replace("{a_ident}", "{identification_id}").replace(
            "{a_cand}", "{candidate_id}"
        )
        template = template.replace("{a_org}", "{organisation_id}").replace(
            "{a_key_auditor}", "{key_id}"
        )
        template = template.replace("/staff", "/{gallery}").replace("/alice", "/{subject}")
        template = template.replace("00000000-0000-0000-0000-000000000000", "{request_id}")
        assert template in paths, template
        assert endpoint.method.lower() in paths[template]
