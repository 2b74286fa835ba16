"""The store: layout, catalog, readers other than curator, crash safety, one writer at a time."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

import curator
from curator.core.schema import PROVENANCE_NAMES
from tests.conftest import SUBPROCESS_TIMEOUT, run_python

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict[str, str] | None = None, **kwargs) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    kwargs.setdefault("timeout", SUBPROCESS_TIMEOUT)
    return subprocess.run(
        [sys.executable, "-m", "curator", *args],
        env=full_env,
        capture_output=True,
        text=True,
        **kwargs,
    )


def test_init_creates_the_layout_and_refuses_to_clobber(tmp_path):
    store = curator.init_store(tmp_path / "s")
    assert sorted(p.name for p in Path(store.root).iterdir()) == [
        "catalog.duckdb",
        "indexes",
        "manifests",
        "rejects",
        "shards",
    ]
    with pytest.raises(curator.StoreError, match="a store already exists"):
        curator.init_store(tmp_path / "s")
    assert curator.init_store(tmp_path / "s", exist_ok=True).root == store.root
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(curator.StoreError, match="is not empty and holds no store"):
        curator.init_store(tmp_path / "full")
    with pytest.raises(curator.StoreError) as caught:
        curator.open_store(tmp_path / "nowhere")
    assert caught.value.hint == (
        f"create one with `curator init {tmp_path / 'nowhere'}` (Python: `curator.init_store(...)`)"
    )


def test_open_store_uses_the_environment(tmp_path, monkeypatch):
    store = curator.init_store(tmp_path / "s")
    monkeypatch.setenv("CURATOR_STORE", str(tmp_path / "s"))
    assert curator.open_store().root == store.root
    monkeypatch.delenv("CURATOR_STORE")
    with pytest.raises(curator.StoreError, match="no store given"):
        curator.open_store()


def test_empty_store_has_a_samples_view_with_every_column(store):
    table = store.sql("SELECT * FROM samples")
    assert table.num_rows == 0
    assert table.schema.names == [*PROVENANCE_NAMES, "text", "image"]
    assert store.stats().total_rows == 0


@pytest.fixture
def filled(store, write_jsonl, tmp_path):
    write_jsonl("in/web.jsonl", [{"text": f"real text {i}"} for i in range(6)])
    write_jsonl("in/gen.jsonl", [{"text": f"generated text {i}"} for i in range(3)])
    store.ingest([tmp_path / "in" / "web.jsonl"], source="web", origin="real")
    store.ingest(
        [tmp_path / "in" / "gen.jsonl"], source="gen", origin="synthetic", generation=1, model="m1"
    )
    return store


def test_duckdb_alone_answers_inside_the_store_directory(filled):
    code = (
        "import duckdb; con = duckdb.connect('catalog.duckdb', read_only=True); "
        "print(con.execute('SELECT origin, count(*) FROM samples GROUP BY 1 ORDER BY 1').fetchall())"
    )
    out = run_python(code, cwd=filled.root)
    assert out.stdout.strip() == "[('real', 6), ('synthetic', 3)]"


def test_shards_read_unchanged_by_pyarrow_polars_duckdb_and_datasets(filled, tmp_path):
    import polars as pl

    paths = [str(Path(filled.root) / s["path"]) for s in filled.live_shards()]
    arrow = pq.ParquetDataset(paths).read()
    assert arrow.num_rows == 9
    frame = pl.read_parquet(paths)
    assert frame.height == 9
    assert sorted(frame["origin"].unique().to_list()) == ["real", "synthetic"]
    assert duckdb.execute(f"SELECT count(*) FROM read_parquet({paths!r})").fetchall() == [(9,)]
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    import datasets

    loaded = datasets.load_dataset(
        "parquet", data_files=paths, split="train", cache_dir=str(tmp_path / "hf")
    )
    assert loaded.num_rows == 9
    assert set(PROVENANCE_NAMES) <= set(loaded.column_names)
    assert sorted(set(loaded["generation"])) == [0, 1]


def test_stats_and_catalog_tables(filled):
    stats = filled.stats()
    assert [(r.origin, r.generation, r.source, r.rows) for r in stats.rows] == [
        ("real", 0, "web", 6),
        ("synthetic", 1, "gen", 3),
    ]
    assert stats.by_origin() == {"real": 6, "synthetic": 3}
    assert stats.total_bytes == sum(len(f"real text {i}") for i in range(6)) + sum(
        len(f"generated text {i}") for i in range(3)
    )
    runs = filled.sql(
        "SELECT command, status, rows_read, ingested FROM runs ORDER BY started_at"
    ).to_pylist()
    assert runs == [
        {"command": "ingest", "status": "committed", "rows_read": 6, "ingested": 6},
        {"command": "ingest", "status": "committed", "rows_read": 3, "ingested": 3},
    ]
    for shard in filled.live_shards():
        from curator.store.shards import sha256_file

        assert sha256_file(str(Path(filled.root) / shard["path"])) == shard["sha256"]


def test_sql_errors_are_curator_errors(store):
    with pytest.raises(curator.QueryError) as caught:
        store.sql("SELECT nope FROM samples")
    assert caught.value.message.startswith(
        'query failed: Binder Error: Referenced column "nope" not found'
    )


def test_export_streams_a_query_to_parquet(filled, tmp_path):
    assert (
        filled.export("SELECT * FROM samples WHERE origin = 'real'", tmp_path / "real.parquet") == 6
    )
    assert pq.read_table(tmp_path / "real.parquet").num_rows == 6


# -- crash safety ------------------------------------------------------------------------


def _store_state(root: str) -> tuple[int, int, list[str]]:
    store = curator.open_store(root)
    rows = store.sql("SELECT count(*) AS n FROM samples").to_pylist()[0]["n"]
    shards = store.sql("SELECT count(*) AS n FROM shards").to_pylist()[0]["n"]
    files = sorted(str(p.relative_to(root)) for p in Path(root, "shards").rglob("*") if p.is_file())
    return rows, shards, files


@pytest.mark.parametrize("point", ["staged", "renamed"])
def test_a_killed_ingest_leaves_nothing_visible_and_a_rerun_completes(store, write_jsonl, point):
    path = write_jsonl("a.jsonl", [{"text": f"line {i}"} for i in range(100)])
    args = ["ingest", str(path), "--store", store.root, "--source", "s", "--origin", "real"]
    crashed = run_cli(*args, env={"CURATOR_CRASH_AT": point})
    assert crashed.returncode == -signal.SIGKILL
    rows, shards, _files = _store_state(store.root)
    assert (rows, shards) == (0, 0)
    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    rows, shards, files = _store_state(store.root)
    assert (rows, shards) == (100, 1)
    assert files == [store.live_shards()[0]["path"]]  # what the crash left behind is gone
    assert not any(Path(store.root, ".staging").iterdir())


def test_a_kill_after_commit_is_a_complete_run(store, write_jsonl):
    path = write_jsonl("a.jsonl", [{"text": f"line {i}"} for i in range(10)])
    args = ["ingest", str(path), "--store", store.root, "--source", "s", "--origin", "real"]
    assert run_cli(*args, env={"CURATOR_CRASH_AT": "committed"}).returncode == -signal.SIGKILL
    assert _store_state(store.root)[:2] == (10, 1)
    rerun = run_cli(*args, "--json")
    assert json.loads(rerun.stdout)["skipped"] == 10


def _start_big_ingest(store, tmp_path, rows: int) -> tuple[subprocess.Popen, list[str]]:
    """Start a CLI ingest of `rows` JSON lines and return once it has staged a shard."""
    path = tmp_path / "big.jsonl"
    with open(path, "w") as handle:
        for i in range(rows):
            handle.write(json.dumps({"text": f"document {i} " + "word " * 20}) + "\n")
    args = [
        "ingest",
        str(path),
        "--store",
        store.root,
        "--source",
        "big",
        "--origin",
        "real",
        "--batch-rows",
        "2000",
        "--shard-size",
        "2MB",
    ]
    process = subprocess.Popen(
        [sys.executable, "-m", "curator", *args],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    staging = Path(store.root, ".staging")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not list(staging.rglob("*.parquet")):
        time.sleep(0.01)
    assert list(staging.rglob("*.parquet")), "the ingest never wrote a staged shard"
    return process, args


def test_sigkill_in_the_middle_of_a_large_ingest(store, tmp_path):
    process, args = _start_big_ingest(store, tmp_path, 300_000)
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=SUBPROCESS_TIMEOUT)
    assert _store_state(store.root)[:2] == (0, 0)
    rerun = run_cli(*args, "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["ingested"] == 300_000
    assert _store_state(store.root)[0] == 300_000


def test_ctrl_c_commits_nothing_and_a_rerun_completes(store, tmp_path):
    process, args = _start_big_ingest(store, tmp_path, 200_000)
    staging = Path(store.root, ".staging")
    process.send_signal(signal.SIGINT)
    _out, err = process.communicate(timeout=60)
    # Normally curator catches the interrupt, removes its staging directory and exits 130. If the
    # signal lands while Arrow has its own SIGINT handler installed, the process dies of the
    # signal instead (-2): the store must be just as consistent, and the next write tidies up.
    assert process.returncode in (130, -signal.SIGINT), err
    if process.returncode == 130:
        assert "Interrupted: nothing of this run was committed." in err
        assert list(staging.iterdir()) == []
    assert _store_state(store.root) == (0, 0, [])
    rerun = run_cli(*args, "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["ingested"] == 200_000
    assert list(staging.iterdir()) == []


# -- one writer at a time ------------------------------------------------------------------

HOLD_LOCK = """
import sys, time
from curator.store.locking import write_lock
with write_lock(sys.argv[1], "test-holder"):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _hold_lock(root: str, seconds: float) -> subprocess.Popen:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, root, str(seconds)],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "locked"
    return process


