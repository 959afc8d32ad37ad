"""Measure the default verification operating point of dlib-resnet-v1 and print it as TOML.

Protocol: every photo of ../shared/data/faces-dev and ../shared/data/faces-demographic goes
through the engine with default settings; the largest face of each photo is embedded (photos
with no face are counted and left out). All unordered pairs of templates are compared:
pairs of the same subject are genuine, all others impostor (cross-data-set pairs included).
The threshold is the largest distance whose false-match rate over all impostor pairs is at most
the target. FMR is given with a Clopper-Pearson 95 % interval.

    .venv/bin/python benchmarks/calibrate_operating_point.py [--target-fmr 1e-3]
"""

from __future__ import annotations

import argparse
import datetime
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from _common import (
    SHARED_DATA,
    LabelledImage,
    clopper_pearson,
    folder_per_person,
    pair_distances,
    threshold_at_fmr,
)
from faceaccord.biometrics.pipeline import Engine

_ENGINE: Engine | None = None


def _embed(path: Path) -> list[float] | None:
    global _ENGINE  # noqa: PLW0603 - one engine per worker process
    if _ENGINE is None:
        _ENGINE = Engine.load()
    templates = _ENGINE.embed(path)
    return templates[0].embedding.tolist() if templates else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--target-fmr", type=float, default=1e-3)
    parser.add_argument("--name", default="default")
    args = parser.parse_args()

    images: list[LabelledImage] = []
    for name in ("faces-dev", "faces-demographic"):
        images += [
            LabelledImage(path=i.path, subject=f"{name}/{i.subject}")
            for i in folder_per_person(SHARED_DATA / name)
        ]
    with ProcessPoolExecutor() as pool:
        results = list(pool.map(_embed, [i.path for i in images]))
    kept = [(i, e) for i, e in zip(images, results, strict=True) if e is not None]
    missed = [str(i.path) for i, e in zip(images, results, strict=True) if e is None]
    embeddings = np.asarray([e for _, e in kept], dtype=np.float64)
    genuine, impostor = pair_distances(embeddings, [i.subject for i, _ in kept])

    print(f"# {len(images)} photos, {len(kept)} with a face; no face in: {missed}")
    calibrated = round(threshold_at_fmr(impostor, args.target_fmr), 4)
    _print_point(args.name, calibrated, args.target_fmr, genuine, impostor, note="")
    _print_point(
        "dlib_0.6",
        0.6,
        None,
        genuine,
        impostor,
        note="dlib's and face_recognition's customary tolerance, measured on the same pairs",
    )


DATASET = (
    "faces-dev (61 photos, 13 people; deepface test set, public figures) and faces-demographic "
    "(204 photos, 102 people; Face Research Lab London Set, CC BY 4.0, DeBruine & Jones 2017)"
)
PROTOCOL = (
    "largest face per photo, HOG detector (upsample 1, working side 1024), dlib 5-point "
    "alignment; all unordered pairs; impostor = different subject, cross-data-set included"
)
COMMAND = ".venv/bin/python benchmarks/calibrate_operating_point.py"


def _print_point(
    name: str,
    threshold: float,
    target_fmr: float | None,
    genuine: np.ndarray,
    impostor: np.ndarray,
    *,
    note: str,
) -> None:
    false_matches = int((impostor <= threshold).sum())
    false_non_matches = int((genuine > threshold).sum())
    low, high = clopper_pearson(false_matches, len(impostor))
    print()
    print("[[operating_points]]")
    print(f'name = "{name}"')
    print(f"threshold = {threshold}")
    if target_fmr is not None:
        print(f"target_fmr = {target_fmr}")
    print(f"measured_fmr = {false_matches / len(impostor):.6f}")
    print(f"measured_fmr_ci95 = [{low:.6f}, {high:.6f}]")
    print(f"measured_fnmr = {false_non_matches / len(genuine):.6f}")
    print(f"impostor_pairs = {len(impostor)}")
    print(f"genuine_pairs = {len(genuine)}")
    print(f'dataset = "{DATASET}"')
    print(f'protocol = "{PROTOCOL}"')
    print(f"measured_on = {datetime.date.today().isoformat()}")
    print(f'command = "{COMMAND}"')
    if note:
        print(f'note = "{note}"')


if __name__ == "__main__":
    main()
