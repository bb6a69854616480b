"""Op families and the emulator-fidelity table of a replay.

A replay runs each dumped program on every runner it has (the Core ML runtime per compute
unit on macOS; the emulator under each profile everywhere) and measures, for each
*observed* run (a device unit, or the outputs the dump recorded), how far it was from each
emulator profile: ``rel_rms = rms(observed - profile) / rms(torch)`` over elements finite
on both sides (0: identical; non-finite disagreements count as ``inf``).

Core ML does not expose a device's intermediate values, so a dump is attributed to every
op family its program contains: the table says "dumps whose programs hold a reduction were
this far from the typed profile on the GPU". Single-op tests give the sharpest rows.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

#: op type (MIL names; Core AI's are matched by their last dotted part) -> family.
FAMILIES: dict[str, tuple[str, ...]] = {
    "elementwise arithmetic": (
        "add", "sub", "mul", "real_div", "floor_div", "mod", "pow", "maximum", "minimum",
        "abs", "neg", "square", "inverse", "clip", "sign", "div",
    ),
    "transcendental": (
        "exp", "exp2", "log", "sqrt", "rsqrt", "sin", "cos", "tan", "atan", "erf", "tanh",
    ),
    "activation": (
        "relu", "relu6", "gelu", "sigmoid", "silu", "softplus", "elu", "leaky_relu",
        "sigmoid_hard", "softsign", "prelu", "thresholded_relu", "clamped_relu", "scaled_tanh",
    ),
    "softmax": ("softmax", "log_softmax", "softmax_nd"),
    "matmul": ("matmul", "linear", "einsum", "bmm", "mm", "addmm"),
    "convolution": ("conv", "conv_transpose", "convolution"),
    "pooling": ("avg_pool", "max_pool", "l2_pool"),
    "normalization": ("layer_norm", "batch_norm", "instance_norm", "l2_norm", "local_response_norm"),
    "reduction": (
        "reduce_sum", "reduce_mean", "reduce_max", "reduce_min", "reduce_prod", "reduce_l2_norm",
        "reduce_log_sum_exp", "reduce_sum_square", "reduce_l1_norm", "reduce_log_sum",
        "reduce_argmax", "reduce_argmin", "cumsum", "sum", "mean", "amax",
    ),
    "cast": ("cast",),
}
_BY_OP = {op: family for family, ops in FAMILIES.items() for op in ops}
#: Ops that only move data (reshape, transpose, gather...) are not attributed.
OTHER = "other"


def family(op_type: str) -> str | None:
    """The family of ``op_type`` (None for data movement and constants)."""
    name = op_type.rsplit(".", 1)[-1].lower()
    found = _BY_OP.get(name)
    if found is not None:
        return found
    if name.startswith("reduce_"):
        return "reduction"
    return None


def families(op_types: Iterable[str]) -> list[str]:
    """The families of a program's op types, sorted (``other`` when none is known)."""
    found = {f for f in (family(t) for t in op_types) if f is not None}
    return sorted(found) or [OTHER]


def distance(observed: Sequence[Any], profile: Sequence[Any], reference: Sequence[Any]) -> dict[str, float]:
    """``rel_rms`` and ``max_abs`` of ``observed`` against ``profile`` over every output
    (relative to the torch reference's rms), with ``identical`` as 1.0 or 0.0."""
    import numpy as np

    num = den = 0.0
    worst = 0.0
    identical = True
    for o, p, r in zip(observed, profile, reference, strict=True):
        o64 = np.asarray(o, dtype=np.float64).reshape(-1)
        p64 = np.asarray(p, dtype=np.float64).reshape(-1)
        r64 = np.asarray(r, dtype=np.float64).reshape(-1)
        if o64.shape != p64.shape:
            return {"rel_rms": math.inf, "max_abs": math.inf, "identical": 0.0}
        same = np.array_equal(o64, p64, equal_nan=True)
        identical = identical and bool(same)
        both = np.isfinite(o64) & np.isfinite(p64)
        if (~both & ~(np.isnan(o64) & np.isnan(p64)) & ~(o64 == p64)).any():
            return {"rel_rms": math.inf, "max_abs": math.inf, "identical": 0.0}
        diff = o64[both] - p64[both]
        num += float(np.dot(diff, diff))
        fin = r64[np.isfinite(r64)]
        den += float(np.dot(fin, fin))
        if diff.size:
            worst = max(worst, float(np.abs(diff).max()))
    rel = math.sqrt(num / den) if den > 0 else (0.0 if num == 0 else math.inf)
    return {"rel_rms": rel, "max_abs": worst, "identical": 1.0 if identical else 0.0}


def table(dumps: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per (op family, observed unit): the dumps, and per emulator profile the worst
    ``rel_rms`` and how often it was the closest profile."""
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for dump in dumps:
        for observed in dump.get("fidelity", []):
            unit = observed["unit"]
            by_profile = observed["profiles"]
            closest = observed.get("closest")
            for fam in dump.get("op_families", [OTHER]):
                row = rows.setdefault((fam, unit), {"op_family": fam, "unit": unit, "dumps": 0, "profiles": {}})
                row["dumps"] += 1
                for profile, dist in by_profile.items():
                    cell = row["profiles"].setdefault(profile, {"worst_rel_rms": 0.0, "closest": 0})
                    cell["worst_rel_rms"] = max(cell["worst_rel_rms"], dist["rel_rms"])
                    if profile == closest:
                        cell["closest"] += 1
    return [rows[k] for k in sorted(rows)]


def table_lines(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The fidelity table as text: one line per (op family, unit)."""
    lines = []
    for row in rows:
        parts = ", ".join(
            f"{profile} worst {_num(cell['worst_rel_rms'])} (closest in {cell['closest']})"
            for profile, cell in row["profiles"].items()
        )
        lines.append(f"  {row['op_family']:<24} {row['unit']:<28} {row['dumps']:>3} dump(s): {parts}")
    return lines


def _num(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:.3g}"


__all__ = ["FAMILIES", "OTHER", "distance", "families", "family", "table", "table_lines"]
