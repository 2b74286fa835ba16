"""Provenance inference: labels for samples of unknown origin, and a check of declared labels.

Signals, strongest first (DESIGN.md): C2PA, IPTC DigitalSourceType, generator metadata
(:mod:`curator.infer.signals`, images only), then near-duplicate propagation (a cluster of
``duplicates`` holding a sample of known origin), then the time prior (``collected_at`` before a
cutoff ⇒ real), then an optional detector (``module:function`` returning, per sample, the
probability that it is synthetic). A weaker signal never overrides a stronger one:

- a sample whose label was declared (or comes from a registered model) is never changed; a signal
  that contradicts it is a *conflict*, reported and kept in ``label_conflicts``;
- a label inferred earlier is replaced only by a stronger signal;
- the absence of a signal is not evidence of being real.

Relabelling writes new shards (the old ones stay on disk, no longer live) and switches them, the
``samples`` view and the ``label_events`` log (sample, old label, new label, evidence,
confidence, run) in one catalog transaction (invariant 1).
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from curator.core.errors import CuratorError
from curator.store.catalog import sql_literal

if TYPE_CHECKING:
    import duckdb

    from curator.engine.base import Engine
    from curator.infer.signals import Signal
    from curator.store.base import StoreBase as Store
    from curator.store.commit import WorkDir
    from curator.store.ledgers import StagedLedger

DEFAULT_CUTOFF = date(2022, 11, 30)
DEFAULT_TIME_PRIOR_CONFIDENCE = 0.6
#: Strength of each evidence code; declared labels and model lineage are never overridden.
STRENGTH = {
    "c2pa": 7,
    "iptc": 6,
    "generator-metadata": 5,
    "near-duplicate": 4,
    "time-prior": 3,
    "detector": 2,
}
FIXED = {"declared", "model-lineage"}
#: Evidence read from the file itself: read again by a later run (with the trust anchors it is
#: given), it replaces what an earlier run read.
FILE_EVIDENCE = {"c2pa", "iptc", "generator-metadata"}
#: PEM file of C2PA trust anchors when `infer` is given none.
TRUST_ANCHORS_ENV = "CURATOR_C2PA_TRUST_ANCHORS"
#: Below this many bytes of shards, file signals are read in this process: starting worker
#: processes would cost more than it saves.
SMALL_WORK_BYTES = 32 << 20


class InferError(CuratorError):
    """Inference cannot run as asked."""


@dataclass
class Label:
    origin: str
    generation: int | None
    model: str | None
    evidence: str
    confidence: float
    reason: str
    #: what the evidence says beyond the label (a C2PA manifest's validation and trust state)
    detail: dict[str, Any] | None = None


@dataclass
class InferResult:
    run_id: str
    applied: bool
    examined: int = 0
    relabelled: int = 0
    by_evidence: dict[str, int] = field(default_factory=dict)
    conflicts: list[dict[str, Any]] = field(default_factory=list)
    unreadable: int = 0
    #: files whose metadata says nothing usable, with the reason (malformed XMP, a C2PA manifest
    #: that fails validation or cannot be read, an unreadable file); at most 1000
    problems: list[dict[str, str]] = field(default_factory=list)
    shards_rewritten: int = 0
    changes: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def load_detector(spec: str) -> Callable[[pa.Table], Sequence[float]]:
    """``module:function``; the function takes a table (sample_id, content_hash, text or image)
    and returns one probability of being synthetic per row."""
    module_name, sep, name = spec.partition(":")
    if not sep or not module_name or not name:
        raise InferError(
            f"`--detector {spec}` is not module:function", "e.g. --detector mypkg.detect:score"
        )
    # Like `python -m`, a module in the current directory is found without PYTHONPATH.
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise InferError(
            f"cannot import detector module `{module_name}`: {exc}",
            "run from the directory that holds it, or add its directory to PYTHONPATH",
        ) from None
    finally:
        if added:
            sys.path.remove(cwd)
    function = getattr(module, name, None)
    if not callable(function):
        raise InferError(
            f"`{module_name}` has no callable `{name}`", "name a function: module:function"
        )
    return function


def load_trust_anchors(path: str | os.PathLike[str] | None) -> str | None:
    """The PEM text of a C2PA trust-anchor file (`path`, else env ``CURATOR_C2PA_TRUST_ANCHORS``),
    checked by loading it into c2pa; ``None`` when neither names one.

    Raises:
        InferError: the file cannot be read, holds no PEM certificate, c2pa rejects it, or
            c2pa-python is not installed.
    """
    if path is None:
        path = os.environ.get(TRUST_ANCHORS_ENV) or None
    if path is None:
        return None
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as handle:
            anchors = handle.read()
    except (OSError, UnicodeDecodeError) as exc:
        raise InferError(
            f"cannot read the C2PA trust anchors `{path}`: {exc}",
            f"name a PEM file of CA certificates (--c2pa-trust-anchors or {TRUST_ANCHORS_ENV})",
        ) from None
    if "-----BEGIN CERTIFICATE-----" not in anchors:
        raise InferError(
            f"the C2PA trust anchors `{path}` hold no PEM certificate",
            "give a file of '-----BEGIN CERTIFICATE-----' blocks, e.g. the C2PA trust list",
        )
    from curator.infer.signals import c2pa_context

    try:
        c2pa_context(anchors).close()
    except ImportError:
        raise InferError(
            f"C2PA trust anchors `{path}` were given but c2pa-python is not installed",
            "pip install 'curator[c2pa]'",
        ) from None
    except Exception as exc:
        raise InferError(
            f"c2pa cannot load the trust anchors `{path}`: {str(exc).splitlines()[0][:200]}",
            "give a PEM file of CA certificates",
        ) from None
    return anchors


def infer(
    store: Store,
    *,
    cutoff: date | datetime | None = DEFAULT_CUTOFF,
    time_prior_confidence: float = DEFAULT_TIME_PRIOR_CONFIDENCE,
    detector: str | Callable[[pa.Table], Sequence[float]] | None = None,
    detector_threshold: float = 0.9,
    apply: bool = True,
    lock_timeout: float | None = None,
    progress: bool = False,
    c2pa_trust_anchors: str | os.PathLike[str] | None = None,
    engine: str | Engine | None = None,
) -> InferResult:
    """Infer labels (see the module docstring). With ``apply=False`` (``--report``) nothing
    changes: the result lists what would be relabelled and every conflict.

    `c2pa_trust_anchors` names a PEM file of CA certificates (default: env
    ``CURATOR_C2PA_TRUST_ANCHORS``): a C2PA signer that chains to one is trusted. Without a
    trusted signer a C2PA claim of *real* counts as unsigned IPTC metadata does (confidence
    0.9); a claim of *generated* counts in full. The trust state is kept in each label event
    (``evidence_detail``).

    `engine` reads the file signals: ``local`` (default; env `CURATOR_ENGINE`) or an
    :class:`~curator.engine.base.Engine`."""
    from curator.engine.registry import using_engine
    from curator.store import catalog
    from curator.store.base import new_run_id
    from curator.store.commit import WorkDir, writing
    from curator.store.session import CatalogSession

    if not 0 <= time_prior_confidence <= 1:
        raise InferError(
            f"time-prior confidence {time_prior_confidence} is not in 0..1", "e.g. 0.6"
        )
    if not 0.5 < detector_threshold <= 1:
        raise InferError(
            f"detector threshold {detector_threshold} is not in (0.5, 1]",
            "e.g. 0.9 (0.5 would label a score that says 'cannot tell')",
        )
    detect = load_detector(detector) if isinstance(detector, str) else detector
    trust_anchors = load_trust_anchors(c2pa_trust_anchors)
    clock = time.monotonic()
    result = InferResult(new_run_id(), applied=apply)
    with (
        using_engine(engine) as runner,
        writing(store, "infer", lock_timeout),
        WorkDir.create(store.root, result.run_id, prefix="infer-") as work,
    ):
        with store.connect(read_only=False) as rw:
            catalog.ensure(rw)
        session = CatalogSession(store, os.path.join(work.path, "duckdb"))
        try:
            con = session.con
            snapshot = [
                row[0]
                for row in con.execute(
                    "SELECT path FROM cat.shards WHERE live ORDER BY path"
                ).fetchall()
            ]
            # a path the catalog holds is resolved inside the store, or the run is refused
            paths = [catalog.store_path(store.root, p) for p in snapshot]
            if not paths:
                return result
            con.execute(
                "CREATE TABLE labels AS SELECT file_index AS shard, file_row_number AS row, sample_id, "
                "content_hash, origin, generation, model, origin_evidence AS evidence, origin_confidence AS confidence, "
                "collected_at FROM read_parquet($paths, file_row_number = true, union_by_name = true)",
                {"paths": paths},
            )
            result.examined = int(con.execute("SELECT count(*) FROM labels").fetchall()[0][0])
            current = {
                row[0]: row[1:]
                for row in con.execute(
                    "SELECT sample_id, origin, evidence, confidence, shard, row, generation, model FROM labels "
                    "WHERE origin = 'unknown' OR evidence NOT IN ('declared', 'model-lineage')"
                ).fetchall()
            }
            # Only the labels inference may change are held in memory; a fixed label is looked
            # up (on its own cursor: a scan may be streaming) when a signal contradicts it.
            lookup = con.cursor()

            def fixed_label(sample_id: str) -> tuple[Any, ...] | None:
                rows = lookup.execute(
                    "SELECT origin, evidence FROM labels WHERE sample_id = ?", [sample_id]
                ).fetchall()
                return rows[0] if rows else None

            proposals: dict[str, Label] = {}

            def propose(sample_id: str, label: Label) -> None:
                row = current.get(sample_id) or fixed_label(sample_id)
                if row is None:
                    return
                origin, evidence = row[0], row[1]
                if evidence in FIXED and origin != "unknown":
                    if label.origin != origin:
                        result.conflicts.append(
                            {
                                "sample_id": sample_id,
                                "declared_origin": origin,
                                "declared_evidence": evidence,
                                "signal_origin": label.origin,
                                "signal_evidence": label.evidence,
                                "confidence": label.confidence,
                                "reason": label.reason,
                            }
                        )
                    return
                best = proposals.get(sample_id)
                if best is not None and STRENGTH[best.evidence] >= STRENGTH[label.evidence]:
                    return
                reread = evidence == label.evidence and evidence in FILE_EVIDENCE
                if (
                    origin != "unknown"
                    and not reread
                    and STRENGTH.get(evidence, 0) >= STRENGTH[label.evidence]
                ):
                    return
                proposals[sample_id] = label

            _metadata_signals(runner, paths, propose, result, trust_anchors)
            # near-duplicates see the labels the file signals just gave (one run settles)
            con.register(
                "signal_labels",
                pa.table(
                    {
                        "sample_id": list(proposals),
                        "origin": [p.origin for p in proposals.values()],
                        "generation": pa.array(
                            [p.generation for p in proposals.values()], pa.int16()
                        ),
                        "model": pa.array([p.model for p in proposals.values()], pa.string()),
                        "confidence": pa.array(
                            [p.confidence for p in proposals.values()], pa.float64()
                        ),
                    }
                ),
            )
            _near_duplicates(con, propose)
            con.unregister("signal_labels")
            if cutoff is not None:
                cut = (
                    cutoff
                    if isinstance(cutoff, datetime)
                    else datetime(cutoff.year, cutoff.month, cutoff.day)
                )
                if cut.tzinfo is None:
                    cut = cut.replace(tzinfo=UTC)
                for sample_id, collected in con.execute(
                    "SELECT sample_id, collected_at FROM labels WHERE collected_at IS NOT NULL AND collected_at < ?",
                    [cut],
                ).fetchall():
                    propose(
                        sample_id,
                        Label("real", 0, None, "time-prior", time_prior_confidence,
                              f"collected {collected.date().isoformat()}, before {cut.date().isoformat()}"),
                    )  # fmt: skip
            if detect is not None:
                _detector(con, paths, detect, detector_threshold, current, proposals, propose)
            # only real changes (the row is origin, evidence, confidence, shard, row,
            # generation, model; the stored confidence is a float32)
            changes = {
                sid: label
                for sid, label in proposals.items()
                if (current[sid][0], current[sid][1], current[sid][5], current[sid][6])
                != (label.origin, label.evidence, label.generation, label.model)
                or abs((current[sid][2] or 0) - label.confidence) > 1e-6
            }
            for sid, label in sorted(changes.items()):
                result.by_evidence[label.evidence] = result.by_evidence.get(label.evidence, 0) + 1
                origin, evidence, confidence, _s, _r, generation, model = current[sid]
                result.changes.append(
                    {
                        "sample_id": sid,
                        "old": {"origin": origin, "generation": generation, "model": model,
                                "evidence": evidence, "confidence": confidence},
                        "new": {"origin": label.origin, "generation": label.generation, "model": label.model,
                                "evidence": label.evidence, "confidence": label.confidence},
                        "reason": label.reason,
                        "detail": label.detail,
                    }
                )  # fmt: skip
            result.relabelled = len(changes)
            session.detach()
            if apply:
                _apply(store, snapshot, current, changes, result, work)
        finally:
            session.close()
    result.seconds = time.monotonic() - clock
    return result


@dataclass(frozen=True)
class SignalTask:
    """Read the provenance signals in the image bytes of one live shard (a pure task)."""

    path: str
    trust_anchors: str | None

    @property
    def label(self) -> str:
        return f"metadata signals of `{self.path}`"


def read_shard_signals(task: SignalTask) -> list[tuple[str, list[Signal], str | None]]:
    """``(sample_id, signals, unreadable reason)`` of every image of the shard that has a
    signal or cannot be read, in row order."""
    from functools import partial

    from curator.infer.signals import read_signals

    source = pq.ParquetFile(task.path)
    if "image" not in source.schema_arrow.names:
        return []
    read = partial(read_signals, c2pa_trust_anchors=task.trust_anchors)
    found: list[tuple[str, list[Signal], str | None]] = []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        for batch in source.iter_batches(batch_size=1024, columns=["sample_id", "image"]):
            ids = batch.column("sample_id").to_pylist()
            images = batch.column("image").to_pylist()
            present = [(i, data) for i, data in zip(ids, images, strict=True) if data is not None]
            read_back = pool.map(read, [data for _i, data in present])
            for (sample_id, _data), (signals, error) in zip(present, read_back, strict=True):
                if signals or error:
                    found.append((sample_id, signals, error))
    return found


def _metadata_signals(
    engine: Engine,
    paths: list[str],
    propose: Callable[[str, Label], None],
    result: InferResult,
    trust_anchors: str | None = None,
) -> None:
    from curator.infer.signals import strongest

    tasks = [SignalTask(path, trust_anchors) for path in paths]
    small = sum(os.path.getsize(path) for path in paths) < SMALL_WORK_BYTES
    for found in engine.map(read_shard_signals, tasks, small=small):
        for sample_id, signals, error in found:
            if error:
                result.unreadable += 1
                if len(result.problems) < 1000:
                    result.problems.append({"sample_id": sample_id, "reason": error})
            for bad in signals:
                if bad.origin == "unknown" and len(result.problems) < 1000:
                    result.problems.append({"sample_id": sample_id, "reason": bad.reason})
            signal = strongest(signals)
            if signal is not None:
                generation = signal.generation
                if generation is None:
                    generation = 1 if signal.origin == "synthetic" else 0
                propose(
                    sample_id,
                    Label(signal.origin, generation, None, signal.evidence,
                          signal.confidence, signal.reason, signal.detail),
                )  # fmt: skip


def _near_duplicates(con: duckdb.DuckDBPyConnection, propose: Callable[[str, Label], None]) -> None:
    """An unknown sample in a cluster with a sample of known origin takes that origin."""
    has = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = 'cat' AND table_name = 'duplicates'"
    ).fetchall()[0][0]
    if not has:
        return
    rows = con.execute(
        """
        WITH effective AS (
            SELECT l.sample_id, coalesce(s.origin, l.origin) AS origin,
                   CASE WHEN s.sample_id IS NULL THEN l.generation ELSE s.generation END AS generation,
                   CASE WHEN s.sample_id IS NULL THEN l.model ELSE s.model END AS model,
                   coalesce(s.confidence, l.confidence) AS confidence,
                   s.sample_id IS NOT NULL AS from_signal
            FROM labels l LEFT JOIN signal_labels s USING (sample_id)
        ),
        members AS (
            SELECT d.cluster_id, d.similarity, e.* FROM cat.duplicates d JOIN effective e USING (sample_id)
        ),
        known AS (
            SELECT * FROM members WHERE origin <> 'unknown'
            QUALIFY row_number() OVER (
                PARTITION BY cluster_id
                ORDER BY CASE origin WHEN 'real' THEN 0 ELSE 1 END, generation NULLS LAST, confidence DESC, sample_id
            ) = 1
        )
        SELECT u.sample_id, k.origin, k.generation, k.model, k.confidence, u.similarity, k.sample_id, u.cluster_id
        FROM members u JOIN known k USING (cluster_id)
        WHERE u.origin = 'unknown' AND NOT u.from_signal ORDER BY u.sample_id
        """
    ).fetchall()
    for sample_id, origin, generation, model, confidence, similarity, source_id, cluster in rows:
        propose(
            sample_id,
            Label(origin, generation, model, "near-duplicate",
                  round(float(similarity) * float(confidence or 0), 6),
                  f"near-duplicate ({similarity:.2f}) of {source_id} in {cluster}"),
        )  # fmt: skip


def _detector(
    con: duckdb.DuckDBPyConnection,
    paths: list[str],
    detect: Callable[[pa.Table], Sequence[float]],
    threshold: float,
    current: dict[str, tuple[Any, ...]],
    proposals: dict[str, Label],
    propose: Callable[[str, Label], None],
) -> None:
    """The detector sees the samples still unknown."""
    pending = [sid for sid, row in current.items() if row[0] == "unknown" and sid not in proposals]
    if not pending:
        return
    con.register("pending_ids", pa.table({"sample_id": pending}))
    columns = {
        row[0]
        for row in con.execute(
            "DESCRIBE SELECT * FROM read_parquet(?, union_by_name = true)", [paths]
        ).fetchall()
    }
    content = ", ".join(c for c in ("text", "image") if c in columns)
    reader = con.sql(
        f"SELECT sample_id, content_hash, {content} FROM read_parquet($paths, union_by_name = true) "
        "SEMI JOIN pending_ids USING (sample_id)",
        params={"paths": paths},
    ).to_arrow_reader(8192)
    name = getattr(detect, "__name__", repr(detect))
    for batch in reader:
        table = pa.Table.from_batches([batch])
        try:
            scores = list(detect(table))
        except Exception as exc:
            raise InferError(
                f"the detector `{name}` failed: {type(exc).__name__}: {exc}",
                "fix the detector; it gets a pyarrow.Table and returns one float per row",
            ) from exc
        if len(scores) != table.num_rows:
            raise InferError(
                f"the detector returned {len(scores)} scores for {table.num_rows} samples",
                "return one probability of being synthetic per row",
            )
        for sample_id, raw in zip(table.column("sample_id").to_pylist(), scores, strict=True):
            try:
                score = float(raw)
            except (TypeError, ValueError):
                raise InferError(
                    f"the detector `{name}` returned {raw!r} for {sample_id}",
                    "return probabilities in 0..1",
                ) from None
            if not 0 <= score <= 1:  # NaN included
                raise InferError(
                    f"the detector returned {score} for {sample_id}", "return probabilities in 0..1"
                )
            if score >= threshold:
                propose(
                    sample_id,
                    Label("synthetic", 1, None, "detector", score, f"detector score {score:.3f}"),
                )
            elif score <= 1 - threshold:
                propose(
                    sample_id,
                    Label("real", 0, None, "detector", 1 - score, f"detector score {score:.3f}"),
                )
    con.unregister("pending_ids")


def _apply(
    store: Store,
    snapshot: list[str],
    current: dict[str, tuple[Any, ...]],
    changes: dict[str, Label],
    result: InferResult,
    work: WorkDir,
) -> None:
    """New shards for every shard with a change, then one transaction switches them."""
    from curator.core.version import __version__
    from curator.store import catalog, ledgers
    from curator.store.base import crash_point as _crash_point
    from curator.store.commit import transaction
    from curator.store.shards import (
        WrittenShard,
        composition_of,
        merge_composition,
        sha256_file,
        write_options,
    )

    by_shard: dict[int, dict[int, Label]] = {}
    for sid, label in changes.items():
        _origin, _evidence, _conf, shard, row, *_ = current[sid]
        by_shard.setdefault(int(shard), {})[int(row)] = label
    planned: dict[int, str] = {}  # shard index → new relative path
    for shard_index in sorted(by_shard):
        old_relative = snapshot[shard_index]
        stem = os.path.basename(old_relative)[: -len(".parquet")].split("~")[0]
        planned[shard_index] = os.path.join(
            os.path.dirname(old_relative), f"{stem}~{result.run_id}.parquet"
        )
    # Before any file is written: the next writer removes exactly these if this run is killed.
    sidecars = {
        index: relative[: -len(".parquet")] + ".locations.parquet"
        for index, relative in planned.items()
        if os.path.exists(
            catalog.store_path(store.root, snapshot[index])[: -len(".parquet")]
            + ".locations.parquet"
        )
    }
    work.record(sorted([*planned.values(), *sidecars.values()]))
    written: list[tuple[str, str, WrittenShard]] = []  # (old path, new relative path, shard)
    try:
        for shard_index, rows in sorted(by_shard.items()):
            old_relative = snapshot[shard_index]
            old_path = catalog.store_path(store.root, old_relative)
            new_relative = planned[shard_index]
            new_path = catalog.store_path(store.root, new_relative)
            parquet = pq.ParquetFile(old_path)
            schema = parquet.schema_arrow
            content_kind = "image" if "image" in schema.names else "text"
            shard = WrittenShard(new_path, 0, 0, 0, content_kind=content_kind)
            tmp = new_path + ".tmp"
            offset = 0
            with pq.ParquetWriter(tmp, schema, **write_options(schema)) as writer:
                for batch in parquet.iter_batches(batch_size=8192):
                    table = pa.Table.from_batches([batch])
                    hits = {
                        r - offset: label
                        for r, label in rows.items()
                        if offset <= r < offset + table.num_rows
                    }
                    if hits:
                        table = _relabel(table, hits)
                    offset += batch.num_rows
                    writer.write_table(table.cast(schema), row_group_size=65_536)
                    content = pc.binary_length(table[content_kind]).combine_chunks()
                    shard.rows += table.num_rows
                    shard.content_bytes += int(pc.sum(content).as_py() or 0)
                    merge_composition(shard.composition, composition_of(table, content))
            parquet.close()
            os.replace(tmp, new_path)
            shard.file_bytes = os.path.getsize(new_path)
            shard.sha256 = sha256_file(new_path)
            sidecar = old_path[: -len(".parquet")] + ".locations.parquet"
            if os.path.exists(sidecar):
                shutil.copyfile(sidecar, new_path[: -len(".parquet")] + ".locations.parquet")
            written.append((old_relative, new_relative, shard))
        _crash_point("infer-written")
        now = datetime.now(UTC)
        staged = _stage_ledgers(work.path, result, now)
        ledgers.place_ledgers(store.root, work.path, staged)
        with ledgers.withdrawn_unless_committed(store.root, work.path) as registration:
            with transaction(store) as con:
                for old_relative, new_relative, shard in written:
                    old = con.execute(
                        "SELECT source, run_id FROM shards WHERE path = ?", [old_relative]
                    ).fetchall()[0]
                    con.execute("UPDATE shards SET live = false WHERE path = ?", [old_relative])
                    catalog.register_shard(con, shard, new_relative, old[0], result.run_id, now)
                for ledger in staged:
                    ledgers.register_ledger(con, ledger, created_at=now)
                if not result.conflicts:  # this run's list replaces the last, even when empty
                    ledgers.retire_scope(con, "label_conflicts", CONFLICTS_SCOPE)
                con.execute(
                    "INSERT INTO runs VALUES (?, 'infer', 'committed', ?, ?, 0, NULL, NULL, ?, ?, 0, 0, 0, ?, NULL, ?, ?)",
                    [result.run_id, now, now, result.examined, result.relabelled, len(written), __version__,
                     f"{result.relabelled} relabelled, {len(result.conflicts)} conflicts"],
                )  # fmt: skip
                catalog.rebuild_samples_view(con)
            registration.committed = True
        _crash_point("infer-committed")
        result.shards_rewritten = len(written)
    except BaseException:
        # Not committed: take back the shards this run wrote (the catalog does not know them).
        with contextlib.suppress(Exception):
            work.take_back(store.registered_paths())
        raise
    work.committed()


#: The scope of the `label_conflicts` ledger's file: each run's list replaces the last.
CONFLICTS_SCOPE = "all"


def _stage_ledgers(work: str, result: InferResult, now: datetime) -> list[StagedLedger]:
    """This run's `label_events` (its changes) and `label_conflicts` (the conflicts it saw) as
    ledger files in the work directory; none for an empty list."""
    from curator.store.ledgers import write_ledger

    staged = []
    if result.changes:
        events = pa.table(
            {
                "run_id": [result.run_id] * len(result.changes),
                "sample_id": [c["sample_id"] for c in result.changes],
                **{
                    f"{side}_{key}": [c[side][key] for c in result.changes]
                    for side in ("old", "new")
                    for key in ("origin", "generation", "model", "evidence", "confidence")
                },
                "reason": [c["reason"] for c in result.changes],
                "created_at": pa.array([now] * len(result.changes), pa.timestamp("us", tz="UTC")),
                "evidence_detail": pa.array(
                    [
                        json.dumps(c["detail"], sort_keys=True) if c["detail"] else None
                        for c in result.changes
                    ],
                    pa.string(),
                ),
            }
        )
        staged.append(
            write_ledger(work, "label_events", events, scope=result.run_id, run_id=result.run_id)
        )
    if result.conflicts:
        keys = ("sample_id", "declared_origin", "declared_evidence", "signal_origin",
                "signal_evidence", "confidence", "reason")  # fmt: skip
        conflicts = pa.table(
            {
                "run_id": [result.run_id] * len(result.conflicts),
                **{key: [c[key] for c in result.conflicts] for key in keys},
                "created_at": pa.array([now] * len(result.conflicts), pa.timestamp("us", tz="UTC")),
            }
        )
        staged.append(
            write_ledger(
                work, "label_conflicts", conflicts, scope=CONFLICTS_SCOPE, run_id=result.run_id
            )
        )
    return staged


def _relabel(table: pa.Table, hits: dict[int, Label]) -> pa.Table:
    """The table with new provenance labels in the given rows."""
    columns: dict[str, list[Any]] = {
        "origin": [hit.origin for hit in hits.values()],
        "generation": [hit.generation for hit in hits.values()],
        "model": [hit.model for hit in hits.values()],
        "origin_evidence": [hit.evidence for hit in hits.values()],
        "origin_confidence": [hit.confidence for hit in hits.values()],
    }
    positions = list(hits)
    for name, values in columns.items():
        index = table.schema.get_field_index(name)
        column = table.column(name).combine_chunks()
        if pa.types.is_dictionary(column.type):
            column = column.dictionary_decode()
        replaced = column.to_pylist()
        for position, value in zip(positions, values, strict=True):
            replaced[position] = value
        field_type = table.schema.field(name).type
        array = pa.array(replaced, column.type)
        if pa.types.is_dictionary(field_type):
            array = array.dictionary_encode().cast(field_type)
        table = table.set_column(index, table.schema.field(name), array)
    return table


def contamination(store: Store, source: str) -> dict[str, Any]:
    """How much of `source` near-duplicates known synthetic samples of other sources, by the
    generation and model of the synthetic copy."""
    total = store.sql(
        f"SELECT count(*) AS n FROM samples WHERE source = {sql_literal(source)}"
    ).to_pylist()[0]["n"]
    if not total:
        sources = [
            r["source"]
            for r in store.sql("SELECT DISTINCT source FROM samples ORDER BY 1").to_pylist()
        ]
        raise InferError(
            f"source `{source}` has no sample in store `{store.root}`",
            ("sources: " + ", ".join(sources)) if sources else "ingest something first",
        )
    has = store.sql("SELECT count(*) AS n FROM meta WHERE key = 'last_dedup_run'").to_pylist()[0][
        "n"
    ]
    rows = (
        store.sql(
            f"""
            WITH d AS (SELECT d.sample_id, d.cluster_id, s.source, s.origin, s.generation, s.model
                       FROM duplicates d JOIN samples s USING (sample_id)),
            mine AS (SELECT * FROM d WHERE source = {sql_literal(source)}),
            synthetic AS (SELECT * FROM d WHERE origin = 'synthetic' AND source <> {sql_literal(source)})
            SELECT y.generation, coalesce(y.model, '(unknown model)') AS model,
                   count(DISTINCT m.sample_id) AS samples
            FROM mine m JOIN synthetic y USING (cluster_id)
            GROUP BY ALL ORDER BY generation, model
            """
        ).to_pylist()
        if has
        else []
    )
    contaminated = (
        store.sql(
            f"""
            SELECT count(DISTINCT m.sample_id) AS n
            FROM duplicates m JOIN samples ms USING (sample_id)
            JOIN duplicates y ON y.cluster_id = m.cluster_id
            JOIN samples ys ON ys.sample_id = y.sample_id
            WHERE ms.source = {sql_literal(source)} AND ys.origin = 'synthetic' AND ys.source <> {sql_literal(source)}
            """
        ).to_pylist()[0]["n"]
        if has
        else 0
    )
    return {
        "source": source,
        "samples": total,
        "contaminated": contaminated,
        "fraction": contaminated / total,
        "by_generation_and_model": [{**row, "fraction": row["samples"] / total} for row in rows],
        "dedup_has_run": bool(has),
    }
