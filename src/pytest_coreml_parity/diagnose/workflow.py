"""Localization runs: one recorded run per precision on the failing inputs, and one torch run."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..emulator import Emulator
from ..precisions import is_exact
from ..verdict import Gates, outputs_match, preset
from ._quiet import quiet
from .departure import first_departure
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
    *,
    rtol: float | None = None,
    atol: float | None = None,
    gates: Gates | None = None,
) -> Localization:
    """Localize for a :class:`.subject.Subject`: its program at ``precision`` (keeping
    ``fp32_ops`` in float32, as the test converted it) against its fp32 conversion,
    and every program against torch's own intermediate values.

    ``gates``: the verdict the failed assertion used (default: the preset of
    ``precision`` with ``rtol``/``atol`` if given). Ops depart from torch by its
    element-wise rule, and the fp32 conversion passes or fails by all of it. At fp32
    nothing is converted: the test's program is recorded and compared with torch.
    """
    base = preset(precision)
    if gates is None:
        gates = dataclasses.replace(
            base, rtol=base.rtol if rtol is None else rtol, atol=base.atol if atol is None else atol
        )
    rtol, atol = gates.rtol, gates.atol
    rule = {"rtol": rtol, "atol": atol, "scale_atol": gates.scale_atol}
    mlmodel = subject.model(precision, fp32_ops)
    lines, root = subject.code_lines(), subject.root_class()
    torch_values = subject.torch_values(inputs)
    em = Emulator(mlmodel)
    rec = em.record(feed_for(em, inputs))
    scopes = scope_names(mlmodel)
    if is_exact(precision):
        loc = localize_recordings(
            em, rec, rec, precision=precision, tolerance=rtol, scopes=scopes, lines=lines, root_class=root
        )
        fp32_passes: bool | None = False  # the assertion failed on this very program
    else:
        m32 = subject.model("fp32")
        em32 = Emulator(m32)
        rec32 = em32.record(feed_for(em32, inputs))
        loc = localize_recordings(
            em, rec, rec32, precision=precision, tolerance=base.rtol, scopes=scopes,
            lines=lines, root_class=root,
        )
        want = subject.reference(inputs)
        got = [rec32.outputs[name] for name in em32.output_names]
        fp32_passes = len(got) == len(want) and all(
            outputs_match(g.reshape(np.shape(w)) if g.size == np.size(w) else g, w, **dataclasses.asdict(gates))
            for g, w in zip(got, want, strict=False)
        )
        if not fp32_passes:
            dep32, _ = first_departure(
                rec32, torch_values, **rule, scopes=scope_names(m32), lines=lines, root_class=root
            )
            loc = dataclasses.replace(loc, fp32_departure=dep32)
    departure, compared = first_departure(
        rec, torch_values, **rule, scopes=scopes, lines=lines, root_class=root
    )
    if is_exact(precision):
        loc = dataclasses.replace(loc, fp32_departure=departure)
    return dataclasses.replace(loc, departure=departure, compared=compared, fp32_passes=fp32_passes)


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
