"""The store's one commit protocol (curator.store.commit), and ingest writing each shard once."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

import curator
import curator.ingest.pipeline as pipeline
from curator.store.commit import WorkDir, recover, transaction, writing
from curator.store.shards import ShardWriter

# -- the protocol ------------------------------------------------------------------------------


def _dead_owner(work: Path) -> None:
    """Mark `work` as owned by a process of this host that has ended."""
    (work / "owner.json").write_text(
        json.dumps({"pid": 2**22 + 12345, "host": socket.gethostname(), "run_id": work.name})
    )


def test_a_work_dir_is_claimed_and_removed_when_done(store):
    with WorkDir.create(store.root, "RUN", prefix="infer-") as work:
        owner = json.loads(Path(work.path, "owner.json").read_text())
        assert (owner["pid"], owner["run_id"]) == (os.getpid(), "RUN")
        assert Path(work.path) == Path(store.root, ".staging", "infer-RUN")
    assert not Path(work.path).exists()


def test_placed_files_are_taken_back_when_the_transaction_fails(store, tmp_path):
    staged = tmp_path / "a.parquet"
    staged.write_bytes(b"shard")
    with WorkDir.create(store.root, "RUN") as work:
        work.record(["shards/s/a.parquet"])
        Path(store.root, "shards", "s").mkdir()
        work.place(str(staged), "shards/s/a.parquet")
        assert Path(store.root, "shards", "s", "a.parquet").read_bytes() == b"shard"
        with pytest.raises(RuntimeError), transaction(store) as con:
            con.execute("INSERT INTO meta VALUES ('probe', 'x')")
            raise RuntimeError("the commit failed")
        assert work.take_back(store.registered_paths()) == ["shards/s/a.parquet"]
        assert work.recorded() == []
    assert list(Path(store.root, "shards", "s").iterdir()) == []
    assert store.sql("SELECT count(*) AS n FROM meta WHERE key = 'probe'").to_pylist() == [{"n": 0}]


def test_a_work_dir_whose_files_could_not_be_taken_back_stays_for_recovery(store):
    with WorkDir.create(store.root, "RUN") as work:
        work.record(["shards/s/a.parquet"])
    assert json.loads(Path(work.path, "placing.json").read_text()) == {
        "paths": ["shards/s/a.parquet"]
    }


def test_recovery_removes_only_recorded_files_of_dead_runs_that_the_catalog_does_not_know(
    store, write_jsonl
):
    store.ingest([write_jsonl("a.jsonl", [{"text": "a"}])], source="s", origin="real")
    [live] = [s["path"] for s in store.live_shards()]
    shards = Path(store.root, "shards", "s")
    (shards / "orphan.parquet").write_bytes(b"placed by a killed run")
    (shards / "orphan.parquet.tmp").write_bytes(b"half copied by a killed run")
    (shards / "by-hand.parquet").write_bytes(b"nobody recorded this")
    staging = Path(store.root, ".staging")
    dead = staging / "infer-dead"
    dead.mkdir()
    _dead_owner(dead)
    (dead / "placing.json").write_text(json.dumps({"paths": ["shards/s/orphan.parquet", live]}))
    alive = staging / "alive"
    alive.mkdir()
    (alive / "owner.json").write_text(
        json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "run_id": "alive"})
    )
    (alive / "placing.json").write_text(json.dumps({"paths": ["shards/s/by-hand.parquet"]}))
    unmarked = staging / "dedup-unmarked"
    unmarked.mkdir()
    (unmarked / "placing.json").write_text(json.dumps({"paths": ["shards/s/by-hand.parquet"]}))

    with writing(store, "test"):
        pass

    assert sorted(p.name for p in shards.iterdir()) == sorted([Path(live).name, "by-hand.parquet"])
    assert sorted(p.name for p in staging.iterdir()) == ["alive", "dedup-unmarked"]
    assert recover(store) == []


# -- ingest writes each final shard once ---------------------------------------------------------


@pytest.fixture
def shard_writes(monkeypatch):
    """Every shard a ShardWriter completes: its path → (inode, mtime, size) when written."""
    written: dict[str, tuple[int, int, int]] = {}
    real_close = ShardWriter._close

    def close(self: ShardWriter) -> None:
        count = len(self.shards)
        real_close(self)
        for shard in self.shards[count:]:
            stat = os.stat(shard.path)
            written[os.path.basename(shard.path)] = (stat.st_ino, stat.st_mtime_ns, stat.st_size)

    monkeypatch.setattr(ShardWriter, "_close", close)
    return written


def _placed_as_written(store: curator.Store, written: dict[str, tuple[int, int, int]]) -> bool:
    for shard in store.live_shards():
        stat = os.stat(Path(store.root, shard["path"]))
        if written.get(Path(shard["path"]).name) != (stat.st_ino, stat.st_mtime_ns, stat.st_size):
            return False
    return True


def test_a_fresh_ingest_and_a_partly_known_reingest_write_each_shard_once(
    store, write_jsonl, shard_writes
):
    first = write_jsonl("a.jsonl", [{"id": i, "text": f"t {i}", "n": i} for i in range(100)])
    result = store.ingest([first], source="s", origin="real", id_column="id")
    assert (result.ingested, result.skipped) == (100, 0)
    assert _placed_as_written(store, shard_writes)

    more = write_jsonl(
        "b.jsonl",
        [{"id": i, "text": f"t {i}", "n": i} for i in range(150)]
        + [{"id": 7, "text": "other content", "n": 7}],
    )
    result = store.ingest([more], source="s", origin="real", id_column="id")
    assert (result.rows_read, result.ingested, result.skipped, result.rejected) == (151, 50, 100, 1)
    assert result.skip_codes == {"already_in_store": 100}
    [conflict] = [json.loads(line) for line in Path(result.rejects_path).read_text().splitlines()]
    known = store.sql("SELECT content_hash FROM samples WHERE sample_id = 's/7'").to_pylist()
    assert conflict["code"] == "sample_id_conflict" and conflict["line"] == 151
    assert known[0]["content_hash"] in conflict["reason"]
    assert _placed_as_written(store, shard_writes)

    again = store.ingest([more], source="s", origin="real", id_column="id")
    assert (again.ingested, again.skipped, again.rejected, again.shards) == (0, 150, 1, 0)
    assert store.sql("SELECT count(*) AS n FROM samples").to_pylist() == [{"n": 150}]


def test_a_column_the_store_holds_as_text_is_written_as_text_once(store, write_jsonl, shard_writes):
    store.ingest([write_jsonl("a.jsonl", [{"text": "a", "label": "x"}])], source="s", origin="real")
    numbers = write_jsonl("b.jsonl", [{"text": "b", "label": 3}, {"text": "c", "label": 4}])
    store.ingest([numbers], source="s2", origin="real")
    assert _placed_as_written(store, shard_writes)
    rows = store.sql("SELECT text, label FROM samples ORDER BY text").to_pylist()
    assert rows == [
        {"text": "a", "label": "x"},
        {"text": "b", "label": "3"},
        {"text": "c", "label": "4"},
    ]


def test_a_snapshot_gone_stale_before_the_lock_is_caught_at_the_commit(
    store, write_jsonl, monkeypatch
):
    """Another run commits the same source between this run's snapshot and its lock: the driver
    checks the shards committed since, so nothing is stored twice and the counts add up."""
    rows = [{"id": i, "text": f"t {i}"} for i in range(20)]
    path = write_jsonl("a.jsonl", rows)
    real = pipeline.run_tasks
    nested = []

    def run_tasks(*args, **kwargs):
        if not nested:  # the other run, committed while this one stages
            nested.append(None)
            nested[0] = store.ingest([path], source="s", origin="real", id_column="id")
        return real(*args, **kwargs)

    monkeypatch.setattr(pipeline, "run_tasks", run_tasks)
    result = store.ingest([path], source="s", origin="real", id_column="id")
    assert nested[0].ingested == 20
    assert (result.ingested, result.skipped, result.skip_codes) == (0, 20, {"already_in_store": 20})
    assert store.sql("SELECT count(*) AS n FROM samples").to_pylist() == [{"n": 20}]
