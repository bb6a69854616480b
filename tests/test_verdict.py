"""The default verdicts judge parity the way users do (docs/tolerances.md).

Real conversions, the real emulator: a result 100% wrong at small magnitude fails,
healthy architectures (and torch's own half-precision run) pass at fp16, one wrong
op fails, and new nan/inf on the Core ML side always fails. Plus the metrics
themselves, checked against their definitions.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch
from torch import nn

from pytest_coreml_parity import messages
from pytest_coreml_parity.convert import ConversionOptions, convert_model
from pytest_coreml_parity.emulator import emulate
from pytest_coreml_parity.errors import SettingError
from pytest_coreml_parity.gates import GENERATION
from pytest_coreml_parity.gates import names as gate_names
from pytest_coreml_parity.settings import GATES as SETTING_GATES
from pytest_coreml_parity.verdict import (
    GATES,
    PRESETS,
    STANDALONE_ATOL,
    TOLERANCES,
    Gates,
    judge,
    metrics,
    outputs_match,
    preset,
    resolve_gates,
)

#: The fp16 preset before scale-aware verdicts: what the issue showed fails both ways.
OLD_FP16 = Gates(rtol=1e-2, atol=1e-2)


def _run(model: nn.Module, inputs: tuple[torch.Tensor, ...], precision: str = "fp16") -> np.ndarray:
    """Convert ``model`` at ``precision`` and run it on the emulator (its only output)."""
    mlmodel = convert_model(model.eval(), inputs, ConversionOptions(precision=precision))
    names = [i.name for i in mlmodel.get_spec().description.input]
    feed = {n: x.numpy() if x.dtype.is_floating_point else x.numpy().astype(np.int32) for n, x in zip(names, inputs, strict=True)}
    (out,) = emulate(mlmodel, feed).values()
    return np.asarray(out, dtype=np.float64)


def _torch(model: nn.Module, inputs: tuple[torch.Tensor, ...]) -> np.ndarray:
    with torch.no_grad():
        out: torch.Tensor = model.eval()(*inputs)
    return out.double().numpy()


# ------------------------------------------------------------------ models (plain torch)


def calibrate(model: nn.Module, shape: tuple[int, ...], batches: int = 3) -> nn.Module:
    """Batch-norm statistics from a few random batches, as a trained network would have."""
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None
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
        self.down = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if stride != 1 or cin != cout
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
        return torch.relu(y + self.down(x))


class SmallResNet(nn.Module):
    """ResNet-18's layout at a quarter of its width: 8 basic blocks, 1000 logits."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(3, 2, 1))
        chans = [(16, 16, 1), (16, 16, 1), (16, 32, 2), (32, 32, 1), (32, 64, 2), (64, 64, 1), (64, 128, 2), (128, 128, 1)]
        self.blocks = nn.Sequential(*[Basic(a, b, s) for a, b, s in chans])
        self.fc = nn.Linear(128, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(self.blocks(self.stem(x)).mean((2, 3)))
        return out


class InvRes(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.res = stride == 1 and cin == cout
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False), nn.BatchNorm2d(mid), nn.ReLU6(),
            nn.Conv2d(mid, cout, 1, bias=False), nn.BatchNorm2d(cout),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y: torch.Tensor = self.body(x)
        return x + y if self.res else y


class SmallMobileNetV2(nn.Module):
    """MobileNetV2's 17 inverted-residual blocks at half width: the noisiest healthy fp16 net measured."""

    def __init__(self) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Conv2d(3, 16, 3, 2, 1, bias=False), nn.BatchNorm2d(16), nn.ReLU6()]
        cin = 16
        for t, c, n, s in [(1, 8, 1, 1), (6, 12, 2, 2), (6, 16, 3, 2), (6, 32, 4, 2), (6, 48, 3, 1), (6, 80, 3, 2), (6, 160, 1, 1)]:
            for i in range(n):
                layers.append(InvRes(cin, c, s if i == 0 else 1, t))
                cin = c
        layers += [nn.Conv2d(cin, 640, 1, bias=False), nn.BatchNorm2d(640), nn.ReLU6()]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(640, 1000)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.fc(self.features(x).mean((2, 3)))
        return out


