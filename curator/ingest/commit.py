"""Ingest, top to bottom: read the inputs (:mod:`curator.ingest.readers`), validate, hash and tag
them in tasks that stage shards (:mod:`curator.ingest.pipeline`), decide what is new
(:mod:`curator.ingest.decide`), and commit by the store's one protocol
(:mod:`curator.store.commit`): take the lock, recover, register, place, one transaction.

>>> ingest(store, ["corpus.jsonl"], source="web-2021", origin="real")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

from curator.core.errors import IngestFailed, InputError, ProvenanceError
from curator.core.provenance import ProvenanceSpec
from curator.core.schema import MAX_GENERATION, N_TOKENS_COLUMN
from curator.core.version import __version__
from curator.ingest.decide import POSITION_KEYED, drop_known, reconcile_columns
from curator.ingest.result import IngestResult, codes_text, first_rejects, kept_nothing_error
from curator.ingest.snapshot import Snapshot, take_snapshot
from curator.store import catalog
from curator.store.base import crash_point, new_run_id
from curator.store.commit import WorkDir, transaction, writing

if TYPE_CHECKING:
    from curator.engine.base import Engine
    from curator.ingest.pipeline import TaskResult
    from curator.store.base import StoreBase
    from curator.store.shards import WrittenShard


def ingest(
    store: StoreBase,
    inputs: Sequence[str | os.PathLike[str]],
    *,
    source: str,
    origin: str | None = None,
    generation: int | None = None,
    model: str | None = None,
    generated_by: str | None = None,
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
    shard_bytes: int | None = None,
    max_image_pixels: int = 89_478_485,
    batch_rows: int = 8192,
    max_record_bytes: int = 64 << 20,
    lock_timeout: float | None = None,
    progress: bool = False,
    engine: str | Engine | None = None,
    tokenizer: str | os.PathLike[str] | None = None,
) -> IngestResult:
    """Read inputs, tag every record with provenance and add them to the store.

    Records that fail validation go to ``rejects/<run>/rejects.jsonl`` with their file,
    line or row and reason; the rest are committed. Rows whose ``sample_id`` is already in
    the store with the same ``content_hash`` are skipped; with different content they are
    rejected, naming both. With `strict`, any reject fails the run and nothing is committed.
    A run that keeps nothing (no record read, or every record rejected), or in which whole
    files or batches are rejected for a missing column, fails and commits nothing unless
    `allow_empty`; a run whose records are all already in the store succeeds.

    Args:
        inputs: files, directories and globs (JSONL, Parquet, CSV, text, images, tar).
        source, origin, generation, model, confidence, collected_at, collected_at_column,
        id_column, text_column, image_column, parent_id_column: see :class:`ProvenanceSpec`.
        generated_by: a registered model that made every sample: origin ``synthetic``,
            generation = the model's generation + 1, evidence ``model-lineage``,
            confidence 1 (instead of `origin`, `generation` and `model`).
        rename_columns: ``{old: new}`` renames applied to input columns first.
        input_format: ``auto`` (by file name) or one of ``jsonl``, ``parquet``, ``csv``,
            ``text``, ``image``, ``webdataset``.
        strict: fail the whole run on any reject.
        allow_empty: commit a run that keeps nothing, or that rejects whole files for a
            missing column, instead of failing it.
        jobs: worker processes (default: all cores).
        shard_bytes: target content bytes per shard (default 256 MiB).
        max_record_bytes: a longer JSON Lines line or CSV record is rejected as
            ``record_too_large`` without being held in memory (default 64 MiB).
        lock_timeout: seconds to wait for another writer (default 120, env
            `CURATOR_LOCK_TIMEOUT`).
        progress: draw a progress bar on a terminal.
        engine: where the tasks run: ``local`` (default; env `CURATOR_ENGINE`) or an
            :class:`~curator.engine.base.Engine`.
        tokenizer: a Hugging Face ``tokenizer.json`` (or a directory holding one): every text
            sample gets `n_tokens`, its tokens without special tokens (null for images),
            counted in the workers; the shards' footers and the catalog table `tokenizers`
            record the tokenizer (path, sha256, vocabulary size).

    Returns:
        An :class:`IngestResult` with the counts; ``rows_read == ingested + skipped + rejected``.

    Raises:
        InputError, ProvenanceError: bad inputs or flags, before anything is read.
        TokenizerError: `tokenizer` is missing or not a ``tokenizer.json``.
        IngestFailed: `strict` and some record was rejected, or (unless `allow_empty`) no
            record was kept or a column was missing; nothing was committed. The message and
            hint give the first rejected record of each reason.
        StoreLockedError: another writer held the store for longer than `lock_timeout`.

    >>> ingest(store, ["corpus.jsonl"], source="web-2021", origin="real",
    ...        collected_at=date(2021, 6, 1))  # doctest: +SKIP
    IngestResult(run_id='…', status='committed', rows_read=1000, ingested=1000, …)
    """
    from curator.ingest.pipeline import TaskConfig, run_tasks
    from curator.ingest.readers import ReaderOptions, discover, plan_tasks
    from curator.store.shards import DEFAULT_SHARD_BYTES

    evidence = "declared"
    if generated_by is not None:
        origin, generation, model = _generated_by(
            store, generated_by, origin, generation, model, confidence
        )
        evidence = "model-lineage"
    elif origin is None:
        raise ProvenanceError(
            "no origin given",
            "pass --origin real|synthetic|unknown, or --generated-by MODEL (Python: `origin=`, `generated_by=`)",
        )
    elif model is not None:
        _check_declared_model(store, model, generation)
    spec = ProvenanceSpec(
        source=source,
        origin=origin,
        generation=generation,
        model=model,
        confidence=confidence,
        evidence=evidence,
        collected_at=collected_at,
        collected_at_column=collected_at_column,
        id_column=id_column,
        text_column=text_column,
        image_column=image_column,
        parent_id_column=parent_id_column,
        renames=tuple(sorted((rename_columns or {}).items())),
    )
    counted = check_tokenizer(tokenizer)
    started = datetime.now(UTC)
    clock = time.monotonic()
    files, ignored = discover([os.fspath(i) for i in inputs], input_format)
    if not files:
        raise InputError(
            "no input files found"
            + (f" ({len(ignored)} files of unknown format ignored)" if ignored else ""),
            "name JSONL, Parquet, CSV, text, image or tar files, or pass --format (Python: `input_format=`)",
        )
    tasks = plan_tasks(files)
    run_id = new_run_id()
    work = WorkDir.create(store.root, run_id)
    # What the store holds now, so that the tasks write each final shard once.
    snapshot = take_snapshot(store, spec.source, work.path, lock_timeout)
    config = TaskConfig(
        spec=spec,
        options=ReaderOptions(
            text_column=spec.text_column,
            image_column=spec.image_column,
            batch_rows=batch_rows,
            max_record_bytes=max_record_bytes,
            max_image_pixels=max_image_pixels,
        ),
        staging_dir=work.path,
        ingest_id=run_id,
        curator_version=__version__,
        layout="store",
        shard_bytes=shard_bytes or DEFAULT_SHARD_BYTES,
        snapshot=snapshot,
        store_root=store.root,
        tokenizer=counted["path"] if counted else None,
    )
    args = {
        "inputs": [f.path for f in files],
        "format": input_format,
        "strict": strict,
        "allow_empty": allow_empty,
        "provenance": spec.to_json(),
    }
    if counted:
        args["tokenizer"] = counted
    # Leaving `work` removes it, unless placed shards could not be taken back: then it stays
    # for the recovery of the next write.
    with work:
        results = run_tasks(tasks, config, engine=engine, jobs=jobs, progress=progress)
        crash_point("staged")
        result = _commit_ingest(
            store,
            work,
            spec,
            snapshot,
            results,
            args,
            started,
            strict,
            allow_empty,
            lock_timeout,
            keys_unique=spec.id_column is None
            and all(task.format in POSITION_KEYED for task in tasks),
        )
    result.seconds = time.monotonic() - clock
    result.ignored_files = ignored
    result.files = len(files)
    return result


def check_tokenizer(tokenizer: str | os.PathLike[str] | None) -> dict[str, Any] | None:
    """Load `tokenizer` once before any work (a missing or invalid file fails here, not in a
    worker); its identity (path, sha256, vocabulary size), or None."""
    if tokenizer is None:
        return None
    from curator.core.tokenizer import load_tokenizer

    return load_tokenizer(tokenizer)[1].to_json()


def _check_declared_model(store: StoreBase, model: str, generation: int | None) -> None:
    """`--model NAME` naming a registered model must agree with its generation."""
    from curator.lineage.models import list_models

    registered = {m.name: m for m in list_models(store)}
    if model in registered and generation != registered[model].generation + 1:
        g = registered[model].generation
        raise ProvenanceError(
            f"`--model {model}` names a registered model of generation {g}, whose samples "
            f"are generation {g + 1}, but `--generation {generation}` was given",
            f"use --generated-by {model} (Python: `generated_by=`; it sets origin, generation and model)",
        )


def _generated_by(
    store: StoreBase,
    name: str,
    origin: str | None,
    generation: int | None,
    model: str | None,
    confidence: float,
) -> tuple[str, int, str]:
    """Origin, generation and model of samples made by the registered model `name`."""
    from curator.lineage.models import get_model

    registered = get_model(store, name)
    derived = registered.generation + 1
    if origin not in (None, "synthetic"):
        raise ProvenanceError(
            f"`--generated-by {name}` makes the samples synthetic, but `--origin {origin}` was given",
            "drop --origin (Python: `origin=`)",
        )
    if generation is not None and generation != derived:
        raise ProvenanceError(
            f"`--generation {generation}` contradicts `--generated-by {name}`: model `{name}` "
            f"is generation {registered.generation}, so its samples are generation {derived}",
            "drop --generation (Python: `generation=`)",
        )
    if model is not None and model != name:
        raise ProvenanceError(
            f"`--model {model}` contradicts `--generated-by {name}`",
            "drop --model (Python: `model=`)",
        )
    if confidence != 1.0:
        raise ProvenanceError(
            "`--confidence` does not apply with `--generated-by`: a registered model's "
            "samples are labelled with confidence 1",
            "drop --confidence (Python: `confidence=`)",
        )
    if derived > MAX_GENERATION:
        raise ProvenanceError(f"generation {derived} exceeds the maximum of {MAX_GENERATION}")
    return "synthetic", derived, name


def _commit_ingest(
    store: StoreBase,
    work: WorkDir,
    spec: ProvenanceSpec,
    snapshot: Snapshot,
    results: list[TaskResult],
    args: dict[str, Any],
    started: datetime,
    strict: bool,
    allow_empty: bool,
    timeout: float | None,
    *,
    keys_unique: bool = False,
) -> IngestResult:
    """Take the lock (recovering what killed runs left), decide what is new, keep the rejects,
    then register, place and commit the shards in one transaction."""
    from curator.ingest.readers import Reject

    run_id = work.run_id
    result = IngestResult(run_id=run_id, status="committed", source=spec.source)
    staged: list[WrittenShard] = [shard for r in results for shard in r.shards]
    for r in results:
        result.rows_read += r.rows_read
        result.rejected += r.rejected
        for code, count in r.reject_codes.items():
            result.reject_codes[code] = result.reject_codes.get(code, 0) + count
        for code, count in r.skip_codes.items():
            result.skip_codes[code] = result.skip_codes.get(code, 0) + count
    with writing(store, "ingest", timeout):
        extra_rejects: list[Reject] = []
        if staged:
            extra_rejects, skipped = drop_known(
                store,
                spec.source,
                staged,
                result,
                timeout,
                checked=snapshot.shard_paths,
                keys_unique=keys_unique,
            )
        else:
            skipped = 0
        result.skipped = skipped + sum(r.skipped for r in results)
        result.rejected += len(extra_rejects)
        for reject in extra_rejects:
            result.reject_codes[reject.code] = result.reject_codes.get(reject.code, 0) + 1
        staged = [s for s in staged if s.rows > 0]
        try:
            new_columns = reconcile_columns(store, staged, timeout)
        except IngestFailed as exc:
            result.status = "failed"
            result.ingested = sum(s.rows for s in staged)
            _record_run(store, result, args, started, [], exc.message)
            raise
        result.ingested = sum(s.rows for s in staged)
        result.content_bytes = sum(s.content_bytes for s in staged)
        if "tokenizer" in args:
            result.tokenizer = args["tokenizer"]
            result.tokens = token_total([shard.path for shard in staged])
        assert result.rows_read == result.ingested + result.skipped + result.rejected, result
        result.rejects_path = _keep_rejects(store, run_id, results, extra_rejects, result)
        result.first_rejects = first_rejects(result.rejects_path, result.reject_codes)
        if strict and result.rejected:
            result.status = "failed"
            message = (
                f"--strict: {result.rejected:,} of {result.rows_read:,} records were rejected "
                f"({codes_text(result.reject_codes)}); nothing was committed"
            )
            _record_run(store, result, args, started, [], message)
            raise IngestFailed(
                message,
                f"see {result.rejects_path} for each record and its reason; fix them, or "
                "run without --strict (Python: `strict=False`) to keep the good records",
            )
        kept_nothing = (
            None
            if allow_empty
            else kept_nothing_error(
                files=len(args["inputs"]),
                rows_read=result.rows_read,
                kept=result.ingested,
                skipped=result.skipped,
                reject_codes=result.reject_codes,
                first=result.first_rejects,
                rejects_path=result.rejects_path,
                outcome="committed",
            )
        )
        if kept_nothing is not None:
            result.status = "failed"
            _record_run(store, result, args, started, [], kept_nothing.message)
            raise kept_nothing
        try:
            placed = _place_shards(store, work, spec.source, staged)
            crash_point("renamed")
            _record_run(store, result, args, started, placed, None, new_columns)
        except BaseException:
            # Not committed: take back the shards this run placed (the ones the catalog
            # does not know). If even that fails, the record stays for the next recovery.
            with contextlib.suppress(Exception):
                work.take_back(store.registered_paths(timeout))
            raise
        crash_point("committed")
        work.committed()
    result.shards = len(staged)
    return result


def token_total(paths: list[str]) -> int:
    """The sum of `n_tokens` over the shards at `paths` (one int32 column of each; shards of
    images have none)."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    total = 0
    for path in paths:
        shard = pq.ParquetFile(path)
        if N_TOKENS_COLUMN not in shard.schema_arrow.names:
            continue  # a shard of images
        counts = shard.read(columns=[N_TOKENS_COLUMN])[N_TOKENS_COLUMN]
        if not pa.types.is_integer(counts.type):
            # the store held `n_tokens` as another type, and the counts were written in it
            counts = pc.cast(counts, pa.int64(), safe=False)
        total += int(pc.sum(counts).as_py() or 0)
    return total


