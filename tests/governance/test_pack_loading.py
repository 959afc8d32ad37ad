"""Loading policy packs: every shipped pack loads and is well cited, and every way of breaking a
pack stops with a ``PolicyPackError`` that names the file (and the line, where there is one)."""

from __future__ import annotations

import re
import shutil
from datetime import date
from importlib import resources
from pathlib import Path

import cedarpy
import pytest

from faceaccord.errors import ConfigurationError, PolicyPackError
from faceaccord.governance.engine import PolicyEngine
from faceaccord.governance.entities import (
    DeploymentSettings,
    Organisation,
    OrganisationStatus,
    PolicyRequest,
)
from faceaccord.governance.obligations import HumanReview, LogRetention, NotSoleBasis
from faceaccord.governance.packs import (
    Pack,
    Scope,
    load_pack,
    load_schema,
    load_shipped_packs,
    shipped_pack_ids,
    split_statements,
)
from faceaccord.governance.vocabulary import Jurisdiction, Operation, Purpose, Sector

SHIPPED = [
    "bipa",
    "core",
    "eu-ai-act",
    "gdpr",
    "municipal",
    "texas-cubi",
    "vendor-2020",
    "wa-sb6280",
]

# A small valid pack. The line numbers below matter: the tests break one thing at a time and
# check that the error names the line the broken policy starts on.
MINI_TOML = """\
id = "mini"
title = "A tiny pack for the loader tests"
version = "0.1.0"
effective_from = 2020-01-01
jurisdictions = ["US-IL", "EU"]
applies_to = ["organisation", "location"]

[[rules]]
id = "MINI-OPEN"
summary = "Identification is allowed with two reviewers."
source = "Test suite, rule 1"

[[rules]]
id = "MINI-SALE"
summary = "Templates are never sold."
source = "Test suite, rule 2"

[[rules]]
id = "MINI-MINOR"
summary = "Possible minors need two reviewers."
source = "Test suite, rule 3"
"""

MINI_CEDAR = """\
// A tiny pack for the loader tests.

@rule("MINI-OPEN")
@obligations("human_review(reviewers=2), not_sole_basis")
permit (principal, action == Action::"identify", resource);

@rule("MINI-SALE")
forbid (principal, action == Action::"export", resource)
when { context.export_recipient == "sale" };

@rule("MINI-MINOR")
forbid (principal, action in Action::"recognise", resource)
when {
  context.subject_may_be_minor &&
  context.reviewers < 2
};
"""
OPEN_LINE, SALE_LINE, MINOR_LINE = 3, 7, 11


@pytest.fixture(scope="module")
def schema() -> cedarpy.Schema:
    return load_schema()


@pytest.fixture(scope="module")
def shipped(schema: cedarpy.Schema) -> dict[str, Pack]:
    return load_shipped_packs(schema)