class Encoder(nn.Module):
    """HF-BERT-style encoder: embeddings + LayerNorm, post-norm layers, GELU feed-forward.

    ``drop_scale``/``swap`` build the one-wrong-op variants (missing 1/sqrt(d) attention
    scale; residual operands swapped to ``o(a) - x``). ``std`` sets the weight init:
    0.02 is BERT's; larger makes attention peaked, so a missing scale matters.
    """

    def __init__(self, d: int = 64, heads: int = 4, layers: int = 2, std: float = 0.02, *, drop_scale: bool = False, swap: bool = False) -> None:
        super().__init__()
        self.heads, self.d, self.drop_scale, self.swap = heads, d, drop_scale, swap
        g = torch.Generator().manual_seed(5)
        self.tok = nn.Embedding(500, d)
        self.pos = nn.Parameter(torch.randn(32, d, generator=g) * 0.02)
        self.ln0 = nn.LayerNorm(d)
        self.qkv = nn.ModuleList(nn.Linear(d, 3 * d) for _ in range(layers))
        self.o = nn.ModuleList(nn.Linear(d, d) for _ in range(layers))
        self.ln1 = nn.ModuleList(nn.LayerNorm(d) for _ in range(layers))
        self.ff = nn.ModuleList(nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d)) for _ in range(layers))
        self.ln2 = nn.ModuleList(nn.LayerNorm(d) for _ in range(layers))
        with torch.no_grad():
            for p in self.parameters():
                if p.dim() == 2 and p is not self.pos:
                    p.copy_(torch.randn(p.shape, generator=g) * std)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        b, n = ids.shape
        x: torch.Tensor = self.ln0(self.tok(ids) + self.pos[:n])
        d = self.d
        hd = d // self.heads  # plain ints: no tensor-to-float conversion while tracing
        for qkv, o, ln1, ff, ln2 in zip(self.qkv, self.o, self.ln1, self.ff, self.ln2, strict=True):
            q, k, v = qkv(x).reshape(b, n, 3, self.heads, hd).permute(2, 0, 3, 1, 4).unbind(0)
            s = q @ k.transpose(-2, -1)
            if not self.drop_scale:
                s = s / math.sqrt(hd)
            a = (torch.softmax(s, -1) @ v).transpose(1, 2).reshape(b, n, d)
            x = ln1(o(a) - x) if self.swap else ln1(x + o(a))
            x = ln2(x + ff(x))
        return x


class ComplexDiv(nn.Module):
    def forward(self, a: torch.Tensor) -> torch.Tensor:
        ra, ia, rb, ib = a.unbind(-1)
        den = rb * rb + ib * ib
        return torch.stack([(ra * rb + ia * ib) / den, (ia * rb - ra * ib) / den], -1)


IMAGE = torch.randn((1, 3, 64, 64), generator=torch.Generator().manual_seed(7))
IDS = torch.randint(0, 500, (2, 32), generator=torch.Generator().manual_seed(7))


def _half(model: nn.Module, x: torch.Tensor) -> np.ndarray:
    """torch's own float16 run of ``model``: what ordinary fp16 rounding looks like."""
    with torch.no_grad():
        out: np.ndarray = model.half()(x.half()).double().numpy()
    model.float()
    return out


# ------------------------------------------------------------------ (a) 100% wrong at small magnitude


def test_complex_division_wrong_everywhere_at_small_magnitude_fails_at_fp16() -> None:
    """The issue's case: only the denominator overflows, every output becomes 0 where the
    truth is 0.003..0.007. The old preset passed it (below atol); the default fails it."""
    x = torch.tensor([[1.0, 2, 300, 4], [2, 1, 3, 400]]) * 4
    got, want = _run(ComplexDiv(), (x,)), _torch(ComplexDiv(), (x,))
    assert np.all(got == 0) and 0.003 < np.max(np.abs(want)) < 0.007  # the failure is real
    assert outputs_match(got, want, *OLD_FP16.tolerance)  # what the issue reported
    judgement = judge(got, want, preset("fp16"))
    assert {"elements", "min_snr"} <= set(judgement.failed)
    assert judgement.metrics.cosine == 0.0 and judgement.metrics.snr == 0.0


# ------------------------------------------------------------------ (b) healthy architectures pass


@pytest.fixture(scope="module")
def cnn() -> dict[str, tuple[nn.Module, np.ndarray]]:
    """Each CNN (bn calibrated) with its fp16 emulator output: converted once per module."""
    built = {}
    for build in (SmallResNet, SmallMobileNetV2):
        torch.manual_seed(0)
        model = calibrate(build(), tuple(IMAGE.shape))
        built[build.__name__] = (model, _run(model, (IMAGE,)))
    return built


