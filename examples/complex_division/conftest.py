"""Fixtures for the complex-division example: the model under test and how to trace it."""

from __future__ import annotations

import pytest
import torch


class ComplexDiv(torch.nn.Module):
    """(ra + i·ia) / (rb + i·ib), written the textbook way.

    The denominator rb² + ib² overflows float16 (max 65504) once |b| ≳ 256,
    so a float16 Core ML model returns inf/nan where PyTorch (float32) is fine.
    """

    def forward(self, a: torch.Tensor) -> torch.Tensor:  # a[..., 0:4] = ra, ia, rb, ib
        ra, ia, rb, ib = a.unbind(-1)
        den = rb * rb + ib * ib
        return torch.stack([(ra * rb + ia * ib) / den, (ia * rb - ra * ib) / den], -1)


@pytest.fixture
def torch_model() -> torch.nn.Module:
    return ComplexDiv().eval()


@pytest.fixture
def example_inputs() -> tuple[torch.Tensor, ...]:
    # Unit-scale values away from zero: fine at both precisions.
    generator = torch.Generator().manual_seed(0)
    return (torch.rand(8, 4, generator=generator) + 0.5,)
