"""The deployment's galleries are searched by the index kind the settings choose; both kinds
follow enrolment and erasure the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_platform import ACCESS, Clock, _enrol, _with_staff, photo, settings_for

from faceaccord.biometrics.fakes import fake_engine
from faceaccord.matching.approximate import HnswIndex
from faceaccord.matching.exact import ExactIndex
from faceaccord.platform.deployment import Platform
from faceaccord.platform.erasure import erase_subject
from faceaccord.platform.identification import identify
from faceaccord.settings import IndexSettings


@pytest.mark.parametrize(("kind", "index_type"), [("exact", ExactIndex), ("hnsw", HnswIndex)])
def test_the_chosen_index_kind_identifies_and_forgets_the_erased(
    tmp_path: Path, kind: str, index_type: type
) -> None:
    settings = settings_for(tmp_path / "home", f"sqlite:///{tmp_path / 'fa.db'}")
    settings = settings.model_copy(update={"index": IndexSettings(kind=kind)})  # type: ignore[arg-type]
    with Platform.open(settings, engine=fake_engine(), clock=Clock()) as platform:
        _with_staff(platform)
        for seed, name in enumerate(["alice", "bob", "carol"], start=1):
            _enrol(platform, name, seed)
        found = identify(platform, gallery="staff", image=photo(2), purpose=ACCESS, actor="door")
        assert [c.subject for c in found.candidates] == ["bob"]
        assert isinstance(platform.index_for(platform.gallery_id("staff")), index_type)

        erase_subject(
            platform, gallery="staff", subject="bob", actor="dpo", reason="erasure_request"
        )
        again = identify(platform, gallery="staff", image=photo(2), purpose=ACCESS, actor="door")
        assert again.candidates == ()
        assert again.status == "no_match"
