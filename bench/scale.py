"""Ingest + dedup + assemble of the same data on the local engine and on Ray with 1 and 2 workers.

    python bench/scale.py [--rows 200000] [--files 8] [--doc-bytes 600] [--keep DIR]

Writes `files` JSON Lines files of text documents (one in ten a near copy of another), then, each
in a fresh process and a new store, runs ingest, dedup (text) and assemble: on the local engine
(a process pool with all cores), and on a local Ray started by the engine with 1 and with 2 CPUs
(so 1 or 2 tasks at a time). Prints each step's seconds, the total, its ratio to the local
engine's (local seconds / this engine's seconds: above 1 is faster), and the peak memory of the
process tree (the driver, its workers, and Ray's own processes). Ray's seconds include starting
Ray (a few seconds): its fixed cost per command.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import measure


def make_inputs(directory: Path, rows: int, files: int, doc_bytes: int, seed: int = 0) -> int:
    """`rows` documents over `files` JSON Lines files; every tenth is a near copy of an earlier
    one (one word changed). Returns the bytes written."""
    import numpy as np

    rng = np.random.default_rng(seed)
    vocabulary = np.array(
        [
            "".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), size=int(n)))
            for n in rng.integers(2, 11, size=20_000)
        ]
    )
    words = max(8, doc_bytes // 7)
    directory.mkdir(parents=True, exist_ok=True)
    per_file = -(-rows // files)
    total = 0
    for number in range(files):
        start, stop = number * per_file, min(rows, (number + 1) * per_file)
        picks = vocabulary[rng.integers(0, len(vocabulary), size=(stop - start, words))]
        for i in range(10, len(picks), 10):  # a near copy of the row 7 before it
            picks[i] = picks[i - 7]
            picks[i, int(rng.integers(words))] = "changed"
        lines = [
            json.dumps({"id": start + i, "text": " ".join(row)}) + "\n"
            for i, row in enumerate(picks)
        ]
        data = "".join(lines).encode()
        (directory / f"part-{number:03d}.jsonl").write_bytes(data)
        total += len(data)
    return total


RUN = """
import inspect, json, time, curator
from curator.engine.local import LocalEngine
from curator.engine.ray import RayEngine
engine = LocalEngine() if {engine!r} == "local" else RayEngine(num_cpus={cpus!r})
store = curator.init_store({store!r})
steps = {{}}
with engine:
    t = start = time.perf_counter()
    r = store.ingest(sorted(__import__("glob").glob({inputs!r} + "/*.jsonl")), source="bench",
                     origin="real", id_column="id", engine=engine)
    steps["ingest"] = time.perf_counter() - t
    t = time.perf_counter()
    d = store.dedup(engine=engine, images=False)
    steps["dedup"] = time.perf_counter() - t
    t = time.perf_counter()
    extra = {{"engine": engine}} if "engine" in inspect.signature(store.assemble).parameters else {{}}
    m = store.assemble({policy!r}, {out!r}, **extra)
    steps["assemble"] = time.perf_counter() - t
print(json.dumps({{"seconds": time.perf_counter() - start, "steps": steps, "ingested": r.ingested,
                  "duplicates": sum(x.duplicate_samples for x in d.methods),
                  "selected": m.data["composition"]["overall"]["rows"]}}))
"""

POLICY = """
seed = 1
[target]
rows = {rows}
[dedup]
near = true
[output]
shard_rows = {shard_rows}
"""


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--files", type=int, default=8)
    parser.add_argument("--doc-bytes", type=int, default=600)
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    args = parser.parse_args()
    work = args.keep or Path(tempfile.mkdtemp(prefix="curator-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    inputs = work / "inputs"
    started = time.perf_counter()
    size = make_inputs(inputs, args.rows, args.files, args.doc_bytes)
    print(
        f"input: {args.rows:,} rows in {args.files} files, {size / 1e6:.0f} MB "
        f"({time.perf_counter() - started:.1f} s to make)"
    )
    policy = work / "policy.toml"
    policy.write_text(POLICY.format(rows=args.rows // 2, shard_rows=max(1, args.rows // 8)))
    runs = {}
    for label, engine, cpus in (("local", "local", None), ("ray-1", "ray", 1), ("ray-2", "ray", 2)):
        runs[label] = measure(
            RUN.format(
                engine=engine,
                cpus=cpus,
                store=str(work / f"store-{label}"),
                inputs=str(inputs),
                policy=str(policy),
                out=str(work / f"out-{label}"),
            )
        )
    base = runs["local"]["seconds"]
    print(
        f"{'engine':8} {'ingest':>8} {'dedup':>8} {'assemble':>9} {'total':>8} {'ratio':>6} {'peak MB':>8}"
    )
    for label, run in runs.items():
        steps = run["steps"]
        print(
            f"{label:8} {steps['ingest']:8.1f} {steps['dedup']:8.1f} {steps['assemble']:9.1f} "
            f"{run['seconds']:8.1f} {base / run['seconds']:6.2f} {run['peak_rss_bytes'] / 1e6:8.0f}"
        )
    first = runs["local"]
    assert all(
        (r["ingested"], r["duplicates"], r["selected"])
        == (first["ingested"], first["duplicates"], first["selected"])
        for r in runs.values()
    ), runs
    print(json.dumps({"rows": args.rows, "files": args.files, "runs": runs}))


if __name__ == "__main__":
    main()
