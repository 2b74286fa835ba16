"""Token counts for samples already in the store (``curator tokens``).

Every live text shard (of one source, if asked) is rewritten with `n_tokens` — the tokens of each
`text` without special tokens, counted by a local Hugging Face ``tokenizer.json`` — and the new
shards are switched in by the store's one commit protocol (:mod:`curator.store.commit`), as
``curator infer`` does: stage and register under the lock, then one catalog transaction retires
the old shards and registers the new ones (invariant 1). The old shards stay on disk, no longer
live. Content, provenance and `sample_id` are unchanged; only `n_tokens` and the footer key
``curator.tokenizer`` (the tokenizer's path, sha256 and vocabulary size) are new, and the catalog
table ``tokenizers`` records which tokenizer counted each shard.

A shard that this tokenizer (same sha256) already counted is left as it is; image shards have no
text to count and are left as they are (their samples are not counted in a tokens target).

>>> tokens(store, "tokenizer.json", source="web-2021")  # doctest: +SKIP
TokensResult(run_id='…', shards_rewritten=3, samples=12000, tokens=4810233, …)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curator.core.errors import CuratorError, did_you_mean
from curator.core.schema import N_TOKENS_COLUMN, footer_tokenizer

if TYPE_CHECKING:
    from curator.core.tokenizer import TokenizerInfo
    from curator.engine.base import Engine
    from curator.store.base import StoreBase as Store
    from curator.store.commit import WorkDir
    from curator.store.shards import WrittenShard


#: Below this many bytes of shards, they are counted in this process: starting worker processes
#: would cost more than it saves.
SMALL_WORK_BYTES = 32 << 20


class TokensError(CuratorError):
    """Token counts cannot be added as asked."""


@dataclass
class TokensResult:
    """What one ``curator tokens`` run did."""

    run_id: str
    tokenizer: dict[str, Any]
    source: str | None = None
    #: live text shards of the source(s) asked for
    shards: int = 0
    shards_rewritten: int = 0
    #: shards this tokenizer had counted already (left as they are)
    shards_current: int = 0
    #: image shards (nothing to count)
    shards_image: int = 0
    #: samples counted now, and their tokens
    samples: int = 0
    tokens: int = 0
    by_source: dict[str, dict[str, int]] = field(default_factory=dict)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def tokens(
    store: Store,
    tokenizer: str | os.PathLike[str],
    *,
    source: str | None = None,
    lock_timeout: float | None = None,
    progress: bool = False,
    engine: str | Engine | None = None,
) -> TokensResult:
    """Add (or recompute) `n_tokens` for the samples in the store; see the module docstring.

    Args:
        tokenizer: a Hugging Face ``tokenizer.json`` on this machine, or a directory holding one.
        source: only the shards of this source (default: every source).
        lock_timeout: seconds to wait for another writer (default 120, env
            `CURATOR_LOCK_TIMEOUT`).
        progress: draw a progress bar on a terminal.
        engine: where the shards are counted, one task per shard: ``local`` (default; env
            `CURATOR_ENGINE`) or an :class:`~curator.engine.base.Engine`. The driver commits.

    Returns:
        A :class:`TokensResult`: shards rewritten, samples and tokens counted, by source.

    Raises:
        TokenizerError: `tokenizer` is missing or not a ``tokenizer.json``.
        TokensError: `source` is not a source of the store.
        EngineError: `engine` is unknown or not available.
        StoreLockedError: another writer held the store for longer than `lock_timeout`.

    >>> store.tokens("tokenizer.json")  # doctest: +SKIP
    """
    from curator.core.progress import Progress
    from curator.core.tokenizer import load_tokenizer
    from curator.engine.registry import using_engine
    from curator.store import catalog
    from curator.store.base import new_run_id
    from curator.store.commit import WorkDir, writing

    _counter, info = load_tokenizer(tokenizer)
    clock = time.monotonic()
    result = TokensResult(new_run_id(), info.to_json(), source=source)
    with (
        using_engine(engine) as runner,
        writing(store, "tokens", lock_timeout),
        WorkDir.create(store.root, result.run_id, prefix="tokens-") as work,
    ):
        with store.connect(read_only=False) as rw:
            catalog.ensure(rw)
            live = rw.execute(
                "SELECT path, source, content_kind FROM shards WHERE live ORDER BY path"
            ).fetchall()
        if source is not None and source not in {row[1] for row in live}:
            sources = sorted({row[1] for row in live})
            raise TokensError(
                f"`--source {source}`: the store `{store.root}` has no live shard of source "
                f"`{source}`",
                did_you_mean(source, sources)
                + ("its sources: " + ", ".join(f"`{s}`" for s in sources))
                if sources
                else "ingest something first (`curator ingest`)",
            )
        chosen = [row for row in live if source is None or row[1] == source]
        result.shards = len(chosen)
        todo: list[str] = []
        for path, _source, kind in chosen:
            if kind == "image":
                result.shards_image += 1
            elif _counted_by(catalog.store_path(store.root, path), info):
                result.shards_current += 1
            else:
                todo.append(path)
        if todo:
            with Progress("tokens", total=len(todo), unit="shards", enabled=progress) as bar:
                _rewrite(store, todo, info, result, work, runner, bar.advance)
    result.seconds = time.monotonic() - clock
    return result


def _counted_by(path: str, info: TokenizerInfo) -> bool:
    """Whether the shard at `path` has `n_tokens` counted by this very tokenizer file."""
    schema = pq.read_schema(path)
    counted = footer_tokenizer(schema.metadata)
    return (
        N_TOKENS_COLUMN in schema.names
        and counted is not None
        and counted.get("sha256") == info.sha256
    )


def _rewrite(
    store: Store,
    todo: list[str],
    info: TokenizerInfo,
    result: TokensResult,
    work: WorkDir,
    runner: Engine,
    advance: Any,
) -> None:
    """New shards with counts for `todo` (store paths), then one transaction switches them."""
    from curator.core.version import __version__
    from curator.store import catalog
    from curator.store.commit import transaction
    from curator.store.shards import LOCATIONS_SUFFIX

    planned = {old: _new_path(old, result.run_id) for old in todo}
    sidecars = [
        new[: -len(".parquet")] + LOCATIONS_SUFFIX
        for old, new in planned.items()
        if os.path.exists(
            catalog.store_path(store.root, old)[: -len(".parquet")] + LOCATIONS_SUFFIX
        )
    ]
    # Before any file is written: the next writer removes exactly these if this run is killed.
    work.record(sorted([*planned.values(), *sidecars]))
    tasks = [
        CountTask(
            catalog.store_path(store.root, old),
            catalog.store_path(store.root, new),
            info.path,
            info.sha256,
        )
        for old, new in planned.items()
    ]
    written: list[tuple[str, str, WrittenShard]] = []
    try:
        counted = runner.map(
            count_shard,
            tasks,
            on_result=lambda _task, done: advance(1, rows=done[0].rows),
            small=sum(os.path.getsize(task.old_path) for task in tasks) < SMALL_WORK_BYTES,
        )
        for (old_relative, new_relative), task, (shard, tokens) in zip(
            planned.items(), tasks, counted, strict=True
        ):
            sidecar = task.old_path[: -len(".parquet")] + LOCATIONS_SUFFIX
            if os.path.exists(sidecar):
                shutil.copyfile(sidecar, task.new_path[: -len(".parquet")] + LOCATIONS_SUFFIX)
            written.append((old_relative, new_relative, shard))
            result.samples += shard.rows
            result.tokens += tokens
        now = datetime.now(UTC)
        with transaction(store) as con:
            for old_relative, new_relative, shard in written:
                source, _run = con.execute(
                    "SELECT source, run_id FROM shards WHERE path = ?", [old_relative]
                ).fetchall()[0]
                con.execute("UPDATE shards SET live = false WHERE path = ?", [old_relative])
                catalog.register_shard(con, shard, new_relative, source, result.run_id, now)
                slot = result.by_source.setdefault(source, {"samples": 0, "tokens": 0})
                slot["samples"] += shard.rows
            con.execute(
                "INSERT INTO columns VALUES (?, 'int32') ON CONFLICT DO NOTHING",
                [N_TOKENS_COLUMN],
            )
            con.execute(
                "INSERT INTO runs VALUES (?, 'tokens', 'committed', ?, ?, 0, ?, ?, ?, ?, 0, 0, 0, ?, NULL, ?, ?)",
                [result.run_id, now, now, result.source, _args_json(result), result.samples,
                 result.samples, len(written), __version__,
                 f"{result.samples} samples, {result.tokens} tokens counted by {info.path}"],
            )  # fmt: skip
            catalog.rebuild_samples_view(con)
        result.shards_rewritten = len(written)
    except BaseException:
        # Not committed: take back the shards this run wrote (the catalog does not know them).
        with contextlib.suppress(Exception):
            work.take_back(store.registered_paths())
        raise
    work.committed()
    _tokens_by_source(store, result, [new for _old, new, _shard in written])


def _new_path(old_relative: str, run_id: str) -> str:
    """``shards/<source>/<stem>~<run>.parquet``: the stem of the first shard, this run's id."""
    stem = os.path.basename(old_relative)[: -len(".parquet")].split("~")[0]
    return os.path.join(os.path.dirname(old_relative), f"{stem}~{run_id}.parquet").replace(
        os.sep, "/"
    )


