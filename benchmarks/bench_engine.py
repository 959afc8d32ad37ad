"""Benchmark faceaccord's engine against its peer, face_recognition 1.3.0, on the same photos.

Measured side by side in one run:

1. Throughput of detect + align + embed (faces/s and images/s), one process per system:
   faceaccord ``Engine.load()`` then ``engine.embed(path)``, against face_recognition's
   ``load_image_file``, ``face_locations`` (HOG, upsample 1) and ``face_encodings`` (5-point
   landmarks). Every pass of every system runs in its own spawned process, so peak RSS
   (``ru_maxrss``) is that system's alone. Load time (imports + models) is reported apart from
   the timed loop; one warm-up image is not timed; the timed pass over all images is repeated
   (full: 3, short: 1) with the systems interleaved, and the median is quoted. Also faceaccord's
   folder job on all cores, wall clock including worker start-up.
2. Embedding agreement: faceaccord's landmarker, aligner and embedder run on the peer's own
   pixels and face boxes; cosine similarity with the peer's encodings. HARD CHECK: min >= 0.999.
3. Verification accuracy on all pairs of faces-dev (always every photo; largest face per photo):
   ROC AUC, TMR at FMR 1e-2 and 1e-3, FMR and FNMR at the engine's operating point.

Data: ../shared/data/faces-dev (--short: a fixed, seeded subset of 12 photos for 1 and 2). When
that folder is missing, face_recognition's own sample photos (``faceaccord.samples``) are used.

    .venv/bin/python benchmarks/bench_engine.py [--short] [--json-out PATH]

Exit status 1 when the agreement check fails.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import random
import resource
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from _common import (
    IMAGE_SUFFIXES,
    SHARED_DATA,
    LabelledImage,
    folder_per_person,
    median,
    pair_distances,
    roc_auc,
    tmr_at_fmr,
)

if TYPE_CHECKING:
    from faceaccord.biometrics.folder_job import FileOutcome
    from faceaccord.biometrics.pipeline import Engine

# faceaccord and face_recognition are imported inside functions only: spawned children re-import
# this module, and each system's process must hold that system's libraries and nothing else.

SHORT_IMAGES = 12
SHORT_SEED = 20261122
MIN_COSINE = 0.999
FACEACCORD = "faceaccord"
PEER = "face_recognition"


@dataclass(frozen=True)
class Pass:
    """One system's timed pass over the images, measured in a process of its own."""

    system: str
    load_s: float
    elapsed_s: float
    faces: list[int]
    peak_rss_kib: int
    boxes: list[list[tuple[int, int, int, int]]] = field(default_factory=list)
    """The peer's (top, right, bottom, left) boxes, right and bottom inclusive, per image."""
    encodings: list[list[NDArray[np.float64]]] = field(default_factory=list)


@dataclass(frozen=True)
class DataSet:
    name: str
    timed: list[LabelledImage]
    """Photos for throughput and agreement."""
    scored: list[LabelledImage]
    """Photos for verification accuracy (every usable one)."""


def _peak_rss_kib() -> int:
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def faceaccord_pass(paths: Sequence[Path]) -> Pass:
    start = time.perf_counter()
    from faceaccord.biometrics.pipeline import Engine  # noqa: PLC0415

    engine = Engine.load()
    load_s = time.perf_counter() - start
    engine.embed(paths[0])  # warm-up, not timed
    start = time.perf_counter()
    faces = [len(engine.embed(path)) for path in paths]
    return Pass(FACEACCORD, load_s, time.perf_counter() - start, faces, _peak_rss_kib())


def peer_pass(paths: Sequence[Path]) -> Pass:
    start = time.perf_counter()
    import face_recognition  # noqa: PLC0415 - loads its models on import

    load_s = time.perf_counter() - start

    def run(path: Path) -> tuple[list[tuple[int, int, int, int]], list[NDArray[np.float64]]]:
        pixels = face_recognition.load_image_file(str(path))
        locations = face_recognition.face_locations(pixels)
        return locations, face_recognition.face_encodings(pixels, locations)

    run(paths[0])  # warm-up, not timed
    start = time.perf_counter()
    results = [run(path) for path in paths]
    elapsed = time.perf_counter() - start
    faces = [len(b) for b, _ in results]
    return Pass(
        PEER,
        load_s,
        elapsed,
        faces,
        _peak_rss_kib(),
        boxes=[b for b, _ in results],
        encodings=[list(e) for _, e in results],
    )


