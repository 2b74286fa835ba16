"""The engine seam: the local engine in this process and on worker processes gives the same
store; errors name their task; engines are chosen by name or by `CURATOR_ENGINE`."""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import pickle
import random
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import curator
import curator.api
import curator.assembly.writer
import curator.dedup.signatures
import curator.ingest.commit
import curator.ingest.pipeline
import curator.ingest.readers
import curator.store.base
from curator.assembly.policy import Policy
from curator.engine.base import Engine, EngineError
from curator.engine.local import LocalEngine
from curator.engine.registry import get_engine, using_engine


def _texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for i in range(count):
        words = [f"w{rng.randrange(3000)}" for _ in range(60)]
        docs.append(" ".join(words))
        if i % 4 == 0:  # a near copy of it, in another file
            words[rng.randrange(60)] = "changed"
            docs.append(" ".join(words))
    return docs


def _inputs(tmp_path: Path) -> list[Path]:
    """Three JSON Lines files with exact and near copies across them."""
    docs = _texts(1, 90)
    paths = []
    for n in range(3):
        path = tmp_path / "in" / f"part-{n}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [{"id": f"{n}-{i}", "text": t} for i, t in enumerate(docs[n::3])]
        rows.append({"id": f"{n}-copy", "text": docs[0]})  # an exact copy in every file
        rows.append({"id": f"{n}-empty", "text": " "})  # a reject
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        paths.append(path)
    return paths


def _files(root: Path, under: str) -> dict[str, str]:
    """Relative path → sha256 of every file under `root/under`."""
    out = {}
    for path in sorted((root / under).rglob("*")):
        if path.is_file():
            out[str(path.relative_to(root))] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def _ingest_and_dedup(root: Path, inputs: list[Path], engine: Engine) -> curator.Store:
    store = curator.init_store(root)
    store.ingest(inputs, source="web", origin="real", id_column="id", engine=engine)
    store.dedup(engine=engine)
    return store


@pytest.fixture
def parallel(monkeypatch):
    """Small work goes to the workers too, and every input file is a task of its own."""
    monkeypatch.setattr(curator.ingest.readers, "TASK_BYTES", 1)
    monkeypatch.setattr(curator.ingest.pipeline, "INLINE_BYTES", 0)
    monkeypatch.setattr(curator.dedup.signatures, "SMALL_WORK_BYTES", 0)
    fixed = lambda: "20250101T000000-fixed"  # noqa: E731
    monkeypatch.setattr(curator.store.base, "new_run_id", fixed)
    monkeypatch.setattr(curator.ingest.commit, "new_run_id", fixed)


def test_in_process_and_two_workers_give_the_same_store(tmp_path, parallel):
    inputs = _inputs(tmp_path)
    with LocalEngine(jobs=1) as one, LocalEngine(jobs=2) as two:
        here = _ingest_and_dedup(tmp_path / "one", inputs, one)
        assert one._workers == []
        workers = _ingest_and_dedup(tmp_path / "two", inputs, two)
        assert len(two._workers) == 2
    query = "SELECT sample_id, content_hash FROM samples ORDER BY sample_id"
    assert here.sql(query).to_pylist() == workers.sql(query).to_pylist()
    assert here.sql("SELECT count(*) AS n FROM samples").to_pylist() == [{"n": 116}]
    shards = _files(tmp_path / "one", "shards")
    assert len(shards) == 3  # one per task
    assert shards == _files(tmp_path / "two", "shards")
    assert _files(tmp_path / "one", "indexes") == _files(tmp_path / "two", "indexes")
    clusters = (
        "SELECT sample_id, cluster_id, cluster_size, kept, method, similarity FROM duplicates "
        "ORDER BY sample_id"
    )
    found = here.sql(clusters).to_pylist()
    assert len({row["cluster_id"] for row in found}) > 10
    assert found == workers.sql(clusters).to_pylist()


def test_a_second_dedup_computes_only_new_signatures_on_workers(tmp_path, parallel, monkeypatch):
    inputs = _inputs(tmp_path)
    with LocalEngine(jobs=2) as two:
        store = _ingest_and_dedup(tmp_path / "store", inputs, two)
        monkeypatch.setattr(curator.store.base, "new_run_id", lambda: "20250101T000001-again")
        again = store.dedup(engine=two)
    assert [m.computed for m in again.methods] == [0, 0]


def test_tag_on_two_workers_writes_what_tag_in_process_writes(tmp_path, parallel):
    inputs = _inputs(tmp_path)
    with LocalEngine(jobs=2) as two:
        curator.tag(inputs, tmp_path / "two", source="web", origin="real", engine=two)
    curator.tag(inputs, tmp_path / "one", source="web", origin="real", engine="local", jobs=1)

    def rows(directory: Path) -> list[dict]:
        table = pa.concat_tables(pq.read_table(p) for p in sorted(directory.glob("*.parquet")))
        return table.drop_columns(["ingest_id"]).to_pylist()

    assert rows(tmp_path / "one") == rows(tmp_path / "two")


