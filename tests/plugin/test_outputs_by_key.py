"""Outputs by key and converter shims through the plugin (pytester, real conversions).

Dicts, lists of dicts and transformers' ``ModelOutput`` are outputs, compared and named
by key; raw transformers models need no wrapper; the converter shims are on by
default, listed in the header, and ``--coreml-shims=off`` (or ``shims=False``) turns
them off.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_coreml_parity import messages

from ..real_models import TORCHVISION_WORKAROUND, import_transformers

Run = Callable[..., pytest.RunResult]

import_transformers()  # in this process before pytester runs (native extensions load once)

DETECTIONS = '''
import pytest
import torch
from pytest_coreml_parity import assert_parity


class Detector(torch.nn.Module):
    """torchvision's detection output form: a list of dicts, one per image."""

    def forward(self, x):
        return [
            {"boxes": x[i, :, :4] * 2.0, "scores": torch.sigmoid(x[i, :, 4] * SCALE), "kind": "det"}
            for i in range(x.shape[0])
        ]


SCALE = 1.0


@pytest.fixture
def torch_model():
    return Detector().eval()


@pytest.fixture
def example_inputs():
    torch.manual_seed(0)
    return (torch.randn(2, 3, 5),)


def test_by_key(coreml_model, example_inputs):
    out = assert_parity(coreml_model, *example_inputs)
    assert [sorted(d) for d in out] == [["boxes", "scores"], ["boxes", "scores"]]
    assert coreml_model.output_keys == ("0.boxes", "0.scores", "1.boxes", "1.scores")
    assert coreml_model.output_names == ("out_0_boxes", "out_0_scores", "out_1_boxes", "out_1_scores")
'''


def test_a_list_of_dicts_is_compared_and_named_by_key(run: Run, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_detections=DETECTIONS)
    result = run("--coreml-cache-dir=none")
    result.assert_outcomes(passed=2)


FAILING = '''
import pytest
import torch
from pytest_coreml_parity import assert_parity


class Heads(torch.nn.Module):
    def forward(self, x):
        return {"hidden": x * 2.0, "energy": (x * 300.0) ** 2, "cache": None}


@pytest.fixture
def torch_model():
    return Heads().eval()


@pytest.fixture
def example_inputs():
    return (torch.linspace(-1.0, 1.0, 8).reshape(2, 4),)


@pytest.mark.coreml(precisions=["fp16"])
def test_keys(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
'''


def test_a_failure_names_the_output_by_its_key(run: Run, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_heads=FAILING)
    result = run("--coreml-cache-dir=none")
    result.assert_outcomes(failed=1)
    head = messages.PARITY_HEADER.split("{output}")[0]
    result.stdout.fnmatch_lines([
        f"*{head}'energy' does not match PyTorch at fp16*",
        "*outputs compared by key: hidden, energy; not outputs (not tensors): cache (NoneType)*",
    ])  # fmt: skip


RAW = TORCHVISION_WORKAROUND + '''
import pytest
import transformers
from pytest_coreml_parity import assert_parity

CONFIG = dict(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
              intermediate_size=64, max_position_embeddings=64)


@pytest.fixture
def torch_model():
    torch.manual_seed(0)
    return MODEL.eval()


@pytest.fixture
def example_inputs():
    torch.manual_seed(1)
    return (torch.randint(0, 128, (1, 12)),)


def test_logits(coreml_model, example_inputs):
    out = assert_parity(coreml_model, *example_inputs)
    assert list(out) == KEYS and coreml_model.output_names == tuple(KEYS)
'''

LLAMA = RAW.replace("MODEL.eval()", """transformers.LlamaForCausalLM(
        transformers.LlamaConfig(**CONFIG, num_key_value_heads=2)).eval()""").replace(
    "KEYS", '["logits"]'
) + '''

@pytest.fixture
def coreml_decoder():
    return "none"  # the raw model itself, not the plugin's KV-cache wrapper (docs/decoders.md)
'''
BERT = RAW.replace("MODEL.eval()", "transformers.BertModel(transformers.BertConfig(**CONFIG)).eval()").replace(
    "KEYS", '["last_hidden_state", "pooler_output"]'
)


def test_raw_transformers_models_pass_with_plain_assert_parity(
    run: Run, pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(test_llama=LLAMA, test_bert=BERT)
    cache = f"--coreml-cache-dir={tmp_path / 'cache'}"
    result = run(cache, "-v")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines([
        "*" + messages.SHIMS_HEADER_ON.format(ops="diff, new_ones, alias, __and__"),
        "*4 converted, 0 from disk cache*",
    ])  # fmt: skip
    again = run(cache)  # keyed outputs survive the disk cache (structure, names)
    again.assert_outcomes(passed=4)
    again.stdout.fnmatch_lines(["*0 converted, 4 from disk cache*"])


def test_with_shims_off_the_missing_op_is_named(run: Run, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_llama=LLAMA)
    result = run("--coreml-cache-dir=none", "--coreml-shims=off", "--coreml-precisions=fp32")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines([messages.SHIMS_HEADER_OFF, "*could not convert LlamaForCausalLM*op 'diff'*"])


USER_CONVERT = '''
import coremltools as ct
import numpy as np
import pytest
import torch
from pytest_coreml_parity import assert_parity


class Packed(torch.nn.Module):
    def forward(self, positions):
        return torch.diff(positions, prepend=positions[:, :1] - 1, dim=-1) * 1.5


@pytest.fixture
def torch_model():
    return Packed().eval()


@pytest.fixture
def example_inputs():
    return (torch.tensor([[0.0, 1.0, 2.0, 0.0, 1.0]]),)


@pytest.fixture
def coreml_convert():
    def convert(torch_model, example_inputs, compute_precision):
        traced = torch.jit.trace(torch_model, example_inputs)
        return ct.convert(traced, inputs=[ct.TensorType(name="positions", shape=(1, 5))],
                          compute_precision=compute_precision, minimum_deployment_target=ct.target.iOS16,
                          skip_model_load=True)
    return convert


def test_user_conversion(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)


@pytest.mark.coreml(shims=False, precisions=["fp32"])
def test_opted_out(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
'''


def test_the_shims_serve_the_users_coreml_convert_and_the_marker_opts_out(
    run: Run, pytester: pytest.Pytester
) -> None:
    pytester.makepyfile(test_user=USER_CONVERT)
    result = run("--coreml-cache-dir=none")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*coreml_convert fixture's function raised converting Packed at fp32*op 'diff' not implemented*"])
