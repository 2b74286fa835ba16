"""Token arrays: a set of format ``tokens`` as the flat token-id arrays trainers memory-map.

Beside each Parquet shard ``data/<stem>.parquet`` the writer puts ``tokens/<stem>.npy``, the
shard's documents in row order encoded by the policy's tokenizer (no special tokens added), each
followed by the separator (the tokenizer's end-of-document token unless `[output] separator`
names another), as one flat array (``uint16`` when the vocabulary fits, else ``uint32``), and
``tokens/<stem>.idx.npy``, the ``int64`` offsets of the documents (``n_docs + 1`` of them:
document i is ``ids[off[i]:off[i + 1]]``, its separator the last token). The layout of
OLMo/Dolma- and nanoGPT-style loaders.

Encoding streams: a shard is encoded one record batch at a time and its ids appended to a raw
file, which becomes the ``.npy`` once its length is known, so memory holds one batch of ids.
The manifest lists both arrays of each shard with their checksums, and its top-level `tokens`
the tokenizer and the token counts (separators included) by origin, generation and freshness.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from curator.assembly.checks import AssemblyError
from curator.assembly.layout import array_paths
from curator.assembly.policy import PolicyError
from curator.core.tokenizer import TokenizerError, load_tokenizer, separator_id

if TYPE_CHECKING:
    import pyarrow as pa

    from curator.assembly.policy import Policy

#: Largest vocabulary whose ids fit in ``uint16``.
UINT16_VOCAB = 1 << 16
#: Documents encoded at once.
_ENCODE_BATCH_ROWS = 1024
#: The breakdowns of the manifest's `tokens`, keyed as in the set's composition.
BREAKDOWNS = ("by_origin", "by_generation", "by_freshness")


@dataclass(frozen=True)
class TokenOutput:
    """How a set's documents become token ids: the tokenizer file (absolute), its sha256 and
    vocabulary size, the separator id and the arrays' dtype."""

    tokenizer: str
    sha256: str
    vocab_size: int
    separator_id: int
    dtype: str

    def to_json(self) -> dict[str, Any]:
        """What the manifest's `tokens` records of it (without the counts)."""
        return {
            "tokenizer": {
                "path": self.tokenizer,
                "sha256": self.sha256,
                "vocab_size": self.vocab_size,
            },
            "separator_id": self.separator_id,
            "dtype": self.dtype,
            "counts_include_separators": True,
        }


def token_output(policy: Policy) -> TokenOutput | None:
    """The token output of `policy` (``None`` unless `[output] format = "tokens"`), its
    tokenizer loaded and its separator found, before anything is written.

    Raises:
        PolicyError: the tokenizer cannot be read, the separator is not one of its tokens, or
            no separator is configured and the tokenizer has no end-of-document token.
    """
    output = policy.output
    if output.format != "tokens" or output.tokenizer is None:
        return None
    try:
        tokenizer, info = load_tokenizer(output.tokenizer)
        separator = separator_id(tokenizer, output.separator, "`output.separator`")
    except TokenizerError as exc:
        message = exc.message
        if not message.startswith("`output."):
            message = f"`output.tokenizer`: {message}"
        raise PolicyError(message, exc.hint) from None
    dtype = "uint16" if info.vocab_size <= UINT16_VOCAB else "uint32"
    return TokenOutput(info.path, info.sha256, info.vocab_size, separator, dtype)


