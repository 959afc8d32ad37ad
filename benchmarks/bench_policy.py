"""Policy decisions per second and their latency, beside bare Cedar on the same request.

Three ways to decide the same realistic request (an EU police force's real-time search for a
missing person in a public space, under emergency, with every shipped pack in force, so that
four packs apply and the answer is an allow with six merged obligations):

1. faceaccord: ``PolicyEngine.decide`` (pack selection by jurisdiction and date, entity and
   context building, Cedar, reasons and obligations).
2. bare Cedar, pre-parsed: ``cedarpy.is_authorized`` with the same policy set and entities as
   handles parsed once, and no request validation (as faceaccord decides): the floor any
   Cedar-based engine pays.
3. bare Cedar, naive: the same call given the policies and schema as text each time, as a
   straightforward integration would.

Latencies are per decision, one at a time, on one thread; p50 and p99 over all timed calls.

    .venv/bin/python benchmarks/bench_policy.py [--short]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable
from datetime import date
from typing import Any

import cedarpy

from faceaccord.governance import engine as engine_module
from faceaccord.governance.engine import PolicyEngine
from faceaccord.governance.entities import (
    DeploymentSettings,
    Organisation,
    OrganisationStatus,
    PolicyRequest,
    RequestContext,
)
from faceaccord.governance.packs import policy_set_json
from faceaccord.governance.vocabulary import Jurisdiction, Operation, Purpose, Sector


def realistic_request() -> PolicyRequest:
    police = Organisation(
        id="bundespolizei",
        name="an EU police force",
        sector=Sector.POLICE,
        jurisdiction=Jurisdiction.parse("DE"),
        status=OrganisationStatus.APPROVED,
        approved_purposes=frozenset({Purpose.MISSING_PERSONS, Purpose.CRIMINAL_INVESTIGATION}),
    )
    return PolicyRequest(
        organisation=police,
        operation=Operation.IDENTIFY,
        purpose=Purpose.MISSING_PERSONS,
        context=RequestContext(
            realtime=True,
            public_space=True,
            emergency=True,
            reviewers=2,
            subject_jurisdiction=Jurisdiction.parse("FR"),
        ),
        on=date(2026, 11, 22),
    )


def timed(call: Callable[[], Any], seconds: float) -> list[float]:
    for _ in range(50):  # warm-up
        call()
    latencies: list[float] = []
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        start = time.perf_counter_ns()
        call()
        latencies.append((time.perf_counter_ns() - start) / 1e3)
    return latencies


def summary(latencies_us: list[float]) -> dict[str, float]:
    ordered = sorted(latencies_us)
    return {
        "decisions": len(ordered),
        "per_second": 1e6 / statistics.fmean(ordered),
        "p50_us": ordered[len(ordered) // 2],
        "p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--short", action="store_true", help="1 s per system instead of 5 s")
    parser.add_argument("--json-out")
    args = parser.parse_args()
    seconds = 1.0 if args.short else 5.0

    engine = PolicyEngine.load(DeploymentSettings())
    request = realistic_request()
    decision = engine.decide(request)
    packs = engine.applicable_packs(request)
    policies = [p for pack in packs for p in pack.policies]
    policy_text = policy_set_json(policies)
    schema_text = (engine_module.__file__ or "").replace("engine.py", "schema.cedarschema")
    with open(schema_text, encoding="utf-8") as handle:
        schema_source = handle.read()
    cedar_request = engine_module._cedar_request(request, engine.deployment)
    entities = engine_module._cedar_entities(request.organisation)
    policy_set = cedarpy.PolicySet.from_json_str(policy_text)
    entity_handle = cedarpy.Entities.from_json_str(json.dumps(entities))

    systems = {
        "faceaccord decide": lambda: engine.decide(request),
        "cedar, parsed once": lambda: cedarpy.is_authorized(
            cedar_request, policy_set, entity_handle
        ),
        "cedar, text each call": lambda: cedarpy.is_authorized(
            cedar_request, cedarpy.PolicySet.from_json_str(policy_text), entities, schema_source
        ),
    }
    results = {name: summary(timed(call, seconds)) for name, call in systems.items()}

    print("policy decision benchmark" + (" (short)" if args.short else ""))
    print(
        f"request: {request.organisation.name} {request.operation} for {request.purpose}, "
        f"real-time, public space, emergency; packs applied {', '.join(decision.packs)}; "
        f"{len(policies)} Cedar policies; answer {decision.outcome} with "
        f"{len(decision.obligations)} obligations"
    )
    print(f"   {'system':<24} {'decisions/s':>12} {'p50 us':>9} {'p99 us':>9}")
    for name, figures in results.items():
        print(
            f"   {name:<24} {figures['per_second']:>12,.0f} {figures['p50_us']:>9.1f} "
            f"{figures['p99_us']:>9.1f}"
        )
    ours = results["faceaccord decide"]
    floor = results["cedar, parsed once"]
    naive = results["cedar, text each call"]
    print(
        f"   ratio faceaccord / cedar parsed once: {ours['per_second'] / floor['per_second']:.2f}x "
        f"(faceaccord's own overhead: {ours['p50_us'] - floor['p50_us']:.1f} us at p50)"
    )
    print(
        f"   ratio faceaccord / cedar text each call: "
        f"{ours['per_second'] / naive['per_second']:.2f}x"
    )
    if args.json_out:
        with open(args.json_out, "w", encoding="utf-8") as out:
            json.dump(results, out, indent=2)


if __name__ == "__main__":
    main()
