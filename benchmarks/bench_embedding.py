"""Embedding alone: dlib's ResNet run by dlib against the same network in ONNX Runtime (FP32,
converted by faceaccord) and its INT8 quantisation, on the same aligned chips of real faces.

Printed side by side in one run:

1. faces/s (median of repeated timed runs) for dlib's ``compute_face_descriptor`` on a batch,
   and ONNX Runtime at 1 thread and at every core, batch 1 and 32; ratios to dlib.
2. The network's cost: FLOPs per face counted from the ONNX graph (2 per multiply-add), the
   machine's FP32 matrix-multiply rate on one core (a float32 GEMM, measured), and the fraction
   of it each run reaches.
3. Accuracy: cosine of the FP32 and INT8 descriptors with dlib's, and verification on all pairs
   of the chips' photos (ROC AUC, TMR at FMR 1e-2 / 1e-3, FMR/FNMR at the card's default
   threshold) for dlib, FP32 and INT8. The INT8 model is calibrated on the chips of half the
   subjects and scored on all (its figures on the calibration half are not held out).

Data: ../shared/data/faces-dev (largest face per photo; --short: 16 photos). When missing,
face_recognition's sample photos (``faceaccord.samples``).

    .venv/bin/python benchmarks/bench_embedding.py [--short]
"""

from __future__ import annotations

import os

# The GEMM rate below is one core's: pin numpy's BLAS to one thread before numpy loads.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnx
from numpy.typing import NDArray

from _common import (
    SHARED_DATA,
    folder_per_person,
    median,
    pair_distances,
    roc_auc,
    tmr_at_fmr,
)

Chips = NDArray[np.uint8]


