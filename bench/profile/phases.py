"""Profiling helper of docs/profile.md: add up a `py-spy record -f raw` profile by phase.

    python bench/profile/phases.py PROFILE.txt SAMPLES_PER_SECOND NAME=REGEX ...

Each stack (below the script's own top-level frame) counts for the first rule whose regular
expression it matches, or for `other`; prints a Markdown table of thread-seconds and shares.
"""

import collections
import re
import sys

rate = float(sys.argv[2])
rules = [rule.split("=", 1) for rule in sys.argv[3:]]
seconds: collections.Counter[str] = collections.Counter()
total = 0
with open(sys.argv[1]) as profile:
    for line in profile:
        stack, count = line.rsplit(" ", 1)
        n = int(count)
        total += n
        frames = stack.split(";")
        top = next((i for i, f in enumerate(frames) if f.startswith("<module>")), -1)
        below = ";".join(frames[top + 1 :])
        name = next((name for name, pattern in rules if re.search(pattern, below)), "other")
        seconds[name] += n
for name, _pattern in [*rules, ("other", "")]:
    print(f"| {name} | {seconds[name] / rate:.2f} | {100 * seconds[name] / total:.0f} % |")
print(f"| total sampled thread-seconds | {total / rate:.2f} | |")
