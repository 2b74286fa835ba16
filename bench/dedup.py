"""Near-duplicate detection: speed against datasketch, quality against exact Jaccard, image
hashing against imagehash, and the signature kernels side by side.

    python bench/dedup.py [--sizes 100000,1000000] [--subset 20000] [--images 400] [--text-only] [--keep DIR]

1. Text, at each of `sizes` (default: the two sizes of issue 16). Builds a store of `docs` documents of about 1 KB (90 % distinct, 10 % copies of one of
   them with 0-30 % of the words replaced), then, each in a fresh process, (a) `curator dedup
   --no-images` on the whole store, and (b) the straightforward datasketch pipeline — Python
   shingling, `MinHash.bulk`, `MinHashLSH` insert and query — on the first `subset` documents,
   scaled to `docs` (its cost is linear in the documents). Prints both, the speed-up (targets of
   issue 16: >= 20 at 100,000 documents, >= 40 at 1,000,000) and curator's peak memory (< 2 GB).
2. Quality: for every copy, its exact Jaccard similarity (5-word shingles) to its original;
   recall = copies at or above the threshold found in their original's cluster, precision =
   clustered pairs at or above it (each pair's exact Jaccard computed from the texts).
3. Images: `images` JPEGs of 512 × 384 on disk: curator's pHash (bytes read and hashed on all
   cores) against `imagehash.phash(Image.open(path))`, one after another. Target >= 1.5.
4. Kernels, on `subset` documents: datasketch `MinHash.bulk` (its default sha1 hash), a numpy
   version of curator's kernel, curator's numba kernel, and rensa's RMinHash (if installed:
   `pip install -e '.[bench]'`).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import measure, sizes_parser

THRESHOLD = 0.8


def make_corpus(path: Path, docs: int, seed: int = 0) -> list[tuple[int, int, float]]:
    """Write `docs` documents to Parquet; return (copy id, original id, edit rate) per copy."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    vocabulary = pa.array(
        [
            "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=int(n)))
            for n in rng.integers(2, 11, size=50_000)
        ]
    )
    words = 160
    copies: list[tuple[int, int, float]] = []
    batch = 50_000
    with pq.ParquetWriter(
        path, pa.schema([("id", pa.int64()), ("text", pa.string())]), compression="zstd"
    ) as writer:
        for start in range(0, docs, batch):
            n = min(batch, docs - start)
            # Zipf-like word frequencies, as in text
            picks = np.minimum(rng.zipf(1.3, size=(n, words)) - 1, len(vocabulary) - 1)
            picks = (picks * 7919 + rng.integers(0, 50, size=(n, 1))) % len(vocabulary)
            is_copy = rng.random(n) < 0.1
            is_copy[0] = False
            for i in np.flatnonzero(is_copy):
                original = int(rng.integers(0, i)) if i else 0
                rate = float(rng.choice([0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3]))
                row = picks[original].copy()
                mask = rng.random(words) < rate
                row[mask] = rng.integers(0, len(vocabulary), size=int(mask.sum()))
                picks[i] = row
                copies.append((start + int(i), start + original, rate))
            flat = vocabulary.take(pa.array(picks.reshape(-1)))
            lists = pa.ListArray.from_arrays(
                pa.array(np.arange(0, n * words + 1, words, dtype=np.int32)), flat
            )
            texts = pc.binary_join(lists, " ")
            writer.write_table(
                pa.table({"id": pa.array(np.arange(start, start + n)), "text": texts})
            )
    return copies


BUILD = """
import json, curator
store = curator.init_store({store!r})
r = store.ingest([{path!r}], source="corpus", origin="real", id_column="id")
print(json.dumps({{"rows": r.ingested}}))
"""

CURATOR = """
import json, time, curator
store = curator.open_store({store!r})
t = time.perf_counter()
r = store.dedup(images=False, threshold={threshold})
m = r.methods[0]
print(json.dumps({{"seconds": time.perf_counter() - t, "contents": m.contents, "candidates": m.candidate_pairs,
                   "verified": m.verified_pairs, "clusters": m.clusters, "bands": m.parameters["bands"], "rows": m.parameters["rows"]}}))
"""