def load_chips(short: bool) -> tuple[Chips, list[str]]:
    from faceaccord.biometrics.pipeline import Engine  # noqa: PLC0415
    from faceaccord.samples import fetch_sample_photos  # noqa: PLC0415
    from faceaccord.settings import Settings  # noqa: PLC0415

    root = SHARED_DATA / "faces-dev"
    if root.is_dir():
        images = [(i.path, i.subject) for i in folder_per_person(root)]
    else:
        samples = fetch_sample_photos(Settings().cache_dir)
        images = [(p, "a") for p in samples.person_a] + [(samples.person_b, "b")]
    if short:
        images = images[:: max(1, len(images) // 16)][:16]
    engine = Engine.load()
    chips, subjects = [], []
    for path, subject in images:
        faces = engine.analyse(path)
        if faces:
            chips.append(faces[0].chip)
            subjects.append(subject)
    return np.stack(chips), subjects


def onnx_flops(model_path: Path) -> int:
    """Multiply-adds x 2 of every Conv and MatMul in the graph, for one 150x150 chip."""
    model = onnx.shape_inference.infer_shapes(onnx.load(str(model_path)))
    shapes = {
        v.name: [d.dim_value or 1 for d in v.type.tensor_type.shape.dim]
        for v in [*model.graph.value_info, *model.graph.output]
    }
    weights = {t.name: list(t.dims) for t in model.graph.initializer}
    flops = 0
    for node in model.graph.node:
        if node.op_type == "Conv":
            out = shapes[node.output[0]]
            cout, cin, kh, kw = weights[node.input[1]]
            flops += 2 * cout * cin * kh * kw * out[2] * out[3]
        elif node.op_type == "MatMul":
            rows, cols = weights[node.input[1]]
            flops += 2 * rows * cols
    return flops


def gemm_gflops() -> float:
    """float32 GEMM rate of this process's BLAS (pinned to one thread at start-up)."""
    a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
    a @ a
    times = []
    for _ in range(5):
        start = time.perf_counter()
        a @ a
        times.append(time.perf_counter() - start)
    return 2 * 1024**3 / median(times) / 1e9


def faces_per_s(run: Callable[[Chips], object], chips: Chips, batch: int, repeats: int) -> float:
    def one_pass() -> float:
        start = time.perf_counter()
        for i in range(0, len(chips), batch):
            run(chips[i : i + batch])
        return len(chips) / (time.perf_counter() - start)

    one_pass()  # warm-up
    return median([one_pass() for _ in range(repeats)])


def verification(
    embeddings: NDArray[np.float32], subjects: Sequence[str], threshold: float
) -> dict[str, float | str]:
    genuine, impostor = pair_distances(embeddings.astype(np.float64), subjects)
    return {
        "auc": roc_auc(genuine, impostor),
        "tmr@1e-2": tmr_at_fmr(genuine, impostor, 1e-2),
        "tmr@1e-3": tmr_at_fmr(genuine, impostor, 1e-3),
        "fmr": float((impostor <= threshold).mean()),
        "fnmr": float((genuine > threshold).mean()),
        "pairs": f"{len(genuine)}/{len(impostor)}",
    }


def cosines(a: NDArray[np.float32], b: NDArray[np.float32]) -> NDArray[np.float32]:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="16 photos, fewer repeats (CI)")
    args = parser.parse_args()
    repeats = 2 if args.short else 5
    cores = os.cpu_count() or 1

    from faceaccord.biometrics.embed import DlibResNetEmbedder  # noqa: PLC0415
    from faceaccord.biometrics.models.cards import load_shipped_card  # noqa: PLC0415
    from faceaccord.biometrics.models.dlib_onnx import converted_model  # noqa: PLC0415
    from faceaccord.biometrics.models.quantize import quantize_int8  # noqa: PLC0415
    from faceaccord.biometrics.models.weights import DlibWeights, weights_path  # noqa: PLC0415
    from faceaccord.biometrics.onnx_embed import OnnxEmbedder  # noqa: PLC0415
    from faceaccord.settings import Settings  # noqa: PLC0415

    print(f"faceaccord embedding benchmark, {'short' if args.short else 'full'} mode")
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    chips, subjects = load_chips(args.short)
    print(
        f"chips: {len(chips)} aligned 150x150 chips of {len(set(subjects))} people; cores {cores}"
    )
    card = load_shipped_card("dlib-resnet-v1")
    fp32_path = converted_model(weights_path(DlibWeights.RESNET_V1), Settings().model_cache_dir())
    calibration = [c for c, s in zip(chips, subjects, strict=True) if hash(s) % 2 == 0] or list(
        chips
    )
    work = Path(tempfile.mkdtemp(prefix="faceaccord-int8-"))
    int8_path = quantize_int8(
        fp32_path, calibration[:64] if len(calibration) >= 8 else list(chips), work / "int8.onnx"
    )

    dlib_net = DlibResNetEmbedder(batch_size=32)
    runners: dict[str, tuple[Callable[[Chips], object], int]] = {
        "dlib (its own call), batch 32": (lambda c: dlib_net.embed(list(c)), 32),
    }
    embedders = {}
    for name, path in (("FP32", fp32_path), ("INT8", int8_path)):
        for threads in sorted({1, cores}):
            embedder = OnnxEmbedder(model_path=path, card=card, batch_size=32, threads=threads)
            embedders[(name, threads)] = embedder
            for batch in (1, 32):
                runners[
                    f"ONNX {name}, {threads} thread{'s' if threads > 1 else ''}, batch {batch}"
                ] = (lambda c, e=embedder: e.embed(list(c)), batch)

    flops = onnx_flops(fp32_path)
    peak = gemm_gflops()
    print(
        f"network: {flops / 1e9:.3f} GFLOP per face; this core's float32 GEMM rate "
        f"{peak:.1f} GFLOP/s (numpy BLAS, 1 thread; x{cores} cores = {peak * cores:.0f}); "
        "'of peak' is a run's GFLOP/s over that rate times its threads"
    )

    print("\n1. Throughput (faces/s, median of runs over all chips)")
    dlib_rate = 0.0
    print(f"   {'run':<40}{'faces/s':>10}{'x dlib':>9}{'GFLOP/s':>10}{'of peak':>9}")
    for name, (run, batch) in runners.items():
        rate = faces_per_s(run, chips, batch, repeats)
        dlib_rate = dlib_rate or rate
        threads = cores if f"{cores} threads" in name else 1
        used = rate * flops / 1e9
        share = used / (peak * threads)
        print(f"   {name:<40}{rate:>10.1f}{rate / dlib_rate:>8.1f}x{used:>10.1f}{share:>8.0%}")

    print("\n2. Accuracy against dlib's descriptors, same chips")
    reference = dlib_net.embed(list(chips))
    results = {"dlib": reference}
    for name in ("FP32", "INT8"):
        results[name] = embedders[(name, 1)].embed(list(chips))
        cos = cosines(reference, results[name])
        largest = np.abs(reference - results[name]).max()
        print(
            f"   {name}: cosine min {cos.min():.7f}, median {np.median(cos):.7f}; "
            f"max |difference| {largest:.2e}"
        )
    threshold = card.operating_point("default").threshold
    print(f"\n3. Verification on all pairs (threshold {threshold}, the card's default)")
    heads = ("pairs g/i", 14), ("AUC", 9), ("TMR@1e-2", 10), ("TMR@1e-3", 10), ("FMR", 9)
    print(f"   {'model':<8}" + "".join(f"{h:>{w}}" for h, w in heads) + f"{'FNMR':>9}")
    for name, embeddings in results.items():
        v = verification(embeddings, subjects, threshold)
        print(
            f"   {name:<8}{v['pairs']:>14}{v['auc']:>9.4f}{v['tmr@1e-2']:>10.3f}"
            f"{v['tmr@1e-3']:>10.3f}{v['fmr']:>9.4%}{v['fnmr']:>9.2%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
