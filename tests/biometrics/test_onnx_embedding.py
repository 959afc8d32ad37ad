"""dlib's ResNet converted to ONNX gives dlib's descriptors; any ONNX model with a card plugs in."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import onnx
import pytest
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from faceaccord.biometrics.embed import DlibResNetEmbedder, load_embedder
from faceaccord.biometrics.models.dlib_format import (
    AddPrevious,
    Convolution,
    FullyConnected,
    Skip,
    Tag,
    read_dlib_resnet,
)
from faceaccord.biometrics.models.dlib_onnx import converted_model
from faceaccord.biometrics.models.weights import DlibWeights, weights_path
from faceaccord.biometrics.onnx_embed import OnnxEmbedder, user_model_embedder
from faceaccord.biometrics.pipeline import Engine
from faceaccord.errors import ModelError
from faceaccord.samples import SamplePhotos
from faceaccord.settings import EmbeddingRuntime, EmbeddingSettings, Settings

DLIB_WEIGHTS = weights_path(DlibWeights.RESNET_V1)


# Reading dlib's file


def test_the_file_reads_as_dlibs_29_convolution_resnet() -> None:
    net = read_dlib_resnet(DLIB_WEIGHTS)
    convolutions = [layer for layer in net.layers if isinstance(layer, Convolution)]
    assert len(convolutions) == 29
    assert convolutions[0].weights.shape == (32, 3, 7, 7)
    assert convolutions[0].stride == 2
    assert net.input_size == 150
    assert net.channel_means == pytest.approx((122.782, 117.001, 104.298), abs=1e-3)
    assert net.embedding_dim == 128
    fc = net.layers[-1]
    assert isinstance(fc, FullyConnected)
    assert fc.weights.shape == (256, 128)
    # Four down-sampling blocks: their sums add the stride-2 branch to the pooled input.
    assert sum(isinstance(layer, Skip) for layer in net.layers) == 4
    assert sum(isinstance(layer, AddPrevious) and layer.tag == 2 for layer in net.layers) == 4
    assert sum(isinstance(layer, Tag) and layer.id == 1 for layer in net.layers) == 14


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], "ends early"),
        (lambda data: data + b"\x00\x01", "left over"),
        (lambda data: data.replace(b"con_4", b"con_9", 1), "unknown layer 'con_9'"),
        (lambda data: data.replace(b"loss_metric_2", b"loss_mmod_xx_", 1), "loss_metric_2"),
        (lambda data: b"GIF89a" + data, "integer header"),
    ],
)
def test_a_damaged_or_different_file_is_refused_with_where_it_departs(
    tmp_path: Path, damage: object, message: str
) -> None:
    broken = tmp_path / "broken.dat"
    broken.write_bytes(damage(DLIB_WEIGHTS.read_bytes()))  # type: ignore[operator]
    with pytest.raises(ModelError, match=message) as caught:
        read_dlib_resnet(broken)
    assert "at byte" in caught.value.message


# The converted model


def test_conversion_is_cached_under_the_sources_hash_and_reused(tmp_path: Path) -> None:
    first = converted_model(DLIB_WEIGHTS, tmp_path)
    assert DlibWeights.RESNET_V1.sha256[:16] in first.name
    written = first.stat().st_mtime_ns
    again = converted_model(DLIB_WEIGHTS, tmp_path)
    assert again == first
    assert again.stat().st_mtime_ns == written
    assert [p.name for p in tmp_path.iterdir()] == [first.name]  # no temporary files left
    model = onnx.load(str(first))
    assert {p.key: p.value for p in model.metadata_props}["source_sha256"] == (
        DlibWeights.RESNET_V1.sha256
    )


@pytest.mark.real_model
def test_onnx_descriptors_equal_dlibs_on_the_same_chips(
    engine: Engine, samples: SamplePhotos, tmp_path: Path
) -> None:
    chips = [
        face.chip
        for photo in (*samples.person_a, samples.person_b, *samples.partial_faces, samples.rgba_png)
        for face in engine._analyse(engine.read(photo))  # the aligned chips themselves
    ]
    assert len(chips) >= 7
    dlib_rows = DlibResNetEmbedder().embed(chips)
    onnx_rows = OnnxEmbedder(
        model_path=converted_model(DLIB_WEIGHTS, tmp_path),
        card=engine.card,
        batch_size=3,  # batches of any size give the same rows
        threads=1,
    ).embed(chips)
    cosine = (dlib_rows * onnx_rows).sum(axis=1) / (
        np.linalg.norm(dlib_rows, axis=1) * np.linalg.norm(onnx_rows, axis=1)
    )
    assert cosine.min() >= 0.9999
    assert np.abs(dlib_rows - onnx_rows).max() < 1e-4


def test_onnx_runtime_is_the_default_and_dlib_can_be_chosen(tmp_path: Path) -> None:
    assert Engine.load(Settings(cache_dir=tmp_path)).embedder.runtime == "onnxruntime"
    chosen = Settings(embedding=EmbeddingSettings(runtime=EmbeddingRuntime.DLIB))
    assert load_embedder(chosen).runtime == "dlib"


def test_chips_of_the_wrong_size_are_refused(tmp_path: Path) -> None:
    embedder = load_embedder(Settings(cache_dir=tmp_path))
    with pytest.raises(ModelError, match="150x150x3 uint8 chips"):
        embedder.embed([np.zeros((112, 112, 3), dtype=np.uint8)])
    assert embedder.embed([]).shape == (0, 128)


# A user's own ONNX model


CHIP = 16
DIM = 8


def _tiny_model(path: Path, *, weights: NDArray[np.float32], layout: str = "nchw") -> None:
    """A linear 'embedding' of float chips: enough to check the input contract end to end."""
    shape = [None, 3, CHIP, CHIP] if layout == "nchw" else [None, CHIP, CHIP, 3]
    graph = helper.make_graph(
        [
            helper.make_node("Flatten", ["image"], ["flat"], axis=1),
            helper.make_node("MatMul", ["flat", "w"], ["features"]),
        ],
        "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, [None, DIM])],
        [numpy_helper.from_array(weights, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))


def _card(path: Path, model: Path, *, extra: str = "", dim: int = DIM) -> Path:
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    path.write_text(
        f"""
