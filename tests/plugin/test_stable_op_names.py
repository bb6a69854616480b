"""Pinned fixes by names that survive edits to ``forward``: the fix search prints stable
names (submodule path:torch op kind), a pin of them still works after a line is added
above the pinned op, and a pinned name that matches nothing is an error listing the
nearest names (real conversions, the real fix search)."""

from __future__ import annotations

import re

import pytest

MODEL = """
import pytest
import torch


class Norm(torch.nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6)


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.lin = torch.nn.Linear(8, 8)
        self.norm = Norm()

    def forward(self, x):
        return self.norm(self.lin(x))


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()

    def forward(self, x):
{edit}        return self.block(x * 1000.0)


@pytest.fixture
def torch_model():
    return Net().eval()


@pytest.fixture
def example_inputs():
    torch.manual_seed(1)
    return (torch.randn(4, 8),)
"""

#: An edit above the pinned ops: two more ops (x unchanged), so every later debug name shifts.
EDIT = "        x = torch.relu(x) + torch.clamp(x, max=0.0)\n"

TEST = """
import pytest
from pytest_coreml_parity import assert_parity

{marker}
def test_norm(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
"""


def test_a_pinned_fix_survives_an_edit_above_the_pinned_op(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(MODEL.format(edit=""))
    pytester.makepyfile(test_norm=TEST.format(marker='@pytest.mark.coreml(precisions=["fp16"])'))
    found = run("--coreml-search-fix")
    found.assert_outcomes(failed=1)
    pins = re.findall(r"@pytest\.mark\.coreml\(fp32_ops=\[(.*?)\]\)", found.stdout.str())
    assert pins, found.stdout.str()
    names = re.findall(r"'([^']*)'", pins[0])
    assert names and all(n.startswith("block.norm:") for n in names), names  # stable names
    marker = f'@pytest.mark.coreml(precisions=["fp16"], fp32_ops=[{pins[0]}])'
    pytester.makeconftest(MODEL.format(edit=EDIT))  # forward edited above the pinned ops
    pytester.makepyfile(test_norm=TEST.format(marker=marker))
    run().assert_outcomes(passed=1)
    pytester.makepyfile(test_norm=TEST.format(marker='@pytest.mark.coreml(precisions=["fp16"])'))
    run().assert_outcomes(failed=1)  # the edited model still needs the pin


def test_a_pinned_name_that_matches_nothing_lists_the_nearest(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(MODEL.format(edit=""))
    marker = '@pytest.mark.coreml(precisions=["fp16"], fp32_ops=["block.norm:pwo", "17"])'
    pytester.makepyfile(test_norm=TEST.format(marker=marker))
    result = run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["*fp32_ops [[]'block.norm:pwo'[]] match no op of this program*"
         "'block.norm:pwo': nearest [[]'block.norm:pow'*"]
    )


#: The README's complex division: every op is in the top module's own ``forward``, which
#: has no submodule path, so its stable names carry their source line.
TOP_LEVEL = """
import pytest
import torch


class ComplexDiv(torch.nn.Module):
    def forward(self, a):
{edit}        ra, ia, rb, ib = a.unbind(-1)
        den = rb * rb + ib * ib
        return torch.stack([(ra * rb + ia * ib) / den, (ia * rb - ra * ib) / den], -1)


@pytest.fixture
def torch_model():
    return ComplexDiv().eval()


@pytest.fixture
def example_inputs():
    return (torch.tensor([[300.0, 1.0, 300.0, 2.0], [1.0, 2.0, 0.5, 0.25]]),)
"""

#: Two more ops above the pinned ones (a unchanged): every later debug name shifts.
TOP_EDIT = "        a = a * 1.0 + 0.0\n"


def test_a_pinned_fix_of_top_level_ops_survives_an_edit_above(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(TOP_LEVEL.format(edit=""))
    pytester.makepyfile(test_norm=TEST.format(marker='@pytest.mark.coreml(precisions=["fp16"])'))
    found = run("--coreml-search-fix")
    found.assert_outcomes(failed=1)
    pins = re.findall(r"@pytest\.mark\.coreml\(fp32_ops=(\[.*?\])\)$", found.stdout.str(), re.M)
    assert pins, found.stdout.str()
    names = eval(pins[0])  # the printed list, as pasted
    assert ":mul@den = rb * rb + ib * ib" in names, names  # line names, not '9', '21'
    assert all("@" in n for n in names), names
    marker = f'@pytest.mark.coreml(precisions=["fp16"], fp32_ops={pins[0]})'
    pytester.makeconftest(TOP_LEVEL.format(edit=TOP_EDIT))  # forward edited above the pinned ops
    pytester.makepyfile(test_norm=TEST.format(marker=marker))
    run().assert_outcomes(passed=1)
    pytester.makepyfile(test_norm=TEST.format(marker='@pytest.mark.coreml(precisions=["fp16"])'))
    run().assert_outcomes(failed=1)  # the edited model still needs the pin


def test_an_edited_pinned_line_lists_the_nearest(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(TOP_LEVEL.format(edit=""))
    marker = '@pytest.mark.coreml(precisions=["fp16"], fp32_ops=[":mul@den = rb * rb + ib * ib * 2"])'
    pytester.makepyfile(test_norm=TEST.format(marker=marker))
    result = run()
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*match no op of this program*nearest [[]':mul@den = rb * rb + ib * ib'*"])
