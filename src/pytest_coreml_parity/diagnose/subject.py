"""The model under diagnosis: how to (re)convert it, run it and get torch's answer.

There is one conversion path: :func:`pytest_coreml_parity.convert.convert_model`,
with the options the model was converted with (input names and dtypes, target,
torch.export) and only ``precision``/``fp32_ops`` changed. A failing test's own
program is used as it is (:meth:`Subject.from_model`), so the diagnosis looks at
exactly what the test ran. Conversions are counted so the search can report
its cost honestly.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from .._values import to_numpy
from ..convert import ConversionOptions, convert_model
from ..precisions import is_exact
from ..verdict import ToleranceValue
from .source import CodeLine, code_lines
from .torch_values import traced_values


class ModelUnderTest(Protocol):
    """What diagnosis reads from a failing test's model (the plugin's ``CoreMLModel``)."""

    @property
    def torch_model(self) -> Any: ...
    @property
    def example_inputs(self) -> tuple[Any, ...]: ...
    @property
    def options(self) -> ConversionOptions: ...
    @property
    def mlmodel(self) -> Any: ...
    @property
    def precision(self) -> str: ...
    @property
    def rtol(self) -> ToleranceValue: ...
    @property
    def atol(self) -> ToleranceValue: ...
    @property
    def search_fix(self) -> bool: ...


def as_arrays(inputs: Sequence[Any]) -> tuple[np.ndarray, ...]:
    """Tensors or arrays as numpy arrays (torch tensors detached to CPU)."""
    return tuple(to_numpy(x) for x in inputs)


def _tensors(inputs: Sequence[Any], like: Sequence[Any] | None = None) -> tuple[Any, ...]:
    """Tensors or arrays as torch tensors, cast to the dtypes of the tensors in ``like``."""
    import torch

    tensors = [x if isinstance(x, torch.Tensor) else torch.from_numpy(np.array(x)) for x in inputs]
    if like is not None:
        tensors = [
            t.to(example.dtype) if isinstance(example, torch.Tensor) else t
            for t, example in zip(tensors, like, strict=True)
        ]
    return tuple(tensors)


def torch_reference(torch_model: Any, inputs: Sequence[Any]) -> list[np.ndarray]:
    """torch's outputs on ``inputs`` (tensors), flattened in order, as numpy arrays."""
    import torch

    from ..outputs import leaves, structure_of

    with torch.no_grad():
        out = torch_model(*inputs)
    return [to_numpy(leaf) for leaf in leaves(out, structure_of(out))]  # by key (outputs.py)


@dataclass
class Subject:
    """A torch model, its example inputs and conversion options; converts on request.

    ``given`` maps (precision, fp32_ops) to programs that exist already (the
    failing test's own), which are returned instead of converting again.
    """

    torch_model: Any
    example_inputs: tuple[Any, ...]
    options: ConversionOptions
    conversions: int = 0
    given: dict[tuple[str, frozenset[str] | None], Any] = field(default_factory=dict)
    #: For a model with image inputs: the Core ML inputs (pixels) -> torch's tensors, and
    #: example Core ML inputs (the plugin's ``CoreMLModel.torch_tensors`` / ``example_feed``).
    torch_inputs: Any = None
    example_feed: tuple[Any, ...] | None = None
    _lines: dict[str, CodeLine] | None = None
    _trace: Any = None

    @classmethod
    def from_torch(
        cls, torch_model: Any, example_inputs: Sequence[Any], options: ConversionOptions | None = None
    ) -> Subject:
        """A subject for the public API: default options (trace, fp16, iOS16, auto dtypes)."""
        options = options or ConversionOptions(precision="fp16")
        return cls(torch_model.eval(), _tensors(example_inputs), options)

    @classmethod
    def from_model(cls, model: ModelUnderTest) -> Subject:
        """A subject for a failing test: its torch model, example inputs, options and program."""
        subject = cls(model.torch_model, tuple(model.example_inputs), model.options)
        if getattr(model, "images", None):  # pixels in, torch_preprocess (or scale/bias) for torch
            subject.torch_inputs = model.torch_tensors  # type: ignore[attr-defined]
            subject.example_feed = model.example_feed()  # type: ignore[attr-defined]
        if model.mlmodel is not None:
            subject.given[subject._key(model.options.precision, model.options.fp32_ops)] = model.mlmodel
        return subject

    @property
    def example_arrays(self) -> tuple[np.ndarray, ...]:
        if self.example_feed is not None:
            return as_arrays(self.example_feed)
        return as_arrays(self.example_inputs)

    def _torch(self, inputs: Sequence[np.ndarray]) -> tuple[Any, ...]:
        if self.torch_inputs is not None:
            return tuple(self.torch_inputs(tuple(inputs)))
        return _tensors(inputs, self.example_inputs)

    @staticmethod
    def _key(precision: str, fp32_ops: frozenset[str] | None) -> tuple[str, frozenset[str] | None]:
        return (precision, frozenset(fp32_ops) if fp32_ops and not is_exact(precision) else None)

    def model(self, precision: str, fp32_ops: frozenset[str] | None = None) -> Any:
        """The program at ``precision`` keeping ``fp32_ops`` in float32 (converted once)."""
        key = self._key(precision, fp32_ops)
        if key not in self.given:
            options = dataclasses.replace(self.options, precision=precision, fp32_ops=key[1])
            self.conversions += 1
            self.given[key] = convert_model(self.torch_model, self.example_inputs, options)
        return self.given[key]

    def reference(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """torch's outputs on ``inputs``, cast to the example inputs' dtypes."""
        return torch_reference(self.torch_model, self._torch(inputs))

    def trace(self) -> Any:
        """A ``torch.jit`` trace of our own (once), or None when the model does not trace."""
        if self._trace is None:
            try:
                import torch

                with torch.no_grad():
                    self._trace = torch.jit.trace(  # type: ignore[no-untyped-call]
                        self.torch_model, self.example_inputs, check_trace=False
                    )
            except Exception:
                self._trace = False
        return self._trace or None

    def code_lines(self) -> dict[str, CodeLine]:
        """Torch source lines from a trace of our own; debug names may differ from the
        conversion's, and :func:`.source.describe` drops a line whose op kind does not match."""
        if self._lines is None:
            traced = self.trace()
            self._lines = code_lines(traced) if traced is not None else {}
        return self._lines

    def torch_values(self, inputs: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """torch's intermediate values on ``inputs`` by debug name (empty for torch.export
        conversions, whose op names do not come from a trace)."""
        traced = None if self.options.use_export else self.trace()
        if traced is None:
            return {}
        return traced_values(traced, self._torch(inputs))

    def root_class(self) -> str:
        return type(self.torch_model).__name__

    def snippet(self, names: Sequence[str]) -> str:
        return convert_snippet(names, target=self.options.target)


def convert_snippet(names: Sequence[str], *, target: str = "iOS16") -> str:
    """Paste-ready ``ct.convert(...)`` code keeping ``names`` in float32."""
    listed = ", ".join(repr(n) for n in sorted(names))
    return (
        "from pytest_coreml_parity.op_names import Fp32Selector  # stable, line or internal names\n"
        f"FP32_OPS = {{{listed}}}\n"
        "mlmodel = ct.convert(\n"
        "    traced_model,\n"
        "    inputs=inputs,\n"
        '    convert_to="mlprogram",\n'
        f"    minimum_deployment_target=ct.target.{target},\n"
        "    compute_precision=ct.transform.FP16ComputePrecision(\n"
        "        op_selector=Fp32Selector(FP32_OPS, traced=traced_model)\n"
        "    ),\n"
        ")"
    )
