"""Ingest and tag: validate, normalise, hash and tag input records with provenance.

One task (a file, some row groups of a Parquet file, or a group of image files) runs in one
process: its records are read in batches, checked, given their provenance columns and streamed into
shards in a staging directory. Bad records go to a rejects file with their reason. The store (or
:func:`curator.ingest.tag`) decides afterwards what becomes visible.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, cast

import pyarrow as pa
import pyarrow.compute as pc

from curator.core.hashing import text_hashes
from curator.core.provenance import ProvenanceSpec, parse_timestamp
from curator.core.schema import (
    IMAGE_COLUMN,
    N_TOKENS_COLUMN,
    PROVENANCE_COLUMNS,
    PROVENANCE_NAMES,
    RESERVED_NAMES,
    TEXT_COLUMN,
    footer_metadata,
)
from curator.ingest.readers import ReadBatch, ReaderOptions, ReadTask, Reject, read_task
from curator.ingest.readers.images import ImageRejected, inspect_image
from curator.ingest.snapshot import Snapshot, StoreView
from curator.store.shards import ShardWriter, WrittenShard

if TYPE_CHECKING:
    from tokenizers import Tokenizer

    from curator.engine.base import Engine

#: `store`: provenance columns, then the content as `text`/`image`, then the input's other
#: columns. `tag`: the input's columns in their original order, then the provenance columns.
Layout = Literal["store", "tag"]


@dataclass
class TaskResult:
    """What one task read and wrote."""

    task_index: int
    rows_read: int = 0
    written: int = 0
    rejected: int = 0
    shards: list[WrittenShard] = field(default_factory=list)
    reject_codes: dict[str, int] = field(default_factory=dict)
    rejects_path: str | None = None
    #: with the `tag` layout, the input file each shard came from (shard index → path)
    shard_inputs: dict[int, str] = field(default_factory=dict)
    #: rows left out because the store has them already (``already_in_store``)
    skip_codes: dict[str, int] = field(default_factory=dict)

    @property
    def skipped(self) -> int:
        """Rows left out because the store has them already."""
        return sum(self.skip_codes.values())

    @property
    def content_bytes(self) -> int:
        """Content bytes written (the shard writer counts them)."""
        return sum(shard.content_bytes for shard in self.shards)


@dataclass(frozen=True)
class TaskConfig:
    """Everything a worker process needs besides the task (picklable)."""

    spec: ProvenanceSpec
    options: ReaderOptions
    staging_dir: str
    ingest_id: str
    curator_version: str
    layout: Layout
    shard_bytes: int
    #: directory that receives this task's shards (defaults to the staging directory)
    shard_dir: str | None = None
    #: what the store held when the run started (`store` layout; see curator.ingest.snapshot)
    snapshot: Snapshot | None = None
    store_root: str = ""
    #: a checked ``tokenizer.json`` (absolute): each row gets `n_tokens` (see add_token_counts)
    tokenizer: str | None = None


class _RejectSink:
    """Appends rejects to a JSON Lines file, opened on the first reject."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.count = 0
        self.codes: dict[str, int] = {}
        self._handle: object | None = None

    def add(self, rejects: list[Reject]) -> None:
        if not rejects:
            return
        if self._handle is None:
            self._handle = open(self.path, "w", encoding="utf-8")  # noqa: SIM115 - closed in close()
        handle = self._handle
        for reject in rejects:
            handle.write(json.dumps(reject.to_json(), ensure_ascii=False) + "\n")  # type: ignore[attr-defined]
            self.codes[reject.code] = self.codes.get(reject.code, 0) + 1
        self.count += len(rejects)

    def close(self) -> str | None:
        if self._handle is None:
            return None
        self._handle.close()  # type: ignore[attr-defined]
        return self.path


def _row_record(table: pa.Table, index: int) -> str:
    row = table.slice(index, 1).to_pylist()[0]

    def default(value: object) -> str:
        if isinstance(value, bytes):
            return f"<{len(value)} bytes>"
        return str(value)

    return json.dumps(row, ensure_ascii=False, default=default)[:100_000]


def _reject_all(batch: ReadBatch, code: str, reason: str) -> list[Reject]:
    return [
        Reject(batch.file.location, position, batch.kind, code, reason)
        for position in batch.positions
    ]


