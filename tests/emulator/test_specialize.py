"""The planner's specialised index and shape kernels (emulator/specialize.py) return what
the kernels return, view for view, and raise the kernels' errors."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from pytest_coreml_parity.emulator.catalog import lookup
from pytest_coreml_parity.emulator.registry import OpContext
from pytest_coreml_parity.emulator.specialize import SPECIALISERS, specialised


def _ctx(op_type: str, opset: str = "iOS16") -> OpContext:
    return OpContext(op_type=op_type, name=f"{op_type}_0", opset=opset, output_dtypes=(np.dtype(np.float32),), output_shapes=(None,))


CASES: list[tuple[str, dict[str, Any], list[tuple[int, ...]]]] = [
    ("reshape", {"shape": np.array([0, -1, 4], np.int32)}, [(2, 3, 8), (2, 5, 4)]),
    ("expand_dims", {"axes": np.array([0, -1], np.int32)}, [(3, 4), (5,)]),
    ("squeeze", {"axes": np.array([1], np.int32)}, [(2, 1, 3), (2, 4, 3)]),
    ("squeeze", {}, [(1, 3, 1), (2, 2)]),
    ("transpose", {"perm": np.array([0, 2, -2], np.int32)}, [(2, 3, 4), (1, 5, 2)]),
    (
        "slice_by_index",
        {"begin": np.array([0, 1, -3], np.int32), "end": np.array([1, 0, 7], np.int32),
         "stride": np.array([1, 2, 1], np.int32), "end_mask": np.array([False, True, False]),
         "squeeze_mask": np.array([True, False, False])},
        [(2, 6, 8), (3, 5, 4)],
    ),
    ("gather", {"indices": np.array([[2, 0], [1, 1]], np.int32), "axis": np.int32(-1)}, [(4, 3), (2, 5, 6)]),
    ("gather", {"indices": np.int32(1), "axis": np.int32(0), "batch_dims": np.int32(0)}, [(2,), (3, 4)]),
]  # fmt: skip


@pytest.mark.parametrize(("op_type", "consts", "shapes"), CASES)
def test_specialised_kernel_returns_what_the_kernel_returns(op_type: str, consts: dict[str, Any], shapes: list[tuple[int, ...]]) -> None:
    ctx = _ctx(op_type)
    kernel = lookup(op_type)
    assert kernel is not None
    fast = specialised(op_type, ctx, consts, (("x", "x"),), (), kernel.fn)
    assert fast is not None
    assert fast.__wrapped__ is kernel.fn  # type: ignore[attr-defined]  # what plan comparisons read
    rng = np.random.default_rng(3)
    for shape in shapes * 2:  # the second round reads the remembered index
        x = rng.standard_normal(shape).astype(np.float32)
        want, got = kernel.fn(ctx, x=x, **consts), fast(ctx, x=x, **consts)
        assert type(got) is type(want)
        assert got.shape == want.shape and np.asarray(got).strides == np.asarray(want).strides
        assert np.asarray(got).tobytes() == np.asarray(want).tobytes()
        assert np.shares_memory(got, x) == np.shares_memory(want, x)


def _error(fn: Any, *args: Any, **kwargs: Any) -> tuple[type[BaseException], str]:
    with pytest.raises(Exception) as info:
        fn(*args, **kwargs)
    return info.type, str(info.value)


@pytest.mark.parametrize(
    ("op_type", "consts", "shape", "opset"),
    [
        ("reshape", {"shape": np.array([-1, 7], np.int32)}, (2, 3), "iOS16"),
        ("expand_dims", {"axes": np.array([5], np.int32)}, (2, 3), "iOS16"),
        ("slice_by_index", {"begin": np.array([4], np.int32), "end": np.array([5], np.int32),
                            "squeeze_mask": np.array([True])}, (3,), "iOS16"),
        ("gather", {"indices": np.array([3], np.int32), "axis": np.int32(0)}, (3,), "iOS16"),
        ("gather", {"indices": np.array([-1], np.int32), "axis": np.int32(0)}, (3,), "iOS17"),
    ],
)  # fmt: skip
def test_specialised_kernel_raises_the_kernels_error_every_time(op_type: str, consts: dict[str, Any], shape: tuple[int, ...], opset: str) -> None:
    ctx = _ctx(op_type, opset)
    kernel = lookup(op_type)
    assert kernel is not None
    fast = specialised(op_type, ctx, consts, (("x", "x"),), (), kernel.fn)
    assert fast is not None
    x = np.zeros(shape, np.float32)
    want = _error(kernel.fn, ctx, x=x, **consts)
    assert _error(fast, ctx, x=x, **consts) == want
    assert _error(fast, ctx, x=x, **consts) == want  # nothing was remembered


def test_only_steps_whose_one_variable_input_is_x_are_specialised() -> None:
    kernel = lookup("gather")
    assert kernel is not None
    ctx = _ctx("gather")
    assert specialised("gather", ctx, {"axis": np.int32(0)}, (("x", "a"), ("indices", "b")), (), kernel.fn) is None
    assert specialised("gather", ctx, {"indices": np.int32(0), "batch_dims": np.int32(1)}, (("x", "a"),), (), kernel.fn) is None
    assert specialised("concat", ctx, {}, (("x", "a"),), (), kernel.fn) is None
    assert set(SPECIALISERS) == {case[0] for case in CASES}
