"""The key of a user's coreml_convert function: what changes it and what does not."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

from pytest_coreml_parity import messages
from pytest_coreml_parity.convert import ConversionOptions, canonical_text, function_key
from pytest_coreml_parity.errors import SettingError
from pytest_coreml_parity.settings import Settings, apply_marker


def _make(scale: float, name: str = "y") -> Callable[..., Any]:
    def convert(torch_model: Any, example_inputs: Any, compute_precision: Any) -> Any:
        return (torch_model, example_inputs, compute_precision, scale, name)

    return convert


def test_same_code_and_closure_same_key() -> None:
    assert function_key(_make(1.0)) == function_key(_make(1.0))


@pytest.mark.parametrize(
    "other",
    [
        pytest.param(lambda: _make(2.0), id="closure-number"),
        pytest.param(lambda: _make(1.0, "logits"), id="closure-string"),
    ],
)
def test_closure_values_change_the_key(other: Callable[[], Callable[..., Any]]) -> None:
    assert function_key(_make(1.0)) != function_key(other())


def test_code_and_nested_code_change_the_key() -> None:
    def a(m: Any, x: Any, p: Any) -> Any:
        return [lambda: 1 for _ in x]

    def b(m: Any, x: Any, p: Any) -> Any:
        return [lambda: 2 for _ in x]

    assert function_key(a) != function_key(b)


def test_tensor_in_closure_keyed_by_bytes() -> None:
    def make(t: torch.Tensor) -> Callable[..., Any]:
        return lambda m, x, p: t

    assert function_key(make(torch.zeros(3))) == function_key(make(torch.zeros(3)))
    assert function_key(make(torch.zeros(3))) != function_key(make(torch.ones(3)))


def test_cache_key_attribute_is_the_escape_hatch() -> None:
    first, second = _make(1.0), _make(1.0)
    second.cache_key = "v2"  # type: ignore[attr-defined]
    assert function_key(first) != function_key(second)


def test_recursive_closure_terminates() -> None:
    def outer() -> Callable[..., Any]:
        def convert(m: Any, x: Any, p: Any) -> Any:
            return convert

        return convert

    assert function_key(outer()) == function_key(outer())


def test_coremltools_input_types_have_stable_text() -> None:
    import coremltools as ct

    def kwargs() -> dict[str, Any]:
        return {
            "inputs": [ct.TensorType(name="x", shape=ct.EnumeratedShapes(shapes=[(1, 4), (8, 4)]))],
            "outputs": [ct.TensorType(name="logits")],
        }

    assert canonical_text(kwargs()) == canonical_text(kwargs())
    other = kwargs()
    other["outputs"] = [ct.TensorType(name="scores")]
    assert canonical_text(kwargs()) != canonical_text(other)


def test_options_key_material_covers_the_user_function_and_kwargs() -> None:
    plain = ConversionOptions(precision="fp16").key_material()
    assert "user_convert_key" not in plain and "convert_kwargs_key" not in plain
    with_user = ConversionOptions(precision="fp16", user_convert=_make(1.0)).key_material()
    assert with_user["user_convert_key"] == function_key(_make(1.0))
    with_kwargs = ConversionOptions(precision="fp16", convert_kwargs={"outputs": ["a"]}).key_material()
    assert with_kwargs["convert_kwargs_key"] == canonical_text({"outputs": ["a"]})


@pytest.mark.parametrize(
    ("keyword", "value", "template"),
    [
        ("fp32_ops", [1, 2], messages.BAD_FP32_OPS),
        ("function", "", messages.BAD_FUNCTION),
        ("convert_kwargs", ["outputs"], messages.CONVERT_KWARGS_NOT_MAPPING),
    ],
)
def test_bad_marker_values_name_the_marker(keyword: str, value: Any, template: str) -> None:
    with pytest.raises(SettingError) as info:
        apply_marker(Settings(), (), [{keyword: value}], "test_x.py::test_y")
    head = template.split("{where}")[0]
    assert str(info.value).startswith(head + f"@pytest.mark.coreml in test_x.py::test_y: {keyword}")


def test_marker_values_are_normalized() -> None:
    settings = apply_marker(
        Settings(), (), [{"fp32_ops": ["den", "8", "den"], "function": " decode ", "cache": False}], "t"
    )
    assert settings.fp32_ops == ("8", "den")
    assert settings.function == "decode"
    assert settings.cache is False


def test_a_huge_closure_is_keyed_quickly() -> None:
    import time

    graph = {f"k{i}": [{"a": [i] * 20} for _ in range(50)] for i in range(200)}
    start = time.perf_counter()
    key = function_key(lambda m, x, p: graph)
    assert time.perf_counter() - start < 2.0
    assert key == function_key(lambda m, x, p: graph)
