"""RMSNorm's x² overflows float16 once |x| > 256: embeddings scaled by 1e4 make it so.

fp32 passes; fp16 fails, and the diagnosis names ``pow`` at modeling_llama.py (the
RMSNorm's ``hidden_states.pow(2)``); with ``--coreml-search-fix`` it also prints the
ops to keep in fp32, verified by converting and running them.
"""

from __future__ import annotations

import pytest
import torch
from conftest import tiny_llama

from pytest_coreml_parity import assert_parity


@pytest.fixture
def torch_model():
    model = tiny_llama()
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(1e4)  # activations of ~1e2..1e4
    return model


@pytest.fixture
def coreml_decoder():
    return "logits"  # stateless, so the failing call can be localized


def test_rmsnorm_overflow(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)  # fp16: x² -> inf, then nan logits
