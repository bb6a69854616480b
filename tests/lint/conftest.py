"""Warm up what palettization touches before pytester runs in-process (as tests/compress does:
a second import of native extensions crashes)."""

from __future__ import annotations


def _warm_up() -> None:
    import torch

    import pytest_coreml_parity.compare
    import pytest_coreml_parity.diagnose  # noqa: F401
    from pytest_coreml_parity.convert import ConversionOptions, convert_model

    model = torch.nn.Sequential(torch.nn.Linear(64, 64), torch.nn.ReLU()).eval()
    convert_model(model, (torch.ones(2, 64),), ConversionOptions(precision="palettize4"))


_warm_up()
