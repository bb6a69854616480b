"""The fixed-shape error: what the user passed, what the model was converted with, and
the paste-ready declaration that lets the shape they tried through.

A converted model accepts only its example inputs' shapes unless the conversion declares
others (``ct.EnumeratedShapes`` or ``ct.RangeDim``). This module writes that declaration
from the example shapes and the shape the user tried, so the message is the fix.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import messages
from .applies import applies

Shape = tuple[int, ...]


def _tensor_type(name: str, shape: str, integer: bool) -> str:
    dtype = ", dtype=np.int32" if integer else ""
    return f'ct.TensorType(name="{name}", shape={shape}{dtype})'


def _ranged(example: Shape, got: Shape) -> str:
    dims = [
        str(a) if a == b else f"ct.RangeDim(lower_bound={min(a, b)}, upper_bound={max(a, b)})"
        for a, b in zip(example, got, strict=True)
    ]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def declarations(
    names: Sequence[str], examples: Sequence[Shape], integer: Sequence[bool], index: int, got: Shape
) -> tuple[str, str | None]:
    """``convert_kwargs={"inputs": [...]}`` texts: enumerated (always) and ranged (when
    the rank is the same), declaring input ``index`` with both shapes and the others as they are."""
    enumerated, ranged = [], []
    for i, (name, example, is_int) in enumerate(zip(names, examples, integer, strict=True)):
        if i == index:
            enumerated.append(
                _tensor_type(name, f"ct.EnumeratedShapes(shapes=[{example}, {got}])", is_int)
            )
            if len(example) == len(got):
                ranged.append(_tensor_type(name, _ranged(example, got), is_int))
        else:
            enumerated.append(_tensor_type(name, str(example), is_int))
            ranged.append(_tensor_type(name, str(example), is_int))
    wrap = '@pytest.mark.coreml(convert_kwargs={{"inputs": [{}]}})'.format
    return wrap(", ".join(enumerated)), (wrap(", ".join(ranged)) if len(ranged) == len(names) else None)


def fixed_shape_message(model: Any, index: int, got: Shape) -> str:
    """The error for input ``index`` of shape ``got`` on a model converted at fixed shapes."""
    examples = [tuple(int(d) for d in x.shape) for x in model.example_inputs]
    names = list(model.input_names) or [f"x{i}" for i in range(len(examples))]
    names += [f"x{i}" for i in range(len(names), len(examples))]
    head = messages.WRONG_INPUT_SHAPE.format(
        index=index,
        name=names[index],
        got=got,
        model=type(model.torch_model).__name__,
        want=examples[index],
    )
    if model.settings.package is not None:  # built elsewhere: its own conversion declares shapes
        return head + messages.FIXED_SHAPE_PACKAGE.format(got=got)
    if not applies("convert_kwargs", model.stack.name):  # a stack that takes no declared shapes
        return head + messages.FIXED_SHAPE_EXAMPLES.format(got=got)
    if len(got) != len(examples[index]):  # no declaration changes a rank
        return head + messages.FIXED_SHAPE_RANK.format(rank=len(examples[index]))
    integer = [not getattr(x, "is_floating_point", lambda: True)() for x in model.example_inputs]
    enumerated, ranged = declarations(names, examples, integer, index, got)
    hint = messages.FIXED_SHAPE_DECLARE.format(got=got, enumerated=enumerated)
    if ranged is not None:
        hint += messages.FIXED_SHAPE_RANGE.format(ranged=ranged)
    return head + hint + messages.FIXED_SHAPE_OWN
