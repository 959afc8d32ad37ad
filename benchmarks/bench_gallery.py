"""Benchmark faceaccord's galleries end to end: enrolment, identification and 1:N search at scale.

Everything runs on the real storage path: a temporary FACEACCORD home (``tempfile``), a SQLite
database file and key vault on disk (WAL, ``synchronous=FULL``), real envelope encryption, the
real policy engine and the hash-chained audit log. Nothing is faked.

1. Enrolment on faces-dev with the real engine (``Engine.load()``): one gallery for
   ``access_control``, each person folder enrolled as one subject, photo by photo through
   ``enroll()`` so that a photo refused by the quality gate (or with no face) is counted and
   skipped without dropping the subject. Reported: subjects/s and templates/s, and per template
   the split between the engine (decode + detect + align + quality + embed, timed inside the
   engine) and everything else ``enroll()`` does (policy decision, key creation or unwrapping,
   AES-GCM sealing, the database transaction, the audit entry, the index update): the cost of
   accountability, as a ratio to the bare engine.
2. Identification on faces-dev through ``identify()`` (k=5, the policy's operating point):
   first leave-one-out, then closed-set. One seeded photo of each person with two or more photos
   is held out of step 1 until the held-out photos have been identified against the gallery of
   all the others (rank-1 accuracy, misidentification and no-match rates); then they are enrolled
   too and every photo is identified (identifications/s, p50/p99 latency, engine vs the rest,
   rank-1 hit rate; most probes are then themselves enrolled, so the hit rate is a smoke check).
3. Synthetic scale, without the face engine: 100,000 random unit-norm float32 128-d templates
   (--short: 10,000) in 20,000 subjects of 5 templates each, inserted through the storage path
   enrolment uses: a data key per subject from ``KeyVault.create_key`` (one committed vault
   transaction each, as in ``enroll()``), ``seal_template``, ``SubjectRow`` and ``TemplateRow``
   rows and one audit entry per subject, in transactions of 500 subjects (the policy decision is
   left out: ``bench_policy.py`` measures it). Then the index rebuild from the database on a
   fresh ``Platform`` (``index_for``: query, key unwrapping, decryption, load; median of 3), the
   index's memory, and 1,000 searches (half mated: a stored template plus noise, half random) on
   the ``ExactIndex``, interleaved probe by probe with the peer: ``face_recognition.face_distance``
   over the same vectors as one float64 ndarray, as its users hold them, followed by the same
   top-k-subjects-within-threshold selection. Both must return the same subjects. The search
   comparison runs twice: in this process with BLAS's default threads (what a deployment gets),
   and in a spawned process with OPENBLAS/OMP/MKL_NUM_THREADS=1 on an index of the same rows: a
   one-probe matrix-vector product split over threads is at the mercy of a busy core. Last,
   ``identify()`` end to end on this large gallery with a few real photos (first photo of each
   person, up to 10): the engine's share against the rest (policy, the day's search count from
   the audit log, search, lookups, audit entry) when the database holds a large audit log.
4. A summary table; ``--json-out`` writes every figure as JSON.

Data: ../shared/data/faces-dev, one folder per person (--short: the first 4 people). When that
folder is missing, face_recognition's own sample photos (``faceaccord.samples``) are used.

    .venv/bin/python benchmarks/bench_gallery.py [--short] [--json-out PATH]
        [--synthetic-only] [--templates N] [--tmp-dir DIR]

Exit status 1 when the two systems disagree on any synthetic search. Run time on 2 cores: about
a minute with --short, several minutes in full.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import multiprocessing
import os
import random
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select

from _common import SHARED_DATA, folder_per_person, median
from bench_engine import machine_facts
from faceaccord.audit.log import AuditEvent
from faceaccord.biometrics.faces import FaceTemplate
from faceaccord.biometrics.images import ImageSource
from faceaccord.biometrics.pipeline import Engine
from faceaccord.errors import FaceAccordError, PolicyDeniedError
from faceaccord.governance.entities import PolicyRequest, RequestContext, ScaleTier
from faceaccord.governance.vocabulary import Operation, Purpose
from faceaccord.matching.exact import ExactIndex
from faceaccord.platform.deployment import Platform
from faceaccord.platform.enrolment import enroll
from faceaccord.platform.galleries import create_gallery
from faceaccord.platform.identification import identify
from faceaccord.protection.envelope import seal_template
from faceaccord.settings import Settings
from faceaccord.store.models import AuditEntryRow, SubjectRow, TemplateRow

SHORT_PEOPLE = 4
HOLD_OUT_SEED = 20261122
SYNTHETIC_SEED = 20261123
FULL_TEMPLATES = 100_000
SHORT_TEMPLATES = 10_000
TEMPLATES_PER_SUBJECT = 5
BATCH_SUBJECTS = 500
PROBES = 1_000
MATED_NOISE = 0.35
"""Norm of the noise added to a stored template to make a mated probe (distance ~0.34)."""
REBUILD_REPEATS = 3
WARM_UP = 20
E2E_PROBES = 10
K = 5
PURPOSE = Purpose.ACCESS_CONTROL
ACTOR = "bench@faceaccord"
FACEACCORD = "faceaccord"
PEER = "face_recognition"
ENROLLED = "enrolled"
BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")


class TimedEngine(Engine):
    """The real engine, recording how long its own share of the last call took."""

    last_s: float = 0.0

    def enroll(self, source: ImageSource) -> FaceTemplate:
        start = time.perf_counter()
        try:
            return super().enroll(source)
        finally:
            self.last_s = time.perf_counter() - start

    def largest_template(self, source: ImageSource, *, which: str = "") -> FaceTemplate:
        start = time.perf_counter()
        try:
            return super().largest_template(source, which=which)
        finally:
            self.last_s = time.perf_counter() - start


@dataclass(frozen=True)
class Call:
    """One ``enroll()`` or ``identify()`` call on one photo."""

    person: str
    photo: str
    total_s: float
    engine_s: float
    outcome: str
    """``enrolled``, ``candidates``, ``no_match``, ``pending_review`` or an error code."""
    top: str | None = None
    """Identification: the rank-1 candidate's subject reference."""
    top_distance: float | None = None
    in_gallery: bool = False
    """Identification: this very photo was enrolled in the gallery."""

    @property
    def rest_s(self) -> float:
        return self.total_s - self.engine_s


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def settings_for(home: Path) -> Settings:
    return Settings(home=home, database_url=f"sqlite:///{home / 'faceaccord.db'}")


