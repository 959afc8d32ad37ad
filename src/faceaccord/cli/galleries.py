"""Galleries, enrolment, identification, erasure, consent and retention on the command line.

The command line acts for the local deployment's organisation (``FACEACCORD_ORGANISATION__*``)
and keeps everything under ``FACEACCORD_HOME``. Every biometric command states its purpose.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from faceaccord.biometrics.folder_job import enrolment_templates
from faceaccord.cli.output import JsonOption, errors_reported, load_settings, print_json
from faceaccord.consent.erasure import ErasureReceipt, verify_receipt
from faceaccord.consent.records import MAX_CONSENT_DAYS, ConsentInput, notice_digest
from faceaccord.errors import FaceAccordError, InputError
from faceaccord.governance.entities import RequestContext
from faceaccord.governance.vocabulary import ConsentKind, Jurisdiction, Purpose
from faceaccord.platform.deployment import Platform
from faceaccord.platform.enrolment import (
    EnrolmentPermit,
    authorise_enrolment,
    complete_enrolment,
    refuse_enrolment,
)
from faceaccord.platform.enrolment import enroll as enroll_subject
from faceaccord.platform.erasure import (
    erase_subject,
    revoke_consent,
    run_retention,
    withdraw_gallery,
)
from faceaccord.platform.galleries import create_gallery, list_galleries
from faceaccord.platform.identification import identify as identify_probe

gallery_app = typer.Typer(help="Create, list and withdraw galleries.", no_args_is_help=True)
consent_app = typer.Typer(help="Consent records.", no_args_is_help=True)
retention_app = typer.Typer(help="Retention schedules.", no_args_is_help=True)
receipt_app = typer.Typer(help="Erasure receipts.", no_args_is_help=True)

PurposeOption = Annotated[Purpose, typer.Option(help="Why this is done (required).")]
GalleryOption = Annotated[str, typer.Option("--gallery", help="The gallery's name.")]


@contextmanager
def opened() -> Iterator[Platform]:
    with Platform.open(load_settings()) as platform:
        yield platform


@gallery_app.command("create")
def gallery_create(name: str, purpose: PurposeOption, json_output: JsonOption = False) -> None:
    """Create a gallery for one purpose."""
    with errors_reported(json_output), opened() as platform:
        gallery = create_gallery(
            platform, name=name, purpose=purpose, actor=platform.settings.resolved_actor()
        )
        if json_output:
            print_json(gallery.as_dict())
        else:
            Console().print(f"created gallery {gallery.name!r} for {gallery.purpose}")


@gallery_app.command("list")
def gallery_list(
    json_output: JsonOption = False,
    withdrawn: Annotated[bool, typer.Option("--withdrawn", help="Include withdrawn.")] = False,
) -> None:
    """List the organisation's galleries."""
    with errors_reported(json_output), opened() as platform:
        galleries = list_galleries(platform, include_withdrawn=withdrawn)
        if json_output:
            print_json({"galleries": [g.as_dict() for g in galleries]})
            return
        table = Table("gallery", "purpose", "subjects", "created", "withdrawn")
        for g in galleries:
            table.add_row(
                g.name, str(g.purpose), str(g.subjects), g.created_at.date().isoformat(),
                g.withdrawn_at.date().isoformat() if g.withdrawn_at else "",
            )  # fmt: skip
        Console().print(table)


@gallery_app.command("withdraw")
def gallery_withdraw(
    name: str,
    json_output: JsonOption = False,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: erase everyone in it.")] = False,
) -> None:
    """Take a gallery down: erase every subject in it, with a signed receipt of the counts."""
    with errors_reported(json_output), opened() as platform:
        if not yes:
            raise InputError(f"withdrawing {name!r} erases everyone in it: add --yes to confirm")
        receipt = withdraw_gallery(platform, gallery=name, actor=platform.settings.resolved_actor())
        _print_receipt(receipt, json_output)