def in_own_process(task: Callable[[Sequence[Path]], Pass], paths: Sequence[Path]) -> Pass:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(task, list(paths)).result()


def folder_pass(paths: Sequence[Path]) -> tuple[float, list[FileOutcome]]:
    """faceaccord's folder job on every core; wall clock including worker start-up."""
    from faceaccord.biometrics.folder_job import embed_files  # noqa: PLC0415
    from faceaccord.biometrics.pipeline import Engine  # noqa: PLC0415

    start = time.perf_counter()
    engine = Engine.load()
    outcomes = list(embed_files(paths, engine=engine, workers=os.cpu_count() or 1))
    return time.perf_counter() - start, outcomes


def agreement(engine: Engine, paths: Sequence[Path], peer: Pass) -> list[float]:
    """Cosine of faceaccord's and the peer's embeddings of the same boxes on the same pixels."""
    import face_recognition  # noqa: PLC0415

    from faceaccord.biometrics.faces import BoundingBox  # noqa: PLC0415

    cosines: list[float] = []
    for path, boxes, encodings in zip(paths, peer.boxes, peer.encodings, strict=True):
        if not boxes:
            continue
        pixels = face_recognition.load_image_file(str(path))
        # The peer's (top, right, bottom, left) are inclusive; BoundingBox right/bottom exclusive.
        ours = [
            BoundingBox(left=x0, top=y0, right=x1 + 1, bottom=y1 + 1) for y0, x1, y1, x0 in boxes
        ]
        chips = engine.aligner.align(pixels, engine.landmarker.locate(pixels, ours))
        a = engine.embedder.embed(chips).astype(np.float64)
        b = np.asarray(encodings, dtype=np.float64)
        cosines += ((a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)).tolist()
    return cosines


def accuracy(
    images: Sequence[LabelledImage], outcomes: dict[Path, FileOutcome], threshold: float
) -> dict[str, Any]:
    kept = [
        (i, outcomes[i.path].templates[0].embedding) for i in images if outcomes[i.path].templates
    ]
    missed = [i.path.name for i in images if not outcomes[i.path].templates]
    genuine, impostor = pair_distances(
        np.asarray([e for _, e in kept], dtype=np.float64), [i.subject for i, _ in kept]
    )
    result: dict[str, Any] = {
        "images": len(images),
        "no_face": missed,
        "genuine_pairs": len(genuine),
        "impostor_pairs": len(impostor),
        "threshold": threshold,
    }
    if len(genuine) and len(impostor):
        result |= {
            "roc_auc": roc_auc(genuine, impostor),
            "tmr_at_fmr_1e-2": tmr_at_fmr(genuine, impostor, 1e-2),
            "tmr_at_fmr_1e-3": tmr_at_fmr(genuine, impostor, 1e-3),
            "false_matches": int((impostor <= threshold).sum()),
            "false_non_matches": int((genuine > threshold).sum()),
            "fmr": float((impostor <= threshold).mean()),
            "fnmr": float((genuine > threshold).mean()),
        }
    return result


