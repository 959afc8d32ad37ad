"""The ``faceaccord`` command line.

Every command takes ``--json``. Results go to standard output; errors go to standard error
(as ``{"error": {"code", "message"}}`` with ``--json``) with a non-zero exit code:

    0  success (for ``verify``, whether or not the faces match)
    1  internal error (a bug: please report it)
    2  usage error (bad option or argument)
    3  unusable input (not an image, too large, no face, ...)
    4  refused by the enrolment quality gate
    5  model or configuration problem
    6  refused by the policy (the decision, with its rules, is in the error)
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from faceaccord import documents
from faceaccord.biometrics.folder_job import embed_files, list_files
from faceaccord.biometrics.pipeline import Engine
from faceaccord.cli import audit, fairness, galleries, policy, serve
from faceaccord.cli.demo import run_demo
from faceaccord.cli.output import JsonOption, errors_reported, load_settings, print_json
from faceaccord.errors import InputError
from faceaccord.settings import DetectorKind, Settings

app = typer.Typer(
    name="faceaccord",
    help="Face recognition that is accountable by construction.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(policy.app, name="policy")
app.add_typer(galleries.gallery_app, name="gallery")
app.add_typer(galleries.consent_app, name="consent")
app.add_typer(galleries.retention_app, name="retention")
app.add_typer(galleries.receipt_app, name="receipt")
app.command("enroll")(galleries.enroll)
app.command("identify")(galleries.identify)
app.command("erase")(galleries.erase)
app.add_typer(audit.audit_app, name="audit")
app.add_typer(audit.report_app, name="report")
app.add_typer(fairness.app, name="fairness")
app.command("serve")(serve.serve)
app.command("platform-key")(serve.platform_key)

DetectorOption = Annotated[
    DetectorKind | None, typer.Option("--detector", help="Face detector (default: settings).")
]
UpsampleOption = Annotated[
    int | None,
    typer.Option("--upsample", min=0, max=3, help="Times to double the image before detecting."),
]
ExistingFile = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True)]


@app.command()
def detect(
    image: ExistingFile,
    json_output: JsonOption = False,
    detector: DetectorOption = None,
    upsample: UpsampleOption = None,
) -> None:
    """Find every face in IMAGE, with its box, score, landmarks and quality."""
    with errors_reported(json_output):
        engine = Engine.load(_settings(detector=detector, upsample=upsample))
        decoded = engine.read(image)
        faces = engine.detect(decoded)
        rendered = [
            documents.face_json(f, engine.quality_reasons(f, faces_in_image=len(faces)))
            for f in faces
        ]
        if json_output:
            print_json({"image": documents.image_json(decoded), "faces": rendered})
            return
        console = Console()
        console.print(f"{image}: {len(faces)} face(s) in a {decoded.width}x{decoded.height} image")
        table = Table("box (l, t, r, b)", "score", "size px", "sharpness", "yaw/pitch/roll",
                      "brightness", "enrolment")  # fmt: skip
        for face in rendered:
            q = face["quality"]
            table.add_row(
                str(face["box"]),
                f"{face['score']:.2f}",
                str(q["face_px"]),
                f"{q['sharpness']:.0f}",
                f"{q['yaw_deg']:.0f}/{q['pitch_deg']:.0f}/{q['roll_deg']:.0f}",
                f"{q['brightness']:.2f}",
                ", ".join(q["enrolment_refusals"]) or "ok",
            )
        console.print(table)


@app.command()
def verify(
    image_a: ExistingFile,
    image_b: ExistingFile,
    json_output: JsonOption = False,
    operating_point: Annotated[
        str | None, typer.Option(help="Operating point of the model card (default: settings).")
    ] = None,
    detector: DetectorOption = None,
    upsample: UpsampleOption = None,
) -> None:
    """Are the largest faces of IMAGE_A and IMAGE_B the same person? Exits 0 either way."""
    with errors_reported(json_output):
        settings = _settings(detector=detector, upsample=upsample)
        if operating_point:
            settings = settings.model_copy(update={"operating_point": operating_point})
        engine = Engine.load(settings)
        result = engine.verify(image_a, image_b)
        if json_output:
            print_json(documents.verification_json(result))
            return
        verdict = "[green]MATCH[/green]" if result.match else "[yellow]NO MATCH[/yellow]"
        point = result.operating_point
        Console().print(
            f"{verdict}  distance {result.distance:.4f} "
            f"({'<=' if result.match else '>'} threshold {result.threshold}), "
            f"similarity {result.similarity:.4f}\n"
            f"operating point {point.name!r} of {result.model_id}: measured FMR "
            f"{point.measured_fmr:.2%} (95% CI {point.measured_fmr_ci95[0]:.2%}-"
            f"{point.measured_fmr_ci95[1]:.2%}) on {point.impostor_pairs:,} impostor pairs"
        )


@app.command()
def embed(
    folder: Annotated[Path, typer.Argument(exists=True, file_okay=False, help="Folder tree.")],
    out: Annotated[Path, typer.Option("--out", help="JSON Lines file to write.")],
    json_output: JsonOption = False,
    workers: Annotated[
        int | None, typer.Option(min=1, help="Processes (default: one per core).")
    ] = None,
    detector: DetectorOption = None,
    upsample: UpsampleOption = None,
) -> None:
    """Embed every file under FOLDER on all cores, one JSON line per file.

    A file that is not an image, or fails, gets an "error" line; it never stops the run. The
    output is written to OUT.partial and renamed to OUT when the run completes."""
    with errors_reported(json_output):
        settings = _settings(detector=detector, upsample=upsample)
        if not out.parent.is_dir():
            raise InputError(f"the folder for --out does not exist: {out.parent}")
        if out.is_dir():
            raise InputError(f"--out must be a file, and {out} is a folder")
        files = list_files(folder)
        partial = out.with_name(out.name + ".partial")
        counts = {"files": len(files), "images_with_faces": 0, "faces": 0, "errors": 0}
        progress = Progress(
            TextColumn("embedding"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
            console=Console(stderr=True), disable=json_output,
        )  # fmt: skip
        with progress, partial.open("w", encoding="utf-8") as sink:
            task = progress.add_task("embed", total=len(files))
            engine = Engine.load(settings)
            for outcome in embed_files(
                files, engine=engine, workers=workers or settings.worker_count()
            ):
                line: dict[str, Any] = {"path": outcome.path.relative_to(folder).as_posix()}
                if outcome.error is not None:
                    line["error"] = outcome.error
                    counts["errors"] += 1
                else:
                    line["faces"] = [documents.template_json(t) for t in outcome.templates]
                    counts["faces"] += len(outcome.templates)
                    counts["images_with_faces"] += bool(outcome.templates)
                sink.write(json.dumps(line) + "\n")
                sink.flush()
                progress.advance(task)
        partial.replace(out)
        if json_output:
            print_json({**counts, "out": str(out)})
        else:
            Console().print(
                f"{counts['files']} files: {counts['faces']} faces in "
                f"{counts['images_with_faces']} images, {counts['errors']} errors -> {out}"
            )


@app.command()
def demo(json_output: JsonOption = False) -> None:
    """Fetch the sample photos, enrol one person, verify a genuine and an impostor pair."""
    with errors_reported(json_output):
        run_demo(settings=_settings(), as_json=json_output)


@app.command()
def model(json_output: JsonOption = False) -> None:
    """Show the embedding model's card: where it comes from and its operating points."""
    with errors_reported(json_output):
        settings = _settings()
        card = Engine.load(settings).card
        if json_output:
            print_json(card.model_dump(mode="json"))
            return
        console = Console()
        console.print(f"[bold]{card.id}[/bold]: {card.name}\n{card.source}; {card.licence}")
        table = Table("operating point", "threshold", "FMR (95% CI)", "FNMR", "pairs", "measured")
        for p in card.operating_points:
            marker = " (in use)" if p.name == settings.operating_point else ""
            table.add_row(
                p.name + marker,
                str(p.threshold),
                f"{p.measured_fmr:.3%} ({p.measured_fmr_ci95[0]:.3%}-{p.measured_fmr_ci95[1]:.3%})",
                f"{p.measured_fnmr:.2%}",
                f"{p.impostor_pairs:,} / {p.genuine_pairs:,}",
                p.measured_on.isoformat(),
            )
        console.print(table)


def main() -> None:
    app()


def _settings(*, detector: DetectorKind | None = None, upsample: int | None = None) -> Settings:
    settings = load_settings()
    detection: dict[str, Any] = {}
    if detector is not None:
        detection["kind"] = detector
    if upsample is not None:
        detection["upsample"] = upsample
    if detection:
        settings = settings.model_copy(
            update={"detection": settings.detection.model_copy(update=detection)}
        )
    return settings
