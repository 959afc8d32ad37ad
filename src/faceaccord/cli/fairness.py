"""``faceaccord fairness``: the demographic audit, and summary measures from published rates."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from faceaccord.biometrics.pipeline import Engine
from faceaccord.cli.galleries import opened
from faceaccord.cli.output import JsonOption, errors_reported, load_settings, print_json
from faceaccord.errors import InputError
from faceaccord.fairness.audit import AuditOptions, run_audit
from faceaccord.fairness.comparison import DEFAULT_FOLDS, compare_mitigations
from faceaccord.fairness.datasets import Dataset, dataset_sha256, load_dataset
from faceaccord.fairness.metrics import DEFAULT_ALPHA, summarize
from faceaccord.fairness.mitigation import ALIGN_FMR, calibrate, describe_methods
from faceaccord.fairness.report import render_html
from faceaccord.matching.normalisation import save_normaliser
from faceaccord.platform.fairness import embed_dataset, record_audit, start_audit
from faceaccord.protection.envelope import MasterKeySealer
from faceaccord.protection.keys import load_master_key
from faceaccord.settings import Settings

app = typer.Typer(help="Demographic fairness audits.", no_args_is_help=True)


@app.command("audit")
def audit(
    dataset: Annotated[
        Path, typer.Option(exists=True, help="Manifest CSV or a folder per person.")
    ],
    out: Annotated[Path, typer.Option(file_okay=False, help="Folder for report.json/.html.")],
    labels: Annotated[
        Path | None, typer.Option(exists=True, dir_okay=False, help="Labels per person (CSV).")
    ] = None,
    attributes: Annotated[
        str | None, typer.Option(help="Comma-separated label columns (default: categorical).")
    ] = None,
    label_method: Annotated[str | None, typer.Option(help="e.g. self-reported")] = None,
    target_fmr: Annotated[float, typer.Option(min=1e-9, max=0.5)] = 1e-3,
    deployed_threshold: Annotated[
        bool,
        typer.Option("--deployed-threshold", help="Audit at the operating point in use."),
    ] = False,
    bootstrap: Annotated[int, typer.Option(min=50, max=100_000)] = 1000,
    seed: Annotated[int, typer.Option()] = 20261122,
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0)] = DEFAULT_ALPHA,
    record: Annotated[
        bool, typer.Option("--record", help="Record it in the deployment (the gate reads it).")
    ] = False,
    workers: Annotated[int | None, typer.Option(min=1)] = None,
    compare: Annotated[
        str | None,
        typer.Option(
            help="Side by side with label-free score normalisations calibrated by "
            "cross-validation over people, e.g. none,fsn,cohort."
        ),
    ] = None,
    folds: Annotated[int, typer.Option(min=3, max=20, help="Folds for --compare.")] = (
        DEFAULT_FOLDS
    ),
    repeats: Annotated[
        int, typer.Option(min=1, max=50, help="Random splits into folds for --compare.")
    ] = 1,
    json_output: JsonOption = False,
) -> None:
    """Measure error rates per demographic group at one global threshold, with subject-level
    bootstrap confidence intervals; write report.json and a self-contained report.html. The
    score normaliser in force (if any) scores the pairs; --compare measures mitigations side by
    side instead."""
    with errors_reported(json_output):
        settings = load_settings()
        methods = _methods(compare) if compare else None
        if methods and record:
            raise InputError("--record records the deployment as it is; it cannot take --compare")
        data = load_dataset(
            dataset,
            labels=labels,
            attributes=[a.strip() for a in attributes.split(",")] if attributes else None,
            label_method=label_method,
        )
        if not data.attributes:
            raise InputError("no demographic attribute to audit: give --labels or --attributes")
        out.mkdir(parents=True, exist_ok=True)
        report = _measure(settings, data, out, target_fmr, deployed_threshold, bootstrap, seed,
                          alpha, record, workers, json_output, methods, folds,
                          repeats)  # fmt: skip
        html = out / "report.html"
        (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        html.write_text(render_html(report), encoding="utf-8")
        if json_output:
            print_json({"report": str(out / "report.json"), "html": str(html),
                        "threshold": report["threshold"], "summaries": _summaries(report),
                        "audit_id": report.get("audit_id"),
                        "comparison": _comparison_summary(report)})  # fmt: skip
        else:
            _print_summary(report, out)


@app.command("calibrate")
def calibrate_command(
    dataset: Annotated[
        Path,
        typer.Option(exists=True, help="A folder per person, or a manifest CSV (path, subject)."),
    ],
    out: Annotated[Path, typer.Option(dir_okay=False, help="The calibration file to write.")],
    method: Annotated[str, typer.Option(help="fsn (k-means clusters) or cohort.")] = "fsn",
    k: Annotated[
        int | None,
        typer.Option(
            min=1,
            max=256,
            help="Clusters (fsn) or nearest templates (cohort); "
            "default: chosen by label-free validation.",
        ),
    ] = None,
    target_fmr: Annotated[float, typer.Option(min=1e-6, max=0.5)] = ALIGN_FMR,
    seed: Annotated[int, typer.Option()] = 20261122,
    workers: Annotated[int | None, typer.Option(min=1)] = None,
    seal: Annotated[
        bool,
        typer.Option(
            help="Encrypt the arrays (templates, for cohort) under the deployment's "
            "master key; only that deployment can then load the file."
        ),
    ] = True,
    json_output: JsonOption = False,
) -> None:
    """Calibrate a label-free score normaliser on a dataset's images and who they show (no
    demographic label is read); load it with FACEACCORD_FAIRNESS__SCORE_NORMALISER."""
    with errors_reported(json_output):
        settings = load_settings()
        if method not in ("fsn", "cohort"):
            raise InputError(f"unknown method {method!r}: fsn or cohort")
        data = load_dataset(dataset, demographics=False)
        engine = Engine.load(settings)
        embeddings = embed_dataset(data, engine=engine,
                                   workers=workers or settings.worker_count())  # fmt: skip
        rows = [i for i, e in enumerate(embeddings) if e is not None]
        people = sorted({data.images[i].subject for i in rows})
        matrix = np.stack([np.asarray(embeddings[i], dtype=np.float64) for i in rows])
        subjects = np.array([people.index(data.images[i].subject) for i in rows], np.int64)
        try:
            normaliser = calibrate(
                method, matrix, subjects, model_id=engine.card.id,
                model_sha256=engine.card.sha256, data_sha256=dataset_sha256(data),
                now=datetime.now(UTC), parameter=k, target_fmr=target_fmr, seed=seed,
            )  # fmt: skip
        except ValueError as exc:
            raise InputError(f"cannot calibrate on {dataset}: {exc}") from None
        sealer = MasterKeySealer(load_master_key(settings)) if seal else None
        normaliser_id = save_normaliser(normaliser, out, sealer=sealer)
        document = {"file": str(out), "id": normaliser_id, **normaliser.describe(),
                    "images_without_a_face": len(embeddings) - len(rows),
                    "sealed_with": sealer.key_id if sealer else None}  # fmt: skip
        document["id"] = normaliser_id
        if json_output:
            print_json(document)
            return
        selection = document["selection"]
        console = Console()
        console.print(
            f"{normaliser_id}: {method} on {len(rows)} images of {len(people)} people "
            f"({selection['parameter']} = {selection['chosen']}, {selection['criterion']})"
        )
        console.print(f"written to {out}; set FACEACCORD_FAIRNESS__SCORE_NORMALISER={out}")
        if sealer is not None:
            console.print(f"its arrays are sealed with this deployment's master key "
                          f"({sealer.key_id}): only this deployment can load it")  # fmt: skip
        elif method == "cohort":
            console.print("note: an unsealed cohort calibration holds the calibration set's "
                          "templates in clear (biometric data, without names)")  # fmt: skip


@app.command("summarize")
def summarize_rates(
    rates: Annotated[
        Path, typer.Option(exists=True, dir_okay=False, help="CSV with columns group,fmr,fnmr.")
    ],
    alpha: Annotated[float, typer.Option(min=0.0, max=1.0)] = DEFAULT_ALPHA,
    json_output: JsonOption = False,
) -> None:
    """Summary measures (ratios, FDR, inequity rate, GARBE) from per-group rates someone else
    measured."""
    with errors_reported(json_output):
        groups, fmrs, fnmrs = _read_rates(rates)
        summary = summarize(fmrs, fnmrs, alpha=alpha)
        document = {
            "fmr_ratio": summary.fmr_ratio,
            "fnmr_ratio": summary.fnmr_ratio,
            "fdr": summary.fdr,
            "inequity_rate": summary.inequity_rate,
            "garbe": summary.garbe,
            "alpha": summary.alpha,
        }
        if json_output:
            print_json(document)
            return
        console = Console()
        console.print(f"{len(groups)} groups: {', '.join(groups)}")
        for key, value in document.items():
            console.print(f"  {key}: {value if value is not None else 'undefined'}")
        if summary.note:
            console.print(f"  note: {summary.note}")


def _measure(
    settings: Settings,
    data: Dataset,
    out: Path,
    target_fmr: float,
    deployed: bool,
    replicates: int,
    seed: int,
    alpha: float,
    record: bool,
    workers: int | None,
    quiet: bool,
    methods: list[str] | None = None,
    folds: int = DEFAULT_FOLDS,
    repeats: int = 1,
) -> dict[str, object]:
    with opened() as platform:
        actor = settings.resolved_actor()
        audit_id = (
            start_audit(platform, dataset=data.name, actor=actor, organisation_id=None)
            if record
            else None
        )
        progress = Progress(
            TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
            TimeRemainingColumn(), console=Console(stderr=True), disable=quiet,
        )  # fmt: skip
        try:
            with progress:
                task = progress.add_task("embedding", total=len(data.images))
                embeddings = embed_dataset(
                    data, engine=platform.engine, workers=workers or settings.worker_count(),
                    advance=lambda: progress.advance(task),
                )  # fmt: skip
                progress.update(task, description="measuring")
                engine = platform.engine
                options = AuditOptions(
                    target_fmr=target_fmr,
                    deployed=engine.operating_point if deployed else None,
                    replicates=replicates, seed=seed, alpha=alpha,
                )  # fmt: skip
                say = lambda message: progress.update(task, description=message)  # noqa: E731
                if methods:
                    comparison = compare_mitigations(
                        data, embeddings=embeddings, card=engine.card, options=options,
                        methods=methods, folds=folds, repeats=repeats, progress=say,
                        now=platform.clock(),
                    )  # fmt: skip
                    report = dict(comparison["reports"][methods[0]])
                    report["comparison"] = comparison
                else:
                    report = run_audit(
                        data, embeddings=embeddings, card=engine.card, options=options,
                        progress=say, now=platform.clock(), normaliser=platform.normaliser,
                    )  # fmt: skip
        except Exception as error:
            if audit_id:
                record_audit(platform, audit_id=audit_id, report=None, actor=actor,
                             organisation_id=None, error=str(error))  # fmt: skip
            raise
        if audit_id:
            record_audit(platform, audit_id=audit_id, report=report, actor=actor,
                         organisation_id=None)  # fmt: skip
            report["audit_id"] = audit_id
        return report


def _methods(compare: str) -> list[str]:
    try:
        methods = describe_methods(compare.split(","))
    except ValueError as exc:
        raise InputError(str(exc)) from None
    if len(methods) < 2:
        raise InputError("--compare needs at least two methods, e.g. none,fsn")
    return methods


def _comparison_summary(report: dict[str, object]) -> dict[str, object] | None:
    comparison = report.get("comparison")
    if not isinstance(comparison, dict):
        return None
    table = comparison["table"]
    return {
        "overall": table["overall"],
        "summaries": {
            attribute: {method: data["summary"] for method, data in per_method.items()}
            for attribute, per_method in table["attributes"].items()
        },
    }


def _summaries(report: dict[str, object]) -> dict[str, object]:
    attributes = report["attributes"]
    assert isinstance(attributes, dict)
    return {name: data["summary"] for name, data in attributes.items()}


def _print_summary(report: dict[str, object], out: Path) -> None:
    console = Console()
    threshold = report["threshold"]
    assert isinstance(threshold, dict)
    console.print(f"threshold {threshold['value']:.4f}: {threshold['method']}")
    attributes = report["attributes"]
    assert isinstance(attributes, dict)
    for name, data in attributes.items():
        console.print(f"[bold]{name}[/bold]")
        for group, cell in data["groups"].items():
            fmr, fnmr = cell["fmr"], cell["fnmr"]
            bound = fmr["upper_bound_if_zero"]
            low, high = fmr["ci95"]
            console.print(
                f"  {group:<18} {cell['subjects']:>4} people  FMR {_percent(fmr['value'])} "
                f"(95% CI {_percent(low)}-{_percent(high)}"
                + (f"; 0 errors: at most {bound:.3%}" if bound else "")
                + f")  FNMR {_percent(fnmr['value'])}"
            )
        summary = data["summary"]
        if summary:
            console.print(
                f"  FMR ratio {_ratio(summary['fmr_ratio'])}, "
                f"FNMR ratio {_ratio(summary['fnmr_ratio'])}, GARBE {summary['garbe']:.3f}"
            )
    comparison = report.get("comparison")
    if isinstance(comparison, dict):
        _print_comparison(console, comparison)
    console.print(f"report: {out / 'report.html'}")


def _print_comparison(console: Console, comparison: dict[str, object]) -> None:
    table = comparison["table"]
    assert isinstance(table, dict)
    console.print(f"[bold]side by side[/bold] ({comparison['folds']}-fold cross-validation "
                  "over people)")  # fmt: skip
    for method, overall in table["overall"].items():
        console.print(
            f"  {method:<7} threshold {overall['threshold']:.4f}: FMR {_percent(overall['fmr'])}"
            f", TMR {_percent(overall['tmr'])}, TMR at the target FMR "
            f"{_percent(overall['tmr_at_target_fmr'])}"
        )
    for attribute, per_method in table["attributes"].items():
        console.print(f"  [bold]{attribute}[/bold]")
        for method, data in per_method.items():
            rates = ", ".join(
                f"{group} {_percent(cell['fmr']['value'])}"
                for group, cell in data["groups"].items()
            )
            summary = data["summary"] or {}
            spread = table["splits"][method][attribute]["fmr_ratio"]
            over = (
                f" (median over {len(spread['values'])} splits {_ratio(spread['median'])}, "
                f"{_ratio(spread['min'])}-{_ratio(spread['max'])})"
                if len(spread["values"]) > 1
                else ""
            )
            console.print(
                f"    {method:<7} FMR {rates}; FMR ratio {_ratio(summary.get('fmr_ratio'))}"
                f"{over}, GARBE {summary.get('garbe', float('nan')):.3f}"
            )


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3%}"


def _ratio(value: float | None) -> str:
    return "undefined (a group has no errors)" if value is None else f"{value:.3g}"


def _read_rates(path: Path) -> tuple[list[str], list[float], list[float]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise InputError(f"cannot read {path}: {exc}") from None
    if not rows or not {"group", "fmr", "fnmr"} <= set(rows[0]):
        raise InputError(f"{path} needs the columns group,fmr,fnmr")
    groups, fmrs, fnmrs = [], [], []
    for number, row in enumerate(rows, start=2):
        try:
            fmr, fnmr = float(row["fmr"]), float(row["fnmr"])
        except (TypeError, ValueError):
            raise InputError(f"{path}:{number}: fmr and fnmr must be numbers") from None
        if not (0 <= fmr <= 1 and 0 <= fnmr <= 1):
            raise InputError(f"{path}:{number}: rates are fractions between 0 and 1")
        groups.append(row["group"])
        fmrs.append(fmr)
        fnmrs.append(fnmr)
    if len(groups) < 2:
        raise InputError(f"{path}: summary measures need at least two groups")
    return groups, fmrs, fnmrs