def write_token_arrays(
    table: pa.Table, categories: pa.ChunkedArray, set_dir: str, stem: str, spec: TokenOutput
) -> tuple[list[dict[str, Any]], dict[str, dict[str, int]]]:
    """Encode the documents of one shard (`table`, in row order; `categories` its rows' pools)
    and write its ``.npy`` and ``.idx.npy`` under `set_dir`. Returns the two array entries of
    the manifest (path, kind, bytes, sha256; the ids with their token count) and the shard's
    token counts by origin, generation and freshness (separators included).

    Raises:
        AssemblyError: a row without text (an image), or the tokenizer file changed since the
            assembly started.
    """
    import numpy as np

    from curator.store.shards import sha256_file

    tokenizer, info = load_tokenizer(spec.tokenizer)
    if info.sha256 != spec.sha256:
        raise AssemblyError(
            f"tokenizer `{spec.tokenizer}` changed while the set was written",
            "leave the tokenizer file alone during an assembly, then run the same command again",
        )
    ids_rel, index_rel = array_paths(stem)
    ids_path = os.path.join(set_dir, ids_rel)
    index_path = os.path.join(set_dir, index_rel)
    os.makedirs(os.path.dirname(ids_path), exist_ok=True)
    raw_path = ids_path + ".raw"
    dtype = np.dtype(spec.dtype)
    offsets = [np.zeros(1, dtype=np.int64)]
    counts: dict[str, dict[str, int]] = {name: {} for name in BREAKDOWNS}
    written = 0
    texts_all = table.column("text") if "text" in table.column_names else None
    if texts_all is None or texts_all.null_count:
        raise AssemblyError(
            f"output shard `{stem}` has rows without text (images): "
            '`[output] format = "tokens"` encodes text only',
            'assemble a set of text samples (e.g. from text sources only), or use `format = "parquet"`',
        )
    generations = table.column("generation").to_pylist()
    category_of = categories.to_pylist()
    with open(raw_path, "wb") as raw:
        for start in range(0, table.num_rows, _ENCODE_BATCH_ROWS):
            texts = texts_all.slice(start, _ENCODE_BATCH_ROWS).to_pylist()
            encodings = tokenizer.encode_batch(texts, add_special_tokens=False)
            lengths = np.fromiter((len(e.ids) + 1 for e in encodings), np.int64, len(encodings))
            ids = np.empty(int(lengths.sum()), dtype=dtype)
            ends = np.cumsum(lengths)
            for encoding, end, length in zip(encodings, ends, lengths, strict=True):
                ids[end - length : end - 1] = encoding.ids
                ids[end - 1] = spec.separator_id
            raw.write(ids.tobytes())
            offsets.append(written + ends)
            written += int(ends[-1]) if len(ends) else 0
            for row, length in enumerate(lengths.tolist(), start):
                for name, key in zip(
                    BREAKDOWNS, _keys(category_of[row], generations[row]), strict=True
                ):
                    counts[name][key] = counts[name].get(key, 0) + length
    with open(ids_path, "wb") as out, open(raw_path, "rb") as raw:
        np.lib.format.write_array_header_1_0(
            out, {"descr": dtype.str, "fortran_order": False, "shape": (written,)}
        )
        shutil.copyfileobj(raw, out, 1 << 20)
    os.remove(raw_path)
    np.save(index_path, np.concatenate(offsets))
    arrays = [
        {
            "path": ids_rel,
            "kind": "ids",
            "tokens": written,
            "bytes": os.path.getsize(ids_path),
            "sha256": sha256_file(ids_path),
        },
        {
            "path": index_rel,
            "kind": "index",
            "bytes": os.path.getsize(index_path),
            "sha256": sha256_file(index_path),
        },
    ]
    return arrays, counts


def _keys(category: str, generation: int | None) -> tuple[str, str, str]:
    """A row's keys by origin, generation and freshness, as in the set's composition
    (:data:`curator.assembly.checks._BREAKDOWNS`)."""
    real = category in ("fresh_real", "used_real")
    origin = "real" if real else category
    if real:
        by_generation = "0"
    elif category == "synthetic":
        by_generation = str(generation)
    else:
        by_generation = "unknown"
    return origin, by_generation, category if real else "not_real"


def tokens_manifest(
    spec: TokenOutput | None, outputs: list[dict[str, Any]]
) -> dict[str, Any] | None:
    """The manifest's top-level `tokens`: `spec` and the counts of every shard summed (each
    shard's counts are taken out of its output entry, where the writer left them)."""
    if spec is None:
        for output in outputs:
            output.pop("token_counts", None)
        return None
    totals: dict[str, dict[str, int]] = {name: {} for name in BREAKDOWNS}
    for output in outputs:
        for name, counts in output.pop("token_counts").items():
            for key, n in counts.items():
                totals[name][key] = totals[name].get(key, 0) + n
    total = sum(totals["by_origin"].values())
    return {
        **spec.to_json(),
        "total": total,
        **{name: dict(sorted(totals[name].items())) for name in BREAKDOWNS},
    }