def test_a_second_writer_times_out_with_a_clear_message(store, write_jsonl):
    path = write_jsonl("a.jsonl", [{"text": "a"}])
    holder = _hold_lock(store.root, 30)
    try:
        with pytest.raises(curator.StoreLockedError) as caught:
            store.ingest([path], source="s", origin="real", lock_timeout=0.3)
        assert caught.value.message == (
            f"another process holds the write lock of store `{store.root}` (pid {holder.pid}, "
            f"`curator test-holder`, since {json.loads(Path(store.root, '.curator.lock.owner').read_text())['since']}); waited 0.3 s"
        )
        assert "--lock-timeout" in caught.value.hint
    finally:
        holder.kill()
        holder.wait(timeout=SUBPROCESS_TIMEOUT)
    assert store.stats().total_rows == 0
    assert store.ingest([path], source="s", origin="real", lock_timeout=5).ingested == 1


def test_a_second_writer_waits_for_the_first(store, write_jsonl):
    path = write_jsonl("a.jsonl", [{"text": "a"}])
    holder = _hold_lock(store.root, 1.0)
    started = time.monotonic()
    result = store.ingest([path], source="s", origin="real", lock_timeout=30)
    assert time.monotonic() - started >= 0.5
    assert result.ingested == 1
    holder.wait(timeout=SUBPROCESS_TIMEOUT)