def test_results_come_in_task_order_and_workers_are_reused():
    with LocalEngine(jobs=2) as engine:
        assert engine.map(math.sqrt, [9, 1, 4, 16, 25]) == [3, 1, 2, 4, 5]
        first = [w.process.pid for w in engine._workers]
        seen = []
        assert engine.map(abs, [-1, -2, 3], on_result=lambda t, r: seen.append((t, r))) == [1, 2, 3]
        assert [w.process.pid for w in engine._workers] == first
        assert sorted(seen) == [(-2, 2), (-1, 1), (3, 3)]
    assert engine._workers == []


def test_one_task_or_small_work_runs_in_this_process():
    with LocalEngine(jobs=2) as engine:
        assert engine.map(math.sqrt, [4]) == [2]
        assert engine.map(math.sqrt, [4, 9], small=True) == [2, 3]
        assert engine._workers == []


@pytest.mark.parametrize("jobs", [1, 2])
def test_an_error_in_a_task_is_raised_naming_the_task(jobs):
    with LocalEngine(jobs=jobs) as engine, pytest.raises(ValueError) as caught:
        engine.map(math.sqrt, [4, -1, 9])
    assert str(caught.value) == "math domain error"
    assert caught.value.__notes__ == ["in task 2 of 3: -1"]
    # after an error the engine still works (its workers were replaced)
    with LocalEngine(jobs=jobs) as engine:
        assert engine.map(math.sqrt, [1, 4]) == [1, 2]


def test_a_failing_ingest_task_names_its_input(tmp_path, monkeypatch):
    def broken(task, config, on_rows=None):
        raise OSError("disk full")

    monkeypatch.setattr(curator.ingest.pipeline, "run_task", broken)
    store = curator.init_store(tmp_path / "store")
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "a"}\n')
    with pytest.raises(OSError, match="disk full") as caught:
        store.ingest([path], source="s", origin="real", engine="local")
    (note,) = caught.value.__notes__
    assert note.startswith("in task 1 of 1: ReadTask(index=0, format='jsonl'")


class _Watching(LocalEngine):
    """A local engine that checks what every task would be sent to a worker with."""

    def __init__(self) -> None:
        super().__init__(jobs=1)
        self.sent = 0

    def map(self, function, tasks, *, on_result=None, small=False, threads=False):
        for task in tasks:
            buffer = io.BytesIO()
            _NoStore(buffer).dump((function, task))
            self.sent += 1
        return super().map(function, tasks, on_result=on_result, small=small, threads=threads)


class _NoStore(pickle.Pickler):
    def persistent_id(self, obj):
        import duckdb

        assert not isinstance(obj, curator.Store), "a task function received the Store"
        assert not isinstance(obj, duckdb.DuckDBPyConnection), "a task received a connection"
        return None


def test_only_the_driver_opens_the_catalog(tmp_path, parallel):
    engine = _Watching()
    inputs = _inputs(tmp_path)
    _ingest_and_dedup(tmp_path / "store", inputs, engine)
    curator.tag(inputs, tmp_path / "tagged", source="web", origin="real", engine=engine)
    assert engine.sent == 3 + 3 + 3  # ingest, dedup's signatures (one per shard), tag


def test_the_exchange_routes_every_key_to_one_partition(tmp_path):
    rng = random.Random(0)
    files = []
    for n in range(3):
        path = tmp_path / f"in-{n}.parquet"
        keys = [rng.randrange(40) for _ in range(200)]
        pq.write_table(
            pa.table({"band": [k % 3 for k in keys], "h": keys, "row": range(200)}), path
        )
        files.append(str(path))
    results = []
    for jobs in (1, 2):
        with LocalEngine(jobs=jobs) as engine:
            out = tmp_path / f"out-{jobs}"
            parts = engine.exchange(files, key=["band", "h"], partitions=4, out_dir=str(out))
        tables = [pa.concat_tables(pq.read_table(p) for p in part) for part in parts]
        results.append([t.to_pylist() for t in tables])
        owner: dict[tuple[int, int], int] = {}
        for k, table in enumerate(tables):
            for band, h in zip(table["band"].to_pylist(), table["h"].to_pylist(), strict=True):
                assert owner.setdefault((band, h), k) == k
        assert sum(t.num_rows for t in tables) == 600
        assert len(set(owner.values())) == 4
    assert results[0] == results[1]


def test_engines_by_name_and_environment(monkeypatch):
    monkeypatch.delenv("CURATOR_ENGINE", raising=False)
    assert isinstance(get_engine(None, jobs=3), LocalEngine)
    assert get_engine(None, jobs=3).jobs == 3
    monkeypatch.setenv("CURATOR_ENGINE", "local")
    assert isinstance(get_engine(None), LocalEngine)
    monkeypatch.setenv("CURATOR_ENGINE", "nosuch")
    with pytest.raises(EngineError) as caught:
        get_engine(None)
    assert str(caught.value) == (
        "unknown engine `nosuch` (from CURATOR_ENGINE); the engines are: local, ray\n"
        "Hint: use --engine local (the default), or unset CURATOR_ENGINE"
    )
    with pytest.raises(EngineError) as caught:
        get_engine("spark")
    assert str(caught.value) == (
        "unknown engine `spark`; the engines are: local, ray\n"
        "Hint: use --engine local (the default)"
    )
    monkeypatch.setitem(sys.modules, "ray", None)  # as if Ray were not installed
    with pytest.raises(EngineError) as caught:
        get_engine("ray")
    assert str(caught.value) == (
        "the `ray` engine needs Ray, which is not installed\nHint: pip install 'curator[ray]'"
    )


