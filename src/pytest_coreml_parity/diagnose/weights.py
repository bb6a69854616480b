"""Weight parity: every weight the program reads, decompressed, against its torch parameter.

For any Core ML program (a built-in precision, the test's ``coreml_convert``, or a
``package=`` artifact): each float constant an op reads (a constexpr output the
emulator materialized, as Core ML does at load, or a plain ``const``) is matched with
the torch parameter it came from, by coremltools' naming (``fc.weight`` ->
``fc_weight_to_fp16_palettized``) or, failing that, by shape and values (the
same-size parameter it is most aligned with). Each match gets a relative error, an
SNR and the op that produced the value.

A plain constant far from torch is the signature of coremltools PR #2777: a
palettization with ``per_grouped_channel`` declined a weight but left it divided by
its per-channel scale (about 25 times the torch weight): a check of compressed ops
alone would miss it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._values import to_numpy
from ..emulator import OpInfo
from .compression import UNCOMPRESSED_LIMIT, torch_names

#: Constants smaller than this are not weights (scalars, shapes, axes).
MIN_ELEMENTS = 16
#: A shape match must be at least this aligned (|cosine|) with the torch parameter.
MIN_ALIGNMENT = 0.5
#: ``matched_by`` of a weight matched up to a per-output-channel scale (a folded norm).
FOLDED = "shape+scale"
#: Rows shown in a report.
SHOWN = 5
#: The relative error beyond which a compressed weight is listed as off (8-bit is ~1e-2).
COMPRESSED_LIMIT = 0.1


@dataclass(frozen=True)
class WeightParity:
    """One program weight against the torch parameter it came from."""

    name: str
    torch_name: str
    #: The op that produced the value: a ``constexpr_*`` op type, or ``const`` (stored as is).
    source: str
    rel_error: float
    snr: float
    max_abs: float
    #: ``name`` (coremltools' naming), ``shape`` (same size, most aligned values) or
    #: ``shape+scale`` (a shape match up to a per-output-channel scale: the converter folded
    #: a batch norm into it; the error is what remains after that scale).
    matched_by: str

    @property
    def compressed(self) -> bool:
        return self.source.startswith("constexpr_")

    @property
    def off(self) -> bool:
        """Beyond what its storage explains: fp16 rounding for a plain const, a few percent
        for a compressed one."""
        return self.rel_error > (COMPRESSED_LIMIT if self.compressed else UNCOMPRESSED_LIMIT)

    @property
    def declined(self) -> bool:
        """Stored uncompressed, yet far from torch: PR #2777's rescaled-but-skipped weight."""
        return not self.compressed and self.rel_error > UNCOMPRESSED_LIMIT

    def line(self) -> str:
        how = f"{self.source} (compressed)" if self.compressed else "plain const (not compressed)"
        text = (
            f"{self.torch_name}: {how} {self.name}, rel error {self.rel_error:.3g}, "
            f"SNR {_db(self.snr)}, max abs {self.max_abs:.3g}"
        )
        if self.matched_by == "shape":
            text += " (matched by shape and values)"
        elif self.matched_by == FOLDED:
            text += " (matched by shape and values, up to a per-channel scale: a norm the converter folded into it)"
        if self.declined:
            ratio = 1.0 + self.rel_error
            text += (
                f": stored uncompressed yet ~{ratio:.3g}x off torch: a compression that declined "
                "this weight but left it rescaled (coremltools PR #2777)"
            )
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "torch_name": self.torch_name, "source": self.source,
            "rel_error": self.rel_error, "snr_db": self.snr if math.isfinite(self.snr) else None,
            "max_abs": self.max_abs, "matched_by": self.matched_by, "compressed": self.compressed,
            "declined": self.declined,
        }  # fmt: skip


def _db(value: float) -> str:
    return "inf dB" if math.isinf(value) and value > 0 else f"{value:.1f} dB"


def _compare(got: np.ndarray, want: np.ndarray) -> tuple[float, float, float]:
    """(relative error, SNR dB, max abs error) of ``got`` against ``want``."""
    diff = got - want
    signal = float(np.dot(want.ravel(), want.ravel()))
    noise = float(np.dot(diff.ravel(), diff.ravel()))
    norm = math.sqrt(signal)
    rel = math.sqrt(noise) / norm if norm else float(np.abs(diff).max())
    snr = math.inf if noise == 0 else (10 * math.log10(signal / noise) if signal else -math.inf)
    return rel, snr, float(np.abs(diff).max())


