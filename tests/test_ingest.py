"""Ingest: every input format, every kind of bad input, idempotency and the count invariant."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from datetime import UTC, date, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import curator
from curator.core.hashing import text_hash
from tests.conftest import png_bytes


def rejects_of(result) -> list[dict]:
    if result.rejects_path is None:
        return []
    with open(result.rejects_path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def samples(store, columns="sample_id, origin, generation, text") -> list[dict]:
    return store.sql(f"SELECT {columns} FROM samples ORDER BY sample_id").to_pylist()


def assert_adds_up(result):
    assert result.rows_read == result.ingested + result.skipped + result.rejected


# -- formats ------------------------------------------------------------------------------


def test_jsonl_plain_gz_and_zst_with_provenance(store, tmp_path, write_jsonl):
    records = [{"text": f"document number {i}", "lang": "en", "score": i / 10} for i in range(5)]
    plain = write_jsonl("in/plain.jsonl", records)
    with gzip.open(tmp_path / "in" / "packed.jsonl.gz", "wb") as handle:
        handle.write(plain.read_bytes())
    (tmp_path / "in" / "packed.jsonl.zst").write_bytes(
        zstandard.ZstdCompressor().compress(plain.read_bytes())
    )
    result = store.ingest(
        [tmp_path / "in"], source="web-2021", origin="real", collected_at=date(2021, 3, 4)
    )
    assert (result.rows_read, result.ingested, result.skipped, result.rejected) == (15, 15, 0, 0)
    assert result.files == 3
    rows = store.sql(
        "SELECT sample_id, content_hash, origin, generation, origin_confidence, origin_evidence, "
        "source, model, parent_id, collected_at, ingest_id, text, lang, score FROM samples "
        "WHERE sample_id = 'web-2021/plain.jsonl:2'"
    ).to_pylist()
    assert rows == [
        {
            "sample_id": "web-2021/plain.jsonl:2",
            "content_hash": text_hash("document number 1"),
            "origin": "real",
            "generation": 0,
            "origin_confidence": 1.0,
            "origin_evidence": "declared",
            "source": "web-2021",
            "model": None,
            "parent_id": None,
            "collected_at": datetime(2021, 3, 4, tzinfo=UTC),
            "ingest_id": result.run_id,
            "text": "document number 1",
            "lang": "en",
            "score": 0.1,
        }
    ]
    ids = [r["sample_id"] for r in samples(store)]
    assert "web-2021/packed.jsonl.gz:5" in ids and "web-2021/packed.jsonl.zst:1" in ids


def test_parquet_files_globs_and_directories_keep_input_columns(store, tmp_path):
    (tmp_path / "pq" / "sub").mkdir(parents=True)
    for i, name in enumerate(["pq/a.parquet", "pq/sub/b.parquet"]):
        pq.write_table(
            pa.table(
                {
                    "id": [f"{name}-{j}" for j in range(3)],
                    "body": [f"text {i} {j}" for j in range(3)],
                    "n": [1, 2, 3],
                }
            ),
            tmp_path / name,
            row_group_size=2,
        )
    result = store.ingest(
        [str(tmp_path / "pq" / "**" / "*.parquet")],
        source="pq",
        origin="synthetic",
        generation=2,
        model="m-2",
        text_column="body",
        id_column="id",
    )
    assert (result.rows_read, result.ingested, result.rejected) == (6, 6, 0)
    rows = store.sql(
        "SELECT sample_id, origin, generation, model, text, n FROM samples ORDER BY sample_id"
    ).to_pylist()
    assert rows[0] == {
        "sample_id": "pq/pq/a.parquet-0",
        "origin": "synthetic",
        "generation": 2,
        "model": "m-2",
        "text": "text 0 0",
        "n": 1,
    }
    assert [r["sample_id"] for r in rows][-1] == "pq/pq/sub/b.parquet-2"
    # columns of a store shard: provenance, then content, then the input's own
    (shard,) = store.live_shards()
    names = pq.read_schema(Path(store.root) / shard["path"]).names
    assert names[:12] == [*curator.core.schema.PROVENANCE_NAMES, "text"]
    assert names[12:] == ["id", "n"]


def test_parquet_directory_default_keys_are_row_indices(store, tmp_path):
    (tmp_path / "d").mkdir()
    pq.write_table(
        pa.table({"text": ["a", "b", "c"]}), tmp_path / "d" / "x.parquet", row_group_size=1
    )
    store.ingest([tmp_path / "d"], source="s", origin="unknown")
    assert [r["sample_id"] for r in samples(store)] == [
        "s/x.parquet:0",
        "s/x.parquet:1",
        "s/x.parquet:2",
    ]
    assert {r["generation"] for r in samples(store)} == {None}


def test_csv_text_files_and_image_folder(store, tmp_path):
    (tmp_path / "t.csv").write_text('id,text,label\n1,"hello, world",a\n2,"multi\nline",b\n')
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "one.txt").write_text("first note")
    (tmp_path / "notes" / "two.md").write_text("second note")
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "r.png").write_bytes(png_bytes((250, 0, 0)))
    (tmp_path / "imgs" / "g.jpg").write_bytes(png_bytes((0, 250, 0), fmt="JPEG"))
    (tmp_path / "imgs" / "b.webp").write_bytes(png_bytes((0, 0, 250), fmt="WEBP", lossless=True))
    r1 = store.ingest([tmp_path / "t.csv"], source="csv", origin="real")
    r2 = store.ingest([tmp_path / "notes"], source="notes", origin="real")
    r3 = store.ingest([tmp_path / "imgs"], source="photos", origin="unknown")
    assert [(r.ingested, r.rejected) for r in (r1, r2, r3)] == [(2, 0), (2, 0), (3, 0)]
    rows = store.sql(
        "SELECT sample_id, text, label FROM samples WHERE source = 'csv' ORDER BY 1"
    ).to_pylist()
    assert rows == [
        {"sample_id": "csv/t.csv:2", "text": "hello, world", "label": "a"},
        {"sample_id": "csv/t.csv:3", "text": "multi\nline", "label": "b"},
    ]
    assert [
        r["sample_id"]
        for r in store.sql(
            "SELECT sample_id FROM samples WHERE source='notes' ORDER BY 1"
        ).to_pylist()
    ] == ["notes/one.txt", "notes/two.md"]
    images = store.sql(
        "SELECT sample_id, width, height, image_format, octet_length(image) AS n FROM samples WHERE source='photos' ORDER BY 1"
    ).to_pylist()
    assert [(r["sample_id"], r["width"], r["height"], r["image_format"]) for r in images] == [
        ("photos/b.webp", 16, 12, "webp"),
        ("photos/g.jpg", 16, 12, "jpeg"),
        ("photos/r.png", 16, 12, "png"),
    ]
    # the image bytes are stored as they were
    stored = store.sql("SELECT image FROM samples WHERE sample_id = 'photos/r.png'").to_pylist()[0][
        "image"
    ]
    assert stored == (tmp_path / "imgs" / "r.png").read_bytes()


def _tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def test_webdataset_tar_with_sidecars(store, tmp_path):
    _tar(
        tmp_path / "shard-000.tar",
        [
            ("000001.png", png_bytes((1, 2, 3))),
            ("000001.txt", b"a red square"),
            ("000001.json", b'{"w": 16}'),
            ("000002.jpg", png_bytes((9, 9, 9), fmt="JPEG")),
            ("000003.txt", b"a caption without an image"),
        ],
    )
    result = store.ingest([tmp_path / "shard-000.tar"], source="laion", origin="unknown")
    assert (result.rows_read, result.ingested, result.rejected) == (3, 2, 1)
    assert rejects_of(result) == [
        {
            "file": "shard-000.tar",
            "sample": 2,
            "code": "missing_content",
            "reason": "sample `000003` has no image member (txt)",
            "record": None,
        }
    ]
    rows = store.sql("SELECT sample_id, txt, json FROM samples ORDER BY 1").to_pylist()
    assert rows == [
        {"sample_id": "laion/shard-000.tar/000001", "txt": "a red square", "json": '{"w": 16}'},
        {"sample_id": "laion/shard-000.tar/000002", "txt": None, "json": None},
    ]


def test_tabular_image_column(store, tmp_path):
    pq.write_table(
        pa.table({"img": [png_bytes(), b"not an image"], "caption": ["ok", "bad"]}),
        tmp_path / "i.parquet",
    )
    result = store.ingest([tmp_path / "i.parquet"], source="hf", origin="real", image_column="img")
    assert (result.ingested, result.rejected) == (1, 1)
    assert rejects_of(result)[0]["code"] == "corrupt_image"
    assert store.sql("SELECT caption, octet_length(image) AS n FROM samples").to_pylist() == [
        {"caption": "ok", "n": len(png_bytes())}
    ]


# -- bad input ----------------------------------------------------------------------------


def test_malformed_json_lines_are_rejected_with_line_numbers(store, write_jsonl):
    path = write_jsonl(
        "a.jsonl",
        [
            {"text": "good one"},
            "{not json",
            "[1, 2]",
            {"text": "good two"},
            '{"text": "unterminated',
        ],
    )
    result = store.ingest([path], source="web", origin="real")
    assert (result.rows_read, result.ingested, result.rejected) == (5, 2, 3)
    rejects = rejects_of(result)
    assert [(r["line"], r["code"]) for r in rejects] == [
        (2, "malformed_json"),
        (3, "not_an_object"),
        (5, "malformed_json"),
    ]
    assert (
        rejects[0]["reason"]
        == "malformed JSON: Expecting property name enclosed in double quotes at column 2"
    )
    assert rejects[0]["record"] == "{not json\n"
    assert result.reject_codes == {"malformed_json": 2, "not_an_object": 1}


def test_invalid_utf8_in_jsonl_and_csv(store, tmp_path, write_jsonl):
    path = write_jsonl("u.jsonl", [{"text": "fine"}, b'{"text": "bad \xff byte"}'])
    result = store.ingest([path], source="u", origin="real")
    assert (result.ingested, result.rejected) == (1, 1)
    assert rejects_of(result)[0] == {
        "file": "u.jsonl", "line": 2, "code": "invalid_utf8", "reason": "invalid UTF-8 at byte 14",
        "record": '{"text": "bad \\xff byte"}\n',
    }  # fmt: skip
    (tmp_path / "u.csv").write_bytes(b"text\nfine\nbad \xfe\nalso fine\n")
    result = store.ingest([tmp_path / "u.csv"], source="c", origin="real")
    assert (result.ingested, result.rejected) == (2, 1)
    assert [(r["line"], r["code"]) for r in rejects_of(result)] == [(3, "invalid_utf8")]


def test_missing_and_empty_content(store, write_jsonl):
    path = write_jsonl(
        "e.jsonl",
        [
            {"text": "x"},
            {"other": 1},
            {"text": None},
            {"text": "   \n "},
            {"text": ""},
            {"text": 5},
        ],
    )
    result = store.ingest([path], source="e", origin="real")
    assert (result.ingested, result.rejected) == (1, 5)
    assert [(r["line"], r["code"]) for r in rejects_of(result)] == [
        (2, "missing_content"), (3, "missing_content"), (6, "content_not_text"), (4, "empty_content"), (5, "empty_content"),
    ]  # fmt: skip


def test_ragged_csv_rows(store, tmp_path):
    (tmp_path / "r.csv").write_text("id,text\n1,good\n2,too,many\n3\n4,fine\n")
    result = store.ingest([tmp_path / "r.csv"], source="r", origin="real", id_column="id")
    assert (result.rows_read, result.ingested, result.rejected) == (4, 2, 2)
    rejects = rejects_of(result)
    assert [(r["line"], r["code"], r["reason"]) for r in rejects] == [
        (3, "ragged_row", "3 fields where the header has 2"),
        (4, "ragged_row", "1 fields where the header has 2"),
    ]
    assert [r["sample_id"] for r in samples(store)] == ["r/1", "r/4"]


def test_parquet_of_the_wrong_schema_rejects_every_row_of_that_file(store, tmp_path):
    pq.write_table(pa.table({"body": ["a", "b"]}), tmp_path / "no_text.parquet")
    pq.write_table(pa.table({"text": [1, 2, 3]}), tmp_path / "int_text.parquet")
    pq.write_table(pa.table({"text": ["ok"]}), tmp_path / "good.parquet")
    result = store.ingest(
        [tmp_path / "no_text.parquet", tmp_path / "int_text.parquet", tmp_path / "good.parquet"],
        source="p",
        origin="real",
        allow_empty=True,  # a whole file without the content column fails the run otherwise
    )
    assert (result.rows_read, result.ingested, result.rejected) == (6, 1, 5)
    assert result.reject_codes == {"missing_column": 2, "wrong_type": 3}
    first = rejects_of(result)[0]
    assert first == {
        "file": "no_text.parquet", "row": 0, "code": "missing_column",
        "reason": "no content column `text` (columns: body); name it with --text-column (Python: `text_column=`)", "record": None,
    }  # fmt: skip


def test_input_column_named_like_a_provenance_column(store, tmp_path, write_jsonl):
    pq.write_table(pa.table({"text": ["a", "b"], "source": ["x", "y"]}), tmp_path / "s.parquet")
    result = store.ingest([tmp_path / "s.parquet"], source="p", origin="real", allow_empty=True)
    assert (result.ingested, result.rejected) == (0, 2)
    assert rejects_of(result)[0]["reason"] == (
        "input column `source` has the name of a provenance column; map it away with --rename-column source=NEW_NAME (Python: `rename_columns={'source': ...}`)"
    )
    # nothing is silently overwritten; renaming maps it away and keeps the values
    result = store.ingest(
        [tmp_path / "s.parquet"],
        source="p",
        origin="real",
        rename_columns={"source": "orig_source"},
    )
    assert (result.ingested, result.rejected) == (2, 0)
    assert store.sql("SELECT source, orig_source FROM samples ORDER BY 2").to_pylist() == [
        {"source": "p", "orig_source": "x"}, {"source": "p", "orig_source": "y"},
    ]  # fmt: skip
    path = write_jsonl("j.jsonl", [{"text": "a", "origin": "real"}, {"text": "b"}])
    result = store.ingest([path], source="j", origin="real")
    assert (result.ingested, result.rejected) == (1, 1)
    assert rejects_of(result)[0]["code"] == "reserved_column"


def test_unreadable_truncated_corrupt_and_oversized_images(store, tmp_path):
    (tmp_path / "imgs").mkdir()
    good = png_bytes()
    (tmp_path / "imgs" / "good.png").write_bytes(good)
    (tmp_path / "imgs" / "truncated.png").write_bytes(good[: len(good) // 2])
    (tmp_path / "imgs" / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    (tmp_path / "imgs" / "big.png").write_bytes(png_bytes(size=(400, 300)))
    unreadable = tmp_path / "imgs" / "locked.png"
    unreadable.write_bytes(good)
    unreadable.chmod(0)
    (tmp_path / "imgs" / "dangling.png").symlink_to(tmp_path / "gone.png")
    result = store.ingest(
        [tmp_path / "imgs"], source="img", origin="real", max_image_pixels=100_000
    )
    codes = {r["file"]: (r["code"], r["reason"]) for r in rejects_of(result)}
    assert codes["big.png"] == (
        "image_too_large",
        "image is 400×300 = 120,000 pixels, over the limit of 100,000 (decompression-bomb guard); raise it with --max-image-pixels",
    )
    assert codes["corrupt.jpg"][0] == "corrupt_image"
    assert codes["truncated.png"][0] == "corrupt_image"
    import os

    assert codes["dangling.png"] == ("unreadable_file", "cannot read: No such file or directory")
    if os.geteuid() == 0:  # root reads files whatever their mode
        assert (result.ingested, result.rejected) == (2, 4) and "locked.png" not in codes
    else:  # pragma: no cover
        assert (result.ingested, result.rejected) == (1, 5)
        assert codes["locked.png"][0] == "unreadable_file"
    assert_adds_up(result)


def test_decompression_bomb_is_rejected_before_decoding(store, tmp_path):
    # A 20000 x 20000 image that compresses to a few hundred KB.
    from PIL import Image

    Image.new("1", (20_000, 20_000)).save(tmp_path / "bomb.png")
    result = store.ingest([tmp_path / "bomb.png"], source="b", origin="real", allow_empty=True)
    assert (result.ingested, result.rejected) == (0, 1)
    assert rejects_of(result)[0]["code"] == "image_too_large"


def test_an_unreadable_file_among_good_ones(store, tmp_path, write_jsonl):
    write_jsonl("d/a.jsonl", [{"text": "a"}])
    (tmp_path / "d" / "broken.parquet").write_bytes(b"PAR1 definitely not parquet")
    write_jsonl("d/c.jsonl", [{"text": "c"}])
    result = store.ingest([tmp_path / "d"], source="d", origin="real")
    assert (result.rows_read, result.ingested, result.rejected) == (3, 2, 1)
    (reject,) = rejects_of(result)
    assert reject["file"] == "broken.parquet" and reject["code"] == "unreadable_file"
    assert reject["reason"].startswith("cannot read parquet file: ")


def test_strict_commits_nothing_on_any_reject(store, write_jsonl):
    path = write_jsonl("a.jsonl", [{"text": "a"}, "oops", {"text": "b"}])
    with pytest.raises(curator.IngestFailed) as caught:
        store.ingest([path], source="s", origin="real", strict=True)
    assert (
        caught.value.message
        == "--strict: 1 of 3 records were rejected (malformed_json: 1); nothing was committed"
    )
    assert store.stats().total_rows == 0
    assert store.sql("SELECT count(*) AS n FROM shards").to_pylist() == [{"n": 0}]
    assert store.sql("SELECT status, rejected FROM runs").to_pylist() == [
        {"status": "failed", "rejected": 1}
    ]
    assert list((Path(store.root) / "shards").iterdir()) == []


# -- idempotency ----------------------------------------------------------------------------


def test_ingesting_again_skips_and_counts(store, write_jsonl):
    path = write_jsonl("a.jsonl", [{"text": f"row {i}"} for i in range(10)])
    first = store.ingest([path], source="s", origin="real")
    second = store.ingest([path], source="s", origin="real")
    assert (first.ingested, first.skipped) == (10, 0)
    assert (second.rows_read, second.ingested, second.skipped, second.rejected) == (10, 0, 10, 0)
    assert second.skip_codes == {"already_in_store": 10}
    assert store.stats().total_rows == 10
    # whitespace-only changes are the same content: still skipped
    write_jsonl("a.jsonl", [{"text": f"row  {i} "} for i in range(10)] + [{"text": "new"}])
    third = store.ingest([path], source="s", origin="real")
    assert (third.ingested, third.skipped) == (1, 10)


def test_same_sample_id_with_different_content_names_both(store, write_jsonl):
    path = write_jsonl("a.jsonl", [{"text": "original"}, {"text": "kept"}])
    store.ingest([path], source="s", origin="real")
    write_jsonl("a.jsonl", [{"text": "changed"}, {"text": "kept"}])
    result = store.ingest([path], source="s", origin="real")
    assert (result.ingested, result.skipped, result.rejected) == (0, 1, 1)
    (reject,) = rejects_of(result)
    assert (
        reject["file"] == "a.jsonl"
        and reject["line"] == 1
        and reject["code"] == "sample_id_conflict"
    )
    assert reject["reason"].startswith(
        f"`s/a.jsonl:1` is already in the store with different content (content_hash {text_hash('original')} in `shards/s/"
    )
    assert reject["reason"].endswith(
        f"this record has {text_hash('changed')}); give it another id (--id-column) or ingest it under another --source"
    )
    assert samples(store, "text") == [{"text": "original"}, {"text": "kept"}]


def test_duplicate_ids_within_one_run(store, write_jsonl):
    path = write_jsonl(
        "a.jsonl",
        [
            {"id": 1, "text": "x"},
            {"id": 2, "text": "y"},
            {"id": 1, "text": "x "},
            {"id": 2, "text": "z"},
        ],
    )
    result = store.ingest([path], source="s", origin="real", id_column="id")
    assert (result.ingested, result.skipped, result.rejected) == (2, 1, 1)
    assert result.skip_codes == {"duplicate_in_run": 1}
    assert [(r["line"], r["code"]) for r in rejects_of(result)] == [(4, "sample_id_conflict")]
    assert samples(store, "sample_id, text") == [
        {"sample_id": "s/1", "text": "x"},
        {"sample_id": "s/2", "text": "y"},
    ]


# -- per-row provenance --------------------------------------------------------------------


def test_collected_at_column_parent_id_and_bad_dates(store, write_jsonl):
    path = write_jsonl(
        "a.jsonl",
        [
            {"text": "a", "when": "2021-06-01", "from": "web/1"},
            {"text": "b", "when": "2021-06-01T12:30:00+02:00"},
            {"text": "c", "when": 1600000000},
            {"text": "d", "when": "last tuesday"},
            {"text": "e", "when": None},
        ],
    )
    result = store.ingest(
        [path], source="s", origin="real", collected_at_column="when", parent_id_column="from"
    )
    assert (result.ingested, result.rejected) == (4, 1)
    (reject,) = rejects_of(result)
    assert (reject["line"], reject["code"], reject["reason"]) == (
        4,
        "bad_collected_at",
        "`when`: 'last tuesday' is not an ISO 8601 date or time",
    )
    rows = samples(store, "text, collected_at, parent_id")
    assert rows == [
        {"text": "a", "collected_at": datetime(2021, 6, 1, tzinfo=UTC), "parent_id": "web/1"},
        {"text": "b", "collected_at": datetime(2021, 6, 1, 10, 30, tzinfo=UTC), "parent_id": None},
        {
            "text": "c",
            "collected_at": datetime(2020, 9, 13, 12, 26, 40, tzinfo=UTC),
            "parent_id": None,
        },
        {"text": "e", "collected_at": None, "parent_id": None},
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"origin": "synthetic"}, "`--origin synthetic` needs `--generation N` (N >= 1)"),
        ({"origin": "real", "generation": 2}, "`--generation` 2 contradicts `--origin real`"),
        (
            {"origin": "unknown", "generation": 1},
            "`--generation` is given for `--origin unknown` samples",
        ),
        ({"origin": "fake"}, "`--origin` 'fake' is not one of real, synthetic, unknown"),
        (
            {"origin": "real", "source": "bad/name"},
            "`--source` 'bad/name' is not a valid source name",
        ),
        (
            {"origin": "real", "id_column": "origin"},
            "`--id-column origin` names a provenance column",
        ),
    ],
)
def test_contradictory_flags_fail_before_reading(store, write_jsonl, kwargs, message):
    path = write_jsonl("a.jsonl", [{"text": "a"}])
    kwargs = {"source": "s", **kwargs}
    with pytest.raises(curator.ProvenanceError) as caught:
        store.ingest([path], **kwargs)
    assert caught.value.message == message
    assert caught.value.hint


def test_missing_input_and_unknown_format(store, tmp_path):
    with pytest.raises(curator.InputError, match="does not exist"):
        store.ingest([tmp_path / "nope.jsonl"], source="s", origin="real")
    (tmp_path / "data.bin").write_bytes(b"x")
    with pytest.raises(curator.InputError) as caught:
        store.ingest([tmp_path / "data.bin"], source="s", origin="real")
    assert (
        caught.value.message == f"cannot tell the format of `{tmp_path / 'data.bin'}` from its name"
    )


def test_shards_roll_over_at_the_target_size(store, write_jsonl):
    path = write_jsonl("a.jsonl", [{"text": "x" * 100 + str(i)} for i in range(50)])
    result = store.ingest([path], source="s", origin="real", shard_bytes=1000, batch_rows=7)
    assert (
        result.shards == 4
    )  # a shard closes after the batch that takes it past 1000 bytes: 14, 14, 14, 8 rows
    shards = store.live_shards()
    assert sum(s["rows"] for s in shards) == 50
    assert store.stats().total_rows == 50


# -- the count invariant, for any mix of good and bad lines --------------------------------


LINE = st.one_of(
    st.builds(lambda t: {"text": t}, st.text(min_size=0, max_size=20)),
    st.just("{broken"),
    st.just(b'{"text": "\xff"}'),
    st.just({"text": None}),
    st.just({"origin": "real", "text": "x"}),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(LINE, max_size=30), st.booleans())
def test_counts_always_add_up(tmp_path_factory, lines, twice):
    root = tmp_path_factory.mktemp("inv")
    store = curator.init_store(root / "store")
    path = root / "in.jsonl"
    with open(path, "wb") as handle:
        for line in lines:
            handle.write(
                line
                if isinstance(line, bytes)
                else (line if isinstance(line, str) else json.dumps(line)).encode()
            )
            handle.write(b"\n")
    if not lines:
        path.write_bytes(b"")
    first = store.ingest([path], source="s", origin="real", allow_empty=True)
    assert_adds_up(first)
    assert store.stats().total_rows == first.ingested
    assert len(rejects_of(first)) == first.rejected
    if twice:
        second = store.ingest([path], source="s", origin="real", allow_empty=True)
        assert_adds_up(second)
        assert second.ingested == 0 and second.skipped == first.ingested


def test_a_json_array_file_is_one_clear_reject(store, tmp_path):
    (tmp_path / "array.json").write_text('[\n  {"text": "a"},\n  {"text": "b"}\n]\n')
    result = store.ingest([tmp_path / "array.json"], source="s", origin="real", allow_empty=True)
    assert (result.rows_read, result.ingested, result.rejected) == (1, 0, 1)
    assert rejects_of(result) == [
        {
            "file": "array.json",
            "code": "not_json_lines",
            "reason": "the file is one JSON array, not JSON Lines (one object per line); convert it, e.g. with `jq -c '.[]' FILE > FILE.jsonl`",
            "record": None,
        }
    ]


def test_jsonl_fields_that_change_type_are_kept_as_json_text(store, write_jsonl):
    path = write_jsonl(
        "a.jsonl",
        [{"text": "a", "meta": 1}, {"text": "b", "meta": "x"}, {"text": "c", "meta": {"k": [1]}}],
    )
    assert store.ingest([path], source="s", origin="real").ingested == 3
    assert samples(store, "text, meta") == [
        {"text": "a", "meta": "1"},
        {"text": "b", "meta": "x"},
        {"text": "c", "meta": '{"k": [1]}'},
    ]
