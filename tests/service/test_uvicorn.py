"""The real service under uvicorn, as ``faceaccord serve`` runs it: a subprocess on a loopback
port, the real face engine, a home of its own. Concurrent clients enrol and identify in one
gallery at once, and everything they were told is checked against what the service kept (the
subjects, the audit chain, the index after a restart); SIGTERM lets a request in flight finish.

Every wait is bounded and every server is killed in ``finally``; its log is in the failure."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from faceaccord.samples import SamplePhotos

pytestmark = pytest.mark.real_model

FACEACCORD = Path(sys.executable).with_name("faceaccord")
READY_TIMEOUT_S = 60.0
COMMAND_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 90.0
GRACEFUL_S = 20
"""FACEACCORD_SERVICE__GRACEFUL_SHUTDOWN_SECONDS for these servers."""
EXIT_MARGIN_S = 10.0
PURPOSE = "access_control"
GALLERY = "doors"
THREADS = 6
ENROLMENTS = 24
IDENTIFICATIONS = 24
SLOW_PHOTOS = 12
"""Photos in the one enrolment kept in flight across SIGTERM (about 0.35 s of engine each)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def service_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FACEACCORD_")}
    return env | {
        "FACEACCORD_HOME": str(home),
        "FACEACCORD_SERVICE__RATE_LIMIT": "100000/minute",
        "FACEACCORD_SERVICE__GRACEFUL_SHUTDOWN_SECONDS": str(GRACEFUL_S),
    }


def platform_key(home: Path) -> str:
    """Bootstrapped with the command line before any server runs on ``home``."""
    completed = subprocess.run(
        [str(FACEACCORD), "platform-key", "--name", "pat@platform", "--json"],
        env=service_env(home),
        capture_output=True,
        text=True,
        check=False,
        timeout=COMMAND_TIMEOUT_S,
    )
    assert completed.returncode == 0, completed.stderr
    token: str = json.loads(completed.stdout)["token"]
    return token


