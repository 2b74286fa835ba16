"""Formatting results for people (aligned tables, summaries) and for programs (CSV, JSON, Parquet)."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from datetime import date, datetime
from typing import IO, TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:  # pyarrow is imported by whoever passes a reader; `--help` must not load it
    import pyarrow as pa

OutputFormat = Literal["table", "csv", "json", "parquet"]
OUTPUT_FORMATS: tuple[str, ...] = ("table", "csv", "json", "parquet")


def human_bytes(n: float) -> str:
    """``1536`` → ``'1.5 KiB'``."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    value = float(n)
    for unit in units:
        if abs(value) < 1024 or unit == units[-1]:
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover


def parse_size(text: str) -> int:
    """``'256MB'``, ``'1GiB'``, ``'4096'`` → bytes. Raises ``ValueError``."""
    units = {
        "": 1, "b": 1,
        "k": 1000, "kb": 1000, "kib": 1024,
        "m": 1000**2, "mb": 1000**2, "mib": 1024**2,
        "g": 1000**3, "gb": 1000**3, "gib": 1024**3,
    }  # fmt: skip
    cleaned = text.strip().lower().replace(" ", "")
    number = cleaned.rstrip("abcdefghijklmnopqrstuvwxyz")
    unit = cleaned[len(number) :]
    if not number or unit not in units:
        raise ValueError(f"{text!r} is not a size (examples: 64MB, 1GiB, 1000000)")
    value = float(number) * units[unit]
    if value < 1 or math.isnan(value):
        raise ValueError(f"{text!r} is not a positive size")
    return int(value)


def _cell(value: Any, thousands: bool = True) -> str:
    if value is None:
        return "NULL"
    if thousands and isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    if isinstance(value, bytes):
        return f"<{len(value):,} bytes>"
    if isinstance(value, float):
        return f"{value:.6g}"
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value)
    text = text.replace("\n", "\\n")
    return text if len(text) <= 80 else text[:77] + "…"


def render_table(
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    right: Sequence[bool] | None = None,
    thousands: bool = True,
) -> str:
    """A plain aligned text table (no colour, so it pipes and diffs cleanly).

    Integers are counts with thousands separators (``1,234``) unless `thousands` is false, as
    for query results, whose integers may be years or ids.
    """
    cells = [[_cell(v, thousands) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    if right is None:
        right = [
            all(
                isinstance(row[i], int | float) and not isinstance(row[i], bool)
                for row in rows
                if row[i] is not None
            )
            and any(row[i] is not None for row in rows)
            for i in range(len(columns))
        ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            (v.rjust(w) if r else v.ljust(w)) for v, w, r in zip(values, widths, right, strict=True)
        ).rstrip()

    out = [line(list(columns)), line(["-" * w for w in widths])]
    out += [line(row) for row in cells]
    return "\n".join(out)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "__float__"):
        return float(value)
    return str(value)


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=_json_default, ensure_ascii=False)


def write_result(
    reader: pa.RecordBatchReader, fmt: str, out: IO[str], *, max_table_rows: int = 1000
) -> int:
    """Write a query result to `out` as an aligned table (the first `max_table_rows` rows), CSV
    with a header, or a JSON list of objects, streaming batch by batch. Returns rows written."""
    names = reader.schema.names
    rows = 0
    if fmt == "table":
        shown: list[tuple[Any, ...]] = []
        more = False
        for batch in reader:
            for row in batch.to_pylist():
                if len(shown) < max_table_rows:
                    shown.append(tuple(row.values()))
                else:
                    more = True
                    break
            if more:
                break
        out.write(render_table(names, shown, thousands=False) + "\n")
        if more:
            out.write(
                f"(first {max_table_rows:,} rows shown; --format csv|json|parquet -o FILE writes all)\n"
            )
        else:
            out.write(f"({len(shown):,} row{'s' if len(shown) != 1 else ''})\n")
        return len(shown)
    if fmt == "csv":
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(names)
        for batch in reader:
            for row in batch.to_pylist():
                writer.writerow(
                    [
                        ""
                        if v is None
                        else _json_default(v)
                        if isinstance(v, bytes | datetime | date)
                        else v
                        for v in row.values()
                    ]
                )
                rows += 1
        return rows
    if fmt == "json":
        out.write("[")
        for batch in reader:
            for row in batch.to_pylist():
                out.write(
                    ("\n  " if rows == 0 else ",\n  ")
                    + json.dumps(row, default=_json_default, ensure_ascii=False)
                )
                rows += 1
        out.write("\n]\n" if rows else "]\n")
        return rows
    raise ValueError(f"cannot print format {fmt!r}")
