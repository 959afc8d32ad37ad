"""``faceaccord demo``: enrol one person from the sample photos, verify against them, refuse a
bad photo, and put the same verification behind the policy: a US police department is denied
before any image is read; a missing-children organisation is allowed, with obligations. Then, in
a throw-away deployment (its own temporary home, database and keys), build a gallery, identify,
erase with a signed receipt, identify again (no match) and verify the audit log."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy.orm import Session

from faceaccord import documents
from faceaccord.biometrics.faces import FaceTemplate
from faceaccord.biometrics.pipeline import Engine
from faceaccord.cli.policy import policy_engine_from, print_decision
from faceaccord.errors import PolicyDeniedError, QualityRejectedError
from faceaccord.governance.enforcement import GovernedEngine
from faceaccord.governance.entities import Organisation, OrganisationStatus, RequestContext
from faceaccord.governance.vocabulary import Jurisdiction, Purpose, Sector
from faceaccord.platform.deployment import Platform
from faceaccord.platform.enrolment import enroll
from faceaccord.platform.erasure import erase_subject
from faceaccord.platform.galleries import create_gallery
from faceaccord.platform.identification import identify
from faceaccord.samples import SamplePhotos, fetch_sample_photos
from faceaccord.settings import Environment, KeySettings, Settings

POLICE = Organisation(
    id="demo-police",
    name="a US city police department",
    sector=Sector.POLICE,
    jurisdiction=Jurisdiction.parse("US-NY"),
    status=OrganisationStatus.APPROVED,
    approved_purposes=frozenset({Purpose.CRIMINAL_INVESTIGATION, Purpose.MISSING_PERSONS}),
)
MISSING_CHILDREN_NGO = Organisation(
    id="demo-ngo",
    name="a missing-children organisation",
    sector=Sector.NGO_MISSING_PERSONS,
    jurisdiction=Jurisdiction.parse("US-VA"),
    status=OrganisationStatus.APPROVED,
    approved_purposes=frozenset({Purpose.MISSING_PERSONS}),
)


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
                **documents.verification_json(result),
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

    policy = _policy_step(engine, settings, samples, enrolled, console)
    gallery = _gallery_step(engine, settings, samples, console)

    document = {
        "samples": str(samples.folder),
        "model": engine.model_id,
        "operating_point": documents.operating_point_json(point),
        "enrolment": {
            "subject": "person A",
            "photo": enrolment_photo.name,
            "face": documents.face_json(enrolled.face, []),
        },
        "verifications": checks,
        "quality_gate": refusal,
        "policy": policy,
        "gallery": gallery,
        "all_correct": all(c["correct"] for c in checks)
        and gallery["identified"] == "person-a"
        and gallery["after_erasure"] == "no_match"
        and gallery["audit"]["ok"]
        and refusal["refused"]
        and policy["police"]["decision"] == "deny"
        and policy["ngo"]["decision"] == "allow"
        and policy["ngo"]["verification"]["match"],
    }
    if as_json:
        sys.stdout.write(json.dumps(document, indent=2) + "\n")
    elif not document["all_correct"]:
        console.print("[red]some decisions were not what the demo expected[/red]")
    return document


def _policy_step(
    engine: Engine,
    settings: Settings,
    samples: SamplePhotos,
    enrolled: FaceTemplate,
    console: Console,
) -> dict[str, Any]:
    governed = GovernedEngine(engine=engine, policy=policy_engine_from(settings))
    probe = samples.person_a[1]
    console.print(f"\n{POLICE.name} asks to verify {probe.name} for a criminal investigation:")
    try:
        governed.verify(
            probe, enrolled, organisation=POLICE, purpose=Purpose.CRIMINAL_INVESTIGATION
        )
        police: dict[str, Any] = {"decision": "allow"}
    except PolicyDeniedError as denied:
        print_decision(denied.decision, console)
        console.print("  (no image was read: the policy decides before any biometric processing)")
        police = denied.decision.as_dict()

    console.print(f"\n{MISSING_CHILDREN_NGO.name} asks the same for a missing child:")
    allowed = governed.verify(
        probe,
        enrolled,
        organisation=MISSING_CHILDREN_NGO,
        purpose=Purpose.MISSING_PERSONS,
        context=RequestContext(reviewers=1),
    )
    print_decision(allowed.decision, console)
    result = allowed.result
    console.print(
        f"  verified at operating point {result.operating_point.name!r} (threshold "
        f"{result.threshold}, for the similarity floor): "
        + ("match" if result.match else "no match")
        + f", distance {result.distance:.3f}; a candidate for human review, not a conclusion"
    )
    return {
        "police": police,
        "ngo": {**allowed.decision.as_dict(), "verification": documents.verification_json(result)},
    }


def _gallery_step(
    engine: Engine, settings: Settings, samples: SamplePhotos, console: Console
) -> dict[str, Any]:
    purpose = Purpose.ACCESS_CONTROL
    with tempfile.TemporaryDirectory(prefix="faceaccord-demo-") as home:
        demo = settings.model_copy(
            update={
                "home": Path(home),
                "database_url": None,
                "keyvault_url": None,
                "keys": KeySettings(),
                "environment": Environment.DEVELOPMENT,
            }
        )
        with Platform.open(demo, engine=engine) as platform:
            console.print(f"\na gallery in a throw-away deployment ({home}):")
            create_gallery(platform, name="staff", purpose=purpose, actor="demo")
            for reference, photo in (
                ("person-a", samples.person_a[0]),
                ("person-b", samples.person_b),
            ):
                enroll(platform, gallery="staff", subject=reference, images=[photo],
                       purpose=purpose, actor="demo")  # fmt: skip
            probe = samples.person_a[2]
            found = identify(platform, gallery="staff", image=probe, purpose=purpose, actor="demo")
            best = found.candidates[0].subject if found.candidates else "no_match"
            console.print(
                f"  enrolled person-a and person-b; identifying {probe.name}: "
                + ", ".join(f"{c.subject} (distance {c.distance:.3f})" for c in found.candidates)
            )
            receipt = erase_subject(platform, subject="person-a", actor="demo")
            console.print(
                f"  erased person-a: receipt {receipt.document['receipt']} signed by key "
                f"{receipt.key_id}, counts {receipt.document['counts']}"
            )
            again = identify(platform, gallery="staff", image=probe, purpose=purpose, actor="demo")
            console.print(f"  identifying {probe.name} again: {again.status}")
            with Session(platform.db) as session:
                audit = platform.audit.verify(session)
            console.print(f"  audit log: {audit.entries} entries, intact: {audit.ok}")
    return {
        "identified": best,
        "identification": found.as_dict(),
        "erasure_receipt": receipt.as_dict(),
        "after_erasure": again.status,
        "audit": audit.as_dict(),
    }
