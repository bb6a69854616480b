"""``@pytest.mark.coreml(package=...)``: a package built elsewhere, tested against torch.

Every package here is a real ``ct.convert(...).save(...)``, built once per module in
this process; the pytester runs load it from disk like a user's build artifact.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_coreml_parity import messages

MODEL_SOURCE = '''
import torch


class Head(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.linear = torch.nn.Linear(256, 16)

    def forward(self, x):
        return torch.relu(self.linear(x).reshape(x.size(0), -1))


class Collapsed(Head):
    """The bug of coremltools #2730, on purpose: the batch folded into one row."""

    def forward(self, x):
        return torch.relu(self.linear(x).reshape(1, -1))
'''

CONFTEST = MODEL_SOURCE + '''
import pytest


@pytest.fixture
def torch_model():
    return Head().eval()


@pytest.fixture
def example_inputs():
    return (torch.randn(1, 256, generator=torch.Generator().manual_seed(1)),)
'''


def _module() -> dict[str, object]:
    namespace: dict[str, object] = {}
    exec(compile(MODEL_SOURCE, "models", "exec"), namespace)
    return namespace


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """name -> a saved .mlpackage (real conversions, once per module)."""
    import coremltools as ct
    import numpy as np
    import torch

    models = _module()
    head = models["Head"]().eval()  # type: ignore[operator]
    collapsed = models["Collapsed"]().eval()  # type: ignore[operator]
    example = torch.randn(1, 256)
    root = tmp_path_factory.mktemp("packages")
    built: dict[str, Path] = {}

    def save(name: str, model: torch.nn.Module, shape: object, **kwargs: object) -> None:
        traced = torch.jit.trace(model, example)
        tensor = ct.TensorType(name=kwargs.pop("input_name", "x"), shape=shape, **kwargs)  # type: ignore[arg-type]
        mlmodel = ct.convert(traced, inputs=[tensor], minimum_deployment_target=ct.target.iOS16,
                             compute_precision=ct.precision.FLOAT32 if name.startswith("Fp32") else ct.precision.FLOAT16)  # fmt: skip
        built[name] = root / f"{name}.mlpackage"
        mlmodel.save(str(built[name]))

    save("Fp32", head, (1, 256))
    save("Fp16", head, (1, 256))
    save("Renamed", head, (1, 256), input_name="features")
    save("Default", head, (1, 256), input_name="input_1")
    save("Wide", head, (2, 256))
    save("Ints", head, (1, 256), dtype=np.int32)
    save("Enum", head, ct.EnumeratedShapes(shapes=[[1, 256], [8, 256]], default=[1, 256]))
    save("Fp32Range", head, (ct.RangeDim(1, 16, default=1), 256))
    save("Collapsed", collapsed, ct.EnumeratedShapes(shapes=[[1, 256], [8, 256]], default=[1, 256]))
    return built


@pytest.fixture
def place(pytester: pytest.Pytester, packages: dict[str, Path]) -> Callable[[str], str]:
    """Copy a package next to the pytester test file; return its relative path."""

    def _place(name: str) -> str:
        shutil.copytree(packages[name], pytester.path / "build" / f"{name}.mlpackage")
        return f"build/{name}.mlpackage"

    return _place


def test_a_package_runs_once_and_passes(pytester: pytest.Pytester, run, place) -> None:
    pytester.makeconftest(CONFTEST)
    fp32, fp16 = place("Fp32"), place("Fp16")
    pytester.makepyfile(
        f"""
        import pytest
        from pytest_coreml_parity import assert_parity

        @pytest.mark.coreml(package={fp32!r})
        def test_fp32(coreml_model, example_inputs):
            assert coreml_model.precision == "fp32"
            assert coreml_model.precision_origin == "no compute op is fp16-typed"
            assert_parity(coreml_model, *example_inputs)

        @pytest.mark.coreml(package={fp16!r})
        def test_fp16(coreml_model, example_inputs):
            assert coreml_model.precision == "fp16"
            assert "fp16-typed" in coreml_model.precision_origin
            assert_parity(coreml_model, *example_inputs)

        @pytest.mark.coreml(package={fp16!r}, precision="fp32")
        def test_precision_override(coreml_model):
            assert coreml_model.precision == "fp32"
            assert coreml_model.precision_origin == "marker precision="
        """
    )
    result = run("-v")
    result.assert_outcomes(passed=3)
    result.stdout.fnmatch_lines(
        [
            "*test_fp32[[]pkg:Fp32.mlpackage[]] PASSED*",
            "*test_fp16[[]pkg:Fp16.mlpackage[]] PASSED*",
            "*0 converted*, 3 built packages tested",
        ]
    )


def test_a_failure_names_the_package_and_why_its_precision(
    pytester: pytest.Pytester, run, place
) -> None:
    pytester.makeconftest(CONFTEST)
    path = place("Fp16")
    pytester.makepyfile(
        f"""
        import pytest, torch
        from conftest import Head
        from pytest_coreml_parity import assert_parity

        @pytest.fixture
        def torch_model():  # not what the package was built from
            model = Head().eval()
            with torch.no_grad():
                model.linear.bias += 1.0
            return model

        @pytest.mark.coreml(package={path!r})
        def test_it(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs)
        """
    )
    result = run()
    result.assert_outcomes(failed=1)
    line = messages.PACKAGE_MODEL_LINE.format(
        model="Head", package=pytester.path / path, precision="fp16", why="*"
    )
    result.stdout.fnmatch_lines([f"E * {line}"])


def test_a_relative_path_falls_back_to_the_rootdir(pytester: pytest.Pytester, run, place) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makeini("[pytest]\n")  # the rootdir: pytester.path
    path = place("Fp32")  # rootdir/build/..., not next to the test file in sub/
    sub = pytester.mkdir("sub")
    (sub / "test_sub.py").write_text(
        "import pytest\n"
        f"@pytest.mark.coreml(package={path!r})\n"
        "def test_it(coreml_model):\n"
        f"    assert str(coreml_model.package_path) == {str(pytester.path / path)!r}\n"
    )
    result = run("-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*sub/test_sub.py::test_it[[]pkg:Fp32.mlpackage[]] PASSED*"])


def test_default_input_names_map_by_position(pytester: pytest.Pytester, run, place) -> None:
    pytester.makeconftest(CONFTEST)
    path = place("Default")
    pytester.makepyfile(
        f"""
        import pytest
        from pytest_coreml_parity import assert_parity

        @pytest.mark.coreml(package={path!r})
        def test_it(coreml_model, example_inputs):
            assert coreml_model.input_names == ("input_1",)
            assert_parity(coreml_model, *example_inputs)
        """
    )
    run().assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("Renamed", "names differ: missing in the package ['x'], extra in the package ['features']; map them with @pytest.mark.coreml(package_inputs={'features': 'x'})"),
        ("Wide", "x's example shape (1, 256) is not allowed by package input 'x' ((2, 256))"),
    ],
)
def test_mismatched_inputs_name_both_sides(
    pytester: pytest.Pytester, run, place, name: str, problem: str
) -> None:
    pytester.makeconftest(CONFTEST)
    path = place(name)
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.coreml(package={path!r})
        def test_it(coreml_model):
            pass
        """
    )
    result = run()
    result.assert_outcomes(errors=1)
    declared = "features" if name == "Renamed" else "x"
    shape = "(2, 256)" if name == "Wide" else "(1, 256)"
    expected = messages.PACKAGE_INPUT_MISMATCH.format(
        package=f"{name}.mlpackage",
        model="Head",
        problem=problem,
        package_inputs=f"[{declared}: {shape} float16]",
        torch_inputs="[x: (1, 256) float32]",
    )
    result.stdout.fnmatch_lines([f"*{pytest_escape(expected)}*"])


def test_mismatched_dtype_names_both_sides(pytester: pytest.Pytester, run, place) -> None:
    pytester.makeconftest(CONFTEST)
    path = place("Fp32")
    pytester.makepyfile(
        f"""
        import pytest, torch

        @pytest.fixture
        def example_inputs():
            return (torch.ones(1, 256, dtype=torch.int32),)

        @pytest.mark.coreml(package={path!r})
        def test_it(coreml_model):
            pass
        """
    )
    result = run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        ["*inputs do not fit torch_model Head: x is int32 but package input 'x' is float32*"]
    )


def test_missing_package_is_a_collection_error(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.coreml(package="build/Nope.mlpackage")
        def test_it(coreml_model):
            pass
        """
    )
    result = run()
    result.assert_outcomes(errors=1)
    text = messages.PACKAGE_MISSING.format(
        path="build/Nope.mlpackage", where="test_missing_package_is_a_collection_error.py::test_it",
        tried=f"{pytester.path / 'build' / 'Nope.mlpackage'}",
    )  # fmt: skip
    result.stdout.fnmatch_lines([f"*{pytest_escape(text)}*"])


def test_a_package_that_does_not_load_is_a_clear_error(
    pytester: pytest.Pytester, run, place
) -> None:
    pytester.makeconftest(CONFTEST)
    path = place("Fp32")
    (pytester.path / path / "Manifest.json").write_text("{ not json")
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.coreml(package={path!r})
        def test_it(coreml_model):
            pass
        """
    )
    result = run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*package *Fp32.mlpackage: does not load: ModelLoadError: *"])


def test_bad_precision_keyword_names_the_marker(pytester: pytest.Pytester, run, place) -> None:
    pytester.makeconftest(CONFTEST)
    path = place("Fp32")
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.coreml(package={path!r}, precision="fp12")
        def test_it(coreml_model):
            pass
        """
    )
    result = run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*@pytest.mark.coreml in *: precision*fp12*"])


# ------------------------------------------------------------------ flexible shapes

SHAPES_TEST = """
import pytest
from pytest_coreml_parity import assert_parity

@pytest.mark.coreml(package={path!r})
def test_every_shape(coreml_model):
    assert coreml_model.declared_shapes() == {shapes!r}
    for inputs in coreml_model.inputs_for_shapes():
        assert_parity(coreml_model, *inputs)
"""


@pytest.mark.parametrize(
    ("name", "shapes"),
    [
        ("Enum", (((1, 256),), ((8, 256),))),
        ("Fp32Range", (((1, 256),), ((8, 256),), ((16, 256),))),  # endpoints + interior
    ],
)
def test_every_declared_shape_runs_and_passes(
    pytester: pytest.Pytester, run, place, name: str, shapes: object
) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(SHAPES_TEST.format(path=place(name), shapes=shapes))
    run().assert_outcomes(passed=1)


def test_a_shape_outside_the_enumeration_is_rejected(pytester: pytest.Pytester, run, place) -> None:
    pytester.makeconftest(CONFTEST)
    path = place("Enum")
    pytester.makepyfile(
        f"""
        import pytest, torch

        @pytest.mark.coreml(package={path!r})
        def test_it(coreml_model):
            assert coreml_model(torch.randn(8, 256))[0].shape == (16,)
            coreml_model(torch.randn(3, 256))
        """
    )
    result = run()
    result.assert_outcomes(failed=1)
    text = messages.FLEXIBLE_INPUT_SHAPE.format(
        index=0, name="x", got=(3, 256), allowed="(1, 256) or (8, 256)"
    )
    result.stdout.fnmatch_lines([f"*InputMismatchError: {pytest_escape(text)}*"])


def test_a_range_rejects_a_shape_beyond_its_bound(pytester: pytest.Pytester, run, place) -> None:
    pytester.makeconftest(CONFTEST)
    path = place("Fp32Range")
    pytester.makepyfile(
        f"""
        import pytest, torch
        from pytest_coreml_parity import InputMismatchError

        @pytest.mark.coreml(package={path!r})
        def test_it(coreml_model):
            with pytest.raises(InputMismatchError, match=r"allows \\(1\\.\\.16, 256\\)"):
                coreml_model(torch.randn(17, 256))
        """
    )
    run().assert_outcomes(passed=1)


def test_an_output_shape_that_differs_from_torch_fails_naming_the_shape(
    pytester: pytest.Pytester, run, place
) -> None:
    # A package whose batch collapsed to one row (the symptom of coremltools #2730):
    # right at batch 1, wrong at batch 8, and the check says at which input shape.
    pytester.makeconftest(CONFTEST)
    path = place("Collapsed")
    pytester.makepyfile(SHAPES_TEST.format(path=path, shapes=(((1, 256),), ((8, 256),))))
    result = run()
    result.assert_outcomes(failed=1)
    text = messages.OUTPUT_SHAPE_MISMATCH.format(
        label="'var_14'", inputs="(8, 256)", got=(1, 128), want=(8, 16)
    )
    result.stdout.fnmatch_lines([f"*{pytest_escape(text).replace(chr(39) + 'var_14' + chr(39), '*')}*"])


def test_precisions_with_a_package_is_an_error(pytester: pytest.Pytester, run, place) -> None:
    pytester.makeconftest(CONFTEST)
    path = place("Fp32")
    pytester.makepyfile(
        f"""
        import pytest

        @pytest.mark.coreml(package={path!r}, precisions=["fp16"])
        def test_it(coreml_model):
            pass
        """
    )
    result = run()
    result.assert_outcomes(errors=1)
    text = messages.PACKAGE_WITH_PRECISIONS.format(
        where="test_precisions_with_a_package_is_an_error.py::test_it", value=["fp16"]
    )
    result.stdout.fnmatch_lines([f"*{pytest_escape(text)}*"])


def test_precision_without_a_package_is_an_error(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.coreml(precision="fp16")
        def test_it(coreml_model):
            pass
        """
    )
    result = run()
    result.assert_outcomes(errors=1)
    text = messages.PRECISION_WITHOUT_PACKAGE.format(
        where="test_precision_without_a_package_is_an_error.py::test_it"
    )
    result.stdout.fnmatch_lines([f"*{pytest_escape(text)}*"])


def pytest_escape(text: str) -> str:
    """``text`` as a literal fnmatch pattern (brackets are character classes)."""
    return "".join(f"[{c}]" if c in "[]*?" else c for c in text)


def test_a_user_conversion_with_a_range_runs_at_every_shape(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import coremltools as ct, pytest, torch
        from pytest_coreml_parity import InputMismatchError, assert_parity

        @pytest.fixture
        def coreml_convert():
            def convert(torch_model, example_inputs, compute_precision):
                traced = torch.jit.trace(torch_model, example_inputs)
                shape = (ct.RangeDim(1, 4, default=1), 256)
                return ct.convert(traced, inputs=[ct.TensorType(name="x", shape=shape)],
                                  compute_precision=compute_precision,
                                  minimum_deployment_target=ct.target.iOS16)
            return convert

        def test_ranged(coreml_model):
            assert coreml_model.declared_shapes() == (((1, 256),), ((2, 256),), ((4, 256),))
            for inputs in coreml_model.inputs_for_shapes():
                assert_parity(coreml_model, *inputs)
            with pytest.raises(InputMismatchError, match="allows"):
                coreml_model(torch.randn(5, 256))
        """
    )
    run().assert_outcomes(passed=2)


@pytest.mark.parametrize(
    ("mapping", "outcome", "message"),
    [
        ({"features": "x"}, "passed", None),
        ({"featurs": "x"}, "errors", "*package_inputs names no package input ['featurs'] (the package inputs: ['features'])*did you mean 'features'?*"),
        ({"features": "y"}, "errors", "*package_inputs names no forward argument ['y'] (the forward arguments: ['x'])*"),
        (["features"], "errors", "*package_inputs: expected a dict from package input names to forward's argument names*got ['features']"),
    ],
    ids=["maps", "unknown-input", "unknown-argument", "not-a-dict"],
)
def test_package_inputs_maps_names_explicitly(
    pytester: pytest.Pytester, run, place, mapping: object, outcome: str, message: str | None
) -> None:
    pytester.makeconftest(CONFTEST)
    path = place("Renamed")  # its input is 'features'; forward takes x
    pytester.makepyfile(
        f"""
        import pytest
        from pytest_coreml_parity import assert_parity

        @pytest.mark.coreml(package={path!r}, package_inputs={mapping!r})
        def test_it(coreml_model, example_inputs):
            assert coreml_model.input_names == ("features",)
            assert_parity(coreml_model, *example_inputs)

        def test_other(coreml_model, example_inputs):  # the session runs on
            assert_parity(coreml_model, *example_inputs)
        """
    )
    result = run()
    if outcome == "errors":
        result.assert_outcomes(errors=1, passed=2)
    else:
        result.assert_outcomes(passed=3)
    if message is not None:
        result.stdout.fnmatch_lines([message.replace("[", "[[]")])


def test_package_inputs_without_package_is_an_error(pytester: pytest.Pytester, run) -> None:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(
        """
        import pytest

        @pytest.mark.coreml(package_inputs={"features": "x"})
        def test_it(coreml_model):
            pass
        """
    )
    result = run()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*package_inputs= maps a package= test's inputs; add package=*"])


def test_a_package_on_both_stacks_skips_its_coreai_id_naming_package(
    pytester: pytest.Pytester, run, place
) -> None:
    from pytest_coreml_parity import messages

    pytester.makeconftest(CONFTEST)
    fp32 = place("Fp32")
    pytester.makepyfile(
        f"""
        import pytest
        from pytest_coreml_parity import assert_parity

        @pytest.mark.coreml(package={fp32!r})
        def test_shipped(coreml_model, example_inputs):
            assert_parity(coreml_model, *example_inputs)
        """
    )
    result = run("-v", "-rs", "--coreml-targets=coreml,coreai")
    result.assert_outcomes(passed=1, skipped=1)
    skip = messages.NOT_APPLIED.format(
        what="@pytest.mark.coreml(package=...)", stacks="coreml", stack="coreai"
    )
    result.stdout.fnmatch_lines(
        ["*test_shipped[[]pkg:Fp32.mlpackage[]] PASSED*", f"SKIPPED * {skip}"]
    )
