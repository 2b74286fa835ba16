"""Assembly: select samples from the store under a policy and write a training set.

The story, one module per step:

1. Candidates and pools (:mod:`curator.assembly.pools`, in a DuckDB session with the catalog
   attached, :class:`curator.store.session.CatalogSession`): every live sample with its
   category, its size in the policy's unit and its seeded rank; exact (and near) duplicates
   collapsed.
2. The plan (:mod:`curator.assembly.planner`): exact amounts per (category, source, generation).
3. Selection (:mod:`curator.assembly.selection`): in each cell, the first samples by rank until
   the cell's amount is reached (with bytes or tokens, whether each cell keeps the sample that
   crosses its amount is settled across cells, so that the set meets every fraction within one
   sample).
4. Order and shards (:mod:`curator.assembly.quotas`): the per-shard quotas, where every fraction
   is enforced in every output shard, and the interleaving of the pools inside a shard.
5. Checks (:mod:`curator.assembly.checks`): every constraint over the set and in every shard,
   before anything is written (invariant 4).
6. Output (:mod:`curator.assembly.writer`): Parquet (or JSON Lines) shards in `OUT/data/`
   (and with format tokens their token arrays in `OUT/tokens/`,
   :mod:`curator.assembly.tokens`), written under a temporary name; `manifest.json`
   (:mod:`curator.assembly.manifest`).
7. Record: the manifest and the usage ledger are committed in one catalog transaction, before the
   files are moved into place; a run killed at any point is finished by running the same command
   again (:mod:`curator.assembly.recovery`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curator.assembly.checks import (
    POOL_LABELS,
    AssemblyError,
    compositions,
    constraint_report,
    constraint_reports,
    format_constraint_line,
    require_held,
)
from curator.assembly.manifest import (
    MANIFEST_FILE,
    MANIFEST_VERSION,
    Manifest,
    find_manifest,
    manifests_of,
    validate_manifest,
)
from curator.assembly.pools import (
    DEFAULT_LINEAGE,
    Assembly,
    prepare,
    resolve_lineage,
    resolve_manifests,
)
from curator.assembly.quotas import cell_quotas, order_into_shards, shard_quotas, unit_shard_cuts
from curator.assembly.recovery import (
    TMP_PREFIX,
    WORK_PREFIX,
    clear_leftovers,
    complete_interrupted,
    output_target,
    place_files,
    require_empty,
)
from curator.assembly.selection import pick_rows
from curator.assembly.tokens import token_output, tokens_manifest
from curator.assembly.writer import write_outputs
from curator.core.version import __version__
from curator.store.catalog import store_path
from curator.store.session import CatalogSession

if TYPE_CHECKING:
    from curator.assembly.policy import Policy
    from curator.engine.base import Engine
    from curator.store.base import StoreBase as Store

#: Names the CLI, the facade, the tests and other operations import from here.
__all__ = [
    "DEFAULT_LINEAGE",
    "POOL_LABELS",
    "Assembly",
    "AssemblyError",
    "assemble",
    "cell_quotas",
    "constraint_report",
    "find_manifest",
    "format_constraint_line",
    "manifests_of",
    "plan_only",
    "prepare",
    "resolve_lineage",
    "resolve_manifests",
    "shard_quotas",
    "unit_shard_cuts",
]


def assemble(
    store: Store,
    policy: Policy,
    out: str | os.PathLike[str],
    *,
    lineage: str | None = None,
    name: str | None = None,
    lock_timeout: float | None = None,
    engine: str | Engine | None = None,
) -> Manifest:
    """Assemble a training set into `out` (see the module docstring). Holds the store's write
    lock throughout, so assemblies of one lineage see each other's usage in order. `out` may be
    a URL (``s3://bucket/prefix``): the set is written under the store's `.staging/`, then
    uploaded there, `manifest.json` last (:func:`curator.assembly.recovery.upload_set`).

    `engine` writes the output shards: ``local`` (default; env `CURATOR_ENGINE`) or an
    :class:`~curator.engine.base.Engine`. The set is byte for byte the same on every engine.

    A run that was killed is picked up by running the same call again: one killed before its
    catalog commit left nothing recorded, and its leftovers (`OUT/.tmp-<id>/`, an unrecorded
    `manifests/<id>/`, its work directory) are removed before assembling; one killed after the
    commit is completed — its files placed, or rewritten from the recorded selection — so the
    set is byte for byte what an uninterrupted run writes (:func:`complete_interrupted`).

    Raises:
        EngineError: `engine` is unknown or not available (before anything is written).
        InputError: `out` holds anything but what an interrupted assembly left.
        AssemblyError: `out` holds the unfinished set of another command (policy, lineage or
            name differ), or a recorded set cannot be completed.
    """
    from curator.assembly.planner import import_solver_in_background

    import_solver_in_background()
    from curator.engine.registry import using_engine
    from curator.store import catalog
    from curator.store.base import crash_point as _crash_point
    from curator.store.base import new_run_id
    from curator.store.commit import WorkDir, writing

    out_dir, out_url = output_target(store, out)
    with using_engine(engine) as runner, writing(store, "assemble", lock_timeout):
        with store.connect(read_only=False) as rw:
            catalog.ensure(rw)
        temp_root = os.path.join(store.root, ".staging")
        os.makedirs(temp_root, exist_ok=True)
        interrupted = clear_leftovers(store, out_dir, temp_root, out_url)
        if interrupted is not None:
            return complete_interrupted(
                store, policy, lineage, name, out_dir, interrupted, engine=runner
            )
        require_empty(out_dir, out_url)
        work = WorkDir.create(store.root, new_run_id(), prefix=WORK_PREFIX).path
        session = CatalogSession(store, os.path.join(work, "duckdb"))
        created_dir = not out_dir.exists()
        tmp_out = None
        committed = False
        try:
            tokens = token_output(policy)  # a tokenizer that cannot be used fails first
            assembly = prepare(store, policy, lineage, session)
            manifest_id = new_run_id()
            con = session.con
            pick_rows(con, assembly)
            starts = order_into_shards(con, assembly)
            overall, per_shard = compositions(con)
            constraints = constraint_reports(con, policy, overall, per_shard)
            require_held(constraints, per_shard, policy.target.unit)
            out_dir.mkdir(parents=True, exist_ok=True)
            tmp_out = out_dir / f"{TMP_PREFIX}{manifest_id}"
            tmp_out.mkdir()
            snapshot_paths = [store_path(store.root, s["path"]) for s in assembly.snapshot]
            spill_dir = os.path.join(work, "spill")
            os.makedirs(spill_dir)
            outputs = write_outputs(
                con, policy, snapshot_paths, str(tmp_out), spill_dir, starts, engine=runner
            )
            _crash_point("assemble-written")
            sequence = 1 + int(
                con.execute(
                    "SELECT coalesce(max(sequence), 0) FROM cat.manifests WHERE lineage = ?",
                    [assembly.lineage],
                ).fetchall()[0][0]
            )
            manifest_dir = Path(store.root) / "manifests" / manifest_id
            manifest_dir.mkdir(parents=True)
            selection_path = manifest_dir / "selection.parquet"
            # `chosen` names shards by their index in the snapshot; the selection file by path.
            con.execute(
                "COPY (SELECT out_pos, sample_id, content_hash, category, origin, generation, model, source, size, "
                "$paths[shard::BIGINT + 1] AS shard, row FROM chosen ORDER BY out_pos) "
                f"TO '{str(selection_path).replace(chr(39), chr(39) * 2)}' (FORMAT parquet, COMPRESSION zstd)",
                {"paths": [s["path"] for s in assembly.snapshot]},
            )
            session.detach()
            data = _manifest_data(
                store,
                policy,
                assembly,
                manifest_id=manifest_id,
                name=name,
                sequence=sequence,
                composition={"overall": overall, "shards": per_shard},
                constraints=constraints,
                out_dir=out_url or out_dir,
                selection_path=selection_path,
                outputs=outputs,
            )
            token_summary = tokens_manifest(tokens, outputs)
            if token_summary is not None:
                data["tokens"] = token_summary
            validate_manifest(data)
            manifest = Manifest(data, out_dir / MANIFEST_FILE)
            manifest.save(manifest_dir / MANIFEST_FILE)
            _crash_point("assemble-recorded")
            # The catalog first, then the files: a failure (or a kill) before the commit leaves
            # no set in `out`; one after it leaves `.tmp-<id>/`, which the same command then
            # completes, so content is never wrongly fresh and a recorded set is never lost.
            _record(store, policy, data, manifest_dir, selection_path, work)
            committed = True
            _crash_point("assemble-committed")
            place_files(manifest, out_dir, tmp_out)
            return manifest
        except BaseException as exc:
            if committed:
                if isinstance(exc, Exception):
                    raise AssemblyError(
                        f"manifest `{manifest_id}` was recorded, but placing its files in "
                        f"`{out_url or out_dir}` failed: {exc}",
                        "fix the cause and run the same command again: it completes the set",
                    ) from exc
                raise
            if created_dir and out_dir.exists() and not (out_dir / MANIFEST_FILE).exists():
                shutil.rmtree(out_dir, ignore_errors=True)
            raise
        finally:
            session.close()
            shutil.rmtree(work, ignore_errors=True)
            if not committed and tmp_out is not None and tmp_out.exists():
                shutil.rmtree(tmp_out, ignore_errors=True)


def _manifest_data(
    store: Store,
    policy: Policy,
    assembly: Assembly,
    *,
    manifest_id: str,
    name: str | None,
    sequence: int,
    composition: dict[str, Any],
    constraints: list[dict[str, Any]],
    out_dir: Path | str,
    selection_path: Path,
    outputs: list[dict[str, Any]],
) -> dict[str, Any]:
    """What `manifest.json` records of a set (schema: :func:`manifest_json_schema`)."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "manifest_id": manifest_id,
        "name": name or policy.name,
        "lineage": assembly.lineage,
        "sequence": sequence,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "curator_version": __version__,
        "seed": policy.seed,
        "policy": policy.to_json(),
        "freshness": {"used_manifests": assembly.used_manifests},
        "store": {"root": store.root, "shards": assembly.snapshot},
        "plan": assembly.plan.to_json(),
        "composition": composition,
        "constraints": constraints,
        "out_dir": str(out_dir),
        "selection": str(selection_path.relative_to(store.root)),
        "outputs": outputs,
        **_token_counts(store, policy, selection_path),
    }


