"""The precision table: every precision the precision axis knows, one row each.

A row says what a precision is built on (the base compute precision), how it is
compressed (the recipe in words and the ``ct.optimize.coreml`` steps), the lowest
iOS release its ops exist in, its verdict preset, and which stacks run it. Settings,
the help text, compression (``compress.py``) and the verdict (``verdict.PRESETS``)
read it; adding a compressed precision is one row here plus its test.

A leaf: cheap to import (no numpy, torch or coremltools); a recipe's steps receive
``coremltools.optimize.coreml`` when compression runs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

#: ``steps(cto)`` -> [(coremltools function name, OptimizationConfig)], applied in order.
Steps = Callable[[Any], list[tuple[str, Any]]]

FP32 = "fp32"
FP16 = "fp16"


@dataclass(frozen=True)
class Precision:
    """One precision of the precision axis."""

    name: str
    #: The compute precision the program is converted at: ``fp32`` or ``fp16``.
    base: str
    #: The verdict preset's values (``verdict.Gates`` fields); None: judged as ``base``.
    preset: Mapping[str, float] | None
    #: Stacks that run it (the others skip it with a reason).
    stacks: tuple[str, ...] = ("coreml",)
    #: Runs unless precisions are asked for.
    default: bool = False
    #: What the compression does, in words (None: not compressed).
    recipe: str | None = None
    #: The ``ct.optimize.coreml`` steps of a built-in compression (None: none, or the user's).
    steps: Steps | None = field(default=None, compare=False)
    #: The lowest iOS release its ops exist in (constexpr_*: 16; activation quantization: 17).
    minimum_ios: int | None = None
    #: The user's OptimizationConfig makes it (``@pytest.mark.coreml(optimization=...)``).
    user_config: bool = False
    #: An fp16 program with elementwise arithmetic kept in fp32 unless fp32_ops says which.
    mixed: bool = False
    #: (module, distribution, extra) its compression imports beyond coremltools: checked
    #: before compressing, so a missing one names the extra that installs it.
    needs: tuple[str, str, str] | None = None

    @property
    def compressed(self) -> bool:
        return self.recipe is not None


def _int8(cto: Any) -> Any:
    return cto.OptimizationConfig(
        global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8", granularity="per_channel")
    )


def _palettize4(cto: Any) -> list[tuple[str, Any]]:
    config = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(nbits=4, mode="kmeans"))
    return [("palettize_weights", config)]


def _prune50(cto: Any) -> list[tuple[str, Any]]:
    config = cto.OptimizationConfig(global_config=cto.OpMagnitudePrunerConfig(target_sparsity=0.5))
    return [("prune_weights", config)]


def _w8a8(cto: Any) -> list[tuple[str, Any]]:
    activations = cto.OptimizationConfig(
        global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8")
    )
    return [("linear_quantize_activations", activations), ("linear_quantize_weights", _int8(cto))]


# Compressed presets: evidence in benchmarks/compression_evidence.py, docs/compression.md.
# Floors sit 3-6x (or 5+ dB) below the worst healthy measurement. int8 is built on fp16,
# so it is never judged stricter than fp16 (a net whose fp16 noise alone reaches 0.15 rms,
# measured in docs/tolerances.md, must not fail int8). Reasoning: docs/tolerances.md.
_LOOSE = {"rtol": 5e-2, "atol": 1e-5, "scale_atol": 0.5, "min_snr": 15.0, "min_cosine": 0.98}

# fp32: scale-aware like fp16, 200x tighter. Evidence in benchmarks/fp32_evidence.py and
# docs/tolerances.md: healthy zoo nets (and torch's own fp32 run against float64) reach
# max/rms 2.4e-5 and SNR >= 103 dB; coremltools' RMSNorm (#2821) with one large feature
# is 1.1e-3..3.5e-2 rms off at 66..34 dB; the triu(-inf) mask (#2771) is nan; one fp16
# rounding (an fp16-stored state) is ~74 dB, so it fails too.
_FP32 = {"rtol": 1e-4, "atol": 1e-5, "scale_atol": 1e-3, "min_snr": 80.0}

#: The table, in the order errors and help text list the precisions.
TABLE: tuple[Precision, ...] = (
    Precision("fp32", FP32, _FP32, ("coreml", "coreai"), default=True),
    Precision(
        "fp16", FP16, {"rtol": 1e-2, "atol": 1e-5, "scale_atol": 0.2, "min_snr": 25.0},
        ("coreml", "coreai"), default=True,
    ),
    Precision(
        "int8", FP16,
        {"rtol": 5e-2, "atol": 1e-5, "scale_atol": 0.2, "min_snr": 25.0, "min_cosine": 0.998},
        recipe='weights int8, per channel (OpLinearQuantizerConfig(mode="linear_symmetric", '
        'dtype="int8", granularity="per_channel"))',
        steps=lambda cto: [("linear_quantize_weights", _int8(cto))], minimum_ios=16,
    ),
    Precision(
        "palettize4", FP16, _LOOSE,
        recipe='weights 4-bit k-means LUT (OpPalettizerConfig(nbits=4, mode="kmeans"))',
        steps=_palettize4, minimum_ios=16, needs=("sklearn", "scikit-learn", "compress"),
    ),
    Precision(
        "prune50", FP16, {**_LOOSE, "min_snr": 20.0, "min_cosine": 0.99},
        recipe="weights 50% magnitude-pruned (OpMagnitudePrunerConfig(target_sparsity=0.5))",
        steps=_prune50, minimum_ios=16,
    ),
    Precision(
        "w8a8", FP16, _LOOSE,
        recipe="activations int8 calibrated on the example inputs "
        "(linear_quantize_activations), then weights int8 per channel",
        steps=_w8a8, minimum_ios=17,
    ),
    Precision(
        "custom", FP16, _LOOSE,
        recipe="the OptimizationConfig given with @pytest.mark.coreml(optimization=...)",
        minimum_ios=16, user_config=True,
    ),
    Precision("mixed", FP16, None, ("coreai",), mixed=True),
)  # fmt: skip

#: name -> row.
PRECISIONS: dict[str, Precision] = {row.name: row for row in TABLE}


def names(*, stack: str | None = None) -> tuple[str, ...]:
    """Every precision name (those ``stack`` runs, when given), in table order."""
    return tuple(row.name for row in PRECISIONS.values() if stack is None or stack in row.stacks)


def supports(precision: str, stack: str) -> bool:
    """Whether ``stack`` runs ``precision``."""
    row = PRECISIONS.get(precision)
    return row is not None and stack in row.stacks


def stack_precisions(stack: str) -> tuple[str, ...]:
    return names(stack=stack)


def is_compressed(precision: str) -> bool:
    row = PRECISIONS.get(precision)
    return row is not None and row.compressed


def is_exact(precision: str) -> bool:
    """Whether ``precision`` computes in float32 throughout (nothing to localize, no fix to search)."""
    row = PRECISIONS.get(precision)
    return row is not None and row.base == FP32


__all__ = [
    "FP16", "FP32", "PRECISIONS", "TABLE", "Precision", "is_compressed", "is_exact", "names",
    "stack_precisions", "supports",
]  # fmt: skip
