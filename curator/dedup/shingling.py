"""How text is cut into shingles (``word:K`` or ``char:N``), without the kernels of
:mod:`curator.dedup.minhash` (so that checking the option does not import numba)."""

from __future__ import annotations

import re
from dataclasses import dataclass

SHINGLE_PATTERN = re.compile(r"^(word|char):([1-9][0-9]?)$")


@dataclass(frozen=True)
class Shingling:
    """``word:k`` or ``char:n``."""

    kind: str
    size: int

    @classmethod
    def parse(cls, text: str) -> Shingling:
        match = SHINGLE_PATTERN.match(text.strip())
        if not match:
            raise ValueError(
                f"{text!r} is not a shingling; use word:K or char:N with K, N from 1 to 99, e.g. word:5"
            )
        return cls(match.group(1), int(match.group(2)))

    def __str__(self) -> str:
        return f"{self.kind}:{self.size}"
