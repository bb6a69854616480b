"""The conformance harness really compares: a perturbed emulator must fail coremltools' tests.

Runs ``scripts/conformance.py`` in a subprocess over one real coremltools op test
(``iOS14/test_elementwise_binary.py -k add``, which runs at opset iOS15), once as
is and once with the emulator's outputs sign-flipped. If the macOS gates were
not lifted, both runs would "pass" without comparing anything.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from tools.conformance.defects import known_defect
from tools.conformance.plugin import fp16_ulps
from tools.conformance.results import (
    Seen,
    TestResult,
    categorize,
    op_key,
    read_jsonl,
)

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "conformance.py"
SUBSET = ["iOS14/test_elementwise_binary.py", "-k", "add and smoke"]


def _run(
    tmp_path: Path, *extra: str, subset: list[str] = SUBSET, precision: str = "all", suite: str = "ops"
) -> tuple[int, list[TestResult], str]:
    jsonl = tmp_path / "results.jsonl"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--suite", suite, "--precision", precision, "--nice", "0", "--jsonl", str(jsonl), *subset, *extra],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    return proc.returncode, read_jsonl(jsonl), proc.stdout + proc.stderr


def test_unperturbed_passes_and_perturbed_fails(tmp_path: Path) -> None:
    code, results, output = _run(tmp_path / "plain")
    assert code == 0, output
    assert sorted(r.precision for r in results) == ["fp16", "fp32"], output
    assert [r.category for r in results] == ["pass", "pass"], output
    assert {r.op for r in results} == {"add"}

    code, results, output = _run(tmp_path / "perturbed", "--perturb", "sign")
    assert code == 1, output
    assert [r.category for r in results] == ["fail", "fail"], output
    assert all("Not equal to tolerance" in r.error for r in results), output


#: A small fixed sample of coremltools' torch-frontend tests, at both precisions: the
#: packed-sequence lstm the emulator once failed (its converter builds the initial state
#: with another batch), a conv and a softmax. The whole suite runs by command
#: (docs/emulator-conformance.md).
TORCH_IDS = [
    "test_torch_ops.py::TestLSTMWithPackedSequence::test_lstm[compute_unit=ComputeUnit.CPU_ONLY-"
    "backend=('mlprogram', '{p}')-pack_batch_first=False-pad_batch_first=False-LSTM_batch_first=False-pad_value=-1]",
    "test_torch_ops.py::TestActivation::test_softmax[compute_unit=ComputeUnit.CPU_ONLY-"
    "backend=('mlprogram', '{p}')-frontend=TorchFrontend.TORCHSCRIPT-shape=(1, 5, 6)]",
    "test_torch_ops.py::TestConv::test_convolution2d[compute_unit=ComputeUnit.CPU_ONLY-"
    "backend=('mlprogram', '{p}')-frontend=TorchFrontend.TORCHSCRIPT-padding=same-stride=1-height=4-width=3-"
    "in_channels=3-out_channels=3-kernel_size=2-dilation=1-bias=True]",
]


def _torch_ids(tmp_path: Path, ids: list[str]) -> str:
    path = tmp_path / "ids.txt"
    path.write_text("\n".join(i.format(p=p) for i in ids for p in ("fp32", "fp16")) + "\n", encoding="utf-8")
    return str(path)


def test_torch_frontend_sample_passes_and_perturbed_fails(tmp_path: Path) -> None:
    subset = ["test_torch_ops.py", "--only-ids", _torch_ids(tmp_path, TORCH_IDS)]
    code, results, output = _run(tmp_path / "plain", subset=subset, suite="torch")
    assert code == 0, output
    assert sorted(r.precision for r in results) == ["fp16"] * 3 + ["fp32"] * 3, output
    assert {r.category for r in results} == {"pass"}, output
    ops = {r.op for r in results}
    assert any("lstm" in op for op in ops) and any("softmax" in op for op in ops), ops
    assert any("conv" in op for op in ops), ops

    subset = ["test_torch_ops.py", "--only-ids", _torch_ids(tmp_path, TORCH_IDS[1:2])]
    code, results, output = _run(tmp_path / "perturbed", "--perturb", "sign", subset=subset, suite="torch")
    assert code == 1, output
    assert [r.category for r in results] == ["fail", "fail"], output
    assert all("Not equal to tolerance" in r.error for r in results), output


#: fp16 lookup-table weights added to an fp32 input: the reference is rounded to fp16,
#: the program's add is fp32, so the strict fp32 comparison fails by up to half an fp16 ulp.
FP16_TYPED_SUBSET = ["iOS18/test_compression.py", "-k", "TestConstexprSparseToDense and stress and fp16"]


def test_fp16_typed_judgement_is_separate_and_can_fail(tmp_path: Path) -> None:
    code, results, output = _run(tmp_path / "plain", subset=FP16_TYPED_SUBSET, precision="fp32")
    assert code == 0, output
    assert len(results) == 3, output
    assert {r.category for r in results} == {"pass-fp16-typed"}, output
    assert all("fp16 ulp" in r.detail for r in results), output

    code, results, output = _run(
        tmp_path / "strict", "--fp16-typed-tolerance", "off", subset=FP16_TYPED_SUBSET, precision="fp32"
    )
    assert code == 1, output
    assert {r.category for r in results} == {"fail"}, output

    code, results, output = _run(
        tmp_path / "perturbed", "--perturb", "rel=5e-2", subset=FP16_TYPED_SUBSET, precision="fp32"
    )
    assert code == 1, output
    assert {r.category for r in results} == {"fail"}, output


@pytest.mark.parametrize(
    ("outcome", "seen", "expected"),
    [
        ("passed", Seen(predictions=1), "pass"),
        ("passed", Seen(predictions=1, fp16_resolution=True), "pass-fp16-typed"),
        ("passed", Seen(), "no-compare"),
        ("passed", Seen(emulator_error=True), "pass"),  # the test expected the error
        ("failed", Seen(predictions=1), "fail"),
        ("failed", Seen(emulator_error=True), "fail"),
        ("failed", Seen(emulator_error=True, refused=True), "refused"),
        ("failed", Seen(unsupported=True), "unsupported"),
        ("failed", Seen(predictions=1, upstream_defect=True), "upstream-defect"),
        ("failed", Seen(predictions=2, outputs_all_passed=True), "error"),
        ("failed", Seen(), "error"),
        ("skipped", Seen(), "skipped"),
    ],
)
def test_categorize(outcome: str, seen: Seen, expected: str) -> None:
    assert categorize(outcome, seen) == expected


def test_known_defects_need_their_symptom() -> None:
    nodeid = (
        "iOS16/test_image_resizing.py::TestCropResize::test_builder_to_backend_ios16[compute_unit="
        "ComputeUnit.CPU_ONLY-backend=BackendConfig(backend='mlprogram', precision='fp32', "
        "opset_version=<AvailableTarget.iOS16: 7>)-pad_value=1.0]"
    )
    assert known_defect(nodeid, "AssertionError: / Mismatched elements: 1 / 12 (8.33%)") is not None
    assert known_defect(nodeid, "AssertionError: / Mismatched elements: 2 / 12 (16.7%)") is None
    assert known_defect(nodeid.replace("'fp32'", "'fp16'"), "Mismatched elements: 1 / 12") is None


def test_fp16_ulps_scale_with_the_largest_value() -> None:
    expected = np.array([0.0, 1.0, 2.0], np.float32)
    one_ulp_at_two = float(np.spacing(np.float16(2.0)))
    assert fp16_ulps(expected + np.float32([0, 0, one_ulp_at_two]), expected) == 1.0
    assert fp16_ulps(expected + np.float32([one_ulp_at_two / 2, 0, 0]), expected) == 0.5


def test_op_key_drops_converter_casts() -> None:
    assert op_key(["cast", "add", "cast"], fallback="x") == "add"
    assert op_key(["cast"], fallback="x") == "cast"
    assert op_key(["less", "cond"], fallback="x") == "cond+less"
    assert op_key([], fallback="(TestFoo)") == "(TestFoo)"
