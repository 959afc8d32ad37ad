"""Benchmark the HTTP service under load on loopback, against the same work done in-process.

Everything is real: ``faceaccord serve`` (uvicorn, the real engine) as a subprocess on a
temporary FACEACCORD home, SQLite (WAL, ``synchronous=FULL``), envelope encryption, the policy
engine and the hash-chained audit log.

1. Set-up, through the library, before the server starts: an organisation registered and
   approved (commercial, US-NY, ``access_control``, tier medium) with an operator key, and one
   gallery of 10,000 templates (--short: 1,000): random unit-norm templates inserted as
   ``bench_gallery.py`` does (a vault key per subject, ``seal_template``, subject and template
   rows, an audit entry per subject; 5 templates per subject), plus two real enrolments of the
   sample photos (``obama.jpg``, ``biden.jpg``) so that identifications find someone.
2. The service: the first identification (which rebuilds the gallery's index from the database)
   is timed on its own, then a warm-up; then, for K concurrent clients (1, 2 and 4; a thread and
   a keep-alive ``httpx.Client`` each), every client sends requests back to back for a fixed time
   (full: 20 s, --short: 5 s): ``POST /v1/verify`` (``obama.jpg`` against ``obama3.jpg``) and
   ``POST /v1/galleries/{g}/identify`` (``obama2.jpg``, k=5). Requests/s = requests completed
   / wall time from the start to the last answer; latency p50 and p99 per request.
3. The library, in this process, on a ``Platform`` opened on the same home with the real
   ``Engine`` while the server runs (idle): ``Engine.verify`` on the same two photos (bytes, as
   the service receives them) and ``identify()`` (policy, search, audit entry) on the same
   probe, sequentially (K=1) and from K threads, for the same time. Each phase of the library
   runs right after or right before (alternating) the service's phase with the same operation
   and K, so that a drift of the machine falls on both.
4. Per operation and K: service overhead = service p50 / library p50, and the throughput ratio
   service / library. The service's verify also does what the route does beyond
   ``Engine.verify`` (the policy decision and its audit entry); identify() is the same call on
   both sides, so its overhead is HTTP, multipart, the API key lookup, rate limiting and logging.
   The clients run on the same machine as the server and share its cores.

    .venv/bin/python benchmarks/bench_service.py [--short] [--json-out PATH] [--templates N]
        [--seconds S] [--clients 1,2,4] [--tmp-dir DIR]

Exit status 1 when a request fails or a verification or identification answers wrongly. Run time
on 2 cores: about 1.5 minutes with --short, about 5 in full.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from _common import median
from bench_engine import machine_facts
from bench_gallery import (
    ACTOR,
    PURPOSE,
    SYNTHETIC_SEED,
    TEMPLATES_PER_SUBJECT,
    filesystem_of,
    insert_synthetic,
    percentile,
    ratio,
)
from faceaccord.biometrics.pipeline import Engine
from faceaccord.governance.entities import ScaleTier
from faceaccord.governance.vocabulary import Jurisdiction, Sector
from faceaccord.platform.deployment import Platform
from faceaccord.platform.enrolment import enroll
from faceaccord.platform.galleries import create_gallery
from faceaccord.platform.identification import identify
from faceaccord.platform.keys import Role, create_key
from faceaccord.platform.organisation_rows import load_organisation
from faceaccord.platform.organisations import approve_organisation, register_organisation
from faceaccord.samples import SamplePhotos, fetch_sample_photos
from faceaccord.settings import Settings

FULL_TEMPLATES = 10_000
SHORT_TEMPLATES = 1_000
FULL_SECONDS = 20.0
SHORT_SECONDS = 5.0
CLIENTS = (1, 2, 4)
WARM_UP = 2
GALLERY = "staff"
EXPECTED = "obama"
K = 5
FACEACCORD = Path(sys.executable).with_name("faceaccord")
READY_TIMEOUT_S = 90.0
REQUEST_TIMEOUT_S = 120.0
STOP_TIMEOUT_S = 60.0
SERVICE, LIBRARY = "service", "library"
OPERATIONS = ("verify", "identify")


@dataclass(frozen=True)
class Photos:
    verify_a: bytes
    verify_b: bytes
    probe: bytes
    names: dict[str, str]

    @classmethod
    def of(cls, samples: SamplePhotos) -> Photos:
        a, probe, b = samples.person_a
        return cls(
            a.read_bytes(),
            b.read_bytes(),
            probe.read_bytes(),
            {"verify": f"{a.name} vs {b.name}", "identify": f"{probe.name}, k={K}"},
        )


@dataclass
class Worker:
    """One client's work: ``call`` returns None when the answer is right, else what was wrong."""

    call: Callable[[], str | None]
    close: Callable[[], None] = field(default=lambda: None)


