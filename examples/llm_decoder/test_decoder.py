"""A tiny Llama, raw: logits parity, stateful decode, 64-step greedy generation parity."""

from __future__ import annotations

import pytest
import torch

from pytest_coreml_parity import assert_generation, assert_parity, assert_rollout


@pytest.mark.parametrize("coreml_decoder", ["logits"])
def test_logits(coreml_model, example_inputs, coreml_decoder):
    """The prompt's logits, no cache: compared as ``logits`` at fp32 and fp16."""
    assert_parity(coreml_model, *example_inputs)


def test_decode(coreml_model, example_inputs):
    """Prefill, then one token a call: the cache lives in Core ML states on one side,
    in the wrapper's buffers on the other."""
    ids = example_inputs[0]
    steps = [(ids,)] + [(torch.tensor([[t]]),) for t in (3, 14, 15, 92, 65)]
    # Core ML states hold float16 only, so even the fp32 program's cache is fp16:
    # judged with fp16's element rule at every precision (docs/usage.md, Stateful models).
    assert_rollout(coreml_model, steps, rtol=1e-2, scale_atol=0.2)


@pytest.mark.parametrize("coreml_decoder", ["states", "explicit"])
def test_generation(coreml_model, example_inputs, coreml_decoder):
    """64 greedy tokens on each side, each with its own cache, through both recipes."""
    assert_generation(coreml_model, example_inputs[0], max_new_tokens=64)
