"""CNN family and focused tests for the conv, pool and image-resize kernels.

Family tests convert small real torch models at every target and precision and
compare the emulator against torch. Focused tests build MIL programs directly
and check edge cases against torch or against the expected values in
coremltools' own op tests (which were produced by the real Core ML runtime).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from pytest_coreml_parity.emulator import Emulator

from .support import PRECISIONS, TARGETS, assert_close_to_torch, ct

mb = pytest.importorskip("coremltools.converters.mil").Builder

MATRIX = pytest.mark.parametrize(
    ("target", "precision"), [(t, p) for t in TARGETS for p in PRECISIONS]
)


def _seeded(*shape: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


class Interpolate(nn.Module):
    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self.kwargs = kwargs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(x, **self.kwargs)


def _conv2d_stack() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),  # plain, padded
        nn.Conv2d(8, 8, 3, stride=2, groups=8),  # depthwise, strided
        nn.Conv2d(8, 6, 3, dilation=2, padding=2, groups=2, bias=False),  # grouped, dilated
        nn.Conv2d(6, 4, (1, 3), stride=(1, 2), padding=(0, 1)),  # asymmetric
    )


def _conv1d_stack() -> nn.Module:
    torch.manual_seed(1)
    return nn.Sequential(
        nn.Conv1d(3, 6, 5, stride=2, padding=2),
        nn.Conv1d(6, 6, 3, groups=3, dilation=2, padding=1),
        nn.Conv1d(6, 4, 1),
    )


def _conv_transpose2d() -> nn.Module:
    torch.manual_seed(2)
    return nn.Sequential(
        nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1),
        nn.ConvTranspose2d(6, 4, 2, stride=2, groups=2),
        nn.ConvTranspose2d(4, 3, 3, padding=1, bias=False),
    )


def _conv_transpose1d() -> nn.Module:
    torch.manual_seed(3)
    return nn.Sequential(
        nn.ConvTranspose1d(4, 6, 4, stride=3, padding=1, output_padding=2, groups=2),
        nn.ConvTranspose1d(6, 2, 3, stride=1, dilation=2),
    )


def _batch_norm() -> nn.Module:
    torch.manual_seed(4)
    bn = nn.BatchNorm2d(4)
    with torch.no_grad():
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
        bn.weight.uniform_(0.5, 1.5)
        bn.bias.uniform_(-0.5, 0.5)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), bn)


def _pools() -> nn.Module:
    return nn.Sequential(
        nn.MaxPool2d(3, 2, ceil_mode=True),
        nn.AvgPool2d(3, 2, padding=1, count_include_pad=False),
        nn.AvgPool2d(2, 2, padding=1, ceil_mode=True, count_include_pad=True),
    )


def _pools_more() -> nn.Module:
    return nn.Sequential(
        nn.MaxPool2d(2, 1, padding=1),
        nn.AvgPool2d(3, 2, padding=1, count_include_pad=True),
        nn.MaxPool2d((2, 3), (2, 2), padding=(1, 1), ceil_mode=True),
    )


FAMILY: dict[str, tuple[Callable[[], nn.Module], tuple[int, ...]]] = {
    "conv2d": (_conv2d_stack, (2, 3, 16, 15)),
    "conv1d": (_conv1d_stack, (2, 3, 21)),
    "conv_transpose2d": (_conv_transpose2d, (1, 4, 5, 6)),
    "conv_transpose1d": (_conv_transpose1d, (2, 4, 7)),
    "conv_batch_norm": (_batch_norm, (2, 3, 6, 6)),
    "pools": (_pools, (1, 3, 17, 17)),
    "pools_more": (_pools_more, (2, 2, 9, 10)),
    "adaptive_avg": (lambda: nn.AdaptiveAvgPool2d((3, 5)), (1, 3, 9, 10)),
    "adaptive_avg_uneven": (lambda: nn.AdaptiveAvgPool2d((3, 4)), (1, 3, 7, 10)),
    "adaptive_max": (lambda: nn.AdaptiveMaxPool2d((2, 5)), (1, 3, 8, 10)),
    "nearest_scale": (lambda: Interpolate(scale_factor=2, mode="nearest"), (1, 2, 4, 5)),
    "nearest_size": (lambda: Interpolate(size=(7, 9), mode="nearest"), (1, 2, 4, 5)),
    "bilinear_align": (
        lambda: Interpolate(scale_factor=2, mode="bilinear", align_corners=True),
        (1, 2, 4, 5),
    ),
    "bilinear_half_pixel": (
        lambda: Interpolate(scale_factor=2, mode="bilinear", align_corners=False),
        (1, 2, 4, 5),
    ),
    "bilinear_size": (
        lambda: Interpolate(size=(7, 9), mode="bilinear", align_corners=False),
        (1, 2, 4, 5),
    ),
    "bilinear_size_align": (
        lambda: Interpolate(size=(7, 11), mode="bilinear", align_corners=True),
        (1, 2, 4, 5),
    ),
    "bilinear_fractional": (
        lambda: Interpolate(scale_factor=1.5, mode="bilinear", align_corners=False),
        (1, 2, 4, 6),
    ),
    "upsample_module": (lambda: nn.Upsample(scale_factor=3, mode="nearest"), (1, 3, 3, 4)),
    "pixel_shuffle": (lambda: nn.PixelShuffle(2), (1, 8, 3, 5)),
}


@MATRIX
@pytest.mark.parametrize("family", list(FAMILY))
def test_cnn_family(family: str, target: str, precision: str) -> None:
    make, shape = FAMILY[family]
    assert_close_to_torch(make().eval(), [_seeded(*shape)], target=target, precision=precision)


# --- helpers for programs built directly in MIL ------------------------------------


def _run(prog: Any, feed: dict[str, np.ndarray], target: str = "iOS17") -> list[np.ndarray]:
    mlmodel = ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=TARGETS[target],
        compute_precision=ct.precision.FLOAT32,
    )
    result = Emulator(mlmodel).run(feed)
    return [result[o.name] for o in mlmodel.get_spec().description.output]


def _program(shapes: list[tuple[int, ...]], target: str, body: Callable[..., Any]) -> Any:
    specs = [mb.TensorSpec(shape=s) for s in shapes]
    return mb.program(input_specs=specs, opset_version=TARGETS[target])(body)


def _rotate(a: np.ndarray) -> np.ndarray:
    """Flip every spatial axis (maps same_lower padding to torch's same padding)."""
    return np.flip(a, axis=tuple(range(2, a.ndim))).copy()


# --- conv ---------------------------------------------------------------------------


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("dims", [1, 2, 3])
@pytest.mark.parametrize("pad_type", ["same", "same_lower", "valid"])
def test_conv_pad_types_match_torch(dims: int, pad_type: str) -> None:
    shape = (1, 2, 6, 5, 7)[: dims + 2]
    ksize = (2, 4, 3)[:dims]
    x = _seeded(*shape, seed=5).numpy()
    w = _seeded(3, 2, *ksize, seed=6).numpy()
    prog = _program([shape], "iOS17", lambda x: mb.conv(x=x, weight=w, pad_type=pad_type))
    (got,) = _run(prog, {"x": x})
    conv = (F.conv1d, F.conv2d, F.conv3d)[dims - 1]
    torch_pad = "valid" if pad_type == "valid" else "same"
    if pad_type == "same_lower":
        want = _rotate(
            conv(torch.from_numpy(_rotate(x)), torch.from_numpy(_rotate(w)), padding="same").numpy()
        )
    else:
        want = conv(torch.from_numpy(x), torch.from_numpy(w), padding=torch_pad).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_conv_strided_same_padding_and_3d_groups() -> None:
    x = _seeded(2, 4, 7, 6, 5, seed=7).numpy()
    w = _seeded(6, 2, 3, 2, 3, seed=8).numpy()
    b = _seeded(6, seed=9).numpy()

    def body(x: Any) -> Any:
        return mb.conv(x=x, weight=w, bias=b, strides=[2, 2, 1], pad_type="same", groups=2)

    (got,) = _run(_program([x.shape], "iOS17", body), {"x": x})
    # same: out = ceil(in / stride); total pad = (out-1)*s + k - in, the odd one after.
    pads = []
    for size, k, s in zip(x.shape[2:], w.shape[2:], (2, 2, 1), strict=True):
        total = max(0, (-(-size // s) - 1) * s + k - size)
        pads += [total - total // 2, total // 2]  # F.pad lists the last axis first
    xt = F.pad(torch.from_numpy(x), tuple(pads[::-1]))
    want = F.conv3d(xt, torch.from_numpy(w), torch.from_numpy(b), stride=(2, 2, 1), groups=2)
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)


def test_conv_with_runtime_weight() -> None:
    x = _seeded(2, 3, 8, 8, seed=10).numpy()
    w = _seeded(5, 3, 3, 3, seed=11).numpy()
    prog = _program(
        [x.shape, w.shape],
        "iOS17",
        lambda x, w: mb.conv(x=x, weight=w, strides=[2, 1], pad_type="custom", pad=[1, 0, 2, 1]),
    )
    (got,) = _run(prog, {"x": x, "w": w})
    xt = F.pad(torch.from_numpy(x), (2, 1, 1, 0))
    want = F.conv2d(xt, torch.from_numpy(w), stride=(2, 1)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("pad_type", ["same", "valid", "custom"])
def test_conv_transpose_pad_types(pad_type: str) -> None:
    x = _seeded(1, 4, 5, 4, seed=12).numpy()
    w = _seeded(4, 3, 3, 3, seed=13).numpy()
    kwargs: dict[str, Any] = {"pad_type": pad_type, "strides": [2, 2]}
    if pad_type == "custom":
        kwargs["pad"] = [1, 0, 0, 2]
    prog = _program([x.shape], "iOS17", lambda x: mb.conv_transpose(x=x, weight=w, **kwargs))
    (got,) = _run(prog, {"x": x})
    full = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), stride=2).numpy()
    if pad_type == "valid":
        want = full
    elif pad_type == "custom":
        want = full[:, :, 1:, 0:-2]
    else:  # out = in * stride; crop total = full - out, the odd one at the end
        want = full[:, :, 0:10, 0:8]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)


def test_conv_transpose_3d_dilated() -> None:
    x = _seeded(1, 2, 3, 4, 3, seed=14).numpy()
    w = _seeded(2, 2, 2, 3, 2, seed=15).numpy()
    prog = _program(
        [x.shape],
        "iOS17",
        lambda x: mb.conv_transpose(x=x, weight=w, strides=[1, 2, 1], dilations=[2, 1, 2]),
    )
    (got,) = _run(prog, {"x": x})
    want = F.conv_transpose3d(
        torch.from_numpy(x), torch.from_numpy(w), stride=(1, 2, 1), dilation=(2, 1, 2)
    )
    np.testing.assert_allclose(got, want.numpy(), rtol=1e-4, atol=1e-5)


def test_conv_fp16_overflows_only_at_the_output() -> None:
    """A sum past 65504 is inf in fp16 storage; a sum that stays below does not overflow."""

    class Sum(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv1d(1, 2, 2, bias=False)
            with torch.no_grad():
                self.conv.weight.copy_(torch.tensor([[[1.0, 1.0]], [[1.0, -1.0]]]))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.conv(x)

    x = torch.tensor([[[40000.0, 40000.0, 30000.0]]])
    mlmodel = ct.convert(
        torch.jit.trace(Sum().eval(), (x,)),
        inputs=[ct.TensorType(name="x", shape=x.shape)],
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.iOS17,
        compute_precision=ct.precision.FLOAT16,
    )
    (out,) = Emulator(mlmodel).run({"x": x.numpy()}).values()
    assert np.isinf(out[0, 0]).all()  # 80000 and 70000 overflow fp16
    np.testing.assert_array_equal(out[0, 1], [0.0, 10000.0])


# --- pooling ------------------------------------------------------------------------


def test_pool_same_lower_known_values() -> None:
    """Expected values from coremltools' runtime tests (avg counts the padding)."""
    x = np.arange(1, 5, dtype=np.float32).reshape(1, 1, 2, 2)

    def body(x: Any) -> Any:
        return (
            mb.avg_pool(x=x, kernel_sizes=[2, 2], pad_type="same_lower"),
            mb.l2_pool(x=x, kernel_sizes=[2, 2], pad_type="same_lower"),
        )

    avg, l2 = _run(_program([x.shape], "iOS17", body), {"x": x})
    np.testing.assert_allclose(avg.reshape(-1), [0.25, 0.75, 1, 2.5])
    np.testing.assert_allclose(l2.reshape(-1), [1, 2.236068, 3.162278, 5.477226], rtol=1e-6)


def test_avg_pool_same_excluding_padding_3d() -> None:
    x = np.array(
        [
            [
                [
                    [[-1, -5, -1], [-3, -3, 8], [2, 6, 2]],
                    [[-4, 7, -4], [4, 6, 7], [4, 4, 8]],
                    [[5, -3, 5], [0, -5, 8], [1, 7, 2]],
                ]
            ]
        ],
        dtype=np.float32,
    )

    def body(x: Any) -> Any:
        return mb.avg_pool(
            x=x,
            kernel_sizes=[1, 2, 3],
            strides=[2, 1, 3],
            pad_type="same",
            exclude_padding_from_average=True,
        )

    (got,) = _run(_program([x.shape], "iOS17", body), {"x": x})
    want = np.array([[-0.8333334], [2.0], [3.3333335], [1.6666667], [2.1666667], [3.3333335]])
    np.testing.assert_allclose(got.reshape(-1), want.reshape(-1), rtol=1e-6)


@pytest.mark.parametrize("dims", [1, 3])
def test_max_and_avg_pool_1d_3d_match_torch(dims: int) -> None:
    shape = (2, 3, 9, 8, 7)[: dims + 2]
    x = _seeded(*shape, seed=16).numpy()
    k, s, p = [3] * dims, [2] * dims, [1] * (2 * dims)

    def body(x: Any) -> Any:
        return (
            mb.max_pool(x=x, kernel_sizes=k, strides=s, pad_type="custom", pad=p),
            mb.avg_pool(x=x, kernel_sizes=k, strides=s, pad_type="custom", pad=p),
        )

    mx, avg = _run(_program([shape], "iOS17", body), {"x": x})
    tmax = (F.max_pool1d, F.max_pool2d, F.max_pool3d)[dims - 1]
    tavg = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[dims - 1]
    xt = torch.from_numpy(x)
    np.testing.assert_allclose(mx, tmax(xt, 3, 2, 1).numpy(), rtol=1e-6)
    np.testing.assert_allclose(avg, tavg(xt, 3, 2, 1).numpy(), rtol=1e-5, atol=1e-6)


def test_l2_pool_does_not_overflow_internally() -> None:
    x = np.full((1, 1, 4), 3e20, dtype=np.float32)  # x**2 overflows float32
    prog = _program(
        [x.shape], "iOS17", lambda x: mb.l2_pool(x=x, kernel_sizes=[4], pad_type="valid")
    )
    (got,) = _run(prog, {"x": x})
    np.testing.assert_allclose(got.reshape(-1), [6e20], rtol=1e-6)


def test_avg_pool_fp16_mean_of_large_values_is_finite() -> None:
    """fp32 accumulation: a window sum past 65504 does not make a representable mean inf."""
    model = nn.AvgPool1d(2)
    x = torch.tensor([[[60000.0, 62000.0, -65000.0, -64000.0]]])
    out = assert_close_to_torch(model, [x], target="iOS17", precision="fp16")
    assert np.isfinite(out[0]).all()


# --- image resizing -----------------------------------------------------------------

# Grid points for Xin = 2 from the resize_bilinear docstring, sampled from [0, 1].
_GRIDS = {
    ("UNALIGN_CORNERS", 5): [0.0, 0.1, 0.5, 0.9, 1.0],
    ("STRICT_ALIGN_CORNERS", 5): [0.0, 0.25, 0.5, 0.75, 1.0],
    ("ALIGN_CORNERS", 5): [0.0, 0.25, 0.5, 0.75, 1.0],
    ("DEFAULT", 5): [0.0, 0.4, 0.8, 1.0, 1.0],
    ("OFFSET_CORNERS", 5): [0.1, 0.3, 0.5, 0.7, 0.9],
    ("UNALIGN_CORNERS", 6): [0.0, 0.0, 1 / 3, 2 / 3, 1.0, 1.0],
    ("STRICT_ALIGN_CORNERS", 6): [0.0, 0.2, 0.4, 0.6, 0.8, 1.0],
    ("DEFAULT", 6): [0.0, 1 / 3, 2 / 3, 1.0, 1.0, 1.0],
    ("OFFSET_CORNERS", 6): [1 / 12, 0.25, 5 / 12, 7 / 12, 0.75, 11 / 12],
    ("ALIGN_CORNERS", 1): [0.5],
    ("STRICT_ALIGN_CORNERS", 1): [0.0],
}


@pytest.mark.parametrize(("mode", "size"), list(_GRIDS))
def test_resize_bilinear_sampling_modes(mode: str, size: int) -> None:
    x = np.array([0.0, 1.0], dtype=np.float32).reshape(1, 1, 2)

    def body(x: Any) -> Any:
        return mb.resize_bilinear(
            x=x, target_size_height=1, target_size_width=size, sampling_mode=mode
        )

    (got,) = _run(_program([x.shape], "iOS17", body), {"x": x})
    np.testing.assert_allclose(got.reshape(-1), _GRIDS[(mode, size)], rtol=1e-6, atol=1e-7)


def test_upsample_bilinear_half_pixel_centers_false_is_tf_legacy() -> None:
    x = _seeded(1, 2, 3, 4, seed=17).numpy()

    def body(x: Any) -> Any:
        return (
            mb.upsample_bilinear(
                x=x,
                scale_factor_height=2,
                scale_factor_width=2,
                align_corners=False,
                half_pixel_centers=False,
            ),
            mb.resize_bilinear(x=x, target_size_height=6, target_size_width=8),
        )

    legacy, default = _run(_program([x.shape], "iOS17", body), {"x": x})
    np.testing.assert_allclose(legacy, default, rtol=1e-6)
    np.testing.assert_allclose(legacy[..., ::2, ::2], x, rtol=1e-6)  # grid i * in / out


def test_nearest_neighbor_known_values() -> None:
    """Expected values from coremltools' runtime tests."""
    x = np.array([1.5, -2.5, 3.5], dtype=np.float32).reshape(1, 1, 1, 3)
    y = np.array([-6.174, 9.371], dtype=np.float32).reshape(1, 1, 2, 1)
    lo, hi = y.reshape(-1)

    def body(x: Any, y: Any) -> Any:
        return (
            mb.upsample_nearest_neighbor(x=x, scale_factor_height=3.17, scale_factor_width=0.67),
            mb.upsample_nearest_neighbor(x=x, scale_factor_height=2.0, scale_factor_width=1.12),
            mb.resize(
                x=y,
                shape=[1, 1, 3, 2],
                resized_dims=np.uint32(2),
                interpolation_mode="NEAREST_NEIGHBOR",
            ),
            mb.resize(x=y, shape=[1, 0, 5], resized_dims=np.uint32(1)),
            mb.resize_nearest_neighbor(x=y, target_size_height=2, target_size_width=3),
        )

    a, b, c, d, e = _run(_program([x.shape, y.shape], "iOS17", body), {"x": x, "y": y})
    np.testing.assert_array_equal(a.reshape(3, 2), [[1.5, -2.5]] * 3)
    np.testing.assert_array_equal(b.reshape(2, 3), [[1.5, -2.5, 3.5]] * 2)
    np.testing.assert_array_equal(c.reshape(3, 2), [[lo, lo], [hi, hi], [hi, hi]])
    assert d.shape == (1, 1, 2, 5)
    np.testing.assert_array_equal(d[0, 0, :, 0], [lo, hi])
    np.testing.assert_array_equal(e.reshape(2, 3), [[lo] * 3, [hi] * 3])


def test_crop_and_crop_resize_known_values() -> None:
    x = np.arange(1, 17, dtype=np.float32).reshape(1, 1, 4, 4)
    boxes = np.array([[0.1, 0.3, 1.3, 1.0], [0.5, 1.8, 1.0, 0.3], [0.0, 0.4, 0.6, 0.7]], np.float32)

    def ios17(x: Any) -> Any:
        return (
            mb.crop(x=x, crop_height=[1, 0], crop_width=[0, 2]),
            mb.crop_resize(
                x=x,
                boxes=boxes,
                box_indices=np.zeros(3, np.int32),
                target_height=2,
                target_width=2,
                normalized_coordinates=True,
                sampling_mode="ALIGN_CORNERS",
                pad_value=10.0,
            ),
        )

    cropped, resized = _run(_program([x.shape], "iOS17", ios17), {"x": x})
    np.testing.assert_array_equal(cropped[0, 0], x[0, 0, 1:, :2])
    want = [3.1, 5.2, 10.0, 10.0, 10.0, 7.899, 10.0, 13.9, 2.2, 3.1, 9.4, 10.3]
    np.testing.assert_allclose(resized.reshape(-1), want, rtol=1e-3)

    roi = np.array([1, 1, 2, 2], np.float32).reshape(1, 1, 4, 1, 1)

    def ios15(x: Any) -> Any:
        return (
            mb.crop_resize(
                x=x, roi=roi, target_height=4, target_width=4, sampling_mode="ALIGN_CORNERS"
            ),
            mb.crop_resize(
                x=x, roi=roi, target_height=1, target_width=1, sampling_mode="ALIGN_CORNERS"
            ),
        )

    grid4, center = _run(_program([x.shape], "iOS15", ios15), {"x": x}, target="iOS15")
    assert grid4.shape == (1, 1, 1, 4, 4)
    np.testing.assert_allclose(grid4[0, 0, 0, 0], [6, 6.333333, 6.666666, 7], rtol=1e-6)
    np.testing.assert_allclose(grid4[0, 0, 0, 3], [10, 10.333333, 10.666666, 11], rtol=1e-6)
    np.testing.assert_allclose(center.reshape(-1), [8.5])


def test_resample_and_affine_known_values() -> None:
    """coremltools' runtime-test values for every padding and coordinate mode."""
    x = np.array([11.0, 22.0, 33.0, 44.0], dtype=np.float32).reshape(1, 1, 2, 2)
    coords = np.array([-1.0, -2.0, -3.7, -1.0, 0.0, 0.0, 3.5, 1.2], np.float32).reshape(1, 2, 2, 2)
    theta = np.array([-1.0, -2.0, -3.7, -1.0, 3.5, 1.2], dtype=np.float32).reshape(1, 6)
    cases = [
        (
            "bilinear",
            "constant",
            6.17,
            "normalized_minus_one_to_one",
            True,
            [8.585, 6.17, 27.5, 6.17],
        ),
        ("nearest", "border", -1.0, "unnormalized", False, [11.0, 11.0, 11.0, 44.0]),
        ("bilinear", "reflection", -1.0, "normalized_zero_to_one", True, [22.0, 36.3, 11.0, 34.1]),
        ("nearest", "symmetric", -1.0, "normalized_zero_to_one", False, [22.0, 33.0, 11.0, 33.0]),
    ]

    def body(x: Any, c: Any, t: Any) -> Any:
        outs = [
            mb.resample(
                x=x,
                coordinates=c,
                sampling_mode=sm,
                padding_mode=pm,
                padding_value=pv,
                coordinates_mode=cm,
                align_corners=ac,
            )
            for sm, pm, pv, cm, ac, _ in cases
        ]
        outs.append(
            mb.affine(
                x=x,
                transform_matrix=t,
                output_height=2,
                output_width=5,
                sampling_mode="bilinear",
                padding_mode="constant",
                padding_value=0.0,
                coordinates_mode="normalized_minus_one_to_one",
                align_corners=True,
            )
        )
        return tuple(outs)

    prog = _program([x.shape, coords.shape, theta.shape], "iOS17", body)
    got = _run(prog, {"x": x, "c": coords, "t": theta})
    for out, case in zip(got, cases, strict=False):
        np.testing.assert_allclose(out.reshape(-1), case[-1], rtol=1e-5, err_msg=str(case))
    affine_want = [10.752501, 5.94, 2.5025, 0.44000006, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    np.testing.assert_allclose(got[-1].reshape(-1), affine_want, rtol=1e-5, atol=1e-6)


def test_grid_sample_matches_torch() -> None:
    class GridSample(nn.Module):
        def forward(self, x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
            return F.grid_sample(
                x, grid, mode="bilinear", padding_mode="zeros", align_corners=False
            )

    x, grid = _seeded(2, 3, 5, 6, seed=18), _seeded(2, 4, 7, 2, seed=19) * 1.2
    assert_close_to_torch(GridSample(), [x, grid], target="iOS17", precision="fp32")


# --- block rearrangements -----------------------------------------------------------


def test_block_rearrangements() -> None:
    d2s = np.array([9.0, 5.0, 1.0, 3.0], np.float32).reshape(1, 4, 1, 1)
    s2d = np.array([[7.0, 9.0], [4.0, 6.0]], np.float32).reshape(1, 1, 2, 2)
    s2b = np.arange(1, 17, dtype=np.float32).reshape(2, 1, 2, 4)
    big = _seeded(2, 8, 4, 6, seed=20).numpy()

    def body(a: Any, b: Any, c: Any, d: Any) -> Any:
        to_batch = mb.space_to_batch(x=c, block_shape=[2, 2], paddings=[[0, 0], [2, 0]])
        return (
            mb.depth_to_space(x=a, block_size=2),
            mb.space_to_depth(x=b, block_size=2),
            to_batch,
            mb.batch_to_space(x=to_batch, block_shape=[2, 2], crops=[[0, 0], [2, 0]]),
            mb.pixel_unshuffle(x=d, downscale_factor=np.uint32(2)),
            mb.depth_to_space(x=mb.space_to_depth(x=d, block_size=2), block_size=2),
        )

    shapes = [d2s.shape, s2d.shape, s2b.shape, big.shape]
    feed = {"a": d2s, "b": s2d, "c": s2b, "d": big}
    d2s_out, s2d_out, batch, back, unshuffled, roundtrip = _run(
        _program(shapes, "iOS17", body), feed
    )
    np.testing.assert_array_equal(d2s_out.reshape(2, 2), [[9, 5], [1, 3]])
    np.testing.assert_array_equal(s2d_out.reshape(-1), [7, 9, 4, 6])
    want = [
        [0, 1, 3],
        [0, 9, 11],
        [0, 2, 4],
        [0, 10, 12],
        [0, 5, 7],
        [0, 13, 15],
        [0, 6, 8],
        [0, 14, 16],
    ]
    np.testing.assert_array_equal(batch.reshape(8, 3), want)
    np.testing.assert_array_equal(back, s2b)
    np.testing.assert_array_equal(unshuffled, F.pixel_unshuffle(torch.from_numpy(big), 2).numpy())
    np.testing.assert_array_equal(roundtrip, big)
    # TF order differs from torch's pixel order: the two must not coincide.
    assert not np.array_equal(
        mb_free_space_to_depth(big), F.pixel_unshuffle(torch.from_numpy(big), 2).numpy()
    )


def mb_free_space_to_depth(x: np.ndarray) -> np.ndarray:
    """TF space_to_depth in NCHW, written independently of the kernel."""
    n, c, h, w = x.shape
    nhwc = x.transpose(0, 2, 3, 1).reshape(n, h // 2, 2, w // 2, 2, c)
    return nhwc.transpose(0, 1, 3, 2, 4, 5).reshape(n, h // 2, w // 2, 4 * c).transpose(0, 3, 1, 2)


def test_space_to_depth_matches_independent_reference() -> None:
    x = _seeded(2, 3, 4, 6, seed=21).numpy()
    prog = _program([x.shape], "iOS17", lambda x: mb.space_to_depth(x=x, block_size=2))
    (got,) = _run(prog, {"x": x})
    np.testing.assert_array_equal(got, mb_free_space_to_depth(x))


# ----------------------------------------------------- torch fast paths vs their numpy twins

CONV_CASES = [
    # (x shape, weight shape, strides, dilations, pads, groups)
    ((2, 6, 9, 8), (12, 1, 3, 3), [1, 1], [1, 1], [(1, 1), (1, 1)], 6),  # depthwise, x2 mult
    ((1, 8, 11, 10), (8, 4, 3, 2), [2, 1], [1, 2], [(0, 2), (1, 0)], 2),  # grouped, asym pads
    ((1, 3, 17), (5, 3, 4), [3], [2], [(2, 1)], 1),  # 1-D, strided, dilated
    ((1, 4, 5, 6, 7), (4, 1, 2, 3, 2), [1, 2, 1], [2, 1, 1], [(1, 0), (0, 0), (1, 1)], 4),  # 3-D
    ((1, 16, 7, 7), (32, 16, 1, 1), [1, 1], [1, 1], [(0, 0), (0, 0)], 1),  # pointwise
]


@pytest.mark.parametrize("case", range(len(CONV_CASES)))
@pytest.mark.parametrize("with_bias", [True, False])
def test_conv_torch_path_matches_numpy_im2col(case: int, with_bias: bool) -> None:
    """The kernel runs torch's convolution; the numpy im2col (its path without torch)
    must agree to float32 summation order, for every group count and padding."""
    from pytest_coreml_parity.emulator.kernels import conv as conv_kernels
    from pytest_coreml_parity.emulator.kernels._torch import torch_or_none

    x_shape, w_shape, strides, dilations, pads, groups = CONV_CASES[case]
    rng = np.random.default_rng(case)
    x = rng.standard_normal(x_shape).astype(np.float32)
    w = rng.standard_normal(w_shape).astype(np.float32)
    bias = rng.standard_normal(w_shape[0]).astype(np.float32) if with_bias else None
    fast = conv_kernels.torch_conv(torch_or_none(), x, w, bias, strides, dilations, pads, groups)
    slow = conv_kernels.numpy_conv(x, w, bias, strides, dilations, pads, groups)
    assert fast.dtype == slow.dtype == np.float32
    np.testing.assert_allclose(fast, slow, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("groups", [1, 3])
def test_conv_transpose_torch_path_matches_numpy_scatter(groups: int) -> None:
    from pytest_coreml_parity.emulator.kernels import conv as conv_kernels

    rng = np.random.default_rng(groups)
    x = rng.standard_normal((2, 6, 5, 4)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 2)).astype(np.float32)
    want = conv_kernels.numpy_conv_transpose_full(x, w, [2, 3], [1, 2], groups)
    with torch.no_grad():
        got = F.conv_transpose2d(torch.from_numpy(x), torch.from_numpy(w), None, [2, 3], 0, 0, groups, [1, 2])
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-5)


def test_sigmoid_and_silu_torch_paths_match_numpy_at_the_extremes() -> None:
    from pytest_coreml_parity.emulator.kernels import activation

    x = np.concatenate(
        [
            np.linspace(-120, 120, 4001, dtype=np.float32),
            np.array([-np.inf, np.inf, -0.0, 0.0, 88.7, -88.7, 1e-30], dtype=np.float32),
        ]
    )
    with np.errstate(all="ignore"):
        slow = activation.numpy_sigmoid(x)
    fast = activation.stable_sigmoid(x)
    assert not np.isnan(fast).any()
    np.testing.assert_allclose(fast, slow, rtol=2e-6, atol=1e-30)
    silu = activation.silu(None, x)  # type: ignore[arg-type]
    with np.errstate(all="ignore"):
        np.testing.assert_allclose(silu[:-7], (x * slow)[:-7], rtol=2e-6, atol=1e-30)
    assert np.isnan(silu[-7])  # -inf * 0, as the textbook form gives
    nan = activation.stable_sigmoid(np.array([np.nan], np.float32))
    assert np.isnan(nan).all()
