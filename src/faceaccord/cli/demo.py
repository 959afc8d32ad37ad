"""``faceaccord demo``: enrol one person from the sample photos and verify against them."""

from __future__ import annotations

import json
import sys
from typing import Any

from rich.console import Console
from rich.table import Table

from faceaccord.biometrics.pipeline import Engine
from faceaccord.cli import render
from faceaccord.errors import QualityRejectedError
from faceaccord.samples import fetch_sample_photos
from faceaccord.settings import Settings


def run_demo(*, settings: Settings, as_json: bool) -> dict[str, Any]:
    """Run the demo, print it (as a story, or as JSON) and return the JSON document."""
    console = Console(stderr=as_json, quiet=as_json)
    console.print(
        "[bold]faceaccord demo[/bold]: fetching the sample photos (cached after the first run)"
    )
    samples = fetch_sample_photos(settings.cache_dir)
    engine = Engine.load(settings)
    point = engine.operating_point
    console.print(
        f"model {engine.model_id}, operating point {point.name!r}: threshold {point.threshold} "
        f"(measured FMR {point.measured_fmr:.2%} on {point.impostor_pairs:,} impostor pairs)"
    )

    enrolment_photo, *genuine_probes = samples.person_a
    enrolled = engine.enroll(enrolment_photo)
    console.print(
        f"enrolled person A from {enrolment_photo.name}: face {enrolled.face.box.as_list()}, "
        f"quality passed the gate"
    )

    probes = [(p, True) for p in genuine_probes] + [(samples.person_b, False)]
    checks = []
    table = Table("probe photo", "expected", "decision", "distance", "similarity", "correct")
    for photo, same_person in probes:
        result = engine.verify(photo, enrolled)
        correct = result.match == same_person
        checks.append(
            {
                "probe": photo.name,
                "expected": "same person" if same_person else "different person",
                **render.verification_json(result),
                "correct": correct,
            }
        )
        table.add_row(
            photo.name,
            "same person" if same_person else "different person",
            "[green]match[/green]" if result.match else "[yellow]no match[/yellow]",
            f"{result.distance:.3f}",
            f"{result.similarity:.3f}",
            "yes" if correct else "[red]NO[/red]",
        )
    console.print(table)

    partial = samples.partial_faces[0]
    try:
        engine.enroll(partial)
        refusal: dict[str, Any] = {"photo": partial.name, "refused": False, "reasons": []}
    except QualityRejectedError as error:
        refusal = {
            "photo": partial.name,
            "refused": True,
            "reasons": [str(r) for r in error.reasons],
        }
    console.print(
        f"enrolling {partial.name} (person A, face cut off by the frame): "
        + (f"refused by the quality gate ({', '.join(refusal['reasons'])})" if refusal["refused"]
           else "accepted")
    )  # fmt: skip

    document = {
        "samples": str(samples.folder),
        "model": engine.model_id,
        "operating_point": render.operating_point_json(point),
        "enrolment": {
            "subject": "person A",
            "photo": enrolment_photo.name,
            "face": render.face_json(enrolled.face, []),
        },
        "verifications": checks,
        "quality_gate": refusal,
        "all_correct": all(c["correct"] for c in checks) and refusal["refused"],
    }
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    elif not document["all_correct"]:
        console.print("[red]some decisions were not what the demo expected[/red]")
    return document
