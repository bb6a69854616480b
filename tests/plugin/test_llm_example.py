"""The shipped LLM-decoder example (examples/llm_decoder), run as a user runs it: its own
files in a fresh process, nothing else on the path. Logits, stateful decode and 64-step
generation through both recipes pass at fp32 and fp16; the RMSNorm overflow passes at
fp32 and fails at fp16 naming ``pow`` at modeling_llama.py, with a verified fix."""

from __future__ import annotations

from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "llm_decoder"


@pytest.mark.zoo  # ten conversions and a fix search: 1-3 min on 2 shared cores
def test_the_llm_decoder_example_passes_and_its_overflow_names_pow_and_a_verified_fix(
    pytester: pytest.Pytester, shared_cache: Path
) -> None:
    for path in EXAMPLE.glob("*.py"):
        pytester.path.joinpath(path.name).write_text(path.read_text())
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--coreml-cache-dir={shared_cache}", "-v", "--coreml-search-fix"
    )
    result.assert_outcomes(passed=9, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*test_decoder.py::test_generation[[]fp16-states[]] PASSED*",
            "*test_decoder.py::test_generation[[]fp16-explicit[]] PASSED*",
            "*test_overflow.py::test_rmsnorm_overflow[[]fp32[]] PASSED*",
            "*test_overflow.py::test_rmsnorm_overflow[[]fp16[]] FAILED*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*first non-finite op: pow * modeling_llama.py:*: variance = hidden_states.pow(2)*",
            "hint: float16 overflow: pow *",
            "mixed-precision fix: keep * in fp32 (*); verified by re-conversion on *",
        ]
    )
