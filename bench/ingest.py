"""Ingest throughput and memory against a plain PyArrow read + zstd write of the same data.

    python bench/ingest.py [--sizes 300000x4,1000000x1] [--doc-bytes 1000] [--keep DIR]

At each size ROWS[xFILES] (default: the two of issue 16, 300,000 rows in 4 files and 1,000,000 in
one), writes FILES Parquet files of ROWS text documents in all, of about `doc-bytes` bytes, then,
each in a fresh process, (1) reads them with PyArrow and writes them back with zstd, one after
the other, (2) `curator ingest`s them into a new store. Prints both times, the ratio (baseline
seconds / curator seconds: 1.0 means as fast as the baseline, higher is faster), the peak memory
of each process tree and the load average.
Targets (issue 16): ratio >= 0.9 at 300,000 rows, >= 1.0 at 1,000,000; peak memory < 1 GB.
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


def make_input(path: Path, rows: int, doc_bytes: int, seed: int = 0) -> int:
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    vocabulary = np.array(
        [
            "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=int(n)))
            for n in rng.integers(2, 11, size=20_000)
        ]
    )
    words_per_doc = max(1, doc_bytes // 7)
    batch = 50_000
    total = 0
    with pq.ParquetWriter(
        path,
        pa.schema([("id", pa.int64()), ("text", pa.string()), ("url", pa.string())]),
        compression="zstd",
    ) as writer:
        for start in range(0, rows, batch):
            n = min(batch, rows - start)
            picks = vocabulary[rng.integers(0, len(vocabulary), size=(n, words_per_doc))]
            texts = [" ".join(row)[:doc_bytes] for row in picks]
            # a few paragraphs per document, as real text has
            texts = [t[:300] + "\n\n" + t[301:700] + "\n" + t[701:] for t in texts]
            total += sum(len(t) for t in texts)
            writer.write_table(
                pa.table(
                    {
                        "id": pa.array(range(start, start + n), pa.int64()),
                        "text": texts,
                        "url": [f"https://example.org/{i}" for i in range(start, start + n)],
                    }
                ),
                row_group_size=n,
            )
    return total


BASELINE = """
import json, time, pyarrow.parquet as pq
t = time.perf_counter()
for src, dst in {pairs!r}:
    with pq.ParquetFile(src) as f, pq.ParquetWriter(dst, f.schema_arrow, compression="zstd") as w:
        for batch in f.iter_batches(batch_size=8192):
            w.write_batch(batch)
print(json.dumps({{"seconds": time.perf_counter() - t}}))
"""

BASELINE_TABLE = """
import json, time, pyarrow.parquet as pq
t = time.perf_counter()
for src, dst in {pairs!r}:
    pq.write_table(pq.read_table(src), dst, compression="zstd")
print(json.dumps({{"seconds": time.perf_counter() - t}}))
"""

CURATOR = """
import json, time, curator
store = curator.init_store({store!r})
t = time.perf_counter()
r = store.ingest({srcs!r}, source="bench", origin="real")
print(json.dumps({{"seconds": time.perf_counter() - t, "ingested": r.ingested, "shards": r.shards}}))
"""

TARGETS = {300_000: 0.9, 1_000_000: 1.0}


def _loadavg() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def _size(text: str) -> tuple[int, int]:
    rows, _, files = text.strip().replace("_", "").partition("x")
    return int(rows), int(files or 1)


def one_size(work: Path, rows: int, files: int, doc_bytes: int) -> dict[str, object]:
    work.mkdir(parents=True, exist_ok=True)
    srcs = [work / f"input-{k}.parquet" for k in range(files)]
    if not all(src.exists() for src in srcs):
        started = time.perf_counter()
        content = 0
        for k, src in enumerate(srcs):
            share = rows // files + (1 if k < rows % files else 0)
            content += make_input(src, share, doc_bytes, seed=k)
        print(
            f"input: {rows:,} rows in {files} file(s), {content / 1e9:.2f} GB of text, {sum(s.stat().st_size for s in srcs) / 1e6:.0f} MB on disk ({time.perf_counter() - started:.1f} s to make)"
        )
    load = _loadavg()
    stream = measure(
        BASELINE.format(pairs=[(str(s), str(work / f"stream-{s.name}")) for s in srcs]),
        baseline=True,
    )
    table = measure(
        BASELINE_TABLE.format(pairs=[(str(s), str(work / f"table-{s.name}")) for s in srcs]),
        baseline=True,
    )
    baseline = min(stream["seconds"], table["seconds"])
    store = work / "store"
    if store.exists():
        import shutil

        shutil.rmtree(store)
    ours = measure(CURATOR.format(srcs=[str(s) for s in srcs], store=str(store)))
    assert ours["ingested"] == rows, ours
    ratio = baseline / ours["seconds"]
    target = TARGETS.get(rows)
    report = {
        "rows": rows,
        "files": files,
        "baseline_stream_seconds": round(stream["seconds"], 2),
        "baseline_table_seconds": round(table["seconds"], 2),
        "curator_seconds": round(ours["seconds"], 2),
        "ratio": round(ratio, 2),
        "curator_rows_per_second": round(rows / ours["seconds"]),
        "curator_peak_rss_mb": round(ours["peak_rss_bytes"] / 1e6),
        "baseline_stream_peak_rss_mb": round(stream["peak_rss_bytes"] / 1e6),
        "baseline_table_peak_rss_mb": round(table["peak_rss_bytes"] / 1e6),
        "loadavg": load,
        "cores": os.cpu_count(),
    }
    print(f"{rows:,} rows in {files} file(s), load average before: {load}")
    print(
        f"  baseline (PyArrow read + zstd write): {baseline:.2f} s  (streamed {stream['seconds']:.2f} s, whole table {table['seconds']:.2f} s)"
    )
    print(
        f"  curator ingest:                       {ours['seconds']:.2f} s  ({report['curator_rows_per_second']:,} rows/s, {ours['shards']} shards)"
    )
    print(
        f"  ratio (baseline / curator):           {ratio:.2f}"
        + (f"   target >= {target}" if target else "")
    )
    print(
        f"  peak memory, curator process tree:    {report['curator_peak_rss_mb']:,} MB   target < 1000 MB"
    )
    return report


def main() -> None:
    parser = sizes_parser(__doc__, "300000x4,1000000x1", "ROWS[xFILES], comma-separated")
    parser.add_argument("--rows", type=int, help="one size only, one file (same as --sizes ROWS)")
    parser.add_argument("--doc-bytes", type=int, default=1000)
    args = parser.parse_args()
    sizes = [(args.rows, 1)] if args.rows else [_size(p) for p in args.sizes.split(",") if p]
    work = args.keep or Path(tempfile.mkdtemp(prefix="curator-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    reports = [
        one_size(work / f"{rows}x{files}", rows, files, args.doc_bytes) for rows, files in sizes
    ]
    for r in reports:
        print(
            f"ingest ratio at {r['rows']:,} rows x {r['files']} file(s): {r['ratio']} (load {r['loadavg']})"
        )
    print(json.dumps(reports))
    if not args.keep:
        import shutil

        shutil.rmtree(work)


if __name__ == "__main__":
    main()
