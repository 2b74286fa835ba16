"""Token counts: `--tokenizer` on ingest and tag, `curator tokens`, tokens targets and the
manifest's `token_counts`, with a real tokenizer trained here on the test's own texts."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import jsonschema
import pyarrow.parquet as pq
import pytest
from tokenizers import Tokenizer, models, pre_tokenizers, processors, trainers

import curator
from curator.assembly.manifest import manifest_json_schema
from curator.assembly.policy import Policy
from curator.assembly.pools import MissingTokenCounts
from curator.cli import cli
from curator.core.tokenizer import TokenizerError
from curator.tokens import TokensError

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "a",
    "lazy",
    "dog",
    "while",
    "seven",
    "red",
    "birds",
    "sing",
    "softly",
    "at",
    "dawn",
]


def texts(count: int, offset: int = 0) -> list[str]:
    """Texts of 1 to 40 words, some with words the tokenizer never saw (they become [UNK])."""
    out = []
    for i in range(offset, offset + count):
        words = [WORDS[(i * 7 + j * 3) % len(WORDS)] for j in range(1 + (i * 13) % 40)]
        if i % 5 == 0:
            words.append(f"unseen{i}")
        out.append(" ".join(words) + ("." if i % 3 else "!"))
    return out


@pytest.fixture
def tokenizer_path(tmp_path: Path) -> Path:
    """A WordLevel tokenizer trained on the test texts, saved as tokenizer.json; its post-
    processor adds `</s>`, so counts with special tokens would be one more."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(
        [" ".join(WORDS), *texts(50)],
        trainers.WordLevelTrainer(special_tokens=["[UNK]", "</s>"]),
    )
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", tokenizer.token_to_id("</s>"))]
    )
    path = tmp_path / "tok" / "tokenizer.json"
    path.parent.mkdir()
    tokenizer.save(str(path))
    return path


def expected(tokenizer_path: Path, text: str) -> int:
    tokenizer = Tokenizer.from_file(str(tokenizer_path))
    assert (
        len(tokenizer.encode(text).ids)
        == len(tokenizer.encode(text, add_special_tokens=False).ids) + 1
    )
    return len(tokenizer.encode(text, add_special_tokens=False).ids)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def counts_by_text(store: curator.Store) -> dict[str, int | None]:
    return {
        r["text"]: r["n_tokens"]
        for r in store.sql("SELECT text, n_tokens FROM samples").to_pylist()
    }


def test_ingest_with_a_tokenizer_counts_every_row_without_special_tokens(
    store, write_jsonl, tokenizer_path
):
    records = texts(60)
    path = write_jsonl("a.jsonl", [{"text": t} for t in records])
    result = store.ingest([path], source="web", origin="real", tokenizer=tokenizer_path)
    assert result.ingested == 60
    counts = counts_by_text(store)
    assert counts == {t: expected(tokenizer_path, t) for t in records}
    (shard,) = store.live_shards()
    parquet = pq.ParquetFile(Path(store.root) / shard["path"])
    assert parquet.schema_arrow.field("n_tokens").type == "int32"
    footer = json.loads(parquet.schema_arrow.metadata[b"curator.tokenizer"])
    assert footer == {
        "path": str(tokenizer_path.resolve()),
        "sha256": sha256(tokenizer_path),
        "vocab_size": Tokenizer.from_file(str(tokenizer_path)).get_vocab_size(),
    }
    recorded = store.sql("SELECT shard_id, path, sha256, vocab_size FROM tokenizers").to_pylist()
    assert recorded == [{"shard_id": shard["path"].rsplit("/", 1)[1][: -len(".parquet")], **footer}]
    run_args = json.loads(store.sql("SELECT args FROM runs").to_pylist()[0]["args"])
    assert run_args["tokenizer"] == footer
    assert result.tokens == sum(counts.values()) and result.tokenizer == footer


