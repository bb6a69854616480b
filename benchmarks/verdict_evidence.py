"""Evidence for the fp16 verdict: error of healthy networks vs. broken programs.

Healthy: real architectures built in plain torch with random weights and batch norm
calibrated on a few random batches, converted at fp16 and run on the emulator.
Broken: the complex division whose denominator overflows (outputs all 0 where the
truth is ~0.005), and a single wrong op (a missing scale, swapped operands).
Prints, per case, the metrics a verdict could gate on (computed by
``pytest_coreml_parity.verdict.metrics``, the implementation assert_parity uses) and
the verdict of the old fp16 preset (rtol 1e-2, atol 1e-2) and of the current preset.
docs/tolerances.md records a run.
"""

from __future__ import annotations

import math
import sys
import time
from typing import Any

import numpy as np
import torch
from torch import nn

from pytest_coreml_parity.convert import ConversionOptions, convert_model
from pytest_coreml_parity.emulator import emulate
from pytest_coreml_parity.verdict import Gates, judge, preset
from pytest_coreml_parity.verdict import metrics as verdict_metrics

OLD_FP16 = Gates(rtol=1e-2, atol=1e-2)


def calibrate(model: nn.Module, shape: tuple[int, ...], batches: int = 4) -> nn.Module:
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batches
            m.reset_running_stats()
    model.train()
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        for _ in range(batches):
            model(torch.randn((8, *shape[1:]), generator=g))
    return model.eval()


class Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.c1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.b1 = nn.BatchNorm2d(cout)
        self.c2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.b2 = nn.BatchNorm2d(cout)
        self.down = None
        if stride != 1 or cin != cout:
            self.down = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
        return torch.relu(y + (x if self.down is None else self.down(x)))


class ResNet18(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        chans = [(64, 64, 1), (64, 64, 1), (64, 128, 2), (128, 128, 1), (128, 256, 2), (256, 256, 1), (256, 512, 2), (512, 512, 1)]
        self.blocks = nn.Sequential(*[Basic(a, b, s) for a, b, s in chans])
        self.fc = nn.Linear(512, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


class InvRes(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x) if self.use_res else self.body(x)


class MobileNetV2(nn.Module):
    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        w = lambda c: int(c * width)  # noqa: E731
        layers: list[nn.Module] = [nn.Conv2d(3, w(32), 3, 2, 1, bias=False), nn.BatchNorm2d(w(32)), nn.ReLU6()]
        cin = w(32)
        for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
            for i in range(n):
                layers.append(InvRes(cin, w(c), s if i == 0 else 1, t))
                cin = w(c)
        layers += [nn.Conv2d(cin, w(1280), 1, bias=False), nn.BatchNorm2d(w(1280)), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(w(1280), 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x).mean((2, 3)))


class Encoder(nn.Module):
    """HF-BERT-style: embeddings + LayerNorm, post-norm layers with GELU FFN; pooled + per-token out."""

    def __init__(self, vocab: int = 1000, d: int = 256, heads: int = 4, layers: int = 4, scale: bool = True, swap: bool = False) -> None:
        super().__init__()
        self.heads, self.scale, self.swap = heads, scale, swap
        self.tok = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(64, d) * 0.02)
        self.ln0 = nn.LayerNorm(d)
        self.qkv = nn.ModuleList(nn.Linear(d, 3 * d) for _ in range(layers))
        self.o = nn.ModuleList(nn.Linear(d, d) for _ in range(layers))
        self.ln1 = nn.ModuleList(nn.LayerNorm(d) for _ in range(layers))
        self.ff = nn.ModuleList(nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d)) for _ in range(layers))
        self.ln2 = nn.ModuleList(nn.LayerNorm(d) for _ in range(layers))
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=0.02)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        b, n = ids.shape
        x = self.ln0(self.tok(ids) + self.pos[:n])
        d = x.shape[-1]
        hd = d // self.heads
        for qkv, o, ln1, ff, ln2 in zip(self.qkv, self.o, self.ln1, self.ff, self.ln2, strict=True):
            q, k, v = qkv(x).reshape(b, n, 3, self.heads, hd).permute(2, 0, 3, 1, 4)
            s = q @ k.transpose(-2, -1)
            if self.scale:
                s = s / math.sqrt(hd)
            a = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(b, n, d)
            x = ln1(x + o(a)) if not self.swap else ln1(o(a) - x)
            x = ln2(x + ff(x))
        return x


