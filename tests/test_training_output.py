"""Trainer-ready output (issue 14, parts 2, 3 and 5): the set layout (`data/`, `tokens/`),
token arrays with their offsets and checksums, and sets that split evenly over ranks."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import datasets
import numpy as np
import polars as pl
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

import curator
from curator.assembly.manifest import Manifest
from curator.assembly.policy import Output, Policy, PolicyError
from curator.assembly.quotas import shard_sizes
from tests.conftest import png_bytes
from tests.test_assemble import make_store

EOS = "<|endoftext|>"
COUNTS = {("real", "web"): 60, ("synthetic", "gen"): 30, ("unknown", "crawl"): 10}
FLOOR = {"min_fresh_real_fraction": 0.5, "max_unknown_fraction": 0.1}


def corpus(store: curator.Store) -> list[str]:
    return [
        row["text"]
        for row in store.sql("SELECT text FROM samples WHERE text IS NOT NULL").to_pylist()
    ]


def bpe_tokenizer(path: Path, texts: list[str], special: list[str] | None = None) -> Path:
    """A byte-level BPE trained on `texts` (decodes back exactly), with `special` tokens."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=[EOS] if special is None else special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    tokenizer.save(str(path))
    return path


def wordlevel_tokenizer(path: Path, texts: list[str], size: int) -> Path:
    """A WordLevel tokenizer of `size` entries: the words of `texts`, `</s>`, `[UNK]`, and
    filler words."""
    words = sorted({word for text in texts for word in text.split()})
    vocab = {"[UNK]": 0, "</s>": 1, **{word: i + 2 for i, word in enumerate(words)}}
    for i in range(len(vocab), size):
        vocab[f"filler{i}"] = i
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.add_special_tokens(["</s>"])
    tokenizer.save(str(path))
    return path


def tokens_policy(tokenizer: Path, **output: Any) -> Policy:
    return Policy.from_dict(
        {
            "seed": 3,
            "target": {"rows": 60},
            "constraints": FLOOR,
            "output": {"format": "tokens", "tokenizer": str(tokenizer), "num_shards": 3, **output},
        }
    )


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_under(directory: Path) -> list[str]:
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


