"""``faceaccord policy``: the packs in force, and a dry-run decision for any request."""

from __future__ import annotations

import datetime
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from faceaccord.cli.output import JsonOption, errors_reported, load_settings, print_json
from faceaccord.errors import ConfigurationError
from faceaccord.governance.decisions import Decision
from faceaccord.governance.engine import PolicyEngine
from faceaccord.governance.entities import (
    Authorisation,
    Organisation,
    OrganisationStatus,
    PolicyRequest,
    RequestContext,
    ScaleTier,
)
from faceaccord.governance.obligations import obligation_json
from faceaccord.governance.packs import Pack
from faceaccord.governance.vocabulary import (
    CaptureDevice,
    ConsentKind,
    DataSource,
    DisclosureBasis,
    ExportRecipient,
    Jurisdiction,
    LegalGround,
    Operation,
    Purpose,
    Sector,
)
from faceaccord.settings import Settings

app = typer.Typer(help="Policy packs and decisions.", no_args_is_help=True)
T = TypeVar("T")


def _parser(build: Callable[[str], T]) -> Callable[[str | None], T | None]:
    def parse(value: str | None) -> T | None:
        if value is None:
            return None
        try:
            return build(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None

    return parse


JurisdictionOption = Annotated[
    Jurisdiction | None,
    typer.Option(
        parser=_parser(Jurisdiction.parse), metavar="CODE", help="e.g. US-IL, DE, US-OR/portland"
    ),
]
PacksOption = Annotated[
    str | None, typer.Option("--packs", help="Comma-separated pack ids (default: settings).")
]
NationalLawOption = Annotated[
    str | None,
    typer.Option(help="Attest, by reference, that a qualifying national law is in force."),
]


@app.command("packs")
def list_packs(json_output: JsonOption = False) -> None:
    """List the packs and their rules."""
    with errors_reported(json_output):
        engine = _policy_engine(load_settings())
        packs = list(engine.available.values())
        if json_output:
            print_json({"packs": [_pack_json(p, p in engine.in_force) for p in packs]})
            return
        table = Table("pack", "version", "in force", "jurisdictions", "rules")
        for pack in packs:
            table.add_row(
                f"{pack.id}\n{pack.title}",
                pack.version,
                "yes" if pack in engine.in_force else "no",
                ", ".join(pack.jurisdictions),
                ", ".join(r.id for r in pack.rules),
            )
        Console().print(table)


@app.command("show")
def show_pack(pack_id: str, json_output: JsonOption = False) -> None:
    """Print one pack: its rules with their sources, and its Cedar policies."""
    with errors_reported(json_output):
        engine = _policy_engine(load_settings())
        pack = engine.available.get(pack_id)
        if pack is None:
            known = ", ".join(engine.available)
            raise ConfigurationError(f"no pack {pack_id!r}; the packs are: {known}")
        if json_output:
            print_json(_pack_json(pack, pack in engine.in_force, with_policies=True))
            return
        console = Console()
        console.print(
            f"[bold]{pack.id}[/bold] {pack.version}: {pack.title}\n"
            f"effective from {pack.effective_from}; applies where the "
            f"{' or '.join(pack.applies_to)} is in {', '.join(pack.jurisdictions)}"
        )
        for rule in pack.rules:
            console.print(f"\n[bold]{rule.id}[/bold]  {rule.summary}\n  source: {rule.source}")
            for policy in (p for p in pack.policies if p.rule.id == rule.id):
                obligations = ", ".join(o.type for o in policy.obligations)
                console.print(
                    f"  {policy.effect} at {Path(policy.location).name}"
                    + (f" with obligations: {obligations}" if obligations else ""),
                    highlight=False,
                )


@app.command("check")
def check(
    sector: Annotated[Sector, typer.Option(help="The organisation's sector.")],
    jurisdiction: Annotated[
        Jurisdiction,
        typer.Option(parser=_parser(Jurisdiction.parse), metavar="CODE", help="Where it is."),
    ],
    operation: Annotated[Operation, typer.Option()],
    purpose: Annotated[Purpose, typer.Option()],
    json_output: JsonOption = False,
    realtime: Annotated[bool, typer.Option("--realtime", help="Real-time, not post.")] = False,
    public_space: Annotated[bool, typer.Option("--public-space")] = False,
    authorisation: Annotated[
        Authorisation | None,
        typer.Option(parser=_parser(Authorisation.parse), metavar="TYPE:REF"),
    ] = None,
    emergency: Annotated[bool, typer.Option("--emergency")] = False,
    reviewers: Annotated[int | None, typer.Option(min=0, help="Reviewers assigned.")] = None,
    consent: Annotated[ConsentKind, typer.Option()] = ConsentKind.NONE,
    national_law: NationalLawOption = None,
    packs: PacksOption = None,
    subject_jurisdiction: JurisdictionOption = None,
    location: JurisdictionOption = None,
    status: Annotated[OrganisationStatus, typer.Option()] = OrganisationStatus.APPROVED,
    approved_purposes: Annotated[
        str | None, typer.Option(help="Comma-separated; default: the purpose asked for.")
    ] = None,
    scale_tier: Annotated[str, typer.Option(help="The approved tier.")] = "small",
    requested_tier: Annotated[str | None, typer.Option(help="The tier the use needs.")] = None,
    acts_for: Annotated[Sector | None, typer.Option(help="Acts for a body of this sector.")] = None,
    acts_for_jurisdiction: JurisdictionOption = None,
    data_source: Annotated[DataSource, typer.Option()] = DataSource.CONSENTED_CAPTURE,
    device: Annotated[CaptureDevice, typer.Option()] = CaptureDevice.FIXED,
    minor: Annotated[bool, typer.Option("--minor", help="The subject may be a minor.")] = False,
    notice: Annotated[bool, typer.Option("--notice", help="Notice was given.")] = False,
    untargeted: Annotated[bool, typer.Option("--untargeted")] = False,
    export_to: Annotated[ExportRecipient, typer.Option()] = ExportRecipient.NONE,
    disclosure_basis: Annotated[DisclosureBasis | None, typer.Option()] = None,
    legal_ground: Annotated[LegalGround | None, typer.Option()] = None,
    own_device: Annotated[bool, typer.Option("--own-device")] = False,
    legal_requirement: Annotated[bool, typer.Option("--legal-requirement")] = False,
    medical_or_safety: Annotated[bool, typer.Option("--medical-or-safety")] = False,
    consent_withdrawn: Annotated[bool, typer.Option("--consent-withdrawn")] = False,
    purpose_ended: Annotated[bool, typer.Option("--purpose-ended")] = False,
    retention_policy: Annotated[str | None, typer.Option(metavar="REF")] = None,
    accountability_report: Annotated[str | None, typer.Option(metavar="REF")] = None,
    fairness_audit: Annotated[str | None, typer.Option(metavar="REF")] = None,
    log_retention_days: Annotated[int | None, typer.Option(min=0)] = None,
    on: Annotated[
        datetime.datetime | None, typer.Option(formats=["%Y-%m-%d"], help="Evaluate as of.")
    ] = None,
) -> None:
    """Decide a request without doing it: allow or deny, obligations, and the rules why."""
    with errors_reported(json_output):
        settings = load_settings()
        try:
            purposes = (
                frozenset(Purpose(p.strip()) for p in approved_purposes.split(",") if p.strip())
                if approved_purposes is not None
                else frozenset({purpose})
            )
            tier = ScaleTier.parse(scale_tier)
            needed = ScaleTier.parse(requested_tier) if requested_tier else None
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        organisation = Organisation(
            id="cli-organisation",
            name="the organisation described on the command line",
            sector=sector,
            jurisdiction=jurisdiction,
            status=status,
            approved_purposes=purposes,
            scale_tier=tier,
            acts_for_sector=acts_for,
            acts_for_jurisdiction=acts_for_jurisdiction,
            retention_policy=retention_policy,
            accountability_report=accountability_report,
        )
        context = RequestContext(
            realtime=realtime,
            public_space=public_space,
            authorisation=authorisation,
            emergency=emergency,
            subject_may_be_minor=minor,
            reviewers=reviewers,
            subject_jurisdiction=subject_jurisdiction,
            location=location,
            consent=consent,
            notice_given=notice,
            data_source=data_source,
            capture_device=device,
            requested_tier=needed,
            targeted=not untargeted,
            export_recipient=export_to,
            disclosure_basis=disclosure_basis,
            legal_requirement=legal_requirement,
            own_device=own_device,
            medical_or_safety=medical_or_safety,
            legal_ground=legal_ground,
            consent_withdrawn=consent_withdrawn,
            purpose_ended=purpose_ended,
        )
        engine = _policy_engine(
            settings,
            packs=packs,
            national_law=national_law,
            fairness_audit=fairness_audit,
            log_retention_days=log_retention_days,
        )
        decision = engine.decide(
            PolicyRequest(
                organisation=organisation,
                operation=operation,
                purpose=purpose,
                context=context,
                on=on.date() if on else None,
            )
        )
        if json_output:
            print_json(decision.as_dict())
        else:
            print_decision(decision, Console())


def print_decision(decision: Decision, console: Console) -> None:
    colour = "green" if decision.allowed else "red"
    console.print(
        f"[bold {colour}]{decision.outcome.upper()}[/bold {colour}]  "
        f"(packs applied: {', '.join(decision.packs)})"
    )
    for reason in decision.reasons:
        console.print(
            f"  [bold]{reason.rule}[/bold] ({reason.pack}): {reason.summary}\n"
            f"    source: {reason.source}",
            highlight=False,
        )
    for obligation in decision.obligations:
        details = ", ".join(
            f"{k}={v}" for k, v in obligation_json(obligation).items() if k != "type"
        )
        console.print(f"  obligation: {obligation.type}" + (f" ({details})" if details else ""))


def policy_engine_from(settings: Settings) -> PolicyEngine:
    return _policy_engine(settings)


def _policy_engine(
    settings: Settings,
    *,
    packs: str | None = None,
    national_law: str | None = None,
    fairness_audit: str | None = None,
    log_retention_days: int | None = None,
) -> PolicyEngine:
    return PolicyEngine.from_settings(
        settings.policy,
        packs=[p.strip() for p in packs.split(",") if p.strip()] if packs else None,
        national_law=national_law,
        fairness_audit=fairness_audit,
        log_retention_days=log_retention_days,
    )


def _pack_json(pack: Pack, in_force: bool, *, with_policies: bool = False) -> dict[str, Any]:
    document: dict[str, Any] = {
        "id": pack.id,
        "title": pack.title,
        "version": pack.version,
        "in_force": in_force,
        "effective_from": pack.effective_from.isoformat(),
        "effective_until": pack.effective_until.isoformat() if pack.effective_until else None,
        "jurisdictions": list(pack.jurisdictions),
        "applies_to": [str(s) for s in pack.applies_to],
        "rules": [
            {
                "id": r.id,
                "summary": r.summary,
                "source": r.source,
                "effective_from": r.effective_from.isoformat() if r.effective_from else None,
                "lifted_by_national_law": r.lifted_by_national_law,
            }
            for r in pack.rules
        ],
    }
    if with_policies:
        document["policies"] = [
            {
                "id": p.id,
                "rule": p.rule.id,
                "effect": p.effect,
                "location": p.location,
                "obligations": [obligation_json(o) for o in p.obligations],
            }
            for p in pack.policies
        ]
    return document
