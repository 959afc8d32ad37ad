"""Obligations: what an allowed request must still do. They are written on the Cedar policies
that allow a request, as ``@obligations("human_review(reviewers=2), not_sole_basis")``, checked
when a pack loads, and merged (strictest wins) when several policies allow one request."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any, ClassVar

from faceaccord.governance.vocabulary import ConsentKind

__all__ = [
    "AuthorisationWithin",
    "ConsentOnFile",
    "DeleteIfAuthorisationRefused",
    "HumanReview",
    "LogRetention",
    "NotSoleBasis",
    "NoticeGiven",
    "Obligation",
    "ObligationSyntaxError",
    "RetentionLimit",
    "SimilarityFloor",
    "merge_obligations",
    "obligation_json",
    "parse_obligations",
]


class ObligationSyntaxError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class HumanReview:
    """No action on a match until ``reviewers`` distinct people have confirmed it."""

    type: ClassVar[str] = "human_review"
    reviewers: int = 1


@dataclass(frozen=True, slots=True)
class ConsentOnFile:
    """A consent record must exist for the subject: of at least ``kind`` when one is named."""

    type: ClassVar[str] = "consent_on_file"
    kind: ConsentKind | None = None

    def __post_init__(self) -> None:
        if self.kind == ConsentKind.NONE:  # "at least no consent" is any consent
            object.__setattr__(self, "kind", None)


@dataclass(frozen=True, slots=True)
class NoticeGiven:
    """The subject must have been told, before capture, what is collected and why."""

    type: ClassVar[str] = "notice_given"


@dataclass(frozen=True, slots=True)
class SimilarityFloor:
    """Matches count only at an operating point whose false-match rate is at most ``max_fmr``
    (AWS's "99 % similarity" guidance for public safety, in faceaccord's terms)."""

    type: ClassVar[str] = "similarity_floor"
    max_fmr: float = 1e-4


@dataclass(frozen=True, slots=True)
class LogRetention:
    """Keep the logs of this use for at least ``days``."""

    type: ClassVar[str] = "log_retention"
    days: int


@dataclass(frozen=True, slots=True)
class NotSoleBasis:
    """A match may not be the sole basis for any decision or action about a person."""

    type: ClassVar[str] = "not_sole_basis"


@dataclass(frozen=True, slots=True)
class AuthorisationWithin:
    """An authorisation must be obtained (or requested) within ``hours``."""

    type: ClassVar[str] = "authorisation_within"
    hours: int


@dataclass(frozen=True, slots=True)
class DeleteIfAuthorisationRefused:
    """If the authorisation is refused, everything from this use is deleted."""

    type: ClassVar[str] = "delete_if_authorisation_refused"


@dataclass(frozen=True, slots=True)
class RetentionLimit:
    """Templates are destroyed at most ``days`` after ``after``."""

    type: ClassVar[str] = "retention_limit"
    days: int
    after: str = "last_interaction"


Obligation = (
    HumanReview
    | ConsentOnFile
    | NoticeGiven
    | SimilarityFloor
    | LogRetention
    | NotSoleBasis
    | AuthorisationWithin
    | DeleteIfAuthorisationRefused
    | RetentionLimit
)

_KINDS: dict[str, type[Obligation]] = {
    cls.type: cls
    for cls in (
        HumanReview,
        ConsentOnFile,
        NoticeGiven,
        SimilarityFloor,
        LogRetention,
        NotSoleBasis,
        AuthorisationWithin,
        DeleteIfAuthorisationRefused,
        RetentionLimit,
    )
}
_ITEM = re.compile(r"\s*([a-z_]+)\s*(?:\(([^()]*)\))?\s*(?:,|$)")
_RETENTION_EVENTS = frozenset({"last_interaction", "purpose_end", "collection"})


def parse_obligations(text: str) -> tuple[Obligation, ...]:
    """Parse ``name`` or ``name(key=value, ...)`` items separated by commas."""
    found: list[Obligation] = []
    position = 0
    text = text.strip()
    while position < len(text):
        match = _ITEM.match(text, position)
        if match is None or match.end() == position:
            raise ObligationSyntaxError(f"cannot read obligations from {text[position:]!r}")
        found.append(_build(match[1], match[2] or ""))
        position = match.end()
    return tuple(found)


def obligation_json(obligation: Obligation) -> dict[str, Any]:
    values = {
        key: (str(value) if isinstance(value, ConsentKind) else value)
        for key, value in asdict(obligation).items()
        if value is not None
    }
    return {"type": obligation.type, **values}


def merge_obligations(items: list[Obligation]) -> tuple[Obligation, ...]:
    """One obligation per kind (per retention event), the strictest of those given."""
    merged: dict[tuple[str, str], Obligation] = {}
    for item in items:
        key = (item.type, item.after if isinstance(item, RetentionLimit) else "")
        current = merged.get(key)
        merged[key] = item if current is None else _stricter(current, item)
    return tuple(sorted(merged.values(), key=lambda o: (o.type, repr(o))))


# A total order, so merging never depends on the order packs are listed in.
_CONSENT_STRENGTH = {
    None: 0,
    ConsentKind.ELECTRONIC: 1,
    ConsentKind.WRITTEN: 2,
    ConsentKind.EXPLICIT: 3,
}

# How strict an obligation of each parameterised kind is: larger is stricter.
_STRICTNESS: dict[type[Any], Callable[[Any], float]] = {
    HumanReview: lambda o: o.reviewers,
    SimilarityFloor: lambda o: -o.max_fmr,
    LogRetention: lambda o: o.days,
    AuthorisationWithin: lambda o: -o.hours,
    RetentionLimit: lambda o: -o.days,
    ConsentOnFile: lambda o: _CONSENT_STRENGTH[o.kind],
}


def _stricter(a: Obligation, b: Obligation) -> Obligation:
    strictness = _STRICTNESS.get(type(a))
    if strictness is None:
        return a
    return a if strictness(a) >= strictness(b) else b


def _build(name: str, arguments: str) -> Obligation:
    kind = _KINDS.get(name)
    if kind is None:
        known = ", ".join(sorted(_KINDS))
        raise ObligationSyntaxError(f"unknown obligation {name!r} (known: {known})")
    params = {f.name: f.type for f in fields(kind)}
    values: dict[str, Any] = {}
    for pair in filter(None, (p.strip() for p in arguments.split(","))):
        key, sep, raw = pair.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or key not in params:
            raise ObligationSyntaxError(
                f"{name} takes {', '.join(params) or 'no arguments'}, not {pair!r}"
            )
        if key in values:
            raise ObligationSyntaxError(f"{name}: {key} is given twice")
        values[key] = _value(name, key, raw)
    try:
        return kind(**values)
    except TypeError as exc:
        raise ObligationSyntaxError(f"{name}: {exc}") from None


def _value(name: str, key: str, raw: str) -> Any:
    try:
        if key in {"reviewers", "days", "hours"}:
            number = int(raw)
            if number <= 0:
                raise ValueError
            return number
        if key == "max_fmr":
            rate = float(raw)
            if not 0 < rate < 1:
                raise ValueError
            return rate
        if key == "kind" and raw != ConsentKind.NONE:
            return ConsentKind(raw)
        if key == "after" and raw in _RETENTION_EVENTS:
            return raw
    except ValueError:
        pass
    raise ObligationSyntaxError(f"{name}: {key}={raw!r} is not a valid value")
