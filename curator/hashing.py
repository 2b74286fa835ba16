"""`content_hash`: the exact-duplicate key and the freshness key.

Text is hashed after Unicode NFC and whitespace folding (runs of whitespace, as `str.split`
defines it, become one space; the ends are trimmed); the stored text is unchanged. An image is
hashed on its decoded pixels (as RGBA, with its size), so a lossless re-encoding is an exact
duplicate. The hash is xxh3-128, written as 32 lowercase hex digits: stable across runs, machines
and Python versions.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.compute as pc
import xxhash

_hexdigest = xxhash.xxh3_128_hexdigest


def normalise_text(text: str) -> str:
    """The form of `text` that `content_hash` hashes: NFC, whitespace folded, ends trimmed.

    >>> normalise_text("  Caf\\u0065\\u0301\\n\\n menu\\t")
    'Café menu'
    """
    if not text.isascii():
        text = unicodedata.normalize("NFC", text)
    return " ".join(text.split())


def text_hash(text: str) -> str:
    """`content_hash` of one text. Two texts that differ only in whitespace or Unicode
    composition get the same hash.

    >>> text_hash("a  b") == text_hash(" a\\nb ")
    True
    """
    return _hexdigest(normalise_text(text).encode("utf-8"))


def text_hashes(texts: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """`content_hash` and normalised-length (in UTF-8 bytes) of every text in an Arrow array.

    Nulls hash to null; the caller rejects them before writing.

    Returns:
        ``(content_hash, normalised_bytes)``: a string array and an int64 array; a normalised
        length of 0 means the text is empty or all whitespace.
    """
    values: Iterable[str | None] = texts.to_pylist()
    hashes: list[str | None] = []
    lengths: list[int | None] = []
    for text in values:
        if text is None:
            hashes.append(None)
            lengths.append(None)
            continue
        if not text.isascii():
            text = unicodedata.normalize("NFC", text)
        encoded = " ".join(text.split()).encode("utf-8")
        hashes.append(_hexdigest(encoded))
        lengths.append(len(encoded))
    return pa.array(hashes, pa.string()), pa.array(lengths, pa.int64())


def image_pixels_hash(mode_size_pixels: tuple[int, int, bytes]) -> str:
    """`content_hash` of decoded RGBA pixels given as ``(width, height, rgba_bytes)``."""
    width, height, pixels = mode_size_pixels
    hasher = xxhash.xxh3_128()
    hasher.update(f"RGBA:{width}x{height}:".encode())
    hasher.update(pixels)
    return hasher.hexdigest()


def utf8_lengths(texts: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Length in UTF-8 bytes of each string (the `bytes` unit of policies)."""
    return pc.binary_length(texts)
