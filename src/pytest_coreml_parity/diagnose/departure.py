"""Name the first op whose value departs from torch's own intermediate value.

Works at any precision, fp32 included, so it finds what comparing fp16 with fp32
cannot: a converter lowering that is already wrong at fp32 (coremltools' RMSNorm,
#2821, inflates eps by max|x|^2 and divides 0/0 on an all-zero row).

MIL ops are matched to torch values by the torch debug name coremltools keeps in
each op's scope (several ops lowered from one torch op share it: the last one
holding a value of the torch value's shape is compared), else by the op's own
name, and always by shape. "Departs" is :func:`..verdict.mismatch_mask`, the
element-wise rule ``assert_parity`` uses (scale-aware: ``scale_atol`` times the
torch value's rms), at the gates given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..emulator import Recording
from ..verdict import mismatch_mask
from .names import fp32_name, sanitize
from .source import CodeLine, describe

_SHOWN_OPS = 10


@dataclass(frozen=True)
class Departure:
    """The first torch value the program gets wrong, and the MIL ops lowered from it."""

    torch_name: str
    torch_op: str | None
    source: str | None
    lowered_to: tuple[str, ...]
    op_type: str
    name: str
    mismatched: int
    size: int
    worst_index: tuple[int, ...]
    coreml: float
    torch: float
    first_non_finite: str | None
    compared: int
    rtol: float
    atol: float

    def text(self) -> str:
        what = f"torch {self.torch_op}" if self.torch_op else "torch value"
        where = f" ({self.source})" if self.source else ""
        ops = list(self.lowered_to)
        shown = ", ".join(ops[:_SHOWN_OPS]) + (f", ... ({len(ops)} ops)" if len(ops) > _SHOWN_OPS else "")
        line = (
            f"{what} {self.torch_name!r}{where}, lowered to {shown}: {self.op_type} {self.name} "
            f"differs in {self.mismatched} of {self.size} elements (rtol={self.rtol:g}, "
            f"atol={self.atol:g}), worst at {self.worst_index}: Core ML {self.coreml:.6g}, "
            f"PyTorch {self.torch:.6g}"
        )
        if self.first_non_finite:
            line += f"; first non-finite op of these: {self.first_non_finite}"
        return line

    def brief(self) -> str:
        """One clause naming the torch value and the op compared, for hints."""
        what = f"torch {self.torch_op}" if self.torch_op else "torch value"
        return (
            f"{what} {self.torch_name!r} (lowered to {len(self.lowered_to)} ops; {self.op_type} "
            f"{self.name}: {self.mismatched} of {self.size} elements differ)"
        )

    @property
    def ops(self) -> tuple[str, ...]:
        """The MIL op names lowered from the departing torch value."""
        return tuple(entry.split(" ", 1)[-1] for entry in self.lowered_to)


def first_departure(
    rec: Recording,
    torch_values: Mapping[str, np.ndarray],
    *,
    rtol: float,
    atol: float,
    scale_atol: float = 0.0,
    scopes: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]] | None = None,
    lines: Mapping[str, CodeLine] | None = None,
    root_class: str | None = None,
) -> tuple[Departure | None, int]:
    """(the first departing torch value in program order or None, how many were compared)."""
    scopes = dict(scopes or {})
    lines = dict(lines or {})
    groups = _groups(rec, torch_values, scopes, lines)
    compared = 0
    for key, ops in groups:
        want = torch_values[key]
        pick = _representative(rec, ops, want.shape)
        if pick is None:
            continue
        op, got = pick
        compared += 1
        mask = mismatch_mask(got, want, rtol, atol, scale_atol)
        if not mask.any():
            continue
        worst = _worst(got, want, mask)
        kind = lines[key].kind if key in lines else None
        source = describe(op.name, scopes, lines, root_class) or _plain_source(lines.get(key), root_class)
        return Departure(
            torch_name=key,
            torch_op=kind,
            source=source,
            lowered_to=tuple(f"{o.op_type} {o.name}" for o in ops),
            op_type=op.op_type,
            name=op.name,
            mismatched=int(mask.sum()),
            size=int(mask.size),
            worst_index=worst,
            coreml=float(got[worst]),
            torch=float(want[worst]),
            first_non_finite=_first_non_finite(rec, ops),
            compared=compared,
            rtol=rtol,
            atol=atol,
        ), compared
    return None, compared


def _groups(
    rec: Recording,
    torch_values: Mapping[str, np.ndarray],
    scopes: dict[str, tuple[tuple[str, ...], tuple[str, ...]]],
    lines: dict[str, CodeLine],
) -> list[tuple[str, list[Any]]]:
    """Torch debug name -> the MIL ops lowered from it, ordered by their last op."""
    by_sanitized = {sanitize(name): name for name in torch_values}
    groups: dict[str, list[Any]] = {}
    last: dict[str, int] = {}
    for index, op in enumerate(rec.ops):
        types, names = scopes.get(op.name, ((), ()))
        if names:
            key: str | None = names[-1]
            if key in lines and types and lines[key].kind != types[-1]:
                key = None  # our trace numbered values differently: do not compare
        else:
            key = by_sanitized.get(fp32_name(op.name))
        if key is None or key not in torch_values:
            continue
        groups.setdefault(key, []).append(op)
        last[key] = index
    return sorted(groups.items(), key=lambda item: last[item[0]])


def _representative(rec: Recording, ops: list[Any], shape: tuple[int, ...]) -> tuple[Any, np.ndarray] | None:
    """The last op of the group whose first output is a float value of ``shape``."""
    for op in reversed(ops):
        value = rec.values.get(op.outputs[0]) if op.outputs else None
        if isinstance(value, np.ndarray) and value.dtype.kind == "f":
            if value.shape == shape:
                return op, value
            if value.size == 1 and int(np.prod(shape)) == 1:  # rank 0 vs (1,)
                return op, value.reshape(shape)
    return None


def _worst(got: np.ndarray, want: np.ndarray, mask: np.ndarray) -> tuple[int, ...]:
    """Index of the worst mismatch: a non-finite Core ML value first, else the largest error."""
    a = got.astype(np.float64)
    b = want.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.where(np.isfinite(a) & np.isfinite(b), np.abs(a - b), np.inf)
    err = np.where(mask, err, -1.0)
    return tuple(int(i) for i in np.unravel_index(int(np.argmax(err)), got.shape))


def _first_non_finite(rec: Recording, ops: list[Any]) -> str | None:
    """The first op of the group producing nan/inf from finite inputs."""
    for op in ops:
        outs = [v for v in rec.op_outputs(op) if isinstance(v, np.ndarray) and v.dtype.kind == "f"]
        if not any(not np.all(np.isfinite(v)) for v in outs):
            continue
        ins = [v for vs in rec.op_inputs(op).values() for v in vs]
        if all(np.all(np.isfinite(v)) for v in ins if isinstance(v, np.ndarray) and v.dtype.kind == "f"):
            return f"{op.op_type} {op.name}"
    return None


def _plain_source(code: CodeLine | None, root_class: str | None) -> str | None:
    """The torch line without a module scope (a model loaded from disk without sidecar)."""
    if code is None:
        return None
    head = f"{root_class}.{code.func}" if root_class else code.func
    called = f"; called from {code.caller}" if code.caller else ""
    return f"{head}, {Path(code.path).name}:{code.line}: {code.code}{called}"
