"""A conversion failure in the disk cache is keyed like a success, registered converter
ops included: a user's ``register_torch_op`` fix converts at once, and a failure served
from the cache says so, with its date and how to retry (real conversions, pytester)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_coreml_parity import messages

Run = Callable[..., pytest.RunResult]

TEST = '''
import pytest
import torch
from pytest_coreml_parity import assert_parity


class Packed(torch.nn.Module):
    def forward(self, positions):
        return torch.diff(positions, dim=-1) * 1.5


@pytest.fixture
def torch_model():
    return Packed().eval()


@pytest.fixture
def example_inputs():
    return (torch.tensor([[0.0, 1.0, 2.0, 0.0, 1.0]]),)


def test_packed(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
'''

#: The user's own fix, as in a conftest: a lowering registered with coremltools.
FIX = '''
from coremltools.converters.mil.frontend.torch import register_torch_op
from coremltools.converters.mil.frontend.torch.ops import _get_inputs
from coremltools.converters.mil.mil import Builder as mb
from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY


def diff(context, node):
    x = _get_inputs(context, node)[0]
    n = x.shape[-1]
    high = mb.slice_by_index(x=x, begin=[0, 1], end=[1, n])
    low = mb.slice_by_index(x=x, begin=[0, 0], end=[1, n - 1])
    context.add(mb.sub(x=high, y=low, name=node.name))


@pytest.fixture(autouse=True, scope="session")
def _diff_lowering():
    register_torch_op(diff)
    yield
    del _TORCH_OPS_REGISTRY.name_to_func_mapping["diff"]
'''


def test_a_cached_failure_says_so_and_a_registered_fix_converts(
    run: Run, pytester: pytest.Pytester, tmp_path: Path
) -> None:
    pytester.makepyfile(test_packed=TEST)
    cache = f"--coreml-cache-dir={tmp_path / 'cache'}"
    args = (cache, "--coreml-shims=off", "--coreml-precisions=fp32")
    first = run(*args)
    first.assert_outcomes(failed=1)
    assert "served from the disk cache" not in first.stdout.str()

    again = run(*args)
    again.assert_outcomes(failed=1)
    note = messages.CACHED_FAILURE.split("{date}")[0]
    again.stdout.fnmatch_lines(["*op 'diff'*", f"{note}*, with the same model*"])
    text = again.stdout.str()
    assert re.search(r"failed on \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", text)
    assert "--coreml-cache-dir=none" in text and str(tmp_path / "cache") in text

    # The user registers a lowering in conftest.py: a new key, converted, passes.
    pytester.makeconftest("import pytest\n" + FIX)
    fixed = run(*args)
    fixed.assert_outcomes(passed=1)
    fixed.stdout.fnmatch_lines(["*1 converted, 0 from disk cache*"])