def metrics(a: np.ndarray, e: np.ndarray, precision: str = "fp16") -> dict[str, Any]:
    m = verdict_metrics(a, e)
    err = np.abs(a.astype(np.float64) - e.astype(np.float64)).ravel()
    old = judge(a, e, OLD_FP16)
    new = judge(a, e, preset(precision))
    return {
        "peak": m.peak, "rms": m.rms, "maxabs": m.max_abs, "max/peak": m.max_abs / m.peak,
        "max/rms": m.max_abs / m.rms, "p99/rms": float(np.quantile(err, 0.99)) / m.rms,
        "cos": m.cosine, "psnr": m.psnr, "snr": m.snr, "old_fail_frac": old.n_mismatched / old.mismatch.size,
        "old": "pass" if old.passed else "FAIL", precision: "pass" if new.passed else "FAIL:" + "+".join(new.failed),
    }


def run_case(name: str, model: nn.Module, inputs: tuple[torch.Tensor, ...], torch_ref: nn.Module | None = None, precision: str = "fp16") -> None:
    model = model.eval()
    t0 = time.perf_counter()
    ml = convert_model(model, inputs, ConversionOptions(precision=precision))
    spec_in = [i.name for i in ml.get_spec().description.input]
    out = emulate(ml, {n: x.numpy().astype(np.int32) if not x.dtype.is_floating_point else x.numpy() for n, x in zip(spec_in, inputs, strict=True)})
    got = next(iter(out.values()))
    ref_model = torch_ref if torch_ref is not None else model
    with torch.no_grad():
        want = ref_model(*inputs).numpy()
        half = None
        if torch_ref is None and all(x.dtype.is_floating_point for x in inputs):
            half = model.half()(*(x.half() for x in inputs)).float().numpy()
            model.float()
    m = metrics(got.reshape(want.shape), want, precision)
    line = f"{name:34s} {precision} " + " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in m.items())
    if want.ndim == 2 and want.shape[-1] >= 10:
        top1 = float(np.mean(got.reshape(want.shape).argmax(-1) == want.argmax(-1)))
        line += f" top1={top1:.3f}"
    if half is not None:
        mh = metrics(half, want)
        line += (
            f" | torch.half: max/rms={mh['max/rms']:.4g} psnr={mh['psnr']:.4g} snr={mh['snr']:.4g} "
            f"cos={mh['cos']:.6f} fp16={mh['fp16']}"
        )
    print(line + f" ({time.perf_counter() - t0:.1f}s)", flush=True)


class ComplexDiv(nn.Module):
    def forward(self, a: torch.Tensor) -> torch.Tensor:
        ra, ia, rb, ib = a.unbind(-1)
        den = rb * rb + ib * ib
        return torch.stack([(ra * rb + ia * ib) / den, (ia * rb - ra * ib) / den], -1)


class Scaled(nn.Module):
    def __init__(self, inner: nn.Module, factor: float) -> None:
        super().__init__()
        self.inner, self.factor = inner, factor

    def forward(self, *x: torch.Tensor) -> torch.Tensor:
        return self.inner(*x) * self.factor


def main() -> None:
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(7)
    which = sys.argv[1:] or ["all"]
    if "all" in which or "healthy" in which:
        img = torch.randn((1, 3, 224, 224), generator=g)
        run_case("resnet18 (bn calibrated)", calibrate(ResNet18(), (1, 3, 224, 224)), (img,))
        run_case("mobilenet_v2 (bn calibrated)", calibrate(MobileNetV2(), (1, 3, 224, 224)), (img,))
        small = torch.randn((1, 3, 64, 64), generator=g)
        run_case("mobilenet_v2 x0.5 @64 (bn calib.)", calibrate(MobileNetV2(0.5), (1, 3, 64, 64)), (small,))
        ids = torch.randint(0, 1000, (2, 64), generator=g)
        enc = Encoder()
        run_case("bert-style encoder", enc, (ids,))
    if "all" in which or "broken" in which:
        x = torch.tensor([[1.0, 2, 300, 4], [2, 1, 3, 400]]) * 4
        run_case("complex div, den overflow", ComplexDiv(), (x,))
        ids = torch.randint(0, 1000, (2, 64), generator=g)
        torch.manual_seed(1)
        good = Encoder()
        noscale = Encoder(scale=False)
        noscale.load_state_dict(good.state_dict())
        run_case("encoder, missing attn scale", noscale, (ids,), torch_ref=good)
        run_case("encoder, missing attn scale", noscale, (ids,), torch_ref=good, precision="fp32")
        swapped = Encoder(swap=True)
        swapped.load_state_dict(good.state_dict())
        run_case("encoder, swapped residual operands", swapped, (ids,), torch_ref=good)
        img = torch.randn((1, 3, 224, 224), generator=g)
        net = calibrate(ResNet18(), (1, 3, 224, 224))
        run_case("resnet18, output scale 1.05 dropped", net, (img,), torch_ref=Scaled(net, 1.05))
        run_case("resnet18, output scale 1.01 dropped", net, (img,), torch_ref=Scaled(net, 1.01))


if __name__ == "__main__":
    main()
