"""Row-level ledgers as Parquet files: `usage`, `duplicates`, `label_events` and `label_conflicts`
are views over registered files, answer the SQL the tables answered, survive a killed write, and
a catalog from before ledger files is migrated on its first write."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

import curator
from curator.store import ledgers
from tests.conftest import SUBPROCESS_TIMEOUT, run_python

ROOT = Path(__file__).resolve().parent.parent

#: The ledger tables as the catalog of curator 0.x (before ledger files) declared them.
LEGACY_DDL = """
CREATE TABLE usage (
    manifest_id VARCHAR NOT NULL, content_hash VARCHAR NOT NULL, origin VARCHAR NOT NULL,
    fresh BOOLEAN NOT NULL
);
ALTER TABLE usage ADD COLUMN IF NOT EXISTS sample_id VARCHAR;
ALTER TABLE usage ADD COLUMN IF NOT EXISTS source VARCHAR;
ALTER TABLE usage ADD COLUMN IF NOT EXISTS generation SMALLINT;
ALTER TABLE usage ADD COLUMN IF NOT EXISTS model VARCHAR;
CREATE TABLE duplicates (
    sample_id VARCHAR NOT NULL, cluster_id VARCHAR NOT NULL, cluster_size BIGINT NOT NULL,
    kept BOOLEAN NOT NULL, method VARCHAR NOT NULL, similarity DOUBLE NOT NULL,
    run_id VARCHAR NOT NULL
);
CREATE TABLE label_events (
    run_id VARCHAR NOT NULL, sample_id VARCHAR NOT NULL,
    old_origin VARCHAR, old_generation SMALLINT, old_model VARCHAR,
    old_evidence VARCHAR, old_confidence DOUBLE,
    new_origin VARCHAR NOT NULL, new_generation SMALLINT, new_model VARCHAR,
    new_evidence VARCHAR NOT NULL, new_confidence DOUBLE NOT NULL,
    reason VARCHAR, created_at TIMESTAMPTZ NOT NULL
);
ALTER TABLE label_events ADD COLUMN IF NOT EXISTS evidence_detail JSON;
CREATE TABLE label_conflicts (
    run_id VARCHAR NOT NULL, sample_id VARCHAR NOT NULL, declared_origin VARCHAR NOT NULL,
    declared_evidence VARCHAR NOT NULL, signal_origin VARCHAR NOT NULL,
    signal_evidence VARCHAR NOT NULL, confidence DOUBLE NOT NULL, reason VARCHAR,
    created_at TIMESTAMPTZ NOT NULL
);
"""

LEDGERS = ("usage", "duplicates", "label_events", "label_conflicts")
WHEN = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _types(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple[str, str]]:
    return [(row[0], row[1]) for row in con.execute(f"DESCRIBE SELECT * FROM {name}").fetchall()]


def _kinds(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return {
        row[0]: row[1]
        for row in con.execute(
            "SELECT table_name, table_type FROM information_schema.tables WHERE table_name IN "
            "('usage', 'duplicates', 'label_events', 'label_conflicts')"
        ).fetchall()
    }


def _legacy_catalog(store: curator.Store) -> None:
    """Turn the ledgers of `store` back into the tables a catalog from before ledger files has,
    with a few rows in each."""
    with store.connect(read_only=False) as con:
        con.execute("DROP VIEW lineage_edges")
        for name in LEDGERS:
            con.execute(f"DROP VIEW {name}")
        con.execute("DROP TABLE ledger_files")
        con.execute(LEGACY_DDL)
        con.execute(
            "INSERT INTO usage VALUES ('m1', 'h1', 'real', true, 'web/1', 'web', 0, NULL), "
            "('m1', 'h2', 'synthetic', false, 'web/2', 'web', 2, 'gpt'), "
            "('m2', 'h1', 'real', false, 'web/1', 'web', 0, NULL)"
        )
        con.execute(
            "INSERT INTO duplicates VALUES ('web/1', 'minhash:h1', 2, true, 'minhash', 1.0, 'r1'), "
            "('web/2', 'minhash:h1', 2, false, 'minhash', 0.9, 'r1'), "
            "('img/1', 'phash:h9', 2, true, 'phash', 1.0, 'r2')"
        )
        con.execute(
            "INSERT INTO label_events VALUES ('r3', 'web/2', 'unknown', NULL, NULL, 'declared', 1.0, "
            "'synthetic', 1, 'gpt', 'c2pa', 0.95, 'signed', ?, '{\"validation\": \"valid\"}')",
            [WHEN],
        )
        con.execute(
            "INSERT INTO label_conflicts VALUES ('r3', 'web/1', 'real', 'declared', 'synthetic', "
            "'c2pa', 0.9, 'signed by a generator', ?)",
            [WHEN],
        )
        con.execute(
            "CREATE VIEW lineage_edges AS SELECT 'sample' AS src_kind, sample_id AS src_id, "
            "'manifest' AS dst_kind, manifest_id AS dst_id, 'used_in' AS relation FROM usage"
        )


def _rows(con: duckdb.DuckDBPyConnection, name: str) -> list[tuple]:
    return con.execute(f"SELECT * FROM {name} ORDER BY ALL").fetchall()


def test_a_new_store_has_an_empty_typed_view_per_ledger(tmp_path):
    store = curator.init_store(tmp_path / "store")
    fresh = duckdb.connect()
    fresh.execute(LEGACY_DDL)
    with store.connect() as con:
        assert _kinds(con) == dict.fromkeys(LEDGERS, "VIEW")
        for name in LEDGERS:
            assert _types(con, name) == _types(fresh, name), name
            assert con.execute(f"SELECT count(*) FROM {name}").fetchall() == [(0,)]
    assert store.sql("SELECT count(*) AS n FROM usage").to_pylist() == [{"n": 0}]


def test_a_legacy_catalog_is_migrated_on_its_first_write(tmp_path, write_jsonl):
    store = curator.init_store(tmp_path / "store")
    _legacy_catalog(store)
    with store.connect() as con:
        assert _kinds(con) == dict.fromkeys(LEDGERS, "BASE TABLE")
        before = {name: _rows(con, name) for name in LEDGERS}
        types = {name: _types(con, name) for name in LEDGERS}
    # reading does not migrate
    assert store.sql("SELECT count(*) AS n FROM usage").to_pylist() == [{"n": 3}]
    with store.connect() as con:
        assert _kinds(con) == dict.fromkeys(LEDGERS, "BASE TABLE")

    store.ingest([write_jsonl("a.jsonl", [{"text": "one"}])], source="web", origin="real")

    with store.connect() as con:
        assert _kinds(con) == dict.fromkeys(LEDGERS, "VIEW")
        assert {name: _rows(con, name) for name in LEDGERS} == before
        assert {name: _types(con, name) for name in LEDGERS} == types
        files = con.execute(
            "SELECT ledger, scope, run_id, rows, live, path FROM ledger_files ORDER BY ALL"
        ).fetchall()
        assert con.execute("SELECT count(*) FROM lineage_edges").fetchall() == [(3,)]
    assert files == [
        ("duplicates", "minhash", "migrated", 2, True, "ledgers/duplicates/migrated-minhash.parquet"),
        ("duplicates", "phash", "migrated", 1, True, "ledgers/duplicates/migrated-phash.parquet"),
        ("label_conflicts", "all", "migrated", 1, True, "ledgers/label_conflicts/migrated-all.parquet"),
        ("label_events", "r3", "migrated", 1, True, "ledgers/label_events/migrated-r3.parquet"),
        ("usage", "m1", "migrated", 2, True, "ledgers/usage/migrated-m1.parquet"),
        ("usage", "m2", "migrated", 1, True, "ledgers/usage/migrated-m2.parquet"),
    ]  # fmt: skip
    for *_rest, path in files:
        assert (Path(store.root) / path).is_file()
    assert not any(Path(store.root, ".staging").glob(ledgers.MIGRATION_PREFIX + "*"))
    # the query surface reads the files too
    assert store.sql(
        "SELECT evidence_detail->>'validation' AS v, created_at FROM label_events"
    ).to_pylist() == [{"v": "valid", "created_at": WHEN}]


def test_duckdb_started_inside_the_store_answers_on_the_ledgers(tmp_path):
    store = curator.init_store(tmp_path / "store")
    _legacy_catalog(store)
    with store.connect(read_only=False) as con:
        from curator.store import catalog

        catalog.ensure(con)  # what every writing command does first
    script = (
        "import duckdb; con = duckdb.connect('catalog.duckdb', read_only=True); "
        "print(con.execute('SELECT count(*) FROM usage').fetchall()[0][0], "
        "con.execute('SELECT count(*) FROM duplicates').fetchall()[0][0])"
    )
    out = run_python(script, cwd=store.root)
    assert out.stdout.split() == ["3", "3"]


def _duplicate_texts(write_jsonl, name: str = "a.jsonl"):
    words = " ".join(f"w{i}" for i in range(60))
    return write_jsonl(
        name, [{"text": words}, {"text": words + " end"}, {"text": "something else entirely"}]
    )


def test_dedup_writes_a_file_per_method_that_replaces_the_last(tmp_path, write_jsonl):
    store = curator.init_store(tmp_path / "store")
    store.ingest([_duplicate_texts(write_jsonl)], source="web", origin="real")
    first = store.dedup(images=False)
    second = store.dedup(images=False)
    with store.connect() as con:
        files = con.execute(
            "SELECT scope, run_id, rows, live FROM ledger_files WHERE ledger = 'duplicates' ORDER BY live"
        ).fetchall()
        assert files == [("minhash", first.run_id, 2, False), ("minhash", second.run_id, 2, True)]
        assert con.execute(
            "SELECT sample_id, cluster_size, kept, method, run_id FROM duplicates ORDER BY 1"
        ).fetchall() == [
            ("web/a.jsonl:1", 2, True, "minhash", second.run_id),
            ("web/a.jsonl:2", 2, False, "minhash", second.run_id),
        ]


_KILLED_WRITE = """
import os, signal, sys
import pyarrow as pa
import curator
from curator.store import ledgers
from curator.store.commit import WorkDir
store = curator.open_store(sys.argv[1])
work = WorkDir.create(store.root, "killed", prefix="dedup-").path  # claimed, as every run's is
rows = pa.table({"sample_id": ["web/0"], "cluster_id": ["minhash:h"], "cluster_size": [2],
                 "kept": [True], "method": ["minhash"], "similarity": [1.0], "run_id": ["killed"]})
