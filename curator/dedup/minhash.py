"""MinHash signatures of text, vectorised, and compatible with datasketch.

Text is normalised (Unicode NFC, lower case) and cut into words: maximal runs of letters and
digits (Unicode categories L* and N*); everything else separates words. A word hashes to the
64-bit FNV-1a of its UTF-8 bytes; a shingle of k words (``word:k``) hashes to
``((h0·M + h1)·M + …)`` mod 2⁶⁴ with ``M = 0x9E3779B97F4A7C15``, and keeps the top 32 bits. A
document with fewer than k words is one shingle of all of them; one with no word has no signature.
Character shingles (``char:n``) hash the UTF-8 bytes of n consecutive characters of the
normalised text (whitespace runs folded to one space) the same way as a word.

Signatures use datasketch's ``affine32`` scheme: for permutation j, ``min over shingles of
(a_j · fmix32(h) + b_j) mod 2³²`` with datasketch's own ``a``, ``b`` for the seed. So
``datasketch.MinHash(num_perm, seed=seed, scheme="affine32", hashfunc=int)`` updated with
:func:`shingle_hashes` of a text has exactly the hash values :func:`signatures` computes, and
:func:`lean_minhash` turns a stored signature into a ``datasketch.LeanMinHash`` that
``datasketch.MinHashLSH`` accepts.

The kernels are compiled with numba; measured side by side with ``MinHash.bulk``, a numpy
version and rensa in ``bench/dedup.py --kernels``.
"""

from __future__ import annotations

import os
import unicodedata
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.core.arrays import string_array, string_scalar
from curator.dedup.shingling import SHINGLE_PATTERN, Shingling  # noqa: F401 (re-exported)

if TYPE_CHECKING:
    from datasketch import LeanMinHash

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)
_COMBINE = np.uint64(0x9E3779B97F4A7C15)


@lru_cache(maxsize=1)
def _word_table() -> np.ndarray:
    """For every code point of the Basic Multilingual Plane: is it a letter or a digit?
    (Code points above it count as letters.)"""
    return np.array(
        [unicodedata.category(chr(cp))[0] in "LN" for cp in range(0x10000)], dtype=np.bool_
    )


@numba.njit(nogil=True, cache=True, inline="always")
def _doc_words(
    data: np.ndarray, i: int, end: int, table: np.ndarray, out: np.ndarray, count: int
) -> int:
    """FNV-1a 64 of every word of ``data[i:end]`` written to ``out[count:]``; the new count."""
    in_word = False
    h = _FNV_OFFSET
    while i < end:
        b0 = data[i]
        if b0 < 0x80:
            # ASCII: letters (lower-cased here: the texts may not have been) and digits
            if table[b0]:
                if not in_word:
                    h = _FNV_OFFSET
                    in_word = True
                c = b0 + 32 if 0x41 <= b0 <= 0x5A else b0
                h = np.uint64((h ^ np.uint64(c)) * _FNV_PRIME)
            elif in_word:
                out[count] = h
                count += 1
                in_word = False
            i += 1
            continue
        if b0 < 0xE0:
            cp = ((np.int64(b0) & 0x1F) << 6) | (np.int64(data[i + 1]) & 0x3F)
            length = 2
        elif b0 < 0xF0:
            cp = (
                ((np.int64(b0) & 0x0F) << 12)
                | ((np.int64(data[i + 1]) & 0x3F) << 6)
                | (np.int64(data[i + 2]) & 0x3F)
            )
            length = 3
        else:
            cp = np.int64(0x10000)
            length = 4
        word = cp >= 0x10000 or table[cp]
        if word:
            if not in_word:
                h = _FNV_OFFSET
                in_word = True
            for k in range(length):
                h = np.uint64((h ^ np.uint64(data[i + k])) * _FNV_PRIME)
        elif in_word:
            out[count] = h
            count += 1
            in_word = False
        i += length
    if in_word:
        out[count] = h
        count += 1
    return count