@pytest.mark.parametrize("name", ["SmallResNet", "SmallMobileNetV2"])
def test_healthy_bn_calibrated_cnn_passes_at_fp16_as_does_torch_half(
    cnn: dict[str, tuple[nn.Module, np.ndarray]], name: str
) -> None:
    model, got = cnn[name]
    want = _torch(model, (IMAGE,))
    judgement = judge(got, want, preset("fp16"))
    assert judgement.passed, (judgement.failed, judgement.metrics)
    assert judgement.metrics.top1 == 1.0
    assert judge(_half(model, IMAGE), want, preset("fp16")).passed  # torch's own fp16 noise passes too
    assert judge(got, want, preset("fp32")).failed  # and it is fp16 noise: fp32 would not accept it


def test_healthy_transformer_encoder_passes_at_fp16() -> None:
    model = Encoder()
    judgement = judge(_run(model, (IDS,)), _torch(model, (IDS,)), preset("fp16"))
    assert judgement.passed, (judgement.failed, judgement.metrics)
    assert judgement.metrics.snr > 45


# ------------------------------------------------------------------ (c) one wrong op fails


def _broken_pair(**broken: bool) -> tuple[Encoder, Encoder]:
    good, bad = Encoder(std=0.2), Encoder(std=0.2, **broken)
    bad.load_state_dict(good.state_dict())
    return good, bad


@pytest.mark.parametrize("precision", ["fp16", "fp32"])
@pytest.mark.parametrize("broken", ["drop_scale", "swap"], ids=["missing-attention-scale", "swapped-residual"])
def test_one_wrong_op_fails(precision: str, broken: str) -> None:
    """The converted program of M' (one op wrong) judged against torch's M."""
    good, bad = _broken_pair(**{broken: True})
    judgement = judge(_run(bad, (IDS,), precision), _torch(good, (IDS,)), preset(precision))
    assert "elements" in judgement.failed, judgement.metrics
    assert judge(_run(good, (IDS,), precision), _torch(good, (IDS,)), preset(precision)).passed


def test_a_dropped_output_scale_hides_in_fp16_noise_and_fails_at_fp32(
    cnn: dict[str, tuple[nn.Module, np.ndarray]],
) -> None:
    """The honest limit: a 5% scale error (SNR 26.5 dB) is as large as a small MobileNet's
    own fp16 rounding noise (torch.half: 27.5 dB), so fp16 cannot tell it apart; fp32 does."""
    model, got16 = cnn["SmallResNet"]
    want = 1.05 * _torch(model, (IMAGE,))  # the torch model scales its output; the program does not
    judgement = judge(got16, want, preset("fp16"))
    assert judgement.passed and 25.0 < judgement.metrics.snr < 28.0
    assert "elements" in judge(_run(model, (IMAGE,), "fp32"), want, preset("fp32")).failed


# ------------------------------------------------------------------ (d) new nan/inf always fails


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("precision", list(PRESETS))
def test_new_nonfinite_fails_whatever_the_gates(bad: float, precision: str) -> None:
    want = np.linspace(-1.0, 1.0, 100)
    got = want.copy()
    got[3] = bad
    off: dict[str, None] = {name: None for name in GATES if name != "scale_atol"}
    loosest = replace(preset(precision), rtol=1e9, atol=1e9, scale_atol=1e9, **off)
    assert judge(got, want, loosest).failed == ("elements",)
    same = want.copy()
    same[3] = bad
    assert judge(same, same, preset(precision)).passed  # the same non-finite value on both sides


# ------------------------------------------------------------------ metrics


def test_metrics_follow_their_definitions_on_an_image() -> None:
    rng = np.random.default_rng(0)
    want = rng.standard_normal((1, 3, 224, 224))
    got = want + 1e-3 * rng.standard_normal(want.shape)
    m = metrics(got, want)
    mse = np.mean((got - want) ** 2)
    assert m.psnr == pytest.approx(10 * np.log10(np.max(np.abs(want)) ** 2 / mse))
    assert m.snr == pytest.approx(10 * np.log10(np.mean(want**2) / mse))
    assert m.cosine == pytest.approx(np.sum(got * want) / np.linalg.norm(got) / np.linalg.norm(want))
    i = np.unravel_index(np.argmax(np.abs(got - want)), want.shape)
    assert m.max_abs_index == tuple(int(k) for k in i) and m.max_abs == np.abs(got - want)[i]


def test_psnr_is_not_coremltools_first_dimension_psnr() -> None:
    """coremltools' compute_snr_and_psnr divides the noise by len(x) (the first dimension):
    for a (1, 3, 224, 224) tensor its PSNR reads 10*log10(150528) = 51.8 dB low."""
    from coremltools.converters.mil.testing_utils import compute_snr_and_psnr

    rng = np.random.default_rng(1)
    want = rng.standard_normal((1, 3, 224, 224))
    got = want + 1e-2 * rng.standard_normal(want.shape)
    _, theirs = compute_snr_and_psnr(got, want)
    assert metrics(got, want).psnr - theirs == pytest.approx(10 * math.log10(want.size), abs=0.01)


