"""``faceaccord fairness``: the demographic audit, and summary measures from published rates."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from faceaccord.cli.galleries import opened
from faceaccord.cli.output import JsonOption, errors_reported, load_settings, print_json
from faceaccord.errors import InputError
from faceaccord.fairness.audit import AuditOptions, run_audit
from faceaccord.fairness.datasets import Dataset, load_dataset
from faceaccord.fairness.metrics import DEFAULT_ALPHA, summarize
from faceaccord.fairness.report import render_html
from faceaccord.platform.fairness import embed_dataset, record_audit, start_audit
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
    json_output: JsonOption = False,
) -> None:
    """Measure error rates per demographic group at one global threshold, with subject-level
    bootstrap confidence intervals; write report.json and a self-contained report.html."""
    with errors_reported(json_output):
        settings = load_settings()
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
                          alpha, record, workers, json_output)  # fmt: skip
        html = out / "report.html"
        (out / "report.json").write_text(json.dumps(report, indent=2), encoding="utf-8")
        html.write_text(render_html(report), encoding="utf-8")
        if json_output:
            print_json({"report": str(out / "report.json"), "html": str(html),
                        "threshold": report["threshold"], "summaries": _summaries(report),
                        "audit_id": report.get("audit_id")})  # fmt: skip
        else:
            _print_summary(report, out)


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
                report = run_audit(
                    data, embeddings=embeddings, card=engine.card,
                    options=AuditOptions(
                        target_fmr=target_fmr,
                        deployed=engine.operating_point if deployed else None,
                        replicates=replicates, seed=seed, alpha=alpha,
                    ),
                    progress=lambda message: progress.update(task, description=message),
                    now=platform.clock(),
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
    console.print(f"report: {out / 'report.html'}")


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
