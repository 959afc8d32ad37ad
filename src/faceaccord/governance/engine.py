"""The policy engine: Cedar (``cedarpy``) over the packs in force.

For each request it picks the packs that apply (in force in this deployment, in date, and in
the jurisdiction of the organisation, the subject or the place, as each pack's manifest says),
asks Cedar, and turns Cedar's answer into a ``Decision``:

- Cedar denies when any ``forbid`` matches (a deny in one pack beats an allow in another); the
  reasons are every rule whose forbid matched.
- Otherwise the core pack's base ``permit`` allows; the reasons are the rules whose permits
  matched, and the obligations are the ``@obligations`` of those permits, strictest merged.
- Any evaluation error fails closed: the request is denied, naming the failing policy.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import date
from typing import Any

import cedarpy

from faceaccord.errors import PolicyPackError
from faceaccord.governance.decisions import Decision, Effect, RuleReference
from faceaccord.governance.entities import DeploymentSettings, Organisation, PolicyRequest
from faceaccord.governance.obligations import Obligation, merge_obligations
from faceaccord.governance.packs import (
    CORE_PACK,
    Pack,
    Policy,
    Scope,
    load_pack,
    load_schema,
    load_shipped_packs,
    policy_set_json,
)
from faceaccord.governance.vocabulary import Jurisdiction
from faceaccord.settings import PolicySettings

__all__ = ["PolicyEngine"]


class PolicyEngine:
    def __init__(
        self,
        *,
        packs: Sequence[Pack],
        deployment: DeploymentSettings,
        schema: cedarpy.Schema,
        validate_requests: bool = False,
    ) -> None:
        """``validate_requests`` also checks each request against the schema (slower; the
        tests use it). Without it a malformed request still fails closed, as an evaluation
        error."""
        by_id = {pack.id: pack for pack in packs}
        if len(by_id) != len(packs):
            raise PolicyPackError("two packs have the same id")
        if CORE_PACK not in by_id:
            raise PolicyPackError(f"the {CORE_PACK!r} pack is required")
        wanted = deployment.packs if deployment.packs is not None else tuple(by_id)
        unknown = sorted(set(wanted) - set(by_id))
        if unknown:
            raise PolicyPackError(
                f"unknown pack(s) {', '.join(unknown)}; available: {', '.join(sorted(by_id))}"
            )
        self.available = by_id
        # Core first, then the packs in the order the deployment lists them.
        self.in_force = tuple(by_id[p] for p in dict.fromkeys((CORE_PACK, *wanted)))
        self.deployment = deployment
        self._schema = schema
        self._request_schema = schema if validate_requests else None
        self._policies = {p.id: p for pack in self.in_force for p in pack.policies}
        self._order = {policy_id: n for n, policy_id in enumerate(self._policies)}
        self._sets: dict[tuple[str, ...], cedarpy.PolicySet] = {}
        self._entity_cache: dict[Organisation, cedarpy.Entities] = {}

    @classmethod
    def load(
        cls,
        deployment: DeploymentSettings | None = None,
        *,
        extra_packs: Sequence[Any] = (),
        validate_requests: bool = False,
    ) -> PolicyEngine:
        """The shipped packs plus any pack folders given, under ``deployment``."""
        schema = load_schema()
        packs = load_shipped_packs(schema)
        for folder in extra_packs:
            pack = load_pack(folder, schema=schema)
            if pack.id in packs:
                raise PolicyPackError(
                    f"{folder}: pack id {pack.id!r} is already taken; an operator's pack may add "
                    "rules but never replace a shipped pack"
                )
            packs[pack.id] = pack
        return cls(
            packs=list(packs.values()),
            deployment=deployment or DeploymentSettings(),
            schema=schema,
            validate_requests=validate_requests,
        )

    @classmethod
    def from_settings(
        cls,
        settings: PolicySettings,
        *,
        packs: Sequence[str] | None = None,
        national_law: str | None = None,
        fairness_audit: str | None = None,
        log_retention_days: int | None = None,
    ) -> PolicyEngine:
        """The engine the deployment's settings describe; arguments given here override them."""
        chosen = packs if packs is not None else settings.packs
        return cls.load(
            DeploymentSettings(
                packs=tuple(chosen) if chosen is not None else None,
                national_law=national_law or settings.national_law,
                fairness_audit=fairness_audit or settings.fairness_audit,
                log_retention_days=(
                    log_retention_days
                    if log_retention_days is not None
                    else settings.log_retention_days
                ),
            ),
            extra_packs=settings.pack_dirs,
        )

    def applicable_packs(self, request: PolicyRequest) -> list[Pack]:
        day = request.on or date.today()
        return [
            pack
            for pack in self.in_force
            if pack.id == CORE_PACK or (pack.in_force_on(day) and _in_scope(pack, request))
        ]

    def decide(self, request: PolicyRequest) -> Decision:
        day = request.on or date.today()
        packs = self.applicable_packs(request)
        policies = [
            policy
            for pack in packs
            for policy in pack.policies
            if policy.rule.effective_from is None or policy.rule.effective_from <= day
        ]
        result = cedarpy.is_authorized(
            _cedar_request(request, self.deployment),
            self._policy_set(policies),
            self._entities(request.organisation),
            self._request_schema,
        )
        pack_ids = tuple(p.id for p in packs)
        errors = result.diagnostics.errors
        if errors:
            return Decision(
                effect=Effect.DENY,
                obligations=(),
                reasons=(
                    RuleReference(
                        rule="POLICY-ERROR",
                        pack=CORE_PACK,
                        summary=f"a policy could not be evaluated, so the request fails closed: "
                        f"{'; '.join(str(e) for e in errors)}",
                        source="faceaccord: fail closed",
                    ),
                ),
                packs=pack_ids,
            )
        matched = sorted(
            (self._policies[policy_id] for policy_id in result.diagnostics.reasons),
            key=lambda p: self._order[p.id],
        )
        if result.allowed:
            obligations: list[Obligation] = [o for p in matched for o in p.obligations]
            return Decision(
                effect=Effect.ALLOW,
                obligations=merge_obligations(obligations),
                reasons=_references(matched),
                packs=pack_ids,
            )
        return Decision(
            effect=Effect.DENY, obligations=(), reasons=_references(matched), packs=pack_ids
        )

    def _entities(self, organisation: Organisation) -> cedarpy.Entities:
        """Parsed once per organisation (organisations are immutable values). Parsing with the
        schema adds the action entities and their groups (``verify`` in ``recognise``); without
        them ``action in Action::"recognise"`` would silently never match."""
        cached = self._entity_cache.get(organisation)
        if cached is None:
            if len(self._entity_cache) >= 4096:
                self._entity_cache.clear()
            cached = cedarpy.Entities.from_json_str(
                json.dumps(_cedar_entities(organisation)), self._schema
            )
            self._entity_cache[organisation] = cached
        return cached

    def _policy_set(self, policies: list[Policy]) -> cedarpy.PolicySet:
        key = tuple(p.id for p in policies)
        cached = self._sets.get(key)
        if cached is None:
            cached = cedarpy.PolicySet.from_json_str(policy_set_json(policies))
            self._sets[key] = cached
        return cached