def enroll(
    gallery: GalleryOption,
    purpose: PurposeOption,
    images: Annotated[list[Path] | None, typer.Argument(help="Photos of the subject.")] = None,
    subject: Annotated[str | None, typer.Option(help="The organisation's reference.")] = None,
    folder: Annotated[
        Path | None,
        typer.Option(file_okay=False, exists=True, help="Bulk: one sub-folder per subject."),
    ] = None,
    consent: Annotated[
        str | None, typer.Option(metavar="KIND:REFERENCE", help="e.g. written:release-0042")
    ] = None,
    notice: Annotated[
        Path | None, typer.Option(dir_okay=False, exists=True, help="The notice's text file.")
    ] = None,
    notice_version: Annotated[str | None, typer.Option()] = None,
    consent_days: Annotated[int | None, typer.Option(min=1, max=MAX_CONSENT_DAYS)] = None,
    subject_jurisdiction: Annotated[str | None, typer.Option(metavar="CODE")] = None,
    json_output: JsonOption = False,
) -> None:
    """Enrol a subject from photos (each must pass the quality gate), or, with --folder, every
    sub-folder as a subject, acknowledging each one as a JSON line once it is committed."""
    with errors_reported(json_output), opened() as platform:
        actor = platform.settings.resolved_actor()
        context = RequestContext(subject_jurisdiction=_jurisdiction(subject_jurisdiction))
        if folder is not None:
            if images or subject:
                raise InputError("--folder enrols sub-folders: give no IMAGE or --subject")
            _enroll_folder(platform, folder, gallery, purpose, consent, notice,
                           notice_version, consent_days, context, actor, json_output)  # fmt: skip
            return
        if not subject or not images:
            raise InputError("give --subject and at least one IMAGE (or --folder)")
        record = _consent(consent, notice, notice_version, consent_days, purpose, platform)
        done = enroll_subject(
            platform, gallery=gallery, subject=subject, images=list(images), purpose=purpose,
            actor=actor, consent=record, context=context,
        )  # fmt: skip
        if json_output:
            print_json(done.as_dict())
        else:
            Console().print(
                f"enrolled {done.subject!r} in {done.gallery!r}: {done.templates} template(s) "
                f"({done.decision.outcome})"
            )


def identify(
    image: Annotated[Path, typer.Argument(dir_okay=False, exists=True)],
    gallery: GalleryOption,
    purpose: PurposeOption,
    k: Annotated[int, typer.Option(min=1, max=100, help="At most this many candidates.")] = 5,
    reviewers: Annotated[int | None, typer.Option(min=0, help="Reviewers assigned.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Search a gallery for the largest face in IMAGE. An empty candidate list means no match;
    candidates await human review where the policy requires it."""
    with errors_reported(json_output), opened() as platform:
        found = identify_probe(
            platform, gallery=gallery, image=image, purpose=purpose,
            actor=platform.settings.resolved_actor(), k=k,
            context=RequestContext(reviewers=reviewers),
        )  # fmt: skip
        if json_output:
            print_json(found.as_dict())
            return
        console = Console()
        if not found.candidates:
            console.print(f"no match in {gallery!r} (threshold {found.operating_point.threshold})")
        for c in found.candidates:
            console.print(f"{c.subject}: distance {c.distance:.3f}, similarity {c.similarity:.3f}")
        console.print(f"status: {found.status} ({found.decision.outcome})")


def erase(
    subject: Annotated[str, typer.Option(help="The organisation's reference for the person.")],
    gallery: Annotated[str | None, typer.Option(help="Only this gallery.")] = None,
    json_output: JsonOption = False,
) -> None:
    """Erase a person: their key is destroyed, their rows deleted; prints a signed receipt."""
    with errors_reported(json_output), opened() as platform:
        receipt = erase_subject(
            platform, subject=subject, gallery=gallery, actor=platform.settings.resolved_actor()
        )
        _print_receipt(receipt, json_output)


@consent_app.command("revoke")
def consent_revoke(
    subject: Annotated[str, typer.Option()],
    gallery: Annotated[str | None, typer.Option()] = None,
    json_output: JsonOption = False,
) -> None:
    """Record that the person withdrew consent; this erases them."""
    with errors_reported(json_output), opened() as platform:
        receipt = revoke_consent(
            platform, subject=subject, gallery=gallery, actor=platform.settings.resolved_actor()
        )
        _print_receipt(receipt, json_output)


@retention_app.command("run")
def retention_run(
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Report only.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Erase everyone whose retention period is over, and report it."""
    with errors_reported(json_output), opened() as platform:
        report = run_retention(platform, dry_run=dry_run)
        if json_output:
            print_json(report.as_dict())
            return
        verb = "due" if dry_run else "erased"
        Console().print(f"{len(report.erased)} of {report.checked} subjects {verb}")
        for item in report.erased:
            Console().print(f"  {item['gallery']}: {item['subject_id']} ({item['reason']})")
        if report.keys_missing:
            Console().print(
                f"[yellow]{len(report.keys_missing)} subjects have no data key although no "
                "erasure of theirs began (a key vault restored from an old backup?); they were "
                "left alone:[/yellow] " + ", ".join(report.keys_missing)
            )


@receipt_app.command("verify")
def receipt_verify(
    file: Annotated[Path, typer.Argument(dir_okay=False, exists=True)],
    json_output: JsonOption = False,
) -> None:
    """Check an erasure receipt's signature (compare its key_id with the deployment's)."""
    with errors_reported(json_output):
        try:
            document = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"{file} is not a JSON receipt: {exc}") from None
        ok = isinstance(document, dict) and verify_receipt(document)
        key_id = document.get("key_id") if isinstance(document, dict) else None
        if json_output:
            print_json({"valid": ok, "key_id": key_id})
        else:
            Console().print(("valid" if ok else "INVALID") + f" (key {key_id})")
        if not ok:
            raise typer.Exit(1)


def _enroll_folder(
    platform: Platform,
    folder: Path,
    gallery: str,
    purpose: Purpose,
    consent: str | None,
    notice: Path | None,
    notice_version: str | None,
    consent_days: int | None,
    context: RequestContext,
    actor: str,
    json_output: bool,
) -> None:
    """Every sub-folder a subject. The policy decides on each subject first; the photos of the
    permitted ones then go through the parallel pipeline (detection on every core, embedding in
    batches), and each subject is stored, and acknowledged, as soon as its photos are done."""
    people = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))
    plans: list[tuple[Path, list[Path], EnrolmentPermit | FaceAccordError]] = []
    pending = 0
    for person in people:
        photos = sorted(p for p in person.iterdir() if p.is_file() and not p.name.startswith("."))
        try:
            record = _consent(consent, notice, notice_version, consent_days, purpose, platform)
            permit: EnrolmentPermit | FaceAccordError = authorise_enrolment(
                platform, gallery=gallery, subject=person.name, photos=len(photos),
                purpose=purpose, actor=actor, consent=record, context=context, pending=pending,
            )  # fmt: skip
            pending += len(photos)
        except FaceAccordError as error:
            permit = error
        plans.append((person, photos, permit))
    permitted = [
        p for _, photos, permit in plans if not isinstance(permit, Exception) for p in photos
    ]
    results = enrolment_templates(
        permitted, engine=platform.engine, workers=platform.settings.worker_count()
    )
    done = failed = 0
    for person, photos, permit in plans:
        try:
            if isinstance(permit, FaceAccordError):
                raise permit
            outcomes = [next(results)[1] for _ in photos]
            templates = [o for o in outcomes if not isinstance(o, FaceAccordError)]
            refusal = next((o for o in outcomes if isinstance(o, FaceAccordError)), None)
            if refusal is not None:
                refuse_enrolment(platform, permit, refusal)
                raise refusal
            enrolled = complete_enrolment(platform, permit, templates)
            line: dict[str, object] = {"subject": person.name, "templates": enrolled.templates}
            done += 1
        except FaceAccordError as error:
            line = {"subject": person.name, "error": error.message, "code": error.code}
            failed += 1
        if json_output:
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()  # the acknowledgement: this subject is committed
        else:
            Console().print(line)
    if not json_output:
        Console().print(f"{done} enrolled, {failed} failed")


