"""Ingest input safety: no code from the working directory in workers, odd records are single
rejects, batches bounded in bytes, oversized lines rejected in bounded memory, glob loops, tar
members that are not files, and names that end in a newline."""

from __future__ import annotations

import gzip
import io
import json
import os
import sys
import tarfile
import threading
import tracemalloc
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

import curator
import curator.ingest.pipeline
import curator.ingest.readers.base
import curator.ingest.readers.tables
from curator.core.errors import ProvenanceError
from curator.core.provenance import ProvenanceSpec
from curator.core.schema import RESERVED_NAMES
from curator.engine.local import worker_command, worker_path
from curator.ingest.readers import ReaderOptions, discover, plan_tasks, read_task
from curator.ingest.readers.base import BoundedLines, LineTooLarge
from curator.ingest.readers.tables import records_to_table
from curator.lineage.models import ModelError, register_model
from tests.conftest import png_bytes


def rejects_of(result) -> list[dict]:
    if result.rejects_path is None:
        return []
    with open(result.rejects_path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def counts(result) -> tuple[int, int, int, int]:
    assert result.rows_read == result.ingested + result.skipped + result.rejected
    return (result.rows_read, result.ingested, result.skipped, result.rejected)


def texts(store) -> list[str]:
    return store.sql("SELECT text FROM samples ORDER BY text").column(0).to_pylist()


def batches(paths: list[Path], options: ReaderOptions) -> list[int]:
    """Rows (kept + rejected) of each batch the readers yield for these inputs."""
    files, _ = discover([str(p) for p in paths])
    sizes = []
    for task in plan_tasks(files):
        for batch in read_task(task, options, {}, frozenset(RESERVED_NAMES)):
            sizes.append(len(batch.positions) + len(batch.rejects))
    return sizes


# -- 3: code in the working directory never runs in a worker -----------------------------------


def test_workers_never_import_modules_from_the_working_directory(store, tmp_path, monkeypatch):
    cwd = tmp_path / "downloaded"
    cwd.mkdir()
    marker = tmp_path / "imported"
    for name in ("queue", "pickle", "struct"):
        (cwd / f"{name}.py").write_text(
            f"open({str(marker)!r}, 'a').write({name!r})\nraise ImportError('planted {name}')\n"
        )
    (cwd / "a.jsonl").write_text("".join(json.dumps({"text": f"doc {i}"}) + "\n" for i in range(3)))
    (cwd / "b.csv").write_text("text\nrow 1\nrow 2\n")
    monkeypatch.chdir(cwd)
    # As under `python -m curator`, the working directory is on this process's path.
    monkeypatch.setattr(sys, "path", [str(cwd), "", *sys.path])
    monkeypatch.setattr(
        curator.ingest.pipeline, "INLINE_BYTES", 0
    )  # small input, still two processes
    result = store.ingest(["a.jsonl", "b.csv"], source="dl", origin="real", jobs=2)
    assert counts(result) == (5, 5, 0, 0)
    assert not marker.exists()
    assert texts(store) == ["doc 0", "doc 1", "doc 2", "row 1", "row 2"]


def test_worker_path_leaves_out_the_working_directory_unless_curator_lives_there(tmp_path):
    home = str(Path(curator.__file__).resolve().parent.parent)
    other = str(tmp_path / "lib")
    cwd = str(tmp_path)
    assert worker_path(["", cwd, other, ".", other], cwd) == [other]
    assert worker_path(["", home, other], home) == [home, other]
    command = worker_command()
    assert command[1:] == ["-P", "-m", "curator.engine.local"]


# -- 4: a record that cannot be stored is one reject ---------------------------------------


def _nested(depth: int, text: str) -> str:
    return f'{{"text": "{text}", "x": {"[" * depth}1{"]" * depth}}}'


def test_deeply_nested_records_are_one_reject_each_and_the_rest_is_kept(store, tmp_path):
    lines = [
        json.dumps({"text": "good 1"}),
        _nested(60, "sixty arrays"),
        _nested(1200, "recursion"),
        '{"text": "objects", "x": ' + '{"a": ' * 40 + "1" + "}" * 40 + "}",
        _nested(31, "thirty-one arrays"),
        json.dumps({"text": "good 2"}),
    ]
    (tmp_path / "deep.jsonl").write_text("\n".join(lines) + "\n")
    result = store.ingest([tmp_path / "deep.jsonl"], source="deep", origin="real")
    assert counts(result) == (6, 3, 0, 3)
    assert result.reject_codes == {"too_deeply_nested": 3}
    rejects = rejects_of(result)
    assert [(r["line"], r["code"]) for r in rejects] == [
        (2, "too_deeply_nested"),
        (3, "too_deeply_nested"),
        (4, "too_deeply_nested"),
    ]
    assert rejects[0]["reason"] == (
        "the record nests arrays and objects more than 32 levels deep, "
        "which a Parquet shard cannot hold"
    )
    assert texts(store) == ["good 1", "good 2", "thirty-one arrays"]


def test_deeply_nested_records_in_a_multi_process_run(store, tmp_path, monkeypatch):
    (tmp_path / "a.jsonl").write_text(
        json.dumps({"text": "a"}) + "\n" + _nested(60, "deep") + "\n" + json.dumps({"text": "b"})
    )
    (tmp_path / "b.csv").write_text("text\nc\n")
    monkeypatch.setattr(curator.ingest.pipeline, "INLINE_BYTES", 0)
    result = store.ingest(
        [tmp_path / "a.jsonl", tmp_path / "b.csv"], source="deep", origin="real", jobs=2
    )
    assert counts(result) == (4, 3, 0, 1)
    assert texts(store) == ["a", "b", "c"]


# -- 5: batches are bounded in bytes as well as rows ---------------------------------------


def test_the_default_batch_bound_is_in_bytes():
    assert ReaderOptions().batch_bytes == curator.ingest.readers.base.BATCH_BYTES == 32 << 20
    assert ReaderOptions().batch_rows == 8192


def test_readers_end_a_batch_at_the_byte_bound(tmp_path):
    docs = [f"{i:03d}" + "x" * 285 for i in range(10)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    (tmp_path / "b.csv").write_text("text\n" + "".join(d + "\n" for d in docs))
    pq.write_table(pa.table({"text": docs}), tmp_path / "c.parquet")
    (tmp_path / "txt").mkdir()
    for i, d in enumerate(docs):
        (tmp_path / "txt" / f"{i}.txt").write_text(d)
    options = ReaderOptions(batch_bytes=1000)
    # a JSON line is 301 bytes: the fourth line passes 1000 bytes and ends the batch
    assert batches([tmp_path / "a.jsonl"], options) == [4, 4, 2]
    assert batches([tmp_path / "b.csv"], options) == [4, 4, 2]  # 289-byte lines
    assert batches([tmp_path / "txt"], options) == [3, 3, 3, 1]  # 288-byte files
    parquet_batches = batches([tmp_path / "c.parquet"], options)
    assert sum(parquet_batches) == 10 and max(parquet_batches) <= 4, parquet_batches
    # the rows bound still holds
    assert batches([tmp_path / "a.jsonl"], ReaderOptions(batch_rows=3)) == [3, 3, 3, 1]


def test_ingest_takes_the_byte_bound_from_the_module_default(store, tmp_path, monkeypatch):
    monkeypatch.setattr(curator.ingest.readers.base, "BATCH_BYTES", 2500)
    (tmp_path / "big.jsonl").write_text(
        "".join(json.dumps({"text": f"{i} " + "y" * 1000}) + "\n" for i in range(10))
    )
    result = store.ingest([tmp_path / "big.jsonl"], source="big", origin="real")
    assert counts(result) == (10, 10, 0, 0)
    (path,) = store.sql("SELECT path FROM shards").column(0).to_pylist()
    metadata = pq.read_metadata(os.path.join(store.root, path))
    # each write is one batch: three lines of ~1 KB pass 2500 bytes
    assert [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)] == [3, 3, 3, 1]


def test_a_text_column_that_may_pass_2_gib_is_large_string(store, tmp_path, monkeypatch):
    monkeypatch.setattr(curator.ingest.readers.tables, "MAX_SMALL_OFFSETS", 10)
    table = records_to_table([{"text": "0123456789", "n": 1}, {"text": "x", "n": 2}])
    assert table.schema.field("text").type == pa.large_string()
    assert records_to_table([{"text": "short"}]).schema.field("text").type == pa.string()
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "a long document"}) + "\n")
    (tmp_path / "b.csv").write_text("text\nanother long document\n")
    assert batches([tmp_path / "b.csv"], ReaderOptions()) == [1]
    files, _ = discover([str(tmp_path / "b.csv")])
    (batch,) = read_task(plan_tasks(files)[0], ReaderOptions(), {}, frozenset())
    assert batch.table.schema.field("text").type == pa.large_string()
    result = store.ingest([tmp_path / "a.jsonl", tmp_path / "b.csv"], source="large", origin="real")
    assert counts(result) == (2, 2, 0, 0)
    assert texts(store) == ["a long document", "another long document"]


