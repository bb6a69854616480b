"""Each compressed precision through the plugin (pytester, real conversions, real emulator).

Healthy: a sparsity-trained MLP passes at every built-in compressed precision's
default gates, and at a 6-bit palettization given with the ``optimization=`` marker;
a second session loads all of them from the disk cache. Broken: a 1-bit palettization given with the ``optimization=``
marker, and coremltools PR #2777 (a per-grouped-channel palettization that skips a
weight it cannot group but leaves it divided by its per-channel scale) fail, and the
diagnosis attributes the error to the compression and to the weight.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest

from pytest_coreml_parity import messages

from .models import MODELS

HEALTHY = MODELS + '''
import coremltools.optimize.coreml as cto
import pytest
from pytest_coreml_parity import assert_parity


@pytest.fixture
def torch_model():
    return Healthy().eval()


@pytest.fixture
def example_inputs():
    return (torch.randn(8, 32, generator=torch.Generator().manual_seed(1)),)


def test_parity(coreml_model):
    probe = torch.randn(8, 32, generator=torch.Generator().manual_seed(2))
    assert_parity(coreml_model, probe)


SIX_BIT = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(nbits=6, mode="kmeans"))


@pytest.mark.coreml(precisions=["custom"], optimization=SIX_BIT)
def test_own_config(coreml_model):
    probe = torch.randn(8, 32, generator=torch.Generator().manual_seed(2))
    assert_parity(coreml_model, probe)
'''

BROKEN = MODELS + '''
import coremltools.optimize.coreml as cto
import pytest
from pytest_coreml_parity import assert_parity

ONE_BIT = cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(nbits=1, mode="kmeans"))
# coremltools PR #2777: fc1's 100 channels do not split into groups of 16, so it is
# skipped, but only after being divided by its per-channel scale (in place).
GROUPED = cto.OptimizationConfig(
    global_config=cto.OpPalettizerConfig(
        nbits=4, mode="kmeans", granularity="per_grouped_channel", group_size=16,
        enable_per_channel_scale=True,
    )
)


@pytest.fixture
def example_inputs():
    return (torch.randn(8, 32, generator=torch.Generator().manual_seed(1)),)


@pytest.fixture
def torch_model(request):
    return (Odd if "grouped" in request.node.name else Healthy)().eval()


@pytest.mark.coreml(precisions=["custom"], optimization=ONE_BIT)
def test_one_bit(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)


@pytest.mark.coreml(precisions=["custom"], optimization=GROUPED, target="iOS18")
def test_grouped(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)
'''


def test_every_compressed_precision_and_an_own_config_pass_on_a_healthy_model(
    pytester: pytest.Pytester, run: Callable[..., pytest.RunResult]
) -> None:
    pytester.makepyfile(test_healthy=HEALTHY)
    result = run("-v", "--coreml-backend=emulator", "--coreml-precisions=int8,palettize4,prune50,w8a8")
    result.assert_outcomes(passed=5)
    result.stdout.fnmatch_lines(
        [f"*test_parity[[]{p}[]] PASSED*" for p in ("int8", "palettize4", "prune50", "w8a8")]
        + ["*test_own_config[[]custom[]] PASSED*"],
        consecutive=False,
    )
    # A second session loads all five from the disk cache (the user's config, built anew,
    # keys the same), and they still pass.
    again = run("--coreml-backend=emulator", "--coreml-precisions=int8,palettize4,prune50,w8a8")
    again.assert_outcomes(passed=5)
    again.stdout.fnmatch_lines(["*0 converted, 5 from disk cache*"])


def _section(output: str, test: str) -> str:
    """The diagnosis section printed for ``test``."""
    block = output.split(f"_ {test}[custom] _", 1)[1]
    block = re.split(r"\n_{3,} ", block, maxsplit=1)[0]
    return block.split(messages.DIAGNOSIS_SECTION, 1)[1]


def test_broken_compressions_fail_and_are_attributed(pytester: pytest.Pytester, run: Callable[..., pytest.RunResult]) -> None:
    pytester.makepyfile(test_broken=BROKEN)
    result = run("--coreml-backend=emulator")
    result.assert_outcomes(failed=2)
    output = result.stdout.str()

    one_bit = _section(output, "test_one_bit")
    assert messages.COMPRESSION_HEADER.split(":")[0].format(precision="custom") in one_bit
    assert messages.COMPRESSION_BLAME.format(what="the compression") in one_bit
    # Both 1-bit weights are listed, decompressed by the emulator (constexpr_lut_to_dense).
    assert "from fc1.weight" in one_bit and "from fc2.weight" in one_bit
    assert "constexpr_lut_to_dense" in one_bit

    grouped = _section(output, "test_grouped")
    # The skipped-but-rescaled weight is named first, as PR #2777's signature.
    before = messages.COMPRESSION_NOT_COMPRESSED.split("{rel")[0].format(
        name="fc1_weight_to_fp16", torch="fc1.weight"
    )
    assert before in grouped, grouped
    assert "PR #2777" in grouped
