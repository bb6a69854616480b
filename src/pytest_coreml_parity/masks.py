"""Attention masks as masks: which ops of a program carry a mask, and which rows it masks fully.

Sits beside :mod:`.headroom` (imports only numpy and the emulator's public types), so
the headroom log and the diagnosis read the same rule.

**The rule.** A *mask fill* is a float value at or below :data:`MASK_FLOOR` (``-1e4``):
``-inf``, ``torch.finfo(torch.float32).min`` (``-inf`` once fp16 stores it),
``torch.finfo(torch.float16).min`` (``-65504``), ``-1e9``, ``-3e4``, ``-1e4``. A
*mask source* is a float constant whose every element is ``0`` or a mask fill (at least
one a fill), or a float model input whose recorded values are (the ``explicit``
decoder recipe's additive mask). A *sink* reads attention scores: a ``softmax``'s
input, or the ``attn_mask`` of ``scaled_dot_product_attention``. The *mask ops* are
the ops both downstream of a mask source (not through a sink) and upstream of a sink:
the mask's own arithmetic (``select``, ``mul``, ``cast``, ``slice``...) and the
``add`` of the mask to the scores. Values past a sink are activations again, so a
mask never excuses anything beyond its softmax.

In a mask op, an element at or below ``MASK_FLOOR / 2`` (``-5000``, ``-inf``
included) is a *masked element*: headroom does not count it as a peak or an
overflow (healthy scores stay far inside ``+-5000``; scores plus a fill of ``-1e4``
or less stay below it). Everything else in a mask op, and every other op, counts.

A *fully masked row* is a row of a sink's input (along the softmax axis; the keys of
an ``attn_mask``) whose every element is masked (or ``False`` in a bool mask):
softmax over it is 0/0 when the fill is ``-inf``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .emulator import OpInfo, Recording

#: A value at or below this is a mask fill (``-inf``, finfo.min, ``-1e9``, ``-3e4``, ``-1e4``).
MASK_FLOOR = -1.0e4
#: In a mask op, elements at or below this are masked (not headroom peaks).
MASKED_BELOW = MASK_FLOOR / 2
#: A finite fill float16 holds with room for the scores added to it.
FP16_SAFE_FILL = -3.0e4
#: Sink op type -> the input that carries the scores (or the mask) and the row axis.
SINKS: dict[str, str] = {"softmax": "x", "scaled_dot_product_attention": "attn_mask"}


def is_mask_fill(value: Any) -> bool:
    """Whether ``value`` holds only ``0`` and mask fills, at least one fill."""
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f" or value.size == 0:
        return False
    with np.errstate(invalid="ignore"):
        fill = value <= MASK_FLOOR
    return bool(fill.any() and (fill | (value == 0)).all())


def is_mask_source(value: Any) -> bool:
    """A mask fill constant, or one the converter already folded (partly) to NaN: every
    element 0, a fill or NaN, at least one a fill or NaN (``x - band_part(x)`` of a -inf
    tensor, coremltools #2771)."""
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f" or value.size == 0:
        return False
    nan = np.isnan(value)
    if not nan.any():
        return is_mask_fill(value)
    with np.errstate(invalid="ignore"):
        return bool((nan | (value <= MASK_FLOOR) | (value == 0)).all())


def masked(value: np.ndarray) -> np.ndarray:
    """Boolean: the masked elements of a mask op's float output (``-inf`` included)."""
    with np.errstate(invalid="ignore"):
        return np.asarray(value <= MASKED_BELOW)


def mask_ops(ops: Iterable[OpInfo], values: Mapping[str, Any] | None = None) -> frozenset[str]:
    """Names of the mask ops among ``ops`` (see the module docstring).

    ``values`` (a recording's values) lets model inputs be mask sources; without it
    only constants are.
    """
    ops = tuple(ops)
    produced = {out for op in ops for out in op.outputs}
    readers: dict[str, list[OpInfo]] = {}
    producer: dict[str, OpInfo] = {}
    for op in ops:
        for out in op.outputs:
            producer[out] = op
        for names in op.inputs.values():
            for name in names:
                readers.setdefault(name, []).append(op)
    # Forward from the sources, stopping at sinks.
    forward: set[str] = set()
    stack = [op for op in ops if any(is_mask_source(_array(v)) for v in op.constants.values())]
    if values is not None:
        for name, value in values.items():
            if name not in produced and is_mask_fill(_array(value)):
                stack.extend(readers.get(name, ()))
    while stack:
        op = stack.pop()
        if op.name in forward or op.op_type in SINKS:
            continue
        forward.add(op.name)
        for out in op.outputs:
            stack.extend(readers.get(out, ()))
    # Backward from the sinks' score (or mask) inputs.
    backward: set[str] = set()
    pending = [
        producer[name]
        for op in ops
        if op.op_type in SINKS
        for name in op.inputs.get(SINKS[op.op_type], ())
        if name in producer
    ]
    while pending:
        op = pending.pop()
        if op.name in backward:
            continue
        backward.add(op.name)
        pending.extend(producer[n] for names in op.inputs.values() for n in names if n in producer)
    return frozenset(forward & backward)


@dataclass(frozen=True)
class MaskedRows:
    """The fully masked rows of one sink's input in one run."""

    op_type: str
    name: str
    #: Index of each fully masked row (the input's indices without the row axis).
    rows: tuple[tuple[int, ...], ...]
    total: int
    #: The mask's fill as stored (``-inf`` once fp16 stores finfo.min), or None (bool).
    fill: float | None
    #: Rows of the sink's output holding nan/inf in this run (any row, masked or not).
    non_finite: tuple[tuple[int, ...], ...] = ()

    def text(self, shown: int = 4) -> str:
        if self.rows:
            text = (
                f"{len(self.rows)} of {self.total} rows of {self.op_type} {self.name} are fully "
                f"masked (every key masked): {_listed(self.rows, shown)}"
            )
            if self.non_finite:
                where = (
                    "the fully masked ones"
                    if set(self.non_finite) == set(self.rows)
                    else _listed(self.non_finite, shown)
                )
                text += f"; its output is nan/inf in {len(self.non_finite)} row(s): {where}"
            return text
        every = "every row" if len(self.non_finite) == self.total else f"{len(self.non_finite)} of {self.total} rows"
        return (
            f"{self.op_type} {self.name} has no fully masked row, but its output is nan/inf in "
            f"{every}: {_listed(self.non_finite, shown)}"
        )


def _listed(rows: tuple[tuple[int, ...], ...], shown: int) -> str:
    more = f", ... ({len(rows) - shown} more)" if len(rows) > shown else ""
    return ", ".join(str(r) for r in rows[:shown]) + more


def fully_masked_rows(recording: Recording, op: OpInfo) -> MaskedRows | None:
    """The fully masked rows of sink ``op``'s input in ``recording``, or None if none."""
    key = SINKS.get(op.op_type)
    names = op.inputs.get(key, ()) if key else ()
    value = recording.values.get(names[0]) if names else op.constants.get(key or "")
    if not isinstance(value, np.ndarray) or value.ndim == 0 or value.size == 0:
        return None
    axis = -1
    if op.op_type == "softmax":
        axis = int(np.asarray(op.constants.get("axis", -1)))
    if value.dtype == np.bool_:
        full = ~value.any(axis=axis)
        fill = None
    elif value.dtype.kind == "f":
        full = masked(value).all(axis=axis)
        fills = value[masked(value)]
        fill = float(fills.max()) if fills.size else None
    else:
        return None
    rows = tuple(tuple(int(i) for i in index) for index in np.argwhere(full))
    out = recording.values.get(op.outputs[0]) if op.outputs else None
    bad: tuple[tuple[int, ...], ...] = ()
    if isinstance(out, np.ndarray) and out.dtype.kind == "f" and out.ndim == value.ndim:
        broken = ~np.isfinite(out).all(axis=axis)
        bad = tuple(tuple(int(i) for i in index) for index in np.argwhere(broken))
    if not rows and not bad:
        return None
    return MaskedRows(op.op_type, op.name, rows, int(full.size), fill, bad)


def mask_fill(ops: Iterable[OpInfo]) -> float | None:
    """The most negative mask fill among ``ops``' constants (the value the program holds)."""
    fills = [
        float(np.min(array))
        for op in ops
        for value in op.constants.values()
        if is_mask_fill(array := _array(value))
    ]
    return min(fills) if fills else None


def fill_text(fill: float) -> str:
    """A fill as users write it: ``torch.finfo(torch.float32).min`` rather than -3.40282e+38."""
    known = {
        float(np.finfo(np.float32).min): "torch.finfo(torch.float32).min",
        float(np.finfo(np.float16).min): "torch.finfo(torch.float16).min",
        float("-inf"): "-inf",
    }
    return known.get(fill, f"{fill:g}")


def masked_sinks(recording: Recording, masks: frozenset[str] = frozenset()) -> list[MaskedRows]:
    """Every sink of the run with fully masked rows, or with nan/inf rows while a mask op
    (one of ``masks``) feeds it, in program order."""
    producer = {out: op.name for op in recording.ops for out in op.outputs}
    found = []
    for op in recording.ops:
        if op.op_type not in SINKS:
            continue
        rows = fully_masked_rows(recording, op)
        fed = any(producer.get(n) in masks for n in op.inputs.get(SINKS[op.op_type], ()))
        if rows is not None and (rows.rows or fed):
            found.append(rows)
    return found


def _array(value: Any) -> Any:
    if isinstance(value, (float, np.floating)):
        return np.asarray(value)
    return value


__all__ = [
    "FP16_SAFE_FILL",
    "MASKED_BELOW",
    "MASK_FLOOR",
    "SINKS",
    "MaskedRows",
    "fill_text",
    "fully_masked_rows",
    "is_mask_fill",
    "is_mask_source",
    "mask_fill",
    "mask_ops",
    "masked",
    "masked_sinks",
]
