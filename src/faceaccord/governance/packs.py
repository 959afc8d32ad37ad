"""Policy packs: folders of ``*.cedar`` files and a ``pack.toml`` that names, dates, scopes and
cites every rule. Loading a pack checks everything, and a broken pack stops with a message that
names the file and line: TOML errors, Cedar syntax errors, schema type errors, a policy
without a ``@rule`` or naming a rule the manifest lacks, a rule without a policy, malformed
``@obligations`` (or obligations on a ``forbid``), and duplicate ids.
"""

from __future__ import annotations

import json
import re
import tomllib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import date
from enum import StrEnum
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Annotated, Any

import cedarpy
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from faceaccord.errors import PolicyPackError
from faceaccord.governance.obligations import (
    Obligation,
    ObligationSyntaxError,
    parse_obligations,
)
from faceaccord.governance.vocabulary import Jurisdiction

__all__ = [
    "Pack",
    "Policy",
    "Rule",
    "Scope",
    "load_pack",
    "load_schema",
    "load_shipped_packs",
    "shipped_pack_ids",
]

CORE_PACK = "core"


class Scope(StrEnum):
    """Whose jurisdiction brings a pack into play."""

    ORGANISATION = "organisation"
    SUBJECT = "subject"
    LOCATION = "location"


Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]


class Rule(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: Text
    summary: Text
    source: Text
    effective_from: date | None = None
    lifted_by_national_law: bool = False


class _Manifest(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    title: str
    version: str
    effective_from: date
    effective_until: date | None = None
    jurisdictions: tuple[str, ...] = Field(min_length=1)
    applies_to: tuple[Scope, ...] = Field(min_length=1)
    rules: tuple[Rule, ...] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Policy:
    """One Cedar policy of a pack, with where it came from."""

    id: str
    """Unique: ``pack/rule#n``."""
    rule: Rule
    pack: str
    effect: str
    obligations: tuple[Obligation, ...]
    location: str
    """``file:line`` of the policy's first line."""
    json: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Pack:
    id: str
    title: str
    version: str
    effective_from: date
    effective_until: date | None
    jurisdictions: tuple[str, ...]
    applies_to: tuple[Scope, ...]
    rules: tuple[Rule, ...]
    policies: tuple[Policy, ...]
    folder: str

    def in_force_on(self, day: date) -> bool:
        return self.effective_from <= day and (
            self.effective_until is None or day <= self.effective_until
        )

    def rule(self, rule_id: str) -> Rule:
        for rule in self.rules:
            if rule.id == rule_id:
                return rule
        raise KeyError(rule_id)


def load_schema() -> cedarpy.Schema:
    text = (resources.files("faceaccord.governance") / "schema.cedarschema").read_text("utf-8")
    return cedarpy.Schema.from_str(text)


def shipped_pack_ids() -> list[str]:
    root = resources.files("faceaccord.governance") / "packs"
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / "pack.toml").is_file())


def load_shipped_packs(schema: cedarpy.Schema) -> dict[str, Pack]:
    root = resources.files("faceaccord.governance") / "packs"
    return {pack_id: load_pack(root / pack_id, schema=schema) for pack_id in shipped_pack_ids()}


def load_pack(folder: Traversable | Path, *, schema: cedarpy.Schema) -> Pack:
    """Load and check one pack folder; raise ``PolicyPackError`` naming the file and line."""
    manifest_file = folder / "pack.toml"
    manifest = _read_manifest(manifest_file)
    if manifest.id != folder.name:
        raise PolicyPackError(f"{manifest_file}: id {manifest.id!r} differs from the folder name")
    rules = {rule.id: rule for rule in manifest.rules}
    if len(rules) != len(manifest.rules):
        raise PolicyPackError(f"{manifest_file}: a rule id appears twice")
    for scope in manifest.jurisdictions:
        _check_scope(scope, manifest_file)

    cedar_files = sorted(
        (f for f in folder.iterdir() if f.name.endswith(".cedar")), key=lambda f: f.name
    )
    if not cedar_files:
        raise PolicyPackError(f"{folder}: a pack needs at least one .cedar file")
    policies: list[Policy] = []
    for cedar_file in cedar_files:
        policies += _read_policies(cedar_file, manifest.id, rules, schema, start=len(policies))
    unused = sorted(set(rules) - {p.rule.id for p in policies})
    if unused:
        raise PolicyPackError(f"{manifest_file}: rule(s) {', '.join(unused)} have no policy")
    return Pack(
        id=manifest.id,
        title=manifest.title,
        version=manifest.version,
        effective_from=manifest.effective_from,
        effective_until=manifest.effective_until,
        jurisdictions=manifest.jurisdictions,
        applies_to=manifest.applies_to,
        rules=manifest.rules,
        policies=tuple(policies),
        folder=str(folder),
    )


