"""Read dlib's serialised face recognition ResNet (``dlib_face_recognition_resnet_model_v1.dat``).

dlib's ``serialize`` writes integers in its own variable-length form (a byte holding the length
and the sign, then the magnitude, little-endian), strings as a length and bytes, ``bool`` as the
character '0' or '1', scalars ``float``/``double`` as an integer mantissa and exponent, and
tensors as a version, four dimensions and raw little-endian float32 values.

A network is written outside-in: first the version of every layer from the loss down to the
input, then the input layer, then each layer's details from the innermost outwards. Tag and
skip layers write only their version. We read the file into a flat list of layers and check it
against the architecture dlib documents for this model (``dnn_face_recognition_ex.cpp``), so a
different or damaged file is refused with the position where it departs, never half-converted.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from faceaccord.errors import ModelError

__all__ = [
    "AddPrevious",
    "Affine",
    "Convolution",
    "DlibResNet",
    "FullyConnected",
    "Layer",
    "Pool",
    "Relu",
    "read_dlib_resnet",
]


@dataclass(frozen=True, slots=True)
class Convolution:
    weights: NDArray[np.float32]
    """(out_channels, in_channels, rows, cols): dlib's filter layout, which is ONNX's OIHW."""
    bias: NDArray[np.float32]
    stride: int
    padding: int


@dataclass(frozen=True, slots=True)
class Affine:
    """Per-channel ``gamma * x + beta``: dlib's inference form of batch normalisation."""

    gamma: NDArray[np.float32]
    beta: NDArray[np.float32]


@dataclass(frozen=True, slots=True)
class Relu:
    pass


@dataclass(frozen=True, slots=True)
class Pool:
    kind: str
    """"max" or "avg"."""
    size: int
    """Window side; 0 means the whole feature map (dlib's ``avg_pool_everything``)."""
    stride: int
    padding: int


@dataclass(frozen=True, slots=True)
class AddPrevious:
    """The residual sum: this layer's input plus the output tagged ``tag``. dlib sizes the sum
    to the larger of the two in every dimension and treats the missing values as zero."""

    tag: int


@dataclass(frozen=True, slots=True)
class Tag:
    id: int


@dataclass(frozen=True, slots=True)
class Skip:
    """Continue from the output tagged ``tag`` (dropping the current value)."""

    tag: int


@dataclass(frozen=True, slots=True)
class FullyConnected:
    weights: NDArray[np.float32]
    """(inputs, outputs), no bias."""


Layer = Convolution | Affine | Relu | Pool | AddPrevious | Tag | Skip | FullyConnected


@dataclass(frozen=True, slots=True)
class DlibResNet:
    input_size: int
    channel_means: tuple[float, float, float]
    """Subtracted from the R, G and B values (0-255) before dividing by 256."""
    layers: tuple[Layer, ...]
    """Input first, the 128-d descriptor last."""

    @property
    def embedding_dim(self) -> int:
        last = self.layers[-1]
        assert isinstance(last, FullyConnected)
        return int(last.weights.shape[1])


