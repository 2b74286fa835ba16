"""Profiling helper of docs/profile.md: time `store.ingest` of every Parquet file of a folder.

python bench/profile/ing.py INPUT_DIR STORE_DIR
"""

import glob
import json
import shutil
import sys
import time

started = time.perf_counter()
import curator  # noqa: E402

imported = time.perf_counter()
shutil.rmtree(sys.argv[2], ignore_errors=True)
store = curator.init_store(sys.argv[2])
ready = time.perf_counter()
result = store.ingest(sorted(glob.glob(sys.argv[1] + "/*.parquet")), source="bench", origin="real")
done = time.perf_counter()
print(
    json.dumps(
        {
            "import": imported - started,
            "init": ready - imported,
            "ingest": done - ready,
            "rows": result.ingested,
            "shards": result.shards,
        }
    )
)
