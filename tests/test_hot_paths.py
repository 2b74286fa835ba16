"""What the performance work of issue 16 relies on: the hot paths build and read Arrow arrays
without `pa.array` or `Array.to_numpy` (whose pandas probe costs 0.3-0.5 s a process), and
assembly loads its solver on a thread."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from curator.core.arrays import from_numpy, string_array, string_scalar, to_numpy
from tests.conftest import run_python
from tests.test_assemble import POLICY, make_store


def test_numpy_round_trips_through_arrow_buffers():
    values = np.array([5, -1, 7, 2**40])
    array = from_numpy(values)
    assert array.type == pa.int64() and array.to_pylist() == [5, -1, 7, 2**40]
    assert to_numpy(array.slice(1, 2)).tolist() == [-1, 7]
    chunked = pa.chunked_array([array.slice(0, 1), array.slice(2)])
    assert to_numpy(chunked).tolist() == [5, 7, 2**40]
    assert to_numpy(pa.array([], pa.int64())).tolist() == []
    # a non-contiguous input is copied; other number types keep their type
    assert from_numpy(np.arange(6, dtype=np.int32)[::2]).to_pylist() == [0, 2, 4]
    assert from_numpy(np.array([0.5, 2.0])).type == pa.float64()
    assert to_numpy(pa.array([1, 2], pa.uint32())).dtype == np.uint32
    # booleans, from any bit offset
    bits = [True, False, True, True, False, False, True, False, True, True]
    assert from_numpy(np.array(bits)).to_pylist() == bits
    assert to_numpy(pa.array(bits).slice(3)).tolist() == bits[3:]


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (pa.array([1, None], pa.int64()), "expected an array without nulls, got 1 null"),
        (pa.array(["x"]), "expected numbers or booleans, got Arrow type string"),
    ],
)
def test_to_numpy_refuses_what_it_cannot_view(array, message):
    with pytest.raises(ValueError, match=message):
        to_numpy(array)


def test_from_numpy_refuses_objects_and_matrices():
    with pytest.raises(ValueError, match="got numpy dtype object"):
        from_numpy(np.array(["x"], dtype=object))
    with pytest.raises(ValueError, match=r"expected a 1-d array, got shape \(2, 2\)"):
        from_numpy(np.zeros((2, 2)))


def test_strings_from_buffers_keep_nulls_and_utf8():
    array = string_array(["warm up", None, "é", ""])
    assert array.to_pylist() == ["warm up", None, "é", ""] and array.null_count == 1
    assert string_array([]).to_pylist() == []
    assert string_scalar("x").as_py() == "x"


def test_an_assembly_imports_no_pandas_and_has_its_solver(tmp_path):
    store = make_store(
        tmp_path, {("real", "web"): 120, ("synthetic", "gen"): 80, ("unknown", "crawl"): 40}
    )
    (tmp_path / "policy.json").write_text(json.dumps(POLICY))
    done = run_python(
        f"""
import json, sys
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


def test_a_dedup_imports_no_pandas(tmp_path):
    store = make_store(tmp_path, {("real", "web"): 120, ("synthetic", "gen"): 80})
    done = run_python(
        f"""
import json, sys
import curator
store = curator.open_store({str(store.root)!r})
result = store.dedup(images=False)
print(json.dumps({{"contents": result.methods[0].contents, "pandas": "pandas" in sys.modules}}))
"""
    )
    assert json.loads(done.stdout.strip().splitlines()[-1]) == {"contents": 200, "pandas": False}
