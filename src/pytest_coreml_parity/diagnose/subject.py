"""The model under diagnosis: how to (re)convert it, run it and get torch's answer.

Two sources: a torch model we convert ourselves (the public API), and the
plugin's ``CoreMLModel`` (at test failure), whose ``with_options`` converts
through the plugin's own cache. Both count the conversions they request, so the
search can report its cost honestly.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .names import scope_names
from .source import CodeLine, code_lines


def as_arrays(inputs: Sequence[Any]) -> tuple[np.ndarray, ...]:
    """Tensors or arrays as numpy arrays (torch tensors detached to CPU)."""
    out = []
    for x in inputs:
        if hasattr(x, "detach"):
            x = x.detach().cpu().numpy()
        out.append(np.asarray(x))
    return tuple(out)


def torch_reference(torch_model: Any, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
    """torch's outputs, flattened in order, as float64-safe numpy arrays."""
    import torch

    with torch.no_grad():
        out = torch_model(*(torch.from_numpy(np.array(x)) for x in inputs))
    flat: list[np.ndarray] = []
    stack = [out]
    while stack:
        item = stack.pop(0)
        if isinstance(item, (tuple, list)):
            stack[:0] = list(item)
        else:
            flat.append(item.detach().cpu().numpy())
    return flat


@dataclass
class TorchSubject:
    """A torch model we trace once and convert with our own op_selector."""

    torch_model: Any
    example_inputs: tuple[np.ndarray, ...]
    target: str = "iOS16"
    conversions: int = 0
    _traced: Any = None
    _cache: dict[tuple[str, frozenset[str] | None], Any] = field(default_factory=dict)

    def traced(self) -> Any:
        if self._traced is None:
            import torch

            with torch.no_grad():
                examples = tuple(torch.from_numpy(np.array(x)) for x in self.example_inputs)
                self._traced = torch.jit.trace(self.torch_model.eval(), examples)
        return self._traced

    def model(self, precision: str, fp32_ops: frozenset[str] | None = None) -> Any:
        key = (precision, fp32_ops if precision == "fp16" else None)
        if key not in self._cache:
            self._cache[key] = self._convert(precision, fp32_ops)
        return self._cache[key]

    def _convert(self, precision: str, fp32_ops: frozenset[str] | None) -> Any:
        from .._coremltools import import_coremltools

        ct = import_coremltools()
        if precision == "fp32":
            compute_precision = ct.precision.FLOAT32
        elif fp32_ops:
            keep = frozenset(fp32_ops)
            compute_precision = ct.transform.FP16ComputePrecision(
                op_selector=lambda op: op.name not in keep
            )
        else:
            compute_precision = ct.precision.FLOAT16
        inputs = [
            ct.TensorType(name=f"x{i}", shape=x.shape, dtype=_input_dtype(x))
            for i, x in enumerate(self.example_inputs)
        ]
        self.conversions += 1
        return ct.convert(
            self.traced(),
            inputs=inputs,
            convert_to="mlprogram",
            minimum_deployment_target=getattr(ct.target, self.target),
            compute_precision=compute_precision,
        )

    def reference(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return torch_reference(self.torch_model, inputs)

    def code_lines(self) -> dict[str, CodeLine]:
        return code_lines(self.traced())

    def root_class(self) -> str:
        return type(self.torch_model).__name__

    def snippet(self, names: Sequence[str]) -> str:
        return convert_snippet(names, target=self.target)


@dataclass
class PluginSubject:
    """The plugin's CoreMLModel; siblings come from ``with_options`` (and its cache)."""

    coreml_model: Any
    conversions: int = 0
    _lines: dict[str, CodeLine] | None = None

    @property
    def example_inputs(self) -> tuple[np.ndarray, ...]:
        return as_arrays(self.coreml_model.example_inputs)

    def model(self, precision: str, fp32_ops: frozenset[str] | None = None) -> Any:
        cm = self.coreml_model
        if precision == cm.precision and fp32_ops is None and cm.options.fp32_ops is None:
            return cm.mlmodel
        self.conversions += 1
        changes: dict[str, Any] = {"precision": precision, "fp32_ops": fp32_ops}
        return cm.with_options(**changes).mlmodel

    def reference(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        return torch_reference(self.coreml_model.torch_model, inputs)

    def code_lines(self) -> dict[str, CodeLine]:
        # The plugin's trace is not ours, so debug names may differ; source.describe
        # drops a code line whose torch op kind does not match the scope.
        if self._lines is None:
            try:
                import torch

                with torch.no_grad():
                    examples = tuple(torch.from_numpy(np.array(x)) for x in self.example_inputs)
                    self._lines = code_lines(torch.jit.trace(self.coreml_model.torch_model, examples))
            except Exception:
                self._lines = {}
        return self._lines

    def root_class(self) -> str:
        return type(self.coreml_model.torch_model).__name__

    def snippet(self, names: Sequence[str]) -> str:
        target = getattr(self.coreml_model.options, "target", "iOS16")
        return convert_snippet(names, target=target)


def _input_dtype(x: np.ndarray) -> Any:
    if x.dtype.kind in "iu":
        return np.int32
    if x.dtype == np.float16:
        return np.float16
    return np.float32


def convert_snippet(names: Sequence[str], *, target: str = "iOS16") -> str:
    """Paste-ready ``ct.convert(...)`` code keeping ``names`` in float32."""
    listed = ", ".join(repr(n) for n in sorted(names))
    return (
        f"FP32_OPS = {{{listed}}}\n"
        "mlmodel = ct.convert(\n"
        "    traced_model,\n"
        "    inputs=inputs,\n"
        '    convert_to="mlprogram",\n'
        f"    minimum_deployment_target=ct.target.{target},\n"
        "    compute_precision=ct.transform.FP16ComputePrecision(\n"
        "        op_selector=lambda op: op.name not in FP32_OPS\n"
        "    ),\n"
        ")"
    )


def scopes_of(mlmodel: Any) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    return scope_names(mlmodel)
