"""Tag: provenance columns for users who keep their own shards, with no store."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from curator.core.errors import IngestFailed, InputError
from curator.core.provenance import ProvenanceSpec

if TYPE_CHECKING:
    from curator.engine.base import Engine


@dataclass
class TagResult:
    """What one tag run wrote. ``rows_read == written + rejected``."""

    run_id: str
    out: str
    rows_read: int = 0
    written: int = 0
    rejected: int = 0
    content_bytes: int = 0
    files: list[str] = field(default_factory=list)
    #: each input file → the output files written from it, in input order (files read together,
    #: such as a folder of images, share theirs)
    outputs_by_input: dict[str, list[str]] = field(default_factory=dict)
    reject_codes: dict[str, int] = field(default_factory=dict)
    rejects_path: str | None = None
    seconds: float = 0.0
    #: with a tokenizer: the tokens of the rows written, and the tokenizer that counted them
    tokens: int | None = None
    tokenizer: dict[str, Any] | None = None

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def tag(
    inputs: Sequence[str | os.PathLike[str]],
    out: str | os.PathLike[str],
    *,
    source: str,
    origin: str,
    generation: int | None = None,
    model: str | None = None,
    confidence: float = 1.0,
    collected_at: datetime | date | None = None,
    collected_at_column: str | None = None,
    id_column: str | None = None,
    text_column: str = "text",
    image_column: str | None = None,
    parent_id_column: str | None = None,
    rename_columns: dict[str, str] | None = None,
    input_format: str = "auto",
    strict: bool = False,
    allow_empty: bool = False,
    jobs: int | None = None,
    engine: str | Engine | None = None,
    shard_bytes: int | None = None,
    max_image_pixels: int = 89_478_485,
    batch_rows: int = 8192,
    max_record_bytes: int = 64 << 20,
    progress: bool = False,
    tokenizer: str | os.PathLike[str] | None = None,
) -> TagResult:
    """Write the inputs as Parquet shards in `out`: every original column, in the original
    order, then the provenance columns. No store is involved.

    Shards appear in `out` as ``part-00000.parquet``, … only when the whole run has succeeded;
    rejected records go to ``out/rejects/rejects.jsonl`` with their reason.

    `max_record_bytes` is the longest JSON Lines line or CSV record read (default 64 MiB): a
    longer one is rejected as ``record_too_large``; `engine` runs the tasks (``local``, the
    default, env `CURATOR_ENGINE`, or an :class:`~curator.engine.base.Engine`); the other arguments
    are those of :meth:`curator.Store.ingest`. With `tokenizer` (a ``tokenizer.json``), each
    text row gets `n_tokens` (no special tokens), and each shard's footer names the tokenizer.

    Raises:
        InputError: `out` already holds Parquet files.
        IngestFailed: `strict` and some record was rejected, or (unless `allow_empty`) no
            record was kept or whole files were rejected for a missing column; no shard was
            written.

    >>> curator.tag(["corpus.jsonl"], "tagged/", source="web-2021", origin="real")  # doctest: +SKIP
    """
    from curator.core.version import __version__
    from curator.ingest.commit import check_tokenizer, token_total
    from curator.ingest.pipeline import TaskConfig, run_tasks
    from curator.ingest.readers import ReaderOptions, discover, plan_tasks
    from curator.ingest.result import first_rejects, kept_nothing_error
    from curator.store.base import new_run_id
    from curator.store.shards import DEFAULT_SHARD_BYTES

    counted = check_tokenizer(tokenizer)
    clock = time.monotonic()
    spec = ProvenanceSpec(
        source=source,
        origin=origin,
        generation=generation,
        model=model,
        confidence=confidence,
        collected_at=collected_at,
        collected_at_column=collected_at_column,
        id_column=id_column,
        text_column=text_column,
        image_column=image_column,
        parent_id_column=parent_id_column,
        renames=tuple(sorted((rename_columns or {}).items())),
    )
    out_dir = os.path.abspath(os.fspath(out))
    if os.path.isdir(out_dir) and any(n.endswith(".parquet") for n in os.listdir(out_dir)):
        raise InputError(
            f"`{out_dir}` already holds Parquet files",
            "pick an empty or new --out directory (Python: `out`)",
        )
    files, _ignored = discover([os.fspath(i) for i in inputs], input_format)
    if not files:
        raise InputError(
            "no input files found", "name JSONL, Parquet, CSV, text, image or tar files"
        )
    tasks = plan_tasks(files)
    run_id = new_run_id()
    os.makedirs(out_dir, exist_ok=True)
    staging = os.path.join(out_dir, f".tmp-{run_id}")
    os.makedirs(staging)
    config = TaskConfig(
        spec=spec,
        options=ReaderOptions(
            text_column=spec.text_column,
            image_column=spec.image_column,
            max_image_pixels=max_image_pixels,
            batch_rows=batch_rows,
            max_record_bytes=max_record_bytes,
        ),
        staging_dir=staging,
        ingest_id=run_id,
        curator_version=__version__,
        layout="tag",
        shard_bytes=shard_bytes or DEFAULT_SHARD_BYTES,
        tokenizer=counted["path"] if counted else None,
    )
    result = TagResult(run_id=run_id, out=out_dir)
    try:
        results = run_tasks(
            tasks, config, engine=engine, jobs=jobs, progress=progress, description="tag"
        )
        rejects = []
        for r in results:
            result.rows_read += r.rows_read
            result.written += r.written
            result.rejected += r.rejected
            result.content_bytes += r.content_bytes
            for code, count in r.reject_codes.items():
                result.reject_codes[code] = result.reject_codes.get(code, 0) + count
            if r.rejects_path:
                rejects.append(r.rejects_path)
        if rejects:
            os.makedirs(os.path.join(out_dir, "rejects"), exist_ok=True)
            result.rejects_path = os.path.join(out_dir, "rejects", "rejects.jsonl")
            with open(result.rejects_path, "w", encoding="utf-8") as target:
                for path in rejects:
                    with open(path, encoding="utf-8") as handle:
                        shutil.copyfileobj(handle, target)
        if strict and result.rejected:
            raise IngestFailed(
                f"--strict: {result.rejected:,} of {result.rows_read:,} records were rejected; "
                "no shard was written",
                f"see {result.rejects_path} for each record and its reason",
            )
        if not allow_empty:
            error = kept_nothing_error(
                files=len(files),
                rows_read=result.rows_read,
                kept=result.written,
                skipped=0,
                reject_codes=result.reject_codes,
                first=first_rejects(result.rejects_path, result.reject_codes),
                rejects_path=result.rejects_path,
                outcome="written",
            )
            if error is not None:
                raise error
        result.outputs_by_input = {file.path: [] for file in files}
        shards = [
            (t, r, n) for t, r in zip(tasks, results, strict=True) for n in range(len(r.shards))
        ]
        for index, (task, r, n) in enumerate(shards):
            final = os.path.join(out_dir, f"part-{index:05d}.parquet")
            os.replace(r.shards[n].path, final)
            result.files.append(final)
            read_from = [r.shard_inputs[n]] if n in r.shard_inputs else [f.path for f in task.files]
            for input_path in read_from:
                result.outputs_by_input[input_path].append(final)
        if counted:
            result.tokenizer = counted
            result.tokens = token_total(result.files)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    result.seconds = time.monotonic() - clock
    return result