class _Reader:
    def __init__(self, data: bytes, name: str) -> None:
        self.data = data
        self.name = name
        self.pos = 0

    def fail(self, problem: str) -> ModelError:
        return ModelError(f"{self.name}: {problem} at byte {self.pos}; not dlib's face ResNet v1")

    def _take(self, count: int) -> bytes:
        if count < 0 or self.pos + count > len(self.data):
            raise self.fail("the file ends early")
        chunk = self.data[self.pos : self.pos + count]
        self.pos += count
        return chunk

    def integer(self) -> int:
        (control,) = self._take(1)
        size = control & 0x0F
        if size == 0 or size > 8 or control & 0x70:
            raise self.fail(f"bad integer header {control:#04x}")
        value = int.from_bytes(self._take(size), "little")
        return -value if control & 0x80 else value

    def string(self) -> str:
        length = self.integer()
        if not 0 <= length <= 64:
            raise self.fail(f"implausible string length {length}")
        try:
            return self._take(length).decode("ascii")
        except UnicodeDecodeError:
            raise self.fail("a layer name is not text") from None

    def flag(self) -> bool:
        (char,) = self._take(1)
        if char not in (0x30, 0x31):
            raise self.fail(f"bad boolean {char:#04x}")
        return char == 0x31

    def scalar(self) -> float:
        mantissa, exponent = self.integer(), self.integer()
        return float(mantissa) * 2.0**exponent

    def tensor(self) -> NDArray[np.float32]:
        version = self.integer()
        if version != 2:
            raise self.fail(f"tensor version {version} (expected 2)")
        shape = tuple(self.integer() for _ in range(4))
        if any(d < 0 for d in shape):
            raise self.fail(f"negative tensor dimension {shape}")
        count = int(np.prod(shape))
        values = np.frombuffer(self._take(4 * count), dtype="<f4").astype(np.float32)
        return values.reshape(shape)

    def alias(self) -> tuple[int, ...]:
        version = self.integer()
        if version != 1:
            raise self.fail(f"alias tensor version {version} (expected 1)")
        return tuple(self.integer() for _ in range(4))

    def expect(self, expected: str) -> None:
        found = self.string()
        if found != expected:
            raise self.fail(f"found {found!r} where {expected!r} was expected")


def _convolution(reader: _Reader, name: str) -> Layer:
    params = reader.tensor().reshape(-1)
    filters, rows, cols = reader.integer(), reader.integer(), reader.integer()
    stride_y, stride_x, pad_y, pad_x = (reader.integer() for _ in range(4))
    weight_shape, bias_shape = reader.alias(), reader.alias()
    for _ in range(4):
        reader.scalar()  # learning-rate and weight-decay multipliers
    if stride_y != stride_x or pad_y != pad_x or rows != cols:
        raise reader.fail("an asymmetric convolution")
    n_weights = int(np.prod(weight_shape))
    if params.size != n_weights + filters or bias_shape[1] != filters:
        raise reader.fail("convolution parameters of the wrong size")
    return Convolution(
        weights=params[:n_weights].reshape(weight_shape),
        bias=params[n_weights:].copy(),
        stride=stride_x,
        padding=pad_x,
    )


def _affine(reader: _Reader, name: str) -> Layer:
    params = reader.tensor().reshape(-1)
    reader.alias(), reader.alias()
    mode = reader.integer()
    if mode != 0:  # CONV_MODE: one gamma and beta per channel
        raise reader.fail(f"affine mode {mode}")
    half = params.size // 2
    return Affine(gamma=params[:half].copy(), beta=params[half:].copy())


def _pool(reader: _Reader, name: str) -> Layer:
    rows, cols, stride_y, stride_x, pad_y, pad_x = (reader.integer() for _ in range(6))
    if rows != cols or stride_y != stride_x or pad_y != pad_x:
        raise reader.fail("an asymmetric pooling layer")
    return Pool(kind=name[:3], size=rows, stride=stride_x, padding=pad_x)


def _fully_connected(reader: _Reader, name: str) -> Layer:
    outputs, inputs = reader.integer(), reader.integer()
    params = reader.tensor().reshape(-1)
    reader.alias(), reader.alias()
    bias_mode = reader.integer()
    for _ in range(4):
        reader.scalar()
    if bias_mode != 1 or params.size != inputs * outputs:  # 1 is FC_NO_BIAS
        raise reader.fail("a fully connected layer with a bias")
    return FullyConnected(weights=params.reshape(inputs, outputs).copy())


_LAYER_READERS = {
    "con_4": _convolution,
    "affine_": _affine,
    "relu_": lambda reader, name: Relu(),
    # The tag an add_prev reads is in its C++ type, not in the file: _check sets it.
    "add_prev_": lambda reader, name: AddPrevious(tag=0),
    "max_pool_2": _pool,
    "avg_pool_2": _pool,
    "fc_2": _fully_connected,
}


