"""``CoreMLModel``: what the ``coreml_model`` fixture gives a test.

A ``CoreMLModel`` is created per (test function, precision) at collection and
bound to the test's ``torch_model`` and ``example_inputs`` at setup. Binding
goes through the session's :class:`Runtime` (conversion cache + backend), so
every hypothesis example and every test sharing a model reuses one conversion.

The model's *stack* (``stacks.STACKS``: Core ML or Core AI) captures, keys, converts
and loads at bind; the model asks its stack object, never compares a name.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import sys
import weakref
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import messages
from ._values import flatten, to_numpy
from .backends import Backend
from .cache import ConversionCache, Entry
from .convert import (
    ConversionError,
    ConversionOptions,
    default_input_names,
    input_signature,
    restored_buffers,
    state_specs,
    unflatten,
)
from .errors import InputMismatchError, NotBoundError
from .model_images import ImageInputs
from .model_settings import ModelSettings
from .outputs import describe_keys, is_keyed, labels, numpy_tree
from .sequence import StatefulSequence, Step
from .shape_hint import fixed_shape_message
from .shapes import AllowedShapes, Shape, read_allowed
from .stacks import DEFAULT_STACKS, Stack, stack

if TYPE_CHECKING:
    from .headroom import HeadroomLog
    from .verdict import GateValue, ToleranceValue
    from .verdict_log import VerdictLog


class Runtime:
    """Session-wide: the conversion cache and each stack's runner."""

    def __init__(self, cache: ConversionCache, backend_choice: str) -> None:
        self.cache = cache
        #: The ``--coreml-backend`` choice (Core ML's runner: auto, coreml, emulator).
        self.backend_choice = backend_choice
        self._runners: dict[str, tuple[Backend | None, str | None]] = {}
        #: Why the last bind rebuilt a damaged disk-cache entry, else None.
        self.last_rebuilt: str | None = None
        #: (name, shape) of the buffers the last captured model's ``forward`` updates.
        self.last_states: tuple[tuple[str, tuple[int, ...]], ...] = ()
        #: What the last bind captured (a trace or an ExportedProgram): the lint's torch graph.
        self.last_captured: Any = None
        self._memory_only: ConversionCache | None = None

    def memory_cache(self) -> ConversionCache:
        """The session-only cache of tests that opt out of the disk cache (cache=False)."""
        if self._memory_only is None:
            self._memory_only = ConversionCache(None)
            self._memory_only.stats = self.cache.stats  # one count for the summary
        return self._memory_only

    def runner(self, of: Stack) -> tuple[Backend | None, str | None]:
        """(the runner of stack ``of``, None), or (None, why it cannot run here); resolved once."""
        if of.name not in self._runners:
            self._runners[of.name] = of.resolve_runner(self.backend_choice)
        return self._runners[of.name]


_LIVE: weakref.WeakSet[CoreMLModel] = weakref.WeakSet()


def live_models() -> list[CoreMLModel]:
    """Models alive in this process (assert_finite finds the one that made its outputs)."""
    return list(_LIVE)


_DTYPE_CODES = {65568: "float32", 65552: "float16", 65600: "float64", 131104: "int32"}