@dataclass
class Phase:
    """One operation by K clients for a fixed time: each answer's latency, and what went wrong."""

    latencies_s: list[float]
    wall_s: float
    failures: list[str]

    def figures(self) -> dict[str, Any]:
        n = len(self.latencies_s)
        return {
            "requests": n,
            "failures": len(self.failures),
            "failure_examples": self.failures[:3],
            "wall_s": self.wall_s,
            "requests_per_s": n / self.wall_s if self.wall_s else float("nan"),
            "p50_ms": median(self.latencies_s) * 1e3 if n else float("nan"),
            "p99_ms": percentile(self.latencies_s, 99) * 1e3,
            "mean_ms": sum(self.latencies_s) / n * 1e3 if n else float("nan"),
        }


def run_phase(clients: int, seconds: float, make_worker: Callable[[], Worker]) -> Phase:
    """``clients`` threads, each calling its own worker back to back until ``seconds`` have
    passed (a call under way then is finished and counted)."""
    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    workers = [make_worker() for _ in range(clients)]
    barrier = threading.Barrier(clients + 1)
    deadline = 0.0
    last = [0.0]

    def loop(worker: Worker) -> None:
        barrier.wait(timeout=60)
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            try:
                problem = worker.call()
            except Exception as error:  # a failed request is counted, never the end of the run
                problem = repr(error)
            end = time.perf_counter()
            with lock:
                if problem is None:
                    latencies.append(end - start)
                else:
                    failures.append(problem)
                last[0] = max(last[0], end)

    threads = [threading.Thread(target=loop, args=(w,), daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    started = time.perf_counter()
    deadline = started + seconds
    barrier.wait(timeout=60)
    for thread in threads:
        thread.join(timeout=seconds + REQUEST_TIMEOUT_S + 30)
        if thread.is_alive():
            failures.append("a client did not finish in time")
    for worker in workers:
        worker.close()
    return Phase(latencies, max(last[0], started) - started, failures)


# --- the deployment ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Deployment:
    settings: Settings
    organisation_id: str
    operator_token: str
    seeding: dict[str, Any]


def seed(home: Path, engine: Engine, templates: int, samples: SamplePhotos) -> Deployment:
    settings = Settings(home=home)
    started = time.perf_counter()
    with Platform.open(settings, engine=engine) as platform:
        organisation = register_organisation(
            platform, name="Bench Offices Inc", sector=Sector.COMMERCIAL,
            jurisdiction=Jurisdiction.parse("US-NY"), actor="ada@bench.example",
        )  # fmt: skip
        organisation = approve_organisation(
            platform, organisation_id=organisation.id, reviewer="pat@platform",
            purposes=frozenset({PURPOSE}), tier=ScaleTier.MEDIUM, reason="load benchmark",
        )  # fmt: skip
        _, token = create_key(
            platform, organisation_id=organisation.id, name="olga@bench",
            roles=frozenset({Role.OPERATOR}), created_by="ada@bench.example",
        )  # fmt: skip
        tenant = platform.acting_for(organisation)
        gallery_id = create_gallery(tenant, name=GALLERY, purpose=PURPOSE, actor=ACTOR).id
        _, inserted = insert_synthetic(
            tenant, gallery_id, templates, np.random.default_rng(SYNTHETIC_SEED)
        )
        real = {EXPECTED: samples.person_a[0], "biden": samples.person_b}
        for subject, photo in real.items():
            enroll(tenant, gallery=GALLERY, subject=subject, images=[photo], purpose=PURPOSE,
                   actor=ACTOR)  # fmt: skip
    seeding = {
        "templates": templates + len(real),
        "synthetic_templates": templates,
        "real_subjects": {s: p.name for s, p in real.items()},
        "insert_templates_per_s": inserted["templates_per_s"],
        "total_s": time.perf_counter() - started,
    }
    return Deployment(settings, organisation.id, token, seeding)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Server:
    """``faceaccord serve`` on a free loopback port, its output in ``log``."""

    def __init__(self, home: Path, log: Path) -> None:
        self.url = f"http://127.0.0.1:{free_port()}"
        self.log = log
        env = os.environ | {
            "FACEACCORD_HOME": str(home),
            "FACEACCORD_SERVICE__RATE_LIMIT": "10000000/minute",
        }
        self._out = log.open("w", encoding="utf-8")
        self.process = subprocess.Popen(
            [str(FACEACCORD), "serve", "--port", self.url.rsplit(":", 1)[1]],
            env=env,
            stdout=self._out,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self) -> float:
        started = time.perf_counter()
        while time.perf_counter() - started < READY_TIMEOUT_S:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited ({self.process.returncode}): {self.tail()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=2.0).status_code == 200:
                    return time.perf_counter() - started
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"the server was not ready in {READY_TIMEOUT_S:.0f} s: {self.tail()}")

    def tail(self) -> str:
        self._out.flush()
        return self.log.read_text(encoding="utf-8", errors="replace")[-3000:]

    def stop(self) -> int | None:
        """SIGTERM (graceful), then SIGKILL if it has not exited in time; the exit status."""
        try:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait(timeout=STOP_TIMEOUT_S)
            return self.process.returncode
        finally:
            self._out.close()


# --- the two sides -----------------------------------------------------------------------------


def service_worker(url: str, token: str, photos: Photos, operation: str) -> Worker:
    client = httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT_S,
                          headers={"Authorization": f"Bearer {token}"})  # fmt: skip

    def verify() -> str | None:
        response = client.post(
            "/v1/verify",
            data={"purpose": str(PURPOSE)},
            files={"image_a": ("a.jpg", photos.verify_a, "image/jpeg"),
                   "image_b": ("b.jpg", photos.verify_b, "image/jpeg")},
        )  # fmt: skip
        if response.status_code != 200:
            return f"verify {response.status_code}: {response.text[:200]}"
        return None if response.json()["match"] is True else f"no match: {response.text[:200]}"

    def search() -> str | None:
        response = client.post(
            f"/v1/galleries/{GALLERY}/identify",
            data={"purpose": str(PURPOSE), "k": str(K)},
            files={"image": ("probe.jpg", photos.probe, "image/jpeg")},
        )
        if response.status_code != 200:
            return f"identify {response.status_code}: {response.text[:200]}"
        candidates = response.json()["candidates"]
        top = candidates[0]["subject"] if candidates else None
        return None if top == EXPECTED else f"rank 1 is {top!r}, not {EXPECTED!r}"

    return Worker(verify if operation == "verify" else search, client.close)