def _details(reader: _Reader) -> Layer:
    name = reader.string()
    read = _LAYER_READERS.get(name)
    if read is None:
        raise reader.fail(f"unknown layer {name!r}")
    return read(reader, name)


def read_dlib_resnet(path: Path) -> DlibResNet:
    """The network in ``path``, checked against dlib's face ResNet v1 architecture."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc}") from None
    reader = _Reader(data, path.name)
    if reader.integer() != 1:
        raise reader.fail("not a dlib loss layer")
    reader.expect("loss_metric_2")
    reader.scalar(), reader.scalar()  # margin and distance threshold: training only
    versions = []
    while reader.data[reader.pos : reader.pos + 2] in (b"\x01\x01", b"\x01\x02", b"\x01\x03"):
        versions.append(reader.integer())  # layer versions, outermost first, down to the input
    if not versions or versions[-1] not in (2, 3):
        raise reader.fail("no computational layer above the input")
    reader.expect("input_rgb_image_sized")
    means = (reader.scalar(), reader.scalar(), reader.scalar())
    rows, cols = reader.integer(), reader.integer()
    if rows != cols:
        raise reader.fail("a non-square input")
    layers: list[Layer] = []
    for position, version in enumerate(reversed(versions)):
        if version == 1:
            layers.append(Tag(id=-1))  # a tag or a skip: told apart by _check
            continue
        layers.append(_details(reader))
        for _ in range(3):
            reader.flag()
        for _ in range(3):
            reader.tensor()  # gradients and cached outputs (empty in a saved model)
        if position == 0 and version == 3:
            reader.integer()  # the sample expansion factor of the layer on the input
    if reader.pos != len(reader.data):
        raise reader.fail(f"{len(reader.data) - reader.pos} bytes left over")
    return DlibResNet(
        input_size=rows,
        channel_means=(float(means[0]), float(means[1]), float(means[2])),
        layers=_check(tuple(layers), reader),
    )


def _check(layers: tuple[Layer, ...], reader: _Reader) -> tuple[Layer, ...]:
    """Match the flat layer list to dlib's ``anet_type`` and name its tags and skips.

    Innermost first, the stem is con 7x7/2, affine, relu, max_pool 3x3/2; a residual block
    (``ares``) is tag1, con, affine, relu, con, affine, add_prev1, relu; a down-sampling block
    (``ares_down``) is tag1, con/2, affine, relu, con, affine, tag2, skip1, avg_pool 2x2/2,
    add_prev2, relu; the head is avg_pool_everything and fc_no_bias.
    """
    kinds = "".join(_letter(layer) for layer in layers)
    shape = re.fullmatch(r"CARP((?:TCARCA\+R|TCARCATTP\+R)+)PF", kinds)
    if shape is None:
        raise reader.fail(f"an unexpected layer sequence {kinds!r}")
    named: list[Layer] = list(layers[:4])
    index = 4
    for block in re.finditer(r"TCARCA\+R|TCARCATTP\+R", shape[1]):
        down = "TT" in block[0]
        for letter in block[0]:
            layer = layers[index]
            index += 1
            if letter == "T":
                named.append(Tag(id=1) if not isinstance(named[-1], Affine) else Tag(id=2))
            elif letter == "+":
                named.append(AddPrevious(tag=2 if down else 1))
            else:
                named.append(layer)
        if down:  # the second of the "TT" pair continues from tag1: a skip, not a tag
            position = len(named) - 4
            named[position] = Skip(tag=1)
    named += layers[index:]
    return tuple(named)


_LETTERS: dict[type, str] = {
    Convolution: "C",
    Affine: "A",
    Relu: "R",
    Pool: "P",
    AddPrevious: "+",
    Tag: "T",
    Skip: "T",
    FullyConnected: "F",
}


def _letter(layer: Layer) -> str:
    return _LETTERS[type(layer)]
