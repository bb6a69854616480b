"""One test parametrized over several real models: the session-scoped ``coreml_model``
serves every parametrization, so nothing of one bind (a causal LM's recipe inputs, its
input names, its ``ct.convert`` types) may reach the next model bound to it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.real_models import TORCHVISION_WORKAROUND, import_transformers

import_transformers()

SOURCE = TORCHVISION_WORKAROUND + '''
import pytest
import torch

from tests.real_models import tiny, token_ids

MODELS = {
    "llama": (lambda: tiny("llama"), lambda: (token_ids(),)),
    "bert": (lambda: tiny("bert"), lambda: (token_ids(),)),
    "cnn": (
        lambda: torch.nn.Sequential(
            torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1)
        ).eval(),
        lambda: (torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)),),
    ),
}


@pytest.fixture(params=ORDER)
def name(request):
    return request.param


@pytest.fixture
def torch_model(name):
    torch.manual_seed(0)
    return MODELS[name][0]()


@pytest.fixture
def example_inputs(name):
    return MODELS[name][1]()


def test_parity(coreml_model, example_inputs, name):
    from pytest_coreml_parity import assert_parity

    assert_parity(coreml_model, *example_inputs)
    assert (coreml_model.decoder is not None) == (name == "llama")  # only the LM is wrapped
    assert len(coreml_model.input_names) == (2 if name == "llama" else 1)
'''


def test_one_test_over_several_real_models(
    pytester: pytest.Pytester, shared_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = str(Path(__file__).resolve().parents[2])  # for tests.real_models
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])))
    pytester.makepyfile(
        test_decoder_first=SOURCE.replace("ORDER", repr(["llama", "bert", "cnn"])),
        test_decoder_between=SOURCE.replace("ORDER", repr(["cnn", "llama", "bert"])),
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--coreml-cache-dir={shared_cache}", "--coreml-precisions=fp32", "-v"
    )
    result.assert_outcomes(passed=6)
    result.stdout.fnmatch_lines(
        [f"*test_decoder_first.py::test_parity[[]{name}-fp32[]] PASSED*" for name in ("llama", "bert", "cnn")]
    )