def _token_counts(store: Store, policy: Policy, selection_path: Path) -> dict[str, Any]:
    """`token_counts` (which tokenizers counted the tokens), for a tokens target only."""
    from curator.assembly.pools import token_counts

    counts = token_counts(store.root, policy, str(selection_path))
    return {} if counts is None else {"token_counts": counts}


def _record(
    store: Store,
    policy: Policy,
    data: dict[str, Any],
    manifest_dir: Path,
    selection_path: Path,
    work: str,
) -> None:
    """Record the set in the catalog, in one transaction: its manifest, and the usage ledger of
    its selection (which content it used, and whether as fresh real) as one ledger file."""
    import duckdb

    from curator.assembly.manifest import usage_from_selection
    from curator.store import ledgers
    from curator.store.commit import transaction

    overall = data["composition"]["overall"]
    manifest_id = data["manifest_id"]
    with duckdb.connect() as mem:
        usage = ledgers.write_ledger(
            work,
            "usage",
            usage_from_selection(mem, manifest_id, str(selection_path)),
            scope=manifest_id,
            run_id=manifest_id,
        )
    # `assemble` brought the catalog up to date (`catalog.ensure`) under the same write lock.
    ledgers.place_ledgers(store.root, work, [usage])
    with ledgers.withdrawn_unless_committed(store.root, work) as registration:
        with transaction(store) as rw:
            rw.execute(
                "INSERT INTO manifests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    manifest_id, data["name"], data["lineage"], data["sequence"], datetime.now(UTC), policy.seed,
                    policy.target.unit, policy.target.amount, overall["rows"], overall["units"], data["out_dir"],
                    str((manifest_dir / MANIFEST_FILE).relative_to(store.root)), json.dumps(data["policy"]),
                    json.dumps(overall), __version__,
                ],
            )  # fmt: skip
            ledgers.register_ledger(rw, usage)
        registration.committed = True


def plan_only(store: Store, policy: Policy, *, lineage: str | None = None) -> Assembly:
    """Plan without writing anything (``--dry-run``, ``policy check``)."""
    work = tempfile.mkdtemp(prefix="curator-plan-")
    session = CatalogSession(store, work)
    try:
        return prepare(store, policy, lineage, session)
    finally:
        session.close()
        shutil.rmtree(work, ignore_errors=True)
