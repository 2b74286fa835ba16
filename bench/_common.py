"""Helpers for benchmarks: run a function in a fresh process and measure its wall time and the
peak resident memory of its whole process tree (the process and every worker it starts)."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _tree_rss(pid: int) -> int:
    """Resident bytes of `pid` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except OSError:
            continue
    total = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        try:
            with open(f"/proc/{current}/statm") as handle:
                total += int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:
            pass
        stack.extend(children.get(current, []))
    return total


#: The Arrow memory pool asked for before curator was imported (curator asks for jemalloc on
#: Linux unless one was): baselines run with it, so with PyArrow's own default when none was.
_USER_POOL = os.environ.get("ARROW_DEFAULT_MEMORY_POOL")


#: The Arrow memory pool curator asks for on Linux (curator/__init__.py), for baselines measured
#: on the same pool.
CURATOR_POOL = "jemalloc" if sys.platform.startswith("linux") else None


def measure(code: str, *, baseline: bool = False, pool: str | None = None) -> dict[str, float]:
    """Run Python `code` in a fresh interpreter; returns its wall seconds (as it reports them
    in a JSON line on stdout, key `seconds`) and the peak RSS of its process tree. A `baseline`
    runs with PyArrow's default memory pool (or the one set before the bench started), or with
    `pool` when one is given."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if pool is not None:
        env["ARROW_DEFAULT_MEMORY_POOL"] = pool
    elif baseline and _USER_POOL is None:
        env.pop("ARROW_DEFAULT_MEMORY_POOL", None)
    process = subprocess.Popen(
        [sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, text=True
    )
    peak = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak
        while not done.is_set():
            peak = max(peak, _tree_rss(process.pid))
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = process.communicate()
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise SystemExit(f"benchmark step failed ({process.returncode}):\n{code}")
    result = json.loads(out.strip().splitlines()[-1])
    result["peak_rss_bytes"] = peak
    return result


def _rounds(text: str) -> int:
    """`--repeat`: a whole number of rounds, at least one."""
    try:
        rounds = int(text)
    except ValueError:
        rounds = 0
    if rounds < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of rounds (1 or more)")
    return rounds


def sizes_parser(
    doc: str | None, default: str, help: str, *, repeat: bool = False
) -> argparse.ArgumentParser:
    """The command line every bench shares: its docstring as the description, `--sizes` (the
    sizes at which it prints its ratio, comma-separated) and `--keep DIR`; with `repeat`,
    `--repeat N` (alternated rounds of the bench and its baseline, the best of each counting)."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sizes", default=default, help=f"{help} (default: {default})")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    if repeat:
        parser.add_argument(
            "--repeat",
            type=_rounds,
            default=2,
            help="alternated rounds (at least 1); the best of each side counts",
        )
    return parser