# -- 6: an oversized line is rejected without being held in memory -------------------------


def _compress(data: bytes, suffix: str) -> bytes:
    if suffix == ".gz":
        return gzip.compress(data)
    if suffix == ".zst":
        return zstandard.ZstdCompressor().compress(data)
    return data


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_a_line_over_max_record_bytes_is_one_reject_and_reading_goes_on(store, tmp_path, suffix):
    at_limit = json.dumps({"text": "z" * (1000 - 12)})
    assert len(at_limit) == 1000
    lines = [
        json.dumps({"text": "before"}),
        json.dumps({"text": "w" * 5000}),
        json.dumps({"text": "after"}),
        at_limit,
        json.dumps({"text": "last"}),
    ]
    data = ("\n".join(lines) + "\n").encode()
    path = tmp_path / f"big.jsonl{suffix}"
    path.write_bytes(_compress(data, suffix))
    result = store.ingest([path], source="big", origin="real", max_record_bytes=1000)
    assert counts(result) == (5, 4, 0, 1)
    (reject,) = rejects_of(result)
    assert (reject["file"], reject["line"], reject["code"]) == (path.name, 2, "record_too_large")
    assert reject["reason"] == (
        "line 2 is 5,012 bytes, over the maximum record size of 1,000 bytes; "
        "raise it with --max-record-bytes"
    )
    assert reject["record"].startswith('{"text": "www')
    assert len(reject["record"]) < 1100
    assert texts(store) == ["after", "before", "last", "z" * 988]


