"""Fixtures for the LLM-decoder example: a tiny Llama with random weights, as shipped raw.

``torch_model`` is an unmodified ``transformers.LlamaForCausalLM``; the plugin
recognises a causal LM and converts it through its KV-cache recipe (the
``coreml_decoder`` fixture: ``states``, Apple's recipe, unless a test says otherwise).
"""

from __future__ import annotations

import sys

import pytest
import torch


def _torchvision_workaround() -> None:
    """Let ``import transformers`` work next to a torchvision built for another torch.

    Such a torchvision (a CUDA wheel next to CPU torch) raises ``operator torchvision::nms
    does not exist`` on import, and transformers imports it. Defining the two operator
    schemas it registers kernels for lets the import finish; its C++ ops (nms) stay
    unavailable, which a language model never calls. With a matching torchvision, or
    none, this does nothing.
    """
    try:
        import torchvision  # noqa: F401
    except RuntimeError as exc:
        if "torchvision::nms" not in str(exc):
            raise
        library = torch.library.Library("torchvision", "DEF")
        library.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        library.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _KEEP.append(library)  # the definitions live as long as the library object
        for name in [n for n in sys.modules if n == "torchvision" or n.startswith("torchvision.")]:
            del sys.modules[name]  # the failed import's half-initialized modules


_KEEP: list[object] = []
_torchvision_workaround()
from transformers import LlamaConfig, LlamaForCausalLM  # noqa: E402

CONFIG = LlamaConfig(
    vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
    num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
)  # fmt: skip


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    return LlamaForCausalLM(CONFIG).eval()


@pytest.fixture
def torch_model() -> LlamaForCausalLM:
    return tiny_llama()


@pytest.fixture
def example_inputs() -> tuple[torch.Tensor, ...]:
    return (torch.randint(0, CONFIG.vocab_size, (1, 8), generator=torch.Generator().manual_seed(1)),)
