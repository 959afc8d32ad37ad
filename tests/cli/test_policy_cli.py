"""``faceaccord policy``: packs, one pack, and dry-run decisions; the JSON shapes are pinned."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from faceaccord.cli.app import app

runner = CliRunner()
US_POLICE = ("--sector", "police", "--jurisdiction", "US-NY", "--operation", "identify")


def _run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def _check(*args: str) -> dict[str, object]:
    code, out, err = _run("policy", "check", *args, "--json", "--on", "2026-11-22")
    assert code == 0, err
    document: dict[str, object] = json.loads(out)
    return document


def test_a_us_police_criminal_investigation_is_denied_with_both_vendor_rules() -> None:
    document = _check(*US_POLICE, "--purpose", "criminal_investigation")
    assert set(document) == {"decision", "outcome", "obligations", "reasons", "packs"}
    assert document["decision"] == "deny"
    assert document["obligations"] == []
    reasons = document["reasons"]
    assert isinstance(reasons, list)
    assert [r["rule"] for r in reasons] == ["MS-US-POLICE", "AMZ-MORATORIUM"]
    assert set(reasons[0]) == {"rule", "pack", "summary", "source"}
    assert reasons[0]["pack"] == "vendor-2020"
    assert "Washington Post" in reasons[0]["source"]


def test_its_missing_child_search_is_denied_by_ms_us_police_alone() -> None:
    document = _check(*US_POLICE, "--purpose", "missing_persons")
    assert [r["rule"] for r in document["reasons"]] == ["MS-US-POLICE"]  # type: ignore[union-attr]


def test_a_national_law_attestation_allows_it_with_obligations() -> None:
    document = _check(
        *US_POLICE, "--purpose", "missing_persons", "--national-law", "Public Law 999-1"
    )
    assert document["decision"] == "allow"
    assert document["outcome"] == "allow_with_obligations"
    assert document["obligations"] == [
        {"type": "human_review", "reviewers": 1},
        {"type": "not_sole_basis"},
        {"type": "similarity_floor", "max_fmr": 0.0001},
    ]


def test_eu_realtime_public_space_search_in_an_emergency_carries_eu_obligations() -> None:
    document = _check(
        "--sector", "police", "--jurisdiction", "DE", "--operation", "identify",
        "--purpose", "missing_persons", "--realtime", "--public-space", "--emergency",
        "--packs", "eu-ai-act",
    )  # fmt: skip
    assert document["decision"] == "allow"
    types = {o["type"]: o for o in document["obligations"]}  # type: ignore[union-attr]
    assert types["human_review"] == {"type": "human_review", "reviewers": 2}
    assert types["authorisation_within"] == {"type": "authorisation_within", "hours": 24}
    assert "delete_if_authorisation_refused" in types


def test_a_bipa_enrolment_without_a_written_release_is_denied() -> None:
    document = _check(
        "--sector", "employer", "--jurisdiction", "US-IL", "--operation", "enroll",
        "--purpose", "access_control", "--retention-policy", "https://example.com/retention",
    )  # fmt: skip
    assert [r["rule"] for r in document["reasons"]] == ["BIPA-15b"]  # type: ignore[union-attr]


def test_an_authorisation_is_given_as_type_and_reference() -> None:
    document = _check(
        "--sector", "police", "--jurisdiction", "FR", "--operation", "identify",
        "--purpose", "serious_crime_suspect", "--realtime", "--public-space",
        "--authorisation", "judicial:TJ Paris 2026/118", "--packs", "eu-ai-act",
    )  # fmt: skip
    assert document["decision"] == "allow"


@pytest.mark.parametrize(
    ("sector", "jurisdiction", "extra", "message"),
    [
        ("police", "Illinois", (), "not a jurisdiction code"),
        ("police", "US-NY", ("--authorisation", "warrant"), "needs a reference"),
        ("police", "US-NY", ("--authorisation", "hunch:1"), "not an authorisation type"),
        ("militia", "US-NY", (), "militia"),
    ],
)
def test_bad_values_are_usage_errors_that_say_what_is_wrong(
    sector: str, jurisdiction: str, extra: tuple[str, ...], message: str
) -> None:
    code, _, err = _run(
        "policy", "check", "--sector", sector, "--jurisdiction", jurisdiction,
        "--operation", "identify", "--purpose", "missing_persons", *extra,
    )  # fmt: skip
    assert code == 2
    assert message in err


def test_an_unknown_pack_is_a_configuration_error_listing_the_packs() -> None:
    code, _, err = _run(
        "policy", "check", *US_POLICE, "--purpose", "missing_persons", "--packs", "nope", "--json"
    )
    assert code == 5
    assert "vendor-2020" in json.loads(err)["error"]["message"]


def test_packs_lists_every_pack_and_its_rules() -> None:
    code, out, _ = _run("policy", "packs", "--json")
    assert code == 0
    packs = {p["id"]: p for p in json.loads(out)["packs"]}
    assert set(packs) == {
        "core", "vendor-2020", "eu-ai-act", "bipa", "texas-cubi", "wa-sb6280", "gdpr", "municipal",
    }  # fmt: skip
    assert [r["id"] for r in packs["gdpr"]["rules"]] == ["GDPR-9", "GDPR-17"]
    assert packs["bipa"]["jurisdictions"] == ["US-IL"]
    assert all(p["in_force"] for p in packs.values())


def test_show_prints_one_pack_with_its_policies() -> None:
    code, out, _ = _run("policy", "show", "eu-ai-act", "--json")
    assert code == 0
    pack = json.loads(out)
    assert pack["id"] == "eu-ai-act"
    exceptions = [p for p in pack["policies"] if p["rule"] == "EU-5-1-h"]
    assert {p["effect"] for p in exceptions} == {"forbid", "permit"}
    assert all(":" in p["location"] for p in pack["policies"])


def test_show_of_an_unknown_pack_names_the_known_ones() -> None:
    code, _, err = _run("policy", "show", "ccpa")
    assert code == 5
    assert "bipa" in err


def test_the_human_readable_decision_names_rules_and_sources() -> None:
    code, out, _ = _run("policy", "check", *US_POLICE, "--purpose", "criminal_investigation")
    assert code == 0
    assert "DENY" in out
    assert "MS-US-POLICE" in out
    assert "source:" in out
