"""Batch norm calibrated on random batches, so random-weight nets have sane activations.

With random weights and the default running statistics (mean 0, variance 1), a deep
net's activations grow layer after layer and reach fp16's range for reasons no
trained model has. A trained model's statistics match its activations; these
calibrated ones do too: every batch norm's running mean and variance become the
exact average over a few random batches (``momentum=None``), then the model is put
in eval mode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch

_NORMS = (torch.nn.modules.batchnorm._BatchNorm,)


def calibrate_batch_norm(
    model: torch.nn.Module, batches: Sequence[Sequence[Any]], *, call: Callable[..., Any] | None = None
) -> torch.nn.Module:
    """Set every batch norm's running statistics from ``batches``; return ``model.eval()``.

    ``call(model, *batch)`` runs one batch (default ``model(*batch)``). Models without
    batch norm are only put in eval mode.
    """
    norms = [m for m in model.modules() if isinstance(m, _NORMS) and m.track_running_stats]
    if not norms:
        return model.eval()
    saved = [norm.momentum for norm in norms]
    for norm in norms:
        norm.reset_running_stats()
        norm.momentum = None  # a cumulative average: the exact mean over the batches
    model.train()
    with torch.no_grad():
        for batch in batches:
            (call or (lambda m, *xs: m(*xs)))(model, *batch)
    for norm, momentum in zip(norms, saved, strict=True):
        norm.momentum = momentum
    return model.eval()