@pytest.fixture(scope="module")
def token_set(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A set of format tokens (3 shards, byte-level BPE with an end-of-text token)."""
    root = tmp_path_factory.mktemp("tokens")
    store = make_store(root, COUNTS)
    tokenizer_path = bpe_tokenizer(root / "tokenizer.json", corpus(store))
    manifest = store.assemble(tokens_policy(tokenizer_path), root / "out", lineage="t")
    return {
        "root": root,
        "out": root / "out",
        "store": store,
        "manifest": manifest,
        "tokenizer_path": tokenizer_path,
        "tokenizer": Tokenizer.from_file(str(tokenizer_path)),
    }


# -- layout ---------------------------------------------------------------------------------


def test_a_token_set_has_data_tokens_and_the_manifest(token_set):
    stems = [f"train-0000{n}-of-00003" for n in range(3)]
    assert files_under(token_set["out"]) == [
        *(f"data/{stem}.parquet" for stem in stems),
        "manifest.json",
        *(name for stem in stems for name in (f"tokens/{stem}.idx.npy", f"tokens/{stem}.npy")),
    ]
    manifest = token_set["manifest"]
    assert [o["path"] for o in manifest.outputs] == [f"data/{stem}.parquet" for stem in stems]
    assert [[a["path"] for a in o["arrays"]] for o in manifest.outputs] == [
        [f"tokens/{stem}.npy", f"tokens/{stem}.idx.npy"] for stem in stems
    ]
    assert [[a["kind"] for a in o["arrays"]] for o in manifest.outputs] == [["ids", "index"]] * 3
    # the manifest on disk is the one returned, valid against its schema
    assert Manifest.load(token_set["out"]).data == manifest.data


def test_datasets_loads_the_bare_directory_into_the_train_split(token_set, tmp_path):
    loaded = datasets.load_dataset(
        "parquet", data_dir=str(token_set["out"]), cache_dir=str(tmp_path / "hf")
    )
    assert list(loaded) == ["train"]
    expected = [
        row["sample_id"]
        for path in token_set["manifest"].output_paths()
        for row in pq.read_table(path, columns=["sample_id"]).to_pylist()
    ]
    assert loaded["train"].num_rows == 60
    assert sorted(loaded["train"]["sample_id"]) == sorted(expected)


def test_polars_scans_the_data_folder_or_a_glob_of_the_set(token_set):
    out = token_set["out"]
    by_folder = pl.scan_parquet(out / "data").select("sample_id").collect()
    by_glob = pl.scan_parquet(f"{out}/**/*.parquet").select("sample_id").collect()
    expected = [
        row["sample_id"]
        for path in token_set["manifest"].output_paths()
        for row in pq.read_table(path, columns=["sample_id"]).to_pylist()
    ]
    assert by_folder["sample_id"].to_list() == expected
    assert by_glob["sample_id"].to_list() == expected


def test_curator_load_dataset_reads_the_shards_of_a_token_set(token_set, tmp_path):
    loaded = curator.load_dataset(token_set["out"], cache_dir=tmp_path / "hf")
    assert loaded.num_rows == 60


# -- token arrays ---------------------------------------------------------------------------


def test_the_arrays_decode_back_to_each_shards_texts_in_order(token_set):
    tokenizer = token_set["tokenizer"]
    separator = tokenizer.token_to_id(EOS)
    out = token_set["out"]
    for output in token_set["manifest"].outputs:
        texts = pq.read_table(out / output["path"], columns=["text"])["text"].to_pylist()
        ids_entry, index_entry = output["arrays"]
        ids = np.load(out / ids_entry["path"], mmap_mode="r")
        offsets = np.load(out / index_entry["path"])
        assert ids.dtype == np.uint16 and offsets.dtype == np.int64
        assert len(offsets) == len(texts) + 1 == output["rows"] + 1
        assert offsets[0] == 0 and offsets[-1] == len(ids) == ids_entry["tokens"]
        expected = [
            [*tokenizer.encode(text, add_special_tokens=False).ids, separator] for text in texts
        ]
        assert np.diff(offsets).tolist() == [len(doc) for doc in expected]
        for i, text in enumerate(texts):
            document = ids[offsets[i] : offsets[i + 1]]
            assert document[-1] == separator
            assert tokenizer.decode(document[:-1].tolist()) == text
        assert ids.tolist() == [token for doc in expected for token in doc]


def test_the_manifest_lists_the_arrays_with_checksums_and_token_counts(token_set):
    manifest = token_set["manifest"]
    out = token_set["out"]
    for output in manifest.outputs:
        for array in output["arrays"]:
            assert array["sha256"] == sha256(out / array["path"])
            assert array["bytes"] == (out / array["path"]).stat().st_size
    assert manifest.verify() == []
    tokenizer = token_set["tokenizer"]
    tokens = manifest.data["tokens"]
    assert tokens["tokenizer"] == {
        "path": str(token_set["tokenizer_path"].resolve()),
        "sha256": sha256(token_set["tokenizer_path"]),
        "vocab_size": tokenizer.get_vocab_size(with_added_tokens=True),
    }
    assert tokens["separator_id"] == tokenizer.token_to_id(EOS)
    assert tokens["dtype"] == "uint16"
    assert tokens["counts_include_separators"] is True
    # counts by origin, generation and freshness from the shards' own rows
    expected: dict[str, dict[str, int]] = {"by_origin": {}, "by_generation": {}}
    for output in manifest.outputs:
        table = pq.read_table(out / output["path"], columns=["text", "origin", "generation"])
        for row in table.to_pylist():
            n = len(tokenizer.encode(row["text"], add_special_tokens=False).ids) + 1
            generation = {"real": "0", "unknown": "unknown"}.get(
                row["origin"], str(row["generation"])
            )
            for name, key in (("by_origin", row["origin"]), ("by_generation", generation)):
                expected[name][key] = expected[name].get(key, 0) + n
    assert tokens["by_origin"] == expected["by_origin"]
    assert tokens["by_generation"] == expected["by_generation"]
    assert set(tokens["by_freshness"]) == {"fresh_real", "not_real"}
    assert tokens["by_freshness"]["fresh_real"] == expected["by_origin"]["real"]
    total = sum(a["tokens"] for o in manifest.outputs for a in o["arrays"] if a["kind"] == "ids")
    for name in ("by_origin", "by_generation", "by_freshness"):
        assert sum(tokens[name].values()) == tokens["total"] == total


def test_a_tampered_or_missing_array_fails_verify(token_set, tmp_path):
    import shutil

    copy = Path(shutil.copytree(token_set["out"], tmp_path / "copy"))
    manifest = Manifest.load(copy)
    manifest = Manifest({**manifest.data, "out_dir": str(copy)}, copy / "manifest.json")
    ids_path = copy / "tokens" / "train-00001-of-00003.npy"
    data = bytearray(ids_path.read_bytes())
    data[-1] ^= 1  # same size, one id changed
    ids_path.write_bytes(bytes(data))
    (copy / "tokens" / "train-00002-of-00003.idx.npy").unlink()
    assert manifest.verify() == [
        f"changed: {ids_path} (sha256 differs)",
        f"missing: {copy / 'tokens' / 'train-00002-of-00003.idx.npy'}",
    ]


def test_a_vocabulary_over_65536_gives_uint32_and_a_configured_separator(tmp_path):
    store = make_store(tmp_path, COUNTS)
    tokenizer_path = wordlevel_tokenizer(tmp_path / "big.json", corpus(store), 70_000)
    manifest = store.assemble(
        tokens_policy(tokenizer_path, num_shards=2, separator="</s>"), tmp_path / "out"
    )
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    assert manifest.data["tokens"]["dtype"] == "uint32"
    assert manifest.data["tokens"]["tokenizer"]["vocab_size"] == 70_000
    assert manifest.data["tokens"]["separator_id"] == 1
    for output in manifest.outputs:
        texts = pq.read_table(tmp_path / "out" / output["path"])["text"].to_pylist()
        ids = np.load(tmp_path / "out" / output["arrays"][0]["path"])
        offsets = np.load(tmp_path / "out" / output["arrays"][1]["path"])
        assert ids.dtype == np.uint32
        decoded = [
            tokenizer.decode(ids[offsets[i] : offsets[i + 1] - 1].tolist())
            for i in range(len(texts))
        ]
        assert decoded == [" ".join(text.split()) for text in texts]
        assert ids[offsets[1:] - 1].tolist() == [1] * len(texts)


def test_a_separator_given_as_an_id(tmp_path):
    store = make_store(tmp_path, {("real", "web"): 20})
    tokenizer_path = bpe_tokenizer(tmp_path / "t.json", corpus(store), [EOS, "<sep>"])
    policy = Policy.from_dict(
        {
            "target": {"rows": 10},
            "output": {"format": "tokens", "tokenizer": str(tokenizer_path), "separator": 1},
        }
    )
    manifest = store.assemble(policy, tmp_path / "out")
    assert manifest.data["tokens"]["separator_id"] == 1
    offsets = np.load(tmp_path / "out" / manifest.outputs[0]["arrays"][1]["path"])
    ids = np.load(tmp_path / "out" / manifest.outputs[0]["arrays"][0]["path"])
    assert ids[offsets[1:] - 1].tolist() == [1] * 10


def test_the_same_store_and_policy_give_byte_identical_arrays(token_set, tmp_path):
    again = token_set["store"].assemble(
        tokens_policy(token_set["tokenizer_path"]), tmp_path / "again", lineage="other"
    )
    first = token_set["manifest"]
    assert [a["sha256"] for o in again.outputs for a in o["arrays"]] == [
        a["sha256"] for o in first.outputs for a in o["arrays"]
    ]


# -- errors ---------------------------------------------------------------------------------


def test_a_tokenizer_without_an_end_of_document_token_and_no_separator(tmp_path):
    store = make_store(tmp_path, {("real", "web"): 20})
    tokenizer_path = bpe_tokenizer(tmp_path / "t.json", corpus(store), [])
    with pytest.raises(PolicyError) as caught:
        store.assemble(tokens_policy(tokenizer_path, num_shards=1), tmp_path / "out")
    assert caught.value.message == (
        "`output.separator`: the tokenizer has no end-of-document token (tried <|endoftext|>, "
        "</s>, <eos>, <|end_of_text|>, [SEP], <|im_end|>)"
    )
    assert caught.value.hint == "set `separator` to the token (or token id) that ends each document"
    assert not (tmp_path / "out").exists()
    assert store.manifests() == []


def test_a_separator_that_is_not_a_token(tmp_path):
    store = make_store(tmp_path, {("real", "web"): 20})
    tokenizer_path = bpe_tokenizer(tmp_path / "t.json", corpus(store))
    with pytest.raises(PolicyError) as caught:
        store.assemble(tokens_policy(tokenizer_path, separator="<nope>"), tmp_path / "out")
    assert caught.value.message == (
        "`output.separator`: separator '<nope>' is not a token of this tokenizer"
    )


def test_a_missing_tokenizer_file(tmp_path):
    store = make_store(tmp_path, {("real", "web"): 20})
    with pytest.raises(PolicyError) as caught:
        store.assemble(tokens_policy(tmp_path / "none.json"), tmp_path / "out")
    assert (
        caught.value.message
        == f"`output.tokenizer`: tokenizer `{tmp_path / 'none.json'}` is not a file"
    )
    assert caught.value.hint.startswith("give the path of a Hugging Face `tokenizer.json`")


def test_policy_check_refuses_a_token_output_it_cannot_use(tmp_path, runner):
    """`curator policy check` loads the tokenizer and finds the separator, as assemble would,
    rather than calling a policy valid that assemble then refuses."""
    from tests.conftest import invoke

    policy = tmp_path / "p.toml"
    body = '[target]\nrows = 10\n\n[output]\nformat = "tokens"\ntokenizer = "{}"\n'
    policy.write_text(body.format(tmp_path / "none.json"))
    result = invoke(runner, "policy", "check", str(policy), env={"CURATOR_STORE": ""})
    assert result.exit_code == 1 and "valid policy" not in result.output
    assert result.output.startswith(
        f"Error: {policy}: `output.tokenizer`: tokenizer `{tmp_path / 'none.json'}` is not a file\n"
    )
    tokenizer_path = bpe_tokenizer(tmp_path / "t.json", ["a b c", "d e f"])
    policy.write_text(body.format(tokenizer_path) + 'separator = "<nope>"\n')
    result = invoke(runner, "policy", "check", str(policy), env={"CURATOR_STORE": ""})
    assert result.exit_code == 1
    assert result.output.startswith(
        f"Error: {policy}: `output.separator`: separator '<nope>' is not a token of this tokenizer\n"
    )
    policy.write_text(body.format(tokenizer_path))
    result = invoke(runner, "policy", "check", str(policy), env={"CURATOR_STORE": ""})
    assert result.exit_code == 0, result.output
    assert result.output == f"{policy}: valid policy (target 10 rows, seed 0)\n"


def test_a_tokenizer_path_in_a_policy_file_is_relative_to_the_file(tmp_path, monkeypatch):
    folder = tmp_path / "policies"
    folder.mkdir()
    bpe_tokenizer(folder / "t.json", ["a b c", "d e f"])
    (folder / "p.toml").write_text(
        '[target]\nrows = 10\n[output]\nformat = "tokens"\ntokenizer = "t.json"\n'
    )
    monkeypatch.chdir(tmp_path)  # not the policy's folder
    policy = Policy.from_toml("policies/p.toml")
    assert policy.output.tokenizer == str(folder / "t.json")
    (folder / "q.toml").write_text(
        '[target]\nrows = 10\n[output]\nformat = "tokens"\ntokenizer = "../none.json"\n'
    )
    with pytest.raises(PolicyError) as caught:
        from curator.assembly.tokens import token_output

        token_output(Policy.from_toml("policies/q.toml"))
    assert caught.value.message == (
        f"`output.tokenizer`: tokenizer `{folder / '..' / 'none.json'}` is not a file"
    )


def test_a_set_with_images_cannot_be_tokens(tmp_path):
    import pyarrow as pa

    store = make_store(tmp_path, {("real", "web"): 20})
    pq.write_table(
        pa.table({"img": [png_bytes((i, 10, 10)) for i in range(5)]}), tmp_path / "i.parquet"
    )
    store.ingest([tmp_path / "i.parquet"], source="img", origin="real", image_column="img")
    tokenizer_path = bpe_tokenizer(tmp_path / "t.json", corpus(store))
    policy = Policy.from_dict(
        {"target": {"rows": 25}, "output": {"format": "tokens", "tokenizer": str(tokenizer_path)}}
    )
    with pytest.raises(curator.assembly.assemble.AssemblyError) as caught:
        store.assemble(policy, tmp_path / "out")
    assert caught.value.message == (
        'the set holds images (column `image`), and `[output] format = "tokens"` encodes text '
        "only; nothing was written"
    )
    assert not (tmp_path / "out").exists()
    assert store.manifests() == []


@pytest.mark.parametrize(
    ("output", "message", "hint"),
    [
        (
            {"num_shards": 4, "shards_multiple_of": 2},
            "policy: `output.num_shards` and `output.shards_multiple_of` are both given",
            "use one: `num_shards` for an exact number of shards, `shards_multiple_of` for a "
            "multiple of the number of data-parallel ranks",
        ),
        (
            {"num_shards": 4, "shard_rows": 100},
            "policy: `output.num_shards` and `output.shard_rows` are both given",
            "use one: `num_shards` fixes the number of shards (their rows follow from the "
            "target), `shard_rows` their size",
        ),
        (
            {"format": "tokens"},
            'policy: `output.format` = "tokens" needs `output.tokenizer`',
            'give the path of a Hugging Face tokenizer.json, e.g. tokenizer = "tokenizer.json"',
        ),
        (
            {"tokenizer": "t.json"},
            'policy: `output.tokenizer` is given but `output.format` is "parquet"',
            'set `format = "tokens"` to write token arrays, or remove `tokenizer`',
        ),
        (
            {"format": "jsonl", "separator": 2},
            'policy: `output.separator` is given but `output.format` is "jsonl"',
            'set `format = "tokens"` to write token arrays, or remove `separator`',
        ),
        (
            {"num_shards": 0},
            "policy: `output.num_shards`: 0 is less than the minimum of 1",
            "use a larger value",
        ),
    ],
)
def test_output_keys_that_exclude_or_need_each_other(output, message, hint):
    with pytest.raises(PolicyError) as caught:
        Policy.from_dict({"target": {"rows": 10}, "output": output})
    assert (caught.value.message, caught.value.hint) == (message, hint)


def test_more_shards_than_rows_is_an_error(tmp_path):
    store = make_store(tmp_path, {("real", "web"): 20})
    for key in ("num_shards", "shards_multiple_of"):
        policy = Policy.from_dict({"target": {"rows": 5}, "output": {key: 6}})
        with pytest.raises(PolicyError) as caught:
            store.assemble(policy, tmp_path / "out")
        assert caught.value.message == (
            f"`output.{key}` = 6 is more than the set's 5 samples: a shard would be empty"
        )
        assert not (tmp_path / "out").exists()
    assert store.manifests() == []


# -- shards that split evenly over ranks ----------------------------------------------------


def test_shard_sizes():
    assert shard_sizes(10, Output(shard_rows=4)) == [4, 4, 2]
    assert shard_sizes(10, Output(num_shards=4)) == [3, 3, 2, 2]
    assert shard_sizes(10, Output(num_shards=10)) == [1] * 10
    # 100 rows of 30: 4 shards wanted, 6 the next multiple of 3
    assert shard_sizes(100, Output(shard_rows=30, shards_multiple_of=3)) == [17] * 4 + [16] * 2
    # never more shards than rows: the largest multiple that fits
    assert shard_sizes(7, Output(shard_rows=1, shards_multiple_of=3)) == [2, 1, 1, 1, 1, 1]
    assert shard_sizes(0, Output(num_shards=4)) == []


def _fresh_rows(out: Path, manifest: Manifest) -> list[tuple[int, int]]:
    """(rows, fresh real rows) of each shard, read from the files."""
    return [
        (
            o["rows"],
            pq.read_table(out / o["path"], columns=["origin"])["origin"].to_pylist().count("real"),
        )
        for o in manifest.outputs
    ]


def test_num_shards_gives_exactly_that_many_shards_each_meeting_the_floor(tmp_path):
    store = make_store(tmp_path, COUNTS)
    policy = Policy.from_dict(
        {"seed": 1, "target": {"rows": 50}, "constraints": FLOOR, "output": {"num_shards": 4}}
    )
    manifest = store.assemble(policy, tmp_path / "out")
    assert [o["path"] for o in manifest.outputs] == [
        f"data/train-0000{n}-of-00004.parquet" for n in range(4)
    ]
    shards = _fresh_rows(tmp_path / "out", manifest)
    assert [rows for rows, _ in shards] == [13, 13, 12, 12]
    # every shard holds the floor within one sample (the first set: all real rows are fresh)
    assert all(fresh >= FLOOR["min_fresh_real_fraction"] * rows - 1 for rows, fresh in shards)
    for shard in manifest.data["composition"]["shards"]:
        assert all(item["held"] for item in shard["constraints"]), shard["constraints"]


def test_num_shards_with_a_bytes_target(tmp_path):
    store = make_store(tmp_path, COUNTS, sizes="mixed", seed=2)
    policy = Policy.from_dict(
        {"seed": 1, "target": {"bytes": 8000}, "constraints": FLOOR, "output": {"num_shards": 4}}
    )
    manifest = store.assemble(policy, tmp_path / "out")
    assert len(manifest.outputs) == 4
    for shard in manifest.data["composition"]["shards"]:
        assert all(item["held"] for item in shard["constraints"]), shard["constraints"]


def test_shards_multiple_of_gives_a_multiple_each_meeting_the_floor(tmp_path):
    store = make_store(tmp_path, COUNTS)
    policy = Policy.from_dict(
        {
            "seed": 1,
            "target": {"rows": 90},
            "constraints": FLOOR,
            "output": {"shard_rows": 25, "shards_multiple_of": 3},
        }
    )
    manifest = store.assemble(policy, tmp_path / "out")
    shards = _fresh_rows(tmp_path / "out", manifest)
    assert [rows for rows, _ in shards] == [15] * 6  # 4 shards of 25 wanted, 6 = 2 x 3
    assert all(fresh >= FLOOR["min_fresh_real_fraction"] * rows - 1 for rows, fresh in shards)
    assert (
        json.loads((tmp_path / "out" / "manifest.json").read_text())["policy"]["output"][
            "shards_multiple_of"
        ]
        == 3
    )


# -- a killed assembly of token arrays --------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "remove"),
    [
        ("assemble-placing", False),  # recorded, the first file placed: the rest are placed
        ("assemble-committed", True),  # recorded, its files gone: rewritten from the selection
    ],
)
def test_a_killed_token_assembly_is_completed_byte_for_byte(tmp_path, point, remove):
    import shutil
    import signal

    from tests.test_store import run_cli

    store = make_store(tmp_path, COUNTS)
    tokenizer_path = bpe_tokenizer(tmp_path / "tokenizer.json", corpus(store))
    (tmp_path / "p.toml").write_text(
        "seed = 3\n[target]\nrows = 60\n[constraints]\nmin_fresh_real_fraction = 0.5\n"
        f'[output]\nformat = "tokens"\ntokenizer = "{tokenizer_path}"\nnum_shards = 3\n'
    )
    args = ["assemble", "--policy", str(tmp_path / "p.toml"), "--out", str(tmp_path / "out")]
    args += ["--lineage", "main", "--store", store.root]
    crashed = run_cli(*args, env={"CURATOR_CRASH_AT": point})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr
    if remove:
        (tmp,) = [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".tmp-")]
        shutil.rmtree(tmp)
        tmp.mkdir()
    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    how = "rewritten from the recorded selection" if remove else "in place"
    assert rerun.stdout.splitlines()[0].endswith(f"its files were {how}")
    manifest = Manifest.load(tmp_path / "out")
    reference = store.assemble(
        Policy.from_toml(tmp_path / "p.toml"), tmp_path / "ref", lineage="ref"
    )
    assert manifest.files() == reference.files()
    assert manifest.data["tokens"] == reference.data["tokens"]
    assert manifest.verify() == []
    assert files_under(tmp_path / "out") == files_under(tmp_path / "ref")


def test_a_tokens_target_written_as_tokens_meets_its_fractions_in_every_shard(tmp_path):
    """With a tokens target, shards are cut by the target's token column (`n_tokens`, without
    separators): each shard's arrays hold those tokens plus one separator per document."""
    import random

    rng = random.Random(4)
    texts = {
        (origin, source): [
            f"{origin} {source} document {i} " + " ".join(["lorem ipsum"] * rng.randint(0, 30))
            for i in range(n)
        ]
        for (origin, source), n in COUNTS.items()
    }
    tokenizer_path = bpe_tokenizer(
        tmp_path / "tokenizer.json", [t for group in texts.values() for t in group]
    )
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    store = curator.init_store(tmp_path / "store")
    for (origin, source), group in sorted(texts.items()):
        path = tmp_path / f"{source}.jsonl"
        path.write_text(
            "".join(
                json.dumps(
                    {"text": t, "n_tokens": len(tokenizer.encode(t, add_special_tokens=False).ids)}
                )
                + "\n"
                for t in group
            )
        )
        store.ingest(
            [path], source=source, origin=origin,
            generation=1 if origin == "synthetic" else None, jobs=1,
        )  # fmt: skip
    policy = Policy.from_dict(
        {
            "seed": 2,
            "target": {"tokens": 1500, "token_column": "n_tokens"},
            "constraints": FLOOR,
            "output": {"format": "tokens", "tokenizer": str(tokenizer_path), "num_shards": 4},
        }
    )
    manifest = store.assemble(policy, tmp_path / "out")
    assert len(manifest.outputs) == 4
    shards = manifest.data["composition"]["shards"]
    for shard, output in zip(shards, manifest.outputs, strict=True):
        assert all(item["held"] for item in shard["constraints"]), shard["constraints"]
        # the arrays: the shard's units (n_tokens) and one separator per document
        assert output["arrays"][0]["tokens"] == shard["units"] + output["rows"]
    tokens = manifest.data["tokens"]
    overall = manifest.data["composition"]["overall"]
    assert tokens["total"] == overall["units"] + overall["rows"]
    assert tokens["by_origin"] == {
        origin: counts["units"] + counts["rows"] for origin, counts in overall["by_origin"].items()
    }


