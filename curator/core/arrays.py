"""Arrow arrays to and from numpy without `pa.array` or `Array.to_numpy`.

Both ask, for their input or output, whether pandas is involved, and import pandas to answer
(0.3–0.5 s, the first time in a process). Hot paths that hold numbers build their arrays from the
numpy buffer and read them back as views instead.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

_TYPES: dict[np.dtype[Any], pa.DataType] = {
    np.dtype(np.int8): pa.int8(),
    np.dtype(np.int16): pa.int16(),
    np.dtype(np.int32): pa.int32(),
    np.dtype(np.int64): pa.int64(),
    np.dtype(np.uint8): pa.uint8(),
    np.dtype(np.uint16): pa.uint16(),
    np.dtype(np.uint32): pa.uint32(),
    np.dtype(np.uint64): pa.uint64(),
    np.dtype(np.float32): pa.float32(),
    np.dtype(np.float64): pa.float64(),
}
_DTYPES: dict[pa.DataType, np.dtype[Any]] = {arrow: dtype for dtype, arrow in _TYPES.items()}


def from_numpy(values: np.ndarray) -> pa.Array:
    """A null-free Arrow array of the numbers or booleans of a 1-d numpy array (the buffer is
    shared when `values` is contiguous).

    >>> from_numpy(np.array([3, 1, 2])).to_pylist()
    [3, 1, 2]
    >>> from_numpy(np.array([True, False, True])).to_pylist()
    [True, False, True]
    """
    values = np.asarray(values)
    if values.ndim != 1:
        raise ValueError(f"expected a 1-d array, got shape {values.shape}")
    if values.dtype == np.bool_:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
    arrow = _TYPES.get(values.dtype)
    if arrow is None:
        raise ValueError(f"expected numbers or booleans, got numpy dtype {values.dtype}")
    data = np.ascontiguousarray(values)
    return pa.Array.from_buffers(arrow, len(data), [None, pa.py_buffer(data)])


def to_numpy(array: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """The values of a null-free Arrow array of numbers or booleans, as numpy (a read-only view
    of the Arrow buffer for numbers; booleans are unpacked from their bits).

    >>> to_numpy(from_numpy(np.array([5, 6, 7])).slice(1)).tolist()
    [6, 7]
    """
    if isinstance(array, pa.ChunkedArray):
        array = array.chunk(0) if array.num_chunks == 1 else array.combine_chunks()
    if array.null_count:
        raise ValueError(f"expected an array without nulls, got {array.null_count} null(s)")
    data = array.buffers()[1]
    n, offset = len(array), array.offset
    if pa.types.is_boolean(array.type):
        if data is None or n == 0:
            return np.zeros(0, np.bool_)
        bits = np.unpackbits(np.frombuffer(data, np.uint8), count=offset + n, bitorder="little")
        return bits[offset:].astype(np.bool_)
    dtype = _DTYPES.get(array.type)
    if dtype is None:
        raise ValueError(f"expected numbers or booleans, got Arrow type {array.type}")
    if data is None or n == 0:
        return np.zeros(0, dtype)
    return np.frombuffer(data, dtype)[offset : offset + n]


def string_array(values: list[str | None]) -> pa.StringArray:
    """An Arrow string array of a few Python strings (None for null), built from buffers
    (`pa.array` would probe for pandas).

    >>> string_array(["warm up", None]).to_pylist()
    ['warm up', None]
    """
    encoded = [b"" if v is None else v.encode("utf-8") for v in values]
    offsets = np.zeros(len(values) + 1, np.int32)
    np.cumsum([len(b) for b in encoded], out=offsets[1:])
    valid = np.array([v is not None for v in values], np.bool_)
    nulls = len(values) - int(valid.sum())
    bitmap = pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None
    return pa.StringArray.from_buffers(
        len(values),
        pa.py_buffer(offsets),
        pa.py_buffer(b"".join(encoded)),
        bitmap,
        null_count=nulls,
    )


def string_scalar(value: str) -> pa.StringScalar:
    """An Arrow string scalar (`pa.scalar` probes for pandas too), e.g. for `pc.fill_null`.

    >>> string_scalar("").as_py()
    ''
    """
    return string_array([value])[0]
