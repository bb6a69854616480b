"""What a lint rule reads: the converted program, its settings and the torch graph.

The Core ML program is read through public APIs only: the emulator's planned ops
(:attr:`~..emulator.Emulator.ops`, with constants, constexpr outputs materialized),
their declared dtypes, and the declared shapes from the model spec. The torch side is
what the plugin captured (a ``torch.jit`` trace or a ``torch.export`` program), and
torch source lines come from :mod:`..diagnose.source`, looked up only for hits.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from ..emulator import InputSpec, OpInfo

#: Compute-unit choices that may place ops on the Neural Engine / the GPU.
NE_UNITS: tuple[str, ...] = ("ALL", "CPU_AND_NE")
GPU_UNITS: tuple[str, ...] = ("ALL", "CPU_AND_GPU")

_FRAME = re.compile(r'File "(?P<path>[^"]+)", line (?P<line>\d+), in (?P<func>\S+)\n\s*(?P<code>.*)')


@dataclass
class LintProgram:
    """One program to lint, as the rules see it."""

    #: ``coreml`` (a MIL program: :attr:`ops`) or ``coreai`` (the torch.export graph).
    stack: str
    #: The precision it was converted at (``fp16``, ``palettize4``...), None if unknown.
    precision: str | None = None
    compute_units: str = "ALL"
    #: The program's opset (``iOS18``), or the Core AI deployment target, if known.
    target: str | None = None
    ops: tuple[OpInfo, ...] = ()
    states: tuple[InputSpec, ...] = ()
    #: ``torch.jit.ScriptModule`` (trace) or ``torch.export.ExportedProgram``, if known.
    torch_source: Any = None
    #: The MLModel (for torch scopes and declared shapes), if any.
    mlmodel: Any = None
    root_class: str | None = None
    function: str = "main"
    dtypes: Mapping[str, Any] = field(default_factory=dict, repr=False)

    # ------------------------------------------------------------------ building

    @classmethod
    def from_mlmodel(
        cls,
        mlmodel: Any,
        *,
        precision: str | None = None,
        compute_units: str = "ALL",
        torch_source: Any = None,
        root_class: str | None = None,
        profile: str = "typed",
        function: str | None = None,
    ) -> LintProgram:
        """The program of an MLModel (or .mlpackage path), planned once and shared with the
        emulator backend's cache, so a model that already ran costs no second plan."""
        from ..emulator import _emulator_for

        name = function or getattr(mlmodel, "function_name", None) or "main"
        emulator = _emulator_for(mlmodel, name, profile)
        return cls(
            stack="coreml", precision=precision, compute_units=compute_units,
            target=emulator.opset, ops=emulator.ops, states=emulator.states,
            torch_source=torch_source, mlmodel=mlmodel, root_class=root_class,
            function=name, dtypes=emulator.plan.var_dtypes,
        )  # fmt: skip

    # ------------------------------------------------------------------ reading

    def dtype(self, var: str) -> np.dtype[Any] | None:
        """The declared dtype of variable ``var`` (None: not a tensor, or unknown)."""
        value = self.dtypes.get(var)
        return value if isinstance(value, np.dtype) else None

    @cached_property
    def fp16(self) -> bool:
        """Whether any op of the program computes in float16."""
        f16 = np.dtype(np.float16)
        return any(self.dtype(out) == f16 for op in self.ops for out in op.outputs)

    @cached_property
    def producers(self) -> dict[str, OpInfo]:
        return {out: op for op in self.ops for out in op.outputs}

    @cached_property
    def consumers(self) -> dict[str, list[OpInfo]]:
        found: dict[str, list[OpInfo]] = {}
        for op in self.ops:
            for names in op.inputs.values():
                for name in names:
                    found.setdefault(name, []).append(op)
        return found

    def ops_of(self, *op_types: str) -> Iterator[OpInfo]:
        return (op for op in self.ops if op.op_type in op_types)

    def producer_type(self, var: str) -> str | None:
        op = self.producers.get(var)
        return op.op_type if op is not None else None

    def shape(self, var: str) -> tuple[int | None, ...] | None:
        """The declared shape of ``var`` (None dims where symbolic), from the model spec."""
        return self._shapes.get(var)

    @cached_property
    def _shapes(self) -> dict[str, tuple[int | None, ...]]:
        if self.mlmodel is None:
            return {}
        spec = _spec(self.mlmodel)
        if spec is None or spec.WhichOneof("Type") != "mlProgram":
            return {}
        function = spec.mlProgram.functions.get(self.function)
        if function is None:
            return {}
        shapes: dict[str, tuple[int | None, ...]] = {}
        for name, value in zip(
            (i.name for i in function.inputs), (i.type for i in function.inputs), strict=True
        ):
            shapes[name] = _proto_shape(value)
        for block in function.block_specializations.values():
            _walk_block(block, shapes)
        return shapes

    def uses_ne(self) -> bool:
        return self.compute_units in NE_UNITS

    def uses_gpu(self) -> bool:
        return self.compute_units in GPU_UNITS

    # ------------------------------------------------------------------ torch lines

    def torch_line(self, op_name: str) -> str | None:
        """Where in the torch model the op ``op_name`` came from, as far as known."""
        try:
            from ..diagnose.source import describe

            found = describe(op_name, self._scopes, self._lines_for(op_name), self.root_class)
        except Exception:  # a missing scope or an odd trace: say nothing rather than guess
            found = None
        return found if found is not None else self._export_line(op_name)

    @cached_property
    def _scopes(self) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
        if self.mlmodel is None:
            return {}
        from ..scopes import scope_names

        return scope_names(self.mlmodel)

    @cached_property
    def _graph(self) -> Any:
        """The captured trace's graph as coremltools numbers it (None: no trace)."""
        if self.torch_source is None or is_exported(self.torch_source):
            return None
        from ..op_names import converter_graph

        try:
            return converter_graph(self.torch_source)
        except Exception:  # not a ScriptModule
            return None

    def _lines_for(self, op_name: str) -> dict[str, Any]:
        """The source of the torch value ``op_name`` came from (only that node's: a hit's)."""
        names = self._scopes.get(op_name, ((), ()))[1]
        if not names or self._graph is None:
            return {}
        from ..diagnose.source import code_lines

        return code_lines(self.torch_source, names[-1:], graph=self._graph)

    def _export_line(self, op_name: str) -> str | None:
        if not is_exported(self.torch_source):
            return None
        from ..op_names import fp32_name

        base = fp32_name(op_name)
        for node in self.torch_source.graph.nodes:
            if node.name == base or base.startswith(node.name + "_"):
                return node_line(node)
        return None