id = "tiny-arcface-like"
name = "a generated linear model"
source = "tests"
licence = "CC0-1.0"
sha256 = "{digest}"
embedding_dim = {dim}
chip_size = {CHIP}
chip_padding = 0.1
metric = "euclidean"
published_accuracy = "none"

[onnx]
file = "{model.name}"
channel_order = "bgr"
mean = [127.5, 127.5, 127.5]
std = [128.0, 128.0, 128.0]
l2_normalise = true
{extra}

[[operating_points]]
name = "default"
threshold = 1.0
measured_fmr = 0.001
measured_fmr_ci95 = [0.0005, 0.002]
measured_fnmr = 0.05
impostor_pairs = 1000
genuine_pairs = 100
dataset = "none"
protocol = "none"
measured_on = 2026-11-22
command = "none"
""",
        encoding="utf-8",
    )
    return path


@pytest.fixture
def weights() -> NDArray[np.float32]:
    return np.random.default_rng(7).normal(size=(3 * CHIP * CHIP, DIM)).astype(np.float32)


def test_a_users_onnx_model_gets_its_declared_input_and_unit_embeddings(
    tmp_path: Path, weights: NDArray[np.float32]
) -> None:
    _tiny_model(tmp_path / "tiny.onnx", weights=weights)
    embedder = user_model_embedder(_card(tmp_path / "tiny.toml", tmp_path / "tiny.onnx"))
    chips = np.random.default_rng(1).integers(0, 256, (5, CHIP, CHIP, 3), dtype=np.uint8)

    got = embedder.embed(list(chips))

    # What the card promises: BGR, (x - 127.5) / 128, NCHW, then unit length.
    expected = ((chips[..., ::-1].astype(np.float32) - 127.5) / 128).transpose(0, 3, 1, 2)
    expected = expected.reshape(5, -1) @ weights
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
    assert embedder.card.id == "tiny-arcface-like"


def test_a_users_model_is_chosen_in_settings_and_drives_the_engine(
    tmp_path: Path, weights: NDArray[np.float32]
) -> None:
    _tiny_model(tmp_path / "tiny.onnx", weights=weights)
    card = _card(tmp_path / "tiny.toml", tmp_path / "tiny.onnx")
    engine = Engine.load(Settings(embedding=EmbeddingSettings(model_card=card)))
    assert engine.model_id == "tiny-arcface-like"
    assert engine.aligner.chip_size == CHIP
    assert engine.operating_point.threshold == 1.0


def test_a_model_file_that_is_not_the_one_its_card_describes_is_refused(
    tmp_path: Path, weights: NDArray[np.float32]
) -> None:
    _tiny_model(tmp_path / "tiny.onnx", weights=weights)
    card = _card(tmp_path / "tiny.toml", tmp_path / "tiny.onnx")
    _tiny_model(tmp_path / "tiny.onnx", weights=weights * 2)  # swapped after the card was made
    with pytest.raises(ModelError, match="not the model the card"):
        user_model_embedder(card)


@pytest.mark.parametrize(
    ("layout", "dim", "extra", "message"),
    [
        ("nhwc", DIM, "", "its card says nchw chips of 16x16"),
        ("nchw", 12, "", "gives 8-d embeddings; its card says 12"),
        ("nchw", DIM, 'dtype = "uint8"', "a uint8 input takes the chips as they are"),
    ],
)
def test_a_card_that_does_not_fit_its_model_is_refused(
    tmp_path: Path,
    weights: NDArray[np.float32],
    layout: str,
    dim: int,
    extra: str,
    message: str,
) -> None:
    _tiny_model(tmp_path / "tiny.onnx", weights=weights, layout=layout)
    card = _card(tmp_path / "tiny.toml", tmp_path / "tiny.onnx", extra=extra, dim=dim)
    with pytest.raises(ModelError, match=message):
        user_model_embedder(card)


def test_a_file_that_is_not_onnx_is_refused(tmp_path: Path) -> None:
    (tmp_path / "tiny.onnx").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="ONNX Runtime cannot load"):
        user_model_embedder(_card(tmp_path / "tiny.toml", tmp_path / "tiny.onnx"))