def test_cli_ingest_and_tag_with_a_tokenizer(runner, tmp_path, write_jsonl, tokenizer_path):
    records = texts(30, offset=100)
    path = write_jsonl("b.jsonl", [{"body": t, "n": i} for i, t in enumerate(records)])
    store_dir = tmp_path / "store"
    curator.init_store(store_dir)
    done = runner.invoke(
        cli,
        ["ingest", str(path), "--store", str(store_dir), "--source", "web", "--origin", "real",
         "--text-column", "body", "--tokenizer", str(tokenizer_path.parent)],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    store = curator.open_store(store_dir)
    assert counts_by_text(store) == {t: expected(tokenizer_path, t) for t in records}
    total = sum(expected(tokenizer_path, t) for t in records)
    assert (
        f"  tokens     {total:>12,}   counted by {tokenizer_path.resolve()}\n"
        f"             sha256 {sha256(tokenizer_path)}, vocabulary "
        f"{Tokenizer.from_file(str(tokenizer_path)).get_vocab_size():,}\n"
    ) in done.output

    done = runner.invoke(
        cli,
        ["tag", str(path), "--out", str(tmp_path / "tagged"), "--source", "web", "--origin",
         "real", "--text-column", "body", "--tokenizer", str(tokenizer_path)],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    (tagged,) = (tmp_path / "tagged").glob("*.parquet")
    table = pq.read_table(tagged)
    assert table.schema.names[-1] == "n_tokens"
    assert table["n_tokens"].to_pylist() == [expected(tokenizer_path, t) for t in records]
    footer = json.loads(table.schema.metadata[b"curator.tokenizer"])
    assert footer["sha256"] == sha256(tokenizer_path)
    assert done.output.endswith(
        f"tokens {total:,} counted by {tokenizer_path.resolve()} (sha256 "
        f"{sha256(tokenizer_path)}, vocabulary {footer['vocab_size']:,})\n"
    )


def test_an_input_column_named_n_tokens_clashes_with_the_tokenizer(
    store, write_jsonl, tokenizer_path
):
    path = write_jsonl("c.jsonl", [{"text": "a b", "n_tokens": 2}])
    with pytest.raises(curator.CuratorError) as info:
        store.ingest([path], source="web", origin="real", tokenizer=tokenizer_path)
    assert str(info.value) == (
        "input column `n_tokens` clashes with the token counts `--tokenizer` adds\n"
        "Hint: map it away with --rename-column n_tokens=NEW_NAME "
        "(Python: `rename_columns={'n_tokens': ...}`), or drop --tokenizer"
    )
    assert store.sql("SELECT count(*) AS n FROM samples").to_pylist() == [{"n": 0}]


def test_counts_into_a_store_whose_n_tokens_is_text_are_still_totalled(
    store, write_jsonl, tokenizer_path
):
    """A store that took a user's `n_tokens` as text keeps that type: the counts of a later
    `--tokenizer` ingest are written as text, and the summary's total still adds them up."""
    store.ingest(
        [write_jsonl("u.jsonl", [{"text": "a b", "n_tokens": "many"}])], source="u", origin="real"
    )
    records = texts(5, offset=900)
    path = write_jsonl("v.jsonl", [{"text": t} for t in records])
    result = store.ingest([path], source="v", origin="real", tokenizer=tokenizer_path)
    assert result.tokens == sum(expected(tokenizer_path, t) for t in records)


def _ingest_two_sources(store, write_jsonl) -> dict[str, list[str]]:
    web, gen = texts(40), texts(25, offset=500)
    store.ingest(
        [write_jsonl("web.jsonl", [{"text": t} for t in web])], source="web", origin="real"
    )
    store.ingest(
        [write_jsonl("gen.jsonl", [{"text": t} for t in gen])],
        source="gen", origin="synthetic", generation=1, model="m1",
    )  # fmt: skip
    return {"web": web, "gen": gen}


def test_tokens_adds_counts_to_a_store_and_switches_shards_atomically(
    store, write_jsonl, tokenizer_path, runner
):
    by_source = _ingest_two_sources(store, write_jsonl)
    before = store.sql(
        "SELECT sample_id, content_hash, origin, source FROM samples ORDER BY 1"
    ).to_pylist()
    old_shards = [s["path"] for s in store.live_shards()]
    result = store.tokens(tokenizer_path)
    want = {t: expected(tokenizer_path, t) for ts in by_source.values() for t in ts}
    assert counts_by_text(store) == want
    assert (result.shards, result.shards_rewritten, result.samples) == (2, 2, 65)
    assert result.tokens == sum(want.values())
    assert result.by_source == {
        name: {"samples": len(ts), "tokens": sum(want[t] for t in ts)}
        for name, ts in by_source.items()
    }
    after = store.sql(
        "SELECT sample_id, content_hash, origin, source FROM samples ORDER BY 1"
    ).to_pylist()
    assert after == before
    new_shards = [s["path"] for s in store.live_shards()]
    assert not set(new_shards) & set(old_shards)
    assert all((Path(store.root) / p).exists() for p in old_shards)  # kept, no longer live
    assert store.sql("SELECT count(*) AS n FROM shards WHERE NOT live").to_pylist() == [{"n": 2}]
    assert (
        sorted(r["sha256"] for r in store.sql("SELECT sha256 FROM tokenizers").to_pylist())
        == [sha256(tokenizer_path)] * 2
    )
    # the same tokenizer again: nothing to do
    again = runner.invoke(
        cli, ["tokens", "--tokenizer", str(tokenizer_path), "--store", store.root]
    )
    assert again.exit_code == 0, again.output
    assert "0 shards rewritten, 2 already counted, 0 shards of images" in again.output
    assert [s["path"] for s in store.live_shards()] == new_shards


def test_tokens_source_limits_the_shards_counted(store, write_jsonl, tokenizer_path, runner):
    by_source = _ingest_two_sources(store, write_jsonl)
    done = runner.invoke(
        cli,
        ["tokens", "--tokenizer", str(tokenizer_path), "--source", "gen", "--store", store.root],
    )
    assert done.exit_code == 0, done.output
    total = sum(expected(tokenizer_path, t) for t in by_source["gen"])
    assert done.output.splitlines()[0].endswith(
        f"25 samples, {total:,} tokens counted (source gen)"
    )
    rows = store.sql("SELECT source, text, n_tokens FROM samples").to_pylist()
    assert {r["text"]: r["n_tokens"] for r in rows if r["source"] == "gen"} == {
        t: expected(tokenizer_path, t) for t in by_source["gen"]
    }
    assert {r["n_tokens"] for r in rows if r["source"] == "web"} == {None}
    # a tokens target now names the source that lacks counts, and the command that adds them
    with pytest.raises(MissingTokenCounts) as info:
        store.plan(Policy.from_dict({"target": {"tokens": 100}}))
    assert str(info.value) == (
        "`target.tokens` counts `n_tokens`, which 40 samples have no value for; by source: `web` (40)\n"
        "Hint: add them with `curator tokens --tokenizer PATH --source web` "
        '(Python: `store.tokens(PATH, source="web")`)'
    )


def test_a_tokens_target_counts_n_tokens_and_the_manifest_names_the_tokenizer(
    store, write_jsonl, tokenizer_path, tmp_path
):
    by_source = _ingest_two_sources(store, write_jsonl)
    store.tokens(tokenizer_path)
    policy = Policy.from_dict(
        {"target": {"tokens": 300}, "constraints": {"min_real_fraction": 0.5}, "seed": 3}
    )
    assert policy.target.token_column == "n_tokens"
    manifest = store.assemble(policy, tmp_path / "set")
    overall = manifest.data["composition"]["overall"]
    table = pq.read_table(manifest.output_paths(), columns=["n_tokens", "origin"])
    assert overall["units"] == sum(table["n_tokens"].to_pylist())
    assert (
        300
        <= overall["units"]
        <= 300 + max(expected(tokenizer_path, t) for ts in by_source.values() for t in ts)
    )
    assert manifest.data["plan"]["unit"] == "tokens"
    assert manifest.data["token_counts"] == {
        "column": "n_tokens",
        "tokenizers": [
            {
                "path": str(tokenizer_path.resolve()),
                "sha256": sha256(tokenizer_path),
                "vocab_size": Tokenizer.from_file(str(tokenizer_path)).get_vocab_size(),
            }
        ],
    }
    jsonschema.validate(manifest.data, manifest_json_schema())
    # a rows target has no token_counts
    rows = store.assemble(Policy.from_dict({"target": {"rows": 5}}), tmp_path / "rows")
    assert "token_counts" not in rows.data


def _other_tokenizer(path: Path) -> Path:
    """A second WordLevel tokenizer, whitespace-split (so its counts differ), with `</s>`."""
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer.train_from_iterator(
        [" ".join(WORDS)], trainers.WordLevelTrainer(special_tokens=["[UNK]", "</s>"])
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(path))
    return path


def test_counts_from_two_tokenizers_or_arrays_by_a_third_are_refused(
    store, write_jsonl, tokenizer_path, tmp_path
):
    """Fractions in tokens add up `n_tokens`: counts of two tokenizers do not add up, and
    arrays encoded by another tokenizer than the one that counted would not hold the mix."""
    from curator.assembly.pools import MixedTokenizers

    _ingest_two_sources(store, write_jsonl)
    other = _other_tokenizer(tmp_path / "other" / "tokenizer.json")
    store.tokens(tokenizer_path, source="web")
    store.tokens(other, source="gen")
    policy = Policy.from_dict({"target": {"tokens": 100}})
    with pytest.raises(MixedTokenizers) as caught:
        store.plan(policy)
    first, second = sorted(
        [(sha256(tokenizer_path), tokenizer_path, "web"), (sha256(other), other, "gen")]
    )
    assert caught.value.message == (
        "`target.tokens` counts `n_tokens`, which 2 tokenizers counted: "
        f"`{first[1].resolve()}` (sha256 {first[0][:12]}…; `{first[2]}`); "
        f"`{second[1].resolve()}` (sha256 {second[0][:12]}…; `{second[2]}`); "
        "their tokens do not add up"
    )
    assert caught.value.hint.startswith("count every source with one tokenizer: `curator tokens")
    store.tokens(tokenizer_path)  # counts `gen` again, with the first tokenizer
    assert store.plan(policy).policy.target.amount == 100
    arrays = Policy.from_dict(
        {"target": {"tokens": 100}, "output": {"format": "tokens", "tokenizer": str(other)}}
    )
    with pytest.raises(MixedTokenizers) as caught:
        store.assemble(arrays, tmp_path / "set")
    assert caught.value.message.startswith(
        f"`output.tokenizer` `{other}` (sha256 {sha256(other)[:12]}…) is not the tokenizer "
        f"that counted `n_tokens`, `{tokenizer_path.resolve()}`"
    )
    assert not (tmp_path / "set").exists()


def test_images_counted_by_no_tokenizer_and_excluded_sources_do_not_mix(
    store, write_jsonl, tokenizer_path, tmp_path
):
    """Images ingested with a tokenizer carry its footer but no counts; `curator tokens` leaves
    them alone: they do not make a second tokenizer, nor does a source of weight 0."""
    from tests.conftest import png_bytes

    _ingest_two_sources(store, write_jsonl)
    images = tmp_path / "imgs"
    images.mkdir()
    for i in range(3):
        (images / f"{i}.png").write_bytes(png_bytes((i * 40, 10, 10)))
    other = _other_tokenizer(tmp_path / "other" / "tokenizer.json")
    store.ingest([images], source="pics", origin="real", tokenizer=other)
    store.tokens(tokenizer_path, source="web")
    store.tokens(other, source="gen")
    policy = {"target": {"tokens": 100}}
    with pytest.raises(curator.CuratorError):
        store.plan(Policy.from_dict(policy))  # web and gen: two tokenizers
    sources = [{"name": "gen", "weight": 0}, {"name": "web"}, {"name": "pics"}]
    planned = store.plan(Policy.from_dict({**policy, "sources": sources}))
    assert planned.policy.target.amount == 100
    manifest = store.assemble(Policy.from_dict({**policy, "sources": sources}), tmp_path / "set")
    assert [t["sha256"] for t in manifest.data["token_counts"]["tokenizers"]] == [
        sha256(tokenizer_path)
    ]


def test_a_user_token_column_records_no_tokenizer(store, write_jsonl, tmp_path):
    path = write_jsonl("d.jsonl", [{"text": t, "words": len(t.split())} for t in texts(30)])
    store.ingest([path], source="web", origin="real")
    policy = Policy.from_dict({"target": {"tokens": 50, "token_column": "words"}})
    manifest = store.assemble(policy, tmp_path / "set")
    assert manifest.data["token_counts"] == {"column": "words", "tokenizers": []}


def test_a_tokens_target_over_a_store_without_counts_names_curator_tokens(
    store, write_jsonl, runner, tmp_path
):
    _ingest_two_sources(store, write_jsonl)
    with pytest.raises(MissingTokenCounts) as info:
        store.plan(Policy.from_dict({"target": {"tokens": 100}}))
    message = (
        "`target.tokens` counts `n_tokens`, and no sample of the store has token counts "
        "(sources without them: `gen`, `web`)"
    )
    hint = (
        "add them with `curator tokens --tokenizer PATH` (Python: `store.tokens(PATH)`), or "
        "ingest with `--tokenizer PATH`; or name your own count column with `target.token_column`"
    )
    assert str(info.value) == f"{message}\nHint: {hint}"
    (tmp_path / "p.toml").write_text("[target]\ntokens = 100\n")
    done = runner.invoke(
        cli, ["assemble", "--policy", str(tmp_path / "p.toml"), "--out", str(tmp_path / "o"),
              "--store", store.root],
    )  # fmt: skip
    assert done.exit_code == 1
    assert f"Error: {message}\nHint: {hint}\n" in done.output


def test_bad_tokenizer_paths_and_files_give_exact_errors(store, write_jsonl, runner, tmp_path):
    path = write_jsonl("e.jsonl", [{"text": "a b c"}])
    store.ingest([path], source="web", origin="real")
    missing = tmp_path / "nope.json"
    hint = (
        "give the path of a Hugging Face `tokenizer.json` on this machine; curator never "
        "downloads tokenizers (save one with `tokenizer.save(path)` or "
        "`AutoTokenizer.from_pretrained(...).backend_tokenizer.save(path)`)"
    )
    with pytest.raises(TokenizerError) as info:
        store.tokens(missing)
    assert str(info.value) == f"tokenizer `{missing}` is not a file\nHint: {hint}"
    with pytest.raises(TokenizerError) as info:
        store.ingest([path], source="web2", origin="real", tokenizer=tmp_path)
    assert str(info.value) == (
        f"tokenizer `{tmp_path}` is not a file (the directory holds no `tokenizer.json`)\nHint: {hint}"
    )
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a tokenizer"}')
    done = runner.invoke(cli, ["tokens", "--tokenizer", str(bad), "--store", store.root])
    assert done.exit_code == 1
    lines = done.output.splitlines()
    assert lines[0].startswith(f"Error: tokenizer `{bad.resolve()}` could not be read: ")
    assert lines[-1] == "Hint: give a Hugging Face `tokenizer.json` (the fast-tokenizer format)"
    # nothing changed: the same shard is live
    assert store.sql("SELECT count(*) AS n FROM shards").to_pylist() == [{"n": 1}]


def test_tokens_for_an_unknown_source_lists_the_sources(store, write_jsonl, tokenizer_path):
    _ingest_two_sources(store, write_jsonl)
    with pytest.raises(TokensError) as info:
        store.tokens(tokenizer_path, source="wbe")
    assert str(info.value) == (
        f"`--source wbe`: the store `{store.root}` has no live shard of source `wbe`\n"
        "Hint: did you mean `web`? its sources: `gen`, `web`"
    )


def test_counts_follow_a_shard_that_infer_rewrites_and_a_new_tokenizer_recounts(
    store, write_jsonl, tokenizer_path, tmp_path
):
    import datetime

    records = texts(20, offset=900)
    path = write_jsonl("f.jsonl", [{"text": t} for t in records])
    store.ingest(
        [path], source="old", origin="unknown", collected_at=datetime.date(2020, 1, 1),
        tokenizer=tokenizer_path,
    )  # fmt: skip
    assert store.infer().relabelled == 20  # the time prior rewrites the shard
    (shard,) = store.live_shards()
    assert "~" in shard["path"]
    assert counts_by_text(store) == {t: expected(tokenizer_path, t) for t in records}
    live = store.sql(
        "SELECT t.sha256 FROM tokenizers t JOIN shards s USING (shard_id) WHERE s.live"
    ).to_pylist()
    assert live == [{"sha256": sha256(tokenizer_path)}]
    # another tokenizer (one word per text: whitespace split into a single-token vocabulary)
    other = Tokenizer(models.WordLevel({"[UNK]": 0}, unk_token="[UNK]"))
    other.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    other_path = tmp_path / "other.json"
    other.save(str(other_path))
    result = store.tokens(other_path)
    assert (result.shards_rewritten, result.shards_current) == (1, 0)
    assert counts_by_text(store) == {t: len(t.split()) for t in records}
    (shard,) = store.live_shards()
    footer = pq.read_schema(Path(store.root) / shard["path"]).metadata[b"curator.tokenizer"]
    assert json.loads(footer)["sha256"] == sha256(other_path)
