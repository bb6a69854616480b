"""Compressed precisions in settings and in the cache key (no conversion needed)."""

from __future__ import annotations

import coremltools.optimize.coreml as cto
import pytest
import torch

from pytest_coreml_parity import messages
from pytest_coreml_parity.compress import effective_target, optimization_key
from pytest_coreml_parity.convert import ConversionOptions, capture, conversion_key
from pytest_coreml_parity.errors import SettingError
from pytest_coreml_parity.settings import (
    COMPRESSED_PRECISIONS,
    DEFAULT_PRECISIONS,
    Settings,
    apply_marker,
    parse_precisions,
)


def _palettize(nbits: int, **kwargs: object) -> cto.OptimizationConfig:
    return cto.OptimizationConfig(global_config=cto.OpPalettizerConfig(nbits=nbits, mode="kmeans", **kwargs))


@pytest.fixture(scope="module")
def captured() -> object:
    model = torch.nn.Sequential(torch.nn.Linear(4, 3)).eval()
    return capture(model, (torch.ones(2, 4),), ConversionOptions())


def test_every_precision_and_config_has_its_own_key(captured: object) -> None:
    keys = {
        precision: conversion_key(captured, ConversionOptions(precision=precision))  # type: ignore[arg-type]
        for precision in (*DEFAULT_PRECISIONS, *COMPRESSED_PRECISIONS)
    }
    configs = [_palettize(1), _palettize(2), _palettize(2, weight_threshold=10), [_palettize(2), _palettize(1)]]
    for i, config in enumerate(configs):
        options = ConversionOptions(precision="custom", optimization=config)
        keys[f"custom{i}"] = conversion_key(captured, options)  # type: ignore[arg-type]
    assert len(set(keys.values())) == len(keys), keys
    # An equal config built again (a new object) hits the same entry.
    again = ConversionOptions(precision="custom", optimization=_palettize(2, weight_threshold=10))
    assert conversion_key(captured, again) == keys["custom2"]  # type: ignore[arg-type]


def test_optimization_key_is_by_content_not_identity() -> None:
    def lut(weight: object) -> object:
        return weight

    def other(weight: object) -> object:
        return None

    def config(fn: object) -> cto.OptimizationConfig:
        return cto.OptimizationConfig(
            global_config=cto.OpPalettizerConfig(mode="custom", lut_function=fn)
        )

    assert optimization_key(_palettize(4)) == optimization_key(_palettize(4))
    assert "0x" not in str(optimization_key(config(lut)))  # no id() in the key
    assert optimization_key(config(lut)) != optimization_key(config(other))
    assert ConversionOptions(precision="custom", optimization=_palettize(4)) == ConversionOptions(
        precision="custom", optimization=_palettize(4)
    )


@pytest.mark.parametrize(
    ("target", "precision", "expected"),
    [
        ("iOS15", "int8", "iOS16"),
        ("iOS16", "int8", "iOS16"),
        ("iOS16", "w8a8", "iOS17"),
        ("macOS13", "w8a8", "macOS14"),
        ("watchOS8", "palettize4", "watchOS9"),
        ("iOS18", "w8a8", "iOS18"),
        ("iOS15", "fp16", "iOS15"),
    ],
)
def test_targets_are_raised_only_when_the_precision_needs_it(target: str, precision: str, expected: str) -> None:
    assert effective_target(target, precision) == expected


def test_a_raised_target_is_said_in_the_description() -> None:
    options = ConversionOptions(precision="w8a8", target="iOS16")
    assert options.conversion_target == "iOS17"
    assert messages.TARGET_RAISED.format(target="iOS17", configured="iOS16", precision="w8a8") in options.describe()
    assert ConversionOptions(precision="int8", target="iOS17").describe() == "int8 (target iOS17)"


def test_compressed_precisions_are_opt_in() -> None:
    assert Settings().precisions == DEFAULT_PRECISIONS
    assert parse_precisions("fp16,int8,w8a8", "x") == ("fp16", "int8", "w8a8")


def test_the_optimization_marker_adds_the_custom_precision() -> None:
    config = _palettize(4)
    settings = apply_marker(Settings(), (), [{"optimization": config}], "t.py::test")
    assert settings.precisions == (*DEFAULT_PRECISIONS, "custom")
    assert settings.optimization is config
    only = apply_marker(Settings(), (), [{"optimization": config, "precisions": ["custom"]}], "t.py::test")
    assert only.precisions == ("custom",)


def test_custom_without_a_config_and_a_bad_config_are_errors() -> None:
    with pytest.raises(SettingError) as missing:
        apply_marker(Settings(), (), [{"precisions": ["custom"]}], "t.py::test")
    assert str(missing.value) == messages.CUSTOM_NEEDS_OPTIMIZATION.format(where="t.py::test (marker)")
    with pytest.raises(SettingError) as bad:
        apply_marker(Settings(), (), [{"optimization": {"nbits": 4}}], "t.py::test")
    assert str(bad.value) == messages.BAD_OPTIMIZATION.format(
        where="@pytest.mark.coreml in t.py::test: optimization", got="dict"
    )


def test_one_canonicaliser_keys_configs_and_convert_kwargs_alike() -> None:
    """compress and convert key with canonical.canonical_text: a config in convert_kwargs
    and the same config as optimization= give the same text; a value deep inside a list of
    configs (per op type) still changes it; attrs classes read by field, enums by name."""
    from pytest_coreml_parity.canonical import canonical_text

    def deep(threshold: int) -> list[cto.OptimizationConfig]:
        per_op = {"linear": cto.OpPalettizerConfig(nbits=4, mode="kmeans", weight_threshold=threshold)}
        return [_palettize(2), cto.OptimizationConfig(op_type_configs=per_op)]

    assert optimization_key(deep(10)) == canonical_text(deep(10))
    assert optimization_key(deep(10)) != optimization_key(deep(11))
    text = canonical_text(cto.OpPalettizerConfig(nbits=4, mode="kmeans"))
    assert "nbits=4" in text and "0x" not in text
    options = ConversionOptions(convert_kwargs={"config": deep(10)})
    assert options.convert_kwargs_key == canonical_text({"config": deep(10)})