staged = ledgers.write_ledger(work, "duplicates", rows, scope="minhash", run_id="killed")
ledgers.place_ledgers(store.root, work, [staged])
print(staged.relative, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_write_leaves_no_registered_ledger_file(tmp_path, write_jsonl):
    store = curator.init_store(tmp_path / "store")
    store.ingest([_duplicate_texts(write_jsonl)], source="web", origin="real")
    killed = subprocess.run(
        [sys.executable, "-c", _KILLED_WRITE, store.root],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    placed = Path(store.root) / killed.stdout.strip()
    assert placed.is_file()  # placed, never registered
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM ledger_files").fetchall() == [(0,)]
        assert con.execute("SELECT count(*) FROM duplicates").fetchall() == [(0,)]
    result = store.dedup(images=False)  # the next writer removes what the killed run placed
    assert not placed.exists()
    with store.connect() as con:
        assert con.execute("SELECT path FROM ledger_files").fetchall() == [
            (f"ledgers/duplicates/{result.run_id}-minhash.parquet",)
        ]


def test_a_failed_registration_takes_its_files_back(tmp_path, monkeypatch):
    store = curator.init_store(tmp_path / "store")
    work = tmp_path / "work"
    work.mkdir()
    rows = pa.table({"manifest_id": ["m"], "content_hash": ["h"], "origin": ["real"],
                     "fresh": [True], "sample_id": ["web/0"], "source": ["web"],
                     "generation": [0], "model": [None]})  # fmt: skip
    staged = ledgers.write_ledger(str(work), "usage", rows, scope="m", run_id="m")
    assert (staged.relative, staged.rows) == ("ledgers/usage/m.parquet", 1)

    def fail(*_args, **_kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(ledgers, "rebuild_view", fail)
    with pytest.raises(RuntimeError, match="disk full"):
        ledgers.commit_ledgers(
            store.root, str(work), [staged], lambda: store.connect(read_only=False)
        )
    assert not (Path(store.root) / staged.relative).exists()
    assert not (work / "placing.json").exists()
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM ledger_files").fetchall() == [(0,)]


def test_ledger_files_carry_the_ledger_schema(tmp_path):
    import pyarrow.parquet as pq

    rows = pa.table({"run_id": ["r"], "sample_id": ["s"], "declared_origin": ["real"],
                     "declared_evidence": ["declared"], "signal_origin": ["synthetic"],
                     "signal_evidence": ["c2pa"], "confidence": [1], "reason": [None],
                     "created_at": [WHEN], "extra": ["dropped"]})  # fmt: skip
    staged = ledgers.write_ledger(str(tmp_path), "label_conflicts", rows, scope="all", run_id="r")
    assert pq.read_schema(staged.path).remove_metadata() == ledgers.ledger_schema("label_conflicts")
    assert (
        json.loads(json.dumps(pq.read_table(staged.path).to_pylist(), default=str))[0]["confidence"]
        == 1.0
    )


def test_an_assembly_records_its_usage_as_one_file(tmp_path, write_jsonl):
    store = curator.init_store(tmp_path / "store")
    texts = [{"text": f"document number {i} " + "word " * (i % 7)} for i in range(40)]
    store.ingest([write_jsonl("a.jsonl", texts)], source="web", origin="real")
    policy = tmp_path / "p.toml"
    policy.write_text('name = "p"\nseed = 1\n[target]\nrows = 20\n[output]\nshard_rows = 20\n')
    first = store.assemble(policy, tmp_path / "m1", lineage="a")
    second = store.assemble(policy, tmp_path / "m2", lineage="a")
    with store.connect() as con:
        assert con.execute(
            "SELECT path, scope, rows, live FROM ledger_files ORDER BY path"
        ).fetchall() == sorted(
            (f"ledgers/usage/{m.manifest_id}.parquet", m.manifest_id, 20, True)
            for m in (first, second)
        )
    # the view holds what the old table got: the selection's rows, by the same query
    with store.connect() as con:
        for manifest in (first, second):
            selection = Path(store.root) / "manifests" / manifest.manifest_id / "selection.parquet"
            assert (
                con.execute(
                    "SELECT * FROM usage WHERE manifest_id = ? ORDER BY ALL", [manifest.manifest_id]
                ).fetchall()
                == con.execute(
                    "SELECT ?, content_hash, CASE WHEN category IN ('fresh_real', 'used_real') "
                    "THEN 'real' ELSE category END, category = 'fresh_real', sample_id, source, "
                    "generation, model FROM read_parquet(?) ORDER BY ALL",
                    [manifest.manifest_id, str(selection)],
                ).fetchall()
            )
    assert store.sql("SELECT count(*) AS n FROM usage").to_pylist() == [{"n": 40}]
