"""The torch reference of a small model runs on one intra-op thread, and restores the count."""

from __future__ import annotations

import pytest
import torch

from pytest_coreml_parity.cache import ConversionCache
from pytest_coreml_parity.model import SMALL_REFERENCE, CoreMLModel, ModelSettings, Runtime


class Spy(torch.nn.Module):
    """Records the intra-op thread count each forward sees; ``width`` sets its size."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.proj = torch.nn.Linear(width, width)
        self.seen: list[int] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(torch.get_num_threads())
        return self.proj(x)


@pytest.fixture
def two_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize(("width", "threads"), [(16, 1), (1024, 2)])
def test_reference_threads(two_threads: None, width: int, threads: int) -> None:
    spy = Spy(width).eval()
    assert (width * width + width <= SMALL_REFERENCE) == (threads == 1)
    model = CoreMLModel(
        ModelSettings(precision="fp32"), Runtime(ConversionCache(None), "emulator")
    )
    x = torch.randn(1, width)
    model.bind(spy, (x,))
    spy.seen.clear()
    out = model.reference(x)
    assert spy.seen == [threads]
    assert torch.get_num_threads() == 2  # restored
    with torch.no_grad():
        assert torch.equal(torch.from_numpy(out), spy(x))  # same numbers as a plain call
