"""Per-profile verdicts: does the verdict change with how a device executes fp16?

The emulator's execution profiles bracket the devices (docs/emulator.md, "Execution
profiles"): ``typed`` stores every fp16-typed op output as binary16 (the declared
types); ``fp16-sequential`` also accumulates fp16 matmul/linear/einsum left to right
in fp16 (Apple's Core AI interpreter); ``float32`` holds fp16-typed values in float32
(Core ML's CPU may run fp16 ops in fp32). One run of the same program and inputs
under each, judged by the test's own gates, says which devices would agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..emulator import FP16_EXECUTION_MODES, emulate
from ..verdict import Gates, as_pair, judge_pair

#: What each profile stands for, in report order.
PROFILE_MEANING: dict[str, str] = {
    "typed": "fp16 storage (declared types; the default)",
    "fp16-sequential": "fp16 storage + fp16 matmul accumulation (Core AI's interpreter)",
    "float32": "fp16 ops run in fp32 (Core ML's CPU may)",
}
#: A passing test is "near its gate" at this fraction of the allowed error or more.
NEAR_GATE = 0.5
#: float16's largest finite value.
FP16_MAX = 65504.0


@dataclass(frozen=True)
class ProfileVerdict:
    profile: str
    passed: bool
    #: The worst error over the allowed error, over every output (inf: non-finite).
    ratio: float
    #: Outputs the program types fp16 whose torch value is past 65504 (name, torch's
    #: largest magnitude): no profile can hold them, float32 included.
    storage_overflow: tuple[tuple[str, float], ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "profile": self.profile, "passed": self.passed, "ratio": self.ratio if math.isfinite(self.ratio) else None,
            "fp16_outputs_past_max": [{"output": n, "torch_max_abs": peak} for n, peak in self.storage_overflow],
        }  # fmt: skip


def profile_verdicts(
    mlmodel: Any,
    feed: Mapping[str, Any],
    output_names: Sequence[str],
    expected: Sequence[np.ndarray],
    gates: Gates,
    *,
    function: str = "main",
) -> list[ProfileVerdict]:
    """The verdict under every emulator profile, on ``feed`` against torch's ``expected``."""
    found = []
    order = [p for p in PROFILE_MEANING if p in FP16_EXECUTION_MODES]
    for profile in order:
        with np.errstate(over="ignore"):  # float32-held values past 65504 become fp16 inf outputs
            outputs = emulate(mlmodel, feed, function_name=function, fp16_execution=profile)
        passed, worst = True, 0.0
        storage: list[tuple[str, float]] = []
        for name, want in zip(output_names, expected, strict=True):
            got = np.asarray(outputs[name])
            if got.dtype == np.float16:  # the program's output type: float32 cannot widen it
                peak = _finite_peak(want)
                if peak > FP16_MAX:
                    storage.append((name, peak))
            got = got.astype(np.float32) if got.dtype == np.float16 else got
            try:
                g, e = as_pair(got.reshape(np.shape(want)), want)
            except ValueError:
                passed, worst = False, math.inf
                continue
            judgement = judge_pair(g, e, gates)
            passed = passed and judgement.passed
            ratio = judgement.worst_ratio()
            worst = max(worst, math.inf if ratio is None else ratio)
        found.append(ProfileVerdict(profile, passed, worst, tuple(storage)))
    return found


def _finite_peak(values: Any) -> float:
    array = np.asarray(values, dtype=np.float64)
    finite = array[np.isfinite(array)]
    return float(np.abs(finite).max()) if finite.size else 0.0


def profiles_text(verdicts: Sequence[ProfileVerdict], *, failed: bool) -> str:
    what = "the failing inputs" if failed else "the last inputs (passed near its gate)"
    lines = [f"emulator profiles on {what} (docs/emulator.md, 'Execution profiles'):"]
    for v in verdicts:
        ratio = "non-finite" if math.isinf(v.ratio) else f"{v.ratio:.3g}"
        lines.append(f"  {v.profile:<16} {'PASS' if v.passed else 'FAIL'}  err/allowed {ratio:<10} {PROFILE_MEANING[v.profile]}")
    lines.append(f"  => {conclusion(verdicts)}")
    return "\n".join(lines)


def conclusion(verdicts: Sequence[ProfileVerdict]) -> str:
    by = {v.profile: v.passed for v in verdicts}
    if all(by.values()):
        return "every profile passes: fp16 storage and accumulation order do not change the verdict"
    if not any(by.values()):
        storage = next((v.storage_overflow for v in verdicts if v.storage_overflow), ())
        if storage:  # the output itself is fp16: every profile stores it as declared
            name, peak = storage[0]
            return (
                f"every profile fails, float32 included, because output {name!r} is typed fp16 in the program and "
                f"torch's value reaches {peak:.6g}, past fp16's 65504: no device can hold it; the ops producing it "
                "need fp32 too (the diagnosis's fix), and input_dtypes='fp32' makes the I/O fp32"
            )
        return "every profile fails, float32 included: not an fp16 effect (look at the converter, the weights or the diagnosis)"
    if by.get("float32") and not by.get("typed"):
        return "fp16 storage causes it: a device running these ops in fp32 (Core ML's CPU) would pass; GPU / Neural Engine fp16 would not"
    if by.get("typed") and not by.get("fp16-sequential"):
        return "fp16 accumulation diverges: a device accumulating matmuls in fp16 (Core AI's interpreter) would fail"
    agree = ", ".join(p for p, ok in by.items() if ok)
    return f"the profiles disagree: passes under {agree} only"


__all__ = ["NEAR_GATE", "PROFILE_MEANING", "ProfileVerdict", "conclusion", "profile_verdicts", "profiles_text"]
