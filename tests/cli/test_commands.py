"""CLI transcripts: what a user types and exactly what they see."""

from __future__ import annotations

import csv
import io
import json
import re

import pyarrow.parquet as pq

from tests.conftest import invoke


def test_init_ingest_stats_sql_transcript(runner, tmp_path, write_jsonl):
    store = tmp_path / "store"
    result = invoke(runner, "init", str(store))
    assert result.exit_code == 0
    assert result.output == f"Created store {store}\n"
    path = write_jsonl("a.jsonl", [{"text": "hello world"}, "{oops", {"text": "second"}])
    env = {"CURATOR_STORE": str(store)}
    result = invoke(
        runner,
        "ingest",
        str(path),
        "--source",
        "web",
        "--origin",
        "real",
        "--collected-at",
        "2021-01-02",
        env=env,
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.fullmatch(r"ingest \d{8}T\d{6}Z-[0-9a-f]{6}: committed \(source web\)", lines[0])
    assert lines[1:6] == [
        "  files                 1",
        "  rows read             3",
        "  ingested              2   17 B of content in 1 shard",
        "  skipped               0",
        "  rejected              1   (malformed_json: 1)",
    ]
    assert lines[6].startswith(f"  rejects    {store}/rejects/")
    result = invoke(runner, "stats", env=env)
    assert result.output == (
        "origin  generation  source  rows   share  content\n"
        "------  ----------  ------  ----  ------  -------\n"
        "real             0  web        2  100.0%     17 B\n"
        "total                          2  100.0%     17 B\n"
    )
    stats = json.loads(invoke(runner, "stats", "--json", "--store", str(store)).output)
    assert stats["by_origin"] == {"real": 2}
    result = invoke(runner, "sql", "SELECT origin, count(*) AS n FROM samples GROUP BY 1", env=env)
    assert result.output == "origin  n\n------  -\nreal    2\n(1 row)\n"
    result = invoke(
        runner, "sql", "SELECT sample_id, text FROM samples ORDER BY 1", "--format", "csv", env=env
    )
    assert list(csv.reader(io.StringIO(result.output))) == [
        ["sample_id", "text"],
        ["web/a.jsonl:1", "hello world"],
        ["web/a.jsonl:3", "second"],
    ]
    result = invoke(
        runner,
        "sql",
        "SELECT sample_id, collected_at FROM samples ORDER BY 1 LIMIT 1",
        "--format",
        "json",
        env=env,
    )
    assert json.loads(result.output) == [
        {"sample_id": "web/a.jsonl:1", "collected_at": "2021-01-02T00:00:00+00:00"}
    ]
    out = tmp_path / "out.parquet"
    result = invoke(
        runner, "sql", "SELECT * FROM samples", "--format", "parquet", "-o", str(out), env=env
    )
    assert result.exit_code == 0 and pq.read_table(out).num_rows == 2


def test_errors_are_one_line_with_a_hint(runner, tmp_path, write_jsonl):
    result = invoke(runner, "stats", env={"CURATOR_STORE": ""})
    assert result.exit_code == 1
    assert (
        result.output
        == "Error: no store given\nHint: pass --store DIR or set CURATOR_STORE (Python: `curator.open_store(DIR)`); create one with `curator init DIR` (Python: `curator.init_store(DIR)`)\n"
    )
    store = tmp_path / "s"
    invoke(runner, "init", str(store))
    path = write_jsonl("a.jsonl", [{"text": "x"}])
    result = invoke(
        runner, "ingest", str(path), "--store", str(store), "--source", "s", "--origin", "synthetic"
    )
    assert result.exit_code == 1
    assert (
        result.output
        == "Error: `--origin synthetic` needs `--generation N` (N >= 1)\nHint: pass --generation 1 (Python: `generation=1`) for samples of a model trained on real data only\n"
    )
    result = invoke(runner, "sql", "SELEC 1", "--store", str(store))
    assert result.exit_code == 1 and result.output.startswith("Error: query failed: Parser Error")
    result = invoke(runner, "sql", "SELECT 1", "--store", str(store), "--format", "parquet")
    assert (
        result.output
        == "Error: `--format parquet` needs `--output FILE`\nHint: add -o result.parquet\n"
    )
    result = invoke(
        runner,
        "ingest",
        str(path),
        "--store",
        str(store),
        "--source",
        "s",
        "--origin",
        "real",
        "--rename-column",
        "nope",
    )
    assert result.exit_code == 2 and "'nope' is not OLD=NEW" in result.output


def test_strict_failure_exit_code_and_message(runner, tmp_path, write_jsonl):
    store = tmp_path / "s"
    invoke(runner, "init", str(store))
    path = write_jsonl("a.jsonl", [{"text": "x"}, "bad"])
    result = invoke(
        runner,
        "ingest",
        str(path),
        "--store",
        str(store),
        "--source",
        "s",
        "--origin",
        "real",
        "--strict",
    )
    assert result.exit_code == 1
    assert (
        result.output.splitlines()[0]
        == "Error: --strict: 1 of 2 records were rejected (malformed_json: 1); nothing was committed"
    )


def test_tag_command(runner, tmp_path, write_jsonl):
    path = write_jsonl("a.jsonl", [{"text": "x", "n": 1}])
    result = invoke(
        runner,
        "tag",
        str(path),
        "--out",
        str(tmp_path / "out"),
        "--source",
        "s",
        "--origin",
        "real",
        "--json",
    )
    assert result.exit_code == 0
    summary = json.loads(result.output)
    assert (summary["rows_read"], summary["written"], summary["rejected"]) == (1, 1, 0)
    assert pq.read_table(summary["files"][0]).schema.names[:2] == ["text", "n"]


def test_ingest_json_summary_counts(runner, tmp_path, write_jsonl):
    store = tmp_path / "s"
    invoke(runner, "init", str(store))
    path = write_jsonl("a.jsonl", [{"text": "x"}, {"text": "y"}])
    first = json.loads(
        invoke(
            runner,
            "ingest",
            str(path),
            "--store",
            str(store),
            "--source",
            "s",
            "--origin",
            "real",
            "--json",
        ).output
    )
    second = json.loads(
        invoke(
            runner,
            "ingest",
            str(path),
            "--store",
            str(store),
            "--source",
            "s",
            "--origin",
            "real",
            "--json",
        ).output
    )
    assert (first["ingested"], first["skipped"]) == (2, 0)
    assert (second["ingested"], second["skipped"], second["skip_codes"]) == (
        0,
        2,
        {"already_in_store": 2},
    )


def test_demo_command_replaces_an_earlier_demo(runner, tmp_path):
    earlier = tmp_path / "demo"
    earlier.mkdir()
    (earlier / ".curator-demo").write_text("2026-01-01T00:00:00+00:00")
    (earlier / "stale.txt").write_text("from the earlier demo")
    result = invoke(
        runner, "demo", str(earlier), "--generations", "2", "--text-rows", "40", "--no-digits",
        "--no-report",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert not (earlier / "stale.txt").exists()
    assert "digits: skipped (pip install 'curator[demo]' adds them)" in result.output
    assert "text-fresh-floor     gen 2: trained on 40 rows (50% fresh real, 50% synthetic)" in (
        result.output
    )
    assert "Report:" not in result.output and not (earlier / "report").exists()


def test_sql_table_shows_at_most_max_rows_and_json_streams_all(runner, tmp_path, write_jsonl):
    store = tmp_path / "s"
    invoke(runner, "init", str(store))
    path = write_jsonl("a.jsonl", [{"text": f"row {i}"} for i in range(5)])
    invoke(runner, "ingest", str(path), "--store", str(store), "--source", "s", "--origin", "real")
    result = invoke(
        runner,
        "sql",
        "SELECT text FROM samples ORDER BY text",
        "--store",
        str(store),
        "--max-rows",
        "2",
    )
    assert (
        result.output
        == "text\n-----\nrow 0\nrow 1\n(first 2 rows shown; --format csv|json|parquet -o FILE writes all)\n"
    )
    out = tmp_path / "all.json"
    result = invoke(
        runner,
        "sql",
        "SELECT text FROM samples ORDER BY text",
        "--store",
        str(store),
        "--format",
        "json",
        "-o",
        str(out),
    )
    assert json.loads(out.read_text()) == [{"text": f"row {i}"} for i in range(5)]
    result = invoke(
        runner,
        "sql",
        "SELECT text FROM samples WHERE false",
        "--store",
        str(store),
        "--format",
        "json",
    )
    assert json.loads(result.output) == []


def _quickstart_parquet(tmp_path):
    import pyarrow as pa

    path = tmp_path / "generated.parquet"
    rows = [{"prompt": f"q {i}", "completion": f"a {i}"} for i in range(300)]
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def test_ingest_that_keeps_nothing_exits_1_with_the_fix_on_the_console(runner, tmp_path):
    store = tmp_path / "s"
    invoke(runner, "init", str(store))
    path = _quickstart_parquet(tmp_path)
    args = [
        "ingest", str(path), "--store", str(store), "--source", "model-v3-out",
        "--origin", "synthetic", "--generation", "1", "--model", "model-v3",
    ]  # fmt: skip
    result = invoke(runner, *args)
    assert result.exit_code == 1
    [rejects] = (store / "rejects").glob("*/rejects.jsonl")
    assert result.output == (
        "Error: no record was kept: all 300 records read were rejected (missing_column: 300); "
        "nothing was committed\n"
        "Hint: fix what the first rejected record of each reason says, then run again:\n"
        "  missing_column: `generated.parquet` row 0: no content column `text` (columns: prompt, "
        "completion); name it with --text-column (Python: `text_column=`)\n"
        f"Every rejected record is in {rejects}.\n"
        "--allow-empty (Python: allow_empty=True) accepts such a run.\n"
    )
    result = invoke(runner, *args, "--allow-empty", "--json")
    assert result.exit_code == 0
    assert json.loads(result.output)["status"] == "committed"
    result = invoke(runner, *args, "--text-column", "completion", "--json")
    assert result.exit_code == 0
    assert json.loads(result.output)["ingested"] == 300


def test_ingest_summary_shows_the_first_reject_of_each_reason(runner, tmp_path, write_jsonl):
    store = tmp_path / "s"
    invoke(runner, "init", str(store))
    path = write_jsonl("a.jsonl", [{"text": "ok"}, "{oops", {"text": "  "}, "{bad", {"text": ""}])
    result = invoke(
        runner, "ingest", str(path), "--store", str(store), "--source", "web", "--origin", "real"
    )
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[5] == "  rejected              4   (empty_content: 2, malformed_json: 2)"
    assert lines[7:9] == [
        "    empty_content: `a.jsonl` line 3: `text` is empty or whitespace only",
        "    malformed_json: `a.jsonl` line 2: malformed JSON: Expecting property name enclosed "
        "in double quotes at column 2",
    ]
    assert lines[9].startswith("  time ")


def test_tag_that_writes_nothing_exits_1_unless_allowed(runner, tmp_path, write_jsonl):
    path = _quickstart_parquet(tmp_path)
    args = ["tag", str(path), "--source", "g", "--origin", "real"]
    result = invoke(runner, *args, "--out", str(tmp_path / "out"))
    assert result.exit_code == 1
    assert result.output.splitlines()[:3] == [
        "Error: no record was kept: all 300 records read were rejected (missing_column: 300); "
        "nothing was written",
        "Hint: fix what the first rejected record of each reason says, then run again:",
        "  missing_column: `generated.parquet` row 0: no content column `text` (columns: prompt, "
        "completion); name it with --text-column (Python: `text_column=`)",
    ]
    assert not list((tmp_path / "out").glob("*.parquet"))
    good = write_jsonl("good.jsonl", [{"text": "x"}])
    result = invoke(runner, "tag", str(path), str(good), "--source", "g", "--origin", "real",
                    "--out", str(tmp_path / "mixed"))  # fmt: skip
    assert result.exit_code == 1
    assert result.output.splitlines()[0] == (
        "Error: 300 of 301 records were rejected because a column is missing (a whole file or "
        "batch without it); nothing was written"
    )
    result = invoke(runner, *args, "--out", str(tmp_path / "allowed"), "--allow-empty")
    assert result.exit_code == 0
    assert result.output.splitlines()[-1] == (
        "    missing_column: `generated.parquet` row 0: no content column `text` (columns: "
        "prompt, completion); name it with --text-column (Python: `text_column=`)"
    )


def test_tag_says_which_outputs_each_input_became(runner, tmp_path, write_jsonl):
    first = write_jsonl("a.jsonl", [{"text": "one"}, {"text": "two"}])
    second = write_jsonl("b.jsonl", [{"text": "three"}])
    empty = write_jsonl("c.jsonl", ["{oops"])
    out = tmp_path / "out"
    args = ["tag", str(first), str(second), str(empty), "--source", "s", "--origin", "real"]
    result = invoke(runner, *args, "--out", str(out))
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert re.fullmatch(
        rf"tag \S+: 4 rows read, 3 written to 2 files in {re.escape(str(out))}, 1 rejected "
        r"\(malformed_json: 1\)",
        lines[0],
    )
    assert lines[1:4] == [
        f"  {first} → part-00000.parquet",
        f"  {second} → part-00001.parquet",
        f"  {empty} → (nothing kept)",
    ]
    summary = json.loads(invoke(runner, *args, "--out", str(tmp_path / "json"), "--json").output)
    assert summary["outputs_by_input"] == {
        str(first): [str(tmp_path / "json" / "part-00000.parquet")],
        str(second): [str(tmp_path / "json" / "part-00001.parquet")],
        str(empty): [],
    }


def test_human_tables_separate_thousands_and_query_results_stay_raw(runner, tmp_path):
    from curator.core.output import render_table

    assert render_table(["source", "rows"], [("web", 1234567), ("gen", 12)]) == (
        "source       rows\n------  ---------\nweb     1,234,567\ngen            12"
    )
    store = tmp_path / "store"
    invoke(runner, "init", str(store))
    result = invoke(runner, "sql", "SELECT 2021 AS year, 1234567 AS n", "--store", str(store))
    assert result.output == "year        n\n----  -------\n2021  1234567\n(1 row)\n"


def test_inputs_read_together_share_one_line():
    from curator.cli.output import input_output_lines

    outputs = {
        "photos/a.png": ["/o/part-00000.parquet"],
        "photos/b.png": ["/o/part-00000.parquet"],
        "photos/c.png": ["/o/part-00000.parquet"],
        "big.parquet": ["/o/part-00001.parquet", "/o/part-00002.parquet"],
    }
    assert input_output_lines(outputs, "/o") == [
        "  photos/a.png … photos/c.png (3 files) → part-00000.parquet",
        "  big.parquet → part-00001.parquet, part-00002.parquet",
    ]


def test_hints_name_the_cli_and_the_python_spelling(runner, tmp_path, write_jsonl):
    import pytest

    import curator
    from curator.core.errors import CuratorError

    store = curator.init_store(tmp_path / "store")
    path = write_jsonl("a.jsonl", [{"text": "x"}])
    origin_hint = (
        "pass --origin real|synthetic|unknown, or --generated-by MODEL "
        "(Python: `origin=`, `generated_by=`)"
    )
    with pytest.raises(curator.ProvenanceError) as caught:
        store.ingest([path], source="s")
    assert caught.value.hint == origin_hint
    result = invoke(runner, "ingest", str(path), "--source", "s", "--store", str(store.root))
    assert result.exit_code == 1
    assert result.output.splitlines()[1] == f"Hint: {origin_hint}"

    with pytest.raises(CuratorError) as caught:
        store.dedup(threshold=1.5)
    assert caught.value.hint == "use e.g. --threshold 0.8 (Python: `threshold=0.8`)"
    with pytest.raises(CuratorError) as caught:
        store.plan(curator.Policy.from_toml(_near_dedup_policy(tmp_path)))
    assert "`curator dedup` (Python: `store.dedup()`)" in (caught.value.hint or "")


def _near_dedup_policy(tmp_path):
    path = tmp_path / "near.toml"
    path.write_text('name = "n"\n[target]\nrows = 1\n[dedup]\nnear = true\n')
    return path
