"""Localization runs: one recorded run per precision, on the failing inputs."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ..emulator import Emulator
from ..verdict import preset
from ._quiet import quiet
from .localize import Localization, feed_for, localize_recordings
from .names import scope_names
from .source import CodeLine


@quiet
def localize_models(
    mlmodel: Any,
    fp32_mlmodel: Any,
    inputs: Sequence[np.ndarray],
    *,
    precision: str = "fp16",
    traced: Any = None,
    root_class: str | None = None,
) -> Localization:
    """Localize from an MLModel under test and its fp32 conversion (the reference run).

    ``traced`` (the ``torch.jit`` module that was converted) adds code lines to
    the torch locations; without it the locations are module paths only.
    """
    from .source import code_lines

    lines = code_lines(traced) if traced is not None else {}
    return _localize(mlmodel, fp32_mlmodel, tuple(np.asarray(x) for x in inputs), precision, lines, root_class)


@quiet
def localize_subject(
    subject: Any,
    inputs: tuple[np.ndarray, ...],
    precision: str = "fp16",
    fp32_ops: frozenset[str] | None = None,
) -> Localization:
    """Localize for a :class:`.subject.Subject`: its program at ``precision`` (keeping
    ``fp32_ops`` in float32, as the test converted it) against its fp32 conversion."""
    return _localize(
        subject.model(precision, fp32_ops), subject.model("fp32"), inputs, precision,
        subject.code_lines(), subject.root_class(),
    )


def _localize(
    mlmodel: Any,
    fp32_mlmodel: Any,
    inputs: tuple[np.ndarray, ...],
    precision: str,
    lines: dict[str, CodeLine],
    root_class: str | None,
) -> Localization:
    em = Emulator(mlmodel)
    em32 = Emulator(fp32_mlmodel)
    rec = em.record(feed_for(em, inputs))
    rec32 = em32.record(feed_for(em32, inputs))
    rtol = preset(precision).rtol
    return localize_recordings(
        em, rec, rec32,
        precision=precision,
        tolerance=rtol,
        scopes=scope_names(mlmodel),
        lines=lines,
        root_class=root_class,
    )
