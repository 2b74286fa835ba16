"""How commands print for people: counts with thousands separators (``1,234``), shares in
percent, reject reasons, constraint margins. JSON output (``--json``) keeps raw numbers.

The tables themselves are :func:`curator.core.output.render_table`.
"""

from __future__ import annotations

from typing import Any


def plural(n: int, noun: str, nouns: str | None = None) -> str:
    """``plural(1, 'file')`` → ``'1 file'``, ``plural(1234, 'file')`` → ``'1,234 files'``."""
    return f"{n:,} {noun if n == 1 else (nouns or noun + 's')}"


def tokenizer_identity(info: dict[str, object]) -> str:
    """How summaries name the tokenizer that counted: ``sha256 …, vocabulary N``."""
    return f"sha256 {info['sha256']}, vocabulary {info['vocab_size']:,}"


def pct(value: float | None) -> str:
    """A fraction as a percentage with one decimal, ``-`` when unknown."""
    return "-" if value is None else f"{100 * value:.1f}%"


def reject_codes(codes: dict[str, int]) -> str:
    """``{'malformed_json': 1234}`` → ``'malformed_json: 1,234'``, the most frequent first."""
    return ", ".join(
        f"{code}: {n:,}" for code, n in sorted(codes.items(), key=lambda kv: (-kv[1], kv[0]))
    )


def first_reject_lines(first: dict[str, str]) -> list[str]:
    """The first rejected record of each reason, which says how to fix it."""
    return [f"    {code}: {reason}" for code, reason in first.items()]


def input_output_lines(outputs_by_input: dict[str, list[str]], out_dir: str) -> list[str]:
    """Which outputs each input became, one line per input: ``a.jsonl → part-00000.parquet``.

    Inputs that were written together (a folder of images or text files) share their outputs and
    are shown on one line as ``first … last (N files)``. Output names are relative to `out_dir`.
    """
    import os

    groups: list[tuple[list[str], list[str]]] = []
    for source, outputs in outputs_by_input.items():
        if groups and groups[-1][1] == outputs and outputs:
            groups[-1][0].append(source)
        else:
            groups.append(([source], outputs))
    lines = []
    for sources, outputs in groups:
        names = ", ".join(os.path.relpath(path, out_dir) for path in outputs) or "(nothing kept)"
        label = (
            sources[0]
            if len(sources) == 1
            else f"{sources[0]} … {sources[-1]} ({len(sources):,} files)"
        )
        lines.append(f"  {label} → {names}")
    return lines


def format_constraint(item: dict[str, Any]) -> tuple[str, str]:
    """A manifest constraint as (achieved against its bound, margin) for a table: fractions in
    percent and percentage points, `max_generation` in generations, `min_origin_confidence` as
    a confidence."""
    kind = item.get("kind", "fraction")
    relation = item.get("relation") or (">=" if item["name"].startswith("min") else "<=")
    if kind == "generation":
        return f"{item['achieved']} {relation} {item['bound']}", f"{item['margin']:+d} gen"
    if kind == "confidence":
        return (
            f"{item['achieved']:.2f} {relation} {item['bound']:.2f}",
            f"{item['margin']:+.2f}",
        )
    return (
        f"{100 * item['achieved']:.1f}% {relation} {100 * item['bound']:.1f}%",
        f"{100 * item['margin']:+.1f} pt",
    )
