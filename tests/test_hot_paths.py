"""What the performance work of issue 16 relies on: the hot paths build Arrow arrays without
`pa.array` (whose pandas probe costs 0.3-0.5 s a process), and assembly loads its solver on a
thread."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from curator.core.arrays import int64_array, int64_numpy
from tests.conftest import run_python
from tests.test_assemble import POLICY, make_store


def test_int64_arrays_round_trip_through_numpy_without_copies_of_slices():
    values = np.array([5, -1, 7, 2**40])
    array = int64_array(values)
    assert array.type == pa.int64() and array.to_pylist() == [5, -1, 7, 2**40]
    assert int64_numpy(array.slice(1, 2)).tolist() == [-1, 7]
    assert int64_numpy(pa.array([], pa.int64())).tolist() == []
    # a non-contiguous or other-typed input is copied into int64
    assert int64_array(np.arange(6, dtype=np.int32)[::2]).to_pylist() == [0, 2, 4]


@pytest.mark.parametrize(
    "array", [pa.array([1, None], pa.int64()), pa.array([1.0]), pa.array([1], pa.int32())]
)
def test_int64_numpy_refuses_what_it_cannot_view(array):
    with pytest.raises(ValueError, match="expected a null-free int64 array"):
        int64_numpy(array)


def test_an_assembly_imports_neither_pandas_nor_waits_for_the_solver(tmp_path):
    store = make_store(
        tmp_path, {("real", "web"): 120, ("synthetic", "gen"): 80, ("unknown", "crawl"): 40}
    )
    (tmp_path / "policy.json").write_text(json.dumps(POLICY))
    done = run_python(
        f"""
import json, sys, threading
import curator
from curator.assembly.policy import Policy
store = curator.open_store({str(store.root)!r})
policy = Policy.from_dict(json.load(open({str(tmp_path / "policy.json")!r})))
m = store.assemble(policy, {str(tmp_path / "out")!r}, lineage="main")
print(json.dumps({{"rows": m.rows, "pandas": "pandas" in sys.modules,
                   "solver": "scipy.optimize" in sys.modules}}))
"""
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {
        "rows": 100,
        "pandas": False,
        "solver": True,
    }
