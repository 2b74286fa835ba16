"""Recovery: finishing what a killed assembly left.

An assembly records its manifest and usage in the catalog before it moves its files into place.
One killed before that commit left nothing recorded: its leftovers (its work directory under the
store's `.staging/`, an unrecorded `manifests/<id>/`, `OUT/.tmp-<id>/`) are removed
(:func:`clear_leftovers`). One killed after it is completed by the same command
(:func:`complete_interrupted`): its files are placed, or rewritten from the recorded selection, so
the set is byte for byte what an uninterrupted run writes.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curator.assembly.checks import AssemblyError
from curator.assembly.manifest import MANIFEST_FILE, Manifest
from curator.assembly.pools import DEFAULT_LINEAGE, resolve_lineage
from curator.assembly.writer import write_outputs
from curator.store.catalog import store_path
from curator.store.session import DUCKDB_MEMORY_LIMIT

if TYPE_CHECKING:
    from curator.assembly.policy import Policy
    from curator.engine.base import Engine
    from curator.store.base import StoreBase as Store


#: Prefixes of what an assembly writes before it is done: its work directory under the store's
#: `.staging/`, and its output directory inside `out`.
WORK_PREFIX = "assemble-"
TMP_PREFIX = ".tmp-"


def place_files(manifest: Manifest, out_dir: Path, tmp_out: Path) -> None:
    """Move the output files from `tmp_out` into `out_dir` (those already there stay), then
    write `manifest.json` last and remove `tmp_out`: a set is complete when its manifest is."""
    from curator.store.base import crash_point as _crash_point

    for index, output in enumerate(manifest.outputs):
        staged = tmp_out / output["path"]
        if staged.exists():
            os.replace(staged, out_dir / output["path"])
        if index == 0:
            _crash_point("assemble-placing")
    manifest.save(out_dir / MANIFEST_FILE)
    shutil.rmtree(tmp_out, ignore_errors=True)


def clear_leftovers(store: Store, out_dir: Path, temp_root: str) -> str | None:
    """Under the write lock, after the store's recovery (:func:`curator.store.commit.recover`
    removed the work directories of killed runs), remove what killed assemblies left: every
    `manifests/<id>/` the catalog does not record, and each `out/.tmp-<id>/` of an unrecorded
    manifest. Returns the id of a recorded manifest whose `out/.tmp-<id>/` is still there: its
    assembly was killed after the catalog commit."""
    with store.connect(read_only=True) as con:
        recorded = {
            row[0]: row[1]
            for row in con.execute("SELECT manifest_id, out_dir FROM manifests").fetchall()
        }
    manifests_root = Path(store.root) / "manifests"
    if manifests_root.is_dir():
        for directory in manifests_root.iterdir():
            if directory.is_dir() and directory.name not in recorded:
                shutil.rmtree(directory, ignore_errors=True)
    unfinished = None
    if out_dir.is_dir():
        for entry in sorted(out_dir.iterdir()):
            if not (entry.is_dir() and entry.name.startswith(TMP_PREFIX)):
                continue
            manifest_id = entry.name[len(TMP_PREFIX) :]
            if recorded.get(manifest_id) == str(out_dir):
                unfinished = manifest_id
            else:
                shutil.rmtree(entry, ignore_errors=True)
    return unfinished


def complete_interrupted(
    store: Store,
    policy: Policy,
    lineage: str | None,
    name: str | None,
    out_dir: Path,
    manifest_id: str,
    *,
    engine: Engine,
) -> Manifest:
    """Finish the set of `manifest_id`, recorded in the catalog by an assembly killed before it
    had placed its files, when this call is the same command (policy, lineage, name): the files
    already written (in `out` or its `.tmp-<id>/`) are kept when their checksums match, else all
    are rewritten from the recorded selection and must match the recorded checksums."""
    from curator.store.shards import sha256_file

    recorded = Manifest.load(Path(store.root) / "manifests" / manifest_id / MANIFEST_FILE)
    data = recorded.data
    tmp_out = out_dir / f"{TMP_PREFIX}{manifest_id}"
    asked = {
        "policy": policy.to_json(),
        "lineage": resolve_lineage(policy, lineage) or DEFAULT_LINEAGE,
        "name": name or policy.name,
    }
    differing = [key for key, value in asked.items() if data[key] != value]
    if differing:
        raise AssemblyError(
            f"`{out_dir}` holds the unfinished set of manifest `{manifest_id}` "
            f"({data['lineage']} #{data['sequence']}), recorded by an assembly that was "
            f"interrupted after its catalog commit; this command's {' and '.join(differing)} "
            f"{'differs' if len(differing) == 1 else 'differ'} from that assembly's",
            "run the command that started it again to complete the set (its policy is in "
            f"`{Path(store.root) / 'manifests' / manifest_id / MANIFEST_FILE}`), or assemble into another --out (Python: `out`)",
        )

    def intact(output: dict[str, Any]) -> bool:
        return any(
            path.exists() and sha256_file(str(path)) == output["sha256"]
            for path in (out_dir / output["path"], tmp_out / output["path"])
        )

    how = "its files were in place"
    if not all(intact(output) for output in recorded.outputs):
        how = "its files were rewritten from the recorded selection"
        shutil.rmtree(tmp_out, ignore_errors=True)
        tmp_out.mkdir()
        for output in recorded.outputs:
            (out_dir / output["path"]).unlink(missing_ok=True)
        _rewrite_outputs(store, policy, data, tmp_out, engine)
        changed = [
            o["path"]
            for o in recorded.outputs
            if sha256_file(str(tmp_out / o["path"])) != o["sha256"]
        ]
        if changed:
            raise AssemblyError(
                f"manifest `{manifest_id}` was recorded by an interrupted assembly, but its files "
                f"cannot be rewritten as recorded: `{changed[0]}` differs from its checksum",
                "the store's shards or the curator version changed since; the set cannot be "
                "completed, so assemble into another --out (Python: `out`; the recorded usage stands)",
            )
    manifest = Manifest(data, out_dir / MANIFEST_FILE)
    place_files(manifest, out_dir, tmp_out)
    manifest.note = (
        f"completed manifest {manifest_id}, recorded by an assembly interrupted before it was "
        f"done; {how}"
    )
    return manifest


def _rewrite_outputs(
    store: Store, policy: Policy, data: dict[str, Any], tmp_out: Path, engine: Engine
) -> None:
    """Write a recorded set's files again, from its selection and its snapshot's shards."""
    import duckdb

    shards = [s["path"] for s in data["store"]["shards"]]
    paths = [store_path(store.root, path) for path in shards]
    missing = [path for path, full in zip(shards, paths, strict=True) if not os.path.exists(full)]
    if missing:
        raise AssemblyError(
            f"manifest `{data['manifest_id']}` was recorded by an interrupted assembly, but shard "
            f"`{missing[0]}` it was drawn from is gone, so its files cannot be rewritten",
            "assemble into another --out (Python: `out`; the recorded usage stands)",
        )
    from curator.store.base import new_run_id
    from curator.store.commit import WorkDir

    work = WorkDir.create(store.root, new_run_id(), prefix=WORK_PREFIX).path
    con = duckdb.connect(
        config={"memory_limit": DUCKDB_MEMORY_LIMIT, "temp_directory": os.path.join(work, "duckdb")}
    )
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(
            "CREATE TEMP TABLE chosen AS SELECT out_pos, list_position($shards, shard) - 1 AS shard, row "
            "FROM read_parquet($selection)",
            {"shards": shards, "selection": store_path(store.root, data["selection"], "selection")},
        )
        starts = [0]
        for output in data["outputs"][:-1]:
            starts.append(starts[-1] + int(output["rows"]))
        spill_dir = os.path.join(work, "spill")
        os.makedirs(spill_dir)
        write_outputs(con, policy, paths, str(tmp_out), spill_dir, starts, engine=engine)
    finally:
        con.close()
        shutil.rmtree(work, ignore_errors=True)