def _is_text_type(data_type: pa.DataType) -> bool:
    return (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_string_view(data_type)
    )


def _as_string_column(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """A text column as Arrow `string` (from `large_string`, `string_view` or a dictionary of
    strings), or None when it holds no strings."""
    data_type = column.type
    if pa.types.is_dictionary(data_type):
        if not _is_text_type(data_type.value_type):
            return None
    elif not _is_text_type(data_type):
        return None
    if pa.types.is_string(data_type):
        return column
    try:
        return column.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        # A batch over 2 GiB of text cannot be `string`; `large_string` is measured as it is.
        if pa.types.is_large_string(data_type):
            return column
        raise


def _id_strings(column: pa.ChunkedArray) -> list[str | None] | None:
    """The values of an id column as strings, or None when its type is not a scalar one that
    casts to text (a struct, a list, a map, binary that is not UTF-8)."""
    data_type = column.type
    if pa.types.is_nested(data_type):
        return None
    if _is_text_type(data_type):
        return column.to_pylist()
    try:
        return column.cast(pa.string()).to_pylist()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None


def _image_bytes_column(column: pa.ChunkedArray) -> pa.ChunkedArray | None:
    """Image bytes from a binary column, or from the `bytes` field of a Hugging Face image struct."""
    data_type = column.type
    if pa.types.is_binary(data_type) or pa.types.is_large_binary(data_type):
        return column
    if pa.types.is_struct(data_type) and data_type.get_field_index("bytes") >= 0:
        return pc.struct_field(column, "bytes")
    return None


def prepare_batch(
    batch: ReadBatch, config: TaskConfig
) -> tuple[pa.Table | None, pa.Array | None, list[int | None], list[Reject]]:
    """Validate one batch and give it provenance columns.

    Returns:
        ``(table, content_bytes, positions, rejects)``: the good rows in the shard layout
        (``None`` when none is left), each good row's content size in bytes and input position,
        and the rejected rows.
    """
    spec = config.spec
    rejects = list(batch.rejects)

    def whole(code: str, reason: str) -> tuple[None, None, list[int | None], list[Reject]]:
        """Every row of the batch rejected for one reason (a file-level problem)."""
        return None, None, [], rejects + _reject_all(batch, code, reason)

    table = batch.table
    if table.num_rows == 0:
        return None, None, [], rejects
    renames = dict(spec.renames)
    if renames and not batch.renamed:
        # One simultaneous mapping, applied once (JSON Lines records are renamed by the reader).
        table = table.rename_columns([renames.get(name, name) for name in table.schema.names])
    names = table.schema.names
    duplicate = next((name for i, name in enumerate(names) if name in names[:i]), None)
    if duplicate is not None:
        return whole(
            "duplicate_column",
            f"input column `{duplicate}` appears {names.count(duplicate)} times"
            + (" (after --rename-column)" if renames else "")
            + "; give the columns distinct names",
        )
    clash = [name for name in table.schema.names if name in RESERVED_NAMES]
    if clash:
        return whole(
            "reserved_column",
            f"input column `{clash[0]}` has the name of a provenance column; "
            f"map it away with --rename-column {clash[0]}=NEW_NAME (Python: `rename_columns={{{clash[0]!r}: ...}}`)",
        )
    if batch.content_hashes is not None:  # image files and tar members: the reader decoded them
        content_name, kind = IMAGE_COLUMN, "image"
    else:
        content_name, kind = spec.content_column, spec.content_kind
    if content_name not in table.schema.names:
        return whole(
            "missing_column",
            f"no content column `{content_name}` (columns: {', '.join(table.schema.names)}); "
            f"name it with --{kind}-column (Python: `{kind}_column=`)",
        )
    target_name = TEXT_COLUMN if kind == "text" else IMAGE_COLUMN
    if (
        config.layout == "store"
        and content_name != target_name
        and target_name in table.schema.names
    ):
        return whole(
            "reserved_column",
            f"input column `{target_name}` would be shadowed by the content column "
            f"`{content_name}`, stored as `{target_name}`; map it away with "
            f"--rename-column {target_name}=NEW_NAME",
        )
    other_name, other_kind = (IMAGE_COLUMN, "image") if kind == "text" else (TEXT_COLUMN, "text")
    if config.layout == "store" and other_name != content_name and other_name in table.schema.names:
        return whole(
            "reserved_column",
            f"input column `{other_name}` has the name of the content column of {other_kind} "
            f"samples, which a {kind} run must not store; map it away with "
            f"--rename-column {other_name}=NEW_NAME",
        )
    for flag, column in (
        ("--id-column", spec.id_column),
        ("--collected-at-column", spec.collected_at_column),
        ("--parent-id-column", spec.parent_id_column),
    ):
        if column is not None and column not in table.schema.names:
            return whole(
                "missing_column",
                f"no column `{column}` for {flag} (columns: {', '.join(table.schema.names)})",
            )
    id_strings: dict[str, list[str | None]] = {}
    for flag, column in (
        ("--id-column", spec.id_column),
        ("--parent-id-column", spec.parent_id_column),
    ):
        if column is None:
            continue
        values = _id_strings(table[column])
        if values is None:
            return whole(
                "wrong_type",
                f"column `{column}` for {flag} has type {table[column].type}; "
                "an id must be a string, a number or another single value",
            )
        id_strings[flag] = values

    content = table[content_name]
    n = table.num_rows
    keep = [True] * n
    reasons: list[tuple[int, str, str] | None] = [None] * n
    hashes: list[str | None] | pa.Array
    if kind == "text":
        as_string = _as_string_column(content)
        if as_string is None:
            return whole(
                "wrong_type",
                f"content column `{content_name}` has type {content.type}, not a string type; "
                "check --text-column (for image bytes use --image-column)",
            )
        if as_string is not content:
            content = as_string
            table = table.set_column(
                table.schema.get_field_index(content_name), content_name, content
            )
        hashes, normalised = text_hashes(content)
        missing = pc.fill_null(pc.equal(normalised, 0), True)
        if missing.true_count:
            for i, length in enumerate(normalised.to_pylist()):
                if length is None:
                    reasons[i] = (i, "missing_content", f"`{content_name}` is null")
                elif length == 0:
                    reasons[i] = (
                        i,
                        "empty_content",
                        f"`{content_name}` is empty or whitespace only",
                    )
        content_bytes = pc.binary_length(content)
    else:
        image_bytes = _image_bytes_column(content)
        if image_bytes is None:
            return whole(
                "wrong_type",
                f"image column `{content_name}` has type {content.type}, not binary "
                "(or a struct with a `bytes` field)",
            )
        if batch.content_hashes is not None:
            hashes = list(batch.content_hashes)
        else:
            hashes = []
            for i, data in enumerate(image_bytes.to_pylist()):
                if data is None:
                    reasons[i] = (i, "missing_content", f"`{content_name}` is null")
                    hashes.append(None)
                    continue
                try:
                    hashes.append(inspect_image(data, config.options.max_image_pixels).content_hash)
                except ImageRejected as exc:
                    reasons[i] = (i, exc.code, exc.reason)
                    hashes.append(None)
        content = image_bytes
        content_bytes = pc.binary_length(image_bytes)

    if spec.id_column is not None:
        keys: list[str | None] = []
        for i, value in enumerate(id_strings["--id-column"]):
            if value is None or value == "":
                if reasons[i] is None:
                    reasons[i] = (i, "missing_id", f"`{spec.id_column}` is null or empty")
                keys.append(None)
            else:
                keys.append(value)
    else:
        keys = list(batch.keys)

    collected: list[datetime | None]
    if spec.collected_at_column is not None:
        collected = []
        column = table[spec.collected_at_column]
        if pa.types.is_timestamp(column.type) and column.type.tz is None:
            column = pc.assume_timezone(column, "UTC")
        for i, value in enumerate(column.to_pylist()):
            if value is None:
                collected.append(None)
                continue
            try:
                collected.append(parse_timestamp(value))
            except (ValueError, OverflowError, OSError) as exc:
                if reasons[i] is None:
                    reasons[i] = (i, "bad_collected_at", f"`{spec.collected_at_column}`: {exc}")
                collected.append(None)
    else:
        # ProvenanceSpec turned a date into a UTC datetime
        collected = [cast("datetime | None", spec.collected_at)] * n

    parents = id_strings.get("--parent-id-column")

    for reason in reasons:
        if reason is not None:
            i, code, text = reason
            keep[i] = False
            rejects.append(
                Reject(
                    batch.file.location,
                    batch.positions[i],
                    batch.kind,
                    code,
                    text,
                    _row_record(table, i),
                )
            )
    if not any(keep):
        return None, None, [], rejects
    mask = pa.array(keep, pa.bool_())
    all_kept = all(keep)

    def kept(values: list) -> list:
        return values if all_kept else [v for v, k in zip(values, keep, strict=True) if k]

    rows = sum(keep)
    source = spec.source
    provenance = {
        "sample_id": pa.array([f"{source}/{key}" for key in kept(keys)], pa.string()),
        "content_hash": (
            (hashes if all_kept else hashes.filter(mask))
            if isinstance(hashes, pa.Array)
            else pa.array(kept(hashes), pa.string())
        ),
        "origin": pa.array([spec.origin] * rows, pa.string()),
        "generation": pa.array([spec.generation] * rows, pa.int16()),
        "origin_confidence": pa.array([spec.confidence] * rows, pa.float32()),
        "origin_evidence": pa.array([spec.evidence] * rows, pa.string()),
        "source": pa.array([source] * rows, pa.string()),
        "model": pa.array([spec.model] * rows, pa.string()),
        "parent_id": pa.array(kept(parents) if parents is not None else [None] * rows, pa.string()),
        "collected_at": pa.array(kept(collected), pa.timestamp("us", tz="UTC")),
        "ingest_id": pa.array([config.ingest_id] * rows, pa.string()),
    }
    assert tuple(provenance) == PROVENANCE_NAMES
    prov_fields = [pa.field(c.name, c.arrow_type, nullable=c.nullable) for c in PROVENANCE_COLUMNS]
    good = table if all_kept else table.filter(mask)
    if not all_kept:
        content = content.filter(mask)
        content_bytes = content_bytes.filter(mask)
    if config.layout == "store":
        fields = [
            *prov_fields,
            pa.field(TEXT_COLUMN if kind == "text" else IMAGE_COLUMN, content.type),
        ]
        arrays = [*provenance.values(), content]
        for name in good.schema.names:
            if name == content_name:
                continue
            fields.append(good.schema.field(name))
            arrays.append(good[name])
    else:
        fields = list(good.schema)
        arrays = list(good.columns)
        fields += prov_fields
        arrays += list(provenance.values())
    out = pa.Table.from_arrays(arrays, schema=pa.schema(fields))
    if isinstance(content_bytes, pa.ChunkedArray):
        content_bytes = content_bytes.combine_chunks()
    return out, content_bytes, kept(list(batch.positions)), rejects


def run_task(
    task: ReadTask, config: TaskConfig, on_rows: Callable[[int], None] | None = None
) -> TaskResult:
    """Read one task, write its shards (``<staging>/<task>-<n>.parquet``) and its rejects
    (``<staging>/rejects/<task>.jsonl``), and say what happened. Runs in a worker process."""
    result = TaskResult(task.index)
    shard_dir = config.shard_dir or config.staging_dir
    os.makedirs(os.path.join(config.staging_dir, "rejects"), exist_ok=True)
    counter = counted = None
    if config.tokenizer is not None:
        from curator.core.tokenizer import load_tokenizer

        counter, info = load_tokenizer(config.tokenizer)  # once per process (cached)
        counted = info.to_json()
    metadata = footer_metadata(config.ingest_id, config.curator_version, counted)
    content_kind = "image" if task.format in ("image", "webdataset") else config.spec.content_kind
    writer = ShardWriter(
        shard_dir,
        lambda n: f"{config.ingest_id}-{task.index:05d}-{n:03d}",
        config.shard_bytes,
        metadata,
        content_kind=content_kind,
    )
    # the text to count: `text` in the store, the input's own column name with `tag`
    text_name = None
    if content_kind == "text":
        text_name = TEXT_COLUMN if config.layout == "store" else config.spec.content_column
    sink = _RejectSink(os.path.join(config.staging_dir, "rejects", f"{task.index:05d}.jsonl"))
    with_locations = config.layout == "store"
    spec = config.spec
    renames = dict(spec.renames)
    reserved = frozenset(RESERVED_NAMES)
    # `tag` keeps each input file's own column order: a file never shares a shard with another.
    shard_per_file = config.layout == "tag" and task.format not in ("text", "image")
    last_file = None
    view = None
    if config.snapshot is not None:
        view = StoreView(
            config.store_root, config.snapshot.known_path, config.snapshot.column_types
        )
    try:
        for batch in read_task(task, config.options, renames, reserved):
            if shard_per_file and last_file is not None and batch.file != last_file:
                writer._close()
            last_file = batch.file
            table, content_bytes, kept_positions, rejects = prepare_batch(batch, config)
            if view is not None and table is not None and content_bytes is not None:
                table, content_bytes, kept_positions = view.apply(
                    batch, table, content_bytes, kept_positions, rejects, result.skip_codes
                )
            read = len(batch.positions) + len(batch.rejects)
            result.rows_read += read
            if on_rows is not None:
                on_rows(read)
            sink.add(rejects)
            if counter is not None and table is not None:
                table = add_token_counts(table, counter, text_name)
            if table is not None and content_bytes is not None:
                sidecar = None
                if with_locations:
                    sidecar = pa.table(
                        {
                            "file": pa.array([batch.file.relpath] * table.num_rows, pa.string()),
                            "kind": pa.array([batch.kind] * table.num_rows, pa.string()),
                            "position": pa.array(kept_positions, pa.int64()),
                        }
                    )
                first_shard = len(writer.shards)
                writer.write(table, content_bytes, sidecar)
                if shard_per_file:  # every shard this write touched holds only this file's rows
                    for index in range(first_shard, len(writer.shards) + 1):
                        result.shard_inputs[index] = batch.file.path
                result.written += table.num_rows
        result.shards = writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        result.rejects_path = sink.close()
    result.rejected = sink.count
    result.reject_codes = dict(sink.codes)
    return result


def add_token_counts(table: pa.Table, tokenizer: Tokenizer, text_name: str | None) -> pa.Table:
    """`table` with `n_tokens` (int32, no special tokens) appended: the tokens of the column
    `text_name`; null for images (`text_name` None).

    Raises:
        InputError: the input already has an `n_tokens` column.
    """
    from curator.core.errors import InputError
    from curator.core.tokenizer import count_tokens

    if N_TOKENS_COLUMN in table.schema.names:
        raise InputError(
            f"input column `{N_TOKENS_COLUMN}` clashes with the token counts `--tokenizer` adds",
            f"map it away with --rename-column {N_TOKENS_COLUMN}=NEW_NAME "
            f"(Python: `rename_columns={{{N_TOKENS_COLUMN!r}: ...}}`), or drop --tokenizer",
        )
    if text_name is not None and text_name in table.schema.names:
        counts = pa.array(count_tokens(tokenizer, table[text_name].to_pylist()), pa.int32())
    else:
        counts = pa.nulls(table.num_rows, pa.int32())
    return table.append_column(pa.field(N_TOKENS_COLUMN, pa.int32()), counts)


#: Below this many input bytes, tasks run in this process: starting worker processes would cost
#: more than it saves.
INLINE_BYTES = 32 << 20


def _input_bytes(tasks: list[ReadTask]) -> int:
    total = 0
    for task in tasks:
        for file in task.files:
            with contextlib.suppress(OSError):
                total += file.size if file.size is not None else os.path.getsize(file.path)
    return total


def run_tasks(
    tasks: list[ReadTask],
    config: TaskConfig,
    *,
    engine: str | Engine | None = None,
    jobs: int | None = None,
    progress: bool = True,
    description: str = "ingest",
) -> list[TaskResult]:
    """Run tasks on an engine (a name, an :class:`Engine`, or the default ``local`` one with
    `jobs` processes), and return their results in task order.

    Small inputs run in this process. The results come back in task order whatever order the
    tasks finish in, so what is written does not depend on timing.
    """
    from functools import partial

    from curator.core.progress import Progress
    from curator.engine.registry import using_engine

    with (
        using_engine(engine, jobs=jobs) as runner,
        Progress(description, total=len(tasks), unit="tasks", enabled=progress) as bar,
    ):
        return runner.map(
            partial(run_task, config=config),
            tasks,
            on_result=lambda _task, result: bar.advance(1, rows=result.rows_read),
            small=_input_bytes(tasks) < INLINE_BYTES,
        )
