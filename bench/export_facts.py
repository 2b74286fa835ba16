"""curator/export/facts.py `_models`: the pyarrow + Python loop it had (main) against the polars
group_by it has now, in one run, on the fact columns of a set of N rows, half synthetic.

    python bench/export_facts.py [ROWS]     # default 1000000
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from curator.export import facts


def loop(table):  # the code on main
    synthetic = table.filter(pc.is_valid(table["model"]))
    per_model = {}
    for row in synthetic.select(["model", "generation", "source"]).to_pylist():
        entry = per_model.setdefault(row["model"], {"rows": 0, "gens": set(), "sources": set()})
        entry["rows"] += 1
        if row["generation"] is not None:
            entry["gens"].add(int(row["generation"]))
        entry["sources"].add(row["source"])
    return [
        (k, v["rows"], tuple(sorted(v["gens"])), tuple(sorted(v["sources"])))
        for k, v in sorted(per_model.items())
    ]


n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
rng = np.random.default_rng(0)
synthetic = rng.random(n) < 0.5
model = np.where(synthetic, np.char.add("model-", rng.integers(0, 8, n).astype(str)), None)
table = pa.table(
    {
        "source": pa.array(np.char.add("src-", rng.integers(0, 20, n).astype(str))),
        "generation": pa.array(np.where(synthetic, rng.integers(1, 4, n), 0)),
        "model": pa.array(model.tolist(), pa.string()),
    }
)
t = time.perf_counter()
import polars  # noqa: E402, F401

t_import = time.perf_counter() - t
facts._models(table.slice(0, 10), None)  # warm
t = time.perf_counter()
old = loop(table)
t_old = time.perf_counter() - t
t = time.perf_counter()
new = facts._models(table, None)
t_new = time.perf_counter() - t
assert old == [(m.name, m.rows, m.generations, m.sources) for m in new]
print(
    f"{n:,} rows: pyarrow+loop {t_old:.3f} s, polars {t_new:.3f} s -> {t_old / t_new:.1f}x (import polars {t_import:.2f} s, once)"
)
