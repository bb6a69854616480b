"""Diagnose a failing test's model on its failing inputs: localization, then the fix search.

The plugin's report hook calls :func:`diagnose_failure` once per failed test and
puts :meth:`Diagnosis.text` in a report section; it also writes the report files
(``--coreml-report-dir``) from the returned :class:`Diagnosis`. Nothing here writes
files or knows about pytest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import messages
from ..compress import is_compressed
from ..precisions import is_exact
from ..verdict import Gates, resolve_tolerance
from ._quiet import quiet
from .compression import CompressionAttribution, attribute_compression
from .coreai import CoreAIDiagnosis
from .fix import MixedPrecisionFix, search_fix
from .hints import FP16_KINDS, Hint, choose_hint
from .localize import Localization
from .subject import ModelUnderTest, Subject, as_arrays
from .workflow import localize_subject


@dataclass(frozen=True)
class Diagnosis:
    """What the diagnosis found: the localization, the fix search's outcome (if run), and
    the hint that says what happened (the compression diagnosis may replace it)."""

    localization: Localization
    fix: MixedPrecisionFix | None = None
    hint: Hint | None = None
    #: A compressed precision's split of the error and its worst weights (compression.py).
    compression: CompressionAttribution | None = None

    @property
    def healthy(self) -> bool:
        return self.localization.healthy

    def text(self, written: Sequence[Path] = ()) -> str:
        """The report section's body; ``written`` are the report files, if any."""
        parts = [self.localization.text()]
        if self.compression is not None:
            parts.append(self.compression.text())
        if self.hint is not None:
            parts.append(self.hint.text)
        if self.fix is not None:
            parts.append(self.fix.text())
        elif not self.healthy and (self.hint is None or self.hint.kind in FP16_KINDS):
            parts.append(messages.SEARCH_FIX_HINT)
        if written:
            parts.append(messages.REPORT_WRITTEN.format(paths=", ".join(str(p) for p in written)))
            if not any(Path(p).suffix == ".png" for p in written):  # report.files skipped it
                parts.append(messages.PLOT_NEEDS_MATPLOTLIB)
        return "\n".join(parts)


def diagnose_failure(
    model: ModelUnderTest,
    inputs: Sequence[Any],
    *,
    rtol: float | None = None,
    atol: float | None = None,
    gates: Gates | None = None,
) -> Diagnosis | CoreAIDiagnosis | None:
    """Diagnose ``model`` on ``inputs``; None when there is nothing to say.

    Nothing to say: every op matches fp32 and torch, and no fix search ran.
    ``gates`` (else ``rtol``/``atol``) are what the failed assertion used; without
    them the model's configured tolerance (or the preset) is used. At fp32 nothing is
    converted: the test's program is compared with torch's intermediate values.
    The model's stack says how (:meth:`.stacks.Stack.diagnose`: Core ML per op through
    the emulator, :func:`diagnose_coreml`; Core AI through the interpreter's values).
    May raise; the caller decides how to report that.
    """
    stack = getattr(model, "stack", None)  # a bare ModelUnderTest (no stack) is a Core ML one
    if stack is None:
        return diagnose_coreml(model, inputs, rtol=rtol, atol=atol, gates=gates)
    result: Diagnosis | CoreAIDiagnosis | None = stack.diagnose(
        model, inputs, rtol=rtol, atol=atol, gates=gates
    )
    return result


@quiet
def diagnose_coreml(
    model: ModelUnderTest,
    inputs: Sequence[Any],
    *,
    rtol: float | None = None,
    atol: float | None = None,
    gates: Gates | None = None,
) -> Diagnosis | None:
    """:func:`diagnose_failure` of a Core ML model: localize per op, attribute compression,
    search a fix."""
    precision = model.precision
    if rtol is None or atol is None:
        resolved = resolve_tolerance(precision, configured_rtol=model.rtol, configured_atol=model.atol)
        rtol = resolved.rtol if rtol is None else rtol
        atol = resolved.atol if atol is None else atol
    arrays = as_arrays(inputs)
    subject = Subject.from_model(model)
    localization = localize_subject(
        subject, arrays, precision, model.options.fp32_ops, rtol=rtol, atol=atol, gates=gates
    )
    compression = attribute_compression(model, arrays) if is_compressed(precision) else None
    detail = compression.detail if compression is not None else _recipe_weights(model)
    hint = choose_hint(localization, compression=detail)
    fix = None
    if model.search_fix and not is_exact(precision) and hint.kind in FP16_KINDS:
        sets = [("failing inputs", arrays), ("example inputs", subject.example_arrays)]
        fix = search_fix(subject, sets, rtol=rtol, atol=atol)
    if localization.healthy and fix is None and detail is None:
        return None
    return Diagnosis(localization, fix, hint, compression)


def _recipe_weights(model: ModelUnderTest) -> str | None:
    """Weights a user's compression (``coreml_convert``, ``package=``) left far from torch:
    coremltools PR #2777's declined-but-rescaled weight is a plain const no compressed-op
    check sees, so every program constant is compared (diagnose/weights.py)."""
    mlmodel, torch_model = getattr(model, "mlmodel", None), getattr(model, "torch_model", None)
    if mlmodel is None or torch_model is None:
        return None
    try:
        from ..headroom import emulator_for
        from .weights import off_weights_detail

        return off_weights_detail(emulator_for(mlmodel, getattr(model, "emulator_profile", "typed")).ops, torch_model)
    except Exception:  # weight parity is a hint's detail: never the reason a diagnosis fails
        return None