def test_concurrent_ingests_both_land(store, write_jsonl):
    paths = [
        write_jsonl(f"in{i}.jsonl", [{"text": f"p{i} row {j}"} for j in range(2000)])
        for i in range(3)
    ]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "curator",
                "ingest",
                str(p),
                "--store",
                store.root,
                "--source",
                f"s{i}",
                "--origin",
                "real",
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i, p in enumerate(paths)
    ]
    for process in processes:
        _out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    assert store.stats().by_origin() == {"real": 6000}
    assert store.sql("SELECT count(DISTINCT sample_id) AS n FROM samples").to_pylist() == [
        {"n": 6000}
    ]


def test_readers_wait_while_the_catalog_is_held(store):
    code = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('open', flush=True); time.sleep(float(sys.argv[2]))"
    holder = subprocess.Popen(
        [sys.executable, "-c", code, store.catalog_path, "30"], stdout=subprocess.PIPE, text=True
    )
    assert holder.stdout is not None and holder.stdout.readline().strip() == "open"
    try:
        os.environ["CURATOR_LOCK_TIMEOUT"] = "0.3"
        with pytest.raises(curator.StoreLockedError) as caught:
            store.stats()
        assert (
            caught.value.message
            == f"the catalog `{store.catalog_path}` is held by another process; waited 0.3 s"
        )
    finally:
        os.environ["CURATOR_LOCK_TIMEOUT"] = "20"
        holder.kill()
        holder.wait(timeout=SUBPROCESS_TIMEOUT)
    assert store.stats().total_rows == 0


