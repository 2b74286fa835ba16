"""Declared provenance: what the ingest and tag flags say about the samples of a run."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from curator.core.errors import ProvenanceError
from curator.core.schema import (
    EVIDENCE,
    MAX_GENERATION,
    ORIGINS,
    RESERVED_NAMES,
    SOURCE_NAME_PATTERN,
)


@dataclass(frozen=True)
class ProvenanceSpec:
    """The provenance a run declares for every sample it reads, and where per-row values come from.

    Args:
        source: dataset or crawl name; letters, digits, ``.``, ``_``, ``-`` (it becomes a
            directory name and the prefix of every ``sample_id``).
        origin: ``real``, ``synthetic`` or ``unknown``.
        generation: 0 for real (the default), k >= 1 for synthetic (required), none for unknown.
        model: the generator of synthetic samples.
        confidence: ``origin_confidence`` of the declared label (default 1.0).
        evidence: ``origin_evidence`` (default ``declared``).
        collected_at: one creation/capture time for every sample (naive times are UTC; a date
            is its midnight, UTC).
        collected_at_column: or an input column holding it per row (ISO 8601 text, dates,
            timestamps, or Unix seconds).
        id_column: input column whose value is the sample key (default: the row's position).
        text_column / image_column: the content column (default ``text``).
        parent_id_column: input column naming the sample this one was derived from.
        renames: ``(old, new)`` pairs applied to input columns first, to map a column named
            like a provenance column out of the way.

    >>> ProvenanceSpec(source="web-2021", origin="real").generation
    0
    """

    source: str
    origin: str
    generation: int | None = None
    model: str | None = None
    confidence: float = 1.0
    evidence: str = "declared"
    collected_at: datetime | date | None = None
    collected_at_column: str | None = None
    id_column: str | None = None
    text_column: str = "text"
    image_column: str | None = None
    parent_id_column: str | None = None
    renames: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        # fullmatch: with re.match, the pattern's `$` also matches before a final newline.
        if not isinstance(self.source, str) or not re.fullmatch(SOURCE_NAME_PATTERN, self.source):
            raise ProvenanceError(
                f"`--source` {self.source!r} is not a valid source name",
                "use letters, digits, '.', '_' and '-' (it becomes a directory and the "
                'prefix of every sample_id), e.g. --source web-2021 (Python: `source="web-2021"`)',
            )
        if self.origin not in ORIGINS:
            raise ProvenanceError(
                f"`--origin` {self.origin!r} is not one of {', '.join(ORIGINS)}",
                "pass --origin real, --origin synthetic or --origin unknown (Python: `origin=`)",
            )
        if self.evidence not in EVIDENCE:
            raise ProvenanceError(f"evidence {self.evidence!r} is not one of {', '.join(EVIDENCE)}")
        if self.origin == "real":
            if self.generation not in (None, 0):
                raise ProvenanceError(
                    f"`--generation` {self.generation} contradicts `--origin real`",
                    "real samples are generation 0; drop --generation (Python: `generation=`) or use --origin synthetic",
                )
            object.__setattr__(self, "generation", 0)
            if self.model is not None:
                raise ProvenanceError(
                    "`--model` names a generator, but `--origin real` samples have none",
                    "drop --model (Python: `model=`), or use --origin synthetic",
                )
        elif self.origin == "synthetic":
            if self.generation is None:
                raise ProvenanceError(
                    "`--origin synthetic` needs `--generation N` (N >= 1)",
                    "pass --generation 1 (Python: `generation=1`) for samples of a model trained on real data only",
                )
            if not 1 <= self.generation <= MAX_GENERATION:
                raise ProvenanceError(
                    f"`--generation` {self.generation} is out of range for synthetic samples",
                    f"synthetic samples have generation 1..{MAX_GENERATION}",
                )
        elif self.generation is not None:
            raise ProvenanceError(
                "`--generation` is given for `--origin unknown` samples",
                "an unknown origin has no known generation; drop --generation (Python: `generation=`)",
            )
        if not 0.0 <= self.confidence <= 1.0:
            raise ProvenanceError(
                f"`--confidence` {self.confidence} is outside 0..1", "pass a value between 0 and 1"
            )
        if self.collected_at is not None and self.collected_at_column is not None:
            raise ProvenanceError(
                "`--collected-at` and `--collected-at-column` are both given",
                "use one: a single date for every sample, or a column with one per row",
            )
        if self.collected_at is not None:
            when = self.collected_at
            if not isinstance(when, datetime):
                when = datetime(when.year, when.month, when.day)
            object.__setattr__(self, "collected_at", as_utc(when))
        if self.image_column is not None and self.text_column not in ("text", self.image_column):
            raise ProvenanceError(
                "`--text-column` and `--image-column` are both given",
                "a sample's content is text or an image: pass one of them",
            )
        for old, new in self.renames:
            if new in RESERVED_NAMES:
                raise ProvenanceError(
                    f"`--rename-column {old}={new}` renames to a provenance column name",
                    f"pick a name that is not one of: {', '.join(sorted(RESERVED_NAMES))}",
                )
        for flag, column in (
            ("--text-column", self.text_column),
            ("--image-column", self.image_column),
            ("--id-column", self.id_column),
            ("--collected-at-column", self.collected_at_column),
            ("--parent-id-column", self.parent_id_column),
        ):
            if column is not None and column in RESERVED_NAMES:
                raise ProvenanceError(
                    f"`{flag} {column}` names a provenance column",
                    f"rename the input column first with --rename-column {column}=NEW_NAME "
                    f"and pass {flag} NEW_NAME",
                )

    @property
    def content_kind(self) -> str:
        """``text`` or ``image``."""
        return "image" if self.image_column is not None else "text"

    @property
    def content_column(self) -> str:
        """The input column holding the content."""
        return self.image_column if self.image_column is not None else self.text_column

    def to_json(self) -> dict[str, Any]:
        """Canonical form, recorded with the run."""
        data = asdict(self)
        data["collected_at"] = self.collected_at.isoformat() if self.collected_at else None
        data["renames"] = [list(pair) for pair in self.renames]
        return data


def as_utc(value: datetime | date) -> datetime:
    """A datetime in UTC; naive datetimes and dates are taken to be UTC."""
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


_UNIX_SECONDS = re.compile(r"\d+(\.\d*)?|\.\d+")


def parse_timestamp(value: object) -> datetime:
    """Parse one `collected_at` value: ISO 8601 text (a date or a date-time, `Z` allowed, the basic
    format `20210601` too), a date or datetime, or Unix seconds (a JSON number, or text that is
    not an ISO 8601 date and is a number with at least 9 digits or a decimal point, such as
    `1622505600` or `1622505600.5`). Raises ``ValueError`` with the reason."""
    if isinstance(value, datetime | date):
        return as_utc(value)
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a time")
    if isinstance(value, int | float):
        return datetime.fromtimestamp(float(value), tz=UTC)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("empty time")
        try:
            return as_utc(datetime.fromisoformat(text))
        except ValueError:
            pass
        try:
            return as_utc(date.fromisoformat(text))
        except ValueError:
            pass
        if _UNIX_SECONDS.fullmatch(text) and ("." in text or len(text) >= 9):
            return datetime.fromtimestamp(float(text), tz=UTC)
        raise ValueError(f"{value!r} is not an ISO 8601 date or time") from None
    raise ValueError(f"{value!r} is not a time")