def load_data(root: Path, *, short: bool) -> DataSet:
    if root.is_dir():
        images = folder_per_person(root)
        name = root.name
        scored = images
    else:
        from faceaccord.samples import fetch_sample_photos  # noqa: PLC0415
        from faceaccord.settings import Settings  # noqa: PLC0415

        photos = fetch_sample_photos(Settings().cache_dir)
        name = f"face_recognition 1.3.0 sample photos ({root} not found)"
        files = sorted(p for p in photos.folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        images = [LabelledImage(p, "biden" if p.stem == "biden" else "obama") for p in files]
        scored = [LabelledImage(p, "obama") for p in photos.person_a]
        scored.append(LabelledImage(photos.person_b, "biden"))
    timed = images
    if short and len(images) > SHORT_IMAGES:
        chosen = random.Random(SHORT_SEED).sample(images, SHORT_IMAGES)
        timed = sorted(chosen, key=lambda i: i.path)
    return DataSet(name, timed, scored)


def machine_facts() -> dict[str, Any]:
    import dlib  # noqa: PLC0415

    cpu = platform.processor() or "unknown"
    try:
        lines = Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines()
        cpu = next(
            (ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), cpu
        )
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "dlib": dlib.__version__,
        "dlib_use_blas": bool(dlib.DLIB_USE_BLAS),
        "face_recognition": metadata.version("face_recognition"),
    }


def measure_throughput(
    paths: Sequence[Path], repeats: int
) -> tuple[dict[str, list[Pass]], list[float], dict[Path, FileOutcome]]:
    """Timed passes of both systems and of the folder job, rotating their order each repeat."""
    runs: dict[str, list[Pass]] = {FACEACCORD: [], PEER: []}
    folder_runs: list[float] = []
    outcomes: dict[Path, FileOutcome] = {}
    steps = [FACEACCORD, PEER, "folder job"]
    for r in range(repeats):
        for step in steps[r % 3 :] + steps[: r % 3]:
            if step in {FACEACCORD, PEER}:
                one = in_own_process(faceaccord_pass if step == FACEACCORD else peer_pass, paths)
                runs[step].append(one)
                elapsed = one.elapsed_s
            else:
                elapsed, found = folder_pass(paths)
                folder_runs.append(elapsed)
                outcomes = {o.path: o for o in found}
            print(f"   pass {r + 1}/{repeats}: {step} {elapsed:.2f} s", flush=True)
    return runs, folder_runs, outcomes


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def system_figures(passes: Sequence[Pass]) -> dict[str, Any]:
    elapsed = median([p.elapsed_s for p in passes])
    images, faces = len(passes[0].faces), sum(passes[0].faces)
    return {
        "load_s": median([p.load_s for p in passes]),
        "pass_s": [round(p.elapsed_s, 3) for p in passes],
        "median_pass_s": elapsed,
        "images": images,
        "faces": faces,
        "faces_per_s": ratio(faces, elapsed),
        "images_per_s": ratio(images, elapsed),
        "peak_rss_mib": max(p.peak_rss_kib for p in passes) / 1024,
    }


def print_throughput(figures: dict[str, Any], repeats: int) -> None:
    ours, peer, folder = figures[FACEACCORD], figures[PEER], figures["folder_job_all_cores"]
    print(f"\n1. Throughput, detect + align + embed, {ours['images']} photos, median of {repeats}")
    header = ("system", "load s", "pass s", "faces", "faces/s", "images/s", "peak RSS MiB")
    print("   {:<18}{:>8}{:>8}{:>7}{:>9}{:>10}{:>14}".format(*header))
    for name, f in ((FACEACCORD, ours), (PEER, peer)):
        print(
            f"   {name:<18}{f['load_s']:>8.2f}{f['median_pass_s']:>8.2f}{f['faces']:>7}"
            f"{f['faces_per_s']:>9.2f}{f['images_per_s']:>10.2f}{f['peak_rss_mib']:>14.0f}"
        )
    print(
        f"   ratio faceaccord / face_recognition (one process each): faces/s "
        f"{figures['ratio_faces_per_s']:.2f}x, images/s {figures['ratio_images_per_s']:.2f}x"
    )
    print(
        f"   faceaccord folder job, ALL CORES ({folder['workers']} workers, wall clock including "
        f"worker start-up):\n   {folder['faces']} faces in {folder['median_pass_s']:.2f} s = "
        f"{folder['faces_per_s']:.2f} faces/s = {folder['ratio_to_peer']:.2f}x the peer's "
        f"single-process faces/s; {folder['errors']} file errors"
    )
    print(
        f"   faces found: faceaccord {ours['faces']}, face_recognition {peer['faces']} (they may "
        "differ: faceaccord detects\n   on a copy scaled to <= "
        f"{figures['faceaccord_detection_max_side']} px on the long side and "
        "applies EXIF orientation; the peer\n   detects on the full stored image)"
    )
    for name, ours_n, peer_n in figures["face_count_differences"]:
        print(f"   faces differ on {name}: faceaccord {ours_n}, face_recognition {peer_n}")


