"""Crash safety of bulk enrolment: a real ``faceaccord enroll --folder`` process is killed with
SIGKILL part-way through, at a few different points (while it embeds a photo, and in the moment
between committing a subject's data key and committing the subject), and the deployment it leaves
behind must be whole: the database is intact, every subject acknowledged is there with its
templates, no subject is half-enrolled, every template can be decrypted, the audit log verifies
and records exactly the committed enrolments, and retention finds nothing to repair (at most the
one data key that was created for a subject whose transaction never committed)."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from faceaccord.biometrics.pipeline import Engine
from faceaccord.platform.deployment import Platform
from faceaccord.platform.erasure import run_retention
from faceaccord.samples import SamplePhotos
from faceaccord.settings import Settings
from faceaccord.store.models import SubjectRow, TemplateRow

pytestmark = pytest.mark.real_model

FACEACCORD = Path(sys.executable).with_name("faceaccord")
PEOPLE = 30
ACK_TIMEOUT_S = 90.0  # the first acknowledgement includes loading the model
EXIT_TIMEOUT_S = 30.0
COMMAND_TIMEOUT_S = 120.0
KEY_TIMEOUT_S = 30.0

Moment = Callable[[Path], None]
"""Waits, given FACEACCORD_HOME, from an acknowledgement until the moment to kill."""


def pause(seconds: float) -> Moment:
    """``seconds`` after the acknowledgement: the process is embedding the next subject's
    photos, most of the time it spends on a subject."""

    def wait(home: Path) -> None:
        time.sleep(seconds)

    return wait


def next_key_written(home: Path) -> None:
    """The moment the key vault's file changes: the next subject's data key is being committed
    (a key is the only thing enrolment writes there), so the kill lands inside that commit or in
    the few milliseconds before the subject's own transaction commits."""
    wal = home / "keyvault.db"

    def state() -> tuple[int, int] | None:
        with contextlib.suppress(FileNotFoundError):
            stat = wal.stat()
            return stat.st_mtime_ns, stat.st_size
        return None

    before = state()
    deadline = time.monotonic() + KEY_TIMEOUT_S
    while state() == before:
        assert time.monotonic() < deadline, "no key was written"


def build_folder(root: Path, samples: SamplePhotos) -> list[str]:
    """person-00 .. person-29, one or two photos each (copies of the sample photos: the same
    photo in several subjects is fine); returns the subjects in the order they are enrolled."""
    photos = [*samples.person_a, samples.person_b]
    names = []
    for i in range(PEOPLE):
        person = root / f"person-{i:02d}"
        person.mkdir(parents=True)
        for j in range(1 + i % 2):
            photo = photos[(i + j) % len(photos)]
            shutil.copy(photo, person / f"{j}-{photo.name}")
        names.append(person.name)
    return names


def faceaccord(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(FACEACCORD), *(str(a) for a in args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=COMMAND_TIMEOUT_S,
    )


def ok(*args: str | Path) -> Any:
    completed = faceaccord(*args, "--json")
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout)


@dataclass
class KilledRun:
    acknowledged: list[dict[str, Any]]
    """Every acknowledgement the process printed, including those still in the pipe at the kill."""
    returncode: int
    stderr: str


def lines_of(stream: IO[str]) -> queue.Queue[str | None]:
    """The stream's lines as they arrive, then None at its end."""
    lines: queue.Queue[str | None] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def enroll_and_kill(folder: Path, *, home: Path, after_acks: int, moment: Moment) -> KilledRun:
    """Run a bulk enrolment and SIGKILL it at ``moment`` after its ``after_acks``-th ack."""
    command = [str(FACEACCORD), "enroll", "--gallery", "bulk", "--purpose", "access_control",
               "--folder", str(folder), "--json"]  # fmt: skip
    with (
        (home.parent / "enroll.stderr").open("w+", encoding="utf-8") as errors,
        subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True) as process,
    ):
        try:
            assert process.stdout is not None
            lines = lines_of(process.stdout)
            acknowledged: list[dict[str, Any]] = []
            while len(acknowledged) < after_acks:
                line = lines.get(timeout=ACK_TIMEOUT_S)
                assert line is not None, "the enrolment ended before it could be killed"
                acknowledged.append(json.loads(line))
            moment(home)
            os.kill(process.pid, signal.SIGKILL)
            returncode = process.wait(timeout=EXIT_TIMEOUT_S)
            while (line := lines.get(timeout=EXIT_TIMEOUT_S)) is not None:
                acknowledged.append(json.loads(line))
        finally:
            if process.poll() is None:  # a failed assertion above: never leave it running
                process.kill()
                process.wait(timeout=EXIT_TIMEOUT_S)
        errors.seek(0)
        return KilledRun(acknowledged, returncode, errors.read())


