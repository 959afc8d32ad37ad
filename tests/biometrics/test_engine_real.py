"""The engine on dlib's real models and real photos (marked ``real_model``; always run in CI).

The sample photos (three of person A, one of person B, two of A's face cut off by the frame,
and A again as an RGBA PNG) come from the face_recognition 1.3.0 sdist on the package index.
"""

from __future__ import annotations

import io
import itertools
from pathlib import Path

import dlib
import numpy as np
import pytest
from PIL import Image, ImageFilter

from faceaccord.biometrics.align import to_dlib_shape
from faceaccord.biometrics.models.weights import DlibWeights, weights_path
from faceaccord.biometrics.pipeline import Engine
from faceaccord.biometrics.quality import QualityReason
from faceaccord.errors import QualityRejectedError
from faceaccord.samples import SamplePhotos
from faceaccord.settings import DetectionSettings, DetectorKind, Settings

pytestmark = pytest.mark.real_model

SHARED_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
needs_shared = pytest.mark.skipif(
    not SHARED_DATA.is_dir(), reason="../shared/data is not beside this checkout"
)


def _jpeg(image: Image.Image, **params: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=92, **params)
    return buffer.getvalue()


def test_three_photos_of_one_person_match_each_other(engine: Engine, samples: SamplePhotos) -> None:
    for a, b in itertools.combinations(samples.person_a, 2):
        result = engine.verify(a, b)
        assert result.match, (a.name, b.name, result.distance)


def test_another_person_matches_none_of_them(engine: Engine, samples: SamplePhotos) -> None:
    for photo in samples.person_a:
        result = engine.verify(photo, samples.person_b)
        assert not result.match, (photo.name, result.distance)
        assert result.distance > result.threshold + 0.1


def test_each_sample_photo_has_exactly_one_good_face(engine: Engine, samples: SamplePhotos) -> None:
    for photo in (*samples.person_a, samples.person_b):
        faces = engine.detect(photo)
        assert len(faces) == 1, photo.name
        assert engine.quality_reasons(faces[0]) == [], photo.name


def test_a_face_cut_off_by_the_frame_is_found_flagged_and_refused_for_enrolment(
    engine: Engine, samples: SamplePhotos
) -> None:
    for photo in samples.partial_faces:
        (face,) = engine.detect(photo)
        assert face.quality.fraction_outside > 0.1
        with pytest.raises(QualityRejectedError) as refused:
            engine.enroll(photo)
        assert QualityReason.FACE_CUT_OFF in refused.value.reasons


def test_a_cut_off_face_can_still_be_verified_against_a_full_one(
    engine: Engine, samples: SamplePhotos
) -> None:
    enrolled = engine.enroll(samples.person_a[0])
    for photo in samples.partial_faces:
        assert engine.verify(photo, enrolled).match


def test_an_rgba_png_of_a_photo_gives_the_same_template_as_the_jpeg(
    engine: Engine, samples: SamplePhotos
) -> None:
    result = engine.verify(samples.rgba_png, samples.person_a[1])
    assert result.distance < 0.1


def test_every_face_of_a_multi_face_image_is_returned(
    engine: Engine, samples: SamplePhotos
) -> None:
    a = Image.open(samples.person_a[0]).convert("RGB")
    b = Image.open(samples.person_b).convert("RGB")
    b = b.resize((round(b.width * a.height / b.height), a.height))
    canvas = Image.new("RGB", (a.width + b.width, a.height), "white")
    canvas.paste(a, (0, 0))
    canvas.paste(b, (a.width, 0))
    templates = engine.embed(_jpeg(canvas))
    assert len(templates) == 2
    lefts = sorted(templates, key=lambda t: t.face.box.left)
    assert engine.verify(samples.person_a[1], lefts[0]).match
    assert engine.verify(samples.person_b, lefts[1]).match
    assert not engine.verify(samples.person_b, lefts[0]).match


def test_exif_orientation_is_applied_before_detection(
    engine: Engine, samples: SamplePhotos
) -> None:
    upright = Image.open(samples.person_a[0]).convert("RGB")
    # Stored turned a quarter, with the EXIF tag (6) that tells viewers to turn it back.
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    tagged = _jpeg(stored, exif=exif.tobytes())
    untagged = _jpeg(stored)
    assert engine.detect(untagged) == []
    (face,) = engine.detect(tagged)
    assert engine.verify(tagged, samples.person_a[1]).match
    assert face.box.width > 100


def test_embeddings_are_dlibs_own_descriptors(engine: Engine, samples: SamplePhotos) -> None:
    """The pipeline's aligned, batched embeddings equal dlib's one-call descriptor."""
    image = engine.read(samples.person_a[0])
    (template,) = engine.embed(image)
    net = dlib.face_recognition_model_v1(str(weights_path(DlibWeights.RESNET_V1)))
    reference = np.asarray(
        net.compute_face_descriptor(image.pixels, to_dlib_shape(template.face.landmarks))
    )
    cosine = float(template.embedding @ reference) / float(
        np.linalg.norm(template.embedding) * np.linalg.norm(reference)
    )
    assert cosine >= 0.9999


def test_the_mmod_detector_is_an_option(samples: SamplePhotos) -> None:
    settings = Settings(
        detection=DetectionSettings(kind=DetectorKind.MMOD, upsample=0, max_side=640)
    )
    engine = Engine.load(settings)
    (face,) = engine.detect(samples.person_a[0])
    assert face.score > 0.5
    assert engine.verify(samples.person_a[0], samples.person_a[1]).match


def test_a_blurred_photo_is_refused_for_enrolment_as_not_sharp(
    engine: Engine, samples: SamplePhotos
) -> None:
    blurred = Image.open(samples.person_a[0]).filter(ImageFilter.GaussianBlur(5))
    with pytest.raises(QualityRejectedError) as refused:
        engine.enroll(_jpeg(blurred))
    assert QualityReason.LOW_SHARPNESS in refused.value.reasons


def test_a_dark_photo_is_refused_for_enrolment_as_too_dark(
    engine: Engine, samples: SamplePhotos
) -> None:
    photo = np.asarray(Image.open(samples.person_a[0]).convert("RGB"), dtype=np.float32)
    dark = Image.fromarray((photo * 0.2).astype(np.uint8))
    faces = engine.detect(_jpeg(dark))
    if faces:  # HOG may or may not still find it; if it does, the gate must refuse it
        assert QualityReason.LOW_BRIGHTNESS in engine.quality_reasons(faces[0])


@needs_shared
def test_every_faces_dev_photo_yields_a_face_including_webp_named_jpg(engine: Engine) -> None:
    photos = sorted((SHARED_DATA / "faces-dev").glob("id*/*.jpg"))
    assert len(photos) == 61
    missing = [p.name for p in photos if not engine.detect(p)]
    assert missing == []
    assert engine.read(SHARED_DATA / "faces-dev" / "id03" / "img47.jpg").format == "webp"


@needs_shared
def test_the_couple_photo_has_two_faces(engine: Engine) -> None:
    faces = engine.detect(SHARED_DATA / "faces-dev-extras" / "couple.jpg")
    assert len(faces) == 2


@needs_shared
def test_a_mirrored_photo_still_matches_its_original(engine: Engine) -> None:
    extras, dev = SHARED_DATA / "faces-dev-extras", SHARED_DATA / "faces-dev"
    assert engine.verify(extras / "img11_reflection.jpg", dev / "id01" / "img11.jpg").match
