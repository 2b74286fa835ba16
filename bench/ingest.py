"""Ingest throughput and memory against a plain PyArrow read + zstd write of the same data.

    python bench/ingest.py [--rows 1000000] [--doc-bytes 1000] [--keep DIR]

Writes a Parquet file of `rows` text documents of about `doc-bytes` bytes, then, each in a fresh
process, (1) reads it with PyArrow and writes it back with zstd, (2) `curator ingest`s it into a
new store. Prints both times, the ratio (baseline seconds / curator seconds: 1.0 means as fast as
the baseline, higher is faster) and the peak memory of each process tree.
The target (issue 2): ratio >= 0.5 and curator's peak memory < 1 GB whatever the input size.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import measure


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
with pq.ParquetFile({src!r}) as f, pq.ParquetWriter({dst!r}, f.schema_arrow, compression="zstd") as w:
    for batch in f.iter_batches(batch_size=8192):
        w.write_batch(batch)
print(json.dumps({{"seconds": time.perf_counter() - t}}))
"""

BASELINE_TABLE = """
import json, time, pyarrow.parquet as pq
t = time.perf_counter()
pq.write_table(pq.read_table({src!r}), {dst!r}, compression="zstd")
print(json.dumps({{"seconds": time.perf_counter() - t}}))
"""

CURATOR = """
import json, time, curator
store = curator.init_store({store!r})
t = time.perf_counter()
r = store.ingest([{src!r}], source="bench", origin="real")
print(json.dumps({{"seconds": time.perf_counter() - t, "ingested": r.ingested, "shards": r.shards}}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--doc-bytes", type=int, default=1000)
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="curator-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    src = work / "input.parquet"
    started = time.perf_counter()
    content = make_input(src, args.rows, args.doc_bytes)
    print(
        f"input: {args.rows:,} rows, {content / 1e9:.2f} GB of text, {src.stat().st_size / 1e6:.0f} MB on disk ({time.perf_counter() - started:.1f} s to make)"
    )
    stream = measure(BASELINE.format(src=str(src), dst=str(work / "baseline-stream.parquet")))
    table = measure(BASELINE_TABLE.format(src=str(src), dst=str(work / "baseline-table.parquet")))
    baseline = min(stream["seconds"], table["seconds"])
    store = work / "store"
    ours = measure(CURATOR.format(src=str(src), store=str(store)))
    assert ours["ingested"] == args.rows, ours
    ratio = baseline / ours["seconds"]
    report = {
        "rows": args.rows,
        "baseline_stream_seconds": round(stream["seconds"], 2),
        "baseline_table_seconds": round(table["seconds"], 2),
        "curator_seconds": round(ours["seconds"], 2),
        "ratio": round(ratio, 2),
        "curator_rows_per_second": round(args.rows / ours["seconds"]),
        "curator_peak_rss_mb": round(ours["peak_rss_bytes"] / 1e6),
        "baseline_stream_peak_rss_mb": round(stream["peak_rss_bytes"] / 1e6),
        "baseline_table_peak_rss_mb": round(table["peak_rss_bytes"] / 1e6),
        "cores": os.cpu_count(),
    }
    print(
        f"baseline (PyArrow read + zstd write): {baseline:.2f} s  (streamed {stream['seconds']:.2f} s, whole table {table['seconds']:.2f} s)"
    )
    print(
        f"curator ingest:                       {ours['seconds']:.2f} s  ({report['curator_rows_per_second']:,} rows/s, {ours['shards']} shards)"
    )
    print(f"ratio (baseline / curator):           {ratio:.2f}   target >= 0.5")
    print(
        f"peak memory, curator process tree:    {report['curator_peak_rss_mb']:,} MB   target < 1000 MB"
    )
    print(json.dumps(report))
    if not args.keep:
        import shutil

        shutil.rmtree(work)


if __name__ == "__main__":
    main()
