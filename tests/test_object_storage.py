"""Inputs and assembled sets on object storage, against a local S3-compatible server (moto, started
once for the run by the `s3_endpoint` fixture in conftest.py): ingest from `s3://`, assemble to
`s3://`, `manifest verify` there. The store itself stays on the local filesystem."""

from __future__ import annotations

import gzip
import io
import json
import signal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

import curator
from curator.assembly.manifest import Manifest, ManifestError
from curator.assembly.policy import Policy
from tests.conftest import invoke
from tests.test_assemble import PARTS, POLICY, POLICY_TOML, make_store


def _s3():
    import s3fs

    return s3fs.S3FileSystem()


def _parquet_bytes(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer)
    return buffer.getvalue()


INPUTS = {
    "a.jsonl": b'{"text": "hello world"}\n{bad\n{"text": "third line"}\n',
    "c.parquet": _parquet_bytes(pa.table({"text": ["row zero", "row one"], "n": [1, 2]})),
    "sub/b.jsonl.gz": gzip.compress(b'{"text": "compressed"}\n'),
    "sub/d.jsonl.zst": zstandard.ZstdCompressor().compress(b'{"text": "zstd"}\n'),
    ".hidden/x.jsonl": b'{"text": "never read"}\n',
}


def _upload_inputs(bucket: str, local: Path) -> None:
    fs = _s3()
    for name, data in INPUTS.items():
        fs.pipe(f"{bucket}/in/{name}", data)
        (local / name).parent.mkdir(parents=True, exist_ok=True)
        (local / name).write_bytes(data)


def _samples(store: curator.Store) -> list[dict[str, object]]:
    return store.sql(
        "SELECT sample_id, content_hash, text FROM samples ORDER BY sample_id"
    ).to_pylist()


def test_ingest_from_a_prefix_gives_what_the_same_files_give_locally(tmp_path, s3_bucket):
    _upload_inputs(s3_bucket, tmp_path / "in")
    remote = curator.init_store(tmp_path / "remote")
    result = remote.ingest([f"s3://{s3_bucket}/in/"], source="web", origin="real")
    local = curator.init_store(tmp_path / "local")
    local.ingest([str(tmp_path / "in")], source="web", origin="real")

    assert (result.files, result.ingested, result.rejected) == (4, 6, 1)
    assert [s["sample_id"] for s in _samples(remote)] == [
        "web/a.jsonl:1",
        "web/a.jsonl:3",
        "web/c.parquet:0",
        "web/c.parquet:1",
        "web/sub/b.jsonl.gz:1",
        "web/sub/d.jsonl.zst:1",
    ]
    assert _samples(remote) == _samples(local)
    rejects = [json.loads(line) for line in Path(result.rejects_path).read_text().splitlines()]
    assert [(r["file"], r["line"], r["code"]) for r in rejects] == [
        (f"s3://{s3_bucket}/in/a.jsonl", 2, "malformed_json")
    ]
    assert result.first_rejects["malformed_json"].startswith(
        f"`s3://{s3_bucket}/in/a.jsonl` line 2: malformed JSON"
    )


def test_worker_processes_read_the_urls_their_tasks_carry(tmp_path, s3_bucket, monkeypatch):
    """Tasks are plain data (the URL as a string): worker processes of the local engine open the
    objects themselves, and the store is the one an in-process run makes."""
    import pickle

    from curator.ingest import pipeline
    from curator.ingest.readers import discover, plan_tasks

    _upload_inputs(s3_bucket, tmp_path / "in")
    tasks = plan_tasks(discover([f"s3://{s3_bucket}/in/"])[0])
    assert pickle.loads(pickle.dumps(tasks)) == tasks
    assert [file.path for task in tasks for file in task.files] == [
        f"s3://{s3_bucket}/in/a.jsonl",
        f"s3://{s3_bucket}/in/c.parquet",
        f"s3://{s3_bucket}/in/sub/b.jsonl.gz",
        f"s3://{s3_bucket}/in/sub/d.jsonl.zst",
    ]
    inline = curator.init_store(tmp_path / "inline")
    inline.ingest([f"s3://{s3_bucket}/in/"], source="web", origin="real", jobs=2)
    monkeypatch.setattr(pipeline, "INLINE_BYTES", 0)
    pooled = curator.init_store(tmp_path / "pooled")
    result = pooled.ingest([f"s3://{s3_bucket}/in/"], source="web", origin="real", jobs=2)
    assert (result.ingested, result.rejected) == (6, 1)
    assert _samples(pooled) == _samples(inline)


