"""Every code block of docs/training.md runs against a set made here (issue 14.6).

The blocks of a section run in order in one namespace, in a directory holding the set
`train/gen-2` (with its token arrays) and the `tokenizer.json` that encoded them. A block that imports `torch` or
`transformers` runs only where those are installed (`pytest.importorskip`); the rest of its section
(the data side the training library would consume) runs everywhere.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curator.assembly.policy import Policy
from tests.test_loader import POLICY, make_store

DOC = Path(__file__).resolve().parent.parent / "docs" / "training.md"
#: Libraries a block may need that CI does not have.
OPTIONAL = ("torch", "transformers")


def sections() -> dict[str, list[tuple[int, str]]]:
    """The python blocks of each `##` section: (line number, code)."""
    found: dict[str, list[tuple[int, str]]] = {}
    title = ""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("## "):
            title = line[3:].strip()
        elif line.strip() == "```python":
            start = index + 1
            end = lines.index("```", start)
            found.setdefault(title, []).append((start + 1, "\n".join(lines[start:end]) + "\n"))
            index = end
        index += 1
    return found


def needs(code: str) -> list[str]:
    """The optional libraries a block imports."""
    modules = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            modules.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module.split(".")[0])
    return sorted(modules & set(OPTIONAL))


def run_section(title: str, *, optional: bool) -> dict[str, Any]:
    """Run the blocks of section `title` (with `optional`, also those needing torch or
    transformers, skipping the test where they are missing); the namespace they leave."""
    namespace: dict[str, Any] = {"__name__": "__training_docs__"}
    for line, code in sections()[title]:
        required = needs(code)
        if required and not optional:
            continue
        for module in required:
            pytest.importorskip(module)
        exec(compile(code, f"{DOC}:{line}", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The set `train/gen-2` (4 shards of 12 rows) assembled with `format = "tokens"` by a
    word-level `tokenizer.json` (with `</s>`) trained on the store's text: its rows, and each
    row's token ids followed by the separator."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    root = tmp_path_factory.mktemp("training-docs")
    store = make_store(root)
    tokenizer = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer.train_from_iterator(
        [row["text"] for row in store.sql("SELECT text FROM samples").to_pylist()],
        trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "</s>"]),
    )
    tokenizer.save(str(root / "tokenizer.json"))
    output = {**POLICY["output"], "format": "tokens", "tokenizer": str(root / "tokenizer.json")}
    manifest = store.assemble(
        Policy.from_dict({**POLICY, "output": output}), root / "train" / "gen-2", lineage="main"
    )
    rows = pa.concat_tables([pq.read_table(path) for path in manifest.output_paths()]).to_pylist()
    separator = tokenizer.token_to_id("</s>")
    documents = [[*tokenizer.encode(row["text"]).ids, separator] for row in rows]
    return {"root": root, "rows": rows, "tokenizer": tokenizer, "documents": documents}


@pytest.fixture
def in_workdir(
    workdir: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """Run in the work directory, with the datasets cache in this test's temp dir, as rank 1 of
    2 (what torchrun sets)."""
    import datasets.config

    monkeypatch.chdir(workdir["root"])
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf")
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    return workdir


def test_every_block_belongs_to_a_section_that_is_tested():
    blocks = sections()
    assert {title: len(found) for title, found in blocks.items()} == {
        "Loading a set": 2,
        "Into a Hugging Face `Trainer`": 2,
        "Into a PyTorch `DataLoader`, one rank of several": 3,
        "Token arrays through `numpy.memmap`": 2,
    }
    text = DOC.read_text(encoding="utf-8")
    assert len(re.findall(r"^```", text, flags=re.M)) == 2 * 9  # no block in another language
    # the blocks CI (without torch and transformers) skips:
    assert [
        (title, needs(code)) for title, found in blocks.items() for _, code in found if needs(code)
    ] == [
        ("Into a Hugging Face `Trainer`", ["transformers"]),
        ("Into a PyTorch `DataLoader`, one rank of several", ["torch"]),
        ("Token arrays through `numpy.memmap`", ["torch"]),
    ]


def test_loading_a_set(in_workdir, capsys):
    namespace = run_section("Loading a set", optional=True)
    assert namespace["train"].to_list() == in_workdir["rows"]
    # the bare directory: datasets reads the shards in manifest order, polars the data folder
    assert namespace["plain"].to_list() == in_workdir["rows"]
    assert namespace["real"]["sample_id"].to_list() == [
        row["sample_id"] for row in in_workdir["rows"] if row["origin"] == "real"
    ]
    assert capsys.readouterr().out.splitlines()[-1] == (
        "48 ['sample_id', 'content_hash', 'origin', 'generation']"
    )


def test_trainer_data_side(in_workdir):
    namespace = run_section("Into a Hugging Face `Trainer`", optional=False)
    train = namespace["train"]
    tokenizer = in_workdir["tokenizer"]
    assert train.column_names == ["origin", "input_ids"]
    assert train.to_list() == [
        {"origin": row["origin"], "input_ids": tokenizer.encode(row["text"]).ids}
        for row in in_workdir["rows"]
    ]


def test_trainer(in_workdir):
    pytest.importorskip("torch")
    namespace = run_section("Into a Hugging Face `Trainer`", optional=True)
    assert namespace["trainer"].state.global_step == 2


def rank_rows(rows: list[dict[str, Any]], rank: int) -> list[dict[str, Any]]:
    """The rows of output shards `rank` and `rank + 2` (12 rows each)."""
    return rows[rank * 12 : rank * 12 + 12] + rows[(rank + 2) * 12 : (rank + 2) * 12 + 12]


def test_dataloader_data_side(in_workdir):
    namespace = run_section("Into a PyTorch `DataLoader`, one rank of several", optional=False)
    mine = rank_rows(in_workdir["rows"], 1)
    assert (namespace["rank"], namespace["world_size"]) == (1, 2)
    assert list(namespace["part"]) == mine
    assert namespace["step"] == 9
    assert namespace["next_row"] == mine[10]


def test_dataloader_with_too_few_shards_for_the_ranks_stops(in_workdir, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(SystemExit, match=r"^4 shards do not divide among 3 ranks$"):
        run_section("Into a PyTorch `DataLoader`, one rank of several", optional=False)


def test_dataloader(in_workdir):
    namespace = run_section("Into a PyTorch `DataLoader`, one rank of several", optional=True)
    loader = namespace["loader"]
    texts = [text for batch in loader for text in batch["text"]]
    assert sorted(texts) == sorted(row["text"] for row in rank_rows(in_workdir["rows"], 1))


def test_memmap_data_side(in_workdir):
    namespace = run_section("Token arrays through `numpy.memmap`", optional=False)
    tokens, x, y = namespace["tokens"], namespace["x"], namespace["y"]
    assert isinstance(tokens, np.memmap) and tokens.dtype == np.uint16
    assert namespace["first_document"].tolist() == in_workdir["documents"][0]
    # the first shard's 12 documents, each ending with the separator, and their offsets
    first_shard = in_workdir["documents"][:12]
    assert tokens.tolist() == [token for document in first_shard for token in document]
    assert namespace["offsets"].tolist() == [0, *np.cumsum([len(d) for d in first_shard])]
    assert x.shape == y.shape == (8, 32) and x.dtype == np.int64
    assert (y[:, :-1] == x[:, 1:]).all()
    for row, start in zip(x, namespace["starts"], strict=True):
        assert row.tolist() == tokens[start : start + 32].tolist()


def test_memmap(in_workdir):
    namespace = run_section("Token arrays through `numpy.memmap`", optional=True)
    assert tuple(namespace["x"].shape) == (8, 32)
    assert str(namespace["x"].dtype) == "torch.int64"
