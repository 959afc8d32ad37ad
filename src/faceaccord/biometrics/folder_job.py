"""Embed every file of a folder tree on all cores.

Each worker process loads the engine once and handles one file per task. Results come back in
the order of the files. A file that fails (not an image, no pixels, a model error, even a worker
process that dies) yields an outcome with its error and never stops the run: when a worker
dies, the files that were in flight are retried one at a time in a fresh process, so only the
file that kills a worker is reported as having done so.
"""

from __future__ import annotations

import multiprocessing
import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

from faceaccord.biometrics.faces import FaceTemplate
from faceaccord.biometrics.pipeline import Engine
from faceaccord.errors import FaceAccordError
from faceaccord.settings import Settings

__all__ = ["FileOutcome", "embed_files", "list_files"]


@dataclass(frozen=True, slots=True)
class FileOutcome:
    path: Path
    templates: tuple[FaceTemplate, ...] = ()
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


def embed_files(
    paths: Sequence[Path],
    *,
    settings: Settings,
    workers: int,
) -> Iterator[FileOutcome]:
    """Outcomes for ``paths`` in order, computed by ``workers`` processes."""
    window = max(2, workers * 2)
    pending: deque[tuple[Path, Future[FileOutcome]]] = deque()
    queue = iter(paths)
    pool = _new_pool(settings, workers)
    try:
        while True:
            while len(pending) < window and (path := next(queue, None)) is not None:
                pending.append((path, pool.submit(_embed_one, path)))
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
                    yield _isolated(suspect, settings)
                pool = _new_pool(settings, workers)
                continue
            yield outcome
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


_ENGINE: Engine | None = None


def _init_worker(settings: Settings) -> None:
    global _ENGINE  # noqa: PLW0603 - one engine per worker process, built once
    _ENGINE = Engine.load(settings)


def _embed_one(path: Path) -> FileOutcome:
    assert _ENGINE is not None, "worker not initialised"
    try:
        return FileOutcome(path=path, templates=tuple(_ENGINE.embed(path)))
    except FaceAccordError as error:
        return FileOutcome(path=path, error=error.message, error_code=error.code)
    except MemoryError:
        return FileOutcome(path=path, error="out of memory", error_code="out_of_memory")
    except Exception as error:  # a bug or a library failure on this file; keep going
        return FileOutcome(
            path=path, error=f"{type(error).__name__}: {error}", error_code="internal_error"
        )


def _new_pool(settings: Settings, workers: int) -> ProcessPoolExecutor:
    # spawn, not fork: the parent may be running threads (the progress bar), and forking a
    # threaded process can deadlock the child.
    return ProcessPoolExecutor(
        max_workers=workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_init_worker,
        initargs=(settings,),
    )


def _isolated(path: Path, settings: Settings) -> FileOutcome:
    with _new_pool(settings, 1) as pool:
        try:
            return pool.submit(_embed_one, path).result()
        except BrokenProcessPool:
            return FileOutcome(
                path=path,
                error="the worker process died while processing this file",
                error_code="worker_crashed",
            )
