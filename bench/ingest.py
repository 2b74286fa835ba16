"""Ingest throughput and memory against a plain PyArrow read + zstd write of the same data.

    python bench/ingest.py [--sizes 300000x4,1000000x1] [--repeat 2] [--doc-bytes 1000] [--keep DIR]

At each size ROWS[xFILES] (default: the two of issue 16, 300,000 rows in 4 files and 1,000,000 in
one), writes FILES Parquet files of ROWS text documents in all, of about `doc-bytes` bytes, then,
each in a fresh process and `repeat` times alternated, (1) reads them with PyArrow and writes them
back with zstd, one after the other (streamed, and as whole tables), on PyArrow's default memory
pool and again on the pool curator uses, (2) `curator ingest`s them into a new store. Prints the
best time of each, the ratio (baseline seconds / curator seconds: 1.0 means as fast as the
baseline, higher is faster) against the default-pool baseline and against the same-pool one, the
peak memory of each process tree and the load average.
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

from bench._common import CURATOR_POOL, measure, sizes_parser


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


def one_size(
    work: Path, rows: int, files: int, doc_bytes: int, repeat: int = 2
) -> dict[str, object]:
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
    streams: list[float] = []
    tables: list[float] = []
    same_pool: list[float] = []
    ours_runs: list[dict[str, float]] = []
    stream_code = BASELINE.format(pairs=[(str(s), str(work / f"stream-{s.name}")) for s in srcs])
    table_code = BASELINE_TABLE.format(
        pairs=[(str(s), str(work / f"table-{s.name}")) for s in srcs]
    )
    store = work / "store"
    peaks = {"stream": 0.0, "table": 0.0}
    # Alternated rounds, the best of each: one slow moment of a shared machine would otherwise
    # decide the ratio.
    for _round in range(repeat):
        stream = measure(stream_code, baseline=True)
        table = measure(table_code, baseline=True)
        streams.append(stream["seconds"])
        tables.append(table["seconds"])
        peaks["stream"] = max(peaks["stream"], stream["peak_rss_bytes"])
        peaks["table"] = max(peaks["table"], table["peak_rss_bytes"])
        if CURATOR_POOL is not None:
            same_pool.append(measure(stream_code, pool=CURATOR_POOL)["seconds"])
        if store.exists():
            import shutil

            shutil.rmtree(store)
        ours_runs.append(measure(CURATOR.format(srcs=[str(s) for s in srcs], store=str(store))))
        assert ours_runs[-1]["ingested"] == rows, ours_runs[-1]
    ours = min(ours_runs, key=lambda r: r["seconds"])
    baseline = min(streams + tables)
    ratio = baseline / ours["seconds"]
    same_ratio = min(same_pool) / ours["seconds"] if same_pool else None
    target = TARGETS.get(rows)
    report = {
        "rows": rows,
        "files": files,
        "baseline_stream_seconds": round(min(streams), 2),
        "baseline_table_seconds": round(min(tables), 2),
        "baseline_same_pool_seconds": round(min(same_pool), 2) if same_pool else None,
        "curator_seconds": round(ours["seconds"], 2),
        "ratio": round(ratio, 2),
        "ratio_same_pool": round(same_ratio, 2) if same_ratio is not None else None,
        "curator_rows_per_second": round(rows / ours["seconds"]),
        "curator_peak_rss_mb": round(ours["peak_rss_bytes"] / 1e6),
        "baseline_stream_peak_rss_mb": round(peaks["stream"] / 1e6),
        "baseline_table_peak_rss_mb": round(peaks["table"] / 1e6),
        "loadavg": load,
        "cores": os.cpu_count(),
        "repeat": repeat,
    }
    runs = lambda xs: ", ".join(f"{x:.2f}" for x in xs)  # noqa: E731
    print(f"{rows:,} rows in {files} file(s), load average before: {load}; best of {repeat}")
    print(
        f"  baseline (PyArrow read + zstd write): {baseline:.2f} s  (streamed {runs(streams)}; whole table {runs(tables)})"
    )
    if same_pool:
        print(
            f"  the same, on curator's Arrow pool ({CURATOR_POOL}): {min(same_pool):.2f} s  ({runs(same_pool)})"
        )
    print(
        f"  curator ingest:                       {ours['seconds']:.2f} s  ({report['curator_rows_per_second']:,} rows/s, {ours['shards']} shards; {runs([r['seconds'] for r in ours_runs])})"
    )
    print(
        f"  ratio (baseline / curator):           {ratio:.2f}"
        + (f"   target >= {target}" if target else "")
    )
    if same_ratio is not None:
        print(f"  ratio against the same-pool baseline: {same_ratio:.2f}")
    print(
        f"  peak memory, curator process tree:    {report['curator_peak_rss_mb']:,} MB   target < 1000 MB"
    )
    return report


def main() -> None:
    parser = sizes_parser(
        __doc__, "300000x4,1000000x1", "ROWS[xFILES], comma-separated", repeat=True
    )
    parser.add_argument("--rows", type=int, help="one size only, one file (same as --sizes ROWS)")
    parser.add_argument("--doc-bytes", type=int, default=1000)
    args = parser.parse_args()
    sizes = [(args.rows, 1)] if args.rows else [_size(p) for p in args.sizes.split(",") if p]
    work = args.keep or Path(tempfile.mkdtemp(prefix="curator-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    reports = [
        one_size(work / f"{rows}x{files}", rows, files, args.doc_bytes, args.repeat)
        for rows, files in sizes
    ]
    for r in reports:
        print(
            f"ingest ratio at {r['rows']:,} rows x {r['files']} file(s): {r['ratio']}"
            f" (against the same Arrow pool: {r['ratio_same_pool']}; load {r['loadavg']})"
        )
    print(json.dumps(reports))
    if not args.keep:
        import shutil

        shutil.rmtree(work)


if __name__ == "__main__":
    main()
