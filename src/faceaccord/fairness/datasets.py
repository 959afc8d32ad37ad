"""Audit datasets: a manifest CSV (``path, subject_id, <demographic columns>[, label_method]``),
or a folder per person with a CSV of labels per person. Images whose face cannot be acquired
stay in the dataset and count as failure-to-acquire for their groups."""

from __future__ import annotations

import csv
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from faceaccord.errors import InputError

__all__ = ["Dataset", "DatasetImage", "dataset_sha256", "load_dataset"]

SUBJECT_KEYS = ("subject_id", "subject", "identity", "id")
NOT_ATTRIBUTES = frozenset(
    {"path", "file", "label_method", "format", "width", "height", "bytes", "source_path",
     "expression"}
)  # fmt: skip
MAX_LEVELS = 20
UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class DatasetImage:
    path: Path
    subject: str
    attributes: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    root: Path
    images: tuple[DatasetImage, ...]
    attributes: tuple[str, ...]
    label_method: str
    provenance: str

    @property
    def subjects(self) -> list[str]:
        return sorted({image.subject for image in self.images})


def load_dataset(
    path: Path,
    *,
    labels: Path | None = None,
    attributes: Sequence[str] | None = None,
    label_method: str | None = None,
    demographics: bool = True,
) -> Dataset:
    """A manifest CSV, or a folder per person (with ``labels``: one row per person). With
    ``demographics=False`` no label is read at all: images and who they show, nothing else
    (what calibrating a score normaliser may see)."""
    if not demographics and (labels is not None or attributes):
        raise InputError("demographic labels were given where none may be read")
    if path.is_file():
        rows = _read_csv(path)
        if not demographics:
            key = _subject_key(rows[0].keys(), path)
            rows = [{k: v for k, v in row.items() if k in {"path", key}} for row in rows]
        return _from_manifest(path, rows, attributes, label_method)
    if not path.is_dir():
        raise InputError(f"no dataset at {path}: give a manifest CSV or a folder per person")
    people = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not people:
        raise InputError(f"{path} has no sub-folder per person")
    per_person: dict[str, dict[str, str]] = {}
    columns: list[str] = []
    if labels is not None:
        rows = _read_csv(labels)
        key = _subject_key(rows[0].keys(), labels)
        columns = [c for c in rows[0] if c != key]
        per_person = {row[key].strip(): row for row in rows}
    chosen = _attributes(columns, list(per_person.values()), attributes)
    images = []
    for person in people:
        values = per_person.get(person.name, {})
        groups = {a: (values.get(a) or "").strip() or UNKNOWN for a in chosen}
        for file in sorted(person.iterdir()):
            if file.is_file() and not file.name.startswith("."):
                images.append(DatasetImage(path=file, subject=person.name, attributes=groups))
    if not images:
        raise InputError(f"{path}: the person folders hold no files")
    return Dataset(
        name=path.name,
        root=path,
        images=tuple(images),
        attributes=tuple(chosen),
        label_method=label_method or _guess_method(columns),
        provenance=_provenance(path),
    )


def _from_manifest(
    path: Path,
    rows: list[dict[str, str]],
    attributes: Sequence[str] | None,
    label_method: str | None,
) -> Dataset:
    columns = list(rows[0])
    if "path" not in columns:
        raise InputError(f"{path}: a manifest needs a 'path' column (found {', '.join(columns)})")
    key = _subject_key(columns, path)
    chosen = _attributes([c for c in columns if c not in {key, "path"}], rows, attributes)
    images = []
    for number, row in enumerate(rows, start=2):
        relative = (row.get("path") or "").strip()
        subject = (row.get(key) or "").strip()
        if not relative or not subject:
            raise InputError(f"{path}:{number}: every row needs a path and a {key}")
        images.append(
            DatasetImage(
                path=(path.parent / relative).resolve(),
                subject=subject,
                attributes={a: (row.get(a) or "").strip() or UNKNOWN for a in chosen},
            )
        )
    methods = {(row.get("label_method") or "").strip() for row in rows} - {""}
    return Dataset(
        name=path.stem,
        root=path.parent,
        images=tuple(images),
        attributes=tuple(chosen),
        label_method=label_method or ", ".join(sorted(methods)) or _guess_method(columns),
        provenance=_provenance(path.parent),
    )


def dataset_sha256(dataset: Dataset) -> str:
    """A hash of the dataset's content: each image's path relative to the root, its person and
    its bytes' SHA-256, in order (labels are not part of it)."""
    digest = hashlib.sha256()
    for image in dataset.images:
        try:
            relative = image.path.relative_to(dataset.root)
        except ValueError:
            relative = image.path
        file_hash = hashlib.sha256(image.path.read_bytes()).hexdigest()
        digest.update(f"{relative}\0{image.subject}\0{file_hash}\n".encode())
    return digest.hexdigest()


def _read_csv(path: Path) -> list[dict[str, str]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read {path} as CSV: {exc}") from None
    if not rows:
        raise InputError(f"{path} has no rows")
    return rows


def _subject_key(columns: Iterable[str], where: Path) -> str:
    names = list(columns)
    for key in SUBJECT_KEYS:
        if key in names:
            return key
    raise InputError(f"{where}: no subject column (one of {', '.join(SUBJECT_KEYS)})")


def _attributes(
    columns: list[str], rows: list[dict[str, str]], wanted: Sequence[str] | None
) -> list[str]:
    if wanted:
        missing = [a for a in wanted if a not in columns]
        if missing:
            raise InputError(
                f"no column {', '.join(missing)} in the labels (columns: {', '.join(columns)})"
            )
        return list(wanted)
    chosen = []
    for column in columns:
        if column in NOT_ATTRIBUTES:
            continue
        levels = {(row.get(column) or "").strip() for row in rows}
        if 1 < len(levels) <= MAX_LEVELS:  # categorical; numbers like age go via bands
            chosen.append(column)
    return chosen


def _guess_method(columns: Sequence[str]) -> str:
    if any("self_reported" in c or "self-reported" in c for c in columns):
        return "self-reported"
    return "not stated"


def _provenance(folder: Path) -> str:
    for name in ("MANIFEST.txt", "README.md", "README.txt"):
        manifest = folder / name
        if manifest.is_file():
            text = manifest.read_text(encoding="utf-8", errors="replace").strip()
            return text[:2000]
    return f"{folder} (no MANIFEST.txt or README found)"
