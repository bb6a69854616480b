"""The one call ``CoreMLModel.bind`` makes: a raw causal LM becomes its recipe's wrapper."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .recipe import NO_WRAPPER, Decoder, is_causal_lm, parse, prepare


def wrap_causal_lm(
    torch_model: Any,
    example_inputs: tuple[Any, ...],
    spec: Any,
    convert_kwargs: Mapping[str, Any] | None,
) -> tuple[Any, tuple[Any, ...], dict[str, Any], Decoder] | None:
    """(wrapper, its example inputs, ct.convert keywords, Decoder) for a causal LM, else None.

    ``spec`` is the test's ``coreml_decoder`` fixture (None: ``states``). The test's own
    ``coreml_convert_kwargs`` win over the recipe's ``inputs`` / ``outputs``.
    """
    if not is_causal_lm(torch_model):
        return None
    recipe, context, layers = parse(spec)
    if recipe == NO_WRAPPER:
        return None
    module, inputs, kwargs, decoder = prepare(
        torch_model, example_inputs, recipe, context, layers=layers
    )
    return module, inputs, {**kwargs, **(convert_kwargs or {})}, decoder