# -- one type per column across the store ----------------------------------------------------


def test_a_column_whose_type_changes_is_kept_as_json_text_never_cast(store, write_jsonl):
    path = write_jsonl(
        "a.jsonl",
        [
            {"text": "a", "f": True},
            {"text": "b", "f": 5},
            {"text": "c", "m": {"a": 1}},
            {"text": "d", "m": {"b": "q"}},
        ],
    )
    result = store.ingest([path], source="s", origin="real", batch_rows=1)
    assert result.ingested == 4
    rows = store.sql("SELECT text, f, m FROM samples ORDER BY text").to_pylist()
    assert [r["f"] for r in rows] == ["true", "5", None, None]
    assert [r["m"] for r in rows] == [None, None, '{"a": 1}', '{"b": "q"}']


def test_a_type_clash_with_the_store_fails_the_run_and_keeps_samples_readable(store, write_jsonl):
    store.ingest(
        [write_jsonl("a.jsonl", [{"text": "a", "tags": ["x", "y"]}])], source="a", origin="real"
    )
    with pytest.raises(curator.IngestFailed) as caught:
        store.ingest(
            [write_jsonl("b.jsonl", [{"text": "b", "tags": "x,y"}])], source="b", origin="real"
        )
    assert (
        caught.value.message
        == "column `tags` is list<element: string> in the store but string in this input; nothing was committed"
    )
    assert caught.value.hint.startswith("rename it with --rename-column tags=NEW_NAME")
    assert store.sql("SELECT text, tags FROM samples").to_pylist() == [
        {"text": "a", "tags": ["x", "y"]}
    ]
    # the other way round, text in the store, a list arriving: stored as JSON text
    store.ingest(
        [write_jsonl("c.jsonl", [{"text": "c", "note": "plain"}])], source="c", origin="real"
    )
    store.ingest(
        [write_jsonl("d.jsonl", [{"text": "d", "note": {"k": 1}}])], source="d", origin="real"
    )
    assert store.sql(
        "SELECT note FROM samples WHERE note IS NOT NULL ORDER BY note"
    ).to_pylist() == [{"note": "plain"}, {"note": '{"k": 1}'}]


def test_errors_while_streaming_a_result_are_query_errors(filled, tmp_path):
    with pytest.raises(curator.QueryError, match=r"query failed: .*Conversion Error"):
        filled.sql("SELECT CAST(text AS INTEGER) FROM samples")
    with pytest.raises(curator.QueryError):
        filled.export("SELECT CAST(text AS INTEGER) FROM samples", tmp_path / "x.parquet")
    assert not (tmp_path / "x.parquet.tmp").exists() and not (tmp_path / "x.parquet").exists()


# -- recovery removes only what curator itself placed ------------------------------------------


