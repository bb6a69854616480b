"""coreml-fp32-cast-stripped: HF RMSNorm's fp32 cast, dropped at fp16 (executorch #19523)."""

from __future__ import annotations

import pytest
import torch

from .support import findings

RULE = "coreml-fp32-cast-stripped"


class RMSNorm(torch.nn.Module):
    """transformers' LlamaRMSNorm, as written there."""

    def __init__(self, size: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(size))

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        input_dtype = hidden_states.dtype
        hidden_states = hidden_states.to(torch.float32)
        variance = hidden_states.pow(2).mean(-1, keepdim=True)
        hidden_states = hidden_states * torch.rsqrt(variance + 1e-6)
        return self.weight * hidden_states.to(input_dtype)


class Decoder(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(64, 32)
        self.norm = RMSNorm(32)
        self.head = torch.nn.Linear(32, 64)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.embed(ids)))


class TwoNorms(torch.nn.Module):
    """Two RMSNorms in a row, the second written with ``.float()``: two opening casts."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = torch.nn.Embedding(64, 32)
        self.first = RMSNorm(32)
        self.mid = torch.nn.Linear(32, 32)
        self.eps = 1e-6

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        h = self.mid(self.first(self.embed(ids)))
        dtype = h.dtype
        h32 = h.float()
        return (h32 * torch.rsqrt(h32.pow(2).mean(-1, keepdim=True) + self.eps)).to(dtype)


class IndexToFloat(torch.nn.Module):
    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return ids.to(torch.float32) * 0.5


IDS = torch.randint(0, 64, (1, 8))


@pytest.mark.parametrize("export", [False, True], ids=["trace", "export"])
def test_rmsnorm_decoder_at_fp16_names_the_stripped_cast(export: bool) -> None:
    found = findings(RULE, Decoder(), IDS, export=export)
    # One finding: the opening cast. The closing .to(input_dtype) is a float32 -> float32
    # cast in the graph too, but restores a dtype (its line names none).
    assert len(found) == 1, [f.torch_line for f in found]
    line = str(found[0].torch_line)
    assert "hidden_states = hidden_states.to(torch.float32)" in line, line
    assert "test_fp32_cast_stripped.py" in line


@pytest.mark.parametrize("export", [False, True], ids=["trace", "export"])
def test_each_norm_is_one_finding_and_float_counts(export: bool) -> None:
    found = findings(RULE, TwoNorms(), IDS, export=export)
    lines = sorted(str(f.torch_line).split(": ", 1)[1] for f in found)
    assert lines == ["h32 = h.float()", "hidden_states = hidden_states.to(torch.float32)"], lines


def test_the_same_decoder_at_fp32_is_quiet() -> None:
    assert findings(RULE, Decoder(), IDS, precision="fp32") == []


def test_an_integer_to_float_cast_is_quiet() -> None:
    assert findings(RULE, IndexToFloat(), IDS) == []
