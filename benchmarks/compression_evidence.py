"""Evidence for the compressed precisions' gates (docs/compression.md).

Three small healthy networks (an MLP, a CNN, a transformer encoder layer), random
weights, converted at each compressed precision through the plugin's own path and
run on the emulator against torch fp32, on inputs other than the example (the
calibration batch of w8a8). Prints per case (a markdown table): max |err| / max |torch|,
cosine, SNR and PSNR (verdict.metrics), and the ``scale_atol`` the element-wise rule
needs at the presets' rtol 0.05 / atol 1e-5. Run:
``.venv/bin/python benchmarks/compression_evidence.py``.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from pytest_coreml_parity.convert import ConversionOptions, convert_model
from pytest_coreml_parity.emulator import emulate
from pytest_coreml_parity.verdict import metrics

PRECISIONS = ("fp16", "int8", "palettize4", "prune50", "w8a8")
#: The element-wise rtol/atol the compressed presets use; scale_atol is what is measured.
RTOL, ATOL = 0.05, 1e-5


class MLP(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(64, 256), nn.GELU(), nn.Linear(256, 256), nn.GELU(), nn.Linear(256, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class CNN(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(),
            nn.MaxPool2d(2), nn.Conv2d(64, 64, 3, padding=1), nn.ReLU(),
        )
        self.head = nn.Linear(64, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).mean((2, 3)))


class Transformer(nn.Module):
    """One pre-norm encoder layer, written out (torch's fused fast path does not convert)."""

    def __init__(self, d: int = 64, heads: int = 4) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.out = nn.Linear(d, 3 * d), nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))
        self.head = nn.Linear(d, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d // self.heads), -1)
        x = x + self.out((attn @ v).transpose(1, 2).reshape(b, t, d))
        x = x + self.ff(self.norm2(x))
        return self.head(x)


CASES = {"mlp": (MLP, (8, 64)), "cnn": (CNN, (2, 3, 16, 16)), "transformer": (Transformer, (2, 16, 64))}


def sparse_trained(model: nn.Module) -> nn.Module:
    """Half of each weight's entries (the smallest) shrunk 100x: what sparsity-aware training
    leaves behind, and what post-training magnitude pruning is meant for."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("weight") and p.dim() >= 2:
                small = p.abs() <= p.abs().median()
                p[small] *= 0.01
    return model


def needed_scale_atol(got: np.ndarray, want: np.ndarray, rtol: float = RTOL, atol: float = ATOL) -> float:
    """The smallest ``scale_atol`` under which every element passes at this rtol/atol."""
    g, w = got.astype(np.float64), want.astype(np.float64)
    rms = float(np.sqrt(np.mean(w**2)))
    return max(0.0, float(np.max(np.abs(g - w) - rtol * np.abs(w) - atol)) / rms)


def main() -> None:
    print("| model | precision | max err / peak | cosine | SNR dB | PSNR dB | scale_atol needed |")
    print("|---|---|---|---|---|---|---|")
    cases = [(n, c, s, False) for n, (c, s) in CASES.items()]
    cases += [(f"{n}-sparse", c, s, True) for n, (c, s) in CASES.items()]
    for name, cls, shape, sparse in cases:
        torch.manual_seed(0)
        model = cls().eval()
        if sparse:
            sparse_trained(model)
        example = torch.randn(shape)
        probe = torch.randn(shape, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            want = model(probe).numpy()
        for precision in PRECISIONS:
            mlmodel = convert_model(model, (example,), ConversionOptions(precision=precision, target="iOS17"))
            (got,) = emulate(mlmodel, {"x": probe.numpy()}).values()
            m = metrics(np.asarray(got), want)
            print(
                f"| {name} | {precision} | {m.max_abs / m.peak:.4f} | {m.cosine:.5f} | {m.snr:.1f} | "
                f"{m.psnr:.1f} | {needed_scale_atol(np.asarray(got), want):.3f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
