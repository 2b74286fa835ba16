"""Profiling helper of docs/profile.md."""
import json, sys, time, shutil
t0 = time.perf_counter()
import curator
store = curator.open_store(sys.argv[1])
shutil.rmtree(sys.argv[1] + "/indexes", ignore_errors=True)
t = time.perf_counter()
r = store.dedup(images=False, threshold=0.8, progress=False)
m = r.methods[0]
print(json.dumps({"open": t - t0, "seconds": time.perf_counter() - t, "contents": m.contents, "candidates": m.candidate_pairs, "verified": m.verified_pairs, "clusters": m.clusters, "dups": m.duplicate_samples}))
