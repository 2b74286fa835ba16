"""SQL over the store only reads: the catalog and the live shards, nothing else, and writes nothing."""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

import curator
from curator.store.shards import sha256_file
from tests.conftest import invoke, run_python

REFUSED_WRITE_HINT = (
    "to write a result to a file, use `curator sql QUERY --format parquet -o FILE` "
    "(Python: Store.export)"
)
REFUSED_OTHER_HINT = "run a query; to change the store, use the curator command made for it"


def refused(kind: str) -> str:
    return (
        f"`{kind}` statements are refused: SQL over the store only reads "
        "(SELECT, WITH, FROM, DESCRIBE, SHOW, SUMMARIZE)"
    )


@pytest.fixture
def filled(store, write_jsonl, tmp_path):
    write_jsonl("in/web.jsonl", [{"text": f"real text {i}"} for i in range(50)])
    store.ingest([tmp_path / "in" / "web.jsonl"], source="web", origin="real")
    return store


def _shard(store: curator.Store) -> Path:
    [shard] = store.live_shards()
    return Path(store.root, shard["path"])


def _files(root: str) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*") if p.is_file())


def _store_files(store: curator.Store) -> list[str]:
    return [f for f in _files(store.root) if not f.startswith(".curator.lock")]


@pytest.mark.parametrize(
    "template, kind",
    [
        ("COPY (SELECT 1 AS x) TO '{shard}' (USE_TMP_FILE false)", "COPY"),
        ("COPY (SELECT 1 AS x) TO '{relative}' (USE_TMP_FILE false)", "COPY"),
        ("COPY (SELECT 1 AS x) TO '{shards}/web/new.parquet'", "COPY"),
        ("SELECT 1; COPY (SELECT 1 AS x) TO '{shard}' (USE_TMP_FILE false)", "COPY"),
        ("SELECT 1;COPY samples TO '{shard}'", "COPY"),
        ("EXPORT DATABASE '{outside}'", "EXPORT"),
    ],
)
def test_statements_that_write_are_refused_and_the_shard_is_unchanged(
    filled, tmp_path, template, kind
):
    shard = _shard(filled)
    before = (sha256_file(str(shard)), _store_files(filled))
    query = template.format(
        shard=shard,
        relative=shard.relative_to(filled.root),
        shards=Path(filled.root, "shards"),
        outside=tmp_path / "exported",
    )
    with pytest.raises(curator.QueryError) as caught:
        filled.sql(query)
    assert (caught.value.message, caught.value.hint) == (refused(kind), REFUSED_WRITE_HINT)
    assert (sha256_file(str(shard)), _store_files(filled)) == before
    assert not (tmp_path / "exported").exists()
    assert filled.sql("SELECT count(*) AS n FROM samples").to_pylist() == [{"n": 50}]


@pytest.mark.parametrize(
    "query, kind",
    [
        ("ATTACH '{outside}/other.duckdb' AS other", "ATTACH"),
        ("INSTALL httpfs", "LOAD"),
        ("LOAD httpfs", "LOAD"),
        ("SET enable_external_access = true", "SET"),
        ("RESET lock_configuration", "SET"),
        ("PRAGMA show_tables", "PRAGMA"),
        ("CALL pragma_version()", "CALL"),
        ("EXPLAIN ANALYZE SELECT 1", "EXPLAIN"),
        ("CREATE TABLE t (a INTEGER)", "CREATE"),
        ("UPDATE shards SET live = false", "UPDATE"),
        ("PIVOT samples ON origin", "MULTI"),
    ],
)
def test_only_queries_are_run(filled, tmp_path, query, kind):
    with pytest.raises(curator.QueryError) as caught:
        filled.sql(query.format(outside=tmp_path))
    assert (caught.value.message, caught.value.hint) == (refused(kind), REFUSED_OTHER_HINT)
    assert not (tmp_path / "other.duckdb").exists()