def _consent(
    consent: str | None,
    notice: Path | None,
    notice_version: str | None,
    days: int | None,
    purpose: Purpose,
    platform: Platform,
) -> ConsentInput | None:
    if consent is None:
        if notice is not None:
            raise InputError("--notice records the notice of a consent: give --consent too")
        return None
    kind, _, reference = consent.partition(":")
    try:
        consent_kind = ConsentKind(kind)
    except ValueError:
        raise InputError(
            f"{kind!r} is not a consent kind (written, electronic, explicit)"
        ) from None
    return ConsentInput(
        kind=consent_kind,
        reference=reference,
        purpose=purpose,
        collected_at=platform.clock(),
        notice_sha256=notice_digest(notice.read_text(encoding="utf-8")) if notice else None,
        notice_version=notice_version,
        duration_days=days,
    )


def _jurisdiction(code: str | None) -> Jurisdiction | None:
    if code is None:
        return None
    try:
        return Jurisdiction.parse(code)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _print_receipt(receipt: ErasureReceipt, json_output: bool) -> None:
    if json_output:
        print_json(receipt.as_dict())
        return
    counts = receipt.document["counts"]
    Console().print(
        f"erased ({receipt.document['reason']}): {counts['subjects']} subject(s), "
        f"{counts['templates']} template(s), {counts['consents']} consent record(s); "
        f"{counts['keys_destroyed']} key(s) destroyed. Receipt {receipt.document['receipt']} "
        f"signed by key {receipt.key_id}."
    )


__all__ = [
    "consent_app", "enroll", "erase", "gallery_app", "identify", "receipt_app", "retention_app",
]  # fmt: skip