def compressed(ops: Sequence[OpInfo]) -> bool:
    """Whether a program holds compressed weights (any constexpr op)."""
    return any(op.op_type.startswith("constexpr_") for op in ops)


def weight_parity(ops: Sequence[OpInfo], torch_model: Any) -> list[WeightParity]:
    """Every float constant of ``ops`` matched to a torch parameter, worst relative error first."""
    params = {n: to_numpy(p).astype(np.float64) for n, p in torch_model.named_parameters()}
    by_size: dict[int, list[str]] = {}
    for n, p in params.items():
        by_size.setdefault(p.size, []).append(n)
    producers = {out: op.op_type for op in ops for out in op.outputs}
    seen: dict[str, WeightParity] = {}
    for op in ops:
        if op.op_type.startswith("constexpr_"):
            continue
        for key, value in op.constants.items():
            names = op.inputs.get(key, ())
            if (
                len(names) != 1 or names[0] in seen or not isinstance(value, np.ndarray)
                or value.dtype.kind != "f" or value.size < MIN_ELEMENTS
            ):  # fmt: skip
                continue
            got = np.asarray(value, dtype=np.float64)
            torch_name, how = torch_names(names[0], list(params)), "name"
            if torch_name is not None and params[torch_name].size != got.size:
                torch_name = None
            if torch_name is None:
                torch_name, how = _by_values(got, by_size.get(got.size, ()), params), "shape"
            if torch_name is None:
                continue
            want = params[torch_name]
            rel, snr, max_abs = _compare(got.reshape(want.shape), want)
            if how == "shape" and want.ndim >= 2 and rel > UNCOMPRESSED_LIMIT:
                folded = _fold_scale(got.reshape(want.shape), want)
                if folded[0] < rel / 2:  # far better explained as a folded norm than as damage
                    (rel, snr, max_abs), how = folded, FOLDED
            seen[names[0]] = WeightParity(
                names[0], torch_name, producers.get(names[0], "const"), rel, snr, max_abs, how
            )
    return sorted(seen.values(), key=lambda w: -w.rel_error)


def _fold_scale(got: np.ndarray, want: np.ndarray) -> tuple[float, float, float]:
    """:func:`_compare` of ``got`` against ``want`` scaled per output channel (axis 0) by
    the least-squares factor: a batch norm folded into a conv or linear weight (coremltools'
    ``fuse_conv_batchnorm``) scales each output channel; only name-less (renamed) constants
    are matched this way, so a weight stored under its own name (coremltools PR #2777's
    declined-but-rescaled weight) is never excused."""
    g = got.reshape(want.shape[0], -1)
    w = want.reshape(want.shape[0], -1)
    norms = np.einsum("ij,ij->i", w, w)
    scale = np.divide(np.einsum("ij,ij->i", g, w), norms, out=np.zeros_like(norms), where=norms > 0)
    return _compare(g, scale[:, None] * w)


def _by_values(got: np.ndarray, candidates: Sequence[str], params: dict[str, np.ndarray]) -> str | None:
    best, best_cos = None, MIN_ALIGNMENT
    flat = got.ravel()
    norm = float(np.linalg.norm(flat))
    for name in candidates:
        want = params[name].ravel()
        denom = norm * float(np.linalg.norm(want))
        cos = abs(float(np.dot(flat, want))) / denom if denom else 0.0
        if cos > best_cos:
            best, best_cos = name, cos
    return best


def weight_text(found: Sequence[WeightParity], *, holds_compressed: bool) -> str:
    """The report section: how many weights are off, and the worst ones."""
    off = [w for w in found if w.off]
    kind = "a program holding compressed weights" if holds_compressed else "the program"
    head = (
        f"weight parity ({kind}): {len(off)} of {len(found)} weights differ from torch "
        "beyond their storage's rounding; worst first:"
        if found
        else f"weight parity ({kind}): no program constant matched a torch parameter"
    )
    return "\n".join([head, *(f"  {w.line()}" for w in found[:SHOWN])])


def off_weights_detail(ops: Sequence[OpInfo], torch_model: Any) -> str | None:
    """For a program compressed by a user's recipe (``coreml_convert``, ``package=``): the
    compression hint's detail when weights differ from torch beyond their storage's
    rounding (the worst named, with its op), else None (no compression, nothing off)."""
    if not compressed(ops):
        return None
    found = weight_parity(ops, torch_model)
    off = [w for w in found if w.off]
    if not off:
        return None
    return f"{len(off)} of {len(found)} weights differ from torch (the weights section lists them); worst {off[0].line()}"


__all__ = ["WeightParity", "compressed", "off_weights_detail", "weight_parity", "weight_text"]
