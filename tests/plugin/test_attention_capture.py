"""nn.MultiheadAttention / nn.TransformerEncoderLayer convert through the plugin's capture.

In eval mode under no_grad they take a fused fast path (``_native_multi_head_attention``)
that coremltools cannot convert; the capture turns the fast path off
(convert.unfused_attention). Real conversions, the real emulator, via pytester; and
torchvision's VisionTransformer (vit_b_16's class, at a small size) directly.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from pytest_coreml_parity.convert import ConversionOptions, capture, convert_model, graph_text

from ..real_models import import_torchvision

Run = Callable[..., pytest.RunResult]

SOURCE = '''
import pytest
import torch
from pytest_coreml_parity import assert_parity


class Encoder(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.TransformerEncoderLayer(16, 4, dim_feedforward=32, batch_first=True)
        self.attention = torch.nn.MultiheadAttention(16, 2, batch_first=True)

    def forward(self, x):
        y = self.layer(x)
        return self.attention(y, y, y, need_weights=False)[0]


@pytest.fixture
def torch_model():
    torch.manual_seed(0)
    return Encoder().eval()


@pytest.fixture
def example_inputs():
    torch.manual_seed(1)
    return (torch.randn(2, 5, 16),)


def test_parity(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
'''


def test_transformer_layers_convert_and_match(run: Run, pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_encoder=SOURCE)
    result = run("--coreml-cache-dir=none")
    result.assert_outcomes(passed=2)


class _Attention(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention = torch.nn.MultiheadAttention(8, 2, batch_first=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attention(x, x, x)[0]


def test_the_capture_takes_the_composite_path_and_restores_the_switch() -> None:
    model = _Attention().eval()
    x = torch.randn(1, 3, 8)
    with torch.no_grad():  # what the capture used to trace: the fused op
        fused = torch.jit.trace(model, (x,), check_trace=False)  # type: ignore[no-untyped-call]
    assert "_native_multi_head_attention" in str(fused.inlined_graph)
    text = graph_text(capture(model, (x,), ConversionOptions()).source)
    assert "_native_multi_head_attention" not in text
    assert torch.backends.mha.get_fastpath_enabled()  # put back after the capture


@pytest.mark.parametrize("export", [False, True], ids=["trace", "export"])
def test_torchvision_vision_transformer_converts(export: bool) -> None:
    torchvision = import_torchvision()
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(  # vit_b_16's class, small
        image_size=32, patch_size=16, num_layers=1, num_heads=2, hidden_dim=16, mlp_dim=32, num_classes=10
    ).eval()
    x = torch.randn(1, 3, 32, 32)
    from pytest_coreml_parity import emulate

    mlmodel = convert_model(model, (x,), ConversionOptions(use_export=export))
    (got,) = emulate(mlmodel, {"x": x.numpy()}).values()
    with torch.no_grad():
        want = model(x).numpy()
    assert abs(got - want).max() < 1e-4
