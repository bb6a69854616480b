"""coreml_model's contract: calling it, bad fixtures and inputs, conversion failures, backends."""

from __future__ import annotations

import sys

import pytest

from pytest_coreml_parity import messages

from .conftest import SCALE_CONFTEST


def test_call_returns_numpy_in_the_torch_output_structure(pytester: pytest.Pytester, run) -> None:
    pytester.makepyfile(
        """
        import numpy as np, pytest, torch

        class Pair(torch.nn.Module):
            def forward(self, x, y):
                return x + y, (x * y, x - y)

        @pytest.fixture
        def torch_model():
            return Pair().eval()

        @pytest.fixture
        def example_inputs():
            return (torch.ones(2, 2), torch.ones(2, 2))

        def test_structure(coreml_model):
            out = coreml_model(torch.ones(2, 2), np.full((2, 2), 3.0, dtype=np.float32))
            assert isinstance(out, tuple) and isinstance(out[1], tuple)
            assert all(isinstance(a, np.ndarray) for a in (out[0], *out[1]))
            np.testing.assert_allclose(out[0], 4.0)
            np.testing.assert_allclose(out[1][0], 3.0)
            np.testing.assert_allclose(out[1][1], -2.0)
            assert coreml_model.input_names == ("x", "y")
            assert coreml_model.backend.name == "emulator"
            assert coreml_model.mlmodel is not None
        """
    )
    run().assert_outcomes(passed=2)


def test_missing_torch_model_fixture_is_a_clear_error(pytester: pytest.Pytester, run) -> None:
    pytester.makepyfile(
        test_nomodel="""
        import pytest, torch

        @pytest.fixture
        def example_inputs():
            return (torch.ones(2),)

        def test_y(coreml_model):
            pass
        """
    )
    result = run("--coreml-precisions=fp32")
    result.assert_outcomes(errors=1)
    text = messages.MISSING_FIXTURE.format(
        nodeid="test_nomodel.py::test_y[fp32]", name="torch_model", what="an nn.Module to convert"
    )
    result.stdout.fnmatch_lines([f"*{text.replace('[fp32]', '[[]fp32[]]')}"])
    result.stdout.no_fnmatch_line("*During handling*")


def test_example_inputs_of_the_wrong_type(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        """
        import pytest

        @pytest.fixture
        def example_inputs():
            return [[1.0, 2.0]]

        def test_y(coreml_model):
            pass
        """
    )
    result = run("--coreml-precisions=fp32")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines([f"*{messages.BAD_EXAMPLE_INPUTS.format(got='list of list')}*"])


def test_wrong_number_and_shape_of_inputs(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        """
        import torch
        from pytest_coreml_parity import assert_parity

        def test_count(coreml_model):
            coreml_model(torch.ones(2, 3), torch.ones(2, 3))

        def test_shape(coreml_model):
            assert_parity(coreml_model, torch.ones(3, 2))
        """
    )
    result = run("--coreml-precisions=fp32")
    result.assert_outcomes(failed=2)
    count = messages.WRONG_INPUT_COUNT.format(
        got=2, model="Scale", want=1, signature="[((2, 3), 'float32')]"
    )
    shape = messages.WRONG_INPUT_SHAPE.format(
        index=0, name="x", got=(3, 2), model="Scale", want=(2, 3)
    )
    result.stdout.fnmatch_lines([f"E * {count.replace('[', '[[]')}", f"E * {shape}*"])


FAILING_MODEL = """
import pytest, torch

class Buckets(torch.nn.Module):
    def forward(self, x):
        return torch.bucketize(x, torch.tensor([0.0, 1.0]))

@pytest.fixture
def torch_model():
    return Buckets().eval()

@pytest.fixture
def example_inputs():
    return (torch.ones(3),)
"""


def test_conversion_failure_fails_its_tests_once_and_others_run(pytester: pytest.Pytester, run) -> None:
    pytester.mkdir("broken").joinpath("conftest.py").write_text(FAILING_MODEL)
    pytester.path.joinpath("broken", "test_broken.py").write_text(
        "def test_a(coreml_model):\n    pass\n\ndef test_b(coreml_model):\n    pass\n"
    )
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(test_fine="def test_fine(coreml_model):\n    assert coreml_model(*coreml_model.example_inputs) is not None\n")
    result = run("-W", "ignore::torch.jit.TracerWarning", "--coreml-precisions=fp16")
    result.assert_outcomes(failed=2, passed=1)
    result.stdout.fnmatch_lines(
        [
            "*coremltools could not convert Buckets at fp16 (target iOS16): op 'bucketize': "
            "NotImplementedError: *",
            # one attempt; the second test reuses the cached failure
            "coreml-parity: backend emulator; * 1 reused in session, 1 failed to convert",
        ]
    )


@pytest.mark.skipif(sys.platform == "darwin", reason="the Core ML runtime exists on macOS")
def test_coreml_backend_off_macos_skips_with_a_reason(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile("def test_y(coreml_model):\n    raise AssertionError('must not run')\n")
    result = run("--coreml-backend=coreml", "-rs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["*--coreml-backend=coreml: the Core ML runtime needs macOS*"])
    result.stdout.fnmatch_lines(["coreml-parity: backend coreml, *"])


def test_auto_backend_is_the_emulator_off_macos(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile("def test_y(coreml_model):\n    pass\n")
    result = run("--coreml-precisions=fp32")
    expected = "coreml (auto)" if sys.platform == "darwin" else "emulator (auto)"
    result.stdout.fnmatch_lines([f"coreml-parity: backend {expected}, *"])


def test_assert_finite_reports_counts_and_first_index(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        """
        import numpy as np, torch
        from pytest_coreml_parity import assert_finite

        def test_tuple():
            assert_finite((np.ones(2), torch.tensor([1.0, float("nan"), float("inf")])))

        def test_model(coreml_model):
            assert_finite(coreml_model(torch.full((2, 3), 40000.0)))
        """
    )
    result = run("--coreml-precisions=fp16")
    result.assert_outcomes(failed=2)
    result.stdout.fnmatch_lines(
        [
            f"E * {messages.FINITE_HEADER.format(what='output 1')}: shape (3,), nan 1 (first at (1,)), +inf 1 (first at (2,))",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "E * Core ML outputs at fp16 on the emulator backend:",
            f"E * {messages.FINITE_HEADER.format(what='the output')}: shape (2, 3), +inf 6 (first at (0, 0))",
        ]
    )


def test_with_options_converts_a_sibling(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(SCALE_CONFTEST)
    pytester.makepyfile(
        """
        def test_sibling(coreml_model):
            sibling = coreml_model.with_options(precision="fp32")
            assert sibling.precision == "fp32" and sibling.mlmodel is not coreml_model.mlmodel
            assert sibling.backend.name == coreml_model.backend.name
        """
    )
    run("--coreml-precisions=fp16").assert_outcomes(passed=1)