def integrity(database: Path) -> list[tuple[Any, ...]]:
    with contextlib.closing(sqlite3.connect(database)) as db:
        return db.execute("PRAGMA integrity_check").fetchall()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("FACEACCORD_HOME", str(home))  # for the processes and for Settings()
    return home


@dataclass(frozen=True)
class Committed:
    """What a fresh process finds in the deployment."""

    subjects: dict[str, tuple[str, int]]
    """Reference -> (subject id, number of templates)."""
    template_ids: set[str]
    indexed_template_ids: set[str]
    """The template ids in the gallery's index, rebuilt (and decrypted) from the database."""
    keys: set[str]
    """The subject ids that have a data key in the key vault."""

    @property
    def subject_ids(self) -> set[str]:
        return {subject_id for subject_id, _ in self.subjects.values()}


def committed(gallery: str, engine: Engine) -> Committed:
    with Platform.open(Settings(), engine=engine) as deployment:
        gallery_id = deployment.gallery_id(gallery)
        with Session(deployment.db) as session:
            subjects = {
                reference: (subject_id, count)
                for subject_id, reference, count in session.execute(
                    select(SubjectRow.id, SubjectRow.reference, func.count(TemplateRow.id))
                    .outerjoin(TemplateRow)
                    .where(SubjectRow.gallery_id == gallery_id)
                    .group_by(SubjectRow.id)
                )
            }
            template_ids = set(
                session.scalars(
                    select(TemplateRow.id)
                    .join(SubjectRow)
                    .where(SubjectRow.gallery_id == gallery_id)
                )
            )
        return Committed(
            subjects=subjects,
            template_ids=template_ids,
            indexed_template_ids=deployment.index_for(gallery_id).template_ids(),
            keys=deployment.vault.subject_ids(),
        )


@pytest.mark.parametrize(
    ("after_acks", "moment"),
    [
        pytest.param(1, pause(0.0), id="after-1-ack"),
        pytest.param(4, pause(0.25), id="after-4-acks"),
        pytest.param(9, pause(0.5), id="after-9-acks"),
        pytest.param(4, next_key_written, id="as-the-5th-subject-s-key-is-written"),
    ],
)
def test_a_bulk_enrolment_killed_part_way_leaves_a_whole_deployment(
    home: Path,
    tmp_path: Path,
    samples: SamplePhotos,
    engine: Engine,
    after_acks: int,
    moment: Moment,
) -> None:
    names = build_folder(tmp_path / "people", samples)
    ok("gallery", "create", "bulk", "--purpose", "access_control")

    run = enroll_and_kill(tmp_path / "people", home=home, after_acks=after_acks, moment=moment)

    assert run.returncode == -signal.SIGKILL, f"it was not killed mid-run: {run.stderr}"
    assert all("error" not in ack for ack in run.acknowledged), run.acknowledged
    acked = {ack["subject"]: ack["templates"] for ack in run.acknowledged}
    assert list(acked) == names[: len(acked)], "acknowledged in folder order"

    # The databases survived the kill.
    assert integrity(home / "faceaccord.db") == [("ok",)]
    assert integrity(home / "keyvault.db") == [("ok",)]

    found = committed("bulk", engine)
    # Every acknowledged subject is there with all its templates; at most the one subject being
    # enrolled at the kill committed without its acknowledgement reaching us.
    assert {name: found.subjects[name][1] for name in acked} == acked
    assert set(found.subjects) - set(acked) <= {names[len(acked)]}
    # No subject is half-enrolled.
    assert all(count > 0 for _, count in found.subjects.values()), found.subjects
    # Every template has its key and decrypts: the index rebuilt at start holds them all.
    assert found.indexed_template_ids == found.template_ids
    assert found.subject_ids <= found.keys
    orphan_keys = found.keys - found.subject_ids
    assert len(orphan_keys) <= 1, "a key is created just before its subject's transaction"

    # The audit log verifies and holds the gallery's creation and one entry per enrolment.
    assert ok("audit", "verify") == {
        "ok": True,
        "entries": 1 + len(found.subjects),
        "first_bad": None,
        "reason": None,
    }

    # Retention has nothing to repair. An orphan key is kept for an hour (it could belong to an
    # enrolment in progress), then removed.
    report = ok("retention", "run")
    print(  # shown with -rP: how this run was cut
        f"killed after {len(acked)} acknowledgement(s): {len(found.subjects)} subject(s) "
        f"committed, {len(orphan_keys)} orphan key(s)"
    )
    assert report["checked"] == len(found.subjects)
    assert (report["erased"], report["receipts"]) == ([], [])
    assert report["orphan_keys_removed"] == 0
    later = datetime.now(UTC) + timedelta(hours=2)
    with Platform.open(Settings(), engine=engine, clock=lambda: later) as deployment:
        assert run_retention(deployment).orphan_keys_removed == len(orphan_keys)
    assert committed("bulk", engine).keys == found.subject_ids
    assert ok("audit", "verify")["ok"] is True
