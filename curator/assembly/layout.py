"""The layout of an assembled set's directory: where its shards and token arrays go.

``OUT/manifest.json``, ``OUT/data/train-00000-of-00004.parquet`` … (the Hugging Face Hub's
shard names), and with ``[output] format = "tokens"`` ``OUT/tokens/<shard stem>.npy`` and
``OUT/tokens/<shard stem>.idx.npy``. Paths here are relative to ``OUT``, as the manifest lists
them.
"""

from __future__ import annotations

#: Where a set's shards go inside its directory: ``OUT/data/train-00000-of-00004.parquet``, the
#: Hugging Face Hub's naming, so ``datasets.load_dataset("parquet", data_dir=OUT)`` puts them in
#: the train split and ``manifest.json`` beside the folder is never read as data.
DATA_DIR = "data"
#: Where the token arrays of a set of format ``tokens`` go: ``OUT/tokens/<shard stem>.npy`` and
#: ``OUT/tokens/<shard stem>.idx.npy``.
TOKENS_DIR = "tokens"


def shard_stem(index: int, count: int) -> str:
    """The name of output shard `index` of `count`, without extension: ``train-00000-of-00004``."""
    return f"train-{index:05d}-of-{count:05d}"


def shard_path(index: int, count: int, extension: str) -> str:
    """Output shard `index` of `count`, relative to the set's directory (as the manifest lists
    it): ``data/train-00000-of-00004.parquet``."""
    return f"{DATA_DIR}/{shard_stem(index, count)}.{extension}"


def array_paths(stem: str) -> tuple[str, str]:
    """The token array and document offsets of the shard named `stem`, relative to the set's
    directory: ``tokens/<stem>.npy`` and ``tokens/<stem>.idx.npy``."""
    return f"{TOKENS_DIR}/{stem}.npy", f"{TOKENS_DIR}/{stem}.idx.npy"
