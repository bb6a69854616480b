"""The emulator runs enumerated and ranged programs at every allowed shape and
rejects the others, as Core ML does (real conversions)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pytest_coreml_parity.emulator import Emulator, InputError


def _convert(shape: object) -> object:
    import coremltools as ct

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU()).eval()
    traced = torch.jit.trace(model, torch.randn(1, 8))
    return ct.convert(
        traced,
        inputs=[ct.TensorType(name="x", shape=shape)],
        compute_precision=ct.precision.FLOAT32,
        minimum_deployment_target=ct.target.iOS16,
    )


def test_enumerated_shapes_run_and_others_are_rejected() -> None:
    import coremltools as ct

    emulator = Emulator(_convert(ct.EnumeratedShapes(shapes=[[1, 8], [5, 8]], default=[1, 8])))
    for batch in (1, 5):
        (out,) = emulator.run({"x": np.ones((batch, 8), np.float32)}).values()
        assert out.shape == (batch, 4)
    with pytest.raises(InputError, match=r"has shape \(3, 8\); the model allows \(1, 8\) or \(5, 8\)"):
        emulator.run({"x": np.ones((3, 8), np.float32)})


def test_ranged_dims_run_at_the_bounds_and_reject_beyond() -> None:
    import coremltools as ct

    emulator = Emulator(_convert((ct.RangeDim(2, 6, default=2), 8)))
    for batch in (2, 4, 6):
        (out,) = emulator.run({"x": np.ones((batch, 8), np.float32)}).values()
        assert out.shape == (batch, 4)
    for batch in (1, 7):
        with pytest.raises(InputError, match=r"the model allows \(2\.\.6, 8\)"):
            emulator.run({"x": np.ones((batch, 8), np.float32)})
