"""Profiling helper of docs/profile.md."""
import json, sys, time, glob, shutil
t0 = time.perf_counter()
import curator
t1 = time.perf_counter()
shutil.rmtree(sys.argv[2], ignore_errors=True)
store = curator.init_store(sys.argv[2])
t2 = time.perf_counter()
r = store.ingest(sorted(glob.glob(sys.argv[1] + "/*.parquet")), source="bench", origin="real")
t3 = time.perf_counter()
print(json.dumps({"import": t1-t0, "init": t2-t1, "ingest": t3-t2, "rows": r.ingested, "shards": r.shards}))
