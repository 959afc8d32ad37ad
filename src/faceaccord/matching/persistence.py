"""Saving and loading template indexes: one directory, an atomic switch, checksums checked first.

A saved index is a directory::

    <directory>/
        CURRENT                   {"generation": "generation-<hex>", "manifest_sha256": "<hex>"}
        generation-<hex>/
            manifest.json         format, format_version, kind, model_id, dimension, count,
                                  options, and for every file: its size and SHA-256
            vectors.npy, template_ids.json, subject_codes.npy, subjects.json, ...

``save`` writes a new generation (each file flushed to disk with fsync), then replaces
``CURRENT`` with ``os.replace``, the commit point, and only then deletes older generations. A
crash at any moment leaves ``CURRENT`` naming a complete generation: the old one before the
replace, the new one after. An unfinished generation is an orphan that the next save deletes.

``load`` reads ``CURRENT``, checks the manifest against its hash, then the format version, the
kind, the model and the dimension, then every file's size and SHA-256, all before parsing any
file: FAISS's reader is not safe on corrupt input. Every refusal is a ``ValueError`` that says
what is wrong.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import DTypeLike, NDArray

__all__ = ["FORMAT", "FORMAT_VERSION", "SavedIndex", "load", "save", "saved_kind"]

FORMAT = "faceaccord-template-index"
FORMAT_VERSION = 1
CURRENT = "CURRENT"
MANIFEST = "manifest.json"
GENERATION = re.compile(r"generation-[0-9a-f]{32}")
FILE_NAME = re.compile(r"[a-z0-9_]+\.[a-z0-9]+")
MANIFEST_FIELDS: dict[str, type] = {
    "kind": str,
    "model_id": str,
    "dimension": int,
    "count": int,
    "options": dict,
    "files": dict,
}


def save(
    directory: Path,
    *,
    kind: str,
    model_id: str,
    dimension: int,
    count: int,
    options: Mapping[str, Any],
    arrays: Mapping[str, NDArray[Any]] | None = None,
    lists: Mapping[str, Sequence[str | None]] | None = None,
    files: Mapping[str, Callable[[Path], None]] | None = None,
) -> None:
    """Write a new generation of the index in ``directory`` and switch ``CURRENT`` to it.

    ``arrays`` are written as ``.npy``, ``lists`` as JSON arrays of strings (or nulls), and
    each of ``files`` by its own writer, given the path to create.
    """
    directory.mkdir(parents=True, exist_ok=True)
    generation = directory / f"generation-{secrets.token_hex(16)}"
    generation.mkdir()
    digests: dict[str, dict[str, Any]] = {}
    writers: dict[str, Callable[[Path], None]] = {}
    for name, array in (arrays or {}).items():
        writers[name] = _npy_writer(array)
    for name, strings in (lists or {}).items():
        writers[name] = _json_writer(list(strings))
    writers.update(files or {})
    for name, write in writers.items():
        if not FILE_NAME.fullmatch(name) or name == MANIFEST:
            raise ValueError(f"{name!r} is not a valid file name for a saved index")
        path = generation / name
        write(path)
        _fsync_file(path)
        digests[name] = {"bytes": path.stat().st_size, "sha256": _sha256(path)}
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "model_id": model_id,
        "dimension": dimension,
        "count": count,
        "options": dict(options),
        "files": digests,
    }
    manifest_bytes = json.dumps(manifest, indent=2, sort_keys=True).encode("utf-8")
    _write_durably(generation / MANIFEST, manifest_bytes)
    _fsync_directory(generation)
    pointer = {
        "generation": generation.name,
        "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest(),
    }
    staged = directory / f"{CURRENT}.tmp-{secrets.token_hex(8)}"
    _write_durably(staged, json.dumps(pointer).encode("utf-8"))
    os.replace(staged, directory / CURRENT)
    _fsync_directory(directory)
    for stale in directory.iterdir():
        if stale.name != generation.name and GENERATION.fullmatch(stale.name) and stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


@dataclass(frozen=True)
class SavedIndex:
    """A verified generation: every file listed in its manifest has the recorded size and hash."""

    generation: Path
    kind: str
    model_id: str
    dimension: int
    count: int
    options: dict[str, Any]
    files: frozenset[str]

    def path(self, name: str) -> Path:
        if name not in self.files:
            raise ValueError(f"the saved index in {self.generation.parent} has no {name}")
        return self.generation / name

    def array(self, name: str, *, dtype: DTypeLike, shape: tuple[int, ...]) -> NDArray[Any]:
        """A memory-mapped, read-only ``.npy`` array of exactly this dtype and shape."""
        try:
            array: NDArray[Any] = np.load(self.path(name), mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ValueError(f"{self.path(name)} is not a readable array: {error}") from error
        if array.dtype != np.dtype(dtype) or array.shape != shape:
            raise ValueError(
                f"{self.path(name)} holds {array.dtype}{array.shape}, expected "
                f"{np.dtype(dtype)}{shape}"
            )
        return array

    def strings(self, name: str, *, length: int | None = None) -> list[str]:
        values = self.optional_strings(name, length=length)
        if any(value is None for value in values):
            raise ValueError(f"{self.path(name)} has a null where a string belongs")
        return [value for value in values if value is not None]

    def optional_strings(self, name: str, *, length: int | None = None) -> list[str | None]:
        """A JSON array of strings and nulls (nulls mark removed entries)."""
        try:
            values = json.loads(self.path(name).read_bytes())
        except (OSError, ValueError) as error:
            raise ValueError(f"{self.path(name)} is not readable JSON: {error}") from error
        if not isinstance(values, list) or not all(
            value is None or isinstance(value, str) for value in values
        ):
            raise ValueError(f"{self.path(name)} is not a list of strings")
        if length is not None and len(values) != length:
            raise ValueError(f"{self.path(name)} has {len(values)} entries, expected {length}")
        return values


def saved_kind(directory: Path) -> str:
    """The kind of index saved in ``directory`` (its manifest checked, its files not yet)."""
    _, manifest = _manifest(directory)
    return str(manifest["kind"])


def load(directory: Path, *, kind: str, model_id: str, dimension: int) -> SavedIndex:
    """The current generation of the ``kind`` index saved in ``directory``, verified."""
    generation, manifest = _manifest(directory)
    if manifest["kind"] != kind:
        raise ValueError(f"{directory} holds a {manifest['kind']!r} index, not {kind!r}")
    if manifest["model_id"] != model_id:
        raise ValueError(
            f"{directory} holds templates of model {manifest['model_id']!r}, not {model_id!r}"
        )
    if manifest["dimension"] != dimension:
        raise ValueError(
            f"{directory} holds {manifest['dimension']}-dimensional templates, not {dimension}"
        )
    files: dict[str, dict[str, Any]] = manifest["files"]
    for file_name, digest in files.items():
        if not FILE_NAME.fullmatch(file_name):
            raise ValueError(f"{generation / MANIFEST} lists an invalid file name {file_name!r}")
        path = generation / file_name
        try:
            size = path.stat().st_size
        except OSError as error:
            raise ValueError(f"{path} is missing: {error}") from error
        if size != digest["bytes"]:
            raise ValueError(
                f"{path} is truncated or corrupt: {size} bytes, {digest['bytes']} saved"
            )
        if _sha256(path) != digest["sha256"]:
            raise ValueError(f"{path} is corrupt: its SHA-256 does not match the manifest")
    return SavedIndex(
        generation=generation,
        kind=manifest["kind"],
        model_id=model_id,
        dimension=dimension,
        count=int(manifest["count"]),
        options=dict(manifest["options"]),
        files=frozenset(files),
    )


def _manifest(directory: Path) -> tuple[Path, dict[str, Any]]:
    pointer = _read_json(directory / CURRENT, f"no saved index in {directory} (no {CURRENT})")
    name = pointer.get("generation")
    if not isinstance(name, str) or not GENERATION.fullmatch(name):
        raise ValueError(f"{directory / CURRENT} names no generation")
    generation = directory / name
    try:
        manifest_bytes = (generation / MANIFEST).read_bytes()
    except OSError as error:
        raise ValueError(f"the saved index in {directory} has no manifest: {error}") from error
    if hashlib.sha256(manifest_bytes).hexdigest() != pointer.get("manifest_sha256"):
        raise ValueError(f"{generation / MANIFEST} is corrupt (its SHA-256 does not match)")
    manifest = json.loads(manifest_bytes)
    if not isinstance(manifest, dict):
        raise ValueError(f"{generation / MANIFEST} is not a JSON object")
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{directory} holds format {manifest.get('format')!r} version "
            f"{manifest.get('format_version')!r}; this version reads {FORMAT!r} {FORMAT_VERSION}"
        )
    for key, kind in MANIFEST_FIELDS.items():
        if not isinstance(manifest.get(key), kind):
            raise ValueError(f"{generation / MANIFEST} has no valid {key!r}")
    for digest in manifest["files"].values():
        if not (
            isinstance(digest, dict)
            and isinstance(digest.get("bytes"), int)
            and isinstance(digest.get("sha256"), str)
        ):
            raise ValueError(f"{generation / MANIFEST} has an invalid file entry")
    return generation, manifest


def _npy_writer(array: NDArray[Any]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        with path.open("wb") as out:
            np.save(out, np.ascontiguousarray(array), allow_pickle=False)

    return write


def _json_writer(values: list[str | None]) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        path.write_bytes(json.dumps(values, ensure_ascii=False).encode("utf-8"))

    return write


def _read_json(path: Path, missing: str) -> dict[str, Any]:
    try:
        value = json.loads(path.read_bytes())
    except FileNotFoundError as error:
        raise ValueError(missing) from error
    except (OSError, ValueError) as error:
        raise ValueError(f"{path} is not readable JSON: {error}") from error
    if not isinstance(value, dict):
        raise ValueError(f"{path} is not a JSON object")
    return value


def _sha256(path: Path) -> str:
    with path.open("rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _write_durably(path: Path, data: bytes) -> None:
    with path.open("wb") as out:
        out.write(data)
        out.flush()
        os.fsync(out.fileno())


def _fsync_file(path: Path) -> None:
    with path.open("rb+") as file:
        os.fsync(file.fileno())


def _fsync_directory(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
