"""Assembly time and memory against a bare DuckDB query that reads the same chosen rows and
writes them to Parquet.

    python bench/assemble.py [--store-rows 4000000] [--target 1000000] [--doc-bytes 1000] [--keep DIR]

Builds a store of `store-rows` text samples of about `doc-bytes` bytes (60 % real, 30 % synthetic
generation 1, 10 % unknown), then, each in a fresh process, (1) `curator assemble`s `target` rows
under a policy with a fresh-real floor, (2) runs one DuckDB `COPY` that joins the live shards with
the rows the assembly chose and writes them to Parquet. Prints both times, the ratio (curator /
baseline; lower is better) and the peak memory of each process tree.
The target (issue 3): ratio <= 2 and curator's peak memory < 2 GB.
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
from bench.ingest import make_input

POLICY = """
name = "bench"
seed = 11
[target]
rows = {target}
[constraints]
min_fresh_real_fraction = 0.5
min_real_fraction = 0.6
max_synthetic_fraction = 0.3
max_unknown_fraction = 0.1
[output]
shard_rows = 100_000
"""

BUILD = """
import json, time, curator
store = curator.init_store({store!r})
t = time.perf_counter()
for path, source, origin, generation in {inputs!r}:
    store.ingest([path], source=source, origin=origin, generation=generation)
print(json.dumps({{"seconds": time.perf_counter() - t, "rows": store.stats().total_rows}}))
"""

ASSEMBLE = """
import json, time, curator
store = curator.open_store({store!r})
t = time.perf_counter()
m = store.assemble({policy!r}, {out!r}, lineage="bench-" + str(time.time_ns()))
print(json.dumps({{"seconds": time.perf_counter() - t, "rows": m.rows, "selection": str(m.data["selection"])}}))
"""

BASELINE = """
import json, time, duckdb
con = duckdb.connect()
t = time.perf_counter()
con.execute(
    "COPY (SELECT s.* EXCLUDE (filename, file_row_number) FROM read_parquet($paths, filename = true, file_row_number = true, union_by_name = true) s "
    "JOIN read_parquet($selection) c ON s.filename = $root || '/' || c.shard AND s.file_row_number = c.row) "
    "TO '{out}' (FORMAT parquet, COMPRESSION zstd)",
    {{"paths": {paths!r}, "selection": {selection!r}, "root": {root!r}}},
)
print(json.dumps({{"seconds": time.perf_counter() - t}}))
"""


def _loadavg() -> str:
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def one_size(work: Path, store_rows: int, target: int, doc_bytes: int) -> dict[str, object]:
    work.mkdir(parents=True, exist_ok=True)
    store = work / "store"
    if not (store / "catalog.duckdb").exists():
        started = time.perf_counter()
        parts = [
            ("web", "real", None, 0.6),
            ("gen", "synthetic", 1, 0.3),
            ("crawl", "unknown", None, 0.1),
        ]
        inputs = []
        for index, (source, origin, generation, share) in enumerate(parts):
            path = work / f"{source}.parquet"
            make_input(path, int(store_rows * share), doc_bytes, seed=index + 1)
            inputs.append((str(path), source, origin, generation))
        built = measure(BUILD.format(store=str(store), inputs=inputs))
        print(
            f"store: {built['rows']:,} rows built in {time.perf_counter() - started:.0f} s (ingest {built['seconds']:.0f} s)"
        )
        for path, *_ in inputs:
            os.remove(path)
    policy = work / "policy.toml"
    policy.write_text(POLICY.format(target=target))
    out = work / "out"
    if out.exists():
        import shutil

        shutil.rmtree(out)
    load = _loadavg()
    ours = measure(ASSEMBLE.format(store=str(store), policy=str(policy), out=str(out)))
    import curator

    opened = curator.open_store(store)
    paths = [str(store / s["path"]) for s in opened.live_shards()]
    baseline_out = work / "baseline.parquet"
    base = measure(
        BASELINE.format(
            out=str(baseline_out),
            paths=paths,
            selection=str(store / ours["selection"]),
            root=str(store),
        )
    )
    ratio = ours["seconds"] / base["seconds"]
    report = {
        "store_rows": opened.stats().total_rows,
        "target": target,
        "assembled_rows": ours["rows"],
        "curator_seconds": round(ours["seconds"], 2),
        "baseline_seconds": round(base["seconds"], 2),
        "ratio": round(ratio, 2),
        "curator_peak_rss_mb": round(ours["peak_rss_bytes"] / 1e6),
        "baseline_peak_rss_mb": round(base["peak_rss_bytes"] / 1e6),
        "loadavg": load,
        "cores": os.cpu_count(),
    }
    print(f"{target:,} of {store_rows:,} rows, load average before: {load}")
    print(f"baseline (DuckDB: read the chosen rows, write Parquet): {base['seconds']:.2f} s")
    print(
        f"curator assemble:                                      {ours['seconds']:.2f} s  ({ours['rows']:,} rows)"
    )
    print(f"ratio (curator / baseline):                            {ratio:.2f}   target <= 1.5")
    print(
        f"peak memory, curator process tree:                     {report['curator_peak_rss_mb']:,} MB   target < 2000 MB"
    )
    return report


def _size(text: str) -> tuple[int, int]:
    store_rows, _, target = text.strip().replace("_", "").partition(":")
    return int(store_rows), int(target)


def main() -> None:
    parser = sizes_parser(
        __doc__, "400000:100000,1000000:250000", "STORE_ROWS:TARGET, comma-separated"
    )
    parser.add_argument("--store-rows", type=int, help="one size only (with --target)")
    parser.add_argument("--target", type=int, default=1_000_000)
    parser.add_argument("--doc-bytes", type=int, default=1000)
    args = parser.parse_args()
    sizes = (
        [(args.store_rows, args.target)]
        if args.store_rows
        else [_size(p) for p in args.sizes.split(",") if p]
    )
    work = args.keep or Path(tempfile.mkdtemp(prefix="curator-bench-assemble-"))
    work.mkdir(parents=True, exist_ok=True)
    reports = [
        one_size(work / f"{rows}-{target}", rows, target, args.doc_bytes) for rows, target in sizes
    ]
    for r in reports:
        print(
            f"assembly ratio, {r['target']:,} of {r['store_rows']:,}: {r['ratio']} (load {r['loadavg']})"
        )
    print(json.dumps(reports))
    if not args.keep:
        import shutil

        shutil.rmtree(work)


if __name__ == "__main__":
    main()
