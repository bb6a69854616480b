"""Diagnose a failing test's model on its failing inputs: localization, then the fix search.

The plugin's report hook calls :func:`diagnose_failure` once per failed test and
puts :meth:`Diagnosis.text` in a report section; it also writes the report files
(``--coreml-report``) from the returned :class:`Diagnosis`. Nothing here writes
files or knows about pytest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import messages
from ..verdict import resolve_tolerance
from ._quiet import quiet
from .fix import MixedPrecisionFix, search_fix
from .localize import Localization
from .subject import ModelUnderTest, Subject, as_arrays
from .workflow import localize_subject


@dataclass(frozen=True)
class Diagnosis:
    """What the diagnosis found: the localization, and the fix search's outcome (if run)."""

    localization: Localization
    fix: MixedPrecisionFix | None = None

    @property
    def healthy(self) -> bool:
        return self.localization.healthy

    def text(self, written: Sequence[Path] = ()) -> str:
        """The report section's body; ``written`` are the report files, if any."""
        parts = [self.localization.text()]
        if self.fix is not None:
            parts.append(self.fix.text())
        elif not self.healthy:
            parts.append(messages.SEARCH_FIX_HINT)
        if written:
            parts.append(messages.REPORT_WRITTEN.format(paths=", ".join(str(p) for p in written)))
        return "\n".join(parts)


@quiet
def diagnose_failure(
    model: ModelUnderTest,
    inputs: Sequence[Any],
    *,
    rtol: float | None = None,
    atol: float | None = None,
) -> Diagnosis | None:
    """Diagnose ``model`` on ``inputs``; None when there is nothing to say.

    Nothing to say: the model is fp32, or every op matches fp32 and no fix search
    ran. ``rtol``/``atol`` are the tolerance the failed assertion used; without
    them the model's configured tolerance (or the preset) verifies the fix search.
    May raise; the caller decides how to report that.
    """
    if model.precision == "fp32":
        return None
    arrays = as_arrays(inputs)
    subject = Subject.from_model(model)
    localization = localize_subject(subject, arrays, model.precision, model.options.fp32_ops)
    fix = None
    if model.search_fix and not localization.healthy:
        if rtol is None or atol is None:
            resolved = resolve_tolerance(
                "fp16", configured_rtol=model.rtol, configured_atol=model.atol
            )
            rtol = resolved.rtol if rtol is None else rtol
            atol = resolved.atol if atol is None else atol
        sets = [("failing inputs", arrays), ("example inputs", subject.example_arrays)]
        fix = search_fix(subject, sets, rtol=rtol, atol=atol)
    if localization.healthy and fix is None:
        return None
    return Diagnosis(localization, fix)
