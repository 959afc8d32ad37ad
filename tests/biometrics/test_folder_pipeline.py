"""The parallel pipeline: detection in worker processes, embedding batched across images here,
with the same answers as the engine gives one image at a time, in the order of the files."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from faceaccord.biometrics.folder_job import embed_files, enrolment_templates
from faceaccord.biometrics.pipeline import Engine
from faceaccord.errors import FaceAccordError, QualityRejectedError
from faceaccord.samples import SamplePhotos

pytestmark = pytest.mark.real_model


@pytest.fixture
def files(tmp_path: Path, samples: SamplePhotos) -> list[Path]:
    """Three photos of one person, a cut-off face, a text file and an empty file, mixed."""
    chosen = [*samples.person_a, samples.partial_faces[0], samples.person_b]
    copies = [Path(shutil.copy(p, tmp_path / p.name)) for p in chosen]
    (tmp_path / "notes.jpg").write_text("not a photo", encoding="utf-8")
    (tmp_path / "empty.png").write_bytes(b"")
    return [copies[0], tmp_path / "notes.jpg", *copies[1:3], tmp_path / "empty.png", *copies[3:]]


def test_embedding_files_gives_the_engines_templates_in_file_order(
    engine: Engine, files: list[Path]
) -> None:
    outcomes = list(embed_files(files, engine=engine, workers=2))

    assert [o.path for o in outcomes] == files
    assert [o.error_code for o in outcomes] == [
        None, "not_an_image", None, None, "empty_image", None, None,
    ]  # fmt: skip
    for outcome in outcomes:
        if outcome.error is not None:
            assert outcome.templates == ()
            continue
        alone = engine.embed(outcome.path)
        assert len(outcome.templates) == len(alone) >= 1
        for batched, single in zip(outcome.templates, alone, strict=True):
            assert batched.face.box == single.face.box
            np.testing.assert_allclose(batched.embedding, single.embedding, atol=1e-5)


def test_enrolment_templates_apply_the_quality_gate_to_each_file(
    engine: Engine, files: list[Path], samples: SamplePhotos
) -> None:
    results = dict(enrolment_templates(files, engine=engine, workers=2))

    assert list(results) == files
    refused = {p.name: r for p, r in results.items() if isinstance(r, FaceAccordError)}
    assert refused["notes.jpg"].code == "not_an_image"
    assert refused["empty.png"].code == "empty_image"
    cut_off = refused[samples.partial_faces[0].name]
    assert isinstance(cut_off, QualityRejectedError)
    assert "face_cut_off" in cut_off.reasons
    for path in samples.person_a:
        template = results[files[0].parent / path.name]
        assert not isinstance(template, FaceAccordError)
        np.testing.assert_allclose(template.embedding, engine.enroll(path).embedding, atol=1e-5)