def library_worker(platform: Platform, photos: Photos, operation: str) -> Worker:
    def verify() -> str | None:
        result = platform.engine.verify(photos.verify_a, photos.verify_b)
        return None if result.match else f"no match: distance {result.distance:.3f}"

    def search() -> str | None:
        found = identify(platform, gallery=GALLERY, image=photos.probe, purpose=PURPOSE,
                         actor=ACTOR, k=K)  # fmt: skip
        top = found.candidates[0].subject if found.candidates else None
        return None if top == EXPECTED else f"rank 1 is {top!r}, not {EXPECTED!r}"

    return Worker(verify if operation == "verify" else search)


def warm_up(side: str, operation: str, worker: Worker) -> None:
    try:
        for _ in range(WARM_UP):
            problem = worker.call()
            if problem is not None:
                raise RuntimeError(f"{side} {operation} warm-up: {problem}")
    finally:
        worker.close()


def first_identification(side: str, worker: Worker) -> float:
    start = time.perf_counter()
    try:
        problem = worker.call()
    finally:
        worker.close()
    if problem is not None:
        raise RuntimeError(f"{side} first identification: {problem}")
    return time.perf_counter() - start


def measure(
    makers: dict[str, Callable[[str], Worker]], clients: Sequence[int], seconds: float
) -> dict[str, Any]:
    """The first identification on each side (it rebuilds the gallery's index), a warm-up, then
    each operation with each number of clients on both sides, one after the other, the side that
    goes first alternating."""
    results: dict[str, Any] = {side: {} for side in makers}
    for side, make in makers.items():
        first = first_identification(side, make("identify"))
        results[side]["first_identify_s"] = first
        print(f"   {side}: first identification (rebuilds the index) {first:.2f} s", flush=True)
    turn = 0
    for operation in OPERATIONS:
        for side, make in makers.items():
            warm_up(side, operation, make(operation))
            results[side][operation] = {}
        for k in clients:
            sides = list(makers) if turn % 2 == 0 else list(reversed(makers))
            turn += 1
            for side in sides:
                figures = run_phase(k, seconds, partial(makers[side], operation)).figures()
                results[side][operation][k] = figures
                print(
                    f"   {operation:<9}K={k} {side:<8}{figures['requests']:>5} requests in "
                    f"{figures['wall_s']:5.1f} s = {figures['requests_per_s']:6.2f}/s; p50 "
                    f"{figures['p50_ms']:7.1f} ms, p99 {figures['p99_ms']:7.1f} ms; failures "
                    f"{figures['failures']}",
                    flush=True,
                )
    return results


