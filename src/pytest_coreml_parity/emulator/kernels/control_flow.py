"""Control flow (MIL spec section ``control_flow``, without ``select``).

``cond`` and ``while_loop`` run their nested blocks through the block runner the
engine binds into their context (``ctx.run_block``), so the ops inside are
rounded to their declared dtypes like any other op, and no kernel imports an
engine. A
``while_loop`` whose condition never becomes false runs forever, exactly as
Core ML would; the emulator adds no iteration cap of its own.

Lists (``make_list`` and the ``list_*`` ops) are immutable :class:`TensorList`
values: every write returns a new list, so a recording or a second thread never
sees a list change under it. An element never written reads as zeros when the
element shape is known (coremltools' list test pins that); with a symbolic
element shape such a read is an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from ..dtypes import MIL_TO_NUMPY, store
from ..registry import OpContext, kernel


def _scalar_bool(value: Any, what: str) -> bool:
    arr = np.asarray(value)
    if arr.size != 1:
        raise ValueError(f"{what} must hold exactly one value, got shape {arr.shape}")
    return bool(arr.reshape(()).item())


def _outputs(values: list[Any]) -> Any:
    return values[0] if len(values) == 1 else tuple(values)


@kernel("cond", control_flow=True)
def cond(ctx: OpContext, pred: Any) -> Any:
    """blocks[0] is the true branch, blocks[1] the false branch; neither takes inputs."""
    return _outputs(ctx.run_block(0 if _scalar_bool(pred, "cond pred") else 1))


@kernel("while_loop", control_flow=True)
def while_loop(ctx: OpContext, loop_vars: tuple[Any, ...]) -> Any:
    """blocks[0] is the condition, blocks[1] the body; both take the loop vars."""
    values = tuple(loop_vars)
    while True:
        (keep_going,) = ctx.run_block(0, values)
        if not _scalar_bool(keep_going, "while_loop condition"):
            break
        values = tuple(ctx.run_block(1, values))
    return _outputs(list(values))


@kernel("identity")
def identity(ctx: OpContext, x: Any) -> Any:
    # Held values are never mutated in place, so no copy is needed.
    return x


# ---------------------------------------------------------------------- lists


@dataclass(frozen=True)
class TensorList:
    """A MIL list: elements (``None`` where never written) and its fixed properties."""

    items: tuple[np.ndarray | None, ...]
    dtype: np.dtype[Any]
    elem_shape: tuple[int | None, ...] | None
    dynamic_length: bool

    def __len__(self) -> int:
        return len(self.items)

    def read(self, index: int) -> np.ndarray:
        if not 0 <= index < len(self.items):
            raise IndexError(f"list index {index} out of range for a list of length {len(self)}")
        item = self.items[index]
        if item is not None:
            return item
        if self.elem_shape is None or any(d is None for d in self.elem_shape):
            raise ValueError(
                f"list element {index} is read before it was written and the list's element "
                "shape is not fully known, so its zero value has no shape"
            )
        # An element never written reads as zeros of the element shape: what coremltools'
        # own list test expects from the device ("list is initially all 0").
        shape = cast("tuple[int, ...]", self.elem_shape)
        zeros = np.zeros(shape, self.dtype)
        zeros.setflags(write=False)
        return zeros

    def write(self, updates: dict[int, np.ndarray]) -> TensorList:
        items = list(self.items)
        for index, value in updates.items():
            if index < 0:
                raise IndexError(f"negative list index {index}")
            if index >= len(items):
                if not self.dynamic_length:
                    raise IndexError(
                        f"list index {index} out of range for a fixed-length list of "
                        f"length {len(items)}"
                    )
                items.extend([None] * (index + 1 - len(items)))
            held = store(np.array(value, copy=True), self.dtype)
            if self.elem_shape is not None and (
                held.ndim != len(self.elem_shape)
                or any(
                    w is not None and w != g
                    for w, g in zip(self.elem_shape, held.shape, strict=True)
                )
            ):
                raise ValueError(
                    f"list element of shape {held.shape} does not match the list's "
                    f"element shape {self.elem_shape}"
                )
            held.setflags(write=False)
            items[index] = held
        return TensorList(tuple(items), self.dtype, self.elem_shape, self.dynamic_length)


def _as_list(ls: Any) -> TensorList:
    if not isinstance(ls, TensorList):
        raise TypeError(f"expected a list value, got {type(ls).__name__}")
    return ls


@kernel("make_list")
def make_list(
    ctx: OpContext,
    elem_shape: tuple[Any, ...] = (),
    init_length: Any = 1,
    dynamic_length: Any = True,
    dtype: str = "fp32",
) -> TensorList:
    np_dtype = MIL_TO_NUMPY.get(str(dtype))
    if np_dtype is None:
        raise NotImplementedError(f"list element dtype {dtype!r} is not supported")
    shape: list[int | None] = []
    for dim in elem_shape:
        if isinstance(dim, str) or np.asarray(dim).dtype.kind in "US":
            shape.append(None)  # symbolic: known only when written
        else:
            shape.append(int(np.asarray(dim).reshape(())))
    length = int(np.asarray(init_length).reshape(()))
    return TensorList((None,) * length, np_dtype, tuple(shape), bool(dynamic_length))


@kernel("list_length")
def list_length(ctx: OpContext, ls: Any) -> np.int32:
    return np.int32(len(_as_list(ls)))


@kernel("list_write")
def list_write(ctx: OpContext, ls: Any, index: Any, value: Any) -> TensorList:
    return _as_list(ls).write({int(np.asarray(index).reshape(())): value})


@kernel("list_read")
def list_read(ctx: OpContext, ls: Any, index: Any) -> np.ndarray:
    return _as_list(ls).read(int(np.asarray(index).reshape(())))


@kernel("list_gather")
def list_gather(ctx: OpContext, ls: Any, indices: Any) -> np.ndarray:
    lst = _as_list(ls)
    idx = [int(i) for i in np.asarray(indices).reshape(-1)]
    if not idx:
        if lst.elem_shape is None or any(d is None for d in lst.elem_shape):
            raise ValueError("list_gather with no indices needs a fully known element shape")
        shape = cast("tuple[int, ...]", lst.elem_shape)  # all known, checked above
        return np.zeros((0, *shape), lst.dtype)
    return np.stack([lst.read(i) for i in idx])


@kernel("list_scatter")
def list_scatter(ctx: OpContext, ls: Any, indices: Any, value: Any) -> TensorList:
    idx = [int(i) for i in np.asarray(indices).reshape(-1)]
    value = np.asarray(value)
    if value.shape[:1] != (len(idx),):
        raise ValueError(f"cannot scatter {value.shape[:1]} values to {len(idx)} indices")
    return _as_list(ls).write({i: value[k] for k, i in enumerate(idx)})
