"""Test what you ship: the user's coreml_convert fixture, convert_kwargs=, fp32_ops= and
function= (real conversions, real emulator, via pytester)."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_coreml_parity import messages

from ..complex_div_source import COMPLEX_DIV_SOURCE

Run = Callable[..., pytest.RunResult]

#: A user conversion with enumerated shapes and its own output name; every call is logged.
CONFTEST = '''
import coremltools as ct
import pytest
import torch


class Scale(torch.nn.Module):
    def forward(self, x):
        return torch.relu(x) * 2.0


OUTPUT = "logits_user"


def output_types():
    return [ct.TensorType(name=OUTPUT)]


@pytest.fixture
def torch_model():
    return Scale().eval()


@pytest.fixture
def example_inputs():
    return (torch.linspace(-1.0, 1.0, 32).reshape(8, 4),)


@pytest.fixture
def coreml_convert():
    def convert(torch_model, example_inputs, compute_precision):
        with open("calls.txt", "a") as log:
            log.write(type(compute_precision).__name__ + ":" + str(getattr(compute_precision, "value", "")) + "\\n")
        traced = torch.jit.trace(torch_model, example_inputs)
        return ct.convert(
            traced,
            inputs=[ct.TensorType(name="features", shape=ct.EnumeratedShapes(shapes=[(1, 4), (8, 4)], default=(8, 4)))],
            outputs=output_types(),
            compute_precision=compute_precision,
            minimum_deployment_target=ct.target.iOS17,
            skip_model_load=True,
        )
    return convert
'''

TEST = '''
from pytest_coreml_parity import assert_parity


def test_parity(coreml_model, example_inputs):
    assert coreml_model.output_names == ("logits_user",)
    assert coreml_model.input_names == ("features",)  # the returned model's, not forward's
    shapes = coreml_model.mlmodel.get_spec().description.input[0].type.multiArrayType.enumeratedShapes
    assert sorted(tuple(s.shape) for s in shapes.shapes) == [(1, 4), (8, 4)]
    assert_parity(coreml_model, *example_inputs)
'''


def _calls(pytester: pytest.Pytester) -> list[str]:
    path = pytester.path / "calls.txt"
    return path.read_text().split() if path.exists() else []


def _write(pytester: pytest.Pytester, conftest: str = CONFTEST, test: str = TEST) -> None:
    for cached in pytester.path.rglob("__pycache__"):
        shutil.rmtree(cached)
    pytester.makeconftest(conftest)
    pytester.makepyfile(test_model=test)


def test_user_conversion_is_called_per_precision_and_is_what_runs(
    run: Run, pytester: pytest.Pytester, tmp_path: Path
) -> None:
    _write(pytester)
    cache = f"--coreml-cache-dir={tmp_path / 'cache'}"
    result = run(cache)
    result.assert_outcomes(passed=2)
    assert sorted(_calls(pytester)) == ["ComputePrecision:float16", "ComputePrecision:float32"]
    result.stdout.fnmatch_lines(["*2 converted, 0 from disk cache*"])

    # A new process with the same function: from the disk cache, the function not called.
    (pytester.path / "calls.txt").unlink()
    again = pytester.runpytest_subprocess("-p", "no:cacheprovider", cache)
    again.assert_outcomes(passed=2)
    again.stdout.fnmatch_lines(["*0 converted, 2 from disk cache*"])
    assert _calls(pytester) == []

    # A helper edited in the same conftest: reconverted, and the new output name shows.
    _write(pytester, CONFTEST.replace('OUTPUT = "logits_user"', 'OUTPUT = "logits_v2"'),
           TEST.replace("logits_user", "logits_v2"))
    edited = run(cache)
    edited.assert_outcomes(passed=2)
    edited.stdout.fnmatch_lines(["*2 converted, 0 from disk cache*"])
    assert len(_calls(pytester)) == 2


def test_a_raising_user_function_fails_naming_the_fixture(run: Run, pytester: pytest.Pytester) -> None:
    broken = CONFTEST.replace(
        "        traced = torch.jit.trace", '        raise ValueError("no recipe today")\n        traced = torch.jit.trace'
    )
    _write(pytester, broken)
    result = run("--coreml-cache-dir=none")
    result.assert_outcomes(failed=2)
    head = messages.USER_CONVERT_FAILED.split("{where}")[0].format(fixture="coreml_convert")
    result.stdout.fnmatch_lines([f"*{head}Scale at fp16*ValueError: no recipe today*"])


def test_a_non_model_return_fails_naming_the_fixture(run: Run, pytester: pytest.Pytester) -> None:
    _write(pytester, CONFTEST.replace("        return ct.convert(", "        return 42\n        ct.convert("))
    result = run("--coreml-cache-dir=none", "--coreml-precisions=fp32")
    result.assert_outcomes(failed=1)
    head = messages.USER_CONVERT_BAD_RETURN.split("{where}")[0].format(fixture="coreml_convert", got="a int")
    result.stdout.fnmatch_lines([f"*{head}*"])


PLAIN_CONFTEST = CONFTEST.split("@pytest.fixture\ndef coreml_convert")[0]

KWARGS_TEST = '''
import coremltools as ct
import pytest
from pytest_coreml_parity import assert_parity


@pytest.mark.coreml(convert_kwargs={"outputs": [ct.TensorType(name="logits")]})
def test_outputs(coreml_model, example_inputs):
    assert coreml_model.output_names == ("logits",)
    assert_parity(coreml_model, *example_inputs)
'''


def test_convert_kwargs_reach_ct_convert(run: Run, pytester: pytest.Pytester) -> None:
    _write(pytester, PLAIN_CONFTEST, KWARGS_TEST)
    result = run()
    result.assert_outcomes(passed=2)


def test_unknown_convert_kwargs_are_rejected_naming_the_marker(run: Run, pytester: pytest.Pytester) -> None:
    _write(pytester, PLAIN_CONFTEST, KWARGS_TEST.replace('"outputs"', '"compute_precision"'))
    result = run()
    result.assert_outcomes(errors=1)
    head = messages.CONVERT_KWARGS_UNKNOWN.split("{value")[0].format(where="@pytest.mark.coreml in *: convert_kwargs")
    result.stdout.fnmatch_lines([f"*{head}'compute_precision' cannot be passed here*"])


COMPLEX_CONFTEST = '''
import coremltools as ct
import pytest
import torch
''' + COMPLEX_DIV_SOURCE

USER_CONVERT = '''

@pytest.fixture
def coreml_convert():
    def convert(torch_model, example_inputs, compute_precision):
        with open("calls.txt", "a") as log:
            log.write(type(compute_precision).__name__ + "\\n")
        traced = torch.jit.trace(torch_model, example_inputs)
        return ct.convert(
            traced,
            inputs=[ct.TensorType(name="a", shape=example_inputs[0].shape)],
            compute_precision=compute_precision,
            minimum_deployment_target=ct.target.iOS16,
            skip_model_load=True,
        )
    return convert
'''

COMPLEX_TEST = '''
import pytest
import torch
from pytest_coreml_parity import assert_parity


def bad_inputs():
    torch.manual_seed(1)
    a = torch.randn(8, 4)
    a[3] = torch.tensor([300.0, 1.0, 300.0, 1.0])
    return a


# MARKER
def test_parity(coreml_model):
    assert_parity(coreml_model, bad_inputs())
'''


def test_fix_search_reconverts_through_the_user_function_and_the_pin_passes(
    run: Run, pytester: pytest.Pytester
) -> None:
    _write(pytester, COMPLEX_CONFTEST + USER_CONVERT, COMPLEX_TEST)
    result = run("--coreml-cache-dir=none", "--coreml-precisions=fp16", "--coreml-search-fix")
    result.assert_outcomes(failed=1)
    calls = _calls(pytester)
    # The test's own conversion, then the search's: each through coreml_convert.
    assert calls.count("FP16ComputePrecision") >= 1
    assert calls.count("ComputePrecision") >= 2  # fp16 for the test, fp32 for the search baseline
    output = result.stdout.str()
    # (line names hold brackets: ':div@return torch.stack([...], -1)')
    match = re.search(r"@pytest\.mark\.coreml\(fp32_ops=(\[.*\])\)$", output, re.MULTILINE)
    assert match is not None, output
    marker = f"@pytest.mark.coreml(fp32_ops={match.group(1)})"

    # Pinned in the test, with the user's conversion and with the plugin's own.
    for conftest in (COMPLEX_CONFTEST + USER_CONVERT, COMPLEX_CONFTEST):
        (pytester.path / "calls.txt").unlink(missing_ok=True)
        _write(pytester, conftest, COMPLEX_TEST.replace("# MARKER", marker))
        pinned = run("--coreml-cache-dir=none", "--coreml-precisions=fp16")
        pinned.assert_outcomes(passed=1)
        if conftest.endswith(USER_CONVERT):
            assert _calls(pytester) == ["FP16ComputePrecision"]


MULTI_CONFTEST = '''
import coremltools as ct
import pytest
import torch


class Double(torch.nn.Module):
    def forward(self, x):
        return x * 2.0


class Shift(torch.nn.Module):
    def forward(self, x):
        return x + 100.0


@pytest.fixture
def torch_model():
    return Double().eval()


@pytest.fixture
def example_inputs():
    return (torch.linspace(-1.0, 1.0, 6).reshape(2, 3),)


@pytest.fixture
def coreml_convert(tmp_path_factory):
    def convert(torch_model, example_inputs, compute_precision):
        where = tmp_path_factory.mktemp("multi")
        for name, module in (("double", torch_model), ("shift", Shift().eval())):
            traced = torch.jit.trace(module, example_inputs)
            ct.convert(
                traced,
                inputs=[ct.TensorType(name="x", shape=(2, 3))],
                outputs=[ct.TensorType(name="y")],
                compute_precision=compute_precision,
                minimum_deployment_target=ct.target.iOS18,
                skip_model_load=True,
            ).save(str(where / f"{name}.mlpackage"))
        desc = ct.utils.MultiFunctionDescriptor()
        desc.add_function(str(where / "double.mlpackage"), "main", "double")
        desc.add_function(str(where / "shift.mlpackage"), "main", "shift")
        desc.default_function_name = "shift"
        ct.utils.save_multifunction(desc, str(where / "both.mlpackage"))
        return where / "both.mlpackage"
    return convert
'''

MULTI_TEST = '''
import numpy as np
import pytest
from pytest_coreml_parity import assert_parity


@pytest.mark.coreml(function="double")
def test_double(coreml_model, example_inputs):
    assert_parity(coreml_model, *example_inputs)


@pytest.mark.coreml(function="shift")
def test_shift(coreml_model, example_inputs):
    got = coreml_model(*example_inputs)
    np.testing.assert_allclose(got, example_inputs[0].numpy() + 100.0, rtol=1e-3)


@pytest.mark.coreml(function="nope")
def test_missing(coreml_model, example_inputs):
    pass
'''


def test_multi_function_package_runs_the_chosen_function(run: Run, pytester: pytest.Pytester, tmp_path: Path) -> None:
    _write(pytester, MULTI_CONFTEST, MULTI_TEST)
    result = run(f"--coreml-cache-dir={tmp_path / 'cache'}")
    result.assert_outcomes(passed=4, failed=2)
    head = messages.FUNCTION_NOT_FOUND.split("{where}")[1].split("{known}")[0].format(name="nope")
    result.stdout.fnmatch_lines([f"*{head}double, shift*"])


def test_cache_false_converts_in_every_session(run: Run, pytester: pytest.Pytester, tmp_path: Path) -> None:
    _write(pytester, CONFTEST, "import pytest\n\npytestmark = pytest.mark.coreml(cache=False)\n" + TEST)
    cache = f"--coreml-cache-dir={tmp_path / 'cache'}"
    for _session in range(2):
        result = run(cache, "--coreml-precisions=fp16")
        result.assert_outcomes(passed=1)
        result.stdout.fnmatch_lines(["*1 converted, 0 from disk cache*"])
    assert len(_calls(pytester)) == 2


KWARGS_FIXTURE = '''

@pytest.fixture
def coreml_convert_kwargs():
    return {"outputs": [ct.TensorType(name="from_fixture")]}
'''

KWARGS_FIXTURE_TEST = '''
import coremltools as ct
import pytest


def test_fixture(coreml_model):
    assert coreml_model.output_names == ("from_fixture",)


@pytest.mark.coreml(convert_kwargs={"outputs": [ct.TensorType(name="from_marker")]})
def test_marker_wins(coreml_model):
    assert coreml_model.output_names == ("from_marker",)
'''


def test_convert_kwargs_fixture_and_the_marker_winning(run: Run, pytester: pytest.Pytester) -> None:
    _write(pytester, "import coremltools as ct\n" + PLAIN_CONFTEST + KWARGS_FIXTURE, KWARGS_FIXTURE_TEST)
    result = run("--coreml-precisions=fp16")
    result.assert_outcomes(passed=2)


def test_convert_kwargs_fixture_is_validated(run: Run, pytester: pytest.Pytester) -> None:
    bad = KWARGS_FIXTURE.replace('"outputs"', '"source"')
    _write(pytester, "import coremltools as ct\n" + PLAIN_CONFTEST + bad, KWARGS_FIXTURE_TEST)
    result = run("--coreml-precisions=fp16", "-k", "test_fixture")
    result.assert_outcomes(errors=1)
    head = messages.CONVERT_KWARGS_UNKNOWN.split("{value")[0].format(where="the coreml_convert_kwargs fixture")
    result.stdout.fnmatch_lines([f"*{head}'source' cannot be passed here*"])
