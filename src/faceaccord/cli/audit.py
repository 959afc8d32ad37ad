"""``faceaccord audit`` and ``faceaccord report``: check, export and checkpoint the
tamper-evident log; write the accountability report."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from sqlalchemy.orm import Session

from faceaccord.audit.log import AuditEvent
from faceaccord.audit.reports import render_html
from faceaccord.cli.galleries import opened
from faceaccord.cli.output import JsonOption, errors_reported, print_json
from faceaccord.errors import InputError
from faceaccord.platform.organisations import required_log_retention_days

audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
report_app = typer.Typer(help="Reports.", no_args_is_help=True)
OutOption = Annotated[Path, typer.Option("--out", dir_okay=False, help="File to write.")]


@audit_app.command("verify")
def audit_verify(json_output: JsonOption = False) -> None:
    """Recompute the hash chain and check every signed checkpoint. Exits 1 if tampered."""
    with errors_reported(json_output), opened() as platform, Session(platform.db) as session:
        result = platform.audit.verify(session)
        if json_output:
            print_json(result.as_dict())
        elif result.ok:
            Console().print(f"audit log intact: {result.entries} entries verified")
        else:
            Console().print(
                f"[red]audit log TAMPERED[/red] at entry {result.first_bad}: {result.reason}"
            )
        if not result.ok:
            raise typer.Exit(1)


@audit_app.command("export")
def audit_export(out: OutOption, json_output: JsonOption = False) -> None:
    """Write every entry as JSON lines."""
    with errors_reported(json_output), opened() as platform, Session(platform.db) as session:
        _check_out(out)
        with out.open("w", encoding="utf-8") as sink:
            count = platform.audit.export(session, sink)
        if json_output:
            print_json({"entries": count, "out": str(out)})
        else:
            Console().print(f"{count} entries written to {out}")


@audit_app.command("checkpoint")
def audit_checkpoint(json_output: JsonOption = False) -> None:
    """Sign the chain's current head now (also done every N entries)."""
    with errors_reported(json_output), opened() as platform, platform.transaction() as session:
        row = platform.audit.checkpoint(session)
        document = (
            {"seq": row.seq, "hash": row.hash, "key_id": row.key_id} if row is not None else None
        )
        if json_output:
            print_json({"checkpoint": document})
        else:
            Console().print(f"checkpoint: {document or 'nothing new to sign'}")


@audit_app.command("prune")
def audit_prune(
    before: Annotated[
        datetime, typer.Option(formats=["%Y-%m-%d"], help="Delete entries older than this.")
    ],
    json_output: JsonOption = False,
) -> None:
    """Delete old entries, never inside the retention the packs require (at least six months
    where the EU AI Act applies) or the deployment sets; the pruning itself is recorded."""
    with errors_reported(json_output), opened() as platform, platform.transaction() as session:
        keep_days = required_log_retention_days(platform)
        try:
            deleted = platform.audit.prune(
                session, before=before.replace(tzinfo=UTC), keep_days=keep_days,
                now=platform.clock(),
            )  # fmt: skip
        except ValueError as exc:
            raise InputError(str(exc)) from None
        platform.record(
            session,
            AuditEvent(
                actor=platform.settings.resolved_actor(),
                organisation_id=platform.organisation.id,
                operation="audit_prune",
                decision="done",
                details={
                    "deleted": deleted,
                    "before": before.date().isoformat(),
                    "keep_days": keep_days,
                },
            ),
        )
        if json_output:
            print_json({"deleted": deleted, "keep_days": keep_days})
        else:
            Console().print(f"{deleted} entries pruned; the last {keep_days} days are kept")


@report_app.command("accountability")
def report_accountability(out: OutOption, json_output: JsonOption = False) -> None:
    """Write the accountability report (model and limits, rules in force, use) as HTML."""
    with errors_reported(json_output), opened() as platform:
        _check_out(out)
        report = platform.accountability_report()
        out.write_text(render_html(report), encoding="utf-8")
        if json_output:
            print_json({"out": str(out), "audit_entries": report.audit_entries})
        else:
            Console().print(f"accountability report written to {out}")


def _check_out(out: Path) -> None:
    if not out.parent.is_dir():
        raise InputError(f"the folder for --out does not exist: {out.parent}")
