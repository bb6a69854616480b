"""Evidence for the fp32 verdict: healthy zoo nets against the known fp32 converter bugs.

Healthy: the zoo's models that convert today (``tools/zoo``: torchvision and timm,
random weights, batch norm calibrated), converted at fp32 through the plugin's own
path (``convert_model``) and run on the emulator. Each is also run by torch in
float64 (``model.double()``): torch's own fp32 run against that is what healthy fp32
noise is, for torch itself.

Broken (the converter is wrong at fp32):

* ``nn.RMSNorm`` (coremltools #2821): rms_norm is lowered as ``x / max|x|`` first, so
  its eps is inflated by ``max|x|^2``. An all-zero row is 0/0 (nan); a row with one
  large feature (an LLM's "massive activation") is off by about ``eps * D / 2``
  relative. A sweep of the outlier's size shows where the bug becomes visible.
* a causal mask ``triu(full_like(scores, -inf), 1)`` (coremltools #2771): triu is
  lowered as ``x - band_part(x)``, so ``-inf - -inf`` is nan. Captured by
  ``torch.export`` every output is nan; by ``torch.jit.trace`` the mask folds to a
  constant and the program is right.

Two steps, so a preset can be re-judged without converting again::

    python benchmarks/fp32_evidence.py run /tmp/fp32ev [names...]   # arrays + metrics per case
    python benchmarks/fp32_evidence.py table /tmp/fp32ev            # the docs/tolerances.md table

``run`` writes ``<case>.npz`` (Core ML, torch fp32, torch float64 outputs) per case;
``table`` judges them with ``verdict.judge`` (the code ``assert_parity`` runs) under the
old fp32 preset (rtol 1e-4, atol 1e-5) and the current ``preset("fp32")``. Names:
zoo model names, ``zoo`` (every zoo model that converts today), ``extra`` (harsher healthy
cases), ``bugs``, or a case's name.
"""

from __future__ import annotations

import copy
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # tools.zoo is a development harness, not installed
    sys.path.insert(0, str(REPO))

from pytest_coreml_parity.convert import ConversionOptions, convert_model  # noqa: E402
from pytest_coreml_parity.emulator import emulate  # noqa: E402
from pytest_coreml_parity.verdict import Gates, judge, preset  # noqa: E402
from pytest_coreml_parity.verdict import metrics as verdict_metrics  # noqa: E402

#: The fp32 preset before issue 18.
OLD_FP32 = Gates(rtol=1e-4, atol=1e-5)

#: The zoo's models that convert today (docs/zoo.md: the torchvision and timm classifiers
#: but vit_b_16, which fails to convert on this branch; transformers, DeepLabV3 and the SSD
#: network fail at capture).
ZOO = (
    "resnet18", "mobilenet_v3_small", "efficientnet_b0", "convnext_tiny", "regnet_y_400mf",
    "shufflenet_v2_x0_5", "swin_t", "timm/levit_128s", "timm/mobilevit_xxs", "timm/fastvit_t8",
    "timm/efficientformer_l1", "timm/resnet18d", "timm/regnetx_002", "timm/deit_tiny_patch16_224",
    "timm/convnext_atto", "timm/mobilenetv4_conv_small",
)  # fmt: skip


# ------------------------------------------------------------------ the known bugs


class NormedProjection(nn.Module):
    """Linear -> nn.RMSNorm -> Linear (tests/diagnose/models.py): a zero row into the norm."""

    def __init__(self) -> None:
        super().__init__()
        self.proj = nn.Linear(8, 8)
        self.norm = nn.RMSNorm(8, eps=1e-6)
        self.head = nn.Linear(8, 4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.norm(self.proj(x) * x))
        return out


class LlamaNorm(nn.Module):
    """An LLM-width RMSNorm (Llama's 4096, eps 1e-5) followed by a projection."""

    def __init__(self, width: int = 4096) -> None:
        super().__init__()
        self.norm = nn.RMSNorm(width, eps=1e-5)
        self.head = nn.Linear(width, 64)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.head(self.norm(x))
        return out


