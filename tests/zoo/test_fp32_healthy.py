"""Healthy real models pass the fp32 preset through the plugin's default path.

``timm/mobilenetv4_conv_small`` failed the old fp32 preset (rtol 1e-4, atol 1e-5) by one
element of 1000, 2.0e-5 off at SNR 103 dB; ``timm/levit_128s`` is the issue's example
(109 of 1000 elements outside it on other inputs, at SNR 93 dB). The scale-aware preset
(docs/tolerances.md, "The fp32 preset") passes both; the known fp32 converter bugs still
fail it (tests/plugin/test_fp32_verdict.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tools.zoo.registry import get
from tools.zoo.run import run_group

pytestmark = pytest.mark.zoo

HEALTHY = ("timm/mobilenetv4_conv_small", "timm/levit_128s")


def test_healthy_zoo_models_pass_fp32(tmp_path: Path) -> None:
    results = run_group([get(name) for name in HEALTHY], precisions=("fp32",), workdir=tmp_path, timeout=1200)
    log = (tmp_path / "pytest.log").read_text()[-3000:] if (tmp_path / "pytest.log").exists() else ""
    assert [result.name for result in results] == list(HEALTHY)
    for result in results:
        slot = result.precisions["fp32"]
        assert slot.verdict == "pass", (
            f"{result.name}: {slot.verdict} {slot.stage}: {slot.cause}\n{slot.detail}\n{result.harness_error}\n{log}"
        )