def filesystem_of(path: Path) -> str:
    """The mount point and type of the file system holding ``path`` (Linux), for the record."""
    best, kind = "", "unknown"
    try:
        for line in Path("/proc/mounts").read_text(encoding="utf-8").splitlines():
            fields = line.split()
            if len(fields) >= 3 and str(path).startswith(fields[1]) and len(fields[1]) > len(best):
                best, kind = fields[1], fields[2]
    except OSError:
        pass
    return f"{kind} ({best or '?'})"


# --- data ------------------------------------------------------------------------------------


def load_people(root: Path, *, short: bool) -> tuple[str, dict[str, list[Path]]]:
    """Photos per person, people and photos sorted."""
    people: dict[str, list[Path]] = {}
    if root.is_dir():
        name = root.name
        for image in folder_per_person(root):
            people.setdefault(image.subject, []).append(image.path)
    else:
        from faceaccord.samples import fetch_sample_photos  # noqa: PLC0415

        photos = fetch_sample_photos(Settings().cache_dir)
        name = f"face_recognition 1.3.0 sample photos ({root} not found)"
        people = {"obama": sorted(photos.person_a), "biden": [photos.person_b]}
    people = dict(sorted(people.items()))
    if short:
        people = dict(list(people.items())[:SHORT_PEOPLE])
    return name, people


def held_out_photos(people: dict[str, list[Path]]) -> dict[str, Path]:
    """One seeded photo per person with more than one."""
    rng = random.Random(HOLD_OUT_SEED)
    return {person: rng.choice(photos) for person, photos in people.items() if len(photos) > 1}


# --- parts 1 and 2: real photos ----------------------------------------------------------------


def enrol_photo(
    platform: Platform, engine: TimedEngine, gallery: str, person: str, photo: Path
) -> Call:
    engine.last_s = 0.0
    start = time.perf_counter()
    try:
        enroll(
            platform, gallery=gallery, subject=person, images=[photo], purpose=PURPOSE, actor=ACTOR
        )
        outcome = ENROLLED
    except PolicyDeniedError:
        raise  # the deployment refuses the benchmark itself: no figure would mean anything
    except FaceAccordError as error:  # no face, quality gate, unreadable photo
        outcome = error.code
    total = time.perf_counter() - start
    return Call(person, f"{person}/{photo.name}", total, engine.last_s, outcome)


def identify_photo(
    platform: Platform,
    engine: TimedEngine,
    gallery: str,
    person: str,
    photo: Path,
    *,
    in_gallery: bool,
) -> Call:
    engine.last_s = 0.0
    start = time.perf_counter()
    top: str | None = None
    distance: float | None = None
    try:
        found = identify(platform, gallery=gallery, image=photo, purpose=PURPOSE, actor=ACTOR, k=K)
        outcome = found.status
        if found.candidates:
            top, distance = found.candidates[0].subject, found.candidates[0].distance
    except PolicyDeniedError:
        raise
    except FaceAccordError as error:  # no face in the probe, unreadable photo
        outcome = error.code
    total = time.perf_counter() - start
    return Call(
        person, f"{person}/{photo.name}", total, engine.last_s, outcome, top, distance, in_gallery
    )


def enrolment_figures(calls: Sequence[Call]) -> dict[str, Any]:
    enrolled = [c for c in calls if c.outcome == ENROLLED]
    subjects = len({c.person for c in enrolled})
    total_s = sum(c.total_s for c in calls)
    engine_s = sum(c.engine_s for c in enrolled)
    engine = [c.engine_s for c in enrolled]
    rest = [c.rest_s for c in enrolled]
    return {
        "photos": len(calls),
        "subjects": subjects,
        "templates": len(enrolled),
        "skipped": dict(Counter(c.outcome for c in calls if c.outcome != ENROLLED)),
        "skipped_photos": [c.photo for c in calls if c.outcome != ENROLLED],
        "total_s": total_s,
        "subjects_per_s": ratio(subjects, total_s),
        "templates_per_s": ratio(len(enrolled), total_s),
        "engine_only_templates_per_s": ratio(len(enrolled), engine_s),
        "per_template_ms": {
            "engine_median": median(engine) * 1e3 if engine else float("nan"),
            "store_median": median(rest) * 1e3 if rest else float("nan"),
            "store_p99": percentile(rest, 99) * 1e3,
            "engine_p99": percentile(engine, 99) * 1e3,
            "engine_mean": statistics.fmean(engine) * 1e3 if engine else float("nan"),
            "store_mean": statistics.fmean(rest) * 1e3 if rest else float("nan"),
        },
        "store_share_of_time": ratio(sum(rest), sum(c.total_s for c in enrolled)),
        "ratio_store_to_engine_median": ratio(median(rest), median(engine))
        if rest
        else float("nan"),
    }


