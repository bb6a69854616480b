"""Raw transformers causal LMs through the plugin's default path: every family, both
KV-cache recipes, fp32 and fp16, greedy generation parity; failures that name the step."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.real_models import TORCHVISION_WORKAROUND, import_transformers

# The shared workaround (defines torchvision's op schemas), not a None in sys.modules: this
# module is imported into the same xdist worker as tests that build torchvision models.
import_transformers()

SOURCE = TORCHVISION_WORKAROUND + '''
import numpy as np
import pytest
import torch

import transformers as tf

from pytest_coreml_parity import assert_generation, assert_parity

SMALL = dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)
FAMILIES = {
    "llama": lambda: tf.LlamaForCausalLM(tf.LlamaConfig(**SMALL)),
    "qwen2": lambda: tf.Qwen2ForCausalLM(tf.Qwen2Config(**SMALL)),
    "mistral": lambda: tf.MistralForCausalLM(tf.MistralConfig(**SMALL, sliding_window=None)),
    "gemma": lambda: tf.GemmaForCausalLM(tf.GemmaConfig(**SMALL, head_dim=16)),
    "gpt2": lambda: tf.GPT2LMHeadModel(tf.GPT2Config(vocab_size=256, n_embd=64, n_layer=2,
                                                      n_head=4, n_positions=128)),
}


@pytest.fixture(params=sorted(FAMILIES))
def torch_model(request):
    torch.manual_seed(0)
    return FAMILIES[request.param]().eval()


@pytest.fixture
def example_inputs():
    return (torch.randint(0, 256, (1, 6), generator=torch.Generator().manual_seed(1)),)


@pytest.mark.parametrize("coreml_decoder", ["states", "explicit"])
def test_generation(coreml_model, torch_model, example_inputs, coreml_decoder):
    assert_generation(coreml_model, example_inputs[0], max_new_tokens=16)


PAD = torch.tensor([[0, 0, 1, 1, 1, 1]])  # left padding: the first two queries see no key


@pytest.mark.parametrize("coreml_decoder", ["states"])
def test_padded(coreml_model, torch_model, example_inputs, coreml_decoder):
    """The default recipe's program (the one test_generation converted): the token ids
    alone, then with a 2-D padding mask as the second input."""
    ids = example_inputs[0]
    # Core ML states are float16 even in an fp32 program: fp16's element rule for states
    loose = dict(rtol=1e-2, scale_atol=0.2)
    assert_parity(coreml_model, ids, **loose)  # the mask completed: ones(1, 6)
    coreml_model.reset_state()
    assert_parity(coreml_model, ids, PAD, **loose)
    coreml_model.reset_state()
    got = np.asarray(coreml_model(ids, PAD))[0, 2:]
    # The wrapper's mask means what transformers' own 2-D mask means: the attended rows
    # equal the raw model's logits under attention_mask=PAD (the fully masked rows are
    # not compared: under -3e4 they attend uniformly).
    with torch.no_grad():
        raw = torch_model(input_ids=ids, attention_mask=PAD, position_ids=torch.arange(6)[None])
        unpadded = torch_model(input_ids=ids, position_ids=torch.arange(6)[None]).logits[0, 2:]
    want = raw.logits[0, 2:].numpy()
    scale = float(np.abs(want).max())
    assert np.abs(got - want).max() <= 0.02 * scale, np.abs(got - want).max() / scale
    assert np.abs(unpadded.numpy() - want).max() > 0.05 * scale  # the padding matters
'''


def _subprocess(pytester: pytest.Pytester, cache: Path, *args: str) -> pytest.RunResult:
    """A fresh process: transformers must first be imported after the torchvision guard."""
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", f"--coreml-cache-dir={cache}", *args)


def test_every_family_generates_the_same_tokens_through_both_recipes(
    pytester: pytest.Pytester, shared_cache: Path
) -> None:
    pytester.makepyfile(test_families=SOURCE)
    # healthy decoders pass the headroom gate: the wrappers' -3e4 mask is a mask, not a peak
    result = _subprocess(pytester, shared_cache, "-v", "--coreml-headroom=4")
    result.assert_outcomes(passed=30)
    result.stdout.fnmatch_lines(
        ["*test_generation[[]gpt2-fp16-explicit[]] PASSED*", "*test_padded[[]qwen2-fp32-states[]] PASSED*"]
    )


OVERFLOW = TORCHVISION_WORKAROUND + """
import pytest
import torch

import transformers as tf

from pytest_coreml_parity import assert_generation


@pytest.fixture
def torch_model():
    torch.manual_seed(0)
    model = tf.LlamaForCausalLM(tf.LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)).eval()
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(1e4)
    return model


@pytest.fixture
def example_inputs():
    return (torch.randint(0, 256, (1, 6), generator=torch.Generator().manual_seed(1)),)


@pytest.mark.coreml(precisions=["fp16"])
def test_generation(coreml_model, example_inputs):
    assert_generation(coreml_model, example_inputs[0], max_new_tokens=4)
