"""Weight parity on a real conversion: a conv with a batch norm the converter folded into
it is matched up to its per-channel scale (not reported as damaged), while a weight with no
norm folded into it is matched as it is. (A weight stored under its own name, PR #2777's
declined one, is compared exactly: tests/lint/test_plugin_lint.py.)"""

from __future__ import annotations

import torch

from pytest_coreml_parity.convert import ConversionOptions, convert_model
from pytest_coreml_parity.diagnose.weights import FOLDED, weight_parity
from pytest_coreml_parity.headroom import emulator_for


def _conv_bn() -> torch.nn.Module:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, bias=False), torch.nn.BatchNorm2d(16), torch.nn.ReLU(),
        torch.nn.Flatten(), torch.nn.Linear(16 * 6 * 6, 10),
    )  # fmt: skip
    bn = model[1]
    with torch.no_grad():  # a fold scale far from 1 (gamma / sqrt(var + eps))
        bn.weight.copy_(torch.rand(16) * 4 + 0.5)
        bn.running_var.copy_(torch.rand(16) * 0.1 + 0.01)
        bn.running_mean.copy_(torch.randn(16))
    return model.eval()


def test_a_folded_batch_norm_is_not_weight_damage() -> None:
    model = _conv_bn()
    mlmodel = convert_model(model, (torch.randn(1, 3, 8, 8),), ConversionOptions(precision="fp16"))
    found = {w.torch_name: w for w in weight_parity(emulator_for(mlmodel).ops, model)}
    conv = found["0.weight"]
    assert conv.matched_by == FOLDED and not conv.off and conv.rel_error < 1e-3, conv
    assert "a norm the converter folded into it" in conv.line()
    assert found["4.weight"].matched_by == "shape" and not found["4.weight"].off  # no norm: matched exactly
