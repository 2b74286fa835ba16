"""What an ingest (or tag) run did: its counts, and the error of a run that keeps nothing."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from curator.core.errors import IngestFailed


@dataclass
class IngestResult:
    """What one ingest run did. ``rows_read == ingested + skipped + rejected`` always."""

    run_id: str
    status: str
    source: str
    rows_read: int = 0
    ingested: int = 0
    skipped: int = 0
    rejected: int = 0
    content_bytes: int = 0
    shards: int = 0
    seconds: float = 0.0
    reject_codes: dict[str, int] = field(default_factory=dict)
    skip_codes: dict[str, int] = field(default_factory=dict)
    rejects_path: str | None = None
    #: reject code → its first rejected record: "`file` line N: reason"
    first_rejects: dict[str, str] = field(default_factory=dict)
    ignored_files: list[str] = field(default_factory=list)
    files: int = 0
    #: with a tokenizer: the tokens of the samples ingested, and the tokenizer that counted them
    #: (path, sha256, vocabulary size)
    tokens: int | None = None
    tokenizer: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def codes_text(codes: Mapping[str, int]) -> str:
    return ", ".join(f"{code}: {codes[code]:,}" for code in _by_count(codes))


def _by_count(codes: Mapping[str, int]) -> list[str]:
    """Reject codes, most frequent first."""
    return sorted(codes, key=lambda code: (-codes[code], code))


def first_rejects(path: str | None, codes: Mapping[str, int]) -> dict[str, str]:
    """The first rejected record of each code in the rejects file `path` (JSON Lines), as
    ``"`file` line N: reason"``, most frequent code first. Reading stops once every code of
    `codes` is found.

    >>> first_rejects("store/rejects/RUN/rejects.jsonl", {"missing_column": 300})  # doctest: +SKIP
    {'missing_column': '`a.jsonl` line 1: no content column `text` (columns: prompt, completion); name it with --text-column'}
    """
    found: dict[str, str] = {}
    if not path or not codes:
        return found
    # The code is written before the reason and the record, so this text only matches there.
    markers = {
        code: '"code": ' + json.dumps(code, ensure_ascii=False) + ', "reason": ' for code in codes
    }
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            code = next((c for c, m in markers.items() if c not in found and m in line), None)
            if code is None:
                continue
            record = json.loads(line)
            if record.get("code") != code:
                continue
            where = f"`{record.get('file')}`"
            for kind in ("line", "row", "sample"):
                if record.get(kind) is not None:
                    where += f" {kind} {record[kind]}"
            found[code] = f"{where}: {record.get('reason')}"
            if len(found) == len(markers):
                break
    return {code: found[code] for code in _by_count(codes) if code in found}


def kept_nothing_error(
    *,
    files: int,
    rows_read: int,
    kept: int,
    skipped: int,
    reject_codes: Mapping[str, int],
    first: Mapping[str, str],
    rejects_path: str | None,
    outcome: str,
) -> IngestFailed | None:
    """The error of a run (ingest or tag) that keeps nothing, or in which whole files or
    batches are rejected for a missing column; None when the run did something useful (records
    kept, or all already in the store). `outcome` is what did not happen: committed, written."""
    rejected = sum(reject_codes.values())
    missing = reject_codes.get("missing_column", 0)
    if rows_read == 0:
        message = f"no record was read from the {files:,} input file{'s' if files != 1 else ''}"
    elif kept == 0 and skipped == 0:
        message = (
            f"no record was kept: all {rejected:,} records read were rejected "
            f"({codes_text(reject_codes)})"
        )
    elif missing:
        message = (
            f"{missing:,} of {rows_read:,} records were rejected because a column is missing "
            "(a whole file or batch without it)"
        )
    else:
        return None
    lines = []
    if first:
        lines.append("fix what the first rejected record of each reason says, then run again:")
        lines += [f"  {code}: {reason}" for code, reason in first.items()]
        lines.append(f"Every rejected record is in {rejects_path}.")
    else:
        lines.append("check that the inputs hold records.")
    lines.append("--allow-empty (Python: allow_empty=True) accepts such a run.")
    return IngestFailed(f"{message}; nothing was {outcome}", "\n".join(lines))