def both_sides(
    deployment: Deployment,
    engine: Engine,
    photos: Photos,
    clients: Sequence[int],
    seconds: float,
    log: Path,
) -> dict[str, Any]:
    """The server on the deployment's home and, in this process, a Platform on the same home."""
    server = Server(deployment.settings.home, log)
    code: int | None = None
    try:
        ready_s = server.wait_ready()
        print(f"   server ready in {ready_s:.1f} s at {server.url}", flush=True)
        with Platform.open(deployment.settings, engine=engine) as platform:
            with platform.transaction() as session:
                organisation = load_organisation(session, deployment.organisation_id)
            tenant = platform.acting_for(organisation)
            makers: dict[str, Callable[[str], Worker]] = {
                SERVICE: partial(service_worker, server.url, deployment.operator_token, photos),
                LIBRARY: partial(library_worker, tenant, photos),
            }
            results = measure(makers, clients, seconds)
    except BaseException:
        print(f"server log:\n{server.tail()}", file=sys.stderr)
        raise
    finally:
        code = server.stop()
    results[SERVICE] |= {"ready_s": ready_s, "exit_status": code}
    return results


# --- report ------------------------------------------------------------------------------------


def comparison(report: dict[str, Any], clients: Sequence[int]) -> list[dict[str, Any]]:
    rows = []
    for operation in OPERATIONS:
        for k in clients:
            ours, bare = report[SERVICE][operation][k], report[LIBRARY][operation][k]
            rows.append({
                "operation": operation, "clients": k,
                "service_requests_per_s": ours["requests_per_s"],
                "library_requests_per_s": bare["requests_per_s"],
                "throughput_ratio": ratio(ours["requests_per_s"], bare["requests_per_s"]),
                "service_p50_ms": ours["p50_ms"], "library_p50_ms": bare["p50_ms"],
                "overhead_p50": ratio(ours["p50_ms"], bare["p50_ms"]),
                "added_p50_ms": ours["p50_ms"] - bare["p50_ms"],
                "service_p99_ms": ours["p99_ms"], "library_p99_ms": bare["p99_ms"],
                "overhead_p99": ratio(ours["p99_ms"], bare["p99_ms"]),
                "service_scaling": ratio(ours["requests_per_s"],
                                         report[SERVICE][operation][clients[0]]["requests_per_s"]),
                "library_scaling": ratio(bare["requests_per_s"],
                                         report[LIBRARY][operation][clients[0]]["requests_per_s"]),
            })  # fmt: skip
    return rows


