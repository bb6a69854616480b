"""Hypothesis strategies concentrated where float16 conversions break.

This is the public import path; the strategies live in three modules:

* :mod:`.extreme`: values. :func:`extreme_floats` / :func:`extreme_arrays` /
  :func:`extreme_tensors` mix float16's danger zones (past 65504; 256 and more,
  whose squares overflow; subnormals; near-zero denominators; mixed signs), and
  :func:`fp16_floats` / :func:`fp16_tensors` stay finite in float16 for float16
  inputs. :func:`fuzz_settings` gives parity-friendly hypothesis settings.
* :mod:`.structured`: patterns. Attention masks (padding, causal, fully masked
  rows, additive fills), all-zero rows, dominant logits, a huge dynamic range in
  a row, near-zero denominators.
* :mod:`.program_inputs`: :func:`model_inputs`, a strategy for every input of a
  converted model, read from its program (dtype, shape, role, embedding size).

See docs/strategies.md for what each one generates, why, and the bug it reproduces.
"""

from __future__ import annotations

from .extreme import (
    BOUNDARY_VALUES,
    FLOAT32_MAX,
    FP16_MAX,
    FP16_MIN_NORMAL,
    FP16_MIN_SUBNORMAL,
    FUZZ_PHASES,
    INPUT_OVERFLOW,
    OVERFLOW_BAND,
    REALISTIC_MIN_MAGNITUDE,
    extreme_arrays,
    extreme_floats,
    extreme_tensors,
    fp16_arrays,
    fp16_floats,
    fp16_tensors,
    fuzz_settings,
    label_input_overflow,
)
from .program_inputs import INDEX_FALLBACK_BOUND, InputSpec, input_specs, model_inputs
from .structured import (
    DOMINANT_GAP,
    FLOAT16_MIN,
    FLOAT32_MIN,
    MASK_FILLS,
    NEAR_ZERO_VALUES,
    attention_masks,
    causal_masks,
    dominant_logits,
    dynamic_range_rows,
    near_zero_tensors,
    padding_masks,
    zero_rows,
)

__all__ = [
    "BOUNDARY_VALUES",
    "DOMINANT_GAP",
    "FLOAT16_MIN",
    "FLOAT32_MAX",
    "FLOAT32_MIN",
    "FP16_MAX",
    "FP16_MIN_NORMAL",
    "FP16_MIN_SUBNORMAL",
    "FUZZ_PHASES",
    "INDEX_FALLBACK_BOUND",
    "INPUT_OVERFLOW",
    "MASK_FILLS",
    "NEAR_ZERO_VALUES",
    "OVERFLOW_BAND",
    "REALISTIC_MIN_MAGNITUDE",
    "InputSpec",
    "attention_masks",
    "causal_masks",
    "dominant_logits",
    "dynamic_range_rows",
    "extreme_arrays",
    "extreme_floats",
    "extreme_tensors",
    "fp16_arrays",
    "fp16_floats",
    "fp16_tensors",
    "fuzz_settings",
    "input_specs",
    "label_input_overflow",
    "model_inputs",
    "near_zero_tensors",
    "padding_masks",
    "zero_rows",
]
