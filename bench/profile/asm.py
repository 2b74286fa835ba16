"""Profiling helper of docs/profile.md: time `store.assemble` of a policy into a new folder.

python bench/profile/asm.py STORE_DIR POLICY.toml OUT_DIR
"""

import json
import shutil
import sys
import time

started = time.perf_counter()
import curator  # noqa: E402

store = curator.open_store(sys.argv[1])
shutil.rmtree(sys.argv[3], ignore_errors=True)
opened = time.perf_counter()
manifest = store.assemble(sys.argv[2], sys.argv[3], lineage="bench-" + str(time.time_ns()))
print(
    json.dumps(
        {"open": opened - started, "seconds": time.perf_counter() - opened, "rows": manifest.rows}
    )
)