def print_comparison(rows: list[dict[str, Any]], first: int) -> None:
    print(
        f"\n   {'':<10}{'K':>3}{'req/s service':>15}{'library':>9}{'ratio':>7}"
        f"{'p50 ms service':>16}{'library':>9}{'overhead':>10}{'added':>8}{'p99 ms service':>16}"
        f"{'library':>9}{'scaling s/l':>13}"
    )
    for r in rows:
        print(
            f"   {r['operation']:<10}{r['clients']:>3}{r['service_requests_per_s']:>15.2f}"
            f"{r['library_requests_per_s']:>9.2f}{r['throughput_ratio']:>6.2f}x"
            f"{r['service_p50_ms']:>16.1f}{r['library_p50_ms']:>9.1f}{r['overhead_p50']:>9.2f}x"
            f"{r['added_p50_ms']:>+8.1f}"
            f"{r['service_p99_ms']:>16.1f}{r['library_p99_ms']:>9.1f}"
            f"{r['service_scaling']:>7.2f}/{r['library_scaling']:.2f}"
        )
    print(
        "   (ratio = service / library requests/s; overhead = service p50 / library p50, added ="
        f" their difference;\n   scaling = requests/s against K={first}, service/library; p99 is"
        " nearest-rank: under 100 requests, the slowest)"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="1,000 templates, 5 s phases (CI)")
    parser.add_argument("--json-out", type=Path, help="also write the figures here as JSON")
    parser.add_argument("--templates", type=int, help="synthetic templates (a multiple of 5)")
    parser.add_argument("--seconds", type=float, help="length of each measured phase")
    parser.add_argument("--clients", default=",".join(map(str, CLIENTS)),
                        help="numbers of concurrent clients, e.g. 1,2,4")  # fmt: skip
    parser.add_argument("--tmp-dir", type=Path, help="where the temporary home goes")
    args = parser.parse_args()
    started = time.perf_counter()
    templates = args.templates or (SHORT_TEMPLATES if args.short else FULL_TEMPLATES)
    if templates <= 0 or templates % TEMPLATES_PER_SUBJECT:
        parser.error(f"--templates must be a positive multiple of {TEMPLATES_PER_SUBJECT}")
    seconds = args.seconds or (SHORT_SECONDS if args.short else FULL_SECONDS)
    clients = sorted({int(c) for c in args.clients.split(",")})
    if not clients or clients[0] < 1:
        parser.error("--clients takes positive numbers")
    # The server and this process must read the same settings: the home, and nothing else.
    for name in [n for n in os.environ if n.startswith("FACEACCORD_")]:
        del os.environ[name]

    machine = machine_facts() | {"httpx": httpx.__version__}
    print(f"faceaccord service benchmark, {'short' if args.short else 'full'} mode")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    samples = fetch_sample_photos(Settings().cache_dir)
    photos = Photos.of(samples)
    report: dict[str, Any] = {
        "mode": "short" if args.short else "full",
        "machine": machine,
        "seconds_per_phase": seconds,
        "clients": clients,
        "photos": photos.names,
    }
    with tempfile.TemporaryDirectory(prefix="faceaccord-bench-", dir=args.tmp_dir) as scratch:
        home = Path(scratch) / "home"
        report["filesystem"] = filesystem_of(Path(scratch).resolve())
        print(f"temporary home: {home} on {report['filesystem']}")
        engine = Engine.load(Settings(home=home))
        print(f"\n1. Set-up through the library: {templates:,} synthetic templates + 2 real")
        deployment = seed(home, engine, templates, samples)
        report["seeding"] = deployment.seeding
        print(f"   gallery of {deployment.seeding['templates']:,} templates ready in "
              f"{deployment.seeding['total_s']:.1f} s")  # fmt: skip
        print(
            f"\n2. The service (faceaccord serve, uvicorn) and the library in this process, "
            f"K clients or threads for {seconds:g} s each; verify {photos.names['verify']}, "
            f"identify {photos.names['identify']}",
            flush=True,
        )
        log = Path(scratch) / "server.log"
        report |= both_sides(deployment, engine, photos, clients, seconds, log)
    report["comparison"] = comparison(report, clients)
    print("\n3. Service against library, same photos, same gallery")
    print_comparison(report["comparison"], clients[0])
    failures = sum(
        report[side][op][k]["failures"] for side in (SERVICE, LIBRARY) for op in OPERATIONS
        for k in clients
    )  # fmt: skip
    report["failures"] = failures
    report["run_s"] = time.perf_counter() - started
    print(
        f"\n   first identification (index rebuild of {deployment.seeding['templates']:,} "
        f"templates): service {report[SERVICE]['first_identify_s']:.2f} s, library "
        f"{report[LIBRARY]['first_identify_s']:.2f} s; server exit status after SIGTERM "
        f"{report[SERVICE]['exit_status']}; failed or wrong answers: {failures}; "
        f"run time {report['run_s']:.0f} s"
    )
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"figures written to {args.json_out}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