class CausalAttention(nn.Module):
    """Single-head causal attention masked with ``triu(full_like(scores, -inf), 1)``."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        self.qkv = nn.Linear(dim, 3 * dim)
        self.scale = 1.0 / math.sqrt(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, k, v = self.qkv(x).chunk(3, dim=-1)
        scores = q @ k.transpose(-1, -2) * self.scale
        mask = torch.triu(torch.full_like(scores, float("-inf")), 1)
        out: torch.Tensor = torch.softmax(scores + mask, dim=-1) @ v
        return out


def _rmsnorm_zero_row() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    x = torch.randn(4, 8)
    x[1] = 0.0
    return NormedProjection().eval(), (x,)


def _rmsnorm_outlier(outlier: float) -> Callable[[], tuple[nn.Module, tuple[torch.Tensor, ...]]]:
    def build() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        torch.manual_seed(0)
        x = torch.randn(2, 4096)
        if outlier:
            x[:, 7] = outlier  # one "massive activation" feature
        return LlamaNorm().eval(), (x,)

    return build


def _causal() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    torch.manual_seed(0)
    return CausalAttention().eval(), (torch.randn(1, 8, 16),)


#: name -> (build, use_export, what it is).
BUGS: dict[str, tuple[Callable[[], tuple[nn.Module, tuple[torch.Tensor, ...]]], bool, str]] = {
    "rmsnorm #2821, zero row": (_rmsnorm_zero_row, False, "nan at fp32 (0/0)"),
    "rmsnorm #2821, D=4096, no outlier": (_rmsnorm_outlier(0.0), False, "bug below fp32 noise"),
    "rmsnorm #2821, D=4096, outlier 10": (_rmsnorm_outlier(10.0), False, "eps * max^2 inflated"),
    "rmsnorm #2821, D=4096, outlier 20": (_rmsnorm_outlier(20.0), False, "eps * max^2 inflated"),
    "rmsnorm #2821, D=4096, outlier 100": (_rmsnorm_outlier(100.0), False, "eps * max^2 inflated"),
    "rmsnorm #2821, D=4096, outlier 1000": (_rmsnorm_outlier(1000.0), False, "eps * max^2 inflated"),
    "triu(-inf) mask #2771, torch.export": (_causal, True, "nan at fp32 (inf - inf)"),
    "triu(-inf) mask #2771, jit.trace": (_causal, False, "folded to a constant: right"),
}


#: Harsher healthy cases: timm models as a new user builds them (random weights, batch norm
#: left at its default statistics, so activations grow layer by layer) and a deep
#: BERT-style encoder (benchmarks/verdict_evidence.py's, 12 layers).
UNCALIBRATED = ("levit_128s", "mobilenetv4_conv_small", "efficientformer_l1", "deit_tiny_patch16_224", "convnext_atto")


def _uncalibrated(name: str) -> Callable[[], tuple[nn.Module, tuple[torch.Tensor, ...]]]:
    def build() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
        from tools.zoo.builders import image
        from tools.zoo.torchvision_guard import ensure_torchvision_importable

        ensure_torchvision_importable()
        import timm

        torch.manual_seed(0)
        return timm.create_model(name, pretrained=False).eval(), image(224)

    return build


def _deep_encoder() -> tuple[nn.Module, tuple[torch.Tensor, ...]]:
    from verdict_evidence import Encoder  # benchmarks/ is on sys.path when run as a script

    torch.manual_seed(0)
    ids = torch.randint(0, 1000, (1, 64), generator=torch.Generator().manual_seed(7))
    return Encoder(layers=12).eval(), (ids,)


#: name -> build (healthy cases outside the zoo).
EXTRA: dict[str, Callable[[], tuple[nn.Module, tuple[torch.Tensor, ...]]]] = {
    **{f"timm/{name} (bn uncalibrated)": _uncalibrated(name) for name in UNCALIBRATED},
    "bert-style encoder, 12 layers": _deep_encoder,
}


# ------------------------------------------------------------------ run


def _leaves(out: Any) -> list[np.ndarray]:
    if isinstance(out, torch.Tensor):
        return [out.detach().numpy()]
    if isinstance(out, dict):
        return [leaf for value in out.values() for leaf in _leaves(value)]
    if isinstance(out, (list, tuple)):
        return [leaf for value in out for leaf in _leaves(value)]
    raise TypeError(f"unexpected output {type(out).__name__}")


def _file(directory: Path, name: str) -> Path:
    return directory / (name.replace("/", "_").replace(" ", "_").replace(",", "") + ".npz")


def run_case(directory: Path, name: str, model: nn.Module, inputs: tuple[torch.Tensor, ...], use_export: bool, kind: str, note: str) -> None:
    model = model.eval()
    t0 = time.perf_counter()
    try:
        ml = convert_model(model, inputs, ConversionOptions(precision="fp32", use_export=use_export))
    except Exception as exc:  # a case that does not convert is recorded, not fatal
        print(f"{name}: does not convert: {str(exc).splitlines()[0][:200]}", flush=True)
        return
    t_convert = time.perf_counter() - t0
    names = [i.name for i in ml.get_spec().description.input]
    feed = {n: x.numpy().astype(np.int32) if not x.dtype.is_floating_point else x.numpy() for n, x in zip(names, inputs, strict=True)}
    got = emulate(ml, feed)
    coreml = [np.asarray(v) for v in got.values()]
    with torch.no_grad():
        want = _leaves(model(*inputs))
        double = copy.deepcopy(model).double()
        want64 = _leaves(double(*(x.double() if x.dtype.is_floating_point else x for x in inputs)))
    if len(coreml) != len(want):
        print(f"{name}: {len(coreml)} Core ML outputs, {len(want)} torch outputs; skipped", flush=True)
        return
    arrays: dict[str, np.ndarray] = {}
    for i, (a, e, e64) in enumerate(zip(coreml, want, want64, strict=True)):
        arrays[f"coreml{i}"] = a.reshape(e.shape).astype(np.float32)
        arrays[f"torch{i}"] = e.astype(np.float32)
        arrays[f"double{i}"] = e64.astype(np.float64)
    meta = {"name": name, "kind": kind, "note": note, "outputs": len(want), "convert_s": round(t_convert, 1)}
    arrays["meta"] = np.array(json.dumps(meta))
    save: Any = np.savez  # its stub takes **arrays for allow_pickle
    save(_file(directory, name), **arrays)
    print(f"{name}: saved ({time.perf_counter() - t0:.1f}s)", flush=True)


def run(directory: Path, which: list[str]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    wanted = which or ["zoo", "extra", "bugs"]
    zoo = [n for n in ZOO if "zoo" in wanted or n in wanted]
    extra = [n for n in EXTRA if "extra" in wanted or n in wanted]
    bugs = [n for n in BUGS if "bugs" in wanted or n in wanted]
    for name in extra:
        model, inputs = EXTRA[name]()
        run_case(directory, name, model, inputs, False, "healthy", "extra")
    for name in bugs:
        build, use_export, note = BUGS[name]
        model, inputs = build()
        run_case(directory, name, model, inputs, use_export, "bug", note)
    if zoo:
        from tools.zoo.registry import get

        for name in zoo:
            entry = get(name)
            t0 = time.perf_counter()
            model = entry.build()
            print(f"{name}: built ({time.perf_counter() - t0:.1f}s)", flush=True)
            run_case(directory, name, model, entry.example_inputs(), False, "healthy", entry.family)


# ------------------------------------------------------------------ table


def needed_scale(a: np.ndarray, e: np.ndarray, rtol: float, atol: float) -> float:
    """The smallest ``scale_atol`` that passes the element rule at ``rtol, atol``
    (max over elements of ``(|a - e| - atol - rtol |e|) / rms(e)``); inf when a
    non-finite value disagrees."""
    a64, e64 = a.astype(np.float64), e.astype(np.float64)
    finite = np.isfinite(a64) & np.isfinite(e64)
    same = (np.isnan(a64) & np.isnan(e64)) | (a64 == e64)
    if not (finite | same).all():
        return math.inf
    rms = math.sqrt(float(np.mean(e64[np.isfinite(e64)] ** 2)))
    over = np.abs(a64[finite] - e64[finite]) - atol - rtol * np.abs(e64[finite])
    worst = float(over.max()) if over.size else 0.0
    return max(worst, 0.0) / rms if rms > 0 else (0.0 if worst <= 0 else math.inf)


def summary(a: np.ndarray, e: np.ndarray, gates: Gates) -> dict[str, Any]:
    m = verdict_metrics(a, e)
    nonfinite = int((~np.isfinite(a) & np.isfinite(e)).sum())
    old, new = judge(a, e, OLD_FP32), judge(a, e, gates)
    return {
        "max_abs": m.max_abs, "max_rel": m.max_rel, "rms": m.rms, "max/rms": m.max_abs / m.rms if m.rms else math.nan,
        "need": needed_scale(a, e, OLD_FP32.rtol, OLD_FP32.atol), "snr": m.snr, "cos": m.cosine,
        "nonfinite": nonfinite, "size": a.size, "old_off": old.n_mismatched,
        "old": "pass" if old.passed else "FAIL", "new": "pass" if new.passed else "FAIL:" + "+".join(new.failed),
    }  # fmt: skip


def _g(x: float, digits: int = 2) -> str:
    if isinstance(x, float) and math.isnan(x):
        return "nan"
    if isinstance(x, float) and math.isinf(x):
        return "inf"
    return f"{x:.{digits}g}"


def _db(x: float) -> str:
    return "inf" if math.isinf(x) else ("nan" if math.isnan(x) else f"{x:.0f}")


_ORDER = (*ZOO, *EXTRA, *BUGS)


def table(directory: Path) -> None:
    gates = preset("fp32")
    print(f"current fp32 preset: {gates}\n")
    print(
        "| case | Core ML vs torch: max abs | max rel | rms | max/rms | needed scale_atol | SNR dB | cosine "
        "| old preset (rtol 1e-4, atol 1e-5) | current preset | torch fp32 vs float64: max/rms, needed, SNR, current | "
        "Core ML vs float64: max/rms, SNR |"
    )
    print("|---|--:|--:|--:|--:|--:|--:|--:|---|---|---|---|")
    rows = []
    for path in sorted(directory.glob("*.npz")):
        data = np.load(path)
        meta = json.loads(str(data["meta"]))
        order = 0 if meta["kind"] == "healthy" else 1
        rows.append((order, meta["name"], meta, data))
    for _order, name, meta, data in sorted(rows, key=lambda r: (r[0], _ORDER.index(r[1]) if r[1] in _ORDER else len(_ORDER))):
        for i in range(meta["outputs"]):
            a, e, e64 = data[f"coreml{i}"], data[f"torch{i}"], data[f"double{i}"]
            s = summary(a, e, gates)
            t = summary(e, e64, gates)
            c = summary(a, e64, gates)
            label = name if meta["outputs"] == 1 else f"{name} [{i}]"
            off = f"FAIL ({s['old_off']}/{s['size']} off)" if s["old"] == "FAIL" else "pass"
            if s["nonfinite"]:
                off = f"FAIL ({s['nonfinite']}/{s['size']} nan/inf)"
            print(
                f"| {label} | {_g(s['max_abs'])} | {_g(s['max_rel'])} | {_g(s['rms'])} | {_g(s['max/rms'])} | {_g(s['need'])} "
                f"| {_db(s['snr'])} | {s['cos']:.6f} | {off} | {s['new']} "
                f"| {_g(t['max/rms'])}, {_g(t['need'])}, {_db(t['snr'])}, {t['new']} | {_g(c['max/rms'])}, {_db(c['snr'])} |"
            )


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] not in ("run", "table"):
        raise SystemExit(__doc__)
    directory = Path(sys.argv[2])
    if sys.argv[1] == "run":
        run(directory, sys.argv[3:])
    else:
        table(directory)


if __name__ == "__main__":
    main()
