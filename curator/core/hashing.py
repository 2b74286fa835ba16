"""`content_hash`: the exact-duplicate key and the freshness key.

Text is hashed after Unicode NFC and whitespace folding (runs of whitespace, as `str.split`
defines it, become one space; the ends are trimmed); the stored text is unchanged. An image is
hashed on its decoded pixels (as RGBA, with its size), so a lossless re-encoding is an exact
duplicate. The hash is xxh3-128, written as 32 lowercase hex digits: stable across runs, machines
and Python versions.
"""

from __future__ import annotations

import binascii
import unicodedata

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import xxhash

from curator.core.arrays import from_numpy, to_numpy

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


#: Runs of two or more ASCII whitespace characters (as `str.split()` defines them, \x1c-\x1f
#: included), or one that is not a space: what folding replaces with a single space. Matches are
#: rare in ordinary text (line breaks, double spaces), so the regex pass is fast.
_ASCII_WS = r"\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f "
_FOLD_PATTERN = f"[{_ASCII_WS}]{{2,}}|[{_ASCII_WS[:-1]}]"


def text_hashes(texts: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array]:
    """`content_hash` and normalised length (in UTF-8 bytes) of every text in an Arrow array;
    the same values as :func:`text_hash`, computed on Arrow buffers.

    ASCII rows are folded by Arrow kernels (one regex pass and a trim for the whole batch) and
    hashed straight from the folded buffer; rows with other characters (found only in a batch
    that has a byte above 0x7F) go through NFC and `str.split` in Python. Nulls hash to null;
    the caller rejects them before writing.

    Returns:
        ``(content_hash, normalised_bytes)``: a string array and an int64 array; a normalised
        length of 0 means the text is empty or all whitespace.
    """
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks() if texts.num_chunks != 1 else texts.chunk(0)
    if not pa.types.is_string(texts.type):
        texts = texts.cast(pa.string())
    n = len(texts)
    if n == 0:
        return pa.nulls(0, pa.string()), pa.nulls(0, pa.int64())
    folded = pc.utf8_trim(pc.replace_substring_regex(texts, _FOLD_PATTERN, " "), " ")
    offsets = np.frombuffer(folded.buffers()[1], np.int32)[folded.offset : folded.offset + n + 1]
    lengths = np.diff(offsets).astype(np.int64)
    data = folded.buffers()[2]
    view = memoryview(data if data is not None else b"")
    starts = offsets.tolist()
    digest = xxhash.xxh3_128_digest
    digests = [digest(view[starts[i] : starts[i + 1]]) for i in range(n)]
    for i in _non_ascii_rows(texts):
        text = unicodedata.normalize("NFC", texts[i].as_py())
        chunk = " ".join(text.split()).encode("utf-8")
        digests[i] = digest(chunk)
        lengths[i] = len(chunk)
    hexed = binascii.hexlify(b"".join(digests))
    width = 2 * _DIGEST_BYTES
    hashes = pa.StringArray.from_buffers(
        n, pa.py_buffer(np.arange(0, width * n + 1, width, dtype=np.int32)), pa.py_buffer(hexed)
    )
    sizes = from_numpy(lengths)
    if texts.null_count:
        valid = texts.is_valid()
        hashes = pc.if_else(valid, hashes, pa.nulls(n, pa.string()))
        sizes = pc.if_else(valid, sizes, pa.nulls(n, pa.int64()))
    return hashes, sizes


#: xxh3-128 digests are 16 bytes (32 hex digits).
_DIGEST_BYTES = 16


def _non_ascii_rows(texts: pa.StringArray) -> list[int]:
    """Indices of the rows of `texts` with a byte above 0x7F (a quick test of the whole data
    buffer first: most batches have none)."""
    n = len(texts)
    offsets = np.frombuffer(texts.buffers()[1], np.int32)[texts.offset : texts.offset + n + 1]
    data = texts.buffers()[2]
    if data is None or offsets[-1] == offsets[0]:
        return []
    raw = np.frombuffer(data, np.uint8)[offsets[0] : offsets[-1]]
    if int(raw.max()) < 0x80:
        return []
    ascii_rows = pc.fill_null(pc.string_is_ascii(texts), True)
    return np.flatnonzero(~to_numpy(ascii_rows)).tolist()


def image_pixels_hash(mode_size_pixels: tuple[int, int, bytes]) -> str:
    """`content_hash` of decoded RGBA pixels given as ``(width, height, rgba_bytes)``."""
    width, height, pixels = mode_size_pixels
    hasher = xxhash.xxh3_128()
    hasher.update(f"RGBA:{width}x{height}:".encode())
    hasher.update(pixels)
    return hasher.hexdigest()
