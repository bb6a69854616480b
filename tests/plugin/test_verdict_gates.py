"""Verdict gates through the plugin: precedence (argument -> marker -> CLI -> ini -> preset),
errors naming their source, the failure's metrics table, and one wrong op caught by
``assert_parity`` (real conversions, the real emulator)."""

from __future__ import annotations

import pytest

from pytest_coreml_parity import messages
from pytest_coreml_parity.verdict import PRESETS

from .conftest import SCALE_CONFTEST

KNOWN = ", ".join(PRESETS)

#: relu(x) * 2 on linspace(-1, 1, 6): exact at fp32 (SNR inf), ~70 dB at fp16.
GATED = """
import pytest
from pytest_coreml_parity import assert_parity

def test_plain(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)

@pytest.mark.coreml(min_snr=200)
def test_marked(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)

@pytest.mark.coreml(min_snr=200)
def test_argument_wins(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs, min_snr="off")
"""


def _escape(text: str) -> str:
    return "".join(f"[{c}]" if c in "[]*?" else c for c in text)


def test_marker_gate_fails_fp16_with_a_metrics_table_and_the_argument_wins(
    pytester: pytest.Pytester, run
) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(test_gated=GATED)
    result = run("-v")
    result.assert_outcomes(passed=5, failed=1)
    result.stdout.fnmatch_lines(["*test_marked[[]fp32[]] PASSED*", "*test_marked[[]fp16[]] FAILED*"])
    result.stdout.fnmatch_lines(
        [
            "E * metrics (fp16 preset, min_snr configured):",
            "E *   elements * 0/6 off * pass",
            "E *   SNR (dB) * >= 200  " + messages.GATE_FAILED,
        ]
    )


@pytest.mark.parametrize("source", ["cli", "ini"])
def test_command_line_and_ini_gates_apply_and_the_marker_beats_them(
    pytester: pytest.Pytester, run, source: str
) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        test_gated="""
        import pytest
        from pytest_coreml_parity import assert_parity

        def test_plain(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs)

        @pytest.mark.coreml(min_snr="fp16=off")
        def test_marked_off(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs)
        """
    )
    args: list[str] = ["--coreml-precisions=fp16"]
    if source == "cli":
        args.append("--coreml-min-snr=fp16=200,fp32=off")
    else:
        pytester.makeini("[pytest]\ncoreml_min_snr = 200\n")
    result = run("-v", *args)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*test_plain[[]fp16[]] FAILED*", "*test_marked_off[[]fp16[]] PASSED*"])


@pytest.mark.parametrize(
    ("args", "ini", "message"),
    [
        (
            ["--coreml-min-cosine=1.5"],
            "",
            messages.BAD_GATE_SETTING.format(
                where="--coreml-min-cosine", what="min_cosine", allowed="a number in [0, 1]", value="1.5"
            ),
        ),
        (
            [],
            "coreml_min_snr = loud",
            messages.BAD_GATE_SETTING.format(
                where="tox.ini [coreml_min_snr]", what="min_snr", allowed="a finite number >= 0", value="loud"
            ),
        ),
    ],
    ids=["cli", "ini"],
)
def test_bad_gate_on_command_line_or_ini_is_a_usage_error_naming_it(
    pytester: pytest.Pytester, run, args: list[str], ini: str, message: str
) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile("def test_ids(coreml_model):\n    pass\n")
    if ini:
        pytester.makeini(f"[pytest]\n{ini}\n")
    result = run(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{_escape(message)}"])


def test_bad_gate_in_marker_or_argument_names_it(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        test_marked="""
        import pytest

        @pytest.mark.coreml(min_top1=2)
        def test_y(coreml_model):
            pass
        """,
        test_arg="""
        from pytest_coreml_parity import assert_parity

        def test_z(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs, min_psnr=-3)
        """,
    )
    result = run("--coreml-precisions=fp16", "--continue-on-collection-errors")
    result.assert_outcomes(failed=1, errors=1)
    marker = messages.BAD_GATE_SETTING.format(
        where="@pytest.mark.coreml in test_marked.py::test_y: min_top1",
        what="min_top1",
        allowed="a number in [0, 1]",
        value=2,
    )
    argument = messages.BAD_GATE.format(
        where="assert_parity(min_psnr=...)", what="min_psnr", allowed="a finite number >= 0 (dB)", known=KNOWN, value=-3
    )
    result.stdout.fnmatch_lines([f"*{_escape(marker)}*"])
    result.stdout.fnmatch_lines([f"*SettingError: {_escape(argument)}"])


def test_one_wrong_op_fails_through_assert_parity(pytester: pytest.Pytester, run) -> None:
    """The converted program lacks one op of the torch model (its attention scale), at
    both precisions: the traced graph (what converts) takes the branch without it."""
    pytester.makeconftest(
        """
        import math
        import pytest
        import torch

        class Attention(torch.nn.Module):
            def __init__(self):
                super().__init__()
                g = torch.Generator().manual_seed(0)
                self.qkv = torch.nn.Parameter(torch.randn(16, 48, generator=g) * 0.5)

            def forward(self, x):
                q, k, v = (x @ self.qkv).split(16, -1)
                s = q @ k.transpose(-2, -1)
                if not torch.jit.is_tracing():  # the conversion drops the scale
                    s = s / math.sqrt(16)
                return torch.softmax(s, -1) @ v

        @pytest.fixture
        def torch_model():
            return Attention().eval()

        @pytest.fixture
        def example_inputs():
            return (torch.randn(1, 8, 16, generator=torch.Generator().manual_seed(1)),)
        """
    )
    pytester.makepyfile(
        test_attention="""
        from pytest_coreml_parity import assert_parity

        def test_parity(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs)
        """
    )
    result = run("-v")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(["E * metrics (fp32 preset):", "E *   elements * " + messages.GATE_FAILED])
    result.stdout.fnmatch_lines(["E * metrics (fp16 preset):", "E *   elements * " + messages.GATE_FAILED])