def test_an_object_gone_after_discovery_is_a_reject_as_a_local_file_is(tmp_path, s3_bucket):
    from curator.ingest.readers import ReaderOptions, discover, plan_tasks, read_task

    _upload_inputs(s3_bucket, tmp_path / "in")
    tasks = plan_tasks(discover([f"s3://{s3_bucket}/in/a.jsonl"])[0])
    _s3().rm(f"{s3_bucket}/in/a.jsonl")
    batches = list(read_task(tasks[0], ReaderOptions(), {}, frozenset()))
    rejects = [reject for batch in batches for reject in batch.rejects]
    assert [(r.file, r.code) for r in rejects] == [
        (f"s3://{s3_bucket}/in/a.jsonl", "unreadable_file")
    ]


def test_ingest_from_a_glob_and_from_one_object(tmp_path, s3_bucket):
    _upload_inputs(s3_bucket, tmp_path / "in")
    store = curator.init_store(tmp_path / "store")
    store.ingest([f"s3://{s3_bucket}/in/**/*.jsonl*"], source="g", origin="real")
    store.ingest([f"s3://{s3_bucket}/in/c.parquet"], source="p", origin="real")
    assert [s["sample_id"] for s in _samples(store)] == [
        "g/a.jsonl:1",
        "g/a.jsonl:3",
        "g/sub/b.jsonl.gz:1",
        "g/sub/d.jsonl.zst:1",
        "p/c.parquet:0",
        "p/c.parquet:1",
    ]


