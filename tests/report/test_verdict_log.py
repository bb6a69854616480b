"""Which call the verdict log keeps per output (real verdicts, no model)."""

from __future__ import annotations

import numpy as np

from pytest_coreml_parity.verdict import judge, preset
from pytest_coreml_parity.verdict_log import VerdictLog


def _call(log: VerdictLog, error: float) -> None:
    want = np.linspace(1.0, 2.0, 8, dtype=np.float32)
    got = want + np.float32(error)
    log.start_call()
    log.add("y", judge(got, want, preset("fp32")), (want,), [got], [want])


def test_keeps_the_passing_call_nearest_to_failing_then_the_last_failure() -> None:
    log = VerdictLog(keep_arrays=True)
    _call(log, 1e-6)
    _call(log, 5e-5)  # nearer the fp32 tolerance
    _call(log, 1e-7)
    assert log.kept["y"].call == 2 and log.summary()[0]["verdict"] == "pass"
    _call(log, 1.0)  # fails
    _call(log, 1e-7)  # a later pass does not replace a failure
    _call(log, 0.5)  # the last failure decides (Hypothesis replays the shrunk example last)
    kept = log.kept["y"]
    assert kept.call == 6 and kept.actual is not None
    row = log.summary()[0]
    assert row["verdict"] == "fail" and row["failed_gates"] == ["elements", "min_snr"] and row["call"] == 6
    assert abs(row["metrics"]["max_abs"] - 0.5) < 1e-6
    assert log.calls == 6


def test_without_dumps_no_arrays_are_kept() -> None:
    log = VerdictLog()
    _call(log, 1.0)
    assert log.kept["y"].actual is None and log.kept["y"].inputs == ()