def test_max_record_bytes_applies_to_a_last_line_without_a_newline(store, tmp_path):
    (tmp_path / "a.jsonl").write_bytes(b'{"text": "ok"}\n' + b'{"text": "' + b"q" * 2000 + b'"}')
    result = store.ingest([tmp_path / "a.jsonl"], source="a", origin="real", max_record_bytes=1000)
    assert counts(result) == (2, 1, 0, 1)
    assert [(r["line"], r["code"]) for r in rejects_of(result)] == [(2, "record_too_large")]


class _OneHugeLine(io.RawIOBase):
    """A stream of `size` bytes of `a`, a newline, then one short line, made on demand."""

    def __init__(self, size: int) -> None:
        self.left = size
        self.tail = b'\n{"text": "after"}\n'

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = len(buffer)
        if self.left:
            n = min(n, self.left)
            buffer[:n] = b"a" * n
            self.left -= n
            return n
        n = min(n, len(self.tail))
        buffer[:n] = self.tail[:n]
        self.tail = self.tail[n:]
        return n


def test_reading_past_an_oversized_line_holds_a_bounded_amount_of_memory():
    stream = io.BufferedReader(_OneHugeLine(64 << 20), buffer_size=1 << 16)
    lines = BoundedLines(stream, 1 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(LineTooLarge) as caught:
            next(lines)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (caught.value.line, caught.value.size) == (1, 64 << 20)
    assert peak < 8 << 20
    assert next(lines) == b'{"text": "after"}\n'
    assert lines.line_no == 2
    with pytest.raises(StopIteration):
        next(lines)


def test_a_csv_record_over_max_record_bytes_is_one_reject(store, tmp_path):
    data = (
        "text,n\n"
        "first,1\n"
        + "w" * 3000 + ",2\n"
        + "third,3\n"
        + '"a quoted field\n' + "that goes on\n" * 200 + '",4\n'
        + "last,5\n"
    )  # fmt: skip
    (tmp_path / "a.csv").write_text(data)
    result = store.ingest([tmp_path / "a.csv"], source="csv", origin="real", max_record_bytes=1000)
    rejects = rejects_of(result)
    assert [(r["line"], r["code"]) for r in rejects][:2] == [
        (3, "record_too_large"),
        (5, "record_too_large"),
    ]
    assert rejects[0]["reason"].startswith("line 3 is 3,002 bytes, over the maximum record size")
    assert result.rows_read == result.ingested + result.rejected
    assert {"first", "third"} <= set(texts(store))


def test_tag_and_the_cli_take_max_record_bytes(tmp_path, runner):
    from curator.cli import cli

    (tmp_path / "a.jsonl").write_text(
        json.dumps({"text": "ok"}) + "\n" + json.dumps({"text": "v" * 3000}) + "\n"
    )
    result = curator.tag(
        [tmp_path / "a.jsonl"], tmp_path / "out", source="t", origin="real", max_record_bytes=1000
    )
    assert (result.rows_read, result.written, result.rejected) == (2, 1, 1)
    assert result.reject_codes == {"record_too_large": 1}
    for command in (["tag", "--out", str(tmp_path / "out2")], ["ingest"]):
        extra = ["--store", str(tmp_path / "store")] if command == ["ingest"] else []
        if extra:
            curator.init_store(tmp_path / "store")
        outcome = runner.invoke(
            cli,
            [*command, str(tmp_path / "a.jsonl"), *extra, "--source", "t", "--origin", "real",
             "--max-record-bytes", "1KiB", "--json"],
        )  # fmt: skip
        assert outcome.exit_code == 0, outcome.output
        summary = json.loads(outcome.output)
        assert summary["reject_codes"] == {"record_too_large": 1}
    help_text = runner.invoke(cli, ["ingest", "--help"]).output
    assert "--max-record-bytes" in help_text and "64MiB" in help_text


# -- 13: a glob over a directory symlink loop ends -----------------------------------------


def test_a_glob_over_a_directory_symlink_loop_ends(store, tmp_path, monkeypatch):
    inputs = tmp_path / "in"
    (inputs / "a").mkdir(parents=True)
    (inputs / "b").mkdir()
    (inputs / "a" / "f.jsonl").write_text(json.dumps({"text": "f"}) + "\n")
    (inputs / "b" / "g.jsonl").write_text(json.dumps({"text": "g"}) + "\n")
    (inputs / "a" / "up").symlink_to("..")  # a loop
    (inputs / "b" / "self").symlink_to(".")  # another
    monkeypatch.chdir(tmp_path)
    found: list = []
    # glob's own `**` walks these loops for ever: run it aside so a regression fails, not hangs
    worker = threading.Thread(target=lambda: found.append(discover(["in/**/*.jsonl"])), daemon=True)
    worker.start()
    worker.join(60)
    assert found, "the glob did not end"
    files, _ = found[0]
    assert [f.relpath for f in files] == ["a/f.jsonl", "b/g.jsonl"]
    result = store.ingest(["in/**/*.jsonl"], source="loop", origin="real")
    assert counts(result) == (2, 2, 0, 0)


def test_a_glob_still_follows_a_directory_symlink_that_is_not_a_loop(tmp_path, monkeypatch):
    (tmp_path / "data" / "x").mkdir(parents=True)
    (tmp_path / "data" / "x" / "f.jsonl").write_text("{}\n")
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "linked").symlink_to(tmp_path / "data")
    monkeypatch.chdir(tmp_path)
    files, _ = discover(["in/**/*.jsonl"])
    assert [f.relpath for f in files] == ["linked/x/f.jsonl"]


