"""The allowed-shape rule (shapes.py) the emulator and ``coreml_model`` both apply."""

from __future__ import annotations

from pytest_coreml_parity.shapes import AllowedShapes, combined, shape_id

ENUM = AllowedShapes("x", (1, 256), enumerated=((1, 256), (8, 256)))
RANGE = AllowedShapes("x", (1, 256), ranges=((1, 16), (256, 256)))
OPEN = AllowedShapes("x", (4, 3), ranges=((2, None), (3, 3)))


def test_enumerated_allows_only_its_shapes() -> None:
    assert ENUM.allows((8, 256)) and not ENUM.allows((3, 256))
    assert ENUM.describe() == "(1, 256) or (8, 256)"
    assert ENUM.representatives() == ((1, 256), (8, 256))


def test_range_allows_its_interval_and_tests_endpoints_and_interior() -> None:
    assert RANGE.allows((16, 256)) and not RANGE.allows((17, 256)) and not RANGE.allows((1, 3))
    assert RANGE.describe() == "(1..16, 256)"
    assert RANGE.representatives() == ((1, 256), (8, 256), (16, 256))


def test_unbounded_range_tests_up_to_twice_its_default() -> None:
    assert OPEN.allows((10_000, 3)) and not OPEN.allows((1, 3))
    assert OPEN.describe() == "(2.., 3)"
    assert OPEN.representatives() == ((2, 3), (5, 3), (8, 3))


def test_fixed_is_not_flexible() -> None:
    fixed = AllowedShapes("x", (2, 3))
    assert not fixed.flexible and fixed.allows((2, 3)) and not fixed.allows((3, 3))
    assert ENUM.flexible and RANGE.flexible


def test_several_inputs_are_taken_together_index_by_index() -> None:
    fixed = AllowedShapes("m", (1, 5))
    assert combined([ENUM, fixed]) == (((1, 256), (1, 5)), ((8, 256), (1, 5)))
    assert shape_id(((8, 256), (1, 5))) == "8x256-1x5"
