"""Recovery: finishing what a killed assembly left.

An assembly records its manifest and usage in the catalog before it moves its files into place.
One killed before that commit left nothing recorded: its leftovers (its work directory under the
store's `.staging/`, an unrecorded `manifests/<id>/`, `OUT/.tmp-<id>/`) are removed
(:func:`clear_leftovers`). One killed after it is completed by the same command
(:func:`complete_interrupted`): its files are placed, or rewritten from the recorded selection, so
the set is byte for byte what an uninterrupted run writes.

A set assembled to a URL (``s3://bucket/prefix``, :func:`output_target`) is written the same way
into a directory of its own under the store's `.staging/`, then uploaded, the shards first and
`manifest.json` last (:func:`upload_set`), so a reader that sees the manifest sees the whole set.
A run killed before the upload is done left that directory with the placed set: the same command
completes the upload.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curator.assembly.checks import AssemblyError
from curator.assembly.manifest import MANIFEST_FILE, Manifest
from curator.assembly.pools import DEFAULT_LINEAGE, resolve_lineage
from curator.assembly.writer import write_outputs
from curator.core.errors import InputError
from curator.core.remote import is_url, join_url, listing, upload
from curator.store.base import STAGING_DIR
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
#: Prefix of the local directory (under the store's `.staging/`) of a set assembled to a URL; it
#: carries no owner mark, so the store's recovery leaves it for the command that completes it.
REMOTE_PREFIX = "remote-out-"


def output_target(store: Store, out: str | os.PathLike[str]) -> tuple[Path, str | None]:
    """Where a set is written on this machine, and the URL it is then uploaded to (``None`` for
    a local `out`). A URL's local directory is named by the URL, so the same command run again
    finds what a killed run left."""
    text = os.fspath(out)
    if not is_url(text):
        return Path(text).resolve(), None
    url = text.rstrip("/")
    digest = hashlib.sha256(url.encode("utf-8")).hexdigest()[:16]
    return Path(store.root) / STAGING_DIR / f"{REMOTE_PREFIX}{digest}", url


def require_empty(out_dir: Path, url: str | None) -> None:
    """Refuse to assemble into a directory (or a URL prefix) that holds anything.

    Raises:
        InputError: `out_dir` (or, for a URL, the prefix) is not empty.
    """
    if url is not None:
        if listing(url):
            raise InputError(f"`{url}` is not empty", "assemble into a new or empty prefix")
        return
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InputError(f"`{out_dir}` is not empty", "assemble into a new or empty directory")


def upload_set(manifest: Manifest, out_dir: Path) -> None:
    """Upload a placed set from `out_dir` to its URL (the manifest's `out_dir`): each output
    file, then `manifest.json` last; then remove the local copy."""
    from curator.store.base import crash_point as _crash_point

    url = str(manifest.data["out_dir"])
    for index, output in enumerate(manifest.files()):
        upload(str(out_dir / output["path"]), join_url(url, output["path"]))
        if index == 0:
            _crash_point("assemble-uploading")
    upload(str(out_dir / MANIFEST_FILE), join_url(url, MANIFEST_FILE))
    shutil.rmtree(out_dir, ignore_errors=True)


def place_files(manifest: Manifest, out_dir: Path, tmp_out: Path) -> None:
    """Move the output files from `tmp_out` into `out_dir` (those already there stay), then
    write `manifest.json` last and remove `tmp_out`: a set is complete when its manifest is.
    A set whose `out_dir` is a URL is then uploaded there (:func:`upload_set`)."""
    from curator.store.base import crash_point as _crash_point

    for index, output in enumerate(manifest.files()):
        staged = tmp_out / output["path"]
        if staged.exists():
            (out_dir / output["path"]).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staged, out_dir / output["path"])
        if index == 0:
            _crash_point("assemble-placing")
    manifest.save(out_dir / MANIFEST_FILE)
    shutil.rmtree(tmp_out, ignore_errors=True)
    if is_url(manifest.data["out_dir"]):
        upload_set(manifest, out_dir)


def clear_leftovers(
    store: Store, out_dir: Path, temp_root: str, url: str | None = None
) -> str | None:
    """Under the write lock, after the store's recovery (:func:`curator.store.commit.recover`
    removed the work directories of killed runs), remove what killed assemblies left: every
    `manifests/<id>/` the catalog does not record, and each `out/.tmp-<id>/` of an unrecorded
    manifest. Returns the id of a recorded manifest whose `out/.tmp-<id>/` is still there: its
    assembly was killed after the catalog commit. For a set assembled to `url` (written locally
    in `out_dir` first), also the id of a recorded set placed in `out_dir` whose upload was not
    done. When `out_dir` is missing or empty, the latest set the catalog records there."""
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
    recorded_as = url if url is not None else str(out_dir)
    placed = out_dir / MANIFEST_FILE
    if url is not None and placed.is_file():
        manifest_id = Manifest.load(placed).manifest_id
        if recorded.get(manifest_id) == url:
            unfinished = manifest_id
    if out_dir.is_dir():
        for entry in sorted(out_dir.iterdir()):
            if not (entry.is_dir() and entry.name.startswith(TMP_PREFIX)):
                continue
            manifest_id = entry.name[len(TMP_PREFIX) :]
            if recorded.get(manifest_id) == recorded_as:
                unfinished = manifest_id
            else:
                shutil.rmtree(entry, ignore_errors=True)
    if unfinished is None and url is None and not (out_dir.is_dir() and any(out_dir.iterdir())):
        # `out` is gone or empty, but the catalog records a set there (say, `out` removed by hand
        # after a kill past the catalog commit): its usage stands, so the set is completed
        # (rewritten from its selection), never assembled anew over content it already used.
        mine = sorted(m for m, where in recorded.items() if where == recorded_as)
        if mine:
            unfinished = mine[-1]
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
            f"`{data['out_dir']}` holds the unfinished set of manifest `{manifest_id}` "
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
    if not all(intact(output) for output in recorded.files()):
        how = "its files were rewritten from the recorded selection"
        shutil.rmtree(tmp_out, ignore_errors=True)
        tmp_out.mkdir(parents=True)
        for output in recorded.files():
            (out_dir / output["path"]).unlink(missing_ok=True)
        _rewrite_outputs(store, policy, data, tmp_out, engine)
        changed = [
            o["path"]
            for o in recorded.files()
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
            "CREATE TEMP TABLE chosen AS SELECT out_pos, list_position($shards, shard) - 1 AS shard, row, category "
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
