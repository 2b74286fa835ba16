"""Ingest edge cases: damaged compressed files, odd Unicode, odd column names and types, WebDataset
layouts, image modes, timestamps, and tag's column order. Each bad input is a counted reject."""

from __future__ import annotations

import io
import json
import tarfile
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash
import zstandard

import curator
from curator.core.hashing import image_pixels_hash
from curator.core.provenance import parse_timestamp
from curator.core.schema import PROVENANCE_NAMES
from tests.conftest import png_bytes


def rejects_of(result) -> list[dict]:
    if result.rejects_path is None:
        return []
    with open(result.rejects_path, encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def counts(result) -> tuple[int, int, int, int]:
    assert result.rows_read == result.ingested + result.skipped + result.rejected
    return (result.rows_read, result.ingested, result.skipped, result.rejected)


def jsonl_bytes(lines: list[dict]) -> bytes:
    return b"".join(json.dumps(line).encode() + b"\n" for line in lines)


def _tar(path: Path, members: list[tuple[str, bytes]]) -> None:
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


# -- 1, 2: a file that cannot be read to its end keeps what came before ---------------------


def test_truncated_gzip_jsonl_keeps_every_line_before_the_cut(store, tmp_path):
    data = jsonl_bytes([{"text": f"line {i}"} for i in range(10)])
    first_five = data[: data.index(b'{"text": "line 5"}')]
    packer = zlib.compressobj(wbits=31)  # gzip framing
    # everything up to line 5 is decodable; the rest of the file (and the gzip trailer) is cut
    (tmp_path / "cut.jsonl.gz").write_bytes(
        packer.compress(first_five) + packer.flush(zlib.Z_SYNC_FLUSH)
    )
    result = store.ingest([tmp_path / "cut.jsonl.gz"], source="gz", origin="real")
    assert counts(result) == (6, 5, 0, 1)
    (reject,) = rejects_of(result)
    assert (reject["file"], reject["line"], reject["code"]) == ("cut.jsonl.gz", 6, "truncated_file")
    assert reject["reason"].startswith("the file is truncated at line 6 (EOFError: ")
    assert store.sql("SELECT text FROM samples ORDER BY sample_id").column(0).to_pylist() == [
        f"line {i}" for i in range(5)
    ]


def test_truncated_gzip_csv_keeps_every_row_before_the_cut(store, tmp_path):
    data = b"text,n\n" + b"".join(b"row %d,%d\n" % (i, i) for i in range(8))
    packer = zlib.compressobj(wbits=31)
    (tmp_path / "cut.csv.gz").write_bytes(
        packer.compress(data[: data.index(b"row 4")]) + packer.flush(zlib.Z_SYNC_FLUSH)
    )
    result = store.ingest([tmp_path / "cut.csv.gz"], source="gz", origin="real")
    assert counts(result) == (5, 4, 0, 1)
    (reject,) = rejects_of(result)
    assert (reject["line"], reject["code"]) == (6, "truncated_file")


def test_truncated_zst_jsonl_is_detected_and_keeps_the_lines_before(store, tmp_path):
    data = jsonl_bytes([{"text": f"line {i}"} for i in range(10)])
    packer = zstandard.ZstdCompressor().compressobj()
    cut = packer.compress(data[: data.index(b'{"text": "line 5"}')]) + packer.flush(
        zstandard.COMPRESSOBJ_FLUSH_BLOCK
    )
    (tmp_path / "cut.jsonl.zst").write_bytes(cut)
    result = store.ingest([tmp_path / "cut.jsonl.zst"], source="zst", origin="real")
    assert counts(result) == (6, 5, 0, 1)
    (reject,) = rejects_of(result)
    assert (reject["file"], reject["line"], reject["code"]) == (
        "cut.jsonl.zst",
        6,
        "truncated_file",
    )


def test_multi_frame_zst_jsonl_is_read_to_its_end(store, tmp_path):
    data = jsonl_bytes([{"text": f"line {i}"} for i in range(10)])
    half = data.index(b'{"text": "line 5"}')
    compressor = zstandard.ZstdCompressor()
    (tmp_path / "frames.jsonl.zst").write_bytes(
        compressor.compress(data[:half]) + compressor.compress(data[half:])
    )
    result = store.ingest([tmp_path / "frames.jsonl.zst"], source="zst", origin="real")
    assert counts(result) == (10, 10, 0, 0)


# -- 3, 5: Unicode at the edges -------------------------------------------------------------


def test_a_lone_surrogate_escape_rejects_that_line_only(store, write_jsonl):
    path = write_jsonl(
        "s.jsonl",
        [{"text": "good one"}, '{"text": "bad \\ud800", "n": 1}', {"text": "good two"}],
    )
    result = store.ingest([path], source="s", origin="real")
    assert counts(result) == (3, 2, 0, 1)
    (reject,) = rejects_of(result)
    assert (reject["line"], reject["code"], reject["reason"]) == (
        2,
        "invalid_utf8",
        "field `text` holds a lone surrogate escape (\\ud800), which is not valid Unicode",
    )


def test_a_utf8_bom_is_ignored_in_jsonl_and_csv(store, tmp_path):
    (tmp_path / "b.jsonl").write_bytes(
        b"\xef\xbb\xbf" + jsonl_bytes([{"text": "a"}, {"text": "b"}])
    )
    (tmp_path / "b.csv").write_bytes(b"\xef\xbb\xbftext,n\nc,1\n")
    result = store.ingest([tmp_path / "b.jsonl", tmp_path / "b.csv"], source="bom", origin="real")
    assert counts(result) == (3, 3, 0, 0)
    assert store.sql("SELECT sample_id, text FROM samples ORDER BY 1").to_pylist() == [
        {"sample_id": "bom/b.csv:2", "text": "c"},
        {"sample_id": "bom/b.jsonl:1", "text": "a"},
        {"sample_id": "bom/b.jsonl:2", "text": "b"},
    ]


def test_csv_header_is_the_first_non_blank_line(store, tmp_path):
    (tmp_path / "blank.csv").write_text("\ntext,n\nhello,1\n")
    result = store.ingest([tmp_path / "blank.csv"], source="c", origin="real")
    assert counts(result) == (1, 1, 0, 0)
    assert store.sql("SELECT sample_id, text, n FROM samples").to_pylist() == [
        {"sample_id": "c/blank.csv:3", "text": "hello", "n": "1"}
    ]


# -- 4: odd columns -------------------------------------------------------------------------


def test_duplicate_column_names_reject_the_rows(store, tmp_path):
    (tmp_path / "dup.csv").write_text("text,a,a\nx,1,2\ny,3,4\n")
    pq.write_table(
        pa.Table.from_arrays(
            [pa.array(["p", "q", "r"]), pa.array([1, 2, 3]), pa.array([4, 5, 6])],
            names=["text", "b", "b"],
        ),
        tmp_path / "dup.parquet",
    )
    (tmp_path / "ok.csv").write_text("text\nfine\n")
    result = store.ingest(
        [tmp_path / "dup.csv", tmp_path / "dup.parquet", tmp_path / "ok.csv"],
        source="d",
        origin="real",
    )
    assert counts(result) == (6, 1, 0, 5)
    assert result.reject_codes == {"duplicate_column": 5}
    by_file = {(r["file"], r["code"], r["reason"]) for r in rejects_of(result)}
    assert by_file == {
        ("dup.csv", "duplicate_column", "input column `a` appears 2 times; give the columns distinct names"),
        ("dup.parquet", "duplicate_column", "input column `b` appears 2 times; give the columns distinct names"),
    }  # fmt: skip


@pytest.mark.parametrize(
    "text_type",
    [pa.string_view(), pa.large_string(), pa.dictionary(pa.int32(), pa.string())],
    ids=["string_view", "large_string", "dictionary"],
)
def test_text_columns_of_other_string_types_are_accepted(store, tmp_path, text_type):
    texts = pa.array(["alpha", "beta", "alpha"]).cast(text_type)
    pq.write_table(pa.table({"text": texts, "n": [1, 2, 3]}), tmp_path / "t.parquet")
    result = store.ingest([tmp_path / "t.parquet"], source="t", origin="real")
    assert counts(result) == (3, 3, 0, 0)
    assert store.sql("SELECT text, n FROM samples ORDER BY n").to_pylist() == [
        {"text": "alpha", "n": 1},
        {"text": "beta", "n": 2},
        {"text": "alpha", "n": 3},
    ]


def test_id_and_parent_id_columns_of_nested_types_are_wrong_type(store, tmp_path):
    pq.write_table(
        pa.table({"text": ["a", "b"], "key": [{"k": 1}, {"k": 2}], "up": [["x"], ["y"]]}),
        tmp_path / "n.parquet",
    )
    result = store.ingest(
        [tmp_path / "n.parquet"], source="n", origin="real", id_column="key", allow_empty=True
    )
    assert counts(result) == (2, 0, 0, 2)
    assert result.reject_codes == {"wrong_type": 2}
    assert rejects_of(result)[0]["reason"] == (
        "column `key` for --id-column has type struct<k: int64>; "
        "an id must be a string, a number or another single value"
    )
    result = store.ingest(
        [tmp_path / "n.parquet"], source="n", origin="real", parent_id_column="up", allow_empty=True
    )
    assert counts(result) == (2, 0, 0, 2)
    assert result.reject_codes == {"wrong_type": 2}


def test_chained_renames_apply_once_as_one_mapping_for_every_format(store, tmp_path, write_jsonl):
    renames = {"source": "src", "src": "src2"}
    write_jsonl("r/a.jsonl", [{"text": "j", "source": "from-source", "src": "from-src"}])
    (tmp_path / "r" / "b.csv").write_text("text,source,src\nc,from-source,from-src\n")
    pq.write_table(
        pa.table({"text": ["p"], "source": ["from-source"], "src": ["from-src"]}),
        tmp_path / "r" / "c.parquet",
    )
    result = store.ingest([tmp_path / "r"], source="r", origin="real", rename_columns=renames)
    assert counts(result) == (3, 3, 0, 0)
    assert store.sql("SELECT text, src, src2 FROM samples ORDER BY sample_id").to_pylist() == [
        {"text": "j", "src": "from-source", "src2": "from-src"},
        {"text": "c", "src": "from-source", "src2": "from-src"},
        {"text": "p", "src": "from-source", "src2": "from-src"},
    ]


# -- 6: timestamps --------------------------------------------------------------------------


def test_parse_timestamp_prefers_iso_8601_over_unix_seconds():
    june = datetime(2021, 6, 1, tzinfo=UTC)
    assert parse_timestamp("20210601") == june
    assert parse_timestamp("2021-06-01") == june
    assert parse_timestamp("1622505600") == june
    assert parse_timestamp("1622505600.5") == datetime(2021, 6, 1, 0, 0, 0, 500000, tzinfo=UTC)
    assert parse_timestamp(1622505600) == june
    assert parse_timestamp(20210601) == datetime(1970, 8, 22, 22, 3, 21, tzinfo=UTC)
    with pytest.raises(ValueError, match="is not an ISO 8601 date or time"):
        parse_timestamp("12345678")  # not a date, and too short for Unix seconds


def test_collected_at_column_with_basic_iso_dates(store, write_jsonl):
    path = write_jsonl(
        "d.jsonl", [{"text": "a", "when": "20210601"}, {"text": "b", "when": "1622505600"}]
    )
    result = store.ingest([path], source="d", origin="real", collected_at_column="when")
    assert counts(result) == (2, 2, 0, 0)
    assert (
        store.sql("SELECT collected_at FROM samples ORDER BY sample_id").column(0).to_pylist()
        == [datetime(2021, 6, 1, tzinfo=UTC)] * 2
    )


# -- 7: the other kind's content column ------------------------------------------------------


def test_a_column_named_like_the_other_content_kind_is_rejected_in_a_store(
    store, tmp_path, write_jsonl
):
    path = write_jsonl("t/a.jsonl", [{"text": "a", "image": "not really"}, {"text": "b"}])
    write_jsonl("t/b.jsonl", [{"text": "c"}])
    result = store.ingest([tmp_path / "t"], source="t", origin="real")
    assert counts(result) == (3, 1, 0, 2)
    reject = rejects_of(result)[0]
    assert result.reject_codes == {"reserved_column": 2}
    assert (reject["file"], reject["line"], reject["code"], reject["reason"]) == (
        "a.jsonl",
        1,
        "reserved_column",
        "input column `image` has the name of the content column of image samples, which a "
        "text run must not store; map it away with --rename-column image=NEW_NAME",
    )
    pq.write_table(pa.table({"img": [png_bytes()], "text": ["a caption"]}), tmp_path / "i.parquet")
    result = store.ingest(
        [tmp_path / "i.parquet"], source="i", origin="real", image_column="img", allow_empty=True
    )
    assert counts(result) == (1, 0, 0, 1)
    assert rejects_of(result)[0]["reason"] == (
        "input column `text` has the name of the content column of text samples, which a "
        "image run must not store; map it away with --rename-column text=NEW_NAME"
    )
    result = store.ingest(
        [tmp_path / "i.parquet"],
        source="i",
        origin="real",
        image_column="img",
        rename_columns={"text": "caption"},
    )
    assert counts(result) == (1, 1, 0, 0)
    # tag keeps the input's columns as they are: no clash there
    tagged = curator.tag([path], tmp_path / "out", source="t", origin="real")
    assert (tagged.rows_read, tagged.written, tagged.rejected) == (2, 2, 0)


# -- 8: WebDataset ----------------------------------------------------------------------------


def test_webdataset_members_of_one_sample_need_not_be_adjacent(store, tmp_path):
    _tar(
        tmp_path / "w.tar",
        [
            ("k.txt", b"caption of k"),
            ("j.jpg", png_bytes((9, 9, 9), fmt="JPEG")),
            ("k.png", png_bytes((1, 2, 3))),
            ("j.txt", b"caption of j"),
        ],
    )
    result = store.ingest([tmp_path / "w.tar"], source="w", origin="unknown")
    assert counts(result) == (2, 2, 0, 0)
    assert store.sql("SELECT sample_id, path, txt FROM samples ORDER BY 1").to_pylist() == [
        {"sample_id": "w/w.tar/j", "path": "j.jpg", "txt": "caption of j"},
        {"sample_id": "w/w.tar/k", "path": "k.png", "txt": "caption of k"},
    ]


def test_webdataset_sidecars_named_like_reserved_columns_are_kept_renamed(store, tmp_path):
    _tar(
        tmp_path / "w.tar",
        [
            ("a.png", png_bytes((1, 2, 3))),
            ("a.source", b"laion"),
            ("a.model", b"sd-1.5"),
            ("a.width", b"640"),
            ("a.txt", b"plain caption"),
            ("b.png", png_bytes((4, 5, 6))),
        ],
    )
    result = store.ingest([tmp_path / "w.tar"], source="w", origin="unknown")
    assert counts(result) == (2, 2, 0, 0)
    rows = store.sql(
        "SELECT sample_id, source, model, width, source_sidecar, model_sidecar, width_sidecar, txt "
        "FROM samples ORDER BY 1"
    ).to_pylist()
    assert rows == [
        {
            "sample_id": "w/w.tar/a",
            "source": "w",
            "model": None,
            "width": 16,
            "source_sidecar": "laion",
            "model_sidecar": "sd-1.5",
            "width_sidecar": "640",
            "txt": "plain caption",
        },
        {
            "sample_id": "w/w.tar/b",
            "source": "w",
            "model": None,
            "width": 16,
            "source_sidecar": None,
            "model_sidecar": None,
            "width_sidecar": None,
            "txt": None,
        },
    ]


# -- 9: images ----------------------------------------------------------------------------------


def test_max_image_pixels_above_pillows_own_limit(store, tmp_path, monkeypatch):
    from PIL import Image

    # Pillow refuses images over twice its global limit; ours is the one that counts.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1_000)
    (tmp_path / "big.png").write_bytes(png_bytes(size=(100, 100)))
    result = store.ingest(
        [tmp_path / "big.png"], source="i", origin="real", max_image_pixels=20_000
    )
    assert counts(result) == (1, 1, 0, 0)
    assert Image.MAX_IMAGE_PIXELS == 1_000  # restored


def _png(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_16_bit_images_are_hashed_without_clipping(store, tmp_path):
    from PIL import Image

    (tmp_path / "i").mkdir()
    (tmp_path / "i" / "a.png").write_bytes(_png(Image.new("I;16", (8, 8), 1000)))
    (tmp_path / "i" / "b.png").write_bytes(_png(Image.new("I;16", (8, 8), 2000)))
    (tmp_path / "i" / "c.png").write_bytes(_png(Image.new("RGB", (8, 8), (1, 2, 3))))
    result = store.ingest([tmp_path / "i"], source="i", origin="real")
    assert counts(result) == (3, 3, 0, 0)
    hashes = {
        r["path"]: r["content_hash"]
        for r in store.sql("SELECT path, content_hash FROM samples").to_pylist()
    }
    assert hashes["a.png"] != hashes["b.png"]
    with Image.open(tmp_path / "i" / "a.png") as a:
        expected = xxhash.xxh3_128()
        expected.update(f"{a.mode}:8x8:".encode())
        expected.update(a.tobytes())
    assert hashes["a.png"] == expected.hexdigest()
    # an 8-bit image still hashes on its RGBA pixels
    rgba = Image.new("RGBA", (8, 8), (1, 2, 3, 255)).tobytes()
    assert hashes["c.png"] == image_pixels_hash((8, 8, rgba))


def test_every_frame_of_an_animated_image_is_hashed(store, tmp_path):
    from PIL import Image

    def animated(second: tuple[int, int, int]) -> bytes:
        frames = [Image.new("RGB", (8, 8), (10, 20, 30)), Image.new("RGB", (8, 8), second)]
        buffer = io.BytesIO()
        frames[0].save(buffer, format="PNG", save_all=True, append_images=frames[1:])
        return buffer.getvalue()

    (tmp_path / "i").mkdir()
    (tmp_path / "i" / "a.png").write_bytes(animated((200, 0, 0)))
    (tmp_path / "i" / "b.png").write_bytes(animated((0, 200, 0)))
    result = store.ingest([tmp_path / "i"], source="i", origin="real")
    assert counts(result) == (2, 2, 0, 0)
    hashes = store.sql("SELECT DISTINCT content_hash FROM samples").num_rows
    assert hashes == 2


# -- 10: tag keeps each file's own column order ------------------------------------------------


def test_tag_keeps_each_files_own_column_order(tmp_path, write_jsonl):
    write_jsonl("in/a.jsonl", [{"text": "a", "x": 1, "y": 2}])
    write_jsonl("in/b.jsonl", [{"y": 3, "x": 4, "text": "b"}])
    result = curator.tag([tmp_path / "in"], tmp_path / "out", source="t", origin="real")
    assert (result.rows_read, result.written, result.rejected) == (2, 2, 0)
    orders = [pq.read_schema(path).names for path in result.files]
    assert orders == [
        ["text", "x", "y", *PROVENANCE_NAMES],
        ["y", "x", "text", *PROVENANCE_NAMES],
    ]
