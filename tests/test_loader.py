"""`curator.load_dataset`: a set as a Hugging Face dataset, split by rank, resumed (issue 14.4)."""

from __future__ import annotations

import json
import shutil
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import datasets
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets.distributed import split_dataset_by_node

import curator
from curator.assembly.manifest import Manifest, ManifestError
from curator.assembly.policy import Policy
from tests.conftest import run_python

ROOT = Path(__file__).resolve().parent.parent

#: 4 output shards of 12 rows (`num_shards`, so that 2 ranks get whole shards), each with at
#: least 6 fresh real rows.
FLOOR = 0.5
POLICY = {
    "seed": 5,
    "target": {"rows": 48},
    "constraints": {"min_fresh_real_fraction": FLOOR, "max_unknown_fraction": 0.1},
    "output": {"num_shards": 4},
}
COLLECTED = date(2021, 3, 1)


def make_store(root: Path) -> curator.Store:
    """Real, synthetic and unknown text (distinct content); the real rows with a date."""
    store = curator.init_store(root / "store")
    for origin, source, rows in [
        ("real", "web", 50),
        ("synthetic", "gen", 40),
        ("unknown", "crawl", 10),
    ]:
        path = root / f"{source}.jsonl"
        path.write_text(
            "".join(json.dumps({"text": f"{origin} {source} row {i}"}) + "\n" for i in range(rows))
        )
        store.ingest(
            [path], source=source, origin=origin,
            generation=1 if origin == "synthetic" else None,
            collected_at=COLLECTED if origin == "real" else None, jobs=1,
        )  # fmt: skip
    return store


