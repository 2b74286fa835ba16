"""The fast paths of issue 16 give exactly what the reference computations give: shingle hashes
and MinHash signatures (ASCII fast path, threads) against a plain-Python implementation of the
documented algorithm and against datasketch, permutations and LSH parameters against datasketch,
candidate pairs against the DuckDB query, components against scipy."""

from __future__ import annotations

import unicodedata

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curator.dedup import candidates, minhash

MASK64 = (1 << 64) - 1
ALPHABET = "abcXYZ019 \t\n\r\x0b\x0c\x1c.,;-'éÉßΣσς日本ｱ\u0301\u00a0\u2003İ😀"


def _fnv(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for byte in data:
        h = ((h ^ byte) * 0x100000001B3) & MASK64
    return h


def _is_word_char(ch: str) -> bool:
    return ord(ch) >= 0x10000 or unicodedata.category(ch)[0] in "LN"


def reference_shingles(text: str | None, k: int) -> list[int]:
    """The documented word shingling, in plain Python (NFC and lower case as Arrow does them,
    the way the first implementation normalised)."""
    if text is None:
        return []
    normal = pc.utf8_lower(pc.utf8_normalize(pa.array([text]), "NFC"))[0].as_py()
    words: list[int] = []
    current: list[str] = []
    for ch in [*normal, " "]:
        if _is_word_char(ch) and ch != " ":
            current.append(ch)
        elif current:
            words.append(_fnv("".join(current).encode()))
            current = []
    if not words:
        return []
    width = min(k, len(words))
    out = []
    for i in range(max(1, len(words) - k + 1)):
        h = 0
        for j in range(width):
            h = (h * 0x9E3779B97F4A7C15 + words[i + j]) & MASK64
        out.append(h >> 32)
    return out


def _fmix32(h: int) -> int:
    h ^= h >> 16
    h = (h * 0x85EBCA6B) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * 0xC2B2AE35) & 0xFFFFFFFF
    return h ^ (h >> 16)


def reference_signature(hashes: list[int], num_perm: int, seed: int) -> list[int]:
    from datasketch import MinHash

    a, b = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    sig = [0xFFFFFFFF] * num_perm
    for h in hashes:
        m = _fmix32(h)
        for j in range(num_perm):
            sig[j] = min(sig[j], (int(a[j]) * m + int(b[j])) & 0xFFFFFFFF)
    return sig


texts_strategy = st.lists(
    st.one_of(st.none(), st.text(alphabet=ALPHABET, max_size=60)), min_size=1, max_size=12
)
ascii_strategy = st.lists(
    st.one_of(st.none(), st.text(alphabet="abcXYZ019 \t\n.,'-", max_size=80)),
    min_size=1,
    max_size=12,
)


@settings(deadline=None, max_examples=150)
@given(texts=st.one_of(texts_strategy, ascii_strategy), k=st.integers(1, 6))
def test_shingle_hashes_equal_the_reference(texts: list[str | None], k: int) -> None:
    hashes, offsets = minhash.shingle_hash_arrays(pa.array(texts, pa.string()), f"word:{k}")
    for i, text in enumerate(texts):
        assert hashes[offsets[i] : offsets[i + 1]].tolist() == reference_shingles(text, k)


@settings(deadline=None, max_examples=60)
@given(texts=st.one_of(texts_strategy, ascii_strategy))
def test_signatures_equal_the_reference_and_datasketch(texts: list[str | None]) -> None:
    from datasketch import MinHash

    sigs, has = minhash.signatures(pa.array(texts, pa.string()), num_perm=16, seed=3)
    for i, text in enumerate(texts):
        shingles = reference_shingles(text, 5)
        assert bool(has[i]) == bool(shingles)
        assert sigs[i].tolist() == reference_signature(shingles, 16, 3)
        if shingles:
            m = MinHash(num_perm=16, seed=3, scheme="affine32", hashfunc=int)
            m.update_batch(shingles)
            assert sigs[i].tolist() == m.hashvalues.tolist()


