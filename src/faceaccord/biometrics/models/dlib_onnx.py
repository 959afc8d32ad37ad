"""dlib's face ResNet as an ONNX graph: built once from dlib's own weights file, then cached.

The graph takes what the aligners produce (uint8 RGB chips, ``(n, 150, 150, 3)``) and does
dlib's input normalisation itself (``(pixel - channel mean) / 256``), so every runtime sees the
same contract. Each convolution absorbs the affine layer after it (``gamma * (W x + b) + beta``
is a convolution with weights ``gamma W`` and bias ``gamma b + beta``); dlib's residual sums,
which zero-pad the smaller operand at the end of each dimension, become ``Pad`` then ``Add``.

The converted file is named by the SHA-256 of its source and of this converter's version, and
written atomically, so a cache is either complete and right or absent.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from numpy.typing import NDArray
from onnx import TensorProto, helper, numpy_helper

from faceaccord.biometrics.models.dlib_format import (
    AddPrevious,
    Affine,
    Convolution,
    DlibResNet,
    FullyConnected,
    Layer,
    Pool,
    Relu,
    Skip,
    Tag,
    read_dlib_resnet,
)
from faceaccord.biometrics.models.weights import file_sha256
from faceaccord.errors import ModelError

__all__ = ["CONVERTER_VERSION", "INPUT_NAME", "OUTPUT_NAME", "build_onnx", "converted_model"]

CONVERTER_VERSION = "1"
"""Changes whenever the graph built from the same weights would change; part of the cache key."""
INPUT_NAME = "chips"
OUTPUT_NAME = "embeddings"
OPSET = 17

Shape = tuple[int, int, int]
"""(channels, rows, cols) of one sample."""


class _Graph:
    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self._count = 0

    def name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def constant(self, stem: str, value: NDArray[np.generic]) -> str:
        name = self.name(stem)
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(self, op_type: str, inputs: list[str], **attributes: Any) -> str:
        output = self.name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, inputs, [output], **attributes))
        return output


def build_onnx(net: DlibResNet) -> onnx.ModelProto:
    """The ONNX model computing ``net``'s descriptors from uint8 RGB chips."""
    graph = _Graph()
    size = net.input_size
    value = graph.op("Cast", [INPUT_NAME], to=TensorProto.FLOAT)
    means = np.asarray(net.channel_means, dtype=np.float32).reshape(1, 1, 1, 3)
    value = graph.op("Sub", [value, graph.constant("channel_means", means)])
    value = graph.op("Mul", [value, graph.constant("scale", np.asarray(1 / 256, np.float32))])
    value = graph.op("Transpose", [value], perm=[0, 3, 1, 2])
    shape: Shape = (3, size, size)
    tags: dict[int, tuple[str, Shape]] = {}
    for layer in _folded(net.layers):
        value, shape = _emit(graph, layer, value, shape, tags)
    graph.nodes[-1].output[0] = OUTPUT_NAME
    model = helper.make_model(
        helper.make_graph(
            graph.nodes,
            "dlib_face_recognition_resnet_model_v1",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.UINT8, ["n", size, size, 3])],
            [
                helper.make_tensor_value_info(
                    OUTPUT_NAME, TensorProto.FLOAT, ["n", net.embedding_dim]
                )
            ],
            graph.initializers,
        ),
        opset_imports=[helper.make_opsetid("", OPSET)],
        producer_name="faceaccord",
        producer_version=CONVERTER_VERSION,
    )
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    return model


def _folded(layers: tuple[Layer, ...]) -> list[Layer]:
    """The layers with every affine that follows a convolution folded into it."""
    result: list[Layer] = []
    for layer in layers:
        previous = result[-1] if result else None
        if isinstance(layer, Affine) and isinstance(previous, Convolution):
            result[-1] = Convolution(
                weights=previous.weights * layer.gamma[:, None, None, None],
                bias=previous.bias * layer.gamma + layer.beta,
                stride=previous.stride,
                padding=previous.padding,
            )
        else:
            result.append(layer)
    return result


