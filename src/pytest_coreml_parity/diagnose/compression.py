"""Attribute a compressed precision's failure: compression error vs fp16 error, and which weights.

A compressed program (``int8``, ``palettize4``, ...) differs from torch for two
reasons: fp16 arithmetic, and the compressed weights. This module separates them
on the failing inputs, all on the emulator: the compressed program against the
uncompressed fp16 program (the compression error), and that fp16 program against
torch fp32 (the fp16 error). The fp16 program is re-converted through
:mod:`pytest_coreml_parity.convert` with the same options minus the compression.

Then it names the weights whose values, as the program's ops read them (constexpr
outputs materialized by the emulator, or plain constants), differ most from the
torch parameters they came from. A weight stored *uncompressed* that still differs
from torch is the signature of coremltools PR #2777: a palettization that declined
a weight but left it divided by its per-channel scale.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import messages
from .._values import to_numpy
from ..compress import RECIPES
from ..convert import convert_model
from ..emulator import Emulator
from ..verdict import Metrics, metrics
from .localize import feed_for
from .subject import ModelUnderTest, torch_reference

#: Relative error of an uncompressed weight beyond fp16 rounding (u = 2^-11) by far.
UNCOMPRESSED_LIMIT = 1e-2
#: Weights listed in the section.
SHOWN = 3


@dataclass(frozen=True)
class WeightFinding:
    """One weight as the program reads it, against the torch parameter it came from."""

    name: str
    torch_name: str
    #: The op that produced the value: a constexpr op type, or ``const`` (stored as is).
    source: str
    rel_error: float
    max_abs: float
    cosine: float

    @property
    def compressed(self) -> bool:
        return self.source.startswith("constexpr_")

    @property
    def declined(self) -> bool:
        """Stored uncompressed, yet far from torch: PR #2777's rescaled-but-skipped weight."""
        return not self.compressed and self.rel_error > UNCOMPRESSED_LIMIT

    def line(self) -> str:
        if self.declined:
            return messages.COMPRESSION_NOT_COMPRESSED.format(
                name=self.name, torch=self.torch_name, rel=self.rel_error
            )
        return messages.COMPRESSION_WEIGHT.format(
            name=self.name, source=self.source, torch=f", from {self.torch_name}",
            rel=self.rel_error, abs=self.max_abs, cos=self.cosine,
        )


@dataclass(frozen=True)
class CompressionAttribution:
    """The compression error, the fp16 error (worst output of each) and the worst weights."""

    precision: str
    compression: Metrics
    fp16: Metrics
    weights: tuple[WeightFinding, ...]

    @property
    def from_compression(self) -> bool:
        """Whether compression, not fp16, contributes most of the error (lower SNR)."""
        return self.compression.snr <= self.fp16.snr

    @property
    def detail(self) -> str:
        """One line for the diagnosis hint."""
        declined = [w for w in self.weights if w.declined]
        if declined:
            w = declined[0]
            return (
                f"{w.name} (torch {w.torch_name}) was left uncompressed but rescaled, "
                f"relative error {w.rel_error:.3g} vs torch (coremltools PR #2777)"
            )
        what = "the compressed weights" if self.from_compression else "fp16 arithmetic"
        worst = f"; furthest weight {self.weights[0].torch_name}" if self.weights else ""
        return f"most of the error comes from {what} (compression SNR {_db(self.compression.snr)}, fp16 SNR {_db(self.fp16.snr)}){worst}"

    def text(self) -> str:
        lines = [
            messages.COMPRESSION_HEADER.format(precision=self.precision, recipe=RECIPES.get(self.precision, "")),
            messages.COMPRESSION_SPLIT.format(compression=_brief(self.compression), fp16=_brief(self.fp16)),
            messages.COMPRESSION_BLAME.format(
                what="the compression" if self.from_compression else "fp16 arithmetic, not the compression"
            ),
        ]
        if self.weights:
            lines.append(messages.COMPRESSION_WEIGHTS)
            lines += [w.line() for w in self.weights[:SHOWN]]
        return "\n".join(lines)


def _db(value: float) -> str:
    return "inf dB" if math.isinf(value) and value > 0 else f"{value:.1f} dB"