def test_a_missing_url_and_missing_credentials_are_clear_errors(tmp_path, s3_bucket, monkeypatch):
    import s3fs

    store = curator.init_store(tmp_path / "store")
    with pytest.raises(curator.InputError) as missing:
        store.ingest([f"s3://{s3_bucket}/nothing/"], source="x", origin="real")
    assert str(missing.value) == (
        f"input `s3://{s3_bucket}/nothing/` does not exist\n"
        "Hint: check the URL (bucket, prefix and key)"
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    s3fs.S3FileSystem.clear_instance_cache()
    try:
        with pytest.raises(curator.InputError) as refused:
            store.ingest([f"s3://{s3_bucket}/in/"], source="x", origin="real")
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
    assert str(refused.value).startswith(
        f"cannot access `s3://{s3_bucket}/in/`: NoCredentialsError"
    )
    assert refused.value.hint is not None and "`AWS_ACCESS_KEY_ID`" in refused.value.hint
    assert "`AWS_ENDPOINT_URL`" in refused.value.hint


def test_a_protocol_without_its_backend_gives_the_install_line(tmp_path):
    pytest.importorskip("fsspec")
    try:
        import gcsfs  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("gcsfs is installed")
    store = curator.init_store(tmp_path / "store")
    with pytest.raises(curator.InputError) as error:
        store.ingest(["gs://bucket/in/"], source="x", origin="real")
    assert error.value.message.startswith(
        "reading `gs://bucket/in/` needs the fsspec backend of `gs://`, which is not installed"
    )
    assert error.value.hint == "pip install gcsfs"


def _listing(prefix: str) -> list[str]:
    fs = _s3()
    fs.invalidate_cache()
    return sorted(path[len(prefix) + 1 :] for path in fs.find(prefix))


def test_assemble_to_a_prefix_and_verify_it_there(tmp_path, s3_bucket, runner):
    store = make_store(
        tmp_path, {("real", "web"): 120, ("synthetic", "gen"): 80, ("unknown", "crawl"): 40}
    )
    policy = Policy.from_dict(POLICY)
    url = f"s3://{s3_bucket}/sets/gen-1"
    manifest = store.assemble(policy, url, lineage="main")
    reference = store.assemble(policy, tmp_path / "ref", lineage="ref")

    assert manifest.data["out_dir"] == url
    assert _listing(f"{s3_bucket}/sets/gen-1") == sorted(["manifest.json", *PARTS])
    assert [o["sha256"] for o in manifest.outputs] == [o["sha256"] for o in reference.outputs]
    assert manifest.output_locations() == [f"{url}/{part}" for part in PARTS]
    assert store.manifests()[0]["out_dir"] == url
    # The local copy under the store's staging area is gone once the set is uploaded.
    assert [p.name for p in (Path(store.root) / ".staging").iterdir()] == []

    loaded = Manifest.load(url)
    assert loaded.data == manifest.data and loaded.verify() == []
    result = invoke(runner, "manifest", "verify", url)
    assert result.exit_code == 0, result.output
    assert (
        result.output == f"ok: 4 files of manifest {manifest.manifest_id} match their checksums\n"
    )

    fs = _s3()
    fs.pipe(f"{s3_bucket}/sets/gen-1/{PARTS[1]}", b"not the shard")
    result = runner.invoke(curator.cli.cli, ["manifest", "verify", url])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"changed: {url}/{PARTS[1]} (13 bytes, manifest says {manifest.outputs[1]['bytes']:,})",
        f"Error: 1 of 4 output files of manifest `{manifest.manifest_id}` are missing or changed",
        "Hint: re-assemble, or restore the files",
    ]
    fs.rm(f"{s3_bucket}/sets/gen-1/{PARTS[2]}")
    assert Manifest.load(url + "/manifest.json").verify()[1] == f"missing: {url}/{PARTS[2]}"

    with pytest.raises(curator.InputError, match=f"`{url}` is not empty"):
        store.assemble(policy, url, lineage="again")
    with pytest.raises(ManifestError) as missing:
        Manifest.load(f"s3://{s3_bucket}/sets/none")
    assert missing.value.message == (
        f"cannot read manifest `s3://{s3_bucket}/sets/none/manifest.json`: no such object"
    )


def test_an_assembly_killed_while_uploading_is_completed_by_the_same_command(tmp_path, s3_bucket):
    from tests.test_store import run_cli

    store = make_store(
        tmp_path, {("real", "web"): 120, ("synthetic", "gen"): 80, ("unknown", "crawl"): 40}
    )
    (tmp_path / "p.toml").write_text(POLICY_TOML)
    url = f"s3://{s3_bucket}/sets/gen-1"
    args = ["assemble", "--policy", str(tmp_path / "p.toml"), "--out", url, "--lineage", "main"]
    args += ["--store", store.root]
    crashed = run_cli(*args, env={"CURATOR_CRASH_AT": "assemble-uploading"})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    assert _listing(f"{s3_bucket}/sets/gen-1") == [PARTS[0]]  # no manifest: no set yet

    other = run_cli(*args[:-4], "--lineage", "other", "--store", store.root)
    assert other.returncode == 1
    assert f"`{url}` holds the unfinished set of manifest" in other.stderr

    done = run_cli(*args)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("note: completed manifest ")
    assert _listing(f"{s3_bucket}/sets/gen-1") == sorted(["manifest.json", *PARTS])
    manifest = Manifest.load(url)
    assert manifest.verify() == []
    reference = store.assemble(Policy.from_dict(POLICY), tmp_path / "ref", lineage="ref")
    assert [o["sha256"] for o in manifest.outputs] == [o["sha256"] for o in reference.outputs]
    assert [p.name for p in (Path(store.root) / ".staging").iterdir()] == []
    again = run_cli(*args)
    assert again.returncode == 1 and f"`{url}` is not empty" in again.stderr