DATASKETCH = """
import json, re, time
import pyarrow.parquet as pq
from datasketch import MinHash, MinHashLSH
texts = pq.read_table({path!r}, columns=["text"]).slice(0, {subset})["text"].to_pylist()
t = time.perf_counter()
def shingles(text):
    words = re.findall(r"\\w+", text.lower())
    return [" ".join(words[i:i + 5]).encode() for i in range(max(1, len(words) - 4))]
minhashes = MinHash.bulk([shingles(x) for x in texts], num_perm=128, scheme="affine32")
lsh = MinHashLSH(threshold={threshold}, num_perm=128)
for i, m in enumerate(minhashes):
    lsh.insert(i, m)
pairs = sum(len(lsh.query(m)) - 1 for m in minhashes)
print(json.dumps({{"seconds": time.perf_counter() - t, "pairs": pairs}}))
"""


def jaccard(a: str, b: str) -> float:
    from curator.dedup.minhash import shingle_hashes

    sa, sb = set(shingle_hashes(a)), set(shingle_hashes(b))
    return len(sa & sb) / len(sa | sb) if sa | sb else 1.0


def quality(
    store_dir: Path, copies: list[tuple[int, int, float]], sample: int = 3000
) -> dict[str, float]:
    import random

    import curator

    store = curator.open_store(store_dir)
    cluster_of = {
        row["sample_id"]: row["cluster_id"]
        for row in store.sql("SELECT sample_id, cluster_id FROM duplicates").to_pylist()
    }
    rng = random.Random(0)
    chosen = rng.sample(copies, min(sample, len(copies)))
    ids = sorted({f"corpus/{c}" for c, _o, _r in chosen} | {f"corpus/{o}" for _c, o, _r in chosen})
    listed = ", ".join(f"'{i}'" for i in ids)
    text = {
        row["sample_id"]: row["text"]
        for row in store.sql(
            f"SELECT sample_id, text FROM samples WHERE sample_id IN ({listed})"
        ).to_pylist()
    }
    positives = found = 0
    recall_at: dict[str, list[int]] = {"0.8": [0, 0], "0.85": [0, 0], "0.9": [0, 0]}
    for copy, original, _rate in chosen:
        a, b = f"corpus/{copy}", f"corpus/{original}"
        j = jaccard(text[a], text[b])
        together = a in cluster_of and cluster_of.get(a) == cluster_of.get(b)
        for level, counts in recall_at.items():
            if j >= float(level):
                counts[0] += 1
                counts[1] += together
        if j >= THRESHOLD:
            positives += 1
            found += together
    # precision: pairs inside clusters (each member with the cluster's kept sample)
    pairs = store.sql(
        "SELECT d.sample_id AS a, k.sample_id AS b FROM duplicates d JOIN duplicates k "
        "ON d.cluster_id = k.cluster_id AND k.kept AND NOT d.kept USING SAMPLE 2000 ROWS"
        if False
        else "SELECT d.sample_id AS a, k.sample_id AS b FROM duplicates d JOIN duplicates k "
        "ON d.cluster_id = k.cluster_id AND k.kept AND NOT d.kept ORDER BY hash(d.sample_id) LIMIT 2000"
    ).to_pylist()
    ids = sorted({p["a"] for p in pairs} | {p["b"] for p in pairs})
    listed = ", ".join(f"'{i}'" for i in ids) or "''"
    text = {
        row["sample_id"]: row["text"]
        for row in store.sql(
            f"SELECT sample_id, text FROM samples WHERE sample_id IN ({listed})"
        ).to_pylist()
    }
    # a clustered pair is correct when the two are copies at the threshold (0.05 slack for the
    # estimate's spread: pairs just under it are found with some probability by design)
    correct = sum(jaccard(text[p["a"]], text[p["b"]]) >= THRESHOLD - 0.05 for p in pairs)
    return {
        "recall": found / positives if positives else 1.0,
        "precision": correct / len(pairs) if pairs else 1.0,
        "pairs_checked": len(pairs),
        "copies_checked": len(chosen),
        **{f"recall_at_{k}": (v[1] / v[0] if v[0] else 1.0) for k, v in recall_at.items()},
    }