@pytest.fixture(scope="module")
def sets(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One store and the same selection assembled twice (two lineages, same policy and seed):
    as Parquet and as JSON Lines; the rows of the set, read with pyarrow; which are fresh real."""
    root = tmp_path_factory.mktemp("loader")
    store = make_store(root)
    manifests = {
        fmt: store.assemble(
            Policy.from_dict({**POLICY, "output": {**POLICY["output"], "format": fmt}}),
            root / fmt,
            lineage=fmt,
        )
        for fmt in ("parquet", "jsonl")
    }
    rows = pa.concat_tables(
        [pq.read_table(path) for path in manifests["parquet"].output_paths()]
    ).to_pylist()
    selection = pq.read_table(Path(store.root) / manifests["parquet"].data["selection"])
    fresh = {row["sample_id"] for row in selection.to_pylist() if row["category"] == "fresh_real"}
    return {"root": root, "manifests": manifests, "rows": rows, "fresh": fresh}


def test_the_set_is_what_the_test_expects(sets):
    manifest = sets["manifests"]["parquet"]
    assert [o["rows"] for o in manifest.outputs] == [12, 12, 12, 12]
    assert [o["rows"] for o in sets["manifests"]["jsonl"].outputs] == [12, 12, 12, 12]
    assert len(sets["rows"]) == 48
    assert (
        len(sets["fresh"])
        == manifest.data["composition"]["overall"]["by_freshness"]["fresh_real"]["rows"]
    )


# -- the whole set --------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
@pytest.mark.parametrize("given", ["dir", "manifest.json"])
def test_load_gives_the_set_row_for_row_in_manifest_order(sets, tmp_path, fmt, given):
    target = sets["root"] / fmt
    dataset = curator.load_dataset(
        target if given == "dir" else target / "manifest.json", cache_dir=tmp_path / "hf"
    )
    assert isinstance(dataset, datasets.Dataset)
    assert dataset.to_list() == sets["rows"]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_the_provenance_columns_keep_their_types(sets, tmp_path, fmt):
    dataset = curator.load_dataset(sets["root"] / fmt, cache_dir=tmp_path / "hf")
    features = dataset.features
    assert features["generation"] == datasets.Value("int16")
    assert features["origin_confidence"] == datasets.Value("float32")
    assert features["model"] == datasets.Value("string")
    assert features["collected_at"].dtype.startswith("timestamp[us, tz=")
    real = next(row for row in dataset if row["origin"] == "real")
    assert real["collected_at"] == datetime(2021, 3, 1, tzinfo=UTC)
    assert real["generation"] == 0


def test_columns_keeps_only_those(sets, tmp_path):
    for fmt in ("parquet", "jsonl"):
        for streaming in (False, True):
            dataset = curator.load_dataset(
                sets["root"] / fmt,
                columns=["sample_id", "text"],
                streaming=streaming,
                cache_dir=tmp_path / "hf",
            )
            assert dataset.column_names == ["sample_id", "text"]
            assert list(dataset) == [
                {"sample_id": row["sample_id"], "text": row["text"]} for row in sets["rows"]
            ]


def test_an_unknown_column_is_an_error_naming_it(sets, tmp_path):
    with pytest.raises(curator.InputError) as caught:
        curator.load_dataset(sets["root"] / "parquet", columns=["txt"], cache_dir=tmp_path)
    assert caught.value.message == (
        f"`columns`: the set of `{sets['root'] / 'parquet' / 'manifest.json'}` has no column `txt`"
    )
    assert caught.value.hint is not None and caught.value.hint.startswith(
        "choose from `sample_id`, `content_hash`, `origin`,"
    )


# -- streaming, ranks, resume ----------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_streaming_has_one_shard_per_output_shard_in_manifest_order(sets, tmp_path, fmt):
    stream = curator.load_dataset(sets["root"] / fmt, streaming=True, cache_dir=tmp_path / "hf")
    assert isinstance(stream, datasets.IterableDataset)
    assert stream.num_shards == len(sets["manifests"][fmt].outputs) == 4
    assert list(stream) == sets["rows"]


def shard_ids(sets: dict[str, Any], shard: int) -> list[str]:
    return [row["sample_id"] for row in sets["rows"][shard * 12 : (shard + 1) * 12]]


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_two_ranks_get_whole_shards_that_partition_the_set_each_with_the_floor(sets, tmp_path, fmt):
    stream = curator.load_dataset(sets["root"] / fmt, streaming=True, cache_dir=tmp_path / "hf")
    shards = sets["manifests"][fmt].data["composition"]["shards"]
    seen: list[list[str]] = []
    for rank in (0, 1):
        part = split_dataset_by_node(stream, rank=rank, world_size=2)
        assert part.num_shards == 2
        ids = [row["sample_id"] for row in part]
        # whole output shards, every other one, in manifest order
        assert ids == shard_ids(sets, rank) + shard_ids(sets, rank + 2)
        fresh = sum(sample_id in sets["fresh"] for sample_id in ids)
        promised = sum(s["by_freshness"]["fresh_real"]["rows"] for s in shards[rank::2])
        assert fresh == promised
        assert fresh >= FLOOR * len(ids)
        seen.append(ids)
    assert set(seen[0]).isdisjoint(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(row["sample_id"] for row in sets["rows"])


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
@pytest.mark.parametrize("rank", [None, 1])
@pytest.mark.parametrize("k", [0, 1, 11, 12, 17, 24])
def test_resuming_from_state_dict_continues_with_the_next_row(sets, tmp_path, fmt, rank, k):
    def open_stream() -> datasets.IterableDataset:
        stream = curator.load_dataset(
            sets["root"] / fmt, streaming=True, verify=False, cache_dir=tmp_path / "hf"
        )
        return stream if rank is None else split_dataset_by_node(stream, rank=rank, world_size=2)

    full = [row["sample_id"] for row in open_stream()]
    first = open_stream()
    rows = iter(first)
    before = [next(rows)["sample_id"] for _ in range(k)]
    state = first.state_dict()
    resumed = open_stream()
    resumed.load_state_dict(state)
    after = [row["sample_id"] for row in resumed]
    assert before == full[:k]
    assert after == full[k:]


# -- checks and errors ---------------------------------------------------------------------


def copy_set(sets: dict[str, Any], fmt: str, to: Path) -> Path:
    return Path(shutil.copytree(sets["root"] / fmt, to))


def test_a_copied_set_is_read_beside_its_manifest(sets, tmp_path):
    copy = copy_set(sets, "parquet", tmp_path / "moved")
    manifest = Manifest.load(copy)
    assert manifest.data["out_dir"] == str(sets["root"] / "parquet")  # where it was assembled
    assert manifest.out_dir == copy  # where it is
    assert manifest.output_paths() == [copy / o["path"] for o in manifest.outputs]
    dataset = curator.load_dataset(copy, streaming=True, cache_dir=tmp_path / "hf")
    assert list(dataset) == sets["rows"]


def test_verify_checks_the_set_it_is_given_not_where_it_was_assembled(sets, tmp_path, runner):
    """A copy with a shard removed fails `manifest verify`, though the original is intact; a
    copy whose original is gone passes; the store's copy of the manifest checks the original."""
    from tests.conftest import invoke

    copy = copy_set(sets, "parquet", tmp_path / "copy")
    gone = copy / "data" / "train-00001-of-00004.parquet"
    gone.unlink()
    assert Manifest.load(copy).verify() == [f"missing: {gone}"]
    result = invoke(runner, "manifest", "verify", str(copy))
    assert result.exit_code == 1
    assert f"missing: {gone}\n" in result.output
    whole = copy_set(sets, "jsonl", tmp_path / "whole")
    (whole / "manifest.json").write_text(  # as if its original were gone
        (whole / "manifest.json").read_text().replace(str(sets["root"]), str(tmp_path / "gone"))
    )
    assert Manifest.load(whole).out_dir == whole and Manifest.load(whole).verify() == []
    link = tmp_path / "current.json"
    link.symlink_to(whole / "manifest.json")
    assert Manifest.load(link).out_dir == whole and Manifest.load(link).verify() == []
    manifest = sets["manifests"]["parquet"]
    stored = Manifest.load(
        sets["root"] / "store" / "manifests" / manifest.manifest_id / "manifest.json"
    )
    assert stored.out_dir == sets["root"] / "parquet" and stored.verify() == []


def test_a_tampered_shard_fails_the_check_naming_it(sets, tmp_path):
    copy = copy_set(sets, "jsonl", tmp_path / "set")
    shard = copy / "data" / "train-00002-of-00004.jsonl"
    shard.write_bytes(shard.read_bytes().replace(b"row", b"r0w", 1))  # same size
    for streaming in (False, True):
        with pytest.raises(ManifestError) as caught:
            curator.load_dataset(copy, streaming=streaming, cache_dir=tmp_path / "hf")
        assert caught.value.message == (
            f"the set of `{copy / 'manifest.json'}` does not match its manifest: "
            f"changed: {shard} (sha256 differs)"
        )
        assert caught.value.hint == (
            "copy the set again from where it was assembled, or pass `verify=False` to load it "
            "as it is"
        )
    loaded = curator.load_dataset(copy, verify=False, cache_dir=tmp_path / "hf")
    assert sum("r0w" in row["text"] for row in loaded) == 1


def test_a_missing_shard_fails_the_check_naming_it(sets, tmp_path):
    copy = copy_set(sets, "parquet", tmp_path / "set")
    (copy / "data" / "train-00003-of-00004.parquet").unlink()
    with pytest.raises(ManifestError) as caught:
        curator.load_dataset(copy, cache_dir=tmp_path / "hf")
    assert caught.value.message == (
        f"the set of `{copy / 'manifest.json'}` does not match its manifest: "
        f"missing: {copy / 'data' / 'train-00003-of-00004.parquet'}"
    )


def test_a_set_of_other_files_is_an_error_pointing_to_numpy(sets, tmp_path):
    copy = copy_set(sets, "parquet", tmp_path / "set")
    manifest = Manifest.load(copy)
    for output in manifest.data["outputs"]:
        output["path"] = output["path"].replace(".parquet", ".npy")
    manifest.save(copy / "manifest.json")
    with pytest.raises(ManifestError) as caught:
        curator.load_dataset(copy, verify=False, cache_dir=tmp_path / "hf")
    assert caught.value.message == (
        f"the set of `{copy / 'manifest.json'}` has output files of type .npy: "
        "`curator.load_dataset` reads sets of Parquet or JSON Lines shards"
    )


def test_no_manifest_is_an_error(tmp_path):
    with pytest.raises(ManifestError, match="cannot read manifest"):
        curator.load_dataset(tmp_path)


def test_without_datasets_the_error_gives_the_install_line(sets, monkeypatch):
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if it were not installed
    with pytest.raises(curator.CuratorError) as caught:
        curator.load_dataset(sets["root"] / "parquet")
    assert caught.value.message == (
        "`curator.load_dataset` needs the Hugging Face `datasets` library, which is not installed"
    )
    assert caught.value.hint == "pip install 'curator[hf]'"


def test_load_dataset_is_exported_lazily():
    import curator.training

    assert curator.load_dataset is curator.training.load_dataset
    assert "load_dataset" in dir(curator) and "load_dataset" in curator.__all__
    code = "import sys, curator\nfrom curator.cli import cli\nprint('datasets' in sys.modules)\n"
    result = run_python(code)
    assert result.stdout.strip() == "False"


def test_a_set_on_object_storage_streams_from_its_url(sets, tmp_path, s3_bucket):
    store = curator.open_store(sets["root"] / "store")
    url = f"s3://{s3_bucket}/sets/gen-1"
    store.assemble(Policy.from_dict(POLICY), url, lineage="s3")  # the same selection
    stream = curator.load_dataset(url, streaming=True, cache_dir=tmp_path / "hf")
    assert stream.num_shards == 4
    assert list(stream) == sets["rows"]
    dataset = curator.load_dataset(f"{url}/manifest.json", cache_dir=tmp_path / "hf")
    assert dataset.to_list() == sets["rows"]


def test_a_manifest_prints_as_which_set_it_is(sets):
    manifest = curator.Manifest.load(sets["root"] / "parquet")
    assert repr(manifest) == (
        f"Manifest({manifest.manifest_id!r}, lineage='parquet' #1, rows=48, files=4, "
        f"out_dir={str(sets['root'] / 'parquet')!r})"
    )