# -- 14: tar members that are not files are counted ----------------------------------------


def _member(tar, name, data=None, kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = linkname
    if data is None:
        tar.addfile(info)
    else:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _links_tar(path: Path) -> None:
    with tarfile.open(path, "w:gz" if path.name.endswith(".gz") else "w") as tar:
        for i in range(4):
            _member(tar, f"s{i}.png", png_bytes(color=(i * 40, 10, 10)))
        _member(tar, "s1.txt", b"caption one")
        _member(tar, "s4.png", kind=tarfile.LNKTYPE, linkname="s0.png")
        _member(tar, "s5.png", kind=tarfile.SYMTYPE, linkname="s1.png")
        _member(tar, "s6.png", kind=tarfile.CHRTYPE)
        _member(tar, "s7.png", kind=tarfile.FIFOTYPE)


@pytest.mark.parametrize("name", ["links.tar", "links.tar.gz"])
def test_webdataset_links_and_devices_are_each_counted(store, tmp_path, name):
    _links_tar(tmp_path / name)
    result = store.ingest([tmp_path / name], source="wds", origin="real")
    assert counts(result) == (8, 5, 0, 3)
    assert [(r["sample"], r["code"], r["reason"]) for r in rejects_of(result)] == [
        (5, "unsupported_member", "sample `s5`: member `s5.png` is a symbolic link (to `s1.png`), "
         "which is not followed inside an archive"),
        (6, "unsupported_member", "sample `s6`: member `s6.png` is a character device, not a file"),
        (7, "unsupported_member", "sample `s7`: member `s7.png` is a FIFO, not a file"),
    ]  # fmt: skip
    rows = store.sql(
        f"SELECT sample_id, image FROM samples WHERE sample_id IN ('wds/{name}/s0', 'wds/{name}/s4')"
        " ORDER BY sample_id"
    ).to_pylist()
    assert [r["sample_id"] for r in rows] == [f"wds/{name}/s0", f"wds/{name}/s4"]
    assert rows[0]["image"] == rows[1]["image"] == png_bytes(color=(0, 10, 10))


def test_webdataset_hard_link_to_an_unknown_member_is_rejected(store, tmp_path):
    with tarfile.open(tmp_path / "t.tar", "w") as tar:
        _member(tar, "a.png", png_bytes())
        _member(tar, "b.png", kind=tarfile.LNKTYPE, linkname="missing.png")
    result = store.ingest([tmp_path / "t.tar"], source="wds", origin="real")
    assert counts(result) == (2, 1, 0, 1)
    (reject,) = rejects_of(result)
    assert reject["reason"] == (
        "sample `b`: member `b.png` is a hard link to `missing.png`, "
        "which is not an earlier file of the archive"
    )


def test_webdataset_member_names_cannot_climb_out_in_sample_ids(store, tmp_path):
    with tarfile.open(tmp_path / "t.tar", "w") as tar:
        _member(tar, "../../evil.png", png_bytes(color=(1, 2, 3)))
        _member(tar, "/abs/x.png", png_bytes(color=(4, 5, 6)))
        _member(tar, "./ok/./y.png", png_bytes(color=(7, 8, 9)))
    result = store.ingest([tmp_path / "t.tar"], source="wds", origin="real")
    assert counts(result) == (3, 3, 0, 0)
    assert store.sql("SELECT sample_id, path FROM samples ORDER BY 1").to_pylist() == [
        {"sample_id": "wds/t.tar/%2E%2E/%2E%2E/evil", "path": "%2E%2E/%2E%2E/evil.png"},
        {"sample_id": "wds/t.tar/abs/x", "path": "abs/x.png"},
        {"sample_id": "wds/t.tar/ok/y", "path": "ok/y.png"},
    ]


# -- 16: names end at the end of the string, not before a newline -------------------------


@pytest.mark.parametrize("name", ["web\n", "web\n\n", "\nweb", "we\nb"])
def test_a_source_name_with_a_newline_is_refused(name):
    with pytest.raises(ProvenanceError, match="is not a valid source name"):
        ProvenanceSpec(source=name, origin="real")


def test_the_cli_refuses_a_source_ending_in_a_newline(tmp_path, runner):
    from curator.cli import cli

    curator.init_store(tmp_path / "store")
    (tmp_path / "a.jsonl").write_text(json.dumps({"text": "x"}) + "\n")
    outcome = runner.invoke(
        cli,
        ["ingest", str(tmp_path / "a.jsonl"), "--store", str(tmp_path / "store"),
         "--source", "web\n", "--origin", "real"],
    )  # fmt: skip
    assert outcome.exit_code == 1
    assert "`--source` 'web\\n' is not a valid source name" in outcome.output
    assert os.listdir(tmp_path / "store" / "shards") == []


def test_a_model_name_ending_in_a_newline_is_refused(store):
    with pytest.raises(ModelError, match="is not a valid model name"):
        register_model(store, "model-v1\n", generation=1)


def test_csv_lines_may_still_end_in_a_lone_carriage_return(store, tmp_path):
    (tmp_path / "mac.csv").write_bytes(b'text,n\ra,1\rb,2\r"c\rd",3\re,4,5\r')
    result = store.ingest([tmp_path / "mac.csv"], source="mac", origin="real")
    assert counts(result) == (4, 3, 0, 1)
    assert [(r["line"], r["code"]) for r in rejects_of(result)] == [(6, "ragged_row")]
    assert texts(store) == ["a", "b", "c\rd"]


def test_a_field_holding_an_empty_object_is_kept_as_json_text(store, tmp_path):
    records = [
        {"text": "good"},
        {"text": "empty", "x": {}},
        {"text": "inside", "y": {"b": [{"c": {}}]}},
        {"text": "good 2"},
    ]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    result = store.ingest([tmp_path / "a.jsonl"], source="empty", origin="real")
    assert counts(result) == (4, 4, 0, 0)
    rows = store.sql("SELECT text, x, y FROM samples ORDER BY text").to_pylist()
    assert [(r["text"], r["x"], r["y"]) for r in rows] == [
        ("empty", "{}", None),
        ("good", None, None),
        ("good 2", None, None),
        ("inside", None, '{"b": [{"c": {}}]}'),
    ]