def test_manifest_verify_on_the_command_line_counts_the_arrays(token_set, runner):
    from tests.conftest import invoke

    result = invoke(runner, "manifest", "verify", str(token_set["out"]))
    assert result.exit_code == 0, result.output
    assert result.output == (
        f"ok: 9 files of manifest {token_set['manifest'].manifest_id} match their checksums\n"
    )


def test_assemble_on_the_command_line_counts_shards_and_arrays_apart(token_set, runner):
    """The summary's file count agrees with `manifest verify`: 3 shards and 6 arrays."""
    from tests.conftest import invoke

    policy = token_set["root"] / "cli.toml"
    policy.write_text(
        "seed = 3\n[target]\nrows = 60\n[constraints]\nmin_fresh_real_fraction = 0.5\n"
        'max_unknown_fraction = 0.1\n[output]\nformat = "tokens"\n'
        f'tokenizer = "{token_set["tokenizer_path"]}"\nnum_shards = 3\n'
    )
    out = token_set["root"] / "cli-out"
    store = token_set["store"]
    result = invoke(
        runner, "assemble", "--policy", str(policy), "--out", str(out),
        "--lineage", "cli", "--store", store.root,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    (manifest,) = [m for m in store.manifests() if m["lineage"] == "cli"]
    assert result.output.startswith(
        f"manifest {manifest['manifest_id']} (cli #1): 60 rows, 60 rows in 3 shards "
        f"(+6 token arrays) in {out}\n"
    )


def test_a_token_set_assembled_to_a_prefix_uploads_and_verifies_its_arrays(tmp_path, s3_bucket):
    import s3fs

    store = make_store(tmp_path, COUNTS)
    tokenizer_path = bpe_tokenizer(tmp_path / "tokenizer.json", corpus(store))
    url = f"s3://{s3_bucket}/sets/tokens"
    manifest = store.assemble(tokens_policy(tokenizer_path), url, lineage="main")
    reference = store.assemble(tokens_policy(tokenizer_path), tmp_path / "ref", lineage="ref")
    fs = s3fs.S3FileSystem()
    fs.invalidate_cache()
    prefix = f"{s3_bucket}/sets/tokens"
    assert sorted(path[len(prefix) + 1 :] for path in fs.find(prefix)) == files_under(
        tmp_path / "ref"
    )
    assert manifest.files() == reference.files()
    assert manifest.verify() == []
    fs.rm(f"{prefix}/tokens/train-00000-of-00003.idx.npy")
    assert Manifest.load(url).verify() == [f"missing: {url}/tokens/train-00000-of-00003.idx.npy"]
