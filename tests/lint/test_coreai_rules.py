"""The Core AI rules on the program the coreai stack converts (its torch.export graph)."""

from __future__ import annotations

import pytest
import torch

from .support import exported_findings

pytest.importorskip("coreai_torch")


class Rounding(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.floor(x) + torch.ceil(x)


class Smooth(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x)


def test_floor_and_ceil_on_the_gpu_delegate_are_found() -> None:
    found = exported_findings("coreai-rounding-gpu", Rounding(), torch.randn(8))
    assert sorted(f.op_type for f in found) == ["aten.ceil", "aten.floor"]
    assert all("test_coreai_rules.py" in str(f.torch_line) for f in found)


def test_no_rounding_or_cpu_and_ne_is_quiet() -> None:
    assert exported_findings("coreai-rounding-gpu", Smooth(), torch.randn(8)) == []
    assert exported_findings("coreai-rounding-gpu", Rounding(), torch.randn(8), compute_units="CPU_AND_NE") == []


class Cache(torch.nn.Module):
    def __init__(self, length: int) -> None:
        super().__init__()
        self.register_buffer("k_cache", torch.zeros(1, length, 16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.k_cache[:, :1].copy_(x)
        return self.k_cache.sum(1)


def test_a_kv_cache_of_2048_positions_is_found() -> None:
    found = exported_findings("coreai-kv-cache-2048", Cache(2048), torch.randn(1, 1, 16))
    assert [f.op for f in found] == ["k_cache"] and "2048" in found[0].detail


def test_a_kv_cache_of_1024_positions_is_quiet() -> None:
    assert exported_findings("coreai-kv-cache-2048", Cache(1024), torch.randn(1, 1, 16)) == []


class TopKHead(torch.nn.Module):
    """An end-to-end detection head: keep the top-k scores, gather their rows (coreai-torch #115)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores, index = x[..., 0].topk(3, dim=-1)
        rows = x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
        return rows * scores.unsqueeze(-1)


class TopKOnly(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., 0].topk(3, dim=-1).values


def test_an_fp16_topk_gather_head_on_the_neural_engine_is_found() -> None:
    found = exported_findings("coreai-fp16-ane", TopKHead(), torch.randn(1, 10, 6))
    assert [f.op_type for f in found] == ["aten.topk"]
    assert "gather" in found[0].detail and "test_coreai_rules.py" in str(found[0].torch_line)


def test_fp16_alone_topk_alone_fp32_or_gpu_is_quiet() -> None:
    x = torch.randn(1, 10, 6)
    assert exported_findings("coreai-fp16-ane", Smooth(), torch.randn(8)) == []  # every fp16 program: no
    assert exported_findings("coreai-fp16-ane", TopKOnly(), x) == []
    assert exported_findings("coreai-fp16-ane", TopKHead(), x, precision="fp32") == []
    assert exported_findings("coreai-fp16-ane", TopKHead(), x, compute_units="CPU_AND_GPU") == []