def _edit(text: str, old: str, new: str) -> str:
    """Replace ``old`` (which must occur exactly once) so a typo cannot make a test vacuous."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def _write_pack(
    root: Path, *, cedar: str | None = MINI_CEDAR, toml: str | None = MINI_TOML, name: str = "mini"
) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    if toml is not None:
        (folder / "pack.toml").write_text(toml, encoding="utf-8")
    if cedar is not None:
        (folder / "rules.cedar").write_text(cedar, encoding="utf-8")
    return folder


def _load_error(folder: Path, schema: cedarpy.Schema) -> str:
    with pytest.raises(PolicyPackError) as caught:
        load_pack(folder, schema=schema)
    return str(caught.value)


def _cedar_lines(message: str) -> list[int]:
    return [int(n) for n in re.findall(r"\.cedar:(\d+)", message)]


# --- the shipped packs ----------------------------------------------------------------------


def test_shipped_pack_ids_are_the_eight_packs() -> None:
    assert shipped_pack_ids() == SHIPPED


def test_every_shipped_pack_loads(shipped: dict[str, Pack]) -> None:
    assert sorted(shipped) == SHIPPED
    for pack_id, pack in shipped.items():
        assert pack.id == pack_id
        assert pack.title.strip()
        assert pack.version.strip()
        assert pack.jurisdictions
        assert pack.applies_to
        assert all(isinstance(scope, Scope) for scope in pack.applies_to)
        assert pack.policies, pack_id
        assert pack.effective_until is None or pack.effective_from <= pack.effective_until


@pytest.mark.parametrize("pack_id", SHIPPED)
def test_every_rule_has_a_summary_and_a_source(shipped: dict[str, Pack], pack_id: str) -> None:
    pack = shipped[pack_id]
    assert pack.rules
    for rule in pack.rules:
        assert rule.summary.strip(), f"{pack_id}/{rule.id} has no summary"
        assert rule.source.strip(), f"{pack_id}/{rule.id} has no source"
    assert len({rule.id for rule in pack.rules}) == len(pack.rules)


@pytest.mark.parametrize("pack_id", SHIPPED)
def test_every_rule_has_a_policy_and_every_policy_a_rule_of_its_pack(
    shipped: dict[str, Pack], pack_id: str
) -> None:
    pack = shipped[pack_id]
    assert {p.rule.id for p in pack.policies} == {r.id for r in pack.rules}
    for policy in pack.policies:
        assert policy.pack == pack_id
        assert policy.rule == pack.rule(policy.rule.id)
        assert policy.effect in {"permit", "forbid"}
        assert not policy.obligations or policy.effect == "permit"
        assert policy.id.startswith(f"{pack_id}/{policy.rule.id}#")


def test_policy_ids_are_unique_across_all_shipped_packs(shipped: dict[str, Pack]) -> None:
    ids = [policy.id for pack in shipped.values() for policy in pack.policies]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize("pack_id", SHIPPED)
def test_every_policy_location_is_the_file_and_line_it_starts_on(
    shipped: dict[str, Pack], pack_id: str
) -> None:
    pack_root = resources.files("faceaccord.governance") / "packs" / pack_id
    for policy in shipped[pack_id].policies:
        match = re.fullmatch(r"(?P<file>.+\.cedar):(?P<line>[1-9]\d*)", policy.location)
        assert match, policy.location
        file = Path(match["file"])
        assert file.name in {f.name for f in pack_root.iterdir()}
        lines = file.read_text("utf-8").splitlines()
        first = lines[int(match["line"]) - 1].strip()
        # Every shipped policy opens with an annotation; the line must be that opening line.
        assert first.startswith("@"), f"{policy.location}: {first!r}"
        previous = lines[int(match["line"]) - 2].strip() if int(match["line"]) > 1 else ""
        assert not previous.startswith("@"), f"{policy.location} is not the first line"


def test_locations_are_unique_within_the_shipped_packs(shipped: dict[str, Pack]) -> None:
    locations = [p.location for pack in shipped.values() for p in pack.policies]
    assert len(locations) == len(set(locations))


def test_a_shipped_pack_copied_elsewhere_loads_the_same(
    shipped: dict[str, Pack], schema: cedarpy.Schema, tmp_path: Path
) -> None:
    source = Path(str(resources.files("faceaccord.governance") / "packs" / "bipa"))
    shutil.copytree(source, tmp_path / "bipa")
    copy = load_pack(tmp_path / "bipa", schema=schema)
    original = shipped["bipa"]
    assert copy.rules == original.rules
    assert [p.id for p in copy.policies] == [p.id for p in original.policies]
    assert [p.obligations for p in copy.policies] == [p.obligations for p in original.policies]
    assert [p.location.rsplit(":", 1)[1] for p in copy.policies] == [
        p.location.rsplit(":", 1)[1] for p in original.policies
    ]


# --- the small valid pack -------------------------------------------------------------------


def test_the_mini_pack_loads_with_ids_locations_and_obligations(
    schema: cedarpy.Schema, tmp_path: Path
) -> None:
    folder = _write_pack(tmp_path)
    pack = load_pack(folder, schema=schema)
    assert pack.id == "mini"
    assert pack.jurisdictions == ("US-IL", "EU")
    assert pack.applies_to == (Scope.ORGANISATION, Scope.LOCATION)
    assert [p.id for p in pack.policies] == [
        "mini/MINI-OPEN#0",
        "mini/MINI-SALE#1",
        "mini/MINI-MINOR#2",
    ]
    assert [p.location for p in pack.policies] == [
        f"{folder / 'rules.cedar'}:{line}" for line in (OPEN_LINE, SALE_LINE, MINOR_LINE)
    ]
    assert [p.effect for p in pack.policies] == ["permit", "forbid", "forbid"]
    assert pack.policies[0].obligations == (HumanReview(reviewers=2), NotSoleBasis())
    assert pack.policies[1].obligations == ()


def test_policies_of_several_files_are_numbered_on_and_located_in_their_own_file(
    schema: cedarpy.Schema, tmp_path: Path
) -> None:
    folder = _write_pack(tmp_path)
    extra = (
        "// second file\n"
        "\n"
        '@rule("MINI-SALE")\n'
        'forbid (principal, action == Action::"export", resource)\n'
        'when { context.export_recipient == "third_party" };\n'
    )
    (folder / "a-first.cedar").write_text(extra, encoding="utf-8")
    pack = load_pack(folder, schema=schema)
    # Files are read in name order: a-first.cedar before rules.cedar.
    assert pack.policies[0].location == f"{folder / 'a-first.cedar'}:3"
    assert pack.policies[1].location == f"{folder / 'rules.cedar'}:{OPEN_LINE}"
    assert [p.id for p in pack.policies] == [
        "mini/MINI-SALE#0",
        "mini/MINI-OPEN#1",
        "mini/MINI-SALE#2",
        "mini/MINI-MINOR#3",
    ]


def test_an_error_in_a_second_file_names_that_file_and_line(
    schema: cedarpy.Schema, tmp_path: Path
) -> None:
    folder = _write_pack(tmp_path)
    broken = (
        "\n\n\n"
        '@rule("MINI-SALE")\n'
        'forbid (principal, action == Action::"export", resource)\n'
        "when { context.export_recipient == };\n"
    )
    (folder / "z-last.cedar").write_text(broken, encoding="utf-8")
    message = _load_error(folder, schema)
    assert f"{folder / 'z-last.cedar'}:4" in message
    assert "syntax" in message.lower()


# --- malformed Cedar ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "line"),
    [
        # The error is on the policy's third line; the message names the line it starts on.
        (
            'context.export_recipient == "sale" };',
            'context.export_recipient == "sale" ;',
            SALE_LINE,
        ),
        ("context.reviewers < 2", "context.reviewers <", MINOR_LINE),
        (
            'permit (principal, action == Action::"identify", resource);',
            "permit (principal,);",
            OPEN_LINE,
        ),
        (
            'forbid (principal, action == Action::"export"',
            'forbd (principal, action == Action::"export"',
            SALE_LINE,
        ),
    ],
)
def test_a_cedar_syntax_error_names_the_file_and_the_line_the_policy_starts_on(
    schema: cedarpy.Schema, tmp_path: Path, old: str, new: str, line: int
) -> None:
    folder = _write_pack(tmp_path, cedar=_edit(MINI_CEDAR, old, new))
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'rules.cedar'}:{line}: ")
    assert _cedar_lines(message) == [line]
    assert "Cedar syntax error" in message


def test_a_missing_semicolon_is_reported_at_the_start_of_the_merged_statement(
    schema: cedarpy.Schema, tmp_path: Path
) -> None:
    cedar = _edit(
        MINI_CEDAR,
        'when { context.export_recipient == "sale" };',
        'when { context.export_recipient == "sale" }',
    )
    folder = _write_pack(tmp_path, cedar=cedar)
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'rules.cedar'}:{SALE_LINE}: ")


def test_trailing_text_without_a_semicolon_is_reported_on_its_own_line(
    schema: cedarpy.Schema, tmp_path: Path
) -> None:
    folder = _write_pack(tmp_path, cedar=MINI_CEDAR + "\n// nearly done\npermit\n")
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'rules.cedar'}:19: ")


@pytest.mark.parametrize(
    ("old", "new", "line", "mentions"),
    [
        ('context.export_recipient == "sale"', 'principal.sectr == "police"', SALE_LINE, "sectr"),
        ('context.export_recipient == "sale"', 'context.colour == "red"', SALE_LINE, "colour"),
        ("context.reviewers < 2", 'context.reviewers == "two"', MINOR_LINE, "Long"),
        ("context.subject_may_be_minor &&", "context.consent &&", MINOR_LINE, "Bool"),
        ('Action::"identify"', 'Action::"fly"', OPEN_LINE, "fly"),
    ],
)
def test_a_schema_error_names_the_file_the_line_and_the_problem(
    schema: cedarpy.Schema, tmp_path: Path, old: str, new: str, line: int, mentions: str
) -> None:
    folder = _write_pack(tmp_path, cedar=_edit(MINI_CEDAR, old, new))
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'rules.cedar'}:{line}: ")
    assert "does not fit the schema" in message
    assert mentions in message


def test_a_schema_error_does_not_name_cedars_internal_policy_id(
    schema: cedarpy.Schema, tmp_path: Path
) -> None:
    cedar = _edit(MINI_CEDAR, 'context.export_recipient == "sale"', 'principal.sectr == "police"')
    message = _load_error(_write_pack(tmp_path, cedar=cedar), schema)
    assert "policy0" not in message


def test_a_policy_without_a_rule_annotation(schema: cedarpy.Schema, tmp_path: Path) -> None:
    cedar = _edit(MINI_CEDAR, '@rule("MINI-SALE")', "// (the @rule went missing)")
    folder = _write_pack(tmp_path, cedar=cedar)
    message = _load_error(folder, schema)
    # With the annotation gone, the policy starts on its `forbid` line.
    assert message.startswith(f"{folder / 'rules.cedar'}:{SALE_LINE + 1}: ")
    assert "@rule" in message


def test_an_empty_rule_annotation_counts_as_missing(schema: cedarpy.Schema, tmp_path: Path) -> None:
    folder = _write_pack(tmp_path, cedar=_edit(MINI_CEDAR, '@rule("MINI-SALE")', '@rule("")'))
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'rules.cedar'}:{SALE_LINE}: ")
    assert "@rule" in message


def test_a_rule_annotation_naming_a_rule_absent_from_the_manifest(
    schema: cedarpy.Schema, tmp_path: Path
) -> None:
    folder = _write_pack(
        tmp_path, cedar=_edit(MINI_CEDAR, '@rule("MINI-SALE")', '@rule("MINI-GONE")')
    )
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'rules.cedar'}:{SALE_LINE}: ")
    assert "MINI-GONE" in message
    assert "pack.toml" in message


def test_a_manifest_rule_without_any_policy(schema: cedarpy.Schema, tmp_path: Path) -> None:
    toml = MINI_TOML + '\n[[rules]]\nid = "MINI-LONELY"\nsummary = "Nothing"\nsource = "Nowhere"\n'
    folder = _write_pack(tmp_path, toml=toml)
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'pack.toml'}: ")
    assert "MINI-LONELY" in message
    assert "no policy" in message


def test_obligations_on_a_forbid(schema: cedarpy.Schema, tmp_path: Path) -> None:
    cedar = _edit(
        MINI_CEDAR, '@rule("MINI-SALE")', '@rule("MINI-SALE")\n@obligations("not_sole_basis")'
    )
    folder = _write_pack(tmp_path, cedar=cedar)
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'rules.cedar'}:{SALE_LINE}: ")
    assert "permit" in message
    assert "@obligations" in message


@pytest.mark.parametrize(
    ("obligations", "mentions"),
    [
        ("human_review(reviewers=2), pray", "unknown obligation 'pray'"),
        ("human_review(reviewers=0)", "reviewers='0'"),
        ("human_review(reviewers=two)", "reviewers='two'"),
        ("human_review(people=2)", "people=2"),
        ("human_review(reviewers=2) not_sole_basis", "cannot read obligations"),
        ("log_retention", "days"),
        ("retention_limit(days=30, after=forever)", "after='forever'"),
        ("similarity_floor(max_fmr=1.5)", "max_fmr='1.5'"),
        ("consent_on_file(kind=verbal)", "kind='verbal'"),
    ],
)
def test_malformed_obligations_name_the_line_and_the_problem(
    schema: cedarpy.Schema, tmp_path: Path, obligations: str, mentions: str
) -> None:
    cedar = _edit(MINI_CEDAR, "human_review(reviewers=2), not_sole_basis", obligations)
    folder = _write_pack(tmp_path, cedar=cedar)
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'rules.cedar'}:{OPEN_LINE}: ")
    assert mentions in message


def test_an_unknown_annotation(schema: cedarpy.Schema, tmp_path: Path) -> None:
    cedar = _edit(MINI_CEDAR, '@rule("MINI-SALE")', '@rule("MINI-SALE")\n@note("remember")')
    folder = _write_pack(tmp_path, cedar=cedar)
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'rules.cedar'}:{SALE_LINE}: ")
    assert "unknown annotation" in message
    assert "note" in message


def test_a_duplicated_annotation(schema: cedarpy.Schema, tmp_path: Path) -> None:
    cedar = _edit(MINI_CEDAR, '@rule("MINI-SALE")', '@rule("MINI-SALE")\n@rule("MINI-OPEN")')
    folder = _write_pack(tmp_path, cedar=cedar)
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'rules.cedar'}:{SALE_LINE}: ")
    assert "rule" in message


# --- malformed manifests and folders --------------------------------------------------------


def test_a_missing_manifest(schema: cedarpy.Schema, tmp_path: Path) -> None:
    folder = _write_pack(tmp_path, toml=None)
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'pack.toml'}: ")
    assert "missing" in message


def test_a_folder_that_does_not_exist(schema: cedarpy.Schema, tmp_path: Path) -> None:
    message = _load_error(tmp_path / "ghost", schema)
    assert str(tmp_path / "ghost" / "pack.toml") in message


def test_invalid_toml_carries_tomls_line(schema: cedarpy.Schema, tmp_path: Path) -> None:
    folder = _write_pack(tmp_path, toml=_edit(MINI_TOML, 'version = "0.1.0"', 'version = 0.1.0"'))
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'pack.toml'}: ")
    assert "line 3" in message


def test_invalid_toml_in_a_rule_table_carries_its_line(
    schema: cedarpy.Schema, tmp_path: Path
) -> None:
    toml = _edit(
        MINI_TOML, 'summary = "Templates are never sold."', "summary = Templates are never sold."
    )
    message = _load_error(_write_pack(tmp_path, toml=toml), schema)
    assert "line 15" in message


@pytest.mark.parametrize(
    ("line", "field"),
    [
        ('id = "mini"\n', "id"),
        ('title = "A tiny pack for the loader tests"\n', "title"),
        ('version = "0.1.0"\n', "version"),
        ("effective_from = 2020-01-01\n", "effective_from"),
        ('jurisdictions = ["US-IL", "EU"]\n', "jurisdictions"),
        ('applies_to = ["organisation", "location"]\n', "applies_to"),
        ('summary = "Templates are never sold."\n', "rules.1.summary"),
        ('source = "Test suite, rule 3"\n', "rules.2.source"),
        ('id = "MINI-OPEN"\n', "rules.0.id"),
    ],
)
def test_a_missing_required_field(
    schema: cedarpy.Schema, tmp_path: Path, line: str, field: str
) -> None:
    folder = _write_pack(tmp_path, toml=_edit(MINI_TOML, line, ""))
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'pack.toml'}: ")
    assert f"{field}: Field required" in message


@pytest.mark.parametrize(
    ("old", "new", "mentions"),
    [
        ('version = "0.1.0"', 'version = "0.1.0"\nauthor = "me"', "author"),
        ("effective_from = 2020-01-01", 'effective_from = "last spring"', "effective_from"),
        ('jurisdictions = ["US-IL", "EU"]', "jurisdictions = []", "jurisdictions"),
        ('applies_to = ["organisation", "location"]', 'applies_to = ["planet"]', "applies_to"),
    ],
)
def test_other_manifest_validation_errors_name_the_field(
    schema: cedarpy.Schema, tmp_path: Path, old: str, new: str, mentions: str
) -> None:
    folder = _write_pack(tmp_path, toml=_edit(MINI_TOML, old, new))
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'pack.toml'}: ")
    assert mentions in message


def test_a_manifest_without_rules(schema: cedarpy.Schema, tmp_path: Path) -> None:
    toml = MINI_TOML.split("[[rules]]", maxsplit=1)[0]
    message = _load_error(_write_pack(tmp_path, toml=toml), schema)
    assert "rules" in message


def test_an_id_different_from_the_folder_name(schema: cedarpy.Schema, tmp_path: Path) -> None:
    folder = _write_pack(tmp_path, name="elsewhere")
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'pack.toml'}: ")
    assert "'mini'" in message
    assert "folder" in message


def test_a_duplicate_rule_id(schema: cedarpy.Schema, tmp_path: Path) -> None:
    toml = MINI_TOML + '\n[[rules]]\nid = "MINI-SALE"\nsummary = "Again"\nsource = "Twice"\n'
    folder = _write_pack(tmp_path, toml=toml)
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'pack.toml'}: ")
    assert "twice" in message


@pytest.mark.parametrize("code", ["Illinois", "us-il", "US-IL/San Francisco", "USA", ""])
def test_a_bad_jurisdiction_code(schema: cedarpy.Schema, tmp_path: Path, code: str) -> None:
    toml = _edit(MINI_TOML, 'jurisdictions = ["US-IL", "EU"]', f'jurisdictions = ["EU", "{code}"]')
    folder = _write_pack(tmp_path, toml=toml)
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder / 'pack.toml'}: ")
    assert "not a jurisdiction code" in message
    assert repr(code) in message


@pytest.mark.parametrize("code", ["*", "EU", "EEA", "DE", "US-IL", "US-CA/san-francisco"])
def test_good_jurisdiction_codes(schema: cedarpy.Schema, tmp_path: Path, code: str) -> None:
    toml = _edit(MINI_TOML, 'jurisdictions = ["US-IL", "EU"]', f'jurisdictions = ["{code}"]')
    assert load_pack(_write_pack(tmp_path, toml=toml), schema=schema).jurisdictions == (code,)


def test_a_folder_with_no_cedar_file(schema: cedarpy.Schema, tmp_path: Path) -> None:
    folder = _write_pack(tmp_path, cedar=None)
    (folder / "rules.cedar.txt").write_text(MINI_CEDAR, encoding="utf-8")
    message = _load_error(folder, schema)
    assert message.startswith(f"{folder}: ")
    assert ".cedar" in message


@pytest.mark.parametrize("field", ["summary", "source"])
def test_a_rule_with_an_empty_summary_or_source_is_refused(
    schema: cedarpy.Schema, tmp_path: Path, field: str
) -> None:
    old = (
        'summary = "Templates are never sold."'
        if field == "summary"
        else 'source = "Test suite, rule 2"'
    )
    folder = _write_pack(tmp_path, toml=_edit(MINI_TOML, old, f'{field} = "  "'))
    with pytest.raises(PolicyPackError, match=field):
        load_pack(folder, schema=schema)


def test_policy_pack_error_is_a_configuration_error() -> None:
    assert issubclass(PolicyPackError, ConfigurationError)
    assert PolicyPackError.code == "policy_pack_error"


# --- statement splitting --------------------------------------------------------------------


def test_split_statements_skips_comments_and_honours_strings() -> None:
    text = (
        '// header; with a "quote that never closes\n'  # 1
        '@rule("A") // trailing; comment // twice\n'  # 2
        "permit (principal, action, resource)\n"  # 3
        'when { context.legal_ground == "a;b//c\\"d;" };\n'  # 4
        "\n"  # 5
        '  @rule("B")\n'  # 6
        'forbid (principal, action, resource); // after; "x\n'  # 7
        "// only a comment;\n"  # 8
        'permit (principal, action, resource) when { "//" == ";" }; '  # 9
        "permit (principal, action, resource);\n"
    )
    assert list(split_statements(text)) == [
        (
            2,
            '@rule("A") \npermit (principal, action, resource)\n'
            'when { context.legal_ground == "a;b//c\\"d;" };',
        ),
        (6, '@rule("B")\nforbid (principal, action, resource);'),
        (9, 'permit (principal, action, resource) when { "//" == ";" };'),
        (9, "permit (principal, action, resource);"),
    ]


def test_split_statements_line_numbers_and_leftovers() -> None:
    assert list(split_statements("")) == []
    assert list(split_statements("// nothing but; a comment")) == []
    assert list(split_statements("a;b;  \n\n c")) == [(1, "a;"), (1, "b;"), (3, "c")]
    assert list(split_statements("\n\n\n  x;\n")) == [(4, "x;")]
    # A newline inside a string literal still counts.
    assert list(split_statements('x "one\ntwo";\ny;')) == [(1, 'x "one\ntwo";'), (3, "y;")]
    # Windows line endings.
    assert list(split_statements("a;\r\n// c;\r\nb;\r\n")) == [(1, "a;"), (3, "b;")]


def test_comments_and_strings_with_semicolons_do_not_confuse_a_pack(
    schema: cedarpy.Schema, tmp_path: Path
) -> None:
    cedar = (
        "// Rules; with semicolons; and // slashes in comments\n"  # 1
        '@rule("MINI-OPEN") // the first one; "really"\n'  # 2
        '@obligations("human_review(reviewers=2)")\n'  # 3
        'permit (principal, action == Action::"identify", resource)\n'  # 4
        'when { context.legal_ground != "x; y // z" };\n'  # 5
        "\n"  # 6
        "// MINI-SALE; next\n"  # 7
        '@rule("MINI-SALE")\n'  # 8
        "forbid (principal, action, resource) // ; not the end\n"  # 9
        'when { context.export_recipient == "sale;" || context.disclosure_basis == "a\\"b;//" };\n'
        '@rule("MINI-MINOR") forbid (principal, action, resource) '  # 11
        "when { context.reviewers == -1 };\n"
    )
    folder = _write_pack(tmp_path, cedar=cedar)
    pack = load_pack(folder, schema=schema)
    assert [p.location.rsplit(":", 1)[1] for p in pack.policies] == ["2", "8", "11"]
    assert [p.rule.id for p in pack.policies] == ["MINI-OPEN", "MINI-SALE", "MINI-MINOR"]
    condition = pack.policies[0].json["conditions"][0]["body"]
    assert condition["!="]["right"] == {"Value": "x; y // z"}


# --- the engine -----------------------------------------------------------------------------


HOUSE_TOML = """\
id = "house-rules"
title = "Our own rules"
version = "0.1.0"
effective_from = 2020-01-01
jurisdictions = ["*"]
applies_to = ["organisation"]