def _keep_rejects(
    store: StoreBase, run_id: str, results: list[TaskResult], extra: list[Any], result: IngestResult
) -> str | None:
    if not result.rejected:
        return None
    directory = os.path.join(store.root, "rejects", run_id)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "rejects.jsonl")
    with open(path + ".tmp", "w", encoding="utf-8") as out:
        for r in results:
            if r.rejects_path:
                with open(r.rejects_path, encoding="utf-8") as handle:
                    shutil.copyfileobj(handle, out)
        for reject in extra:
            out.write(json.dumps(reject.to_json(), ensure_ascii=False) + "\n")
    os.replace(path + ".tmp", path)
    with open(os.path.join(directory, "summary.json"), "w", encoding="utf-8") as handle:
        json.dump(
            {"run_id": run_id, "rejected": result.rejected, "by_reason": result.reject_codes},
            handle,
            indent=2,
            sort_keys=True,
        )
    return path


def _place_shards(
    store: StoreBase, work: WorkDir, source: str, staged: list[WrittenShard]
) -> list[tuple[WrittenShard, str]]:
    """Register, then place: record in the run's work directory exactly which paths of
    `shards/<source>/` it creates, then move the staged shards there."""
    os.makedirs(os.path.join(store.root, "shards", source), exist_ok=True)
    planned = [(shard, f"shards/{source}/{os.path.basename(shard.path)}") for shard in staged]
    work.record(relative for _shard, relative in planned)
    for shard, relative in planned:
        work.place(shard.path, relative)
    return planned