def print_accuracy(acc: dict[str, Any], data_name: str, point: str) -> None:
    print(f"\n3. Verification accuracy, {data_name}, {acc['images']} photos, largest face each")
    print(
        f"   pairs {acc['genuine_pairs'] + acc['impostor_pairs']} ({acc['genuine_pairs']} genuine,"
        f" {acc['impostor_pairs']} impostor); photos with no face: {acc['no_face'] or 'none'}"
    )
    if "roc_auc" in acc:
        print(
            f"   ROC AUC {acc['roc_auc']:.4f}; TMR at FMR 1e-2 {acc['tmr_at_fmr_1e-2']:.4f}, "
            f"at FMR 1e-3 {acc['tmr_at_fmr_1e-3']:.4f}"
        )
        print(
            f"   operating point {point!r} (match when distance <= {acc['threshold']}): "
            f"FMR {acc['fmr']:.4f} ({acc['false_matches']}/{acc['impostor_pairs']}), "
            f"FNMR {acc['fnmr']:.4f} ({acc['false_non_matches']}/{acc['genuine_pairs']})"
        )
    expected_errors = acc["impostor_pairs"] * 1e-3
    if expected_errors < 1:
        print(
            f"   caveat: only {acc['impostor_pairs']} impostor pairs, too few to observe an FMR "
            "of 1e-3 or 1e-2: a smoke check, not an accuracy figure"
        )
    else:
        print(
            f"   caveat: only {acc['impostor_pairs']} impostor pairs, so FMR 1e-3 rests on "
            f"~{expected_errors:.1f} errors: indicative, not a calibration"
        )


