"""Architectures whose traced graphs turn tensor sizes into Python numbers.

coremltools 9.0 converts ``aten::Int`` / ``aten::size`` arithmetic with ``int()`` on a
1-element numpy array, which numpy 2.4 made a ``TypeError`` ("only 0-dimensional
arrays can be converted to Python scalars"): torchvision's ShuffleNet, ViT and Swin
stopped converting. These are the same patterns in plain torch, run through the
plugin's own ``coreml_model`` at fp32 and fp16 on the emulator. Each asserts that
its traced graph really contains the size-to-int arithmetic, so the test keeps
exercising the code path that numpy 2.4 breaks.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from pytest_coreml_parity import assert_parity


class ChannelShuffle(nn.Module):
    """ShuffleNet's channel shuffle, sizes read with ``x.size()``."""

    def __init__(self, groups: int = 4) -> None:
        super().__init__()
        self.groups = groups
        self.conv = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.conv(x)
        b, c, h, w = x.size()
        x = x.view(b, self.groups, c // self.groups, h, w).transpose(1, 2).contiguous()
        return torch.relu(x.view(b, c, h, w))


class PatchAttention(nn.Module):
    """ViT-style patch embedding and self-attention; every size comes from the input."""

    def __init__(self, dim: int = 32, heads: int = 4, patch: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.scale = (dim // heads) ** -0.5
        self.embed = nn.Conv2d(3, dim, patch, stride=patch)
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.embed(x)
        b, c, h, w = x.size()
        tokens = self.norm(x.flatten(2).transpose(1, 2))  # (b, h*w, c)
        n = tokens.size(1)
        head_dim = c // self.heads
        qkv = self.qkv(tokens).reshape(b, n, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.softmax(q @ k.transpose(-2, -1) * self.scale, dim=-1)
        out = (attn @ v).transpose(1, 2).reshape(b, n, c)
        return self.proj(out).transpose(1, 2).reshape(b, c, h, w)


class ShiftedWindowAttention(nn.Module):
    """Swin-style attention in shifted windows: ``torch.roll`` and window partitioning."""

    def __init__(self, dim: int = 16, window: int = 4, shift: int = 2, heads: int = 2) -> None:
        super().__init__()
        self.window, self.shift, self.heads = window, shift, heads
        self.scale = (dim // heads) ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: (b, h, w, c)
        b, h, w, c = x.size()
        ws = self.window
        shifted = torch.roll(self.norm(x), shifts=(-self.shift, -self.shift), dims=(1, 2))
        windows = shifted.view(b, h // ws, ws, w // ws, ws, c).permute(0, 1, 3, 2, 4, 5)
        windows = windows.reshape(-1, ws * ws, c)
        n = windows.size(1)
        head_dim = c // self.heads
        qkv = self.qkv(windows).reshape(-1, n, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(qkv[0] @ qkv[1].transpose(-2, -1) * self.scale, dim=-1)
        out = self.proj((attn @ qkv[2]).transpose(1, 2).reshape(-1, n, c))
        out = out.view(b, h // ws, w // ws, ws, ws, c).permute(0, 1, 3, 2, 4, 5).reshape(b, h, w, c)
        return x + torch.roll(out, shifts=(self.shift, self.shift), dims=(1, 2))


def _inputs(name: str) -> tuple[torch.Tensor, ...]:
    generator = torch.Generator().manual_seed(0)
    shape = {"shuffle": (2, 8, 8, 8), "vit": (2, 3, 16, 16), "swin": (2, 8, 8, 16)}[name]
    return (torch.randn(shape, generator=generator),)


def _model(name: str) -> nn.Module:
    torch.manual_seed(0)
    models: dict[str, type[nn.Module]] = {
        "shuffle": ChannelShuffle,
        "vit": PatchAttention,
        "swin": ShiftedWindowAttention,
    }
    return models[name]().eval()


ARCHITECTURES = ("shuffle", "vit", "swin")


@pytest.fixture(params=ARCHITECTURES)
def architecture(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def torch_model(architecture: str) -> nn.Module:
    return _model(architecture)


@pytest.fixture
def example_inputs(architecture: str) -> tuple[torch.Tensor, ...]:
    return _inputs(architecture)


def test_converts_and_matches_torch(coreml_model, example_inputs) -> None:  # type: ignore[no-untyped-def]
    assert_parity(coreml_model, *example_inputs)


def test_fresh_inputs_match_torch(coreml_model, example_inputs) -> None:  # type: ignore[no-untyped-def]
    generator = torch.Generator().manual_seed(1)
    fresh = tuple(torch.randn(x.shape, generator=generator) * 2 for x in example_inputs)
    assert_parity(coreml_model, *fresh)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_traced_graph_turns_sizes_into_numbers(name: str) -> None:
    """The pattern numpy 2.4 breaks in coremltools 9.0: size -> Python int in the graph."""
    traced = torch.jit.trace(_model(name), _inputs(name))
    kinds = {node.kind() for node in traced.inlined_graph.nodes()}
    assert "aten::size" in kinds
    assert kinds & {"aten::Int", "aten::floordiv", "prim::NumToTensor"}, sorted(kinds)
