"""Turning row records (from JSON, CSV, sidecars) into Arrow tables without losing any."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa


def records_to_table(records: list[dict[str, Any]]) -> pa.Table:
    """Columns in first-seen key order; a field whose JSON type varies between records of the
    batch (a number here, a string there) is kept as its JSON text rather than dropped."""
    names: dict[str, None] = {}
    for record in records:
        for key in record:
            names.setdefault(key, None)
    arrays: list[pa.Array] = []
    for name in names:
        values = [record.get(name) for record in records]
        try:
            arrays.append(pa.array(values))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            arrays.append(
                pa.array(
                    [
                        None if v is None else (v if isinstance(v, str) else json.dumps(v))
                        for v in values
                    ],
                    pa.string(),
                )
            )
    return pa.Table.from_arrays(arrays, names=list(names))
