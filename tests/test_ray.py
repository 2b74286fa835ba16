"""The `ray` engine: the same store and byte-identical sets as the local engine, a worker killed
mid-task retried, a driver killed mid-run leaving what a killed local run leaves.

Every test here shares one local Ray (2 CPUs), started once for the run (`ray_cluster` in
conftest.py)."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest

import curator
import curator.dedup.candidates
import curator.dedup.signatures
import curator.infer.inference
import curator.ingest.commit
import curator.ingest.pipeline
import curator.ingest.readers
import curator.store.base
from curator.engine.local import LocalEngine
from curator.engine.ray import RayEngine
from tests.conftest import SUBPROCESS_TIMEOUT, invoke, png_bytes

pytestmark = [pytest.mark.ray, pytest.mark.usefixtures("ray_cluster")]

ROOT = Path(__file__).resolve().parent.parent

POLICY = """
name = "gen-1"
seed = 7
[target]
rows = 80
[constraints]
min_real_fraction = 0.6
max_unknown_fraction = 0.3
[output]
shard_rows = 25
"""


def _texts(seed: int, count: int) -> list[str]:
    rng = random.Random(seed)
    docs = []
    for i in range(count):
        words = [f"w{rng.randrange(3000)}" for _ in range(60)]
        docs.append(" ".join(words))
        if i % 4 == 0:  # a near copy of it, elsewhere
            words[rng.randrange(60)] = "changed"
            docs.append(" ".join(words))
    return docs


def _inputs(tmp_path: Path) -> dict[str, list[Path]]:
    """Web text in three files (exact and near copies across them, a malformed line, an empty
    text), a crawl of unknown origin holding near copies of the web, and images."""
    docs = _texts(1, 90)
    web = []
    for n in range(3):
        path = tmp_path / "in" / f"part-{n}.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        rows = [json.dumps({"id": f"{n}-{i}", "text": t}) for i, t in enumerate(docs[n::3])]
        rows.insert(5, '{"id": "broken", "text": ')  # a malformed line: a reject, line 6
        rows.append(json.dumps({"id": f"{n}-copy", "text": docs[0]}))
        rows.append(json.dumps({"id": f"{n}-empty", "text": " "}))  # a reject
        path.write_text("".join(r + "\n" for r in rows))
        web.append(path)
    crawl = tmp_path / "in" / "crawl.jsonl"
    crawl.write_text(
        "".join(
            json.dumps({"id": f"c{i}", "text": t.replace("w1", "w2", 1)}) + "\n"
            for i, t in enumerate(docs[:40:2])
        )
    )
    images = tmp_path / "in" / "images"
    images.mkdir()
    for i in range(6):
        (images / f"img-{i}.png").write_bytes(png_bytes((40 * i, 30, 200 - 30 * i)))
    (images / "img-copy.png").write_bytes(png_bytes((0, 30, 200), fmt="PNG", compress_level=1))
    return {"web": web, "crawl": [crawl], "images": [images]}


@pytest.fixture
def parallel(monkeypatch):
    """Small work goes to the engine too, every input file is a task, and run ids are fixed."""
    monkeypatch.setattr(curator.ingest.readers, "TASK_BYTES", 1)
    monkeypatch.setattr(curator.ingest.pipeline, "INLINE_BYTES", 0)
    monkeypatch.setattr(curator.dedup.signatures, "SMALL_WORK_BYTES", 0)
    monkeypatch.setattr(curator.infer.inference, "SMALL_WORK_BYTES", 0)
    # band rows in several files and partitions
    monkeypatch.setattr(curator.dedup.candidates, "BAND_FILE_ROWS", 1000)
    monkeypatch.setattr(curator.dedup.candidates, "BAND_PARTITION_ROWS", 500)
    counter = [itertools.count()]

    def fixed() -> str:
        return f"20250101T{next(counter[0]):06d}-fixed"

    def restart() -> None:
        """The next store gets the same run ids."""
        counter[0] = itertools.count()

    monkeypatch.setattr(curator.store.base, "new_run_id", fixed)
    monkeypatch.setattr(curator.ingest.commit, "new_run_id", fixed)
    return restart


def _build_with_api(root: Path, inputs: dict[str, list[Path]], engine: Any) -> list[tuple]:
    """Build a store and a set; returns what dedup counted, per method."""
    store = curator.init_store(root / "store")
    store.ingest(inputs["web"], source="web", origin="real", id_column="id", engine=engine)
    store.ingest(inputs["crawl"], source="crawl", origin="unknown", id_column="id", engine=engine)
    store.ingest(
        inputs["images"], source="img", origin="unknown", collected_at=date(2019, 1, 1),
        engine=engine,
    )  # fmt: skip
    found = store.dedup(engine=engine)
    store.infer(engine=engine)
    (root / "policy.toml").write_text(POLICY)
    store.assemble(root / "policy.toml", root / "out", lineage="main")
    return [
        (m.method, m.contents, m.candidate_pairs, m.verified_pairs, m.clusters, m.duplicate_samples)
        for m in found.methods
    ]


def _build_with_cli(root: Path, inputs: dict[str, list[Path]], env: dict[str, str]) -> None:
    from click.testing import CliRunner

    runner = CliRunner()
    store = str(root / "store")

    def run(*args: str) -> None:
        result = invoke(runner, *args, "--store", store, env=env)
        assert result.exit_code == 0, result.output

    curator.init_store(store)
    run("ingest", *map(str, inputs["web"]), "--source", "web", "--origin", "real", "--id-column", "id")  # fmt: skip
    run("ingest", *map(str, inputs["crawl"]), "--source", "crawl", "--origin", "unknown", "--id-column", "id")  # fmt: skip
    run("ingest", *map(str, inputs["images"]), "--source", "img", "--origin", "unknown", "--collected-at", "2019-01-01")  # fmt: skip
    run("dedup")
    run("infer")
    (root / "policy.toml").write_text(POLICY)
    run("assemble", "--policy", str(root / "policy.toml"), "--out", str(root / "out"), "--lineage", "main")  # fmt: skip


def _files(root: Path, under: str) -> dict[str, str]:
    """Relative path → sha256 of every file under `root/under`."""
    return {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted((root / under).rglob("*"))
        if path.is_file()
    }


def _state(root: Path) -> dict[str, Any]:
    """What must not depend on the engine: samples, labels, rejects with file and line,
    clusters, label events, the files of shards and indexes, the assembled set and its manifest
    (timestamps aside)."""
    store = curator.open_store(root / "store")
    rejects = []
    for path in sorted((root / "store" / "rejects").rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            rejects.append(
                (str(path.relative_to(root)), record["file"], record["line"], record["code"])
            )
    manifest = json.loads((root / "out" / "manifest.json").read_text())
    del manifest["created_at"], manifest["store"]["root"], manifest["out_dir"]
    return {
        "samples": store.sql(
            "SELECT sample_id, content_hash, origin, generation, origin_confidence, "
            "origin_evidence, source, ingest_id FROM samples ORDER BY sample_id"
        ).to_pylist(),
        "rejects": rejects,
        "duplicates": store.sql(
            "SELECT sample_id, cluster_id, cluster_size, kept, method, similarity, run_id "
            "FROM duplicates ORDER BY method, sample_id"
        ).to_pylist(),
        "label_events": store.sql(
            "SELECT * EXCLUDE (created_at) FROM label_events ORDER BY sample_id"
        ).to_pylist(),
        "shards": _files(root / "store", "shards"),
        "indexes": _files(root / "store", "indexes"),
        "set": {k: v for k, v in _files(root, "out").items() if not k.endswith("manifest.json")},
        "manifest": manifest,
    }


def test_local_and_ray_give_the_same_store_and_set(tmp_path, parallel):
    inputs = _inputs(tmp_path)
    with LocalEngine(jobs=2) as local:
        counted = _build_with_api(tmp_path / "local", inputs, local)
    expected = _state(tmp_path / "local")
    # the comparison is not vacuous
    assert len(expected["samples"]) > 100
    assert [r[1:] for r in expected["rejects"]] == [
        (f"part-{n}.jsonl", line, code)
        for n in range(3)
        for line, code in ((6, "malformed_json"), (41 - (n == 2), "empty_content"))
    ]
    assert {d["method"] for d in expected["duplicates"]} == {"minhash", "phash"}
    assert len({d["cluster_id"] for d in expected["duplicates"]}) > 10
    assert expected["label_events"]
    assert len(expected["set"]) == 4

    parallel()
    with RayEngine() as engine:
        # on Ray, the bands go through the exchange and are grouped and verified in tasks
        assert _build_with_api(tmp_path / "ray", inputs, engine) == counted
    assert _state(tmp_path / "ray") == expected

    # the CLI, with the engine chosen by the environment (`--engine ray` is the same setting)
    parallel()
    _build_with_cli(tmp_path / "cli", inputs, {"CURATOR_ENGINE": "ray"})
    assert _state(tmp_path / "cli") == expected


def test_a_task_error_is_raised_as_its_own_type_naming_the_task():
    with RayEngine() as engine, pytest.raises(ValueError) as caught:
        engine.map(math.sqrt, [4, -1, 9])
    assert type(caught.value) is ValueError
    assert str(caught.value) == "math domain error"
    assert caught.value.__notes__ == ["in task 2 of 3: -1"]
    with RayEngine() as engine:
        assert engine.map(math.sqrt, [9, 1, 4, 16, 25]) == [3, 1, 2, 4, 5]


def test_an_engine_leaves_a_ray_it_did_not_start_running():
    import ray

    with RayEngine() as engine:
        engine.map(abs, [-1, -2])
    assert ray.is_initialized()


def _die_once(task: tuple[str, int]) -> int:
    """Kill this worker process the first time, as the OOM killer or a lost node would."""
    marker, value = task
    if value == 2 and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)
    return value * 10


def test_a_worker_killed_mid_task_is_retried_and_the_result_is_unchanged(tmp_path):
    marker = str(tmp_path / "died")
    seen: list[int] = []
    with RayEngine() as engine:
        results = engine.map(
            _die_once, [(marker, v) for v in range(5)], on_result=lambda t, r: seen.append(r)
        )
    assert os.path.exists(marker)  # the worker did die once
    assert results == [0, 10, 20, 30, 40]
    assert sorted(seen) == results


# -- the driver killed ---------------------------------------------------------------------

#: The CLI with every input file its own task, none of them run in the driver.
_DISPATCHING_CLI = (
    "import sys, curator.ingest.pipeline as p, curator.ingest.readers as r;"
    "p.INLINE_BYTES = 0; r.TASK_BYTES = 1;"
    "from curator.cli import main; sys.argv[0] = 'curator'; main()"
)


def _run_cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", _DISPATCHING_CLI, *args],
        env={**os.environ, "PYTHONPATH": str(ROOT), **env},
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )


def _after(root: Path) -> tuple[list[dict], list[str], list[str]]:
    """The samples, the shard files and what is under `.staging/`, run ids aside."""

    def names(under: str) -> list[str]:
        found = (str(p.relative_to(root)) for p in (root / under).rglob("*") if p.is_file())
        return sorted(re.sub(r"\d{8}T\d{6}Z-[0-9a-f]{6}", "RUN", p) for p in found)

    store = curator.open_store(root)
    samples = store.sql("SELECT sample_id, content_hash FROM samples ORDER BY 1").to_pylist()
    return samples, names("shards"), names(".staging")


def test_a_killed_ray_driver_leaves_what_a_killed_local_one_does(tmp_path, ray_cluster):
    inputs = _inputs(tmp_path)["web"]
    stores = {}
    for engine in ("local", "ray"):
        root = tmp_path / engine
        curator.init_store(root)
        args = ["ingest", *map(str, inputs), "--store", str(root), "--source", "web"]
        args += ["--origin", "real", "--id-column", "id"]
        env = {"CURATOR_ENGINE": engine, "RAY_ADDRESS": ray_cluster}
        crashed = _run_cli(*args, env={**env, "CURATOR_CRASH_AT": "renamed"})
        assert crashed.returncode == -signal.SIGKILL, crashed.stderr
        stores[engine] = (root, args, env)
    local_root, _, _ = stores["local"]
    ray_root, args, env = stores["ray"]
    killed = _after(ray_root)
    assert killed == _after(local_root)
    samples, shards, staged = killed
    assert samples == [] and len(shards) == 3 and staged  # placed, not committed
    rerun = _run_cli(*args, env=env)
    assert rerun.returncode == 0, rerun.stderr
    samples, shards, staged = _after(ray_root)
    assert len(samples) == 116
    assert len(shards) == 3 and staged == []
    live = sorted(p["path"] for p in curator.open_store(ray_root).live_shards())
    assert sorted(str(p.relative_to(ray_root)) for p in ray_root.glob("shards/*/*")) == live


def test_bands_exchanged_and_grouped_in_tasks_give_duckdbs_pairs(tmp_path, monkeypatch):
    import duckdb
    import numpy as np

    from curator.dedup import candidates

    monkeypatch.setattr(candidates, "BAND_FILE_ROWS", 700)
    monkeypatch.setattr(candidates, "BAND_PARTITION_ROWS", 400)
    rng = np.random.default_rng(0)
    # 600 contents, 4 bands of few values: buckets small and large (> SMALL_BUCKET)
    bands = rng.integers(0, 40, size=(600, 4)) * np.array([1, 1, 1, 1000])
    hashes = rng.integers(0, 2**63, size=600).astype(np.uint64)
    verify = candidates.PHashVerifier(hashes, 30)
    table = candidates.band_rows(bands, np.flatnonzero(np.arange(600) % 7))
    with duckdb.connect() as con:
        a, b = candidates.pairs_in_duckdb(con, table)
    keep, similarity = verify(a, b)
    assert len(a) > 10_000 and 0 < keep.sum() < len(a)
    with RayEngine() as engine:
        got_a, got_b, got_similarity, found = candidates.pairs_on_engine(
            engine, str(tmp_path), table, verify
        )
    assert len(list((tmp_path / "exchanged").iterdir())) == 6  # partitions
    assert found == len(a)
    expected = sorted(
        zip(a[keep].tolist(), b[keep].tolist(), similarity[keep].tolist(), strict=True)
    )
    assert (
        sorted(zip(got_a.tolist(), got_b.tolist(), got_similarity.tolist(), strict=True))
        == expected
    )


def test_too_many_candidate_pairs_is_a_clear_error(tmp_path, monkeypatch):
    import numpy as np

    from curator.dedup import candidates

    monkeypatch.setattr(candidates, "MAX_PAIRS", 5)
    table = candidates.band_rows(np.zeros((4, 2), np.int64), np.arange(4))
    verify = candidates.PHashVerifier(np.zeros(4, np.uint64), 8)
    with RayEngine() as engine, pytest.raises(candidates.DedupError) as caught:
        candidates.pairs_on_engine(engine, str(tmp_path), table, verify)
    assert str(caught.value) == (
        "6 near-duplicate candidate pairs: more than the 5 that dedup holds in memory to take "
        "their connected components\n"
        "Hint: raise the threshold (e.g. --threshold 0.9), or dedup a smaller store"
    )