def test_recovery_after_a_kill_removes_only_the_recorded_shards_through_a_linked_shards_dir(
    tmp_path, write_jsonl
):
    disk = tmp_path / "bigger-disk"
    (disk / "shards" / "s").mkdir(parents=True)
    (disk / "shards" / "precious.parquet").write_bytes(b"someone else's data")
    (disk / "shards" / "s" / "precious.parquet").write_bytes(b"someone else's shard")
    store = curator.init_store(tmp_path / "store")
    os.rmdir(Path(store.root, "shards"))
    os.symlink(disk / "shards", Path(store.root, "shards"))
    foreign = Path(store.root, ".staging", "not-curators")
    foreign.mkdir(parents=True)
    (foreign / "keep.parquet").write_bytes(b"x")
    os.utime(foreign, (time.time() - 7200, time.time() - 7200))
    elsewhere = Path(store.root, ".staging", "other-host-run")
    elsewhere.mkdir()
    (elsewhere / "owner.json").write_text(json.dumps({"pid": 1, "host": "not-this-host"}))

    path = write_jsonl("a.jsonl", [{"text": f"line {i}"} for i in range(100)])
    args = ["ingest", str(path), "--store", store.root, "--source", "s", "--origin", "real"]
    crashed = run_cli(*args, env={"CURATOR_CRASH_AT": "renamed"})
    assert crashed.returncode == -signal.SIGKILL
    [work] = [p for p in Path(store.root, ".staging").iterdir() if (p / "placing.json").exists()]
    recorded = json.loads((work / "placing.json").read_text())["paths"]
    assert recorded == [f"shards/s/{work.name}-00000-000.parquet"]
    assert sorted(p.name for p in (disk / "shards" / "s").iterdir()) == sorted(
        ["precious.parquet", f"{work.name}-00000-000.parquet"]
    )

    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    [live] = store.live_shards()
    assert sorted(str(p.relative_to(disk)) for p in disk.rglob("*") if p.is_file()) == sorted(
        ["shards/precious.parquet", "shards/s/precious.parquet", live["path"]]
    )
    assert (disk / "shards" / "s" / "precious.parquet").read_bytes() == b"someone else's shard"
    assert sorted(p.name for p in Path(store.root, ".staging").iterdir()) == [
        "not-curators",
        "other-host-run",
    ]
    assert (foreign / "keep.parquet").read_bytes() == b"x"
    assert store.sql("SELECT count(*) AS n FROM samples").to_pylist() == [{"n": 100}]


def test_an_ingest_leaves_files_it_did_not_write_alone(store, write_jsonl, tmp_path):
    mine = Path(store.root, "shards", "s", "copied-by-hand.parquet")
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"not in the catalog")
    stray = Path(store.root, "shards", "s", "half-written.parquet.tmp")
    stray.write_bytes(b"?")
    old = Path(store.root, ".staging", "20200101T000000Z-abcdef")
    old.mkdir(parents=True)
    os.utime(old, (0, 0))
    store.ingest([write_jsonl("a.jsonl", [{"text": "a"}])], source="s", origin="real")
    assert mine.read_bytes() == b"not in the catalog" and stray.exists() and old.is_dir()


def test_a_commit_that_fails_takes_back_the_shards_it_placed(store, write_jsonl, monkeypatch):
    import curator.ingest.commit

    real_record_run = curator.ingest.commit._record_run

    def failing_record_run(store, result, args, started, placed, message, new_columns=None):
        if placed:
            assert all(Path(store.root, relative).is_file() for _shard, relative in placed)
            raise curator.StoreError("the catalog went away")
        real_record_run(store, result, args, started, placed, message, new_columns)

    monkeypatch.setattr(curator.ingest.commit, "_record_run", failing_record_run)
    with pytest.raises(curator.StoreError, match="the catalog went away"):
        store.ingest([write_jsonl("a.jsonl", [{"text": "a"}])], source="s", origin="real")
    assert list(Path(store.root, "shards").rglob("*")) == [Path(store.root, "shards", "s")]
    assert list(Path(store.root, ".staging").iterdir()) == []


def test_shards_are_placed_across_filesystems_by_copy_then_rename(store, write_jsonl, monkeypatch):
    import errno

    real_replace = os.replace
    crossed = []

    def replace(source, target):
        into_shards = str(target).startswith(os.path.join(store.root, "shards") + os.sep)
        if into_shards and str(target).endswith(".parquet") and "/.staging/" in str(source):
            crossed.append(target)
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    result = store.ingest(
        [write_jsonl("a.jsonl", [{"text": f"t {i}"} for i in range(3)])], source="s", origin="real"
    )
    monkeypatch.undo()
    assert (result.status, result.ingested) == ("committed", 3)
    [live] = store.live_shards()
    assert crossed == [os.path.join(store.root, *live["path"].split("/"))]
    assert sorted(p.name for p in Path(store.root, "shards", "s").iterdir()) == [
        live["path"].split("/")[-1]
    ]
    from curator.store.shards import sha256_file

    assert sha256_file(crossed[0]) == live["sha256"]
    assert store.sql("SELECT count(*) AS n FROM samples").to_pylist() == [{"n": 3}]


# -- a run that keeps nothing fails -----------------------------------------------------------

QUICKSTART_ROWS = [{"prompt": f"q {i}", "completion": f"a {i}"} for i in range(300)]


