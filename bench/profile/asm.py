"""Profiling helper of docs/profile.md."""
import json, time, sys, shutil
t0=time.perf_counter()
import curator
store = curator.open_store(sys.argv[1])
shutil.rmtree(sys.argv[3], ignore_errors=True)
t = time.perf_counter()
m = store.assemble(sys.argv[2], sys.argv[3], lineage="bench-" + str(time.time_ns()))
print(json.dumps({"open": t-t0, "seconds": time.perf_counter() - t, "rows": m.rows}))
