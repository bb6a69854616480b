"""Batch norm calibration: running statistics become the exact average over the batches."""

from __future__ import annotations

import pytest
import torch
from tools.zoo.calibrate import calibrate_batch_norm

pytestmark = pytest.mark.zoo


def test_running_statistics_are_the_batches_average() -> None:
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 4, 3)
    model = torch.nn.Sequential(conv, torch.nn.BatchNorm2d(4))
    batches = [(torch.randn(2, 3, 8, 8) * 5 + 3,) for _ in range(3)]
    calibrate_batch_norm(model, batches)
    with torch.no_grad():
        features = [conv(x) for (x,) in batches]
    means = torch.stack([f.mean(dim=(0, 2, 3)) for f in features])
    variances = torch.stack([f.var(dim=(0, 2, 3), unbiased=True) for f in features])
    norm = model[1]
    assert not model.training
    torch.testing.assert_close(norm.running_mean, means.mean(0))
    torch.testing.assert_close(norm.running_var, variances.mean(0))
    assert norm.momentum == 0.1  # restored
    with torch.no_grad():
        out = model(batches[0][0])
    assert out.abs().mean() < 2.0  # normalized, where the default statistics leave it at scale 5


def test_a_model_without_batch_norm_is_only_put_in_eval_mode() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2)).train()
    assert calibrate_batch_norm(model, [(torch.ones(1, 2),)]) is model
    assert not model.training