def images_bench(work: Path, count: int) -> dict[str, float]:
    import io

    import imagehash
    import numpy as np
    from PIL import Image

    from curator.dedup.phash import phashes

    folder = work / "images"
    folder.mkdir(exist_ok=True)
    rng = np.random.default_rng(1)
    paths = []
    for i in range(count):
        small = (rng.random((12, 16, 3)) * 255).astype(np.uint8)
        image = Image.fromarray(small).resize((512, 384), Image.Resampling.BICUBIC)
        path = folder / f"{i}.jpg"
        image.save(path, quality=90)
        paths.append(path)
    t = time.perf_counter()
    reference = [int(str(imagehash.phash(Image.open(p))), 16) for p in paths]
    baseline = time.perf_counter() - t
    t = time.perf_counter()
    ours, _ok = phashes([p.read_bytes() for p in paths])
    seconds = time.perf_counter() - t
    # quality: each of the first 100 images re-encoded, resized, brightened and cropped a little
    from PIL import ImageEnhance

    from curator.dedup.clusters import DEFAULT_HAMMING

    variants: list[bytes] = []
    owner: list[int] = []
    for i, path in enumerate(paths[:100]):
        original = Image.open(path).convert("RGB")
        edits = [
            original,
            original.resize((384, 288)),
            ImageEnhance.Brightness(original).enhance(1.15),
            original.crop((8, 6, 504, 378)),
        ]
        for edit in edits:
            buffer = io.BytesIO()
            edit.save(buffer, format="JPEG", quality=75)
            variants.append(buffer.getvalue())
            owner.append(i)
    hashes, _ok = phashes(variants)
    owners = np.array(owner)
    distance = np.bitwise_count(hashes[:, None] ^ hashes[None, :])
    same = owners[:, None] == owners[None, :]
    upper = np.triu(np.ones_like(same), k=1)
    close = (distance <= DEFAULT_HAMMING) & upper
    true_pairs = same & upper
    return {
        "images": count,
        "imagehash_seconds": baseline,
        "curator_seconds": seconds,
        "speedup": baseline / seconds,
        "identical": int(sum(int(a) == b for a, b in zip(ours, reference, strict=True))),
        "image_recall": float((close & true_pairs).sum() / true_pairs.sum()),
        "image_precision": float((close & true_pairs).sum() / max(close.sum(), 1)),
    }


def kernels(path: Path, subset: int) -> dict[str, float]:
    import re

    import numpy as np
    import pyarrow.parquet as pq
    from datasketch import MinHash

    from curator.dedup import minhash

    texts = pq.read_table(path, columns=["text"]).slice(0, subset)["text"]
    results: dict[str, float] = {}
    pylist = texts.to_pylist()

    def py_shingles(text: str) -> list[bytes]:
        words = re.findall(r"\w+", text.lower())
        return [" ".join(words[i : i + 5]).encode() for i in range(max(1, len(words) - 4))]

    t = time.perf_counter()
    MinHash.bulk([py_shingles(x) for x in pylist], num_perm=128, scheme="affine32")
    results["datasketch_bulk_docs_per_s"] = subset / (time.perf_counter() - t)

    minhash.signatures(texts.slice(0, 10))  # compile outside the timing
    t = time.perf_counter()
    hashes, offsets = minhash.shingle_hash_arrays(texts.combine_chunks())
    a, b = minhash.permutations(128, 1)
    h = hashes.copy()
    h ^= h >> np.uint32(16)
    h *= np.uint32(0x85EBCA6B)
    h ^= h >> np.uint32(13)
    h *= np.uint32(0xC2B2AE35)
    h ^= h >> np.uint32(16)
    for s in range(0, len(offsets) - 1, 500):
        e = min(s + 500, len(offsets) - 1)
        seg = h[offsets[s] : offsets[e]]
        np.minimum.reduceat(
            seg[:, None] * a[None, :] + b[None, :], offsets[s:e] - offsets[s], axis=0
        )
    results["numpy_docs_per_s"] = subset / (time.perf_counter() - t)

    t = time.perf_counter()
    minhash.signatures(texts.combine_chunks())
    results["curator_numba_docs_per_s"] = subset / (time.perf_counter() - t)
    try:
        import rensa

        t = time.perf_counter()
        for x in pylist:
            m = rensa.RMinHash(num_perm=128, seed=1)
            m.update([s.decode() for s in py_shingles(x)])
            m.digest()
        results["rensa_docs_per_s"] = subset / (time.perf_counter() - t)
    except ImportError:
        results["rensa_docs_per_s"] = float("nan")
    return results


TARGETS = {100_000: 20.0, 1_000_000: 40.0}