def test_top_k_agreement_of_score_vectors() -> None:
    want = np.array([[0.1, 0.9, 0.0, 0.2, 0.3, 0.4, 0.5], [0.7, 0.1, 0.0, 0.2, 0.3, 0.4, 0.5]])
    swapped = want.copy()
    swapped[0, [1, 6]] = swapped[0, [6, 1]]  # row 0: argmax moves to a runner-up
    m = metrics(swapped, want)
    assert (m.top1, m.top5) == (0.5, 1.0)
    assert metrics(np.ones(3), np.ones(3)).top1 == 1.0  # ties agree
    assert metrics(np.ones((4, 1)), np.ones((4, 1))).top1 is None  # not a score vector
    gates = replace(preset("fp16"), min_top1=0.9)
    assert "min_top1" in judge(swapped, want, gates).failed


def test_aggregate_gates_skip_an_output_without_signal() -> None:
    """An all-zero reference has no SNR to speak of: judged element-wise only."""
    assert judge(np.full(8, 1e-7), np.zeros(8), preset("fp16")).passed
    assert judge(np.full(8, 1e-3), np.zeros(8), preset("fp16")).failed == ("elements",)


# ------------------------------------------------------------------ table and resolution


def test_one_preset_table() -> None:
    assert set(SETTING_GATES) == set(GATES) | set(gate_names(GENERATION))  # generation gates: assert_generation's
    assert all(isinstance(g, Gates) for g in PRESETS.values())
    assert list(TOLERANCES) == list(PRESETS)
    # fp32 is scale-aware too, 200x tighter than fp16 (docs/tolerances.md, benchmarks/fp32_evidence.py)
    assert (PRESETS["fp32"].scale_atol, PRESETS["fp32"].min_snr) == (1e-3, 80.0)
    assert TOLERANCES["fp32"] == PRESETS["fp32"].tolerance == (1e-4, 1e-5)  # its element-wise pair
    # TOLERANCES["fp16"] keeps its meaning: a standalone allclose pair (1e-2, 1e-2)
    assert TOLERANCES["fp16"] == (PRESETS["fp16"].rtol, STANDALONE_ATOL) == (1e-2, 1e-2)


def test_gates_resolve_argument_then_configured_then_preset() -> None:
    resolved = resolve_gates(
        "fp16",
        {"min_cosine": 0.99, "min_snr": "off"},
        {"min_snr": 40.0, "min_psnr": {"fp32": 50.0}, "scale_atol": {"fp16": 0.2}},
    )
    g = resolved.gates
    assert (g.min_cosine, g.min_snr, g.min_psnr, g.scale_atol) == (0.99, None, None, 0.2)
    assert resolved.origins == {"scale_atol": "configured", "min_snr": "argument", "min_cosine": "argument"}


@pytest.mark.parametrize(
    ("what", "value"), [("min_cosine", 1.5), ("min_snr", -1.0), ("min_snr", "loud"), ("min_top1", True), ("min_psnr", {"fp8": 3})]
)
def test_malformed_gate_argument_names_it(what: str, value: object) -> None:
    with pytest.raises(SettingError) as info:
        resolve_gates("fp16", {what: value}, argument_where=messages.ARGUMENT_TOLERANCE)
    assert str(info.value).startswith(f"assert_parity({what}=...): {what} must be ")
    assert repr(dict(value) if isinstance(value, dict) else value) in str(info.value)


def test_scale_atol_off_means_no_allowance_not_a_crash() -> None:
    """``scale_atol="off"`` from any source turns the allowance off (0.0); judging still works."""
    import numpy as np

    from pytest_coreml_parity.verdict import judge, resolve_gates

    resolved = resolve_gates("fp16", arguments={"scale_atol": "off"})
    assert resolved.gates.scale_atol == 0.0
    assert resolved.origins["scale_atol"] == "argument"
    expected = np.array([1.0, 2.0, 3.0])
    assert judge(expected, expected, resolved.gates).passed
    # 0.05 off at rms ~2.2: inside 0.2 * rms, outside rtol 1e-2 once the allowance is off.
    assert not judge(expected + 0.05, expected, resolved.gates).passed
    assert judge(expected + 0.05, expected, resolve_gates("fp16").gates).passed


# ------------------------------------------------------------------ lazy metrics


def _same(x: object, y: object) -> bool:
    """Equal, nan equal to nan (metrics hold nan where nothing is finite)."""
    if isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y):
        return True
    return x == y


