"""The engine's behaviour, on fakes: fast, and independent of dlib's models."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from faceaccord.biometrics.faces import FaceTemplate
from faceaccord.biometrics.fakes import FakeDetector, FakeEmbedder, fake_engine
from faceaccord.biometrics.quality import QualityReason
from faceaccord.errors import (
    NoFaceError,
    NotAnImageError,
    QualityRejectedError,
    TemplateMismatchError,
)
from faceaccord.settings import DetectionSettings, Settings

LEFT_SMALL = ((0.05, 0.3, 0.25, 0.6), 1.2)
RIGHT_LARGE = ((0.45, 0.1, 0.95, 0.9), 1.8)


def _jpeg(seed: int, size: tuple[int, int] = (320, 240)) -> bytes:
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 255, size=(120, 160, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).resize(size, Image.Resampling.BICUBIC).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_detect_returns_every_face_largest_first() -> None:
    engine = fake_engine(faces=[LEFT_SMALL, RIGHT_LARGE])
    faces = engine.detect(_jpeg(1))
    assert [f.box.as_list() for f in faces] == [[144, 24, 304, 216], [16, 72, 80, 144]]
    assert [f.score for f in faces] == [1.8, 1.2]
    assert all(f.quality.face_px > 0 for f in faces)


def test_detection_runs_on_a_reduced_copy_and_boxes_come_back_in_source_pixels() -> None:
    settings = Settings(detection=DetectionSettings(max_side=400))
    engine = fake_engine(faces=[RIGHT_LARGE], settings=settings)
    (face,) = engine.detect(_jpeg(2, size=(2000, 1000)))
    assert isinstance(engine.detector, FakeDetector)
    assert engine.detector.calls == [(400, 200)]
    assert face.box.as_list() == [900, 100, 1900, 900]


def test_small_images_are_detected_at_full_size() -> None:
    engine = fake_engine()
    engine.detect(_jpeg(3))
    assert isinstance(engine.detector, FakeDetector)
    assert engine.detector.calls == [(320, 240)]


def test_embed_gives_one_template_per_face_stamped_with_the_model() -> None:
    engine = fake_engine(faces=[LEFT_SMALL, RIGHT_LARGE])
    templates = engine.embed(_jpeg(4))
    assert len(templates) == 2
    assert all(t.model_id == "fake-v1" for t in templates)
    assert all(t.embedding.shape == (128,) and t.embedding.dtype == np.float32 for t in templates)


def test_embed_many_batches_faces_across_images_and_keeps_order() -> None:
    engine = fake_engine(faces=[LEFT_SMALL, RIGHT_LARGE])
    images = [_jpeg(5), _jpeg(6), _jpeg(7)]
    results = list(engine.embed_many(images))
    assert isinstance(engine.embedder, FakeEmbedder)
    assert engine.embedder.batches == [6]
    one_by_one = [engine.embed(image) for image in images]
    for batched, single in zip(results, one_by_one, strict=True):
        for a, b in zip(batched.templates, single, strict=True):
            np.testing.assert_array_equal(a.embedding, b.embedding)


def test_a_bad_image_in_a_batch_yields_its_error_and_does_not_stop_the_others() -> None:
    engine = fake_engine()
    results = list(engine.embed_many([_jpeg(8), b"not an image at all", _jpeg(9)]))
    assert [len(r.templates) for r in results] == [1, 0, 1]
    assert results[0].error is None
    assert isinstance(results[1].error, NotAnImageError)
    assert results[2].error is None


def test_the_same_image_matches_itself_and_different_images_do_not() -> None:
    engine = fake_engine()
    same = engine.verify(_jpeg(10), _jpeg(10))
    assert same.match
    assert same.distance == pytest.approx(0.0, abs=1e-6)
    assert same.similarity == pytest.approx(1.0)
    other = engine.verify(_jpeg(10), _jpeg(11))
    assert not other.match
    assert other.distance > other.threshold
    assert other.threshold == engine.operating_point.threshold


def test_verify_says_which_image_had_no_face() -> None:
    engine = fake_engine(faces=[])
    with pytest.raises(NoFaceError, match="first image"):
        engine.verify(_jpeg(12), _jpeg(13))


def test_templates_of_another_model_are_never_compared() -> None:
    engine = fake_engine()
    (template,) = engine.embed(_jpeg(14))
    foreign = FaceTemplate(face=template.face, embedding=template.embedding, model_id="other-v9")
    with pytest.raises(TemplateMismatchError, match="other-v9"):
        engine.verify(_jpeg(14), foreign)


def test_enrol_takes_a_template_from_a_photo_that_passes_the_gate() -> None:
    engine = fake_engine()
    template = engine.enroll(_jpeg(15))
    assert engine.verify(_jpeg(15), template).match


def test_enrol_refuses_a_photo_without_a_face() -> None:
    with pytest.raises(NoFaceError):
        fake_engine(faces=[]).enroll(_jpeg(16))


def test_enrol_refuses_a_group_photo_and_says_why() -> None:
    engine = fake_engine(faces=[LEFT_SMALL, RIGHT_LARGE])
    with pytest.raises(QualityRejectedError) as refused:
        engine.enroll(_jpeg(17))
    assert QualityReason.EXCEEDS_MAX_FACES in refused.value.reasons


def test_enrol_refuses_a_face_cut_off_by_the_frame() -> None:
    engine = fake_engine(faces=[((-0.3, 0.1, 0.4, 0.9), 1.5)])
    with pytest.raises(QualityRejectedError, match="face_cut_off") as refused:
        engine.enroll(_jpeg(18))
    assert refused.value.reasons == (QualityReason.FACE_CUT_OFF,)
