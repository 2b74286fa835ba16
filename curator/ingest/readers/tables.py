"""Turning row records (from JSON, CSV, sidecars) into Arrow tables without losing any."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

#: A `string`/`binary` column holds at most 2 GiB - 1 bytes (32-bit offsets); a column that may
#: hold more is built as `large_string`/`large_binary`. (A module constant so tests can lower it.)
MAX_SMALL_OFFSETS = (1 << 31) - 1


def may_overflow(values: list[Any]) -> bool:
    """Whether the text or bytes in `values` may pass :data:`MAX_SMALL_OFFSETS` bytes (a
    character takes at most 4 bytes of UTF-8)."""
    total = 0
    for value in values:
        if isinstance(value, str):
            total += len(value) if value.isascii() else 4 * len(value)
        elif isinstance(value, bytes):
            total += len(value)
    return total > MAX_SMALL_OFFSETS


def string_array(values: list[Any]) -> pa.Array:
    """Text values as `string`, or `large_string` when they may pass 2 GiB."""
    return pa.array(values, pa.large_string() if may_overflow(values) else pa.string())


def _has_empty_struct(data_type: pa.DataType) -> bool:
    """Whether a type holds a struct with no fields (from ``{}``), which Parquet cannot store."""
    if pa.types.is_struct(data_type):
        return data_type.num_fields == 0 or any(
            _has_empty_struct(data_type.field(i).type) for i in range(data_type.num_fields)
        )
    if pa.types.is_list(data_type) or pa.types.is_large_list(data_type):
        return _has_empty_struct(data_type.value_type)
    return False


def records_to_table(records: list[dict[str, Any]]) -> pa.Table:
    """Columns in first-seen key order; a field whose JSON type varies between records of the
    batch (a number here, a string there), or that holds an empty object somewhere (Parquet has
    no empty structs), is kept as its JSON text rather than dropped. A text column that may pass
    2 GiB is `large_string`."""
    names: dict[str, None] = {}
    for record in records:
        for key in record:
            names.setdefault(key, None)
    arrays: list[pa.Array] = []
    for name in names:
        values = [record.get(name) for record in records]
        try:
            texts = [v for v in values if v is not None]
            if texts and all(isinstance(v, str) for v in texts):
                arrays.append(string_array(values))
            else:
                array = pa.array(values)
                if _has_empty_struct(array.type):
                    raise TypeError("an empty object")
                arrays.append(array)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, OverflowError):
            arrays.append(
                string_array(
                    [
                        None if v is None else (v if isinstance(v, str) else json.dumps(v))
                        for v in values
                    ]
                )
            )
    return pa.Table.from_arrays(arrays, names=list(names))
