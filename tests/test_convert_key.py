"""The cache key comes from what is converted: the captured program, every tensor, options."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest
import torch

from pytest_coreml_parity.convert import (
    ConversionOptions,
    capture,
    conversion_key,
    graph_text,
    model_digest,
)


class Scaled(torch.nn.Module):
    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.scale = scale  # a plain attribute: not in the state_dict
        self.linear = torch.nn.Linear(3, 3)
        self.register_buffer("offset", torch.zeros(3), persistent=False)
        self.table = torch.tensor([1.0, 2.0, 3.0])  # a tensor attribute: a graph constant

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.linear(x) * self.scale + self.offset + self.table
        return out


INPUTS = (torch.ones(2, 3),)


def _model() -> Scaled:
    torch.manual_seed(0)
    return Scaled().eval()


def _key(model: torch.nn.Module, options: ConversionOptions | None = None) -> str:
    options = options or ConversionOptions()
    return conversion_key(capture(model, INPUTS, options), options)


@pytest.mark.parametrize("use_export", [False, True], ids=["trace", "export"])
def test_a_fresh_instance_of_an_unchanged_model_has_the_same_key(use_export: bool) -> None:
    # Tracing one class twice in a process mangles its TorchScript type name; the key ignores that.
    options = ConversionOptions(use_export=use_export)
    assert _key(_model(), options) == _key(_model(), options)
    changed = _model()
    changed.scale = 3.0
    assert _key(changed, options) != _key(_model(), options)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda m: setattr(m, "scale", 3.0), id="plain-attribute"),
        pytest.param(lambda m: setattr(m, "scale", 1.0000001), id="attribute-at-full-precision"),
        pytest.param(lambda m: m.offset.fill_(3.0), id="non-persistent-buffer"),
        pytest.param(lambda m: m.table.mul_(2.0), id="tensor-attribute-constant"),
        pytest.param(lambda m: m.linear.weight.data.add_(1.0), id="parameter"),
    ],
)
def test_anything_forward_reads_changes_the_key(change: Callable[[Scaled], object]) -> None:
    model = _model()
    before = _key(model)
    change(model)
    assert _key(model) != before


def test_inputs_options_and_export_change_the_key() -> None:
    model = _model()
    base = ConversionOptions()
    keys = {
        _key(model, base),
        _key(model, dataclasses.replace(base, precision="fp16")),
        _key(model, dataclasses.replace(base, fp32_ops=frozenset({"mul"}))),
        _key(model, dataclasses.replace(base, use_export=True)),
        conversion_key(capture(model, (torch.ones(4, 3),), base), base),
    }
    assert len(keys) == 5
    assert model_digest(model, INPUTS, base) == _key(model, base)


def test_the_program_text_has_no_source_locations() -> None:
    text = graph_text(capture(_model(), INPUTS, ConversionOptions()).source)
    assert __file__ not in text and ".py:" not in text
    assert "aten::linear" in text and "___torch_mangle" not in text


def test_capture_failure_is_a_conversion_error() -> None:
    from pytest_coreml_parity.errors import ConversionError

    class NoTensor(torch.nn.Module):  # dicts are outputs by key; a bare number is not
        def forward(self, x: torch.Tensor) -> dict[str, float]:
            return {"y": float(x.sum())}

    with pytest.raises(ConversionError, match="holding no tensor"):
        capture(NoTensor(), INPUTS, ConversionOptions())