@numba.njit(nogil=True, cache=True)
def _word_hashes(
    data: np.ndarray, offsets: np.ndarray, table: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """FNV-1a 64 of every word of every document, and each document's first word."""
    n = len(offsets) - 1
    out = np.empty(len(data) // 2 + n + 1, np.uint64)
    doc_start = np.zeros(n + 1, np.int64)
    count = 0
    for d in range(n):
        doc_start[d] = count
        count = _doc_words(data, offsets[d], offsets[d + 1], table, out, count)
    doc_start[n] = count
    return out[:count], doc_start


@numba.njit(nogil=True, cache=True)
def _word_signatures(
    data: np.ndarray,
    offsets: np.ndarray,
    table: np.ndarray,
    k: int,
    a: np.ndarray,
    b: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_word_hashes`, :func:`_shingle` and :func:`_signatures` in one pass per document
    (the words and shingles of one document at a time, never of the whole array)."""
    n = len(offsets) - 1
    p = len(a)
    out = np.full((n, p), np.uint32(0xFFFFFFFF), np.uint32)
    has = np.zeros(n, np.bool_)
    longest = 0
    for d in range(n):
        longest = max(longest, offsets[d + 1] - offsets[d])
    words = np.empty(longest // 2 + 2, np.uint64)
    for d in range(n):
        m = _doc_words(data, offsets[d], offsets[d + 1], table, words, 0)
        if m == 0:
            continue
        has[d] = True
        width = min(k, m)
        row = out[d]
        for i in range(max(1, m - k + 1)):
            h = np.uint64(0)
            for j in range(width):
                h = np.uint64(h * _COMBINE + words[i + j])
            f = _fmix32(np.uint32(h >> np.uint64(32)))
            for j in range(p):
                v = np.uint32(f * a[j] + b[j])
                if v < row[j]:
                    row[j] = v
    return out, has


@numba.njit(nogil=True, cache=True)
def _char_hashes(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each character's UTF-8 bytes as one "word" (for char shingles)."""
    n = len(offsets) - 1
    out = np.empty(max(len(data), 1), np.uint64)
    doc_start = np.zeros(n + 1, np.int64)
    count = 0
    for d in range(n):
        doc_start[d] = count
        i = offsets[d]
        end = offsets[d + 1]
        while i < end:
            b0 = data[i]
            length = 1 if b0 < 0x80 else (2 if b0 < 0xE0 else (3 if b0 < 0xF0 else 4))
            h = _FNV_OFFSET
            for k in range(length):
                h = np.uint64((h ^ np.uint64(data[i + k])) * _FNV_PRIME)
            out[count] = h
            count += 1
            i += length
    doc_start[n] = count
    return out[:count], doc_start


@numba.njit(nogil=True, cache=True)
def _shingle(words: np.ndarray, doc_start: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit hashes of the k-word shingles of each document, and their offsets."""
    n = len(doc_start) - 1
    out_off = np.zeros(n + 1, np.int64)
    for d in range(n):
        m = doc_start[d + 1] - doc_start[d]
        out_off[d + 1] = out_off[d] + (0 if m == 0 else max(1, m - k + 1))
    out = np.empty(out_off[n], np.uint32)
    for d in range(n):
        s = doc_start[d]
        m = doc_start[d + 1] - s
        width = min(k, m)
        for i in range(out_off[d + 1] - out_off[d]):
            h = np.uint64(0)
            for j in range(width):
                h = np.uint64(h * _COMBINE + words[s + i + j])
            out[out_off[d] + i] = np.uint32(h >> np.uint64(32))
    return out, out_off


@numba.njit(nogil=True, cache=True)
def _fmix32(h: np.uint32) -> np.uint32:
    h = np.uint32(h ^ (h >> np.uint32(16)))
    h = np.uint32(h * np.uint32(0x85EBCA6B))
    h = np.uint32(h ^ (h >> np.uint32(13)))
    h = np.uint32(h * np.uint32(0xC2B2AE35))
    return np.uint32(h ^ (h >> np.uint32(16)))


@numba.njit(nogil=True, cache=True)
def _signatures(
    hashes: np.ndarray, offsets: np.ndarray, a: np.ndarray, b: np.ndarray
) -> np.ndarray:
    n = len(offsets) - 1
    p = len(a)
    out = np.full((n, p), np.uint32(0xFFFFFFFF), np.uint32)
    for d in range(n):
        row = out[d]
        for i in range(offsets[d], offsets[d + 1]):
            h = _fmix32(hashes[i])
            for j in range(p):
                v = np.uint32(h * a[j] + b[j])
                if v < row[j]:
                    row[j] = v
    return out


@lru_cache(maxsize=8)
def permutations(num_perm: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """datasketch's affine32 permutation parameters for (num_perm, seed): drawn as
    ``datasketch.MinHash._init_permutations`` draws them (a test compares them with datasketch's),
    without importing datasketch (and scipy with it) in every dedup."""
    gen = np.random.RandomState(seed)
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return np.ascontiguousarray(a, np.uint32), np.ascontiguousarray(b, np.uint32)


def _normalised_buffers(texts: pa.Array, shingling: Shingling) -> tuple[np.ndarray, np.ndarray]:
    """The normalised texts' UTF-8 bytes and offsets (nulls are empty).

    For word shingles the kernel lower-cases ASCII letters itself, so an all-ASCII array (NFC
    and lower case change nothing else in it) is hashed from its own buffers, not copied twice."""
    if pa.types.is_large_string(texts.type) or pa.types.is_string_view(texts.type):
        texts = texts.cast(pa.string())
    if isinstance(texts, pa.ChunkedArray):
        texts = texts.combine_chunks()
    ascii_only = shingling.kind == "word" and pc.all(pc.string_is_ascii(texts)).as_py() is not False
    if ascii_only:
        if texts.null_count:
            texts = pc.fill_null(texts, string_scalar(""))
    else:
        texts = pc.utf8_lower(pc.utf8_normalize(pc.fill_null(texts, string_scalar("")), "NFC"))
        if shingling.kind == "char":
            texts = pc.utf8_trim_whitespace(pc.replace_substring_regex(texts, r"\s+", " "))
        texts = texts.combine_chunks() if isinstance(texts, pa.ChunkedArray) else texts
    _validity, offsets_buf, data_buf = texts.buffers()
    offsets = np.frombuffer(offsets_buf, np.int32)[texts.offset : texts.offset + len(texts) + 1]
    data = np.frombuffer(data_buf, np.uint8) if data_buf is not None else np.zeros(0, np.uint8)
    return data, offsets.astype(np.int64)


def shingle_hash_arrays(
    texts: pa.Array | list[str], shingling: Shingling | str = "word:5"
) -> tuple[np.ndarray, np.ndarray]:
    """The 32-bit shingle hashes of many texts (flat) and each text's offsets into them."""
    if isinstance(shingling, str):
        shingling = Shingling.parse(shingling)
    array = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.string())
    data, offsets = _normalised_buffers(array, shingling)
    if shingling.kind == "word":
        words, starts = _word_hashes(data, offsets, _word_table())
    else:
        words, starts = _char_hashes(data, offsets)
    return _shingle(words, starts, shingling.size)


def shingle_hashes(text: str, shingling: Shingling | str = "word:5") -> list[int]:
    """One text's shingle hashes (feed them to ``datasketch.MinHash(..., hashfunc=int)``)."""
    hashes, offsets = shingle_hash_arrays([text], shingling)
    return [int(h) for h in hashes[offsets[0] : offsets[1]]]


#: Texts per slice when :func:`signatures` spreads a large array over threads (the kernels and
#: Arrow's string functions release the GIL).
THREAD_SLICE_ROWS = 2048


@lru_cache(maxsize=1)
def _pool() -> Any:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=_cores(), thread_name_prefix="minhash")


def _cores() -> int:
    """The cores this process may run on (its affinity mask, as a container or taskset sets
    it), not every core of the machine."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def _signatures_of(
    texts: pa.Array, shingling: Shingling, a: np.ndarray, b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    if shingling.kind == "word":
        data, offsets = _normalised_buffers(texts, shingling)
        return _word_signatures(data, offsets, _word_table(), shingling.size, a, b)
    hashes, offsets = shingle_hash_arrays(texts, shingling)
    return _signatures(hashes, offsets, a, b), np.diff(offsets) > 0


def signatures(
    texts: pa.Array | list[str],
    *,
    num_perm: int = 128,
    seed: int = 1,
    shingling: Shingling | str = "word:5",
) -> tuple[np.ndarray, np.ndarray]:
    """MinHash signatures, shape (len(texts), num_perm) uint32, and a mask of the texts that
    have at least one shingle (the others' rows are all 0xFFFFFFFF).

    A large array is cut in slices computed on all cores (threads); each text's signature
    depends on that text only, so the result is the same."""
    if isinstance(shingling, str):
        shingling = Shingling.parse(shingling)
    array = texts if isinstance(texts, pa.Array) else pa.array(texts, pa.string())
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    a, b = permutations(num_perm, seed)
    threads = _cores()
    if threads == 1 or len(array) < 2 * THREAD_SLICE_ROWS:
        return _signatures_of(array, shingling, a, b)
    step = max(THREAD_SLICE_ROWS, -(-len(array) // (4 * threads)))
    parts = list(
        _pool().map(
            lambda start: _signatures_of(array.slice(start, step), shingling, a, b),
            range(0, len(array), step),
        )
    )
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def lean_minhash(signature: np.ndarray | list[int], seed: int = 1) -> LeanMinHash:
    """A stored signature as a ``datasketch.LeanMinHash`` (for ``MinHashLSH``)."""
    from datasketch import LeanMinHash

    return LeanMinHash(seed=seed, hashvalues=np.asarray(signature, np.uint32), scheme="affine32")


def minhash_of(
    text: str, *, num_perm: int = 128, seed: int = 1, shingling: Shingling | str = "word:5"
) -> LeanMinHash:
    """A text's signature as a ``LeanMinHash``: query a ``MinHashLSH`` built from the store's
    signatures with it ("is this new text a copy of something known?")."""
    sig, _has = signatures([text], num_perm=num_perm, seed=seed, shingling=shingling)
    return lean_minhash(sig[0], seed)


#: Weights of false positives and false negatives when choosing bands × rows: every candidate
#: pair is verified, so a false positive costs only time while a false negative is a missed copy.
LSH_WEIGHTS = (0.2, 0.8)


#: :func:`lsh_parameters` for common (threshold, num_perm), as datasketch's optimiser gives them
#: with :data:`LSH_WEIGHTS` (a test recomputes every entry): the optimiser integrates with
#: scipy, whose import costs more than a small dedup.
_LSH_TABLE: dict[tuple[float, int], tuple[int, int, float, float]] = {
    (0.5, 64): (15, 3, 0.15122784847800289, 0.00808477462786261),
    (0.5, 128): (30, 4, 0.12156402708795586, 0.006862722184455251),
    (0.5, 256): (51, 5, 0.09151851594506132, 0.008763628935684262),
    (0.6, 64): (14, 4, 0.14422381748409094, 0.007699872971662679),
    (0.6, 128): (23, 5, 0.11921813149922532, 0.007121556810144803),
    (0.6, 256): (38, 6, 0.10175722472535093, 0.006435581645735759),
    (0.7, 64): (10, 6, 0.09030160822672288, 0.016367518445644838),
    (0.7, 128): (18, 7, 0.09293444982029227, 0.0091658875930836),
    (0.7, 256): (28, 9, 0.060911316534344444, 0.013422938464511827),
    (0.75, 64): (9, 7, 0.08643442811544402, 0.013838305075650854),
    (0.75, 128): (16, 8, 0.09381890813816893, 0.006849266673313422),
    (0.75, 256): (25, 10, 0.07000301867633457, 0.008019497092646535),
    (0.8, 64): (8, 8, 0.08946964263318394, 0.009460349569446906),
    (0.8, 128): (12, 10, 0.07062523102647902, 0.0093198573345033),
    (0.8, 256): (21, 12, 0.06457891333964254, 0.006546896046380044),
    (0.85, 64): (6, 10, 0.07149175661632956, 0.009761677460924517),
    (0.85, 128): (9, 13, 0.052261234596401696, 0.010231507405239497),
    (0.85, 256): (16, 16, 0.04570593432868967, 0.007673511426248271),
    (0.9, 64): (4, 14, 0.04611831192094845, 0.010868800813588975),
    (0.9, 128): (7, 18, 0.03999325711846851, 0.007805127454317646),
    (0.9, 256): (12, 21, 0.04057268372989648, 0.004696343360356385),
    (0.95, 64): (3, 21, 0.037017331616080715, 0.004796137112909584),
    (0.95, 128): (4, 30, 0.02240193235054908, 0.006038748877611318),
    (0.95, 256): (7, 36, 0.022620679182016254, 0.003664511681829125),
}


def lsh_parameters(threshold: float, num_perm: int) -> dict[str, Any]:
    """Bands × rows for the threshold (datasketch's optimiser with :data:`LSH_WEIGHTS`) and the
    expected false-positive and false-negative rates (integrated over Jaccard similarity)."""
    known = _LSH_TABLE.get((threshold, num_perm))
    if known is not None and LSH_WEIGHTS == (0.2, 0.8):
        bands, rows, fp, fn = known
        return {"bands": bands, "rows": rows, "false_positive": fp, "false_negative": fn}
    return _lsh_parameters_computed(threshold, num_perm)


def _lsh_parameters_computed(threshold: float, num_perm: int) -> dict[str, Any]:
    from datasketch.lsh import (
        _false_negative_probability,
        _false_positive_probability,
        _optimal_param,
    )

    bands, rows = _optimal_param(threshold, num_perm, *LSH_WEIGHTS)
    return {
        "bands": int(bands),
        "rows": int(rows),
        "false_positive": float(_false_positive_probability(threshold, bands, rows)),
        "false_negative": float(_false_negative_probability(threshold, bands, rows)),
    }


@numba.njit(nogil=True, cache=True)
def band_hashes(sigs: np.ndarray, bands: int, rows: int) -> np.ndarray:
    """One 64-bit hash per band of each signature, shape (n, bands), as int64 (for DuckDB)."""
    n = sigs.shape[0]
    out = np.empty((n, bands), np.int64)
    for d in range(n):
        for band in range(bands):
            h = _FNV_OFFSET
            for r in range(rows):
                h = np.uint64((h ^ np.uint64(sigs[d, band * rows + r])) * _FNV_PRIME)
            out[d, band] = np.int64(h)
    return out


@numba.njit(nogil=True, cache=True)
def union_find(count: int, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The root of every node ``0 .. count-1`` once the edges ``(a, b)`` are joined (used by
    :func:`curator.dedup.candidates.components`)."""
    parent = np.arange(count)
    for k in range(len(a)):
        x = a[k]
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        y = b[k]
        while parent[y] != y:
            parent[y] = parent[parent[y]]
            y = parent[y]
        if x != y:
            if x < y:
                parent[y] = x
            else:
                parent[x] = y
    for i in range(count):
        r = i
        while parent[r] != r:
            r = parent[r]
        parent[i] = r
    return parent


@numba.njit(nogil=True, cache=True)
def empty_rows(sigs: np.ndarray) -> np.ndarray:
    """Which signatures are all 0xFFFFFFFF (texts without a shingle)."""
    n, p = sigs.shape
    out = np.zeros(n, np.bool_)
    for d in range(n):
        empty = True
        for j in range(p):
            if sigs[d, j] != np.uint32(0xFFFFFFFF):
                empty = False
                break
        out[d] = empty
    return out


def warm_up() -> None:
    """Load every kernel from numba's cache (compiling it the first time), so that the first
    real call does not pay for it: :func:`curator.dedup.clusters.dedup` runs this in a thread
    while DuckDB finds the work."""
    signatures(string_array(["warm up", None]))
    sigs = np.zeros((1, 16), np.uint32)
    band_hashes(sigs, 2, 8)
    empty_rows(sigs)
    union_find(2, np.zeros(1, np.int64), np.ones(1, np.int64))