def text_bench(work: Path, docs: int, subset: int) -> dict[str, object]:
    """Part 1 and 2 at one size: curator against datasketch (scaled), and the quality."""
    import shutil

    work.mkdir(parents=True, exist_ok=True)
    corpus = work / "corpus.parquet"
    copies_file = work / "copies.json"
    store = work / "store"
    if not (store / "catalog.duckdb").exists():
        copies = make_corpus(corpus, docs)
        copies_file.write_text(json.dumps(copies))
        built = measure(BUILD.format(store=str(store), path=str(corpus)))
        print(f"store: {built['rows']:,} documents")
    copies = [tuple(c) for c in json.loads(copies_file.read_text())]
    shutil.rmtree(store / "indexes", ignore_errors=True)  # hash everything, every run
    load = _loadavg()
    ours = measure(CURATOR.format(store=str(store), threshold=THRESHOLD))
    base = measure(
        DATASKETCH.format(path=str(corpus), subset=min(subset, docs), threshold=THRESHOLD),
        baseline=True,
    )
    scaled = base["seconds"] * docs / min(subset, docs)
    speedup = scaled / ours["seconds"]
    q = quality(store, copies)
    target = TARGETS.get(docs)
    print(
        f"curator dedup, {docs:,} docs:        {ours['seconds']:.1f} s ({docs / ours['seconds']:,.0f} docs/s), peak {ours['peak_rss_bytes'] / 1e6:,.0f} MB (target < 2000)"
    )
    print(
        f"datasketch, {min(subset, docs):,} docs:          {base['seconds']:.1f} s -> {scaled:.0f} s scaled to {docs:,}"
    )
    print(
        f"speed-up at {docs:,} docs:             {speedup:.1f}x"
        + (f"   target >= {target:g}" if target else "")
        + f"   (load average before: {load})"
    )
    print(f"quality at J >= {THRESHOLD}: recall {q['recall']:.4f}, precision {q['precision']:.4f}")
    return {
        "docs": docs,
        "curator_seconds": round(ours["seconds"], 2),
        "curator_docs_per_s": round(docs / ours["seconds"]),
        "datasketch_subset": min(subset, docs),
        "datasketch_subset_seconds": round(base["seconds"], 2),
        "datasketch_scaled_seconds": round(scaled, 1),
        "speedup": round(speedup, 1),
        "curator_peak_rss_mb": round(ours["peak_rss_bytes"] / 1e6),
        "lsh": f"{ours['bands']} x {ours['rows']}",
        "candidates": ours["candidates"],
        "verified": ours["verified"],
        "clusters": ours["clusters"],
        "loadavg": load,
        **{k: round(v, 4) for k, v in q.items()},
    }


def _loadavg() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def _sizes(text: str) -> list[int]:
    return [int(part.replace("_", "")) for part in text.split(",") if part.strip()]


def main() -> None:
    parser = sizes_parser(__doc__, "100000,1000000", "documents in the store, comma-separated")
    parser.add_argument("--docs", type=int, help="one size only (same as --sizes DOCS)")
    parser.add_argument("--subset", type=int, default=20_000)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument(
        "--text-only",
        action="store_true",
        help="only the text section (issue 16's figures): no images, kernels or image kinds",
    )
    args = parser.parse_args()
    sizes = [args.docs] if args.docs else _sizes(args.sizes)
    work = args.keep or Path(tempfile.mkdtemp(prefix="curator-bench-dedup-"))
    work.mkdir(parents=True, exist_ok=True)
    import shutil

    texts = [text_bench(work / f"text-{docs}", docs, args.subset) for docs in sizes]
    if args.text_only:
        for t in texts:
            print(f"text speed-up at {t['docs']:,} docs: {t['speedup']}x (load {t['loadavg']})")
        print(json.dumps({"text": texts, "cores": os.cpu_count()}))
        if not args.keep:
            shutil.rmtree(work)
        return
    corpus = work / f"text-{sizes[-1]}" / "corpus.parquet"
    images = images_bench(work, args.images)
    kernel = kernels(corpus, min(args.subset, sizes[-1]))
    report = {
        "text": texts,
        "image_speedup": round(images["speedup"], 2),
        "image_identical": f"{images['identical']}/{images['images']}",
        "image_recall": round(images["image_recall"], 4),
        "image_precision": round(images["image_precision"], 4),
        **{k: round(v) for k, v in kernel.items() if v == v},
        "cores": os.cpu_count(),
    }
    print(
        f"pHash, {args.images} JPEGs 512x384: imagehash {images['imagehash_seconds']:.2f} s, curator {images['curator_seconds']:.2f} s -> {images['speedup']:.2f}x (target >= 1.5); identical {report['image_identical']}"
    )
    print(
        "pHash copies (re-encoded, resized 75 %, brightened 15 %, cropped 3 %; Hamming <= 8): "
        f"recall {images['image_recall']:.4f}, precision {images['image_precision']:.4f}"
    )
    print(
        "signature kernels (docs/s): "
        + ", ".join(f"{k.replace('_docs_per_s', '')} {v:,.0f}" for k, v in kernel.items())
    )
    for t in texts:
        print(f"text speed-up at {t['docs']:,} docs: {t['speedup']}x (load {t['loadavg']})")
    print(json.dumps(report))
    if not args.keep:
        shutil.rmtree(work)