class Server:
    """One ``faceaccord serve`` process; its output goes to a log file beside the home."""

    def __init__(self, home: Path, log: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._out = log.open("a", encoding="utf-8")
        self.process = subprocess.Popen(
            [str(FACEACCORD), "serve", "--port", str(self.port)],
            env=service_env(home),
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def output(self) -> str:
        self._out.flush()
        return self.log.read_text(encoding="utf-8", errors="replace")[-6000:]

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the server exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        pytest.fail(f"the server was not ready within {READY_TIMEOUT_S:.0f} s:\n{self.output()}")

    def terminate(self) -> tuple[int, float]:
        """SIGTERM; the exit status and the seconds it took to exit."""
        sent = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=GRACEFUL_S + EXIT_MARGIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the server did not exit within {GRACEFUL_S + EXIT_MARGIN_S:.0f} s")
        return code, time.monotonic() - sent

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=EXIT_MARGIN_S)
        self._out.close()


@contextmanager
def running(home: Path, log: Path) -> Iterator[Server]:
    server = Server(home, log)
    try:
        server.wait_ready()
        yield server
    finally:
        server.kill()


@dataclass(frozen=True)
class Tenant:
    """An approved organisation with a gallery, and its keys."""

    admin: str
    operator: str
    auditor: str


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def call(
    client: httpx.Client, method: str, path: str, token: str | None, status: int, **kw: Any
) -> Any:
    response = client.request(method, path, headers=auth(token) if token else {}, **kw)
    assert response.status_code == status, response.text
    kind = response.headers.get("content-type", "").split(";")[0]
    is_json = kind in {"application/json", "application/problem+json"}
    return response.json() if is_json else response.text


def set_up_tenant(url: str, platform_token: str) -> Tenant:
    with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
        registered = call(client, "POST", "/v1/organisations", None, 201, json={
            "name": "Harbour Offices Ltd", "sector": "commercial", "jurisdiction": "US-NY",
            "admin_name": "ada@harbour.example",
        })  # fmt: skip
        org_id, admin = registered["organisation"]["id"], registered["admin_key"]["token"]
        approval = {"purposes": [PURPOSE], "scale_tier": "small", "reason": "office doors"}
        call(client, "POST", f"/v1/organisations/{org_id}/approval", platform_token, 200,
             json=approval)  # fmt: skip
        keys = {
            role: call(client, "POST", "/v1/keys", admin, 201,
                       json={"name": f"{role}@harbour", "roles": [role]})["token"]
            for role in ("operator", "auditor")
        }  # fmt: skip
        call(
            client, "POST", "/v1/galleries", admin, 201, json={"name": GALLERY, "purpose": PURPOSE}
        )
    return Tenant(admin=admin, operator=keys["operator"], auditor=keys["auditor"])


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def platform_token(home: Path) -> str:
    return platform_key(home)


def photo(path: Path) -> tuple[str, bytes, str]:
    return (path.name, path.read_bytes(), "image/jpeg")


def enrolment(client: httpx.Client, token: str, subject: str, *paths: Path) -> httpx.Response:
    return client.post(
        f"/v1/galleries/{GALLERY}/subjects",
        headers=auth(token),
        data={"subject": subject, "purpose": PURPOSE},
        files=[("images", photo(p)) for p in paths],
    )


def identification(client: httpx.Client, token: str, path: Path) -> httpx.Response:
    return client.post(
        f"/v1/galleries/{GALLERY}/identify",
        headers=auth(token),
        data={"purpose": PURPOSE},
        files={"image": photo(path)},
    )


@dataclass(frozen=True)
class Outcome:
    kind: str
    """``enrol`` or ``identify``."""
    name: str
    """The subject enrolled, or the probe's file name."""
    photo: Path
    status: int | None
    """None: no HTTP answer (``error`` says why)."""
    body: Any = None
    error: str | None = None


def check_identification_shape(body: dict[str, Any]) -> None:
    assert set(body) >= {"identification_id", "candidates", "status", "required_reviewers",
                         "decision", "threshold", "gallery"}, body  # fmt: skip
    assert body["gallery"] == GALLERY
    assert body["decision"] == "allow"
    assert body["status"] == ("no_match" if not body["candidates"] else "candidates")
    distances = [c["distance"] for c in body["candidates"]]
    assert distances == sorted(distances)
    assert all(0 <= d <= body["threshold"] for d in distances)
    subjects = [c["subject"] for c in body["candidates"]]
    assert len(subjects) == len(set(subjects)) <= 5


def test_concurrent_enrolments_and_identifications_are_all_kept(
    tmp_path: Path, home: Path, platform_token: str, samples: SamplePhotos
) -> None:
    photos = [*samples.person_a, samples.person_b]
    person_a = set(samples.person_a)
    work: list[tuple[str, str, Path]] = []
    for i in range(max(ENROLMENTS, IDENTIFICATIONS)):
        if i < ENROLMENTS:
            work.append(("enrol", f"person-{i:02d}", photos[i % len(photos)]))
        if i < IDENTIFICATIONS:
            probe = photos[(i + 1) % len(photos)]
            work.append(("identify", probe.name, probe))
    chunks = [work[t::THREADS] for t in range(THREADS)]
    start = threading.Barrier(THREADS)

    with running(home, tmp_path / "server.log") as server:
        tenant = set_up_tenant(server.url, platform_token)

        def client_thread(chunk: list[tuple[str, str, Path]]) -> list[Outcome]:
            done: list[Outcome] = []
            with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT_S) as client:
                start.wait(timeout=30)
                for kind, name, path in chunk:
                    try:
                        response = (
                            enrolment(client, tenant.operator, name, path)
                            if kind == "enrol"
                            else identification(client, tenant.operator, path)
                        )
                    except httpx.HTTPError as error:
                        done.append(Outcome(kind, name, path, None, error=repr(error)))
                        continue
                    done.append(Outcome(kind, name, path, response.status_code, response.json()))
            return done

        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=THREADS) as pool:
            futures = [pool.submit(client_thread, chunk) for chunk in chunks]
            outcomes = [o for f in futures for o in f.result(timeout=600)]
        elapsed = time.monotonic() - began
        assert len(outcomes) == ENROLMENTS + IDENTIFICATIONS

        failed = [o for o in outcomes if o.status is None or o.status >= 500]
        assert not failed, f"{failed}\n{server.output()}"
        enrolled = {o.name: o for o in outcomes if o.kind == "enrol" and o.status == 201}
        refused = [o for o in outcomes if o.kind == "enrol" and o.status != 201]
        assert not refused, refused  # distinct subjects, photos that pass the quality gate
        assert len(enrolled) == ENROLMENTS
        for name, o in enrolled.items():
            assert (o.body["subject"], o.body["templates"], o.body["new_subject"]) == (
                name,
                1,
                True,
            )
        found = [o for o in outcomes if o.kind == "identify"]
        assert [o.status for o in found] == [200] * IDENTIFICATIONS, found
        for o in found:
            check_identification_shape(o.body)
            assert {c["subject"] for c in o.body["candidates"]} <= set(enrolled), o.body
        ids = [o.body["identification_id"] for o in found]
        assert len(set(ids)) == len(ids)

        with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT_S) as client:
            for name, o in enrolled.items():
                record = call(client, "GET", f"/v1/galleries/{GALLERY}/subjects/{name}",
                              tenant.operator, 200)  # fmt: skip
                assert record["subject_id"] == o.body["subject_id"]
                assert len(record["templates"]) == 1
            galleries = call(client, "GET", "/v1/galleries", tenant.operator, 200)["galleries"]
            assert [(g["name"], g["subjects"]) for g in galleries] == [(GALLERY, len(enrolled))]
            for identification_id in ids:
                kept = call(client, "GET", f"/v1/identifications/{identification_id}",
                            tenant.operator, 200)  # fmt: skip
                assert kept["identification_id"] == identification_id

            chain = call(client, "GET", "/v1/audit/verify", tenant.auditor, 200)
            assert chain["ok"] is True, chain
            exported = call(client, "GET", "/v1/audit/export", tenant.auditor, 200)
            entries = [json.loads(line) for line in exported.splitlines()]
        enrols = [e for e in entries if e["operation"] == "enroll"]
        assert sorted(e["subject_id"] for e in enrols) == sorted(
            o.body["subject_id"] for o in enrolled.values()
        )
        assert all(e["details"]["outcome"] == "enrolled" for e in enrols)
        searches = [e for e in entries if e["operation"] == "identify"]
        assert sorted(e["details"]["identification"] for e in searches) == sorted(ids)
        seqs = [e["seq"] for e in entries]
        assert seqs == sorted(seqs)
        code, _ = server.terminate()
        assert code == 0, server.output()
    print(f"{len(outcomes)} requests from {THREADS} clients in {elapsed:.1f} s")

    # A new process rebuilds the gallery's index from the database (decrypting every template).
    with running(home, tmp_path / "server.log") as server:
        with httpx.Client(base_url=server.url, timeout=REQUEST_TIMEOUT_S) as client:
            galleries = call(client, "GET", "/v1/galleries", tenant.operator, 200)["galleries"]
            assert galleries[0]["subjects"] == len(enrolled)
            for probe, expected in (
                (samples.person_a[1], {n for n, o in enrolled.items() if o.photo in person_a}),
                (samples.person_b, {n for n, o in enrolled.items() if o.photo == samples.person_b}),
            ):
                response = identification(client, tenant.operator, probe)
                assert response.status_code == 200, response.text
                body = response.json()
                check_identification_shape(body)
                assert body["candidates"], body
                assert {c["subject"] for c in body["candidates"]} <= expected
                assert len(body["candidates"]) == min(5, len(expected))
        assert server.terminate()[0] == 0