def _runs(store) -> list[tuple[str, str]]:
    return [
        (r["status"], r["message"])
        for r in store.sql("SELECT status, message FROM runs ORDER BY started_at").to_pylist()
    ]


def test_an_ingest_that_rejects_every_record_fails_and_names_the_fix(store, tmp_path):
    import pyarrow as pa

    path = tmp_path / "generated.parquet"
    pq.write_table(pa.Table.from_pylist(QUICKSTART_ROWS), path)
    with pytest.raises(curator.IngestFailed) as caught:
        store.ingest([path], source="gen", origin="synthetic", generation=1)
    message = (
        "no record was kept: all 300 records read were rejected (missing_column: 300); "
        "nothing was committed"
    )
    [run_dir] = Path(store.root, "rejects").iterdir()
    assert caught.value.message == message
    assert caught.value.hint == (
        "fix what the first rejected record of each reason says, then run again:\n"
        "  missing_column: `generated.parquet` row 0: no content column `text` (columns: prompt, "
        "completion); name it with --text-column (Python: `text_column=`)\n"
        f"Every rejected record is in {run_dir / 'rejects.jsonl'}.\n"
        "--allow-empty (Python: allow_empty=True) accepts such a run."
    )
    assert _runs(store) == [("failed", message)]
    assert store.live_shards() == [] and list(Path(store.root, "shards").iterdir()) == []
    assert len((run_dir / "rejects.jsonl").read_text().splitlines()) == 300

    allowed = store.ingest([path], source="gen", origin="synthetic", generation=1, allow_empty=True)
    assert (allowed.status, allowed.ingested, allowed.rejected) == ("committed", 0, 300)
    assert allowed.first_rejects == {
        "missing_column": "`generated.parquet` row 0: no content column `text` (columns: prompt, "
        "completion); name it with --text-column (Python: `text_column=`)"
    }
    done = store.ingest(
        [path], source="gen", origin="synthetic", generation=1, text_column="completion"
    )
    assert (done.status, done.ingested, done.rejected) == ("committed", 300, 0)


def test_a_file_without_the_content_column_fails_the_whole_run(store, write_jsonl, tmp_path):
    import pyarrow as pa

    write_jsonl("in/good.jsonl", [{"text": "a"}, {"text": "b"}])
    pq.write_table(pa.table({"body": ["c"]}), tmp_path / "in" / "other.parquet")
    with pytest.raises(curator.IngestFailed) as caught:
        store.ingest([tmp_path / "in"], source="s", origin="real")
    assert caught.value.message == (
        "1 of 3 records were rejected because a column is missing (a whole file or batch "
        "without it); nothing was committed"
    )
    assert "  missing_column: `other.parquet` row 0: no content column `text` (columns: body)" in (
        caught.value.hint
    )
    assert store.live_shards() == []
    result = store.ingest([tmp_path / "in"], source="s", origin="real", allow_empty=True)
    assert (result.status, result.ingested, result.rejected) == ("committed", 2, 1)


def test_an_empty_input_fails_and_a_repeat_ingest_succeeds(store, write_jsonl, tmp_path):
    (tmp_path / "empty.jsonl").write_text("")
    with pytest.raises(curator.IngestFailed) as caught:
        store.ingest([tmp_path / "empty.jsonl"], source="s", origin="real")
    assert (caught.value.message, caught.value.hint) == (
        "no record was read from the 1 input file; nothing was committed",
        "check that the inputs hold records.\n"
        "--allow-empty (Python: allow_empty=True) accepts such a run.",
    )
    path = write_jsonl("a.jsonl", [{"text": "a"}, {"text": "b"}])
    store.ingest([path], source="s", origin="real")
    again = store.ingest([path], source="s", origin="real")
    assert (again.status, again.ingested, again.skipped, again.skip_codes) == (
        "committed",
        0,
        2,
        {"already_in_store": 2},
    )
    broken = write_jsonl("b.jsonl", ["{oops"])
    mixed = store.ingest([path, broken], source="s", origin="real")
    assert (mixed.status, mixed.ingested, mixed.skipped, mixed.rejected) == ("committed", 0, 2, 1)
