"""Profiling helper of docs/profile.md: time `store.dedup(images=False)` with every signature
computed (the index is deleted first).

    python bench/profile/dd.py STORE_DIR
"""

import json
import shutil
import sys
import time

started = time.perf_counter()
import curator  # noqa: E402

store = curator.open_store(sys.argv[1])
shutil.rmtree(sys.argv[1] + "/indexes", ignore_errors=True)
opened = time.perf_counter()
result = store.dedup(images=False, threshold=0.8, progress=False)
method = result.methods[0]
print(
    json.dumps(
        {
            "open": opened - started,
            "seconds": time.perf_counter() - opened,
            "contents": method.contents,
            "candidates": method.candidate_pairs,
            "verified": method.verified_pairs,
            "clusters": method.clusters,
            "dups": method.duplicate_samples,
        }
    )
)