def is_exported(source: Any) -> bool:
    return source is not None and type(source).__name__ == "ExportedProgram"


def node_line(node: Any) -> str | None:
    """``model.py:12: h = x.to(torch.float32)`` from an fx node's stack trace (last frame)."""
    trace = str(node.meta.get("stack_trace") or "")
    frames = list(_FRAME.finditer(trace))
    if not frames:
        return None
    last = frames[-1]
    return f"{last['func']}, {Path(last['path']).name}:{last['line']}: {last['code'].strip()}"


def _spec(mlmodel: Any) -> Any:
    if isinstance(mlmodel, (str, Path)):
        from .._coremltools import import_coremltools

        ct = import_coremltools()
        return ct.utils.load_spec(str(mlmodel))
    get_spec = getattr(mlmodel, "get_spec", None)
    return get_spec() if get_spec is not None else None


def _proto_shape(value_type: Any) -> tuple[int | None, ...]:
    if value_type.WhichOneof("type") == "stateType":
        value_type = value_type.stateType.wrappedType
    if value_type.WhichOneof("type") != "tensorType":
        return ()
    return tuple(
        int(d.constant.size) if d.WhichOneof("dimension") == "constant" else None
        for d in value_type.tensorType.dimensions
    )


def _walk_block(block: Any, shapes: dict[str, tuple[int | None, ...]]) -> None:
    for op in block.operations:
        for out in op.outputs:
            shapes[out.name] = _proto_shape(out.type)
        for nested in op.blocks:
            _walk_block(nested, shapes)


__all__ = ["GPU_UNITS", "NE_UNITS", "LintProgram", "is_exported", "node_line"]