class CoreMLModel:
    """A converted model at one precision; call it like the torch model.

    ``coreml_model(*inputs)`` takes tensors or arrays and returns numpy arrays
    in the torch model's output structure. ``last_inputs``/``last_outputs``
    remember the most recent call (``assert_finite`` finds its model by them).

    Diagnosis reads the public attributes below (``torch_model``,
    ``example_inputs``, ``options``, ``mlmodel``, ``precision``, ``rtol``, ``atol``,
    ``search_fix``) through :class:`~.diagnose.subject.ModelUnderTest`; the plugin
    reads ``report_dir`` and ``node_id`` to write report files.
    """

    def __init__(self, settings: ModelSettings, runtime: Runtime | None = None) -> None:
        #: The stack this model is converted for and run on (``stacks.STACKS``).
        self.stack: Stack = stack(settings.stack)
        settings = settings.with_options(self.stack.converted_options(settings.options))
        #: The test's resolved settings record and this model's stack and precision.
        self.settings = settings
        self.runtime = runtime
        self.options: ConversionOptions = settings.options
        self.precision: str = settings.options.precision
        #: The ``CoreAIProgram`` of a bound coreai model (``mlmodel`` stays None).
        self.program: Any = None
        #: Set by the plugin for a test that wants headroom; every emulator call then
        #: records per-op peaks into it (see :mod:`.headroom`).
        self.headroom: HeadroomLog | None = None
        #: Set by the plugin when a CI output (JUnit, JSON report, dumps) wants this
        #: test's verdicts; ``assert_parity`` adds each call (see :mod:`.verdict_log`).
        self.verdicts: VerdictLog | None = None
        #: Largest finite |value| of an fp16-typed op over 65504 in the last recorded call.
        self.last_peak: float | None = None
        self.node_id: str | None = None
        self.mlmodel: Any = None
        self.backend: Backend | None = None
        self.torch_model: Any = None
        self.example_inputs: tuple[Any, ...] = ()
        self.input_names: tuple[str, ...] = ()
        self.output_names: tuple[str, ...] = ()
        self.input_dtypes: tuple[str | None, ...] = ()
        self.package_path: Path | None = None
        self.last_inputs: tuple[Any, ...] | None = None
        self.last_outputs: Any = None
        self.event: str | None = None
        #: The input shapes the program allows, by Core ML input name (flexible shapes).
        self.allowed_shapes: dict[str, AllowedShapes] = {}
        #: With ``package=``: why the verdict uses :attr:`precision` (read from the program).
        self.precision_origin: str | None = None
        self._structure: Any = None
        #: The image inputs the program declares, and the test's ``torch_preprocess``.
        self.image_inputs = ImageInputs()
        #: A stateful model's sequence (buffers, states, the torch copy, the steps).
        self.sequence = StatefulSequence()
        #: A causal LM's :class:`~.decoders.recipe.Decoder` (recipe, the user's LM), else None.
        self.decoder: Any = None
        _LIVE.add(self)

    # ------------------------------------------------------------------ settings (read, never copied)

    @property
    def rtol(self) -> ToleranceValue:
        return self.settings.rtol

    @property
    def atol(self) -> ToleranceValue:
        return self.settings.atol

    @property
    def gates(self) -> Mapping[str, GateValue]:
        """Configured verdict gates by name (None values: the preset's)."""
        return self.settings.gates

    @property
    def search_fix(self) -> bool:
        return self.settings.search_fix

    @property
    def report_dir(self) -> Path | None:
        return self.settings.report_dir

    @property
    def guide(self) -> bool:
        return self.settings.guide

    @property
    def emulator_profile(self) -> str:
        return self.settings.emulator_profile

    def __repr__(self) -> str:
        name = type(self.torch_model).__name__ if self.torch_model is not None else "unbound"
        backend = self.backend.name if self.backend is not None else "?"
        if self.stack.name not in DEFAULT_STACKS:
            return f"CoreMLModel({name}, {self.stack.name}-{self.precision}, {backend})"
        return f"CoreMLModel({name}, {self.precision}, {backend})"

    def resolve_backend(self) -> tuple[Backend | None, str | None]:
        """(the runner of this model's stack, None), or (None, why it cannot run here)."""
        if self.runtime is None:
            raise NotBoundError(messages.NOT_BOUND)
        backend, reason = self.runtime.runner(self.stack)
        return (backend.with_profile(self.emulator_profile) if backend is not None else None), reason

    def skip_reason(self) -> str | None:
        """Why this model's stack cannot run its precision at all, else None."""
        return self.stack.skip_reason(self.precision)

    # ------------------------------------------------------------------ binding

    def bind(
        self,
        torch_model: Any,
        example_inputs: Any,
        node_id: str | None = None,
        *,
        convert: Any = None,
        convert_kwargs: Mapping[str, Any] | None = None,
        decoder: Any = None,
    ) -> str:
        """Convert (or fetch from cache) for these fixtures; return how it was obtained.

        ``convert`` is the test's ``coreml_convert`` callable, if it has one: it then
        converts instead of the plugin's recipe (keyed by its code, convert.function_key).
        ``convert_kwargs`` (the ``coreml_convert_kwargs`` fixture, validated) apply unless
        the marker gave its own.
        Raises :class:`ConversionError` when the model does not convert.
        """
        import torch

        if not isinstance(torch_model, torch.nn.Module):
            raise TypeError(messages.BAD_TORCH_MODEL.format(type=type(torch_model).__name__))
        if isinstance(example_inputs, torch.Tensor):
            example_inputs = (example_inputs,)
        if not isinstance(example_inputs, (tuple, list)) or not all(
            isinstance(x, torch.Tensor) for x in example_inputs
        ):
            got = type(example_inputs).__name__
            if isinstance(example_inputs, (tuple, list)):
                got += " of " + ", ".join(type(x).__name__ for x in example_inputs)
            raise TypeError(messages.BAD_EXAMPLE_INPUTS.format(got=got))
        if self.runtime is None:
            raise NotBoundError(messages.NOT_BOUND)
        example_inputs = tuple(example_inputs)
        self.decoder = None
        if convert is None and self.settings.package is None and self.stack.wraps_decoders:
            from .decoders.bind import wrap_causal_lm  # a raw causal LM: the recipe's wrapper

            wrapped = wrap_causal_lm(torch_model, example_inputs, decoder, convert_kwargs)
            if wrapped is not None:
                torch_model, example_inputs, convert_kwargs, self.decoder = wrapped
        # From the test's settings, never from the last bind: one session-scoped model
        # serves every parametrization of a test (a causal LM's recipe inputs and names
        # must not reach the next model bound to it).
        options = self.settings.options
        if self.decoder is not None:  # the recipe names its inputs
            options = dataclasses.replace(options, input_names=None)
        if options.input_names is None:
            options = dataclasses.replace(
                options, input_names=default_input_names(torch_model, len(example_inputs))
            )
        self.torch_model = torch_model
        self.example_inputs = example_inputs
        self.node_id = node_id
        self.last_inputs = self.last_outputs = None
        self.last_peak = None
        if self.settings.package is not None:
            return self._bind_package(self.settings.package, torch_model, example_inputs, options)
        return self.stack.bind(
            self, torch_model, example_inputs, options, convert=convert, convert_kwargs=convert_kwargs
        )

    def load_package_entry(self, entry: Entry, event: str, options: ConversionOptions) -> str:
        """Load a Core ML package the stack obtained (``entry``); warm it up unless reused."""
        assert self.runtime is not None
        self.event = event
        if entry.error is not None:
            self.mlmodel = None
            raise entry.error
        self.options = options
        self.backend = self.resolve_backend()[0]
        self.mlmodel = entry.mlmodel
        if self.settings.function is not None:
            self.mlmodel = self._select_function(entry, self.settings.function)
        self.package_path = entry.path
        self._structure = entry.structure
        description = _description(self.mlmodel.get_spec(), self.settings.function)
        self.input_names = tuple(i.name for i in description.input)
        self.output_names = tuple(o.name for o in description.output)
        self.input_dtypes = tuple(
            _DTYPE_CODES.get(i.type.multiArrayType.dataType) for i in description.input
        )
        self.allowed_shapes = {a.name: a for a in read_allowed(description)}
        from .emulator.image_inputs import read_images

        self.image_inputs.declared = read_images(description, self.settings.function or "main")
        self._bind_state(self.runtime.last_states, description)
        if event != "memory":
            # Plan (emulator) or compile (Core ML) now, so the first hypothesis example
            # is not slower than the rest; this also proves the model runs.
            self(*self.example_feed())
            self.last_inputs = self.last_outputs = None
            self.reset_state()
        return event

    # ------------------------------------------------------------------ state

    @property
    def stateful(self) -> bool:
        """Whether ``forward`` updates buffers, or the program declares states."""
        return self.sequence.stateful

    @property
    def steps(self) -> list[Step]:
        """Every step of this test's sequence so far (a stateful model), in order."""
        return self.sequence.steps

    @property
    def state_buffers(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """(name, shape) of each torch buffer ``forward`` updates (a stateful model)."""
        return self.sequence.state_buffers

    @property
    def frozen_buffers(self) -> tuple[tuple[str, tuple[int, ...]], ...]:
        """Those of :attr:`state_buffers` the program holds no state for (frozen)."""
        return self.sequence.frozen_buffers

    @property
    def torch_state_model(self) -> Any:
        """This test's deep copy of ``torch_model``, whose buffers advance with the steps."""
        return self.sequence.torch_model

    @property
    def state(self) -> Any:
        """The runner's state (``EmulatorState`` / ``MLState``) of this test's sequence."""
        return self.sequence.state

    def _bind_state(
        self, updated: tuple[tuple[str, tuple[int, ...]], ...], description: Any
    ) -> None:
        """Match the buffers ``forward`` updates with the program's states; start fresh."""
        self.sequence.bind(updated, description)
        self.reset_state()

    def reset_state(self) -> None:
        """Start a new sequence: the torch side a fresh deep copy of ``torch_model``, the
        Core ML side a fresh state holding the torch buffers' initial values (zeros for
        any state no buffer matches). Binding calls it, so each test starts fresh;
        call it yourself to start over within a test (e.g. per Hypothesis example)."""
        if self.decoder is not None:
            self.decoder.position = 0
        self.sequence.reset(self.torch_model, self.backend, self.mlmodel)

    def _bind_package(
        self, path: Path, torch_model: Any, example_inputs: tuple[Any, ...], options: ConversionOptions
    ) -> str:
        """Bind to a built package (no conversion): load, map inputs, read the precision."""
        import torch

        from .convert import count_leaves, output_structure
        from .package import load_package

        backend, reason = self.resolve_backend()
        if backend is None:
            raise NotBoundError(str(reason))
        assert options.input_names is not None
        loaded = load_package(
            path, torch_model, example_inputs, options.input_names, backend,
            options.compute_units, self.emulator_profile, self.settings.package_inputs,
        )  # fmt: skip
        with torch.no_grad(), restored_buffers(torch_model) as updated:
            reference = torch_model(*example_inputs)
        structure = output_structure(reference)
        want = count_leaves(structure)
        if want != len(loaded.output_names):
            from .errors import PackageError

            raise PackageError(
                messages.PACKAGE_OUTPUT_COUNT.format(
                    package=path.name, got=len(loaded.output_names),
                    names=list(loaded.output_names), model=type(torch_model).__name__, want=want,
                )
            )  # fmt: skip
        precision = self.settings.package_precision
        self.precision_origin = "marker precision=" if precision is not None else loaded.why
        self.precision = precision if precision is not None else loaded.precision
        self.options = dataclasses.replace(options, precision=self.precision)
        self.backend = backend
        self.mlmodel = loaded.mlmodel
        self.package_path = path
        self._structure = structure
        self.input_names = loaded.input_names
        self.output_names = loaded.output_names
        self.input_dtypes = loaded.input_dtypes
        self.allowed_shapes = loaded.allowed
        from .emulator.image_inputs import read_images

        self.image_inputs.declared = read_images(self.mlmodel.get_spec().description)
        self.event = "package"
        self._bind_state(
            state_specs(torch_model, updated), _description(self.mlmodel.get_spec(), None)
        )
        return "package"

    # ------------------------------------------------------------------ flexible shapes

    def declared_shapes(self) -> tuple[tuple[Shape, ...], ...]:
        """The input shapes to test at, one tuple (a shape per input) per call: every
        enumerated shape and image size; for ranged dims, the lower bounds, an interior
        value and the upper bounds (see :func:`.shapes.combined`). Fixed inputs keep their
        shape; an image input shows as the ``(1, C, H, W)`` tensor torch sees."""
        if self.mlmodel is None and self.program is None:
            raise NotBoundError(messages.NOT_BOUND)
        from .shape_inputs import declared_shapes

        return declared_shapes(self)

    def inputs_for_shapes(self, seed: int = 0) -> list[tuple[Any, ...]]:
        """Inputs at every :meth:`declared_shapes`: pixels (``uint8`` ``(H, W, C)``) for
        an image input; else ``example_inputs`` where the shape matches, else seeded
        ``torch.randn`` (floats) or ``randint`` over the example's range (integers)."""
        from .shape_inputs import inputs_for_shapes

        return inputs_for_shapes(self, seed)

    def _select_function(self, entry: Entry, name: str) -> Any:
        """The package's function ``name`` (marker ``function=``) as its own MLModel."""
        spec = entry.mlmodel.get_spec()
        functions = [f.name for f in spec.description.functions]
        if name not in functions:
            where = f"@pytest.mark.coreml in {self.node_id}: function"
            raise ConversionError(
                messages.FUNCTION_NOT_FOUND.format(
                    where=where, name=name, known=", ".join(functions) or "one function, main"
                )
            )
        path = entry.path or getattr(entry.mlmodel, "package_path", None)
        if self.backend is None or not self.backend.on_device:  # no coremltools import
            from .emulator.saved import SavedModel

            return SavedModel(str(path), function_name=name)
        from ._coremltools import import_coremltools

        ct = import_coremltools()
        return ct.models.MLModel(str(path), function_name=name)

    def load_program_entry(self, entry: Entry, event: str, options: ConversionOptions) -> str:
        """Load a Core AI program the stack obtained (``entry``); compile it in the worker unless reused."""
        self.event = event
        if entry.error is not None:
            self.program = None
            raise entry.error
        self.options = options
        self.backend = self.resolve_backend()[0]
        self.program = entry.mlmodel
        self.mlmodel = None
        self.package_path = entry.path
        self.input_names = tuple(spec.name for spec in self.program.inputs)
        self.output_names = tuple(spec.name for spec in self.program.outputs)
        self.input_dtypes = tuple(spec.dtype for spec in self.program.inputs)
        if event != "memory":  # compile in the worker now; this also proves the program runs
            self(*self.example_inputs)
            self.last_inputs = self.last_outputs = None
        return event

    def with_options(self, **changes: Any) -> CoreMLModel:
        """A sibling converted with changed :class:`ConversionOptions` (same cache, backend)."""
        settings = self.settings.with_options(dataclasses.replace(self.options, **changes))
        sibling = CoreMLModel(settings, self.runtime)
        sibling.bind(self.torch_model, self.example_inputs, self.node_id)
        return sibling

    def to_mlmodel(self) -> Any:
        """coremltools' ``MLModel`` of the bound Core ML program: :attr:`mlmodel` itself
        after a conversion; after a disk-cache hit on the emulator, where :attr:`mlmodel`
        is an ``emulator.SavedModel``, the ``MLModel`` it builds (importing coremltools)."""
        if self.mlmodel is None:
            raise NotBoundError(messages.NOT_BOUND if self.program is None else messages.NO_MLMODEL)
        from .emulator.saved import as_mlmodel

        return as_mlmodel(self.mlmodel)

    # ------------------------------------------------------------------ running

    def prepare(self, inputs: Sequence[Any]) -> tuple[Any, ...]:
        """Validate ``inputs`` against the example inputs; return them as numpy arrays."""
        __tracebackhide__ = True  # an input error shows the test's line and the message only
        if self.mlmodel is None and self.program is None:
            raise NotBoundError(messages.NOT_BOUND)
        model = type(self.torch_model).__name__
        if self.decoder is not None:  # token ids alone: the recipe adds its other inputs
            inputs = self.decoder.complete(tuple(inputs))
        if len(inputs) != len(self.example_inputs):
            raise InputMismatchError(
                messages.WRONG_INPUT_COUNT.format(
                    got=len(inputs),
                    model=model,
                    want=len(self.example_inputs),
                    signature=list(input_signature(self.example_inputs)),
                )
            )
        arrays = []
        for i, (x, example) in enumerate(zip(inputs, self.example_inputs, strict=True)):
            image = self.images.get(self.input_names[i]) if i < len(self.input_names) else None
            if image is not None:  # pixels, checked against the declared image
                from .emulator.image_inputs import pixels

                try:
                    arrays.append(pixels(x, image))
                except ValueError as exc:
                    bad: str | None = str(exc)
                else:
                    bad = None
                if bad is not None:  # outside the except block: the message is printed once
                    raise InputMismatchError(bad)
                continue
            array = to_numpy(x)
            allowed = self.allowed_shapes.get(self.input_names[i]) if i < len(self.input_names) else None
            if allowed is not None and allowed.flexible:
                if not allowed.allows(array.shape):
                    raise InputMismatchError(
                        messages.FLEXIBLE_INPUT_SHAPE.format(
                            index=i, name=self.input_names[i], got=tuple(array.shape),
                            allowed=allowed.describe(),
                        )
                    )  # fmt: skip
            elif tuple(array.shape) != tuple(example.shape):  # with how to declare the shape
                raise InputMismatchError(fixed_shape_message(self, i, tuple(array.shape)))
            arrays.append(array)
        return tuple(arrays)

    # ------------------------------------------------------------------ image inputs

    @property
    def images(self) -> dict[str, Any]:
        """Inputs the program declares as images (``ct.ImageType``), by name."""
        return self.image_inputs.declared

    @property
    def torch_preprocess(self) -> Any:
        """The test's ``torch_preprocess(pixels) -> tensor`` fixture, if any."""
        return self.image_inputs.preprocess

    @torch_preprocess.setter
    def torch_preprocess(self, preprocess: Any) -> None:
        self.image_inputs.preprocess = preprocess

    def torch_tensors(self, arrays: tuple[Any, ...]) -> list[Any]:
        """The torch inputs for Core ML inputs ``arrays`` (as :meth:`prepare` returns them):
        the same values in the example dtypes; image inputs through :meth:`torch_images`."""
        import torch

        tensors = [
            torch.from_numpy(a.copy()).to(example.dtype)
            for a, example in zip(arrays, self.example_inputs, strict=True)
        ]
        for i, (array, _side) in self.torch_images(arrays).items():
            tensors[i] = torch.from_numpy(array).to(self.example_inputs[i].dtype)
        return tensors

    def example_feed(self) -> tuple[Any, ...]:
        """Core ML inputs standing for the example inputs: a mid-grey image for an image input."""
        return self.image_inputs.warmup(self.example_inputs, self.input_names)

    def preprocessing(self) -> dict[str, Any]:
        """Per image input, the scale and bias its program applies (:class:`.images.Preprocessing`)."""
        return self.image_inputs.preprocessing(self.mlmodel, self.emulator_profile)

    def torch_images(self, arrays: tuple[Any, ...]) -> dict[int, tuple[Any, str]]:
        """Per image input (by position), the tensor PyTorch gets for its pixels in
        ``arrays`` and which preprocessing made it (``torch_preprocess`` or the declared one)."""
        return self.image_inputs.torch_images(arrays, self.input_names, self.mlmodel, self.emulator_profile)

    def run_named(self, feed: dict[str, Any]) -> dict[str, Any]:
        """Run on a feed keyed by Core ML input names; outputs keyed by output name."""
        return self._run_named(feed, peaks=False)

    def _run_named(self, feed: dict[str, Any], *, peaks: bool) -> dict[str, Any]:
        """Run; on the emulator, record the run when ``peaks`` or a headroom log asks."""
        import numpy as np

        if self.program is not None and self.backend is not None:
            with np.errstate(over="ignore"):  # fp16 inputs overflow to inf, as on device
                arrays = self.program.feed(*[feed[name] for name in self.input_names])
            return self.backend.predict(self.program, arrays)
        if self.mlmodel is None or self.backend is None:
            raise NotBoundError(messages.NOT_BOUND)
        cast = {}
        for name, dtype in zip(self.input_names, self.input_dtypes, strict=True):
            value = np.asarray(feed[name])
            with np.errstate(over="ignore"):  # fp16 inputs overflow to inf, as on device
                cast[name] = value.astype(dtype) if dtype is not None else value
        extra = {k: v for k, v in feed.items() if k not in cast}
        full = {**cast, **extra}
        if self.images and self.backend.on_device:  # Core ML's predict takes PIL images
            self.image_inputs.as_pil(full)
        with _one_thread_if_small(self.torch_model, list(cast.values())):
            if (peaks or self.headroom is not None) and self.backend.records:
                from .headroom import FP16_MAX, emulator_for, fp16_peak_ratio

                emulator = emulator_for(self.mlmodel, self.emulator_profile)
                if self.headroom is None:  # the peak alone: no recording of every value
                    outputs, peak = emulator.run_fp16_peak(full, state=self.state)
                    self.last_peak = None if peak is None else peak / FP16_MAX
                    return outputs
                recording = emulator.record(full, state=self.state)
                self.last_peak = fp16_peak_ratio(recording)
                self.headroom.add(recording)
                return recording.outputs
            if self.state is not None:
                return self.backend.predict_stateful(self.mlmodel, full, self.state)
            return self.backend.predict(self.mlmodel, full)

    def __call__(self, *inputs: Any) -> Any:
        __tracebackhide__ = True
        arrays = self.prepare(inputs)
        if self.torch_state_model is None:
            return self.run_prepared(arrays)
        # A stateful model advances both sides, so a later assert_parity compares the
        # same step of the same sequence; the step is recorded unjudged.
        expected = self.reference_prepared(arrays)
        result = self.run_prepared(arrays)
        self.steps.append(unjudged_step(len(self.steps) + 1, result, expected))
        return result

    def run_prepared(self, arrays: tuple[Any, ...], *, peaks: bool = False) -> Any:
        """``self(*arrays)`` for arrays :meth:`prepare` returned; ``peaks`` records the run
        on the emulator and sets :attr:`last_peak` (what guided fuzzing targets)."""
        outputs = self._run_named(dict(zip(self.input_names, arrays, strict=True)), peaks=peaks)
        leaves = [outputs[name] for name in self.output_names]
        if self.program is not None:
            # fp16 programs return float16: widen (exactly) so the verdict compares
            # against torch fp32, never against torch at the program's dtype.
            leaves = [_widen(leaf) for leaf in leaves]
            result = self.program.structure(dict(zip(self.output_names, leaves, strict=True)))
        else:
            result = unflatten(self._structure, iter(leaves))
        self.last_inputs = arrays
        self.last_outputs = result
        return result

    @property
    def output_keys(self) -> tuple[str, ...]:
        """Each output's key (``logits``, ``0.boxes``) when the torch model returns dicts,
        ``ModelOutput``s or non-tensor leaves (outputs by key, see outputs.py), else ()."""
        if self._structure is None or not is_keyed(self._structure):
            return ()
        return labels(self._structure)

    @property
    def keys_note(self) -> str | None:
        """Which keys are compared and which leaves are not outputs (failure messages)."""
        return None if self._structure is None else describe_keys(self._structure)

    def flat_outputs(self, result: Any) -> list[Any]:
        """Leaves of a result in output order."""
        return flatten(result)

    def reference(self, *inputs: Any) -> Any:
        """The torch model's output on ``inputs`` (validated like a Core ML call), as numpy."""
        return self.reference_prepared(self.prepare(inputs))

    def reference_prepared(self, arrays: tuple[Any, ...]) -> Any:
        """:meth:`reference` for arrays :meth:`prepare` returned; a stateful model's torch
        side (:attr:`torch_state_model`) advances one step."""
        import torch

        torch_model = self.torch_state_model if self.torch_state_model is not None else self.torch_model
        tensors = self.torch_tensors(arrays)
        with _one_thread_if_small(self.torch_model, tensors), torch.no_grad():
            result = torch_model(*tensors)
        tree = numpy_tree(result, self._structure)  # by key, like the Core ML side
        if self.torch_state_model is not None:  # outputs may alias buffers the next step updates
            return copy.deepcopy(tree)
        return tree


def unjudged_step(step: int, result: Any, expected: Any) -> Step:
    """The :class:`Step` of a bare call: worst abs/rel error over every output
    (:func:`.verdict.worst_errors`; an output whose shape differs is left out)."""
    import numpy as np

    from .verdict import worst_errors

    worst_abs = worst_rel = 0.0
    for got, want in zip(flatten(result), flatten(expected), strict=False):
        g, w = np.asarray(got), np.asarray(want)
        if g.size != w.size:
            continue
        max_abs, max_rel = worst_errors(g, w)
        worst_abs, worst_rel = max(worst_abs, max_abs), max(worst_rel, max_rel)
    return Step(step=step, max_abs=worst_abs, max_rel=worst_rel)


#: A reference run at most this big (input elements + parameters) uses one torch thread.
#: Measured (docs/performance.md, "Fuzzing throughput"): a 16-wide transformer block
#: takes 3000 µs CPU with 2 intra-op threads on a loaded host and 180 µs with one, with
#: identical outputs; threads only pay off on tensors far larger than this.
SMALL_REFERENCE = 1 << 18
_SIZES: weakref.WeakKeyDictionary[Any, int] = weakref.WeakKeyDictionary()


@contextlib.contextmanager
def _one_thread_if_small(torch_model: Any, inputs: Sequence[Any]) -> Iterator[None]:
    """One torch intra-op thread while a small model runs (the torch reference, and the
    torch calls some emulator kernels make): waking torch's pool costs more than the work."""
    torch = sys.modules.get("torch")
    if torch is None or torch_model is None or torch.get_num_threads() == 1:
        yield
        return
    if not _small(torch_model, inputs):
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _small(torch_model: Any, inputs: Sequence[Any]) -> bool:
    size = _SIZES.get(torch_model)
    if size is None:
        size = _SIZES[torch_model] = sum(p.numel() for p in torch_model.parameters()) + sum(
            b.numel() for b in torch_model.buffers()
        )
    elements = sum(int(x.numel()) if hasattr(x, "numel") else int(x.size) for x in inputs)
    return size + elements <= SMALL_REFERENCE


def _description(spec: Any, function: str | None) -> Any:
    """The I/O description of ``function`` in a multi-function package, else the model's."""
    if function is not None:
        for described in spec.description.functions:
            if described.name == function:
                return described
    return spec.description


def _widen(array: Any) -> Any:
    """float16 -> float32 (exact); anything else unchanged."""
    import numpy as np

    return array.astype(np.float32) if array.dtype == np.float16 else array


__all__ = [
    "ConversionError", "CoreMLModel", "InputMismatchError", "ModelSettings", "Runtime", "Step",
]
