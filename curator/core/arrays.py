"""Arrow arrays from numpy without `pa.array`.

`pa.array` asks, for any input that is not already Arrow, whether it is a pandas object, and
imports pandas to answer (0.3–0.5 s, the first time in a process). Hot paths that hold numpy
data build their arrays from its buffer instead.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def int64_array(values: np.ndarray) -> pa.Array:
    """A null-free int64 Arrow array over (a contiguous int64 copy of) `values`.

    >>> int64_array(np.array([3, 1, 2])).to_pylist()
    [3, 1, 2]
    """
    data = np.ascontiguousarray(values, dtype=np.int64)
    return pa.Array.from_buffers(pa.int64(), len(data), [None, pa.py_buffer(data)])


def int64_numpy(array: pa.Array) -> np.ndarray:
    """A read-only numpy view of a null-free int64 Arrow array (`Array.to_numpy` imports
    pandas, as `pa.array` does).

    >>> int64_numpy(int64_array(np.array([5, 6, 7])).slice(1)).tolist()
    [6, 7]
    """
    if array.null_count or not pa.types.is_int64(array.type):
        raise ValueError(f"expected a null-free int64 array, got {array.type}")
    data = array.buffers()[1]
    if data is None:
        return np.zeros(0, np.int64)
    return np.frombuffer(data, np.int64)[array.offset : array.offset + len(array)]
