"""The emulator benchmark still runs: its quick mode must print a ratio for one family."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_emulator.py"


def test_quick_mode_prints_a_ratio_line() -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--family", "complex_div", "--precision", "fp32"],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output
    row = re.search(
        r"^\| complex_div \| fp32 \| (?P<torch>[\d.]+) \| (?P<emu>[\d.]+) \| (?P<ratio>[\d.]+) \| ok \|$",
        proc.stdout,
        re.MULTILINE,
    )
    assert row is not None, output
    ratio, emu, torch_us = float(row["ratio"]), float(row["emu"]), float(row["torch"])
    assert ratio > 0
    assert abs(ratio - emu / torch_us) <= 0.01 * ratio + 0.01  # printed values are rounded
    assert re.search(r"^- complex division fp32: [\d.]+ µs/call", proc.stdout, re.MULTILINE), output