def test_an_unknown_engine_fails_before_anything_is_written(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATOR_ENGINE", "nosuch")
    store = curator.init_store(tmp_path / "store")
    path = tmp_path / "a.jsonl"
    path.write_text('{"text": "a"}\n')
    with pytest.raises(EngineError, match="unknown engine `nosuch`"):
        store.ingest([path], source="s", origin="real")
    with pytest.raises(EngineError, match="unknown engine `nosuch`"):
        store.dedup()
    assert store.sql("SELECT count(*) AS n FROM samples").to_pylist() == [{"n": 0}]
    assert not os.listdir(tmp_path / "store" / "shards")


def test_an_engine_passed_in_is_left_open_and_a_named_one_is_closed():
    with LocalEngine(jobs=2) as engine:
        with using_engine(engine) as used:
            assert used is engine
            used.map(math.sqrt, [1, 4])
        assert len(engine._workers) == 2
        with using_engine("local", jobs=2) as made:
            made.map(math.sqrt, [1, 4])
            assert isinstance(made, LocalEngine) and len(made._workers) == 2
        assert made._workers == []


def test_an_address_needs_the_ray_engine(monkeypatch):
    monkeypatch.delenv("CURATOR_ENGINE", raising=False)
    for name in ("local", None):
        with pytest.raises(EngineError) as caught:
            get_engine(name, address="ray://head:10001")
        assert str(caught.value) == (
            "`--ray-address` needs `--engine ray`\n"
            "Hint: pass --engine ray, or drop --ray-address (Python: `address`)"
        )


_ASSEMBLY_POLICY = Policy.from_dict(
    {
        "name": "set",
        "seed": 3,
        "target": {"rows": 60},
        "constraints": {"min_real_fraction": 0.5},
        "output": {"shard_rows": 20},
    }
)


def test_assembly_writes_its_shards_as_tasks_without_the_store(tmp_path, monkeypatch):
    monkeypatch.setattr(curator.assembly.writer, "SMALL_WRITE_BYTES", 0)
    store = curator.init_store(tmp_path / "store")
    store.ingest(_inputs(tmp_path), source="web", origin="real", id_column="id")
    engine = _Watching()
    manifest = store.assemble(_ASSEMBLY_POLICY, tmp_path / "set", engine=engine)
    assert engine.sent == len(manifest.outputs) == 3
    assert [o["path"] for o in manifest.outputs] == [
        f"data/train-0000{n}-of-00003.parquet" for n in range(3)
    ]


def test_an_unknown_engine_fails_an_assembly_before_anything_is_written(tmp_path):
    store = curator.init_store(tmp_path / "store")
    path = tmp_path / "a.jsonl"
    path.write_text("".join(json.dumps({"text": f"sample {i}"}) + "\n" for i in range(80)))
    store.ingest([path], source="s", origin="real")
    with pytest.raises(EngineError, match="unknown engine `nosuch`"):
        store.assemble(_ASSEMBLY_POLICY, tmp_path / "set", engine="nosuch")
    assert not (tmp_path / "set").exists()
    assert store.sql("SELECT count(*) AS n FROM manifests").to_pylist() == [{"n": 0}]


def test_thread_tasks_come_back_in_task_order_and_errors_name_their_task():
    with LocalEngine(jobs=2) as engine:
        assert engine.map(math.sqrt, [9, 1, 4, 16, 25], threads=True) == [3, 1, 2, 4, 5]
        assert engine._workers == []  # no interpreter was started for thread tasks
        with pytest.raises(ValueError) as caught:
            engine.map(math.sqrt, [4, -1, 9], threads=True)
    assert any("task 2 of 3" in note for note in getattr(caught.value, "__notes__", []))


def _arrow_in_a_worker(step: str) -> object:
    """What a worker sees: after building Arrow arrays, is pandas imported? Then, does
    PyArrow's pandas conversion still work?"""
    if step == "arrays":
        pa.table({"a": pa.array(["x", None]), "b": [1, 2]})
        return "pandas" in sys.modules
    return int(pa.table({"a": [1, 2]}).to_pandas()["a"].sum())


def test_workers_build_arrays_without_importing_pandas_and_can_still_convert():
    # PyArrow's first array from Python objects imports pandas (0.3-0.5 s a worker) only to
    # ask whether they are pandas objects; workers answer that without it.
    with LocalEngine(jobs=2) as engine:
        assert engine.map(_arrow_in_a_worker, ["arrays", "arrays"]) == [False, False]
        assert engine.map(_arrow_in_a_worker, ["pandas", "pandas"]) == [3, 3]