"""


def test_a_failing_generation_names_the_step_the_layer_and_the_op(
    pytester: pytest.Pytester, shared_cache: Path
) -> None:
    pytester.makepyfile(test_overflow=OVERFLOW)
    result = _subprocess(pytester, shared_cache)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        [
            "*generation diverged from PyTorch (fp16, decoder recipe 'states'*",
            "*first divergent step 0 (position 6): Core ML token *, PyTorch token *",
            "*top-5 PyTorch: *",
            # the residual stream (~1e4) hides layer 0's zeroed RMSNorm; the final norm shows it
            "*first layer below the layer cosine gate 0.9995: hidden_2 (the final norm), cosine 0.000000",
            "*first non-finite op: pow * modeling_llama.py:*: variance = hidden_states.pow(2)*output inf in * of * elements*",
        ]
    )
    # the advice: the overflowing op's fp32 value, and fp32 for it (or the whole program)
    result.stdout.fnmatch_lines(
        ["hint: float16 overflow: pow * computes * past float16's max 65504*FLOAT32*op_selector*"]
    )


PADDED = TORCHVISION_WORKAROUND + """
import pytest
import torch

import transformers as tf

from pytest_coreml_parity import assert_parity


@pytest.fixture
def torch_model():
    torch.manual_seed(0)
    return tf.LlamaForCausalLM(tf.LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)).eval()


@pytest.fixture
def example_inputs():
    ids = torch.randint(0, 256, (1, 6), generator=torch.Generator().manual_seed(1))
    return (ids, torch.tensor([[0, 0, 1, 1, 1, 1]]))  # left padding: two fully masked rows


@pytest.mark.parametrize("coreml_decoder", ["states", "logits"])
def test_padded(coreml_model, example_inputs, coreml_decoder):
    # Core ML states are float16 even in an fp32 program: fp16's element rule for states
    loose = dict(rtol=1e-2, scale_atol=0.2) if coreml_decoder == "states" else {}
    assert_parity(coreml_model, *example_inputs, **loose)
    coreml_model.reset_state()  # a new sequence (the states recipe's cache starts over)
    ids, mask = example_inputs
    assert_parity(coreml_model, ids, torch.ones_like(mask), **loose)
"""


def test_a_padding_mask_as_a_second_input_and_the_headroom_gate(
    pytester: pytest.Pytester, shared_cache: Path
) -> None:
    """Llama with a 2-D padding mask (``states`` and ``logits``), fp32 and fp16, under
    ``--coreml-headroom=4``: the wrappers' -3e4 mask is a mask, not a peak."""
    pytester.makepyfile(test_padded=PADDED)
    result = _subprocess(pytester, shared_cache, "-v", "--coreml-headroom=4")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["*test_padded[[]fp16-logits[]] PASSED*"])


PADDED_FAMILIES = SOURCE.split("@pytest.mark.parametrize")[0].replace(
    "params=sorted(FAMILIES)", 'params=sorted(set(FAMILIES) - {"llama"})'  # llama: PADDED
).replace(
    "return (torch.randint(0, 256, (1, 6), generator=torch.Generator().manual_seed(1)),)",
    "return (torch.randint(0, 256, (1, 6), generator=torch.Generator().manual_seed(1)), PAD)",
) + '''
PAD = torch.tensor([[0, 0, 1, 1, 1, 1]])  # left padding: the first two queries see no key


@pytest.mark.parametrize("coreml_decoder", ["logits"])
def test_padded(coreml_model, torch_model, example_inputs, coreml_decoder):
    ids, mask = example_inputs
    assert_parity(coreml_model, ids, mask)
    assert_parity(coreml_model, ids, torch.ones_like(mask))
'''


@pytest.mark.zoo  # eight more conversions (1-2 min); the states recipe's padding is in the default suite
def test_a_padding_mask_as_the_logits_recipes_second_input_on_every_family(
    pytester: pytest.Pytester, shared_cache: Path
) -> None:
    """Qwen2, Mistral, Gemma and GPT-2 converted with a 2-D padding mask as the ``logits``
    recipe's second input, fp32 and fp16, under ``--coreml-headroom=4``."""
    pytester.makepyfile(test_padded=PADDED_FAMILIES)
    result = _subprocess(pytester, shared_cache, "-v", "--coreml-headroom=4")
    result.assert_outcomes(passed=8)
    result.stdout.fnmatch_lines(["*test_padded[[]gpt2-fp16-logits[]] PASSED*"])


RAW = TORCHVISION_WORKAROUND + """
import pytest
import torch

import transformers as tf

from pytest_coreml_parity import assert_parity


@pytest.fixture
def torch_model():
    torch.manual_seed(0)
    return tf.LlamaForCausalLM(tf.LlamaConfig(
        vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=128)).eval()


@pytest.fixture
def example_inputs():
    return (torch.randint(0, 256, (1, 6), generator=torch.Generator().manual_seed(1)),)


@pytest.mark.parametrize("coreml_decoder", ["none"])
def test_raw(coreml_model, example_inputs, coreml_decoder):
    assert_parity(coreml_model, *example_inputs)
"""


def test_a_raw_llama_with_its_own_mask_code_passes_the_headroom_gate(
    pytester: pytest.Pytester, shared_cache: Path
) -> None:
    """No wrapper: transformers' own causal mask (its finfo.min fill, -inf once fp16
    stores it) is a mask, not a headroom peak, so the healthy model passes
    ``--coreml-headroom=4`` at fp32 and fp16."""
    pytester.makepyfile(test_raw=RAW)
    result = _subprocess(pytester, shared_cache, "-v", "--coreml-headroom=4")
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_raw[[]fp16-none[]] PASSED*"])
