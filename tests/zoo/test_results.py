"""Reading the collector's records: verdicts, stages, causes and timings per precision."""

from __future__ import annotations

from pathlib import Path

import pytest
from tools.zoo.registry import get
from tools.zoo.render import BEGIN, END, read_json, write_json, write_markdown
from tools.zoo.results import cause_line, failure_lines, model_result

pytestmark = pytest.mark.zoo

CONVERT = (
    "coremltools could not convert VisionTransformer at fp32 (target iOS16): op "
    "'_native_multi_head_attention': NotImplementedError: PyTorch convert function for op "
    "'_native_multi_head_attention' not implemented."
)
PARITY = """\
    def test_parity(coreml_model, example_inputs):
>       assert_parity(coreml_model, *example_inputs)
E       pytest_coreml_parity.errors.ParityFailure: Core ML output 0 does not match PyTorch at fp32 on the emulator backend
E         shape (1, 1000); mismatched elements: 109 / 1000 (10.9%)
"""


def _record(test: str, precision: str, when: str, outcome: str, text: str = "", **properties: object) -> dict[str, object]:
    return {
        "nodeid": f"test_vit_b_16.py::{test}[{precision}]", "when": when, "outcome": outcome,
        "duration": 5.0, "text": text, "properties": properties,
    }  # fmt: skip


PAYLOAD = {
    "build_seconds": {"vit_b_16": 1.5},
    "records": [
        _record("test_parity", "fp32", "setup", "passed"),
        _record("test_parity", "fp32", "call", "failed", PARITY),
        _record("test_parity", "fp16", "setup", "passed"),
        _record("test_parity", "fp16", "call", "failed", CONVERT),
        _record("test_speed", "fp32", "call", "passed", speed={"emulator_ms": 3.0, "torch_ms": 2.0, "ratio": 1.5}),
        {**_record("test_parity", "fp32", "call", "failed", CONVERT), "nodeid": "test_other.py::test_parity[fp32]"},
    ],
}


def test_a_failure_gets_its_stage_and_first_meaningful_line() -> None:
    result = model_result(get("vit_b_16"), PAYLOAD, "test_vit_b_16.py")
    fp32, fp16 = result.precisions["fp32"], result.precisions["fp16"]
    assert (fp32.verdict, fp32.stage) == ("fail", "parity")
    assert fp32.cause == "Core ML output 0 does not match PyTorch at fp32 on the emulator backend"
    assert "109 / 1000" in fp32.detail
    assert (fp16.verdict, fp16.stage, fp16.cause) == ("fail", "convert", CONVERT)
    assert fp32.convert_s == 3.5  # setup minus the build, in the first test only
    assert fp16.convert_s == 5.0
    assert (fp32.emulator_ms, fp32.torch_ms, fp32.ratio) == (3.0, 2.0, 1.5)
    assert fp16.ratio is None


def test_cause_lines_skip_bare_exception_names_and_are_cut() -> None:
    assert cause_line(failure_lines("E   ValueError:\nE   the reason")) == "the reason"
    assert cause_line(["Failed: " + "x" * 500]).endswith("…")
    assert len(cause_line(["x" * 500])) == 240


def test_markdown_keeps_the_hand_written_page_and_json_round_trips(tmp_path: Path) -> None:
    result = model_result(get("vit_b_16"), PAYLOAD, "test_vit_b_16.py")
    meta = {"date": "2026-12-07", "precisions": ["fp32", "fp16"], "versions": {"torch": "2.13.0"}}
    write_json(tmp_path / "zoo.json", [result], meta)
    results, read_meta = read_json(tmp_path / "zoo.json")
    assert results == [result] and read_meta == meta
    page = tmp_path / "zoo.md"
    page.write_text(f"# Zoo\n\nintro\n\n{BEGIN}\nold\n{END}\n\nafter\n")
    write_markdown(page, results, meta)
    text = page.read_text()
    assert text.startswith("# Zoo\n\nintro\n") and text.endswith("\nafter\n") and "old" not in text
    assert "| `vit_b_16` | torchvision | vision transformer | fail (parity) [1] | fail (convert) [2] |" in text
    assert "1. Core ML output 0 does not match PyTorch at fp32 on the emulator backend; mismatched elements: 109 / 1000" in text
    assert "| fp16 | 1 | 0 | 0 | 1 | 0 | 0 | 0 | – (0 timed) | – |" in text