def summary_rows(report: dict[str, Any]) -> list[tuple[str, str]]:
    t, agree, acc = report["throughput"], report["agreement"], report["accuracy"]
    ours, peer, folder = t[FACEACCORD], t[PEER], t["folder_job_all_cores"]

    def pair(key: str, fmt: str) -> str:
        return f"{ours[key]:{fmt}} / {peer[key]:{fmt}}"

    rows = [
        ("faces/s  faceaccord / face_recognition", pair("faces_per_s", ".2f")),
        ("images/s faceaccord / face_recognition", pair("images_per_s", ".2f")),
        (
            "ratio faces/s, images/s",
            f"{t['ratio_faces_per_s']:.2f}x, {t['ratio_images_per_s']:.2f}x",
        ),
        ("faces found", pair("faces", "d")),
        ("load s", pair("load_s", ".2f")),
        ("peak RSS MiB", pair("peak_rss_mib", ".0f")),
        (
            "folder job ALL CORES faces/s",
            f"{folder['faces_per_s']:.2f} ({folder['ratio_to_peer']:.2f}x peer)",
        ),
        (
            "agreement cosine min / median",
            f"{agree['min_cosine']:.6f} / {agree['median_cosine']:.6f}",
        ),
        (f"agreement check (min >= {MIN_COSINE})", "PASS" if agree["passed"] else "FAIL"),
    ]
    if "roc_auc" in acc:
        rows += [
            ("pairs genuine / impostor", f"{acc['genuine_pairs']} / {acc['impostor_pairs']}"),
            ("ROC AUC", f"{acc['roc_auc']:.4f}"),
            (
                "TMR at FMR 1e-2 / 1e-3",
                f"{acc['tmr_at_fmr_1e-2']:.4f} / {acc['tmr_at_fmr_1e-3']:.4f}",
            ),
            (f"FMR / FNMR at {acc['threshold']}", f"{acc['fmr']:.4f} / {acc['fnmr']:.4f}"),
        ]
    return [*rows, ("run time s", f"{report['run_s']:.0f}")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true", help="12 photos, one timed pass (CI)")
    parser.add_argument("--json-out", type=Path, help="also write the figures here as JSON")
    parser.add_argument("--data", type=Path, default=SHARED_DATA / "faces-dev")
    args = parser.parse_args()
    started = time.perf_counter()
    repeats = 1 if args.short else 3
    data = load_data(args.data, short=args.short)
    paths = [i.path for i in data.timed]
    machine = machine_facts()
    print(f"faceaccord engine benchmark, {'short' if args.short else 'full'} mode")
    print("machine: " + ", ".join(f"{k} {v}" for k, v in machine.items()))
    seed = f", seed {SHORT_SEED}" if args.short else ""
    print(f"data: {data.name}, {len(paths)} photos timed{seed}, {len(data.scored)} scored")

    from faceaccord.biometrics.pipeline import Engine  # noqa: PLC0415
    from faceaccord.settings import Settings  # noqa: PLC0415

    runs, folder_runs, outcomes = measure_throughput(paths, repeats)
    ours, peer = system_figures(runs[FACEACCORD]), system_figures(runs[PEER])
    folder_faces = sum(len(o.templates) for o in outcomes.values())
    folder_s = median(folder_runs)
    throughput = {
        FACEACCORD: ours,
        PEER: peer,
        "ratio_faces_per_s": ratio(ours["faces_per_s"], peer["faces_per_s"]),
        "ratio_images_per_s": ratio(ours["images_per_s"], peer["images_per_s"]),
        "folder_job_all_cores": {
            "workers": os.cpu_count(),
            "pass_s": [round(s, 3) for s in folder_runs],
            "median_pass_s": folder_s,
            "faces": folder_faces,
            "errors": sum(o.error is not None for o in outcomes.values()),
            "faces_per_s": ratio(folder_faces, folder_s),
            "ratio_to_peer": ratio(ratio(folder_faces, folder_s), peer["faces_per_s"]),
        },
        "faceaccord_detection_max_side": Settings().detection.max_side,
        "face_count_differences": [
            (f"{p.parent.name}/{p.name}", a, b)
            for p, a, b in zip(paths, runs[FACEACCORD][0].faces, runs[PEER][0].faces, strict=True)
            if a != b
        ],
    }
    print_throughput(throughput, repeats)

    engine = Engine.load()
    cosines = agreement(engine, paths, runs[PEER][0])
    agree = {
        "faces": len(cosines),
        "min_cosine": min(cosines, default=float("nan")),
        "median_cosine": median(cosines) if cosines else float("nan"),
        "passed": bool(cosines) and min(cosines) >= MIN_COSINE,
    }
    print(
        f"\n2. Embedding agreement on face_recognition's boxes and pixels, {len(cosines)} faces: "
        f"cosine\n   min {agree['min_cosine']:.6f} (1 - min = {1 - agree['min_cosine']:.1e}), "
        f"median {agree['median_cosine']:.6f} "
        f"[{'PASS' if agree['passed'] else 'FAIL'}: hard check min >= {MIN_COSINE}]",
        flush=True,
    )

    missing = [i.path for i in data.scored if i.path not in outcomes]
    if missing:  # --short: the folder job covered only the timed photos
        outcomes |= {o.path: o for o in folder_pass(missing)[1]}
    acc = accuracy(data.scored, outcomes, engine.operating_point.threshold)
    print_accuracy(acc, data.name, engine.operating_point.name)

    report = {
        "mode": "short" if args.short else "full",
        "machine": machine,
        "data": {"name": data.name, "timed": [str(p) for p in paths], "repeats": repeats},
        "throughput": throughput,
        "agreement": agree,
        "accuracy": acc,
        "run_s": time.perf_counter() - started,
    }
    print("\nSummary")
    for label, value in summary_rows(report):
        print(f"   {label:<40}{value}")
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
        print(f"figures written to {args.json_out}")
    return 0 if agree["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
