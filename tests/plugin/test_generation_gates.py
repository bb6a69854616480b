"""assert_generation's gates end to end on a tiny Llama: the marker, the command line and
the ini set them, with the argument > marker > command line > ini > preset precedence.

The model is the RMSNorm-overflow Llama of ``test_decoders.py`` (embeddings x 1e4): at
fp16 its tokens diverge, so the preset fails it and a gate turned off lets it pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.real_models import import_transformers

from .test_decoders import OVERFLOW

import_transformers()

GATED = OVERFLOW.replace(
    '''@pytest.mark.coreml(precisions=["fp16"])
def test_generation(coreml_model, example_inputs):
    assert_generation(coreml_model, example_inputs[0], max_new_tokens=4)
''',
    '''@pytest.mark.coreml(precisions=["fp16"])
def test_cli_beats_ini(coreml_model, example_inputs):
    assert coreml_model.gates["min_token_match"] == {"fp16": "off"}
    assert_generation(coreml_model, example_inputs[0], max_new_tokens=4)


@pytest.mark.coreml(precisions=["fp16"], min_token_match=1.0)
def test_argument_beats_marker(coreml_model, example_inputs):
    assert_generation(coreml_model, example_inputs[0], max_new_tokens=4, min_token_match="off")


@pytest.mark.coreml(precisions=["fp16"], min_token_match=1.0)
def test_marker_beats_cli(coreml_model, example_inputs):
    assert_generation(coreml_model, example_inputs[0], max_new_tokens=4)


@pytest.mark.coreml(precisions=["fp16"])
def test_bad_argument(coreml_model, example_inputs):
    assert_generation(coreml_model, example_inputs[0], max_new_tokens=4, min_token_match=2)
''',
)


def test_generation_gates_follow_the_one_precedence(pytester: pytest.Pytester, shared_cache: Path) -> None:
    assert GATED != OVERFLOW
    pytester.makepyfile(test_gated=GATED)
    pytester.makeini("[pytest]\ncoreml_min_token_match = 1\n")
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", f"--coreml-cache-dir={shared_cache}", "-n", "0", "-v",
        "--coreml-min-token-match=fp16=off", "--coreml-min-logits-cosine=off",
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=2)
    result.stdout.fnmatch_lines(
        [
            "*test_cli_beats_ini*PASSED*",
            "*test_argument_beats_marker*PASSED*",
            "*test_marker_beats_cli*FAILED*",
            "*test_bad_argument*FAILED*",
        ],
        consecutive=False,
    )
    text = result.stdout.str()
    assert "token match 0." in text and "new tokens; gate 1)" in text  # the marker's gate judged
    assert "assert_generation(min_token_match=...): min_token_match must be a number in [0, 1]" in text
