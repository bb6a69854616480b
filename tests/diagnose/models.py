"""Torch models that break in fp16 in known ways, and one that does not.

Shared by the diagnosis tests and benchmarks/bench_diagnose.py. Each factory
returns (model, example_inputs, failing_inputs): the example inputs are
healthy in fp16; the failing inputs are where fp16 breaks.
"""

from __future__ import annotations

import math

import torch
from torch import nn

Case = tuple[nn.Module, tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]


class ComplexDiv(nn.Module):
    """(ra + i ia) / (rb + i ib): rb * rb overflows fp16 for |rb| >= 256."""

    def forward(self, a: torch.Tensor) -> torch.Tensor:
        ra, ia, rb, ib = a.unbind(-1)
        den = rb * rb + ib * ib
        return torch.stack([(ra * rb + ia * ib) / den, (ia * rb - ra * ib) / den], -1)


class LargeActivations(nn.Module):
    """A projection whose outputs pass 65504 on large inputs, normalized right after."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.proj = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)
        self.head = nn.Linear(width, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.proj(x)))


class MaskedAttention(nn.Module):
    """Single-head attention masked with finfo(float32).min, as Hugging Face models do.

    In fp16 the fill value becomes -inf; a fully padded row's softmax is then nan.
    """

    def __init__(self, dim: int = 8) -> None:
        super().__init__()
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, x: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        scores = self.q(x) @ self.k(x).transpose(-1, -2) * self.scale
        scores = scores.masked_fill(pad[:, None, :] > 0.5, torch.finfo(torch.float32).min)
        return torch.softmax(scores, dim=-1) @ self.v(x)


class TransformerBlock(nn.Module):
    """A pre-LN transformer block with one bad op: a hand-written L2 normalization.

    ``x * x`` overflows fp16 once the residual stream passes 256; the rest is healthy.
    """

    def __init__(self, dim: int = 16, hidden: int = 32) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(self.ln1(x)).chunk(3, dim=-1)
        attn = torch.softmax(q @ k.transpose(-1, -2) * self.scale, dim=-1)
        x = x + self.out(attn @ v)
        h = self.fc2(torch.nn.functional.gelu(self.fc1(self.ln2(x))))
        return h + x / torch.sqrt((x * x).sum(-1, keepdim=True))  # the bad op: x * x


class NormedProjection(nn.Module):
    """Linear -> nn.RMSNorm -> Linear. coremltools 9.0 lowers the norm as x / max|x| first
    (#2821): an all-zero row is 0/0 = nan, at fp32 too. Not an fp16 problem."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.norm = nn.RMSNorm(8, eps=1e-6)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.proj(x) * x))  # an all-zero row of x: a zero row into the norm


class Healthy(nn.Module):
    """A small MLP that fp16 handles well."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def complex_div() -> Case:
    torch.manual_seed(0)
    bad = torch.randn(8, 4)
    bad[3] = torch.tensor([300.0, 1.0, 300.0, 1.0])  # ra*rb and rb*rb = 90000 > 65504
    return ComplexDiv().eval(), (torch.randn(8, 4),), (bad,)


def large_activations() -> Case:
    torch.manual_seed(0)
    model = LargeActivations().eval()
    with torch.no_grad():
        model.proj.weight.mul_(20.0)  # gain 20: inputs of a few thousand give > 65504
    return model, (torch.randn(4, 16),), (torch.randn(4, 16) * 3000,)


def masked_attention() -> Case:
    torch.manual_seed(0)
    model = MaskedAttention().eval()
    x = torch.randn(2, 6, 8)
    healthy_pad = torch.zeros(2, 6)
    healthy_pad[:, 4:] = 1.0  # some keys padded, never all
    bad_pad = healthy_pad.clone()
    bad_pad[1] = 1.0  # every key of the second sequence padded: a fully masked row
    return model, (x, healthy_pad), (x, bad_pad)


def transformer_block() -> Case:
    torch.manual_seed(0)
    model = TransformerBlock().eval()
    return model, (torch.randn(1, 8, 16),), (torch.randn(1, 8, 16) * 300,)


def rmsnorm_zero_row() -> Case:
    torch.manual_seed(0)
    x = torch.randn(4, 8)
    bad = x.clone()
    bad[1] = 0.0
    return NormedProjection().eval(), (x,), (bad,)


def healthy() -> Case:
    torch.manual_seed(0)
    x = torch.randn(4, 8)
    return Healthy().eval(), (x,), (x,)


CASES = {
    "complex_div": complex_div,
    "large_activations": large_activations,
    "masked_attention": masked_attention,
    "transformer_block": transformer_block,
    "healthy": healthy,
    "rmsnorm_zero_row": rmsnorm_zero_row,
}
