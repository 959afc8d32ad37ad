"""The ``@obligations`` grammar, the typed obligations, their JSON shape, and the strictest-wins
merge of the obligations of several permits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faceaccord.governance.obligations import (
    AuthorisationWithin,
    ConsentOnFile,
    DeleteIfAuthorisationRefused,
    HumanReview,
    LogRetention,
    NoticeGiven,
    NotSoleBasis,
    Obligation,
    ObligationSyntaxError,
    RetentionLimit,
    SimilarityFloor,
    merge_obligations,
    obligation_json,
    parse_obligations,
)
from faceaccord.governance.vocabulary import ConsentKind

# --- parsing --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("human_review", HumanReview(reviewers=1)),
        ("human_review()", HumanReview(reviewers=1)),
        ("human_review(reviewers=2)", HumanReview(reviewers=2)),
        ("consent_on_file", ConsentOnFile(kind=None)),
        ("consent_on_file(kind=explicit)", ConsentOnFile(kind=ConsentKind.EXPLICIT)),
        ("consent_on_file(kind=written)", ConsentOnFile(kind=ConsentKind.WRITTEN)),
        ("consent_on_file(kind=electronic)", ConsentOnFile(kind=ConsentKind.ELECTRONIC)),
        ("notice_given", NoticeGiven()),
        ("similarity_floor", SimilarityFloor(max_fmr=1e-4)),
        ("similarity_floor(max_fmr=0.0001)", SimilarityFloor(max_fmr=0.0001)),
        ("similarity_floor(max_fmr=1e-6)", SimilarityFloor(max_fmr=1e-6)),
        ("log_retention(days=183)", LogRetention(days=183)),
        ("not_sole_basis", NotSoleBasis()),
        ("authorisation_within(hours=24)", AuthorisationWithin(hours=24)),
        ("delete_if_authorisation_refused", DeleteIfAuthorisationRefused()),
        ("retention_limit(days=1095)", RetentionLimit(days=1095, after="last_interaction")),
        (
            "retention_limit(days=1095, after=last_interaction)",
            RetentionLimit(days=1095, after="last_interaction"),
        ),
        ("retention_limit(days=365, after=purpose_end)", RetentionLimit(365, "purpose_end")),
        ("retention_limit(after=collection, days=30)", RetentionLimit(30, "collection")),
    ],
)
def test_every_obligation_type_parses(text: str, expected: Obligation) -> None:
    assert parse_obligations(text) == (expected,)


def test_parsed_obligations_have_the_right_python_types() -> None:
    review, floor, consent = parse_obligations(
        "human_review(reviewers=3), similarity_floor(max_fmr=0.001), consent_on_file(kind=explicit)"
    )
    assert isinstance(review, HumanReview)
    assert type(review.reviewers) is int
    assert isinstance(floor, SimilarityFloor)
    assert type(floor.max_fmr) is float
    assert isinstance(consent, ConsentOnFile)
    assert consent.kind is ConsentKind.EXPLICIT


def test_a_list_keeps_its_order() -> None:
    assert parse_obligations(
        "similarity_floor(max_fmr=0.0001), human_review(reviewers=1), not_sole_basis"
    ) == (SimilarityFloor(1e-4), HumanReview(1), NotSoleBasis())
    assert parse_obligations("authorisation_within(hours=24), delete_if_authorisation_refused") == (
        AuthorisationWithin(24),
        DeleteIfAuthorisationRefused(),
    )


def test_an_empty_annotation_means_no_obligations() -> None:
    assert parse_obligations("") == ()
    assert parse_obligations("   ") == ()


@pytest.mark.parametrize(
    "text",
    [
        "human_review(reviewers=2),not_sole_basis",
        "  human_review(reviewers=2) ,  not_sole_basis  ",
        "human_review ( reviewers = 2 ), not_sole_basis",
        "\thuman_review(\n  reviewers=2\n),\n  not_sole_basis\n",
        "human_review(reviewers=2 ,), not_sole_basis",
    ],
)
def test_whitespace_is_tolerated(text: str) -> None:
    assert parse_obligations(text) == (HumanReview(reviewers=2), NotSoleBasis())


def test_whitespace_around_several_arguments() -> None:
    assert parse_obligations("retention_limit( days = 1095 ,after= last_interaction )") == (
        RetentionLimit(days=1095, after="last_interaction"),
    )


@pytest.mark.parametrize(
    ("text", "mentions"),
    [
        ("garbage!", "cannot read"),
        ("human_review(reviewers=2) not_sole_basis", "cannot read"),
        ("human_review(reviewers=2", "cannot read"),
        ("human_review reviewers=2", "cannot read"),
        (", not_sole_basis", "cannot read"),
        ("not_sole_basis,, notice_given", "cannot read"),
        ("human_review((reviewers=2))", "cannot read"),
        ("Human_Review", "cannot read"),
        ("human-review", "cannot read"),
        ("pray", "unknown obligation 'pray'"),
        ("human_review(reviewers=0)", "reviewers='0'"),
        ("human_review(reviewers=-1)", "reviewers='-1'"),
        ("human_review(reviewers=two)", "reviewers='two'"),
        ("human_review(reviewers=2.5)", "reviewers='2.5'"),
        ("human_review(reviewers=)", "reviewers=''"),
        ("human_review(people=2)", "human_review takes reviewers, not 'people=2'"),
        ("human_review(2)", "human_review takes reviewers, not '2'"),
        ("notice_given(when=before)", "notice_given takes no arguments"),
        ("not_sole_basis(x=1)", "not_sole_basis takes no arguments"),
        ("consent_on_file(kind=verbal)", "kind='verbal'"),
        ("similarity_floor(max_fmr=0)", "max_fmr='0'"),
        ("similarity_floor(max_fmr=1)", "max_fmr='1'"),
        ("similarity_floor(max_fmr=nan)", "max_fmr='nan'"),
        ("similarity_floor(max_fmr=high)", "max_fmr='high'"),
        ("log_retention", "days"),
        ("log_retention(days=0)", "days='0'"),
        ("authorisation_within", "hours"),
        ("authorisation_within(hours=1.5)", "hours='1.5'"),
        ("retention_limit(after=purpose_end)", "days"),
        ("retention_limit(days=30, after=forever)", "after='forever'"),
        ("retention_limit(days=30, until=purpose_end)", "retention_limit takes days, after"),
    ],
)
def test_garbage_is_a_syntax_error(text: str, mentions: str) -> None:
    with pytest.raises(ObligationSyntaxError) as caught:
        parse_obligations(text)
    assert mentions in str(caught.value)


def test_an_unknown_obligation_lists_the_known_ones() -> None:
    with pytest.raises(ObligationSyntaxError) as caught:
        parse_obligations("not_sole_basis, pray")
    message = str(caught.value)
    for name in ("human_review", "consent_on_file", "retention_limit", "similarity_floor"):
        assert name in message


def test_obligation_syntax_error_is_a_value_error() -> None:
    assert issubclass(ObligationSyntaxError, ValueError)


def test_a_repeated_argument_is_refused() -> None:
    with pytest.raises(ObligationSyntaxError, match="reviewers"):
        parse_obligations("human_review(reviewers=2, reviewers=1)")


# --- JSON -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("obligation", "expected"),
    [
        (HumanReview(reviewers=2), {"type": "human_review", "reviewers": 2}),
        (ConsentOnFile(), {"type": "consent_on_file"}),
        (ConsentOnFile(ConsentKind.EXPLICIT), {"type": "consent_on_file", "kind": "explicit"}),
        (NoticeGiven(), {"type": "notice_given"}),
        (SimilarityFloor(max_fmr=1e-4), {"type": "similarity_floor", "max_fmr": 1e-4}),
        (LogRetention(days=183), {"type": "log_retention", "days": 183}),
        (NotSoleBasis(), {"type": "not_sole_basis"}),
        (AuthorisationWithin(hours=24), {"type": "authorisation_within", "hours": 24}),
        (DeleteIfAuthorisationRefused(), {"type": "delete_if_authorisation_refused"}),
        (
            RetentionLimit(days=1095),
            {"type": "retention_limit", "days": 1095, "after": "last_interaction"},
        ),
    ],
)
def test_obligation_json_shapes(obligation: Obligation, expected: dict[str, object]) -> None:
    shape = obligation_json(obligation)
    assert shape == expected
    assert next(iter(shape)) == "type"
    assert None not in shape.values()


def test_obligation_json_holds_plain_json_values() -> None:
    shape = obligation_json(ConsentOnFile(ConsentKind.WRITTEN))
    assert type(shape["kind"]) is str


# --- merging --------------------------------------------------------------------------------


def test_merging_nothing() -> None:
    assert merge_obligations([]) == ()


def test_the_most_reviewers_win() -> None:
    assert merge_obligations([HumanReview(1), HumanReview(3), HumanReview(2)]) == (HumanReview(3),)


def test_the_shortest_authorisation_deadline_wins() -> None:
    merged = merge_obligations([AuthorisationWithin(48), AuthorisationWithin(24)])
    assert merged == (AuthorisationWithin(24),)


def test_the_longest_log_retention_wins() -> None:
    merged = merge_obligations([LogRetention(183), LogRetention(400), LogRetention(30)])
    assert merged == (LogRetention(400),)


def test_the_lowest_false_match_rate_wins() -> None:
    merged = merge_obligations(
        [SimilarityFloor(1e-3), SimilarityFloor(1e-5), SimilarityFloor(1e-4)]
    )
    assert merged == (SimilarityFloor(1e-5),)


def test_the_shortest_retention_wins_per_event() -> None:
    merged = merge_obligations(
        [
            RetentionLimit(1095, "last_interaction"),
            RetentionLimit(365, "purpose_end"),
            RetentionLimit(400, "last_interaction"),
            RetentionLimit(730, "purpose_end"),
            RetentionLimit(30, "collection"),
        ]
    )
    assert set(merged) == {
        RetentionLimit(400, "last_interaction"),
        RetentionLimit(365, "purpose_end"),
        RetentionLimit(30, "collection"),
    }
    assert len(merged) == 3


@pytest.mark.parametrize(
    ("kinds", "strongest"),
    [
        ([None, ConsentKind.WRITTEN], ConsentKind.WRITTEN),
        ([ConsentKind.WRITTEN, None], ConsentKind.WRITTEN),
        ([ConsentKind.WRITTEN, ConsentKind.EXPLICIT], ConsentKind.EXPLICIT),
        ([ConsentKind.EXPLICIT, ConsentKind.WRITTEN], ConsentKind.EXPLICIT),
        ([ConsentKind.ELECTRONIC, ConsentKind.EXPLICIT, None], ConsentKind.EXPLICIT),
        ([None, ConsentKind.ELECTRONIC], ConsentKind.ELECTRONIC),
    ],
)
def test_the_strongest_consent_kind_wins(
    kinds: list[ConsentKind | None], strongest: ConsentKind
) -> None:
    assert merge_obligations([ConsentOnFile(kind) for kind in kinds]) == (ConsentOnFile(strongest),)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (ConsentKind.WRITTEN, ConsentKind.ELECTRONIC),
        (None, ConsentKind.NONE),
    ],
)
def test_merging_tied_consent_kinds_is_order_independent(
    first: ConsentKind | None, second: ConsentKind | None
) -> None:
    one, two = ConsentOnFile(first), ConsentOnFile(second)
    assert merge_obligations([one, two]) == merge_obligations([two, one])


def test_duplicates_are_merged_and_different_types_all_kept() -> None:
    merged = merge_obligations(
        [
            NotSoleBasis(),
            HumanReview(1),
            NotSoleBasis(),
            NoticeGiven(),
            DeleteIfAuthorisationRefused(),
            NoticeGiven(),
            HumanReview(2),
            DeleteIfAuthorisationRefused(),
        ]
    )
    # Sorted by type name ("not_sole_basis" < "notice_given").
    assert merged == (
        DeleteIfAuthorisationRefused(),
        HumanReview(2),
        NotSoleBasis(),
        NoticeGiven(),
    )


def test_merge_of_two_shipped_style_annotations() -> None:
    police = parse_obligations(
        "similarity_floor(max_fmr=0.0001), human_review(reviewers=1), not_sole_basis"
    )
    stricter = parse_obligations("human_review(reviewers=2), not_sole_basis")
    merged = merge_obligations([*police, *stricter])
    assert set(merged) == {SimilarityFloor(1e-4), HumanReview(2), NotSoleBasis()}
    assert len(merged) == 3


def test_the_merged_tuple_is_sorted_by_type() -> None:
    merged = merge_obligations(
        [NotSoleBasis(), HumanReview(1), AuthorisationWithin(24), ConsentOnFile()]
    )
    assert [o.type for o in merged] == sorted(o.type for o in merged)


# --- properties -----------------------------------------------------------------------------

obligations = st.one_of(
    st.builds(HumanReview, reviewers=st.integers(1, 5)),
    st.builds(ConsentOnFile, kind=st.sampled_from([None, *ConsentKind])),
    st.just(NoticeGiven()),
    st.builds(SimilarityFloor, max_fmr=st.sampled_from([1e-2, 1e-3, 1e-4, 1e-5, 1e-6])),
    st.builds(LogRetention, days=st.integers(1, 3650)),
    st.just(NotSoleBasis()),
    st.builds(AuthorisationWithin, hours=st.integers(1, 96)),
    st.just(DeleteIfAuthorisationRefused()),
    st.builds(
        RetentionLimit,
        days=st.integers(1, 3650),
        after=st.sampled_from(["last_interaction", "purpose_end", "collection"]),
    ),
)


@given(
    st.lists(obligations, max_size=10).flatmap(
        lambda items: st.tuples(st.just(items), st.permutations(items))
    )
)
def test_merging_is_order_independent(pair: tuple[list[Obligation], list[Obligation]]) -> None:
    items, shuffled = pair
    assert merge_obligations(items) == merge_obligations(list(shuffled))


@given(st.lists(obligations, max_size=10))
def test_merging_keeps_one_of_each_kind_and_is_idempotent(items: list[Obligation]) -> None:
    merged = merge_obligations(items)
    keys = [(o.type, o.after if isinstance(o, RetentionLimit) else "") for o in merged]
    assert len(keys) == len(set(keys))
    assert set(keys) == {(o.type, o.after if isinstance(o, RetentionLimit) else "") for o in items}
    assert set(merged) <= set(items)
    assert merge_obligations(list(merged)) == merged
    assert merge_obligations(items + items) == merged


def _render(obligation: Obligation) -> str:
    shape = obligation_json(obligation)
    name = shape.pop("type")
    arguments = ", ".join(f"{key}={value}" for key, value in shape.items())
    return f"{name}({arguments})" if arguments else str(name)


@given(st.lists(obligations, max_size=6))
def test_rendered_json_parses_back(items: list[Obligation]) -> None:
    text = ", ".join(_render(o) for o in items)
    assert parse_obligations(text) == tuple(items)
