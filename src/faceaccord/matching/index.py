"""The ``TemplateIndex`` port: 1:N search over the templates of one gallery and one model.

Identification is open-set: ``search`` returns only candidates within the threshold, best first,
one per subject, and an empty list means "no match" (a first-class answer, not an error).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

__all__ = ["Candidate", "TemplateIndex"]


@dataclass(frozen=True, slots=True)
class Candidate:
    subject_id: str
    template_id: str
    distance: float
    similarity: float
    """Cosine similarity of the probe and the template."""


class TemplateIndex(Protocol):
    model_id: str
    dimension: int

    def add(
        self,
        *,
        template_ids: Sequence[str],
        subject_ids: Sequence[str],
        vectors: NDArray[np.float32],
    ) -> None:
        """Add templates (rows of ``vectors``); re-adding a template id replaces it."""
        ...

    def remove_subjects(self, subject_ids: Sequence[str]) -> int:
        """Remove every template of these subjects; returns how many were removed."""
        ...

    def search(self, probe: NDArray[np.float32], *, k: int, threshold: float) -> list[Candidate]:
        """Up to ``k`` subjects whose nearest template is within ``threshold``, nearest first."""
        ...

    def template_ids(self) -> set[str]: ...

    def __len__(self) -> int: ...