def identification_figures(calls: Sequence[Call], gallery_people: set[str]) -> dict[str, Any]:
    answered = [c for c in calls if c.outcome in {"candidates", "pending_review", "no_match"}]
    mated = [c for c in answered if c.person in gallery_people]
    hits = sum(c.top == c.person for c in mated)
    wrong = sum(c.top is not None and c.top != c.person for c in answered)
    no_match = sum(c.top is None for c in mated)
    total_s = sum(c.total_s for c in calls)
    latencies = [c.total_s for c in answered]
    return {
        "probes": len(calls),
        "probes_in_gallery": sum(c.in_gallery for c in calls),
        "probes_of_people_not_enrolled": sum(c.person not in gallery_people for c in calls),
        "errors": dict(Counter(c.outcome for c in calls if c not in answered)),
        "identifications_per_s": ratio(len(calls), total_s),
        "latency_ms": {
            "p50": median(latencies) * 1e3 if latencies else float("nan"),
            "p99": percentile(latencies, 99) * 1e3,
            "engine_p50": median([c.engine_s for c in answered]) * 1e3
            if answered
            else float("nan"),
            "rest_p50": median([c.rest_s for c in answered]) * 1e3 if answered else float("nan"),
            "rest_p99": percentile([c.rest_s for c in answered], 99) * 1e3,
        },
        "mated_probes": len(mated),
        "rank1_hits": hits,
        "rank1_rate": ratio(hits, len(mated)),
        "misidentified": wrong,
        "misidentification_rate": ratio(wrong, len(answered)),
        "no_match": no_match,
        "no_match_rate": ratio(no_match, len(mated)),
        "genuine_top_distance_median": median(
            [c.top_distance for c in mated if c.top == c.person and c.top_distance is not None]
        )
        if hits
        else float("nan"),
    }


def photo_parts(engine: TimedEngine, home: Path, people: dict[str, list[Path]]) -> dict[str, Any]:
    gallery = "faces-dev"
    held_out = held_out_photos(people)
    enrolments: list[Call] = []
    with Platform.open(settings_for(home), engine=engine) as platform:
        create_gallery(platform, name=gallery, purpose=PURPOSE, actor=ACTOR)
        # Step A: every photo but the held-out ones, person by person.
        for person, photos in people.items():
            mine = [
                enrol_photo(platform, engine, gallery, person, photo)
                for photo in photos
                if photo != held_out.get(person)
            ]
            enrolments += mine
            outcomes = Counter(c.outcome for c in mine)
            print(
                f"   {person}: {dict(outcomes)}, {sum(c.total_s for c in mine):.1f} s", flush=True
            )
        loo_people = {c.person for c in enrolments if c.outcome == ENROLLED}
        loo = [
            identify_photo(platform, engine, gallery, person, photo, in_gallery=False)
            for person, photo in held_out.items()
        ]
        # Step B: the held-out photos join their subjects.
        for person, photo in held_out.items():
            enrolments.append(enrol_photo(platform, engine, gallery, person, photo))
        enrolled_photos = {c.photo for c in enrolments if c.outcome == ENROLLED}
        in_gallery = {c.person for c in enrolments if c.outcome == ENROLLED}
        closed = [
            identify_photo(
                platform,
                engine,
                gallery,
                person,
                photo,
                in_gallery=f"{person}/{photo.name}" in enrolled_photos,
            )
            for person, photos in people.items()
            for photo in photos
        ]
        decision_packs = sorted(
            platform.policy.decide(
                PolicyRequest(
                    organisation=platform.organisation,
                    operation=Operation.ENROLL,
                    purpose=PURPOSE,
                    context=RequestContext(),
                    on=platform.clock().date(),
                )
            ).packs
        )
    return {
        "gallery": gallery,
        "people": len(people),
        "packs_applied": decision_packs,
        "held_out": {p: f"{p}/{photo.name}" for p, photo in held_out.items()},
        "enrolment": enrolment_figures(enrolments),
        "leave_one_out": identification_figures(loo, loo_people),
        "closed_set": identification_figures(closed, in_gallery),
        "calls": {
            "enrolment": [asdict(c) for c in enrolments],
            "leave_one_out": [asdict(c) for c in loo],
            "closed_set": [asdict(c) for c in closed],
        },
    }


# --- part 3: synthetic scale -------------------------------------------------------------------


@dataclass
class Synthetic:
    vectors: NDArray[np.float32]
    """Row i is template ``template_ids[i]`` of subject ``subject_ids[i]``."""
    template_ids: list[str]
    subject_ids: list[str]


def unit_rows(rows: NDArray[np.float32]) -> NDArray[np.float32]:
    normed: NDArray[np.float32] = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(
        np.float32
    )
    return normed