def test_signatures_on_threads_equal_one_slice(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    words = np.array(["alpha", "Beta", "gamma", "DELTA", "é", "日本", "x1"])
    texts = pa.array(
        [
            None if i % 97 == 0 else " ".join(rng.choice(words, size=int(rng.integers(0, 30))))
            for i in range(5000)
        ],
        pa.string(),
    )
    one, one_has = minhash.signatures(texts)
    # the fused word kernel equals shingles then signatures
    hashes, offsets = minhash.shingle_hash_arrays(texts)
    a, b = minhash.permutations(128, 1)
    assert np.array_equal(one, minhash._signatures(hashes, offsets, a, b))
    assert np.array_equal(one_has, np.diff(offsets) > 0)
    monkeypatch.setattr(minhash, "THREAD_SLICE_ROWS", 64)
    many, many_has = minhash.signatures(texts)
    assert np.array_equal(one, many)
    assert np.array_equal(one_has, many_has)
    # a slice of a larger array (non-zero offset), ASCII and not
    part, _ = minhash.signatures(texts.slice(1000, 3000))
    assert np.array_equal(part, one[1000:4000])


@pytest.mark.parametrize("num_perm,seed", [(128, 1), (64, 7), (256, 1), (17, 42)])
def test_permutations_equal_datasketch(num_perm: int, seed: int) -> None:
    from datasketch import MinHash

    a, b = minhash.permutations(num_perm, seed)
    expected = MinHash(num_perm=num_perm, seed=seed, scheme="affine32").permutations
    assert a.dtype == np.uint32 and b.dtype == np.uint32
    assert a.tolist() == expected[0].tolist()
    assert b.tolist() == expected[1].tolist()


def test_lsh_table_equals_datasketch_optimiser() -> None:
    for (threshold, num_perm), (bands, rows, fp, fn) in minhash._LSH_TABLE.items():
        computed = minhash._lsh_parameters_computed(threshold, num_perm)
        assert computed == {
            "bands": bands,
            "rows": rows,
            "false_positive": fp,
            "false_negative": fn,
        }
        assert minhash.lsh_parameters(threshold, num_perm) == computed
    assert minhash.lsh_parameters(0.83, 100) == minhash._lsh_parameters_computed(0.83, 100)


def _duckdb_pairs(bands: np.ndarray, rows: np.ndarray) -> list[tuple[int, int]]:
    with duckdb.connect() as con:
        a, b = candidates.pairs_in_duckdb(con, candidates.band_rows(bands, rows))
    return sorted(zip(a.tolist(), b.tolist(), strict=True))


@settings(deadline=None, max_examples=200)
@given(
    n=st.integers(0, 120),
    b=st.integers(1, 4),
    distinct=st.integers(1, 30),
    seed=st.integers(0, 2**32 - 1),
)
def test_pairs_in_numpy_equal_the_duckdb_query(n: int, b: int, distinct: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    bands = rng.integers(-distinct, distinct, size=(n, b)).astype(np.int64)
    rows = np.flatnonzero(rng.random(n) < 0.8).astype(np.int64)
    a, b_ = candidates.pairs_in_numpy(bands, rows)
    assert list(zip(a.tolist(), b_.tolist(), strict=True)) == _duckdb_pairs(bands, rows)


def test_pairs_in_numpy_with_a_bucket_over_the_small_size() -> None:
    bands = np.zeros((candidates.SMALL_BUCKET + 5, 2), np.int64)
    bands[:, 1] = np.arange(len(bands)) % 3
    rows = np.arange(len(bands), dtype=np.int64)
    a, b = candidates.pairs_in_numpy(bands, rows)
    assert list(zip(a.tolist(), b.tolist(), strict=True)) == _duckdb_pairs(bands, rows)
    # band 0: 36 links to the root 0; band 1: every pair in buckets of 13, 12 and 12 (210), of
    # which the 12 with 0 are already there
    assert len(a) == 36 + 210 - 12


@settings(deadline=None, max_examples=200)
@given(n=st.integers(1, 200), m=st.integers(0, 300), seed=st.integers(0, 2**32 - 1))
def test_components_equal_scipy(n: int, m: int, seed: int) -> None:
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    rng = np.random.default_rng(seed)
    a = rng.integers(0, n, m)
    b = rng.integers(0, n, m)
    _count, expected = connected_components(
        coo_matrix((np.ones(m), (a, b)), shape=(n, n)), directed=False
    )
    got = candidates.components(n, a, b)
    assert got.dtype == expected.dtype
    assert got.tolist() == expected.tolist()


def test_index_read_by_row_group_equals_the_batches(tmp_path) -> None:
    import pyarrow.parquet as pq

    rng = np.random.default_rng(5)
    sigs = rng.integers(0, 2**32, size=(50, 16), dtype=np.uint32)
    sigs[7] = 0xFFFFFFFF
    for number, (lo, hi) in enumerate([(0, 20), (20, 21), (21, 50)]):
        part = sigs[lo:hi]
        table = pa.table(
            {
                "content_hash": pa.array([f"h{i:03d}" for i in range(lo, hi)], pa.string()),
                "value": pa.FixedSizeBinaryArray.from_buffers(
                    pa.binary(64), len(part), [None, pa.py_buffer(part.tobytes())]
                ),
            }
        )
        pq.write_table(table, tmp_path / f"run-{number}.parquet", row_group_size=6)
    batches = list(candidates.index_batches(str(tmp_path), 16))
    assert np.array_equal(np.concatenate([s for _k, s in batches]), sigs)
    found = candidates.map_index(
        str(tmp_path), 16, lambda keys, s, start: (keys.to_pylist(), s.copy(), start)
    )
    assert [f[2] for f in found] == [0, 6, 12, 18, 20, 21, 27, 33, 39, 45]
    assert np.array_equal(np.concatenate([f[1] for f in found]), sigs)
    assert [key for f in found for key in f[0]] == [f"h{i:03d}" for i in range(50)]
    positions = np.array([0, 5, 6, 19, 20, 21, 49])
    assert np.array_equal(candidates.gather(str(tmp_path), 16, positions), sigs[positions])
    assert minhash.empty_rows(sigs).tolist() == [i == 7 for i in range(50)]