[[rules]]
id = "HOUSE-NO-EXPORT"
summary = "We never export templates."
source = "Board resolution 2024-07"

[[rules]]
id = "HOUSE-LOGS"
summary = "Detection logs are kept for 400 days."
source = "Board resolution 2024-08"
"""

HOUSE_CEDAR = """\
@rule("HOUSE-NO-EXPORT")
forbid (principal, action == Action::"export", resource);

@rule("HOUSE-LOGS")
@obligations("log_retention(days=400)")
permit (principal, action == Action::"detect", resource);
"""

ACME = Organisation(
    id="acme",
    name="Acme",
    sector=Sector.COMMERCIAL,
    jurisdiction=Jurisdiction.parse("US-NY"),
    status=OrganisationStatus.APPROVED,
    approved_purposes=frozenset({Purpose.ACCESS_CONTROL}),
)


def _request(operation: Operation) -> PolicyRequest:
    return PolicyRequest(ACME, operation, Purpose.ACCESS_CONTROL, on=date(2025, 1, 1))


def test_an_unknown_pack_in_the_deployment_is_named_with_the_available_ones() -> None:
    with pytest.raises(PolicyPackError) as caught:
        PolicyEngine.load(DeploymentSettings(packs=("nope",)))
    message = str(caught.value)
    assert "nope" in message
    assert f"available: {', '.join(SHIPPED)}" in message


def test_a_user_pack_is_loaded_and_decides(tmp_path: Path) -> None:
    folder = _write_pack(tmp_path, cedar=HOUSE_CEDAR, toml=HOUSE_TOML, name="house-rules")
    engine = PolicyEngine.load(extra_packs=[folder])
    assert "house-rules" in engine.available

    export = engine.decide(_request(Operation.EXPORT))
    assert not export.allowed
    assert export.rule_ids() == ["HOUSE-NO-EXPORT"]
    assert export.reasons[0].pack == "house-rules"
    assert export.reasons[0].source == "Board resolution 2024-07"
    assert "house-rules" in export.packs

    detect = engine.decide(_request(Operation.DETECT))
    assert detect.allowed
    assert "HOUSE-LOGS" in detect.rule_ids()
    assert detect.obligations == (LogRetention(days=400),)

    # Without the user pack the same export is allowed.
    assert PolicyEngine.load().decide(_request(Operation.EXPORT)).allowed


def test_a_user_pack_can_be_the_only_pack_chosen(tmp_path: Path) -> None:
    folder = _write_pack(tmp_path, cedar=HOUSE_CEDAR, toml=HOUSE_TOML, name="house-rules")
    engine = PolicyEngine.load(DeploymentSettings(packs=("house-rules",)), extra_packs=[folder])
    assert [p.id for p in engine.in_force] == ["core", "house-rules"]
    decision = engine.decide(_request(Operation.EXPORT))
    assert decision.rule_ids() == ["HOUSE-NO-EXPORT"]
    assert decision.packs == ("core", "house-rules")


def test_a_broken_user_pack_stops_the_engine(tmp_path: Path) -> None:
    cedar = _edit(HOUSE_CEDAR, '@rule("HOUSE-LOGS")', '@rule("HOUSE-LOGZ")')
    folder = _write_pack(tmp_path, cedar=cedar, toml=HOUSE_TOML, name="house-rules")
    with pytest.raises(PolicyPackError, match=re.escape(f"{folder / 'rules.cedar'}:4: ")):
        PolicyEngine.load(extra_packs=[folder])


@pytest.mark.parametrize("shadowed", ["bipa", "core"])
def test_a_user_pack_cannot_silently_replace_a_shipped_pack(tmp_path: Path, shadowed: str) -> None:
    # An empty-handed look-alike: one harmless permit under the shipped pack's id.
    toml = _edit(HOUSE_TOML, 'id = "house-rules"', f'id = "{shadowed}"')
    cedar = (
        '@rule("HOUSE-NO-EXPORT")\npermit (principal, action, resource);\n'
        '@rule("HOUSE-LOGS")\npermit (principal, action, resource);\n'
    )
    folder = _write_pack(tmp_path, cedar=cedar, toml=toml, name=shadowed)
    with pytest.raises(PolicyPackError, match=shadowed):
        PolicyEngine.load(extra_packs=[folder])
