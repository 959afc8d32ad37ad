"""The parallel pipeline for many files: decoding, detection and alignment in a process pool,
embedding batched across images in this process.

Worker processes (one per core by default) each hold dlib's detector and landmark model and
turn one file at a time into aligned chips; they keep working ahead of the parent while it runs
the embedding model on batches of chips gathered across files, so decoding and detection
overlap with embedding. Results come back in the order of the files. A file that fails (not an
image, no pixels, a model error, even a worker process that dies) yields an outcome with its
error and never stops the run: when a worker dies, the files that were in flight are retried one
at a time in a fresh process, so only the file that kills a worker is reported as having done so.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from faceaccord.biometrics.faces import FaceTemplate
from faceaccord.biometrics.models.cards import ModelCard
from faceaccord.biometrics.pipeline import AlignedFace, Engine
from faceaccord.errors import FaceAccordError
from faceaccord.settings import Settings

__all__ = ["FileOutcome", "embed_files", "enrolment_templates", "list_files"]


@dataclass(frozen=True, slots=True)
class FileOutcome:
    path: Path
    templates: tuple[FaceTemplate, ...] = ()
    error: str | None = None
    error_code: str | None = None


@dataclass(frozen=True, slots=True)
class _Analysed:
    """A file's aligned faces (largest first), or why it has none."""

    path: Path
    faces: tuple[AlignedFace, ...] = ()
    error: str | None = None
    error_code: str | None = None


def list_files(root: Path) -> list[Path]:
    """Every regular file under ``root``, sorted, skipping hidden files and folders. Files are
    not filtered by extension: intake decides what an image is by its content."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        found += [Path(folder) / f for f in files if not f.startswith(".")]
    return sorted(p for p in found if p.is_file())


def embed_files(paths: Sequence[Path], *, engine: Engine, workers: int) -> Iterator[FileOutcome]:
    """Templates of every face of every file, in the order of ``paths``: detection in
    ``workers`` processes, embedding by ``engine`` in batches of ``embed_batch_size`` chips."""
    for batch in _batches(_analysed(paths, engine=engine, workers=workers), engine):
        embeddings = iter(_embedded(engine, [face.chip for item in batch for face in item.faces]))
        for item in batch:
            if item.error is not None:
                yield FileOutcome(path=item.path, error=item.error, error_code=item.error_code)
                continue
            yield FileOutcome(
                path=item.path,
                templates=tuple(
                    FaceTemplate(face=f.face, embedding=next(embeddings), model_id=engine.model_id)
                    for f in item.faces
                ),
            )


def enrolment_templates(
    paths: Sequence[Path], *, engine: Engine, workers: int
) -> Iterator[tuple[Path, FaceTemplate | FaceAccordError]]:
    """For each file in order, the template of its enrolment face (``Engine.enroll``'s rules:
    the largest face, which must pass the quality gate) or the error that refuses it."""
    for batch in _batches(_analysed(paths, engine=engine, workers=workers), engine):
        chosen: list[AlignedFace | FaceAccordError] = []
        for item in batch:
            if item.error is not None:
                chosen.append(_FileFailedError(item.error, code=item.error_code))
                continue
            try:
                chosen.append(engine.enrolment_face(item.faces))
            except FaceAccordError as error:
                chosen.append(error)
        faces = [c for c in chosen if isinstance(c, AlignedFace)]
        embeddings = iter(_embedded(engine, [f.chip for f in faces]))
        for item, choice in zip(batch, chosen, strict=True):
            if isinstance(choice, FaceAccordError):
                yield item.path, choice
            else:
                template = FaceTemplate(
                    face=choice.face, embedding=next(embeddings), model_id=engine.model_id
                )
                yield item.path, template


def _embedded(engine: Engine, chips: list[NDArray[np.uint8]]) -> NDArray[np.float32]:
    if not chips:
        return np.zeros((0, engine.card.embedding_dim), dtype=np.float32)
    return engine.embed_chips(chips)


class _FileFailedError(FaceAccordError):
    """A file that a worker could not analyse, carrying the worker's error code."""

    def __init__(self, message: str, *, code: str | None) -> None:
        super().__init__(message)
        self.code = code or "internal_error"


def _batches(items: Iterable[_Analysed], engine: Engine) -> Iterator[list[_Analysed]]:
    """Consecutive files holding about ``embed_batch_size`` faces between them."""
    batch: list[_Analysed] = []
    faces = 0
    for item in items:
        batch.append(item)
        faces += len(item.faces)
        if faces >= engine.settings.embed_batch_size:
            yield batch
            batch, faces = [], 0
    if batch:
        yield batch


def _analysed(paths: Sequence[Path], *, engine: Engine, workers: int) -> Iterator[_Analysed]:
    settings, card = engine.settings, engine.card
    window = max(2, workers * 4)
    pending: deque[tuple[Path, Future[_Analysed]]] = deque()
    queue = iter(paths)
    pool = _new_pool(settings, card, workers)
    try:
        while True:
            while len(pending) < window and (path := next(queue, None)) is not None:
                pending.append((path, pool.submit(_analyse_one, path)))
            if not pending:
                return
            path, future = pending.popleft()
            try:
                outcome = future.result()
            except BrokenProcessPool:
                suspects = [path] + [p for p, _ in pending]
                pending.clear()
                pool.shutdown(wait=False, cancel_futures=True)
                for suspect in suspects:
                    yield _isolated(suspect, settings, card)
                pool = _new_pool(settings, card, workers)
                continue
            yield outcome
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_ENGINE: Engine | None = None
_PR_SET_PDEATHSIG = 1


def _init_worker(settings: Settings, card: ModelCard, parent: int) -> None:
    global _ENGINE  # noqa: PLW0603 - one engine per worker process, built once
    _exit_with_parent(parent)
    _ENGINE = Engine.for_analysis(settings, card)


def _exit_with_parent(parent: int) -> None:
    """A worker must not outlive a parent that was killed (SIGKILL runs no clean-up): it would
    hold the parent's stdout open and its share of the machine. Linux delivers SIGKILL to us
    when the parent dies; elsewhere a watchdog thread notices that we were re-parented."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before the line above took effect
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.5)
        os._exit(1)

    threading.Thread(target=watch, name="parent-watchdog", daemon=True).start()


def _analyse_one(path: Path) -> _Analysed:
    assert _ENGINE is not None, "worker not initialised"
    try:
        return _Analysed(path=path, faces=tuple(_ENGINE.analyse(path)))
    except FaceAccordError as error:
        return _Analysed(path=path, error=error.message, error_code=error.code)
    except MemoryError:
        return _Analysed(path=path, error="out of memory", error_code="out_of_memory")
    except Exception as error:  # a bug or a library failure on this file; keep going
        return _Analysed(
            path=path, error=f"{type(error).__name__}: {error}", error_code="internal_error"
        )


def _new_pool(settings: Settings, card: ModelCard, workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the parent may be running threads (the progress bar, ONNX Runtime), and
    # forking a threaded process can deadlock the child.
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(settings, card, os.getpid()),
    )


def _isolated(path: Path, settings: Settings, card: ModelCard) -> _Analysed:
    with _new_pool(settings, card, 1) as pool:
        try:
            return pool.submit(_analyse_one, path).result()
        except BrokenProcessPool:
            return _Analysed(
                path=path,
                error="the worker process died while processing this file",
                error_code="worker_crashed",
            )