def _emit(  # noqa: PLR0911 - one return per kind of layer
    graph: _Graph, layer: Layer, value: str, shape: Shape, tags: dict[int, tuple[str, Shape]]
) -> tuple[str, Shape]:
    """Add ``layer`` to the graph after ``value`` (of ``shape``); the new value and shape."""
    match layer:
        case Convolution():
            rows, cols = layer.weights.shape[2:]
            value = graph.op(
                "Conv",
                [value, graph.constant("w", layer.weights), graph.constant("b", layer.bias)],
                kernel_shape=[rows, cols],
                strides=[layer.stride] * 2,
                pads=[layer.padding] * 4,
            )
            return value, (
                layer.weights.shape[0],
                _pooled(shape[1], rows, layer.stride, layer.padding),
                _pooled(shape[2], cols, layer.stride, layer.padding),
            )
        case Affine():
            gamma = graph.constant("gamma", layer.gamma.reshape(1, -1, 1, 1))
            beta = graph.constant("beta", layer.beta.reshape(1, -1, 1, 1))
            return graph.op("Add", [graph.op("Mul", [value, gamma]), beta]), shape
        case Relu():
            return graph.op("Relu", [value]), shape
        case Pool(size=0):
            return graph.op("GlobalAveragePool", [value]), (shape[0], 1, 1)
        case Pool():
            value = graph.op(
                "MaxPool" if layer.kind == "max" else "AveragePool",
                [value],
                kernel_shape=[layer.size] * 2,
                strides=[layer.stride] * 2,
                pads=[layer.padding] * 4,
            )
            return value, (
                shape[0],
                _pooled(shape[1], layer.size, layer.stride, layer.padding),
                _pooled(shape[2], layer.size, layer.stride, layer.padding),
            )
        case Tag():
            tags[layer.id] = (value, shape)
            return value, shape
        case Skip():
            return tags[layer.tag]
        case AddPrevious():
            other, other_shape = tags[layer.tag]
            total: Shape = (
                max(shape[0], other_shape[0]),
                max(shape[1], other_shape[1]),
                max(shape[2], other_shape[2]),
            )
            summed = graph.op(
                "Add",
                [_padded(graph, value, shape, total), _padded(graph, other, other_shape, total)],
            )
            return summed, total
        case FullyConnected():
            flat = graph.op("Flatten", [value], axis=1)
            matmul = graph.op("MatMul", [flat, graph.constant("fc", layer.weights)])
            return matmul, (int(layer.weights.shape[1]), 1, 1)
    raise AssertionError(layer)


def converted_model(source: Path, cache_dir: Path) -> Path:
    """The ONNX file converted from ``source`` (a dlib face ResNet), from the cache when it is
    there, else converted now and cached. The file name carries the source's hash."""
    try:
        digest = file_sha256(source)
    except OSError as exc:
        raise ModelError(f"cannot read {source}: {exc}") from None
    target = cache_dir / f"dlib-resnet-v1-{digest[:16]}-c{CONVERTER_VERSION}.onnx"
    if target.is_file():
        return target
    model = build_onnx(read_dlib_resnet(source))
    model.metadata_props.add(key="source_sha256", value=digest)
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=cache_dir, prefix=".converting-", suffix=".onnx")
        with os.fdopen(handle, "wb") as out:
            out.write(model.SerializeToString())
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, target)
    except OSError as exc:
        raise ModelError(f"cannot write the converted model to {cache_dir}: {exc}") from None
    return target


def _pooled(size: int, window: int, stride: int, padding: int) -> int:
    return 1 + (size + 2 * padding - window) // stride


def _padded(graph: _Graph, value: str, shape: Shape, total: Shape) -> str:
    if shape == total:
        return value
    ends = [total[i] - shape[i] for i in range(3)]
    pads = np.asarray([0, 0, 0, 0, 0, *ends], dtype=np.int64)
    return graph.op("Pad", [value, graph.constant("pads", pads)], mode="constant")