def _record_run(
    store: StoreBase,
    result: IngestResult,
    args: dict[str, Any],
    started: datetime,
    placed: list[tuple[WrittenShard, str]],
    message: str | None,
    new_columns: dict[str, str] | None = None,
) -> None:
    """One catalog transaction: the run, its shards and their composition, and the
    `samples` view over the new set of live shards."""
    finished = datetime.now(UTC)
    rejects_rel = os.path.relpath(result.rejects_path, store.root) if result.rejects_path else None
    with transaction(store) as con:
        con.execute(
            "INSERT INTO runs VALUES (?, 'ingest', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [
                result.run_id,
                result.status,
                started,
                finished,
                (finished - started).total_seconds(),
                result.source,
                json.dumps(args, sort_keys=True, default=str),
                result.rows_read,
                result.ingested if result.status == "committed" else 0,
                result.skipped,
                result.rejected,
                result.content_bytes if result.status == "committed" else 0,
                len(placed),
                rejects_rel,
                __version__,
                message,
            ],
        )
        for shard, relative in placed:
            catalog.register_shard(con, shard, relative, result.source, result.run_id, finished)
        if placed:
            catalog.ensure(con)
            for name, arrow_type in sorted((new_columns or {}).items()):
                con.execute(
                    "INSERT INTO columns VALUES (?, ?) ON CONFLICT DO NOTHING",
                    [name, arrow_type],
                )
            catalog.rebuild_samples_view(con)