def _references(policies: list[Policy]) -> tuple[RuleReference, ...]:
    seen: dict[tuple[str, str], RuleReference] = {}
    for policy in policies:
        seen.setdefault(
            (policy.pack, policy.rule.id),
            RuleReference(
                rule=policy.rule.id,
                pack=policy.pack,
                summary=policy.rule.summary,
                source=policy.rule.source,
            ),
        )
    return tuple(seen.values())


def _in_scope(pack: Pack, request: PolicyRequest) -> bool:
    organisation, context = request.organisation, request.context
    places: list[Jurisdiction] = []
    if Scope.ORGANISATION in pack.applies_to:
        places.append(organisation.jurisdiction)
        if organisation.acts_for_jurisdiction is not None:
            places.append(organisation.acts_for_jurisdiction)
    if Scope.SUBJECT in pack.applies_to and context.subject_jurisdiction is not None:
        places.append(context.subject_jurisdiction)
    if Scope.LOCATION in pack.applies_to and context.location is not None:
        places.append(context.location)
    return any(place.within(scope) for place in places for scope in pack.jurisdictions)


def _cedar_request(request: PolicyRequest, deployment: DeploymentSettings) -> dict[str, Any]:
    return {
        "principal": {"type": "Organisation", "id": request.organisation.id},
        "action": {"type": "Action", "id": str(request.operation)},
        "resource": {"type": "Purpose", "id": str(request.purpose)},
        "context": _cedar_context(request, deployment),
    }


