"""A MIL program as plain data: functions, blocks, ops and vars with their declared types.

:mod:`.milproto` builds these from a model's protobuf and weight files without
coremltools; :mod:`.plan` reads them exactly as it reads coremltools' own MIL objects
(``Function``, ``Block``, ``Operation``, ``Var``): the attribute names are the same,
and a var carries its declared numpy dtype and shape instead of a coremltools type.
A leaf (numpy only).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

#: What a var holds: a tensor, a scalar (rank 0), a state (iOS18 ``state<tensor>``),
#: a list (``make_list``), a dictionary, or a tuple.
VAR_KINDS = ("tensor", "scalar", "state", "list", "dict", "tuple")


@dataclass(eq=False)
class MilVar:
    """A named value: a function or block input, a const, or an op output.

    ``dtype`` and ``shape`` are the declared tensor dtype and shape (a None dim where
    the program leaves it open; ``()`` for a scalar); both are None for a var that is
    neither a tensor nor a scalar, or whose element type numpy cannot hold. A state's
    wrapped tensor is ``state_dtype`` / ``state_shape``. ``sym_type`` is the declared
    type as text, for messages.
    """

    name: str
    kind: str
    dtype: np.dtype[Any] | None = None
    shape: tuple[int | None, ...] | None = None
    val: Any = None
    op: MilOp | None = field(default=None, repr=False)
    sym_type: str = ""
    state_dtype: np.dtype[Any] | None = None
    state_shape: tuple[int | None, ...] | None = None


@dataclass(eq=False)
class MilOp:
    """One operation: ``inputs`` maps each input name to a var, or a tuple of vars for a
    tuple input (``concat(values=...)``)."""

    op_type: str
    name: str
    inputs: dict[str, MilVar | tuple[MilVar, ...]]
    outputs: list[MilVar]
    blocks: list[MilBlock] = field(default_factory=list)
    #: coremltools' scope records (the torch module path); a saved program has none.
    scopes: dict[str, Any] | None = None

    def __getattr__(self, name: str) -> Any:
        """An input by name (``op.x``, ``op.weight``), as coremltools' ops give them; None
        for one the op was not given (coremltools' None for an absent optional input)."""
        if name.startswith("_"):
            raise AttributeError(name)
        return self.__dict__.get("inputs", {}).get(name)


def find_ops(operations: list[MilOp], op_type: str | None = None) -> list[MilOp]:
    """Every op of ``operations`` and of their nested blocks, in program order, of
    ``op_type`` (all ops when None)."""
    found = []
    for op in operations:
        if op_type is None or op.op_type == op_type:
            found.append(op)
        for block in op.blocks:
            found.extend(find_ops(block.operations, op_type))
    return found


@dataclass(eq=False)
class MilBlock:
    """A block: the vars bound on entry, its operations in order, what it returns."""

    inputs: list[MilVar]
    operations: list[MilOp]
    outputs: list[MilVar]

    def find_ops(self, op_type: str | None = None) -> list[MilOp]:
        """Every op of this block and its nested blocks (of ``op_type``), in order."""
        return find_ops(self.operations, op_type)


@dataclass(eq=False)
class MilFunction:
    """A function: its inputs by name (tensors and states), then a block's fields."""

    inputs: dict[str, MilVar]
    operations: list[MilOp]
    outputs: list[MilVar]
    #: The opset (deployment target) name the function was loaded for, e.g. ``"iOS17"``.
    opset: str = ""

    def find_ops(self, op_type: str | None = None) -> list[MilOp]:
        """Every op of the function, nested ones included (of ``op_type``), in order."""
        return find_ops(self.operations, op_type)
