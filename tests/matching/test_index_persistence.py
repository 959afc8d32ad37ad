"""Saved indexes come back exactly as they were, are refused when they belong to another model or
are damaged, and a save that dies half way leaves the previous index in place."""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from dlib_like import DIMENSION, MODEL, THRESHOLD, Gallery, IndexFactory

from faceaccord.matching import (
    ExactIndex,
    IndexKind,
    ScalableIndex,
    Storage,
    load_index,
    make_index,
    persistence,
)
from faceaccord.matching.approximate import HnswIndex


def _filled(new_index: IndexFactory, gallery: Gallery) -> ScalableIndex:
    index = new_index()
    index.add(
        template_ids=gallery.template_ids,
        subject_ids=gallery.subject_ids,
        vectors=gallery.vectors,
    )
    index.remove_subjects(gallery.mated_subjects[:10])  # holes, moved rows, tombstones
    return index


def _generation(directory: Path) -> Path:
    return directory / json.loads((directory / "CURRENT").read_text())["generation"]


def test_a_saved_index_loads_with_the_same_templates_and_answers(
    new_index: IndexFactory, gallery: Gallery, tmp_path: Path
) -> None:
    index = _filled(new_index, gallery)
    index.save(tmp_path / "index")
    loaded = load_index(tmp_path / "index", model_id=MODEL, dimension=DIMENSION)
    assert type(loaded) is type(index)
    assert len(loaded) == len(index)
    assert loaded.template_ids() == index.template_ids()
    for threshold in (THRESHOLD, math.inf):
        assert loaded.search_many(gallery.probes, k=5, threshold=threshold) == (
            index.search_many(gallery.probes, k=5, threshold=threshold)
        )
    loaded.add(template_ids=["new"], subject_ids=["new"], vectors=gallery.vectors[:1] + 0.5)
    assert len(loaded) == len(index) + 1


def test_an_exact_index_may_be_loaded_into_the_other_storage(
    gallery: Gallery, tmp_path: Path
) -> None:
    index = ExactIndex(model_id=MODEL, dimension=DIMENSION)
    index.add(
        template_ids=gallery.template_ids, subject_ids=gallery.subject_ids, vectors=gallery.vectors
    )
    index.save(tmp_path)
    half = ExactIndex.load(tmp_path, model_id=MODEL, dimension=DIMENSION, storage="float16")
    assert half.storage is Storage.FLOAT16
    assert half.search_many(gallery.probes, k=5, threshold=math.inf) == index.search_many(
        gallery.probes, k=5, threshold=math.inf
    )


def test_saving_again_replaces_the_previous_generation(
    new_index: IndexFactory, gallery: Gallery, tmp_path: Path
) -> None:
    index = _filled(new_index, gallery)
    index.save(tmp_path)
    first = _generation(tmp_path)
    index.remove_subjects(gallery.mated_subjects[10:20])
    index.save(tmp_path)
    assert _generation(tmp_path) != first
    assert not first.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["CURRENT", _generation(tmp_path).name]
    loaded = load_index(tmp_path, model_id=MODEL, dimension=DIMENSION)
    assert len(loaded) == len(index)


@pytest.mark.parametrize(
    ("model_id", "dimension", "message"),
    [("another-model", DIMENSION, "another-model"), (MODEL, 512, "512")],
)
def test_loading_for_another_model_or_dimension_is_refused(
    new_index: IndexFactory,
    gallery: Gallery,
    tmp_path: Path,
    model_id: str,
    dimension: int,
    message: str,
) -> None:
    _filled(new_index, gallery).save(tmp_path)
    with pytest.raises(ValueError, match=message):
        load_index(tmp_path, model_id=model_id, dimension=dimension)


def _corrupt(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


@pytest.mark.parametrize("damage", [_corrupt, _truncate], ids=["flipped byte", "truncated"])
def test_a_damaged_file_is_refused_before_it_is_parsed(
    new_index: IndexFactory, gallery: Gallery, tmp_path: Path, damage: Callable[[Path], None]
) -> None:
    _filled(new_index, gallery).save(tmp_path)
    generation = _generation(tmp_path)
    for path in sorted(generation.iterdir()):
        original = path.read_bytes()
        damage(path)
        with pytest.raises(ValueError, match=r"corrupt|truncated"):
            load_index(tmp_path, model_id=MODEL, dimension=DIMENSION)
        path.write_bytes(original)
    load_index(tmp_path, model_id=MODEL, dimension=DIMENSION)


def test_a_directory_without_an_index_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no saved index"):
        load_index(tmp_path, model_id=MODEL, dimension=DIMENSION)
    (tmp_path / "CURRENT").write_text('{"generation": "../../etc"}')
    with pytest.raises(ValueError, match="names no generation"):
        load_index(tmp_path, model_id=MODEL, dimension=DIMENSION)


def test_loading_as_the_wrong_kind_is_refused(gallery: Gallery, tmp_path: Path) -> None:
    index = ExactIndex(model_id=MODEL, dimension=DIMENSION)
    index.add(template_ids=["t"], subject_ids=["s"], vectors=gallery.vectors[:1])
    index.save(tmp_path)
    with pytest.raises(ValueError, match="'exact' index, not 'hnsw'"):
        HnswIndex.load(tmp_path, model_id=MODEL, dimension=DIMENSION)


def test_a_save_that_fails_half_way_leaves_the_previous_index(
    new_index: IndexFactory, gallery: Gallery, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = _filled(new_index, gallery)
    index.save(tmp_path)
    before = load_index(tmp_path, model_id=MODEL, dimension=DIMENSION)
    index.remove_subjects(gallery.subject_ids)
    real_write = persistence._write_durably

    def crash(path: Path, data: bytes) -> None:
        if path.name.startswith("CURRENT"):
            raise OSError("disk full")
        real_write(path, data)

    monkeypatch.setattr(persistence, "_write_durably", crash)
    with pytest.raises(OSError, match="disk full"):
        index.save(tmp_path)
    monkeypatch.undo()
    after = load_index(tmp_path, model_id=MODEL, dimension=DIMENSION)
    assert len(after) == len(before) > 0
    index.save(tmp_path)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("generation-")] == [
        _generation(tmp_path).name
    ], "the orphaned generation is deleted by the next save"
    assert len(load_index(tmp_path, model_id=MODEL, dimension=DIMENSION)) == 0


def test_make_index_builds_each_kind() -> None:
    assert isinstance(make_index("exact", model_id=MODEL, dimension=4), ExactIndex)
    assert isinstance(make_index(IndexKind.HNSW, model_id=MODEL, dimension=4), HnswIndex)
    half = make_index(IndexKind.EXACT, model_id=MODEL, dimension=4, storage="float16")
    assert isinstance(half, ExactIndex)
    assert half.storage is Storage.FLOAT16
    with pytest.raises(ValueError, match="annoy"):
        make_index("annoy", model_id=MODEL, dimension=4)
    with pytest.raises(TypeError, match="ef_search"):
        make_index("exact", model_id=MODEL, dimension=4, ef_search=10)
