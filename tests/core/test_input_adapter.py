"""``InputAdapter`` — the one input check — refuses a conversion that would lose a value silently: a number
beyond a narrower float's range would become infinite; values that fit convert; the same holds for every
caller (server, runtime, library), since the check lives in the adapter itself."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from modelyard.bundles import InputAdapter
from modelyard.errors import InvalidInput
from modelyard.types import TensorSpec


@pytest.mark.parametrize(("datatype", "value"), [("FP32", 1e39), ("FP32", -3.5e38), ("FP16", 70000.0)])
def test_a_wider_value_beyond_the_range_is_refused(datatype: str, value: float) -> None:
    adapter = InputAdapter([TensorSpec("x", datatype, (-1, 2))])
    with pytest.raises(InvalidInput, match=f"beyond the range of {datatype}") as info:
        adapter({"x": np.array([[value, 0.0]], np.float64)})
    assert info.value.field == "inputs.x"


def test_integers_beyond_fp16_are_refused_too() -> None:
    adapter = InputAdapter([TensorSpec("x", "FP16", (-1,))])
    with pytest.raises(InvalidInput, match="beyond the range of FP16"):
        adapter({"x": np.array([70000], np.int64)})


@given(st.lists(st.floats(min_value=-3.4e38, max_value=3.4e38, allow_nan=False), min_size=1, max_size=8))
def test_values_that_fit_convert_exactly_as_numpy_does(values: list[float]) -> None:
    out = InputAdapter([TensorSpec("x", "FP32", (-1,))])({"x": np.array(values, np.float64)})["x"]
    assert out.dtype == np.float32 and np.all(np.isfinite(out))
    np.testing.assert_array_equal(out, np.array(values, np.float64).astype(np.float32))


def test_booleans_still_convert_to_numbers() -> None:
    out = InputAdapter([TensorSpec("x", "FP32", (-1,))])({"x": np.array([True, False])})["x"]
    assert out.tolist() == [1.0, 0.0] and out.dtype == np.float32