@dataclass(frozen=True)
class CountTask:
    """One shard to count (picklable): its file, the new file, the tokenizer and its sha256."""

    old_path: str
    new_path: str
    tokenizer: str
    sha256: str


def count_shard(task: CountTask) -> tuple[WrittenShard, int]:
    """Write `task.old_path` again at `task.new_path` with `n_tokens` (replacing any earlier
    counts) and the tokenizer in the footer; the new shard and its tokens. Runs in a worker.

    Raises:
        TokenizerError: the tokenizer file changed since the run started.
    """
    from curator.core.schema import FOOTER_TOKENIZER_KEY
    from curator.core.tokenizer import TokenizerError, count_tokens, load_tokenizer
    from curator.store.shards import (
        REWRITE_BATCH_BYTES,
        ROW_GROUP_ROWS,
        WrittenShard,
        batch_rows_within,
        composition_of,
        merge_composition,
        sha256_file,
        write_options,
    )

    counter, info = load_tokenizer(task.tokenizer)  # once per process (cached)
    if info.sha256 != task.sha256:
        raise TokenizerError(
            f"tokenizer `{task.tokenizer}` changed while `curator tokens` ran",
            "run the command again once the file stays as it is",
        )
    old_path, new_path = task.old_path, task.new_path
    parquet = pq.ParquetFile(old_path)
    old_schema = parquet.schema_arrow
    fields = [f for f in old_schema if f.name != N_TOKENS_COLUMN]
    metadata = dict(old_schema.metadata or {})
    metadata[FOOTER_TOKENIZER_KEY.encode()] = json.dumps(info.to_json(), sort_keys=True).encode()
    schema = pa.schema([*fields, pa.field(N_TOKENS_COLUMN, pa.int32())], metadata=metadata)
    shard = WrittenShard(new_path, 0, 0, 0, content_kind="text")
    tokens = 0
    meta = parquet.metadata
    size = batch_rows_within(
        meta.num_rows,
        sum(meta.row_group(g).total_byte_size for g in range(meta.num_row_groups)),
        8192,
        REWRITE_BATCH_BYTES,
    )
    tmp = new_path + ".tmp"
    try:
        with pq.ParquetWriter(tmp, schema, **write_options(schema)) as writer:
            for batch in parquet.iter_batches(batch_size=size):
                table = pa.Table.from_batches([batch])
                if N_TOKENS_COLUMN in table.schema.names:
                    table = table.drop_columns([N_TOKENS_COLUMN])
                counts = pa.array(count_tokens(counter, table["text"].to_pylist()), pa.int32())
                tokens += int(pc.sum(counts).as_py() or 0)
                table = table.append_column(pa.field(N_TOKENS_COLUMN, pa.int32()), counts)
                writer.write_table(table.cast(schema), row_group_size=ROW_GROUP_ROWS)
                content = pc.binary_length(table["text"]).combine_chunks()
                shard.rows += table.num_rows
                shard.content_bytes += int(pc.sum(content).as_py() or 0)
                merge_composition(shard.composition, composition_of(table, content))
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise
    finally:
        parquet.close()
    os.replace(tmp, new_path)
    shard.file_bytes = os.path.getsize(new_path)
    shard.sha256 = sha256_file(new_path)
    return shard, tokens


def _tokens_by_source(store: Store, result: TokensResult, paths: list[str]) -> None:
    """Tokens per source, from the shards just written."""
    import duckdb

    from curator.store import catalog

    files = [catalog.store_path(store.root, p) for p in paths]
    with duckdb.connect() as con:
        for source, tokens in con.execute(
            f"SELECT source, sum({N_TOKENS_COLUMN})::BIGINT FROM read_parquet(?, union_by_name = true) "
            "GROUP BY 1 ORDER BY 1",
            [files],
        ).fetchall():
            result.by_source.setdefault(source, {"samples": 0, "tokens": 0})["tokens"] = int(
                tokens or 0
            )


def _args_json(result: TokensResult) -> str:
    return json.dumps({"tokenizer": result.tokenizer, "source": result.source}, sort_keys=True)
