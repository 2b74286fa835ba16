"""Profiling helper of docs/profile.md."""
import sys, collections, re
rate = float(sys.argv[2]); rules = [r.split("=",1) for r in sys.argv[3:]]
c = collections.Counter(); total = 0
for line in open(sys.argv[1]):
    stack, n = line.rsplit(" ", 1); n = int(n); total += n
    fr = stack.split(";"); k = next((i for i, f in enumerate(fr) if f.startswith("<module>")), -1); stack = ";".join(fr[k+1:])
    for name, pat in rules:
        if re.search(pat, stack): c[name] += n; break
    else: c["other"] += n
for name, _ in rules + [("other", "")]:
    print(f"| {name} | {c[name]/rate:.2f} | {100*c[name]/total:.0f} % |")
print(f"| total sampled thread-seconds | {total/rate:.2f} | |")