def test_one_statement_at_a_time_and_not_none(filled):
    with pytest.raises(curator.QueryError) as caught:
        filled.sql("SELECT 1; SELECT 2")
    assert (caught.value.message, caught.value.hint) == (
        "the query holds 2 statements; one is run at a time",
        "run them one by one",
    )
    with pytest.raises(curator.QueryError) as caught:
        filled.sql(" ; ")
    assert (caught.value.message, caught.value.hint) == (
        "the query is empty",
        "e.g. SELECT origin, count(*) FROM samples GROUP BY 1",
    )


def test_files_outside_the_live_shards_cannot_be_read(filled, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("not yours")
    filled.export("SELECT * FROM samples", tmp_path / "copy.parquet")
    for query, path in [
        (f"SELECT * FROM read_text('{secret}')", secret),
        (f"SELECT * FROM read_parquet('{tmp_path / 'copy.parquet'}')", tmp_path / "copy.parquet"),
        ("SELECT * FROM read_text('/etc/hostname')", "/etc/hostname"),
        (f"SELECT * FROM glob('{tmp_path}/*')", f"{tmp_path}/*"),
        (f"SELECT * FROM read_text('{Path(filled.root, 'rejects', 'x')}')", None),
    ]:
        with pytest.raises(curator.QueryError) as caught:
            filled.sql(query)
        assert "file system operations are disabled by configuration" in caught.value.message
        if path is not None:
            assert f'Cannot access file "{path}"' in caught.value.message
        assert caught.value.hint is None


def test_the_query_connection_is_locked(filled):
    with filled.query_connection() as con:
        with pytest.raises(duckdb.InvalidInputException, match="the configuration has been locked"):
            con.execute("SET enable_external_access = true")
        assert con.execute(
            "SELECT current_setting('enable_external_access'), current_setting('lock_configuration')"
        ).fetchall() == [(False, True)]
        [(allowed,)] = con.execute("SELECT current_setting('allowed_paths')").fetchall()
    # The live shard, and the catalog's own files, which DuckDB always allows (read-only here).
    assert sorted(allowed) == sorted(
        [
            str(_shard(filled)),
            *(filled.catalog_path + s for s in ("", ".wal", ".wal.checkpoint", ".wal.recovery")),
        ]
    )


def test_views_over_the_shards_work_from_any_directory(filled, tmp_path, monkeypatch):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert filled.sql("SELECT count(*) AS n FROM samples").to_pylist() == [{"n": 50}]
    assert filled.sql("SELECT count(*) AS n FROM main.samples").to_pylist() == [{"n": 50}]
    assert filled.sql("SELECT count(*) AS n FROM lineage_edges").to_pylist() == [{"n": 0}]
    assert filled.sql("SELECT origin, rows FROM composition").to_pylist() == [
        {"origin": "real", "rows": 50}
    ]
    assert [r["column_name"] for r in filled.sql("DESCRIBE samples").to_pylist()][:2] == [
        "sample_id",
        "content_hash",
    ]


def test_a_store_whose_shards_link_to_another_disk_is_queried_and_protected(tmp_path, write_jsonl):
    disk = tmp_path / "disk" / "shards"
    disk.mkdir(parents=True)
    store = curator.init_store(tmp_path / "s")
    os.rmdir(Path(store.root, "shards"))
    os.symlink(disk, Path(store.root, "shards"))
    write_jsonl("a.jsonl", [{"text": f"t {i}"} for i in range(5)])
    store.ingest([tmp_path / "a.jsonl"], source="a", origin="real")
    assert store.sql("SELECT count(*) AS n FROM samples").to_pylist() == [{"n": 5}]
    [shard] = list((disk / "a").iterdir())
    digest = sha256_file(str(shard))
    with pytest.raises(curator.QueryError, match="`COPY` statements are refused"):
        store.sql(f"COPY (SELECT 1) TO '{shard}' (USE_TMP_FILE false)")
    with pytest.raises(curator.InputError) as caught:
        store.export("SELECT 1 AS x", shard)
    assert caught.value.message == (
        f"`{shard}` is inside the store `{store.root}`; a query result is not written there"
    )
    assert sha256_file(str(shard)) == digest


def test_the_hint_lists_every_table_and_view_only_for_an_unknown_name(filled):
    con = duckdb.connect(filled.catalog_path, read_only=True)
    names = sorted(
        {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        | {
            r[0]
            for r in con.execute(
                "SELECT view_name FROM duckdb_views() WHERE NOT internal"
            ).fetchall()
        }
    )
    con.close()
    assert len(names) == 16 and {
        "samples", "lineage_edges", "duplicates", "label_events", "ledger_files", "tokenizers"
    } <= set(names)  # fmt: skip
    expected = "tables and views: " + ", ".join(names)
    for query in ["SELECT nope FROM samples", "SELECT * FROM nope", "SELECT x.origin FROM samples"]:
        with pytest.raises(curator.QueryError) as caught:
            filled.sql(query)
        assert caught.value.hint == expected, query
    for query in [
        "SELEC 1",
        "SELECT CAST(text AS INTEGER) FROM samples",
        "SELECT no_such_function(1)",
        "SELECT 1 + 'a'",
    ]:
        with pytest.raises(curator.QueryError) as caught:
            filled.sql(query)
        assert caught.value.message.startswith("query failed: ")
        assert caught.value.hint is None, query


def test_export_writes_with_pyarrow_outside_the_store_only(filled, tmp_path):
    assert filled.export("SELECT * FROM samples ORDER BY sample_id", tmp_path / "all.parquet") == 50
    assert pq.read_table(tmp_path / "all.parquet").num_rows == 50
    before = _store_files(filled)
    for target in [
        Path(filled.root, "shards", "web", "x.parquet"),
        Path(filled.root, "out.parquet"),
    ]:
        with pytest.raises(curator.InputError) as caught:
            filled.export("SELECT * FROM samples", target)
        assert caught.value.message == (
            f"`{target}` is inside the store `{filled.root}`; a query result is not written there"
        )
        assert caught.value.hint == "write it to a path outside the store directory"
    assert _store_files(filled) == before


def test_the_catalog_opened_by_duckdb_itself_is_unchanged(filled, tmp_path):
    filled.sql("SELECT count(*) FROM samples")
    code = (
        "import duckdb; con = duckdb.connect('catalog.duckdb', read_only=True); "
        f"con.execute(\"COPY (SELECT count(*) AS n FROM samples) TO '{tmp_path / 'n.csv'}'\"); "
        "print(con.execute(\"SELECT current_setting('enable_external_access')\").fetchall())"
    )
    out = run_python(code, cwd=filled.root)
    assert out.stdout.strip() == "[(True,)]"
    assert (tmp_path / "n.csv").read_text() == "n\n50\n"


def test_cli_sql_refuses_writes_and_outputs_inside_the_store(runner, filled):
    shard = _shard(filled)
    digest = sha256_file(str(shard))
    result = invoke(
        runner, "sql", f"SELECT 1; COPY (SELECT 1) TO '{shard}'", "--store", filled.root
    )
    assert result.exit_code == 1
    assert result.output == f"Error: {refused('COPY')}\nHint: {REFUSED_WRITE_HINT}\n"
    for fmt in ("csv", "parquet"):
        result = invoke(
            runner,
            "sql",
            "SELECT 1 AS x",
            "--store",
            filled.root,
            "--format",
            fmt,
            "-o",
            str(shard),
        )
        assert result.exit_code == 1
        assert result.output == (
            f"Error: `{shard}` is inside the store `{filled.root}`; a query result is not written "
            "there\nHint: write it to a path outside the store directory\n"
        )
    assert sha256_file(str(shard)) == digest
    result = invoke(runner, "sql", "SELECT * FROM nope", "--store", filled.root)
    assert result.exit_code == 1
    assert result.output.splitlines()[-1].startswith(
        "Hint: tables and views: columns, composition,"
    )