# -- image-hash kinds (`curator dedup --image-hash`) --------------------------------------------


def image_kind_variants(count: int = 100) -> tuple[list[bytes], list[int]]:
    """The edited copies `images_bench` makes for pHash — the same first `count` JPEGs (same
    seed, size and quality), each re-encoded, resized 75 %, brightened 15 % and cropped 3 % —
    made in memory, with the original each came from."""
    import io

    import numpy as np
    from PIL import Image, ImageEnhance

    rng = np.random.default_rng(1)
    variants: list[bytes] = []
    owner: list[int] = []
    for i in range(count):
        small = (rng.random((12, 16, 3)) * 255).astype(np.uint8)
        image = Image.fromarray(small).resize((512, 384), Image.Resampling.BICUBIC)
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=90)
        original = Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")
        edits = [
            original,
            original.resize((384, 288)),
            ImageEnhance.Brightness(original).enhance(1.15),
            original.crop((8, 6, 504, 378)),
        ]
        for edit in edits:
            out = io.BytesIO()
            edit.save(out, format="JPEG", quality=75)
            variants.append(out.getvalue())
            owner.append(i)
    return variants, owner


def image_kinds_bench(count: int = 100) -> dict[str, dict[str, float]]:
    """Per image-hash kind, on the same edited copies: recall and precision of the pairs found
    at `curator dedup`'s default Hamming bound (by the product's rule: informative hashes only;
    crop-resistant: any informative segment pair), and hashing speed as a ratio against
    curator's pHash in this run (1.0 = as fast; below 1 = slower). Runs after the other
    sections, or alone: ``python bench/dedup.py --image-kinds-only``."""
    import numpy as np
    import pyarrow as pa

    from curator.dedup import imagehash_kinds, phash
    from curator.dedup.clusters import DEFAULT_HAMMING

    variants, owner = image_kind_variants(count)
    owners = np.array(owner)
    same = owners[:, None] == owners[None, :]
    upper = np.triu(np.ones_like(same), k=1)
    true_pairs = same & upper
    contents = pa.array(variants, pa.binary())
    results: dict[str, dict[str, float]] = {}
    for name, kind in imagehash_kinds.KINDS.items():
        t = time.perf_counter()
        if name == "phash":
            hashes, _ok = phash.phashes(variants)
            values: list = hashes.view(np.int64).tolist()
        else:
            values = imagehash_kinds.index_values(kind.method, contents).to_pylist()
        seconds = time.perf_counter() - t
        if kind.multi:
            close = np.zeros_like(same)
            segs = [
                np.array(v, np.int64).view(np.uint64) if v else np.zeros(0, np.uint64)
                for v in values
            ]
            segs = [s[imagehash_kinds.informative(kind, s, DEFAULT_HAMMING)] for s in segs]
            for i in range(len(segs)):
                for j in range(i + 1, len(segs)):
                    if len(segs[i]) and len(segs[j]):
                        d = np.bitwise_count(segs[i][:, None] ^ segs[j][None, :])
                        close[i, j] = bool((d <= DEFAULT_HAMMING).any())
        else:
            h = np.array(values, np.int64).view(np.uint64)
            ok = imagehash_kinds.informative(kind, h, DEFAULT_HAMMING)
            distance = np.bitwise_count(h[:, None] ^ h[None, :])
            close = (distance <= DEFAULT_HAMMING) & upper & ok[:, None] & ok[None, :]
        found = close & true_pairs
        results[name] = {
            "seconds": seconds,
            "recall": float(found.sum() / true_pairs.sum()),
            "precision": float(found.sum() / max(close.sum(), 1)),
        }
    base = results["phash"]["seconds"]
    for row in results.values():
        row["speed_vs_phash"] = base / row["seconds"]
    print(
        f"image-hash kinds, {len(variants)} edited copies of {count} JPEGs (re-encoded, resized "
        f"75 %, brightened 15 %, cropped 3 %; Hamming <= {DEFAULT_HAMMING}):"
    )
    for name, row in results.items():
        print(
            f"  {name:<15} recall {row['recall']:.4f}  precision {row['precision']:.4f}  "
            f"speed {row['speed_vs_phash']:.3f}x of pHash ({row['seconds']:.2f} s)"
        )
    return results


if __name__ == "__main__":
    if sys.argv[1:2] == ["--image-kinds-only"]:
        image_kinds_bench()
    else:
        main()
        if "--text-only" not in sys.argv:
            image_kinds_bench()
