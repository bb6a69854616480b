"""What one test's ``assert_parity`` calls judged, kept for the CI outputs.

The plugin hangs a :class:`VerdictLog` on a test's ``coreml_model`` when a CI output
wants it (``--junitxml``, ``--coreml-report``, ``--coreml-summary``, ``--coreml-dump``);
``assert_parity`` adds each call to it, the way the headroom log collects recordings.
It keeps, per output, the deciding call (the last failing one, which under Hypothesis is
the shrunk example; else the call with the largest error over the allowed error) and, for dumps, that call's arrays; metrics are computed once, at
the end of the test, for the kept calls only, so a Hypothesis test with thousands of
examples pays one comparison's metrics.

Sits beside :mod:`.verdict` (the judging layer): it imports nothing above it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from .verdict import GATES, Judgement


@dataclass
class Kept:
    """One output's worst call so far."""

    output: str
    judgement: Judgement
    ratio: float
    #: The call's Core ML inputs (as prepared) and both sides' flat outputs (every output).
    inputs: tuple[Any, ...]
    actual: Any
    expected: Any
    call: int


@dataclass
class VerdictLog:
    """Per output label, the worst judged call of one test."""

    calls: int = 0
    kept: dict[str, Kept] = field(default_factory=dict)
    #: Whether the kept calls' arrays are wanted (golden dumps).
    keep_arrays: bool = False

    def add(
        self,
        output: str,
        judgement: Judgement,
        inputs: tuple[Any, ...],
        actual: Any,
        expected: Any,
        ratio: float | None = None,
    ) -> None:
        """Record one output of one call (``ratio``: error over allowed, if known)."""
        if ratio is None:
            ratio = judgement.worst_ratio()
            if ratio is None:  # non-finite somewhere: rank it above every finite call
                ratio = math.inf
        old = self.kept.get(output)
        # The latest failure decides (with Hypothesis, the shrunk example runs last);
        # among passing calls, the one nearest to failing.
        worse = old is None or not judgement.passed or (old.judgement.passed and ratio > old.ratio)
        if worse:
            keep = self.keep_arrays
            self.kept[output] = Kept(
                output, judgement, ratio, inputs=inputs if keep else (), actual=actual if keep else None,
                expected=expected if keep else None, call=self.calls,
            )  # fmt: skip

    def start_call(self) -> None:
        """A new ``assert_parity`` call begins (the kept rows name their call, from 1)."""
        self.calls += 1

    def summary(self) -> list[dict[str, Any]]:
        """Per output: the verdict, the failed and judged gates, the gate values and metrics."""
        rows = []
        for kept in self.kept.values():
            j = kept.judgement
            m = j.metrics
            gates = {"rtol": j.gates.rtol, "atol": j.gates.atol}
            gates.update({name: getattr(j.gates, name) for name in GATES})
            rows.append(
                {
                    "output": kept.output,
                    "verdict": "pass" if j.passed else "fail",
                    "failed_gates": list(j.failed),
                    "judged_gates": list(j.judged),
                    "gates": gates,
                    "allowed": j.allowed,
                    "mismatched": j.n_mismatched,
                    "error_ratio": kept.ratio,
                    "call": kept.call,
                    "metrics": {
                        "size": m.size,
                        "finite": m.finite,
                        "max_abs": m.max_abs,
                        "max_rel": m.max_rel,
                        "rms": m.rms,
                        "peak": m.peak,
                        "cosine": m.cosine,
                        "psnr": m.psnr,
                        "snr": m.snr,
                        "top1": m.top1,
                        "top5": m.top5,
                    },
                }
            )
        return rows


__all__ = ["Kept", "VerdictLog"]