def enrol_in_background(
    url: str, token: str, photos: list[Path]
) -> tuple[threading.Thread, dict[str, Any]]:
    """A slow enrolment (one subject, several photos) on its own thread; ``result`` receives
    ``status`` or ``error``, and ``done_at`` (monotonic)."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S) as client:
                response = enrolment(client, token, "slow-subject", *photos)
            result["status"], result["body"] = response.status_code, response.text
        except httpx.HTTPError as error:
            result["error"] = repr(error)
        result["done_at"] = time.monotonic()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def slow_photos(samples: SamplePhotos) -> list[Path]:
    return [samples.person_a[i % 3] for i in range(SLOW_PHOTOS)]


def refused_while(server: Server, thread: threading.Thread) -> str | None:
    """Whether a new request goes unserved while ``thread``'s request is still in flight
    (polled for up to 5 s: uvicorn notices the signal within 0.1 s, then closes its socket and
    every connection with no request under way). Unserved: the connection is refused, or reset
    before any answer (one that reached the socket's backlog just before it closed). Returns
    how it went unserved, or None if every request was served."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline and thread.is_alive():
        try:
            httpx.get(f"{server.url}/healthz", timeout=1.0)
        except (httpx.ConnectError, httpx.ReadError, httpx.RemoteProtocolError) as error:
            return type(error).__name__ if thread.is_alive() else None
        time.sleep(0.05)
    return None


def test_sigterm_lets_the_request_in_flight_finish(
    tmp_path: Path, home: Path, platform_token: str, samples: SamplePhotos
) -> None:
    with running(home, tmp_path / "server.log") as server:
        tenant = set_up_tenant(server.url, platform_token)
        started = time.monotonic()
        thread, result = enrol_in_background(server.url, tenant.operator, slow_photos(samples))
        time.sleep(1.0)  # the upload is long done; the engine is on its photos
        assert thread.is_alive(), f"the enrolment ended within a second: {result}"
        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        refused_in_flight = refused_while(server, thread)
        try:
            code = server.process.wait(timeout=GRACEFUL_S + EXIT_MARGIN_S)
        except subprocess.TimeoutExpired:
            pytest.fail(f"no exit within {GRACEFUL_S + EXIT_MARGIN_S:.0f} s:\n{server.output()}")
        exit_s = time.monotonic() - signalled
        thread.join(timeout=REQUEST_TIMEOUT_S)
        assert not thread.is_alive()
        assert "error" not in result, f"{result}\n{server.output()}"
        assert result["status"] == 201, result
        assert json.loads(result["body"])["templates"] == SLOW_PHOTOS
        assert result["done_at"] > signalled, "the enrolment was not in flight at SIGTERM"
        assert refused_in_flight, "a new connection was accepted during the graceful shutdown"
        assert code == 0, server.output()
        assert exit_s <= GRACEFUL_S + EXIT_MARGIN_S
        assert "faceaccord service stopped" in server.output()  # the lifespan's shutdown ran
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{server.url}/healthz", timeout=5.0)
    print(
        f"enrolment of {SLOW_PHOTOS} photos took {result['done_at'] - started:.1f} s; "
        f"SIGTERM at {signalled - started:.1f} s; meanwhile a new request: {refused_in_flight}; "
        f"exit {code} {exit_s:.1f} s after it"
    )


def test_health_answers_while_an_enrolment_runs(
    tmp_path: Path, home: Path, platform_token: str, samples: SamplePhotos
) -> None:
    """The image routes run in the thread pool: a face being processed never holds the event
    loop, so the service still answers (here /healthz) in the meantime."""
    with running(home, tmp_path / "server.log") as server:
        tenant = set_up_tenant(server.url, platform_token)
        thread, result = enrol_in_background(server.url, tenant.operator, slow_photos(samples))
        time.sleep(0.5)
        assert thread.is_alive()
        health = httpx.get(f"{server.url}/healthz", timeout=REQUEST_TIMEOUT_S)
        health_at = time.monotonic()
        thread.join(timeout=REQUEST_TIMEOUT_S)
        assert health.status_code == 200
        assert result.get("status") == 201, result
        assert health_at < result["done_at"], (
            f"/healthz answered {health_at - result['done_at']:.2f} s after the enrolment ended"
        )
        assert server.terminate()[0] == 0