def _read_manifest(path: Traversable | Path) -> _Manifest:
    try:
        data = tomllib.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        raise PolicyPackError(f"{path}: missing (every pack needs a pack.toml)") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyPackError(f"{path}: {exc}") from None
    try:
        return _Manifest.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        raise PolicyPackError(f"{path}: {problems}") from None


def _check_scope(scope: str, where: Traversable | Path) -> None:
    if scope in {"*", "EU", "EEA"}:
        return
    try:
        Jurisdiction.parse(scope)
    except ValueError as exc:
        raise PolicyPackError(f"{where}: {exc}") from None


def _read_policies(
    path: Traversable | Path,
    pack_id: str,
    rules: dict[str, Rule],
    schema: cedarpy.Schema,
    *,
    start: int,
) -> list[Policy]:
    policies = []
    for number, (line, text) in enumerate(split_statements(path.read_text("utf-8")), start):
        where = f"{path}:{line}"
        try:
            parsed = json.loads(cedarpy.policies_to_json_str(text))["staticPolicies"]
        except ValueError as exc:
            raise PolicyPackError(f"{where}: Cedar syntax error: {exc}") from None
        if len(parsed) != 1:
            raise PolicyPackError(f"{where}: expected one policy, found {len(parsed)}")
        body = next(iter(parsed.values()))
        checked = cedarpy.validate_policies(text, schema)
        if not checked.validation_passed:
            messages = "; ".join(_strip_policy_id(str(e)) for e in checked.errors)
            raise PolicyPackError(f"{where}: does not fit the schema: {messages}")
        annotations: dict[str, str] = body.get("annotations", {})
        rule_id = annotations.get("rule")
        if not rule_id:
            raise PolicyPackError(f'{where}: every policy needs a @rule("ID") annotation')
        if rule_id not in rules:
            raise PolicyPackError(f"{where}: rule {rule_id!r} is not in pack.toml")
        effect = str(body["effect"])
        obligations: tuple[Obligation, ...] = ()
        if "obligations" in annotations:
            if effect != "permit":
                raise PolicyPackError(f"{where}: only a permit can carry @obligations")
            try:
                obligations = parse_obligations(annotations["obligations"])
            except ObligationSyntaxError as exc:
                raise PolicyPackError(f"{where}: {exc}") from None
        unknown = set(annotations) - {"rule", "obligations"}
        if unknown:
            raise PolicyPackError(f"{where}: unknown annotation(s) {', '.join(sorted(unknown))}")
        policies.append(
            Policy(
                id=f"{pack_id}/{rule_id}#{number}",
                rule=rules[rule_id],
                pack=pack_id,
                effect=effect,
                obligations=obligations,
                location=where,
                json=body,
            )
        )
    return policies


def _strip_policy_id(message: str) -> str:
    """Drop Cedar's internal policy id ("[policy0] for policy `policy0`, ..."): the location
    already names the policy."""
    if message.startswith("[") and "] " in message:
        message = message.split("] ", 1)[1]
    return re.sub(r"^for policy `[^`]*`, ", "", message)


def split_statements(text: str) -> Iterator[tuple[int, str]]:
    """Yield (first line, text) of each ``;``-terminated statement, skipping comments and
    honouring string literals, so errors can name the line a policy starts on."""
    line, start_line = 1, None
    buffer: list[str] = []
    index, in_string = 0, False
    while index < len(text):
        char = text[index]
        if in_string:
            buffer.append(char)
            if char == "\\" and index + 1 < len(text):
                buffer.append(text[index + 1])
                index += 1
            elif char == '"':
                in_string = False
        elif text.startswith("//", index):
            end = text.find("\n", index)
            index = len(text) if end == -1 else end
            continue
        else:
            if not char.isspace() and start_line is None:
                start_line = line
            buffer.append(char)
            if char == '"':
                in_string = True
            elif char == ";":
                yield start_line or line, "".join(buffer).strip()
                buffer, start_line = [], None
        if char == "\n":
            line += 1
        index += 1
    leftover = "".join(buffer).strip()
    if leftover:
        yield start_line or line, leftover


def policy_set_json(policies: Iterable[Policy]) -> str:
    """A Cedar policy set (JSON form) whose policy ids are ours."""
    return json.dumps(
        {"staticPolicies": {p.id: p.json for p in policies}, "templates": {}, "templateLinks": []}
    )


def all_policies(packs: Sequence[Pack]) -> list[Policy]:
    return [policy for pack in packs for policy in pack.policies]