_PAIRS = [
    (np.linspace(-1.0, 1.0, 12).reshape(3, 4) + 1e-3, np.linspace(-1.0, 1.0, 12).reshape(3, 4)),
    (np.array([1.0, np.nan, 3.0, np.inf]), np.array([1.1, np.nan, 3.0, 2.0])),
    (np.array([1.0, 2.0, 3.0]), np.array([np.inf, 2.0, -np.inf])),
    (np.full(4, np.nan), np.ones(4)),
    (np.array([1e200, 3.0]), np.array([-1e200, 3.0])),  # |a - e| overflows: still finite values
    (np.array([1, 2, 3]), np.array([1, 2, 4])),
    (np.array([1 + 2j, 3.0]), np.array([1 + 2.1j, 3.0])),
    (np.zeros(0), np.zeros(0)),
]


@pytest.mark.parametrize(("got", "want"), _PAIRS)
@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_a_judgement_computes_the_same_metrics_on_demand(got: np.ndarray, want: np.ndarray, precision: str) -> None:
    """``judge`` computes only what its gates need; the table it gives later is ``metrics``'s."""
    import warnings
    from dataclasses import astuple

    gates = replace(preset(precision), min_psnr=30.0, min_top1=0.5, min_top5=0.5)
    with warnings.catch_warnings():  # the overflowing and the complex pair warn, as ever
        warnings.simplefilter("ignore")
        judgement = judge(got, want, gates)
        lazy, eager = astuple(judgement.metrics), astuple(metrics(got, want))
    assert all(_same(x, y) for x, y in zip(lazy, eager, strict=True)), (lazy, eager)
    for name in judgement.judged:  # what judge compared is the table's value
        value = judgement.metrics.value(name)
        assert value is not None and (name in judgement.failed) == (not value >= getattr(gates, name))


def test_judge_pair_is_judge_without_the_copy() -> None:
    from pytest_coreml_parity.verdict import as_pair, judge_pair

    got, want = np.array([1.0, 2.5, np.nan], np.float32), np.array([1.0, 2.0, np.nan])
    a, e = as_pair(got, want)
    by_pair, by_judge = judge_pair(a, e, preset("fp16")), judge(got, want, preset("fp16"))
    assert (by_pair.failed, by_pair.judged, by_pair.allowed) == (by_judge.failed, by_judge.judged, by_judge.allowed)
    assert by_pair.mismatch.tolist() == by_judge.mismatch.tolist()


def test_worst_ratio_is_the_rule_as_one_number() -> None:
    want = np.linspace(-2.0, 2.0, 50)
    got = want + 0.01
    judgement = judge(got, want, preset("fp32"))
    gates = judgement.gates
    ratio = np.max(np.abs(got - want) / (judgement.allowed + gates.rtol * np.abs(want)))
    assert judgement.worst_ratio() == ratio and ratio > 1 and "elements" in judgement.failed
    assert judge(want, want, gates).worst_ratio() == 0.0
    got[3] = np.nan
    assert judge(got, want, gates).worst_ratio() is None  # not all finite: the caller scores it
    zeros = np.zeros(3)
    assert judge(zeros, zeros, Gates(0.0, 0.0)).worst_ratio() is None  # 0 / 0


def test_widening_fp16_outputs_is_exact_either_way() -> None:
    """``assert_parity`` widens a large float16 output through torch: the values numpy gives."""
    from pytest_coreml_parity._values import FAST_WIDEN_MIN_SIZE, widen_float16

    rng = np.random.default_rng(0)
    big = (rng.standard_normal(FAST_WIDEN_MIN_SIZE * 2) * 1e3).astype(np.float16)
    big[:4] = [np.nan, np.inf, -np.inf, 6e-8]  # nan, infinities, a subnormal
    frozen = big.copy()
    frozen.flags.writeable = False
    widened = widen_float16(big)
    assert widened.dtype == np.float64
    np.testing.assert_array_equal(widened, big.astype(np.float64))
    for value in (big[::2], frozen, big[:10], np.arange(FAST_WIDEN_MIN_SIZE)):
        assert widen_float16(value) is value  # left to as_pair's numpy cast


def test_worst_errors_skip_non_finite_and_zero_references() -> None:
    from pytest_coreml_parity.verdict import worst_errors

    actual = np.array([1.5, np.inf, 0.5, np.nan, 2.0])
    expected = np.array([1.0, 1.0, 0.0, 3.0, 4.0])
    # finite on both sides: 0, 2, 4; relative only where the reference is not 0: 0, 4
    assert worst_errors(actual, expected) == (2.0, 0.5)
    assert worst_errors(np.array([np.inf]), np.array([1.0])) == (0.0, 0.0)
