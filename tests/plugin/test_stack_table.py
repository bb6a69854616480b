"""The stack table: a third stack plugs in with one row, no edit to an existing module.

The toy stack below is written here, in the test: it converts like Core ML (the same
capture, key and cache) but runs on its own runner, the emulator under the float32
profile, and names itself "Toy ML" in failures. Registering it is one row in
``stacks.STACKS``; the plugin then parametrizes it (``toy-fp16``), binds through it,
skips it with its reason, and words its failures with it.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from pytest_coreml_parity import stacks
from pytest_coreml_parity.applies import only, stacks_of
from pytest_coreml_parity.errors import SettingError
from pytest_coreml_parity.settings import parse_targets

TOY_STACK = '''
from pytest_coreml_parity import stacks
from pytest_coreml_parity.backends import EmulatorBackend
from pytest_coreml_parity.stacks.coreml import CoreMLStack


class Float32Emulator(EmulatorBackend):
    """The emulator pinned to the float32 profile (the session's profile does not apply)."""

    def __init__(self):
        super().__init__("float32")

    def with_profile(self, profile):
        return self


class ToyStack(CoreMLStack):
    """Core ML's conversion, run by the emulator at float32: a stack of its own."""

    name = "toy"
    title = "Toy ML"
    unavailable = "the toy stack cannot run here: {reason}"
    parity_header = "Toy ML output {output} does not match PyTorch at {precision} on the {backend} backend"

    def skip_reason(self, precision):
        return None if precision in ("fp32", "fp16") else f"the toy stack runs fp32 and fp16, not {precision}"

    def resolve_runner(self, choice):
        return Float32Emulator(), None


stacks.register("toy", "conftest:ToyStack")
'''

CONFTEST = TOY_STACK + '''
import pytest
import torch


class Overflow(torch.nn.Module):
    def forward(self, x):
        return x * 1000.0 * 1000.0 / 1000.0 / 1000.0


@pytest.fixture
def torch_model():
    return Overflow().eval()


@pytest.fixture
def example_inputs():
    return (torch.full((2, 3), 100.0),)
'''

TESTS = """
from pytest_coreml_parity import assert_parity


def test_parity(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)


def test_runner(coreml_model):
    print("RUNNER", coreml_model, coreml_model.backend.name, coreml_model.backend.profile)
"""


def test_a_third_stack_is_one_row(pytester: pytest.Pytester) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_toy=TESTS)
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-n", "0", "-s", "--coreml-targets=coreml,toy",
        "--coreml-precisions=fp16,mixed", "-rs", "-v",
    )  # fmt: skip
    # Core ML overflows at fp16 (1e8 > 65504); the toy's float32 profile does not.
    result.assert_outcomes(passed=3, failed=1, skipped=4)
    result.stdout.fnmatch_lines(
        [
            "*test_parity?coreml-fp16?*FAILED*",
            "*test_parity?toy-fp16?*PASSED*",
            "*precision 'mixed' is Core AI only*",
            "*the toy stack runs fp32 and fp16, not mixed*",
        ]
    )
    assert re.search(r"RUNNER CoreMLModel\(Overflow, toy-fp16, emulator\) emulator float32", result.stdout.str())
    assert "coreml-parity: targets coreml, toy" in result.stdout.str()


def test_an_unknown_stack_is_named_with_the_known_ones() -> None:
    with pytest.raises(SettingError, match=r"'toy'.*coreml, coreai"):
        parse_targets("coreml,toy", "--coreml-targets")


def test_a_registered_stack_is_accepted_and_resolved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "toy_stack_module.py").write_text(TOY_STACK.replace("conftest:", "toy_stack_module:"))
    monkeypatch.syspath_prepend(str(tmp_path))
    try:
        __import__("toy_stack_module")
        assert parse_targets("coreml,toy", "--coreml-targets") == ("coreml", "toy")
        toy = stacks.stack("toy")
        assert (toy.name, toy.title) == ("toy", "Toy ML")
        assert stacks.stack("coreml").layout is toy.layout  # Core ML's cache entries
        # which settings it takes is its own column (Stack.ignores): Core ML's, inherited
        assert stacks_of("target") == ("coreml", "toy")
        assert stacks_of("min_token_match") == ("coreml", "toy")  # it wraps decoders too
        assert only()["target"] == ("coreml", "toy")
    finally:
        stacks.unregister("toy")
    with pytest.raises(ValueError, match="unknown stack 'toy'"):
        stacks.stack("toy")


def test_no_stack_name_is_compared_outside_the_table_modules() -> None:
    """``== "coreai"`` and friends live in no module: callers ask the stack object."""
    src = Path(stacks.__file__).resolve().parents[1]
    pattern = re.compile(r"""(==|!=|\bin)\s*\(?["'](coreml|coreai)["']|["'](coreml|coreai)["']\s*(==|!=|in\b)""")
    found = subprocess.run(
        ["grep", "-rnE", pattern.pattern, str(src), "--include=*.py"], capture_output=True, text=True
    ).stdout
    assert found == ""


def test_which_settings_a_stack_takes_is_its_column() -> None:
    """Core AI ignores Core ML's recipe and runner, and assert_generation's gates (it
    wraps no decoders); every other setting applies to both."""
    assert stacks_of("target") == ("coreml",)
    assert stacks_of("min_token_match") == ("coreml",)
    assert stacks_of("min_snr") == ("coreml", "coreai")
    assert stacks_of("coreml_convert") == ("coreml",)