def insert_synthetic(
    platform: Platform, gallery_id: str, count: int, rng: np.random.Generator
) -> tuple[Synthetic, dict[str, Any]]:
    card = platform.engine.card
    vectors = unit_rows(rng.standard_normal((count, card.embedding_dim), dtype=np.float32))
    subjects = count // TEMPLATES_PER_SUBJECT
    decision = platform.policy.decide(
        PolicyRequest(
            organisation=platform.organisation,
            operation=Operation.ENROLL,
            purpose=PURPOSE,
            context=RequestContext(requested_tier=ScaleTier.needed_for(gallery_size=count)),
            on=platform.clock().date(),
        )
    )
    quality = {"face_px": 180, "interocular_px": 70.0, "sharpness": 120.0, "yaw_deg": 4.0}
    template_ids: list[str] = []
    subject_ids: list[str] = []
    spent = {"keys_s": 0.0, "seal_s": 0.0, "rows_s": 0.0, "audit_s": 0.0, "commit_s": 0.0}
    started = time.perf_counter()
    for first in range(0, subjects, BATCH_SUBJECTS):
        batch = range(first, min(subjects, first + BATCH_SUBJECTS))
        now = platform.clock()
        mark = time.perf_counter()
        ids = [str(uuid.uuid4()) for _ in batch]
        keys = [platform.vault.create_key(subject_id, now=now) for subject_id in ids]
        spent["keys_s"] += time.perf_counter() - mark
        mark = time.perf_counter()
        rows: list[TemplateRow] = []
        for number, subject_id, key in zip(batch, ids, keys, strict=True):
            for row in range(number * TEMPLATES_PER_SUBJECT, (number + 1) * TEMPLATES_PER_SUBJECT):
                template_id = str(uuid.uuid4())
                sealed = seal_template(key, vectors[row], template_id=template_id, model_id=card.id)
                rows.append(
                    TemplateRow(
                        id=template_id, subject_id=subject_id, model_id=card.id,
                        model_sha256=card.sha256, nonce=sealed.nonce,
                        ciphertext=sealed.ciphertext, quality=quality, created_at=now,
                    )
                )  # fmt: skip
                template_ids.append(template_id)
                subject_ids.append(subject_id)
        spent["seal_s"] += time.perf_counter() - mark
        mark = time.perf_counter()
        with platform.transaction() as session:
            session.add_all(
                SubjectRow(
                    id=subject_id,
                    gallery_id=gallery_id,
                    reference=f"subject-{number:06d}",
                    jurisdiction=None,
                    created_at=now,
                    last_interaction_at=now,
                    retention_limits=[],
                )
                for number, subject_id in zip(batch, ids, strict=True)
            )
            session.flush()
            session.add_all(rows)
            session.flush()
            spent["rows_s"] += time.perf_counter() - mark
            mark = time.perf_counter()
            for subject_id in ids:
                platform.record(
                    session,
                    AuditEvent(
                        actor=ACTOR, organisation_id=platform.organisation.id,
                        operation="enroll", purpose=str(PURPOSE), decision=decision.outcome,
                        rule_ids=tuple(decision.rule_ids()), gallery_id=gallery_id,
                        subject_id=subject_id,
                        details={"outcome": "enrolled", "templates": TEMPLATES_PER_SUBJECT,
                                 "model": card.id, "consent": None},
                    ),
                )  # fmt: skip
            spent["audit_s"] += time.perf_counter() - mark
            mark = time.perf_counter()
        spent["commit_s"] += time.perf_counter() - mark
        done = len(template_ids)
        if (first // BATCH_SUBJECTS) % 8 == 7 or done == subjects * TEMPLATES_PER_SUBJECT:
            print(
                f"   inserted {done:,} templates, {time.perf_counter() - started:.1f} s", flush=True
            )
    total = time.perf_counter() - started
    figures = {
        "subjects": subjects,
        "templates": len(template_ids),
        "templates_per_subject": TEMPLATES_PER_SUBJECT,
        "batch_subjects": BATCH_SUBJECTS,
        "total_s": total,
        "templates_per_s": len(template_ids) / total,
        "subjects_per_s": subjects / total,
        "split_s": spent,
        "per_template_us": {
            k.removesuffix("_s"): v / len(template_ids) * 1e6 for k, v in spent.items()
        },
    }
    used = vectors[: len(template_ids)]
    return Synthetic(used, template_ids, subject_ids), figures


def rebuild(settings: Settings, engine: Engine, gallery_id: str) -> tuple[float, ExactIndex]:
    with Platform.open(settings, engine=engine) as platform:
        start = time.perf_counter()
        index = platform.index_for(gallery_id)
        return time.perf_counter() - start, index


def index_memory(settings: Settings, engine: Engine, gallery_id: str) -> int:
    """Bytes retained by a freshly built index (vectors, norms, ids, maps), by tracemalloc."""
    with Platform.open(settings, engine=engine) as platform:
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        index = platform.index_for(gallery_id)
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        del index
    return retained


def make_probes(
    data: Synthetic, count: int, rng: np.random.Generator
) -> tuple[NDArray[np.float32], list[str | None]]:
    """Half mated (a stored template plus noise), half random; the expected rank-1 subject."""
    mated = count // 2
    rows = rng.choice(len(data.vectors), size=mated, replace=False)
    noise = rng.standard_normal((mated, data.vectors.shape[1]), dtype=np.float32)
    noise *= MATED_NOISE / np.linalg.norm(noise, axis=1, keepdims=True)
    random_rows = rng.standard_normal((count - mated, data.vectors.shape[1]), dtype=np.float32)
    probes = np.concatenate([unit_rows(data.vectors[rows] + noise), unit_rows(random_rows)])
    expected: list[str | None] = [data.subject_ids[r] for r in rows] + [None] * (count - mated)
    order = rng.permutation(count)
    return probes[order], [expected[i] for i in order]


def peer_search(
    known: NDArray[np.float64],
    probe: NDArray[np.float64],
    subject_ids: Sequence[str],
    threshold: float,
) -> list[tuple[str, float]]:
    """face_recognition's way: every distance, then the nearest subjects within the threshold."""
    import face_recognition  # noqa: PLC0415 - already imported, so this is a dict lookup

    distances = face_recognition.face_distance(known, probe)
    within = np.flatnonzero(distances <= threshold)
    best: dict[str, float] = {}
    for row in within[np.argsort(distances[within], kind="stable")]:
        subject = subject_ids[row]
        if subject not in best:
            best[subject] = float(distances[row])
            if len(best) == K:
                break
    return list(best.items())


def timed_searches(
    index: ExactIndex,
    subject_ids: Sequence[str],
    known: NDArray[np.float64],
    probes: NDArray[np.float32],
    threshold: float,
) -> tuple[dict[str, list[float]], dict[str, list[list[str]]]]:
    """Both systems on every probe, alternating which goes first; latencies in seconds and the
    subjects each returned."""
    probes64 = probes.astype(np.float64)

    def ours(i: int) -> list[str]:
        return [c.subject_id for c in index.search(probes[i], k=K, threshold=threshold)]

    def peer(i: int) -> list[str]:
        return [s for s, _ in peer_search(known, probes64[i], subject_ids, threshold)]

    systems: dict[str, Callable[[int], list[str]]] = {FACEACCORD: ours, PEER: peer}
    for i in range(min(WARM_UP, len(probes))):
        ours(i)
        peer(i)
    latencies: dict[str, list[float]] = {FACEACCORD: [], PEER: []}
    answers: dict[str, list[list[str]]] = {FACEACCORD: [], PEER: []}
    for i in range(len(probes)):
        for name in (FACEACCORD, PEER) if i % 2 == 0 else (PEER, FACEACCORD):
            start = time.perf_counter_ns()
            answer = systems[name](i)
            latencies[name].append((time.perf_counter_ns() - start) / 1e9)
            answers[name].append(answer)
    return latencies, answers


def searches_in_one_blas_thread(
    model_id: str, data: Synthetic, probes: NDArray[np.float32], threshold: float
) -> tuple[dict[str, list[float]], dict[str, list[list[str]]]]:
    """``timed_searches`` in a spawned process whose BLAS runs one thread (the variables are
    read when numpy loads), on an index built from the same rows."""
    saved = {name: os.environ.get(name) for name in BLAS_THREAD_VARIABLES}
    os.environ.update(dict.fromkeys(BLAS_THREAD_VARIABLES, "1"))
    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
            return pool.submit(_child_searches, model_id, data, probes, threshold).result()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _child_searches(
    model_id: str, data: Synthetic, probes: NDArray[np.float32], threshold: float
) -> tuple[dict[str, list[float]], dict[str, list[list[str]]]]:
    import face_recognition  # noqa: PLC0415, F401 - loads its models on import: not timed

    index = ExactIndex(model_id=model_id, dimension=data.vectors.shape[1])
    index.add(template_ids=data.template_ids, subject_ids=data.subject_ids, vectors=data.vectors)
    known = data.vectors.astype(np.float64)
    return timed_searches(index, data.subject_ids, known, probes, threshold)


def search_figures(
    latencies: dict[str, list[float]],
    answers: dict[str, list[list[str]]],
    expected: Sequence[str | None],
) -> dict[str, Any]:
    def one(values: Sequence[float]) -> dict[str, float]:
        return {
            "p50_ms": median(values) * 1e3,
            "p99_ms": percentile(values, 99) * 1e3,
            "searches_per_s": len(values) / sum(values),
        }

    ours, peer = one(latencies[FACEACCORD]), one(latencies[PEER])
    mine, theirs = answers[FACEACCORD], answers[PEER]
    return {
        FACEACCORD: ours,
        PEER: peer,
        "ratio_searches_per_s": ratio(ours["searches_per_s"], peer["searches_per_s"]),
        "ratio_p50_peer_over_faceaccord": ratio(peer["p50_ms"], ours["p50_ms"]),
        "identical_answers": sum(a == b for a, b in zip(mine, theirs, strict=True)),
        "mated_rank1": sum(
            bool(a) and a[0] == e for e, a in zip(expected, mine, strict=True) if e is not None
        ),
        "non_mated_matches": sum(bool(a) for e, a in zip(expected, mine, strict=True) if e is None),
    }


def synthetic_part(
    engine: TimedEngine, home: Path, count: int, photos: Sequence[Path]
) -> dict[str, Any]:
    import face_recognition  # noqa: PLC0415, F401 - loads its models on import: not timed

    settings = settings_for(home)
    rng = np.random.default_rng(SYNTHETIC_SEED)
    with Platform.open(settings, engine=engine) as platform:
        gallery_id = create_gallery(platform, name="synthetic", purpose=PURPOSE, actor=ACTOR).id
        data, inserts = insert_synthetic(platform, gallery_id, count, rng)
        threshold = engine.operating_point.threshold
    print(
        f"   {inserts['templates']:,} templates inserted in {inserts['total_s']:.1f} s; "
        "rebuilding the index",
        flush=True,
    )
    rebuilds = [rebuild(settings, engine, gallery_id) for _ in range(REBUILD_REPEATS)]
    index = rebuilds[-1][1]
    assert len(index) == count, f"the rebuilt index holds {len(index)} templates, not {count}"
    rebuild_s = [s for s, _ in rebuilds]
    retained = index_memory(settings, engine, gallery_id)
    probes, expected = make_probes(data, PROBES, rng)
    known = data.vectors.astype(np.float64)  # face_recognition users hold float64 encodings
    print(f"   searching: {PROBES} probes, both systems interleaved, BLAS default", flush=True)
    default = search_figures(
        *timed_searches(index, data.subject_ids, known, probes, threshold), expected
    )
    print("   searching again in a process with BLAS on one thread", flush=True)
    single = search_figures(
        *searches_in_one_blas_thread(engine.model_id, data, probes, threshold), expected
    )
    print(f"   identify() end to end on this gallery, {len(photos)} real photos", flush=True)
    with Platform.open(settings, engine=engine) as platform:
        platform.index_for(gallery_id)  # the rebuild, measured above
        with platform.transaction() as session:
            entries = session.scalar(select(func.count(AuditEntryRow.seq))) or 0
        calls = [
            identify_photo(platform, engine, "synthetic", "-", photo, in_gallery=False)
            for photo in photos
        ]
    answered = [c for c in calls if c.outcome in {"candidates", "pending_review", "no_match"}]
    end_to_end = {
        "probes": len(calls),
        "answered": len(answered),
        "p50_ms": median([c.total_s for c in answered]) * 1e3,
        "engine_p50_ms": median([c.engine_s for c in answered]) * 1e3,
        "rest_p50_ms": median([c.rest_s for c in answered]) * 1e3,
        "rest_p99_ms": percentile([c.rest_s for c in answered], 99) * 1e3,
        "audit_entries_before": int(entries),
    }
    dimension = index.dimension
    return {
        "templates": count,
        "dimension": dimension,
        "insert": inserts,
        "rebuild": {
            "repeats_s": [round(s, 4) for s in rebuild_s],
            "median_s": median(rebuild_s),
            "templates_per_s": count / median(rebuild_s),
        },
        "memory": {
            "vectors_bytes": count * dimension * 4,
            "norms_bytes": count * 4,
            "index_total_bytes_tracemalloc": retained,
            "peer_float64_bytes": int(known.nbytes),
        },
        "search": {
            "probes": PROBES,
            "mated_probes": sum(e is not None for e in expected),
            "k": K,
            "threshold": threshold,
            "blas_default_threads": default,
            "blas_one_thread": single,
        },
        "identify_end_to_end": end_to_end,
    }


# --- printing ----------------------------------------------------------------------------------


def mib(n: float) -> str:
    return f"{n / 2**20:.2f} MiB"


def print_enrolment(photos: dict[str, Any]) -> None:
    e = photos["enrolment"]
    t = e["per_template_ms"]
    print(
        f"\n1. Enrolment, real engine, {e['photos']} photos of {photos['people']} people, gallery "
        f"for {PURPOSE}, photo by photo (packs applied: {', '.join(photos['packs_applied'])})"
    )
    print(
        f"   {e['subjects']} subjects, {e['templates']} templates in {e['total_s']:.2f} s: "
        f"{e['subjects_per_s']:.2f} subjects/s, {e['templates_per_s']:.2f} templates/s"
    )
    skipped = ", ".join(f"{n} {code}" for code, n in e["skipped"].items()) or "none"
    print(
        f"   photos skipped: {skipped}" + (f" {e['skipped_photos']}" if e["skipped_photos"] else "")
    )
    print(f"   {'per template, ms':<56}{'median':>8}{'mean':>8}{'p99':>8}")
    for label, key in (
        ("engine: decode, detect, align, quality, embed", "engine"),
        ("store: policy, key, seal, transaction, audit, index", "store"),
    ):
        print(
            f"   {label:<56}{t[key + '_median']:>8.1f}{t[key + '_mean']:>8.1f}"
            f"{t[key + '_p99']:>8.1f}"
        )
    bare = e["engine_only_templates_per_s"]
    print(
        f"   accountability overhead: store / engine = {e['ratio_store_to_engine_median']:.3f}x "
        f"at the median; {e['store_share_of_time'] * 100:.1f}% of enrolment time"
    )
    print(
        f"   enroll() {e['templates_per_s']:.2f} templates/s vs the bare engine {bare:.2f} "
        f"templates/s: ratio {ratio(e['templates_per_s'], bare):.3f}x"
    )


def print_identification(label: str, f: dict[str, Any], note: str) -> None:
    lat = f["latency_ms"]
    print(f"   {label}: {f['probes']} probes ({note})")
    print(
        f"      {f['identifications_per_s']:.2f} identifications/s; latency p50 "
        f"{lat['p50']:.0f} ms, p99 {lat['p99']:.0f} ms (engine p50 {lat['engine_p50']:.0f} ms, "
        "rest p50 "
        f"{lat['rest_p50']:.1f} ms, p99 {lat['rest_p99']:.1f} ms)"
    )
    errors = ", ".join(f"{n} {code}" for code, n in f["errors"].items()) or "none"
    print(
        f"      rank-1 {f['rank1_hits']}/{f['mated_probes']} = {f['rank1_rate']:.3f}; "
        f"misidentified {f['misidentified']}; no match {f['no_match']} "
        f"({f['no_match_rate']:.3f}); errors: {errors}; median genuine distance "
        f"{f['genuine_top_distance_median']:.3f}"
    )


def print_synthetic(s: dict[str, Any]) -> None:
    ins, reb, mem, srch = s["insert"], s["rebuild"], s["memory"], s["search"]
    us = ins["per_template_us"]
    print(
        f"\n3. Synthetic scale: {s['templates']:,} random unit-norm float32 {s['dimension']}-d "
        f"templates, {ins['subjects']:,} subjects x {ins['templates_per_subject']}, no engine"
    )
    print(
        f"   insert (key per subject, seal, rows, audit entry per subject; {ins['batch_subjects']} "
        f"subjects per transaction): {ins['total_s']:.1f} s = {ins['templates_per_s']:,.0f} "
        f"templates/s ({ins['subjects_per_s']:,.0f} subjects/s)"
    )
    print(
        f"   per template, us: vault key {us['keys']:.0f} (one commit per subject), seal "
        f"{us['seal']:.0f}, rows {us['rows']:.0f}, audit {us['audit']:.0f}, "
        f"commit {us['commit']:.0f}"
    )
    print(
        f"   index rebuild on a fresh Platform (query, unwrap, decrypt, load): median "
        f"{reb['median_s']:.2f} s of {reb['repeats_s']} = {reb['templates_per_s']:,.0f} templates/s"
    )
    print(
        f"   index memory: vectors {mib(mem['vectors_bytes'])} + norms {mib(mem['norms_bytes'])} "
        f"; whole index incl. ids, maps and spare capacity "
        f"{mib(mem['index_total_bytes_tracemalloc'])}; peer's float64 array "
        f"{mib(mem['peer_float64_bytes'])}"
    )
    print(
        f"   search, {srch['probes']} probes ({srch['mated_probes']} mated, the rest random), "
        f"k={srch['k']}, threshold {srch['threshold']}, the two systems interleaved probe by probe:"
    )
    print(f"      {'BLAS threads':<13}{'system':<40}{'p50 ms':>8}{'p99 ms':>8}{'searches/s':>12}")
    for label, key in (("default", "blas_default_threads"), ("one", "blas_one_thread")):
        f = srch[key]
        for name, what in (
            (FACEACCORD, "ExactIndex.search (float32)"),
            (PEER, "face_distance (float64) + top-k"),
        ):
            g = f[name]
            print(
                f"      {label:<13}{name + ' ' + what:<40}{g['p50_ms']:>8.2f}{g['p99_ms']:>8.2f}"
                f"{g['searches_per_s']:>12,.0f}"
            )
        print(
            f"      {label:<13}ratio: faceaccord {f['ratio_searches_per_s']:.2f}x the peer's "
            f"searches/s, p50 peer/faceaccord {f['ratio_p50_peer_over_faceaccord']:.2f}x; "
            f"identical answers {f['identical_answers']}/{srch['probes']}; mated rank-1 "
            f"{f['mated_rank1']}/{srch['mated_probes']}; non-mated matches "
            f"{f['non_mated_matches']}"
        )
    print(
        "      ('default' is this process as deployed, on the index rebuilt from the database; "
        "'one' is\n      a spawned process with OPENBLAS/OMP/MKL_NUM_THREADS=1, on an index "
        "built from the same rows)"
    )
    e2e = s["identify_end_to_end"]
    print(
        f"   identify() end to end here ({e2e['audit_entries_before']:,} audit entries), "
        f"{e2e['answered']}/{e2e['probes']} real photos: p50 {e2e['p50_ms']:.0f} ms = engine "
        f"{e2e['engine_p50_ms']:.0f} ms + rest {e2e['rest_p50_ms']:.1f} ms (rest p99 "
        f"{e2e['rest_p99_ms']:.1f} ms: policy, search, lookups, audit)"
    )


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    rows: list[tuple[str, str]] = []
    photos = report.get("photos")
    if photos:
        e, loo, closed = photos["enrolment"], photos["leave_one_out"], photos["closed_set"]
        t, lat = e["per_template_ms"], closed["latency_ms"]
        rows += [
            ("enrol subjects/s, templates/s", f"{e['subjects_per_s']:.2f}, "
             f"{e['templates_per_s']:.2f}"),
            ("enrol ms/template engine / store", f"{t['engine_median']:.1f} / "
             f"{t['store_median']:.1f}"),
            ("store / engine (accountability)", f"{e['ratio_store_to_engine_median']:.3f}x"),
            ("photos skipped at enrolment", str(sum(e["skipped"].values()))),
            ("identify/s; p50 / p99 ms", f"{closed['identifications_per_s']:.2f}; "
             f"{lat['p50']:.0f} / {lat['p99']:.0f}"),
            ("identify non-engine p50 / p99 ms", f"{lat['rest_p50']:.1f} / {lat['rest_p99']:.1f}"),
            ("closed-set rank-1", f"{closed['rank1_hits']}/{closed['mated_probes']}"),
            ("leave-one-out rank-1 / no match / wrong", f"{loo['rank1_hits']}/{loo['mated_probes']}"
             f" / {loo['no_match']} / {loo['misidentified']}"),
        ]  # fmt: skip
    s = report["synthetic"]
    ins, reb, mem, srch = s["insert"], s["rebuild"], s["memory"], s["search"]
    rows += [
        ("synthetic templates (subjects)", f"{s['templates']:,} ({ins['subjects']:,})"),
        ("insert templates/s", f"{ins['templates_per_s']:,.0f}"),
        ("index rebuild s (templates/s)", f"{reb['median_s']:.2f} ({reb['templates_per_s']:,.0f})"),
        ("index vectors / whole index / peer array", f"{mib(mem['vectors_bytes'])} / "
         f"{mib(mem['index_total_bytes_tracemalloc'])} / {mib(mem['peer_float64_bytes'])}"),
    ]  # fmt: skip
    for label, key in (
        ("BLAS default", "blas_default_threads"),
        ("BLAS 1 thread", "blas_one_thread"),
    ):
        f = srch[key]
        ours, peer = f[FACEACCORD], f[PEER]
        rows += [
            (f"{label}: search p50 ms faceaccord / peer", f"{ours['p50_ms']:.2f} / "
             f"{peer['p50_ms']:.2f}"),
            (f"{label}: search p99 ms faceaccord / peer", f"{ours['p99_ms']:.2f} / "
             f"{peer['p99_ms']:.2f}"),
            (f"{label}: searches/s faceaccord / peer", f"{ours['searches_per_s']:,.0f} / "
             f"{peer['searches_per_s']:,.0f} = {f['ratio_searches_per_s']:.2f}x"),
            (f"{label}: identical answers", f"{f['identical_answers']}/{srch['probes']}"),
        ]  # fmt: skip
    e2e = s["identify_end_to_end"]
    rows.append(
        (
            "identify() at scale: engine / rest p50 ms",
            f"{e2e['engine_p50_ms']:.0f} / {e2e['rest_p50_ms']:.1f}",
        )
    )
    return [*rows, ("run time s", f"{report['run_s']:.0f}")]


# --- main --------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="4 people, 10,000 templates (CI)")
    parser.add_argument("--json-out", type=Path, help="also write the figures here as JSON")
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "faces-dev")
    parser.add_argument("--synthetic-only", action="store_true", help="part 3 only")
    parser.add_argument("--templates", type=int, help="synthetic templates (a multiple of 5)")
    parser.add_argument("--tmp-dir", type=Path, help="where the temporary homes go")
    args = parser.parse_args()
    started = time.perf_counter()
    count = args.templates or (SHORT_TEMPLATES if args.short else FULL_TEMPLATES)
    if count <= 0 or count % TEMPLATES_PER_SUBJECT:
        parser.error(f"--templates must be a positive multiple of {TEMPLATES_PER_SUBJECT}")

    machine = machine_facts() | {"sqlite": sqlite3.sqlite_version, "numpy": np.__version__}
    print(f"faceaccord gallery benchmark, {'short' if args.short else 'full'} mode")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    with tempfile.TemporaryDirectory(prefix="faceaccord-bench-", dir=args.tmp_dir) as scratch:
        root = Path(scratch)
        where = filesystem_of(root.resolve())
        print(f"temporary home: {root} on {where}; SQLite WAL, synchronous=FULL")
        load_start = time.perf_counter()
        engine = TimedEngine.load(settings_for(root / "photos"))
        assert isinstance(engine, TimedEngine)
        load_s = time.perf_counter() - load_start
        report: dict[str, Any] = {
            "mode": "short" if args.short else "full",
            "machine": machine,
            "filesystem": where,
            "engine_load_s": load_s,
            "model": engine.model_id,
        }
        data_name, people = load_people(args.data, short=args.short)
        photos_n = sum(len(p) for p in people.values())
        print(
            f"data: {data_name}, {len(people)} people, {photos_n} photos; "
            f"engine loaded in {load_s:.2f} s"
        )
        report["data"] = data_name
        if not args.synthetic_only:
            report["photos"] = photo_parts(engine, root / "photos", people)
            print_enrolment(report["photos"])
            held = report["photos"]["held_out"]
            gallery = report["photos"]["gallery"]
            print(f"\n2. Identification, identify() k={K}, real engine, gallery {gallery!r}")
            print_identification(
                "leave-one-out", report["photos"]["leave_one_out"],
                f"one held-out photo per person with 2+ photos, seed {HOLD_OUT_SEED}; "
                f"gallery = all other photos ({len(held)} held out)",
            )  # fmt: skip
            print_identification(
                "closed set", report["photos"]["closed_set"],
                f"every photo; {report['photos']['closed_set']['probes_in_gallery']} "
                "of them are themselves enrolled",
            )  # fmt: skip
        probe_photos = [photos[0] for photos in people.values()][:E2E_PROBES]
        report["synthetic"] = synthetic_part(engine, root / "synthetic", count, probe_photos)
        print_synthetic(report["synthetic"])
    report["run_s"] = time.perf_counter() - started
    print("\nSummary")
    for label, value in summary_rows(report):
        print(f"   {label:<50}{value}")
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"figures written to {args.json_out}")
    search = report["synthetic"]["search"]
    keys = ("blas_default_threads", "blas_one_thread")
    return 0 if all(search[k]["identical_answers"] == search["probes"] for k in keys) else 1


if __name__ == "__main__":
    sys.exit(main())
