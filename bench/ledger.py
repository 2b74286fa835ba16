"""The commit of a row-level ledger: a 2,000,000-row usage ledger registered as a file against
the same rows inserted into a catalog table (how curator recorded usage before ledger files),
in the same run.

    python bench/ledger.py [--rows 2000000] [--keep DIR]

Both start from the same Parquet file of usage rows (what an assembly stages from its
selection). The file way stages the ledger file (outside the lock), then commits: take the write
lock, place the file, register it and redefine the view in one transaction. The table way
commits the rows: one transaction inserting them into a `usage` table. Prints each commit's
seconds, the ratio (target: the file commit under 0.2 s), and the staging time beside it.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

LEGACY_USAGE = """
CREATE TABLE legacy_usage (
    manifest_id VARCHAR NOT NULL, content_hash VARCHAR NOT NULL, origin VARCHAR NOT NULL,
    fresh BOOLEAN NOT NULL, sample_id VARCHAR, source VARCHAR, generation SMALLINT, model VARCHAR
)
"""


def usage_rows(path: str, rows: int, seed: int = 0) -> None:
    """A Parquet file of `rows` usage rows of one manifest."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    hashes = [f"{a:016x}{b:016x}" for a, b in rng.integers(0, 2**63, size=(rows, 2))]
    synthetic = rng.random(rows) < 0.3
    table = pa.table(
        {
            "manifest_id": pa.array(["20260101T000000Z-bench"] * rows),
            "content_hash": pa.array(hashes),
            "origin": pa.array(np.where(synthetic, "synthetic", "real")),
            "fresh": pa.array(~synthetic & (rng.random(rows) < 0.5)),
            "sample_id": pa.array([f"web/{i}" for i in range(rows)]),
            "source": pa.array(["web"] * rows),
            "generation": pa.array(np.where(synthetic, 1, 0).astype(np.int16)),
            "model": pa.array(np.where(synthetic, "model-v1", None)),
        }
    )
    pq.write_table(table, path, compression="zstd")


def file_commit(root: str, rows_path: str) -> tuple[float, float]:
    """Stage the ledger file, then commit it; (staging seconds, commit seconds)."""
    import pyarrow.parquet as pq

    import curator
    from curator.store import ledgers
    from curator.store.locking import write_lock

    store = curator.init_store(root)
    os.makedirs(os.path.join(root, ".staging"), exist_ok=True)
    work = tempfile.mkdtemp(prefix="assemble-", dir=os.path.join(root, ".staging"))
    clock = time.perf_counter()
    staged = ledgers.write_ledger(
        work,
        "usage",
        pq.ParquetFile(rows_path).iter_batches(batch_size=1 << 20),
        scope="20260101T000000Z-bench",
        run_id="20260101T000000Z-bench",
    )
    staging = time.perf_counter() - clock
    clock = time.perf_counter()
    with write_lock(root, "bench"):
        ledgers.commit_ledgers(root, work, [staged], lambda: store.connect(read_only=False))
    commit = time.perf_counter() - clock
    with store.connect() as con:
        assert con.execute("SELECT count(*) FROM usage").fetchall()[0][0] == staged.rows
    return staging, commit


def table_commit(root: str, rows_path: str) -> float:
    """Insert the rows into a catalog table in one transaction; its seconds."""
    import curator
    from curator.store.locking import write_lock

    store = curator.init_store(root)
    with store.connect(read_only=False) as con:
        con.execute(LEGACY_USAGE)
    clock = time.perf_counter()
    with write_lock(root, "bench"), store.connect(read_only=False) as con:
        con.execute("BEGIN TRANSACTION")
        con.execute("INSERT INTO legacy_usage SELECT * FROM read_parquet(?)", [rows_path])
        con.execute("COMMIT")
    return time.perf_counter() - clock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--keep", help="work here and keep the stores (default: a temp dir)")
    args = parser.parse_args()
    base = args.keep or tempfile.mkdtemp(prefix="curator-bench-ledger-")
    os.makedirs(base, exist_ok=True)
    rows_path = os.path.join(base, "usage-rows.parquet")
    usage_rows(rows_path, args.rows)
    staging, new = file_commit(os.path.join(base, "files"), rows_path)
    old = table_commit(os.path.join(base, "table"), rows_path)
    print(f"usage ledger of {args.rows:,} rows")
    print(f"  commit, rows into a catalog table: {old:8.3f} s")
    print(f"  commit, one registered file:       {new:8.3f} s  (target < 0.2 s)")
    print(f"  ratio (file / table):              {new / old:8.4f}  ({old / new:,.0f}x faster)")
    print(f"  staging the file (before the lock): {staging:7.3f} s")
    if not args.keep:
        import shutil

        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
