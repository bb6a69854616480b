"""The input shapes a Core ML model allows: fixed, enumerated or ranged.

Read from the model description (``multiArrayType.enumeratedShapes`` /
``shapeRange``), because that is what Core ML checks a prediction against. One
implementation, used by the emulator's input check, ``coreml_model(*inputs)`` and
``package=`` tests. A leaf: stdlib only, so the emulator may import it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

Shape = tuple[int, ...]


@dataclass(frozen=True)
class AllowedShapes:
    """The shapes one input accepts.

    ``enumerated`` lists every allowed shape (``ct.EnumeratedShapes``); else
    ``ranges`` gives ``(lower, upper)`` per dim, ``upper`` None when unbounded
    (``ct.RangeDim``); else only ``default`` is allowed.
    """

    name: str
    default: Shape
    enumerated: tuple[Shape, ...] | None = None
    ranges: tuple[tuple[int, int | None], ...] | None = None

    @property
    def flexible(self) -> bool:
        """Whether more than the default shape is allowed."""
        if self.enumerated is not None:
            return len(self.enumerated) > 1
        return self.ranges is not None and any(lo != hi for lo, hi in self.ranges)

    def allows(self, shape: Sequence[int]) -> bool:
        shape = tuple(int(d) for d in shape)
        if self.enumerated is not None:
            return shape in self.enumerated
        if self.ranges is not None:
            return len(shape) == len(self.ranges) and all(
                lo <= d and (hi is None or d <= hi)
                for d, (lo, hi) in zip(shape, self.ranges, strict=True)
            )
        return shape == self.default

    def describe(self) -> str:
        """``(1, 256) or (8, 256)``, ``(1..16, 256)`` or ``(1, 256)``."""
        if self.enumerated is not None:
            return " or ".join(str(s) for s in self.enumerated)
        if self.ranges is not None:
            dims = [
                str(lo) if lo == hi else f"{lo}..{'' if hi is None else hi}"
                for lo, hi in self.ranges
            ]
            return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"
        return str(self.default)

    def representatives(self) -> tuple[Shape, ...]:
        """The shapes to test: every enumerated shape; for ranges, all dims at their
        lower bounds, at an interior value and at their upper bounds (an unbounded
        dim's "upper" is twice the larger of its default and lower bound)."""
        if self.enumerated is not None:
            return self.enumerated
        if self.ranges is None:
            return (self.default,)
        low = tuple(lo for lo, _ in self.ranges)
        high = tuple(
            hi if hi is not None else 2 * max(lo, d, 1)
            for (lo, hi), d in zip(self.ranges, self.default, strict=True)
        )
        mid = tuple((a + b) // 2 for a, b in zip(low, high, strict=True))
        return tuple(dict.fromkeys((low, mid, high)))


def shape_id(shapes: Sequence[Shape]) -> str:
    """``1x256`` (one input) or ``1x256-1x3`` (several): a test id for a call's shapes."""
    return "-".join("x".join(str(d) for d in s) or "scalar" for s in shapes)


def read_allowed(description: Any) -> tuple[AllowedShapes, ...]:
    """One :class:`AllowedShapes` per multi-array input of a model description
    (``spec.description``); other inputs (images) are left out."""
    allowed = []
    for feature in description.input:
        if feature.type.WhichOneof("Type") != "multiArrayType":
            continue
        array = feature.type.multiArrayType
        default = tuple(int(d) for d in array.shape)
        flexibility = array.WhichOneof("ShapeFlexibility")
        if flexibility == "enumeratedShapes":
            enumerated = tuple(
                tuple(int(d) for d in s.shape) for s in array.enumeratedShapes.shapes
            )
            allowed.append(AllowedShapes(feature.name, default, enumerated=enumerated))
        elif flexibility == "shapeRange":
            ranges = tuple(
                (int(r.lowerBound), None if r.upperBound < 0 else int(r.upperBound))
                for r in array.shapeRange.sizeRanges
            )
            allowed.append(AllowedShapes(feature.name, default, ranges=ranges))
        else:
            allowed.append(AllowedShapes(feature.name, default))
    return tuple(allowed)


def combined(allowed: Sequence[AllowedShapes]) -> tuple[tuple[Shape, ...], ...]:
    """The calls to test a model at: the i-th representative of every input together
    (an input with fewer representatives repeats its last)."""
    reps = [a.representatives() for a in allowed]
    count = max((len(r) for r in reps), default=0)
    return tuple(tuple(r[min(i, len(r) - 1)] for r in reps) for i in range(count))


__all__ = ["AllowedShapes", "Shape", "combined", "read_allowed", "shape_id"]
