"""coreml-sdpa-gpu-batch (#2650), coreml-sdpa-5d-ane (executorch #16057/#16144),
coreml-state-dim-ane (#2631), coreml-stateful-ane (#2553): real iOS18 conversions."""

from __future__ import annotations

import torch

from .support import findings


class Attention(torch.nn.Module):
    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.scaled_dot_product_attention(q, k, v)


def _qkv(*shape: int) -> tuple[torch.Tensor, ...]:
    return tuple(torch.randn(*shape) for _ in range(3))


def test_fused_attention_at_batch_10_on_the_gpu_is_found() -> None:
    found = findings("coreml-sdpa-gpu-batch", Attention(), *_qkv(10, 2, 8, 16), target="iOS18")
    assert [f.op_type for f in found] == ["scaled_dot_product_attention"]
    assert "batch 10" in found[0].detail


def test_batch_9_cpu_and_ne_and_a_decomposed_target_are_quiet() -> None:
    assert findings("coreml-sdpa-gpu-batch", Attention(), *_qkv(9, 2, 8, 16), target="iOS18") == []
    assert findings("coreml-sdpa-gpu-batch", Attention(), *_qkv(10, 2, 8, 16), target="iOS18", compute_units="CPU_AND_NE") == []
    assert findings("coreml-sdpa-gpu-batch", Attention(), *_qkv(10, 2, 8, 16), target="iOS17") == []


def test_five_d_attention_on_the_neural_engine_is_found() -> None:
    found = findings("coreml-sdpa-5d-ane", Attention(), *_qkv(1, 2, 2, 8, 16), target="iOS18")
    assert found and "rank 5" in found[0].detail


def test_four_d_attention_is_quiet() -> None:
    assert findings("coreml-sdpa-5d-ane", Attention(), *_qkv(1, 4, 8, 16), target="iOS18") == []


class Accumulator(torch.nn.Module):
    def __init__(self, width: int) -> None:
        super().__init__()
        self.register_buffer("acc", torch.zeros(2, width))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.acc.add_(x)
        return self.acc * 2


def test_a_state_width_not_a_multiple_of_32_is_found() -> None:
    found = findings("coreml-state-dim-ane", Accumulator(270), torch.randn(2, 270))
    assert [f.op for f in found] == ["acc"] and "270" in found[0].detail


def test_a_state_width_of_256_and_gpu_only_are_quiet() -> None:
    assert findings("coreml-state-dim-ane", Accumulator(256), torch.randn(2, 256)) == []
    assert findings("coreml-state-dim-ane", Accumulator(270), torch.randn(2, 270), compute_units="CPU_AND_GPU") == []


def test_a_stateful_program_that_may_run_on_the_neural_engine_is_found() -> None:
    assert findings("coreml-stateful-ane", Accumulator(256), torch.randn(2, 256))
    assert findings("coreml-stateful-ane", Accumulator(256), torch.randn(2, 256), compute_units="CPU_AND_GPU") == []


def test_a_stateless_program_is_quiet() -> None:
    assert findings("coreml-stateful-ane", Attention(), *_qkv(1, 4, 8, 16)) == []
