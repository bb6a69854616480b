"""A causal LM's cache length follows the model's positions: GPT-2 with 64 positions gets a
64-slot cache by default, so a long sequence stops at the plugin's "beyond the cache"
error, not at torch's IndexError inside the position embedding."""

from __future__ import annotations

from pathlib import Path

import pytest

from pytest_coreml_parity.decoders.recipe import DEFAULT_CONTEXT, model_context
from tests.real_models import TORCHVISION_WORKAROUND, tiny


def test_the_default_context_is_capped_at_the_models_positions() -> None:
    config = tiny("gpt2").config  # n_positions=64, read as max_position_embeddings
    assert DEFAULT_CONTEXT > 64
    assert model_context(config, None) == 64
    assert model_context(config, 32) == 32


def test_a_context_beyond_the_models_positions_names_both() -> None:
    with pytest.raises(TypeError, match=r"context 100 exceeds the model's 64 positions \(GPT2Config"):
        model_context(tiny("gpt2").config, 100)


def test_a_config_without_positions_keeps_the_default() -> None:
    assert model_context(object(), None) == DEFAULT_CONTEXT
    assert model_context(object(), 300) == 300


LONG = TORCHVISION_WORKAROUND + """
import pytest
import torch

import transformers as tf


@pytest.fixture
def torch_model():
    torch.manual_seed(0)
    return tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=128, n_embd=32, n_layer=2, n_head=4,
                                            n_positions=64)).eval()


@pytest.fixture
def example_inputs():
    return (torch.randint(0, 128, (1, 16), generator=torch.Generator().manual_seed(1)),)


@pytest.mark.coreml(precisions=["fp32"])
def test_long(coreml_model, example_inputs):
    for _ in range(4):  # 4 x 16 tokens fill the 64 positions
        coreml_model(*example_inputs)
    coreml_model(*example_inputs)
"""


def test_a_sequence_past_gpt2s_positions_fails_with_the_plugins_message(
    pytester: pytest.Pytester, shared_cache: Path
) -> None:
    pytester.makepyfile(test_long=LONG)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--coreml-cache-dir={shared_cache}")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*the sequence reaches position 80, beyond the cache's 64*"])
    result.stdout.no_fnmatch_line("*IndexError*")