def _brief(m: Metrics) -> str:
    return f"SNR {_db(m.snr)}, cosine {m.cosine:.4f}, max abs {m.max_abs:.3g}"


def _worst(pairs: Sequence[tuple[Any, Any]]) -> Metrics:
    """The metrics of the output with the lowest SNR."""
    found = [metrics(a, e) for a, e in pairs]
    return min(found, key=lambda m: m.snr if not math.isnan(m.snr) else -math.inf)


def torch_names(program_name: str, parameters: Sequence[str]) -> str | None:
    """The torch parameter a program constant came from, by coremltools' naming
    (``fc1.weight`` -> ``fc1_weight_to_fp16_palettized``); the longest match wins."""
    best = None
    for name in parameters:
        key = name.replace(".", "_")
        if (program_name == key or program_name.startswith(key + "_")) and (
            best is None or len(name) > len(best)
        ):
            best = name
    return best


def weight_findings(emulator: Emulator, torch_model: Any) -> list[WeightFinding]:
    """Every constant weight the program's ops read that maps to a torch parameter,
    worst relative error first."""
    params = {n: to_numpy(p) for n, p in torch_model.named_parameters()}
    producers = {out: op.op_type for op in emulator.ops for out in op.outputs}
    seen: dict[str, WeightFinding] = {}
    for op in emulator.ops:
        if op.op_type.startswith("constexpr_"):
            continue
        for key, value in op.constants.items():
            names = op.inputs.get(key, ())
            if len(names) != 1 or names[0] in seen or not isinstance(value, np.ndarray):
                continue
            torch_name = torch_names(names[0], list(params))
            if torch_name is None:
                continue
            want = params[torch_name].astype(np.float64)
            got = np.asarray(value, dtype=np.float64)
            if got.size != want.size or got.size == 0:
                continue
            got = got.reshape(want.shape)
            norm = float(np.linalg.norm(want))
            diff = got - want
            denom = norm * float(np.linalg.norm(got))
            seen[names[0]] = WeightFinding(
                name=names[0],
                torch_name=torch_name,
                source=producers.get(names[0], "const"),
                rel_error=float(np.linalg.norm(diff)) / norm if norm else float(np.abs(diff).max()),
                max_abs=float(np.abs(diff).max()),
                cosine=float(np.dot(got.ravel(), want.ravel())) / denom if denom else 1.0,
            )
    return sorted(seen.values(), key=lambda w: -w.rel_error)


def attribute_compression(model: ModelUnderTest, inputs: Sequence[np.ndarray]) -> CompressionAttribution:
    """Split ``model``'s error on ``inputs`` into compression and fp16, and rank its weights.

    Converts the uncompressed fp16 program once (through convert.py, at the target
    the compressed program used).
    """
    options = model.options
    fp16_options = dataclasses.replace(
        options, precision="fp16", target=options.conversion_target, optimization=None, optimization_key=None
    )
    fp16_model = convert_model(model.torch_model, model.example_inputs, fp16_options)
    compressed = Emulator(model.mlmodel)
    uncompressed = Emulator(fp16_model)
    arrays = tuple(np.asarray(x) for x in inputs)
    got = compressed.run(feed_for(compressed, arrays))
    base = uncompressed.run(feed_for(uncompressed, arrays))
    import torch

    tensors = [
        torch.from_numpy(np.array(x)).to(example.dtype) for x, example in zip(arrays, model.example_inputs, strict=True)
    ]
    reference = torch_reference(model.torch_model, tensors)
    got_flat = [np.asarray(got[n]).reshape(np.shape(r)) for n, r in zip(compressed.output_names, reference, strict=True)]
    base_flat = [np.asarray(base[n]).reshape(np.shape(r)) for n, r in zip(uncompressed.output_names, reference, strict=True)]
    return CompressionAttribution(
        precision=model.precision,
        compression=_worst(list(zip(got_flat, base_flat, strict=True))),
        fp16=_worst(list(zip(base_flat, reference, strict=True))),
        weights=tuple(weight_findings(compressed, model.torch_model)),
    )


__all__ = ["CompressionAttribution", "WeightFinding", "attribute_compression", "torch_names", "weight_findings"]
