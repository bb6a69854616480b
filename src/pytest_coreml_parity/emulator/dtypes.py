"""MIL dtypes as numpy dtypes, and the rounding that models typed storage.

Floating values are *held* as float32 while the program runs, whatever their
declared type: an fp16 value is a float32 array whose every element is exactly
representable in binary16. Kernels therefore always compute in float32, and the
runner rounds each output with :func:`store`, which for fp16 is
``astype(float16)`` (IEEE round-to-nearest-even, overflow to inf, gradual
underflow) followed by a lossless widening back to float32.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

#: MIL builtin type names (as printed by coremltools) to numpy dtypes.
MIL_TO_NUMPY: dict[str, np.dtype[Any]] = {
    "fp16": np.dtype(np.float16),
    "fp32": np.dtype(np.float32),
    "fp64": np.dtype(np.float64),
    "int4": np.dtype(np.int8),
    "uint4": np.dtype(np.uint8),
    "int8": np.dtype(np.int8),
    "uint8": np.dtype(np.uint8),
    "int16": np.dtype(np.int16),
    "uint16": np.dtype(np.uint16),
    "int32": np.dtype(np.int32),
    "uint32": np.dtype(np.uint32),
    "int64": np.dtype(np.int64),
    "uint64": np.dtype(np.uint64),
    "bool": np.dtype(np.bool_),
}

F16 = np.dtype(np.float16)
F32 = np.dtype(np.float32)
F64 = np.dtype(np.float64)
#: The float64 significand bits below float32's precision (29 of 52).
_CUT = np.int64((1 << 29) - 1)
_STICKY = np.int64(1 << 29)
#: Source dtypes the fast fp16 rounding takes (float64 through :func:`round_to_odd_f32`).
_FAST_SOURCES = (F32, F64)


def holding_dtype(declared: np.dtype[Any]) -> np.dtype[Any]:
    """The dtype a value of ``declared`` type is held in while the program runs."""
    return F32 if declared.kind == "f" else declared


def store(value: Any, declared: np.dtype[Any]) -> np.ndarray:
    """Round ``value`` to the ``declared`` dtype and return it in its holding dtype."""
    arr = np.asarray(value)
    if declared == F16:
        if arr.dtype in _FAST_SOURCES and arr.size >= FAST_ROUND_MIN_SIZE:
            fast = _fast_fp16_round()
            if fast is not None:
                return fast(arr if arr.dtype == F32 else round_to_odd_f32(arr))
        if arr.dtype != F16:
            with np.errstate(over="ignore", invalid="ignore"):
                arr = arr.astype(F16)
        return arr.astype(F32)
    if declared.kind == "f":
        if arr.dtype != F32:
            with np.errstate(over="ignore", invalid="ignore"):
                arr = arr.astype(F32)
        return arr
    if arr.dtype != declared:
        with np.errstate(over="ignore", invalid="ignore"):
            arr = arr.astype(declared)
    return arr


def to_declared(value: np.ndarray, declared: np.dtype[Any]) -> np.ndarray:
    """Give a held value back in its declared dtype (fp16 values as ``np.float16``)."""
    if value.dtype == declared:
        return value
    if declared == F16 and value.dtype == F32 and value.size >= FAST_ROUND_MIN_SIZE:
        fast = _fast_to_fp16()
        if fast is not None:
            return fast(value if _torch_viewable(value) else np.array(value, order="C"))
    return value.astype(declared)


def _torch_viewable(arr: np.ndarray) -> bool:
    """Whether ``torch.from_numpy`` takes ``arr`` as it is: writable (torch warns on a
    read-only array), no negative stride (numpy calls a view reversed along a size-1
    axis contiguous; torch refuses it), strides in whole elements. Any layout else:
    transposed and sliced views are fine, and the result keeps their strides."""
    itemsize = arr.itemsize
    return arr.flags.writeable and all(s >= 0 and s % itemsize == 0 for s in arr.strides)


#: fp16's largest finite value.
F16_MAX = 65504.0
#: Arrays up to this size are scanned as one concatenation: a reduction's call costs
#: more than its elements there.
_FUSED_SCAN_MAX = 1024


def finite_peak(value: np.ndarray) -> float:
    """The largest finite ``|value|`` of ``value`` (0.0 when none is finite)."""
    magnitude = np.abs(value)
    peak = float(magnitude.max(initial=0.0))
    if peak == np.inf or peak != peak:  # nan or inf present: look at the finite ones only
        finite = magnitude[np.isfinite(magnitude)]
        peak = float(finite.max(initial=0.0))
    return peak


def fp16_peak(arrays: Sequence[np.ndarray]) -> float | None:
    """The largest :func:`finite_peak` of ``arrays`` once in fp16 (each ``to_declared``
    as float16), None for no non-empty array; a few reductions for many small arrays."""
    fused: list[np.ndarray] = []
    groups: list[list[np.ndarray]] = []
    for a in arrays:
        if a.size > _FUSED_SCAN_MAX or (a.size and a.dtype.kind != "f"):
            groups.append([a])
        elif a.size:
            fused.append(a)
    if fused:
        groups.append(fused)
    return max(map(_fp16_group_peak, groups)) if groups else None


def _fp16_group_peak(group: list[np.ndarray]) -> float:
    whole = group[0] if len(group) == 1 else np.concatenate(group, axis=None)
    if whole.dtype.kind == "f":
        high, low = float(np.maximum.reduce(whole, None)), float(np.minimum.reduce(whole, None))
        if high <= F16_MAX and -low <= F16_MAX:
            # No nan, no inf, nothing past fp16's range: rounding to fp16 is monotone
            # and symmetric, so the rounded max |x| is the max of the rounded |x|.
            return abs(float(np.float16(max(high, -low))))
    return max(finite_peak(to_declared(a, F16)) for a in group)


def storer(declared: np.dtype[Any], *, fresh: bool = False) -> Callable[[Any], np.ndarray]:
    """A fast :func:`store` specialised to ``declared``, for the runner's hot loop.

    It assumes the caller has silenced numpy's floating-point warnings (the runner
    does, once per run): overflow to inf is the point, not an accident.

    ``fresh=True`` promises that every value it is given is a kernel's own new array,
    which nothing else references (not an input, a constant or a view of another
    value: see :data:`~.registry.FRESH_OUTPUT_OPS`): an fp16 rounding then writes
    into it instead of allocating another float32 array. The bits are the same.
    """
    asarray = np.asarray
    if declared == F16:
        fast = _fast_fp16_round()
        in_place = _fast_fp16_round_in_place()

        def to_fp16(value: Any) -> np.ndarray:
            arr = asarray(value)
            if fast is not None and in_place is not None and arr.size >= FAST_ROUND_MIN_SIZE:
                if arr.dtype == F32:
                    return fast(arr)
                if arr.dtype == F64:  # float64 kernels (the norms' affine step)
                    return fp16_from_f64(arr, in_place)
            return arr.astype(F16).astype(F32)

        def to_fp16_fresh(value: Any) -> np.ndarray:
            arr = asarray(value)
            if fast is not None and in_place is not None and arr.size >= IN_PLACE_ROUND_MIN_SIZE:
                if arr.dtype == F32:
                    flags = arr.flags
                    return in_place(arr) if flags.c_contiguous and flags.writeable else fast(arr)
                if arr.dtype == F64:
                    return fp16_from_f64(arr, in_place)
            return arr.astype(F16).astype(F32)

        return to_fp16_fresh if fresh else to_fp16
    target = F32 if declared.kind == "f" else declared

    def to_target(value: Any) -> np.ndarray:
        arr = asarray(value)
        return arr if arr.dtype == target else arr.astype(target)

    return to_target


#: A float32 whose low 12 significand bits are all zero: every binary16 midpoint (the
#: tie between two binary16 neighbours, in every binade and among the subnormals, and
#: 65520, where rounding turns to inf) is one. Other float32 values are not midpoints.
_MIDPOINT_BITS = np.int32(0xFFF)


def fp16_from_f64(x: np.ndarray, round_in_place: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """``x`` (float64) rounded once to binary16, held in a new float32 array.

    Rounding to nearest float32 first, then to binary16, gives binary16's rounding of
    ``x`` itself unless the float32 value is a binary16 midpoint: rounding is monotone
    and keeps every midpoint (they are float32 numbers), so ``x`` and its float32
    rounding lie between the same two midpoints, where binary16's rounding is one value.
    The few candidates (:data:`_MIDPOINT_BITS`; about 1 in 4096 of random values, and
    zeros) take :func:`round_to_odd_f32` instead. One float32 pass and a mask, where
    rounding every element to odd costs five float64-wide passes.
    """
    single = x.astype(F32, order="C")
    candidates = np.flatnonzero((single.view(np.int32) & _MIDPOINT_BITS) == 0)
    if candidates.size:
        single.reshape(-1)[candidates] = round_to_odd_f32(x.reshape(-1)[candidates])
    return round_in_place(single)


def round_to_odd_f32(x: np.ndarray) -> np.ndarray:
    """``x`` (float64) in float32, rounded to odd: rounding that to binary16 gives
    exactly binary16's rounding of ``x`` itself.

    Rounding float64 to float32 and then to binary16 (round to nearest twice) can
    differ from one rounding where the float32 value lands on a binary16 tie. Rounding
    to odd first (an inexact result keeps its last bit set) cannot make a tie, and
    since float32 carries at least two more bits than binary16, the second rounding is
    then correct (Boldo and Melquiond, "Emulation of FMA and correctly rounded sums:
    proved algorithms using rounding to odd", 2008). numpy converts float64 to
    binary16 directly, but about 20x slower than these few float32 passes and torch's
    conversion together. nan, inf and -0.0 pass through unchanged.

    """
    # Truncate the float64 significand to float32's 24 bits and keep a sticky bit for
    # what was cut off (bit 29, float32's last): the value is then a float32 number, rounded to odd,
    # and the conversion below is exact. Outside float32's normal range the result
    # rounds to 0 or inf in binary16 either way; a nan keeps a payload bit.
    bits = np.ascontiguousarray(x, dtype=F64).view(np.int64)
    sticky = bits & _CUT
    sticky += _CUT  # bit 29 is set exactly when a cut bit was
    sticky &= _STICKY
    sticky |= bits & ~_CUT
    return sticky.view(F64).astype(F32)


#: From this many elements on, fp16 rounding goes through torch's vectorized
#: (F16C) conversion, about 8x faster than numpy's; below it numpy's call
#: overhead is lower. Both are IEEE round-to-nearest-even with overflow to inf
#: and gradual underflow (tests/emulator/test_core.py checks they agree).
FAST_ROUND_MIN_SIZE = 4096


#: From this many elements on, a kernel's own new output rounds in place through torch
#: (one binary16 temporary, no new float32 array), where numpy's conversion costs about
#: 9 ns an element, and 50-200 ns for a result in binary16's subnormal range (common in
#: a causal LM's fp16 activations): measured break-even about 1024 for normal values.
IN_PLACE_ROUND_MIN_SIZE = 1024


@functools.cache
def _fast_fp16_round() -> Callable[[np.ndarray], np.ndarray] | None:
    """A float32 -> binary16 -> float32 rounding through torch, or None without torch."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency, but stay usable
        return None
    half, single = torch.float16, torch.float32
    from_numpy = torch.from_numpy

    def round_through_torch(arr: np.ndarray) -> np.ndarray:
        """``arr`` (float32, any layout) rounded to binary16 and widened back, as a new
        array: through torch's conversion directly when torch can view ``arr``, else on
        a C-ordered copy of it, rounded in place (a copy is one memory pass; numpy's
        binary16 conversion is about 8x slower than torch's)."""
        if _torch_viewable(arr):
            return from_numpy(arr).to(half).to(single).numpy()
        copy = np.array(arr, order="C")
        tensor = from_numpy(copy)
        tensor.copy_(tensor.to(half))
        return copy

    return round_through_torch


@functools.cache
def _fast_fp16_round_in_place() -> Callable[[np.ndarray], np.ndarray] | None:
    """A float32 -> binary16 -> float32 rounding through torch that overwrites its
    argument (a C-contiguous, writable float32 array nothing else references) and
    returns it, or None without torch: one binary16 temporary, no new float32 array."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency, but stay usable
        return None
    half = torch.float16
    from_numpy = torch.from_numpy

    def round_in_place(arr: np.ndarray) -> np.ndarray:
        tensor = from_numpy(arr)
        tensor.copy_(tensor.to(half))
        return arr

    return round_in_place


@functools.cache
def _fast_to_fp16() -> Callable[[np.ndarray], np.ndarray] | None:
    """A float32 -> binary16 conversion through torch (an ``np.float16`` array), or None."""
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency, but stay usable
        return None
    half = torch.float16

    def to_half_through_torch(arr: np.ndarray) -> np.ndarray:
        return torch.from_numpy(arr).to(half).numpy()

    return to_half_through_torch