def _cedar_entities(org: Organisation) -> list[dict[str, Any]]:
    acts_for = org.acts_for_jurisdiction
    return [
        {
            "uid": {"type": "Organisation", "id": org.id},
            "attrs": {
                "sector": str(org.sector),
                "country": org.jurisdiction.country,
                "subdivision": org.jurisdiction.subdivision or "",
                "locality": org.jurisdiction.locality or "",
                "in_eu": org.jurisdiction.in_eu,
                "status": str(org.status),
                "approved_purposes": [
                    {"__entity": {"type": "Purpose", "id": str(p)}}
                    for p in sorted(org.approved_purposes)
                ],
                "scale_tier": int(org.scale_tier),
                "acts_for_sector": str(org.acts_for_sector or ""),
                "acts_for_country": acts_for.country if acts_for else "",
                "acts_for_locality": (acts_for.locality or "") if acts_for else "",
            },
            "parents": [],
        }
    ]


def _cedar_context(request: PolicyRequest, deployment: DeploymentSettings) -> dict[str, Any]:
    ctx, org = request.context, request.organisation
    subject, location = ctx.subject_jurisdiction, ctx.location
    return {
        "realtime": ctx.realtime,
        "public_space": ctx.public_space,
        "authorisation": str(ctx.authorisation.type) if ctx.authorisation else "",
        "emergency": ctx.emergency,
        "subject_may_be_minor": ctx.subject_may_be_minor,
        "reviewers": -1 if ctx.reviewers is None else ctx.reviewers,
        "subject_country": subject.country if subject else "",
        "subject_subdivision": (subject.subdivision or "") if subject else "",
        "subject_in_eu": subject.in_eu if subject else False,
        "location_country": location.country if location else "",
        "location_subdivision": (location.subdivision or "") if location else "",
        "location_locality": (location.locality or "") if location else "",
        "consent": str(ctx.consent),
        "notice_given": ctx.notice_given,
        "data_source": str(ctx.data_source),
        "capture_device": str(ctx.capture_device),
        "requested_tier": int(ctx.requested_tier or org.scale_tier),
        "targeted": ctx.targeted,
        "export_recipient": str(ctx.export_recipient),
        "disclosure_basis": str(ctx.disclosure_basis or ""),
        "legal_requirement": ctx.legal_requirement,
        "own_device": ctx.own_device,
        "medical_or_safety": ctx.medical_or_safety,
        "legal_ground": str(ctx.legal_ground or ""),
        "consent_withdrawn": ctx.consent_withdrawn,
        "purpose_ended": ctx.purpose_ended,
        "retention_policy_published": org.retention_policy is not None,
        "accountability_report": org.accountability_report is not None,
        "fairness_gate_failed": ctx.fairness_gate_failed,
        "national_law_attested": deployment.national_law is not None,
        "fairness_audit": deployment.fairness_audit is not None,
        "log_retention_days": (
            -1 if deployment.log_retention_days is None else deployment.log_retention_days
        ),
    }
