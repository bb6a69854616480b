"""Shared helpers for emulator tests: convert real torch models, run both sides, compare.

Every family test converts a real torch model with real coremltools and runs the
real emulator. Tolerances (see docs/emulator.md, "Test tolerances"):

* FLOAT32: rtol 1e-4, atol 1e-5 (the issue's bar). The emulator computes in
  float32 with the same formulas up to summation order.
* FLOAT16: every op output is rounded to binary16 (unit roundoff u = 2**-11,
  about 4.9e-4). Errors of a few u per op compound over a short chain of ops,
  so we allow rtol 1e-2 and an atol of 1e-2 scaled by the output's magnitude
  (max(1, max|ref|)). That is ~20x the single-op rounding error, yet 50x
  tighter than coremltools' own fp16 test tolerance (atol 0.5, rtol 0.05).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
import torch

from pytest_coreml_parity import verdict
from pytest_coreml_parity._coremltools import import_coremltools
from pytest_coreml_parity.emulator import Emulator

ct = import_coremltools()

TARGETS = {
    "iOS15": ct.target.iOS15,
    "iOS16": ct.target.iOS16,
    "iOS17": ct.target.iOS17,
    "iOS18": ct.target.iOS18,
}
PRECISIONS = {"fp32": ct.precision.FLOAT32, "fp16": ct.precision.FLOAT16}
#: This suite's per-op bar (a kernel vs torch, a few ops deep; see the docstring), from
#: the one verdict module; fp16's atol is scaled by max(1, max|ref|) below.
TOLERANCES = verdict.KERNEL_TOLERANCES

#: Parametrize a family test over every deployment target and precision.
grid = pytest.mark.parametrize(
    ("target", "precision"), [(t, p) for t in TARGETS for p in PRECISIONS]
)


def randn(*shape: int, seed: int = 0, scale: float = 1.0) -> torch.Tensor:
    """Reproducible standard-normal inputs (own generator: test order does not matter)."""
    return scale * torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def convert(
    model: torch.nn.Module,
    example_inputs: Sequence[torch.Tensor],
    *,
    target: str = "iOS16",
    precision: str = "fp32",
    script: bool = False,
    input_dtypes: Sequence[Any] | None = None,
    **convert_kwargs: Any,
) -> Any:
    """Trace (or script) and convert ``model`` to an ML Program."""
    model = model.eval()
    with torch.no_grad():
        traced = torch.jit.script(model) if script else torch.jit.trace(model, tuple(example_inputs))
    inputs = []
    for i, x in enumerate(example_inputs):
        kwargs: dict[str, Any] = {"name": f"x{i}", "shape": tuple(x.shape)}
        if input_dtypes is not None and input_dtypes[i] is not None:
            kwargs["dtype"] = input_dtypes[i]
        elif x.dtype in (torch.int32, torch.int64):
            kwargs["dtype"] = np.int32
        inputs.append(ct.TensorType(**kwargs))
    return ct.convert(
        traced,
        inputs=inputs,
        convert_to="mlprogram",
        minimum_deployment_target=TARGETS[target],
        compute_precision=PRECISIONS[precision],
        **convert_kwargs,
    )


def convert_program(prog: Any, target: Any, precision: str = "fp32") -> Any:
    """Convert a MIL builder program; FLOAT32 keeps the program's own declared types."""
    return ct.convert(
        prog,
        convert_to="mlprogram",
        minimum_deployment_target=target,
        compute_precision=PRECISIONS[precision],
    )


def torch_outputs(model: torch.nn.Module, inputs: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """The torch model's outputs, flattened in order, as numpy arrays."""
    with torch.no_grad():
        out = model(*inputs)
    if isinstance(out, torch.Tensor):
        out = (out,)
    flat: list[np.ndarray] = []
    for o in out:
        if isinstance(o, (tuple, list)):
            flat.extend(t.numpy() for t in o)
        else:
            flat.append(o.numpy())
    return flat


def emulator_outputs(mlmodel: Any, inputs: Sequence[torch.Tensor]) -> list[np.ndarray]:
    """The emulator's outputs, in the model's declared output order."""
    emulator = Emulator(mlmodel)
    feed = {spec.name: x.numpy() for spec, x in zip(emulator.inputs, inputs, strict=True)}
    result = emulator.run(feed)
    names = [o.name for o in mlmodel.get_spec().description.output]
    return [result[n] for n in names]


def assert_close_to_torch(
    model: torch.nn.Module,
    inputs: Sequence[torch.Tensor],
    *,
    target: str,
    precision: str,
    example_inputs: Sequence[torch.Tensor] | None = None,
    rtol: float | None = None,
    atol: float | None = None,
    **convert_kwargs: Any,
) -> list[np.ndarray]:
    """Convert ``model``, run torch and the emulator on ``inputs``, and compare.

    Returns the emulator outputs so tests can make further checks.
    """
    mlmodel = convert(
        model, example_inputs or inputs, target=target, precision=precision, **convert_kwargs
    )
    expected = torch_outputs(model, inputs)
    actual = emulator_outputs(mlmodel, inputs)
    default_rtol, default_atol = TOLERANCES[precision]
    rtol = default_rtol if rtol is None else rtol
    atol = default_atol if atol is None else atol
    assert len(actual) == len(expected), f"{len(actual)} outputs, torch has {len(expected)}"
    for i, (got, want) in enumerate(zip(actual, expected, strict=True)):
        if precision == "fp16" and got.dtype.kind == "f" and target != "iOS15":
            assert got.dtype == np.float16, f"output {i}: fp16 model returned {got.dtype}"
        scale = max(1.0, float(np.max(np.abs(want)))) if want.size and precision == "fp16" else 1.0
        assert_verdict(got, want, rtol, atol * scale, f"output {i} ({target}, {precision})")
    return actual


def assert_verdict(got: Any, want: Any, rtol: float, atol: float, where: str) -> None:
    """Fail unless ``got`` matches ``want`` under the verdict's one mismatch rule."""
    got_array, want_array = np.asarray(got), np.asarray(want)
    assert got_array.shape == want_array.shape, f"{where}: shape {got_array.shape} != {want_array.shape}"
    mask = verdict.mismatch_mask(got_array, want_array, rtol, atol)
    if mask.any():
        first = tuple(int(i) for i in np.argwhere(mask)[0]) if mask.ndim else ()
        raise AssertionError(
            f"{where}: {int(mask.sum())} / {mask.size} elements beyond rtol={rtol:g}, "
            f"atol={atol:g}; first at {first}: got {got_array[first]!r}, want {want_array[first]!r}"
        )
