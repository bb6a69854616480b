"""``model_inputs``: a strategy for every input of a converted model, read from its program.

Each input's declared dtype, shape (flexible ones included: enumerated shapes and
shape ranges) and role come from the converted spec
(``coreml_model.mlmodel.get_spec().description.input``), and for index inputs the
valid range from the ML Program itself: the ``gather`` that consumes the input and
the first dimension of its table. So a float16 input gets values float16 can hold,
an embedding input gets valid token ids, and a mask gets a mask.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .codebook import coded_integers, quiet_map
from .extreme import extreme_arrays, fp16_arrays, label_input_overflow
from .structured import FLOAT16_MIN, MASK_FILLS, MaskForm, attention_masks

#: Core ML ``ArrayFeatureType.ArrayDataType`` codes (FeatureTypes.proto).
_DTYPE_CODES = {
    65552: "float16",
    65568: "float32",
    65600: "float64",
    131104: "int32",
    131080: "int8",
}
#: Integer inputs whose valid range the program does not show draw from [0, 2**15).
INDEX_FALLBACK_BOUND = 2**15
#: Ops whose ``indices`` argument indexes the first (``axis``) dimension of ``x``.
_GATHER_OPS = frozenset({"gather", "gather_along_axis"})
#: Ops that pass an input through unchanged in value (followed when looking for its use).
_PASS_THROUGH = frozenset({"cast", "reshape", "squeeze", "expand_dims", "identity", "transpose"})

Role = Literal["float", "integer", "mask", "image"]


@dataclass(frozen=True)
class InputSpec:
    """What the converted program declares about one input.

    ``shape`` is the default shape, ``enumerated_shapes`` the allowed shapes of an
    ``EnumeratedShapes`` input, ``shape_ranges`` the (lower, upper) size of each
    dimension of a ``RangeDim`` input (upper -1: unbounded). ``float16`` is true for a
    float16-typed input or one the program casts to float16 first. ``index_bound``
    is the exclusive bound of valid values for an integer input read from a
    ``gather`` (the embedding table size), None when the program does not show one.
    ``ops_read`` is False when the program's ops could not be searched (a neural
    network spec, or a Core AI program): then integer inputs keep the example's range.
    """

    name: str
    dtype: str | None
    shape: tuple[int, ...]
    role: Role
    float16: bool = False
    index_bound: int | None = None
    enumerated_shapes: tuple[tuple[int, ...], ...] = ()
    shape_ranges: tuple[tuple[int, int], ...] = ()
    ops_read: bool = True


def _spec_of(model: Any) -> Any:
    mlmodel = getattr(model, "mlmodel", model)
    if mlmodel is None or not hasattr(mlmodel, "get_spec"):
        raise ValueError("model_inputs: the coreml_model is not bound yet; call it inside the test")
    return mlmodel.get_spec()


def _walk_ops(block: Any) -> Iterator[Any]:
    for op in block.operations:
        yield op
        for inner in op.blocks:
            yield from _walk_ops(inner)


def _program_ops(spec: Any) -> list[Any]:
    if spec.WhichOneof("Type") != "mlProgram":
        return []
    ops: list[Any] = []
    for function in spec.mlProgram.functions.values():
        for block in function.block_specializations.values():
            ops.extend(_walk_ops(block))
    return ops


def _dims(value_type: Any) -> tuple[int, ...] | None:
    if value_type.WhichOneof("type") != "tensorType":
        return None
    dims = []
    for d in value_type.tensorType.dimensions:
        if d.WhichOneof("dimension") != "constant":
            return None
        dims.append(int(d.constant.size))
    return tuple(dims)


def _const_int(op: Any) -> int | None:
    value = op.attributes.get("val") if op.type == "const" else None
    if value is None:
        return None
    tensor = value.immediateValue.tensor
    for field in ("ints", "longInts"):
        values = getattr(tensor, field).values
        if len(values) == 1:
            return int(values[0])
    return None


class _Program:
    """An index of the ML Program's ops: producers, consumers and value types."""

    def __init__(self, spec: Any) -> None:
        self.ops = _program_ops(spec)
        self.producer: dict[str, Any] = {}
        self.types: dict[str, Any] = {}
        self.consumers: dict[str, list[tuple[Any, str]]] = {}
        for op in self.ops:
            for out in op.outputs:
                self.producer[out.name] = op
                self.types[out.name] = out.type
            for arg, binding in op.inputs.items():
                for a in binding.arguments:
                    if a.WhichOneof("binding") == "name":
                        self.consumers.setdefault(a.name, []).append((op, arg))
        for function in spec.mlProgram.functions.values() if self.ops else ():
            for named in function.inputs:
                self.types.setdefault(named.name, named.type)

    def _arg(self, op: Any, name: str) -> str | None:
        binding = op.inputs.get(name)
        if binding is None or not binding.arguments:
            return None
        arg = binding.arguments[0]
        return str(arg.name) if arg.WhichOneof("binding") == "name" else None

    def uses(self, name: str) -> Iterator[tuple[Any, str]]:
        """(op, argument) consuming ``name``, looking through casts and reshapes."""
        seen, todo = {name}, [name]
        while todo:
            for op, arg in self.consumers.get(todo.pop(), []):
                yield op, arg
                if op.type in _PASS_THROUGH and arg == "x":
                    for out in op.outputs:
                        if out.name not in seen:
                            seen.add(out.name)
                            todo.append(out.name)

    def casts_to_float16(self, name: str) -> bool:
        fp16 = _mil_float16()
        return any(
            op.type == "cast" and arg == "x" and op.outputs[0].type.tensorType.dataType == fp16
            for op, arg in self.uses(name)
        )

    def index_bound(self, name: str) -> int | None:
        bounds = []
        for op, arg in self.uses(name):
            if op.type not in _GATHER_OPS or arg != "indices":
                continue
            table = self._arg(op, "x")
            dims = _dims(self.types[table]) if table in self.types else None
            if not dims:
                continue
            axis_var = self._arg(op, "axis")
            axis = _const_int(self.producer[axis_var]) if axis_var in self.producer else 0
            axis = 0 if axis is None else axis
            if -len(dims) <= axis < len(dims):
                bounds.append(dims[axis])
        return min(bounds) if bounds else None


def _mil_float16() -> int:
    from .emulator.proto import mil_pb2  # the schema without importing coremltools

    return int(mil_pb2().DataType.Value("FLOAT16"))


def _is_mask_name(name: str) -> bool:
    return "mask" in name.lower()


def _role(name: str, dtype: str | None, example: Any) -> Role:
    if str(getattr(example, "dtype", "")) == "torch.bool" or _is_mask_name(name):
        return "mask"
    if dtype is not None and dtype.startswith("int"):
        return "integer"
    return "float"


def _coreai_specs(program: Any, examples: tuple[Any, ...]) -> tuple[InputSpec, ...]:
    """Core AI programs declare name, shape and dtype; their ops are not searched."""
    found = []
    for index, tensor in enumerate(program.inputs):
        example = examples[index] if index < len(examples) else None
        dtype = str(tensor.dtype)
        found.append(
            InputSpec(
                name=str(tensor.name),
                dtype=dtype,
                shape=tuple(int(d) for d in tensor.shape),
                role=_role(str(tensor.name), dtype, example),
                float16=dtype == "float16",
                ops_read=False,
            )
        )
    return tuple(found)


def input_specs(model: Any) -> tuple[InputSpec, ...]:
    """The :class:`InputSpec` of every input of a ``coreml_model`` or ``MLModel``, in order.

    A ``coreml_model`` on the Core AI target is read from its program's declared inputs.
    """
    examples = tuple(getattr(model, "example_inputs", ()) or ())
    program_ = getattr(model, "program", None)
    if getattr(model, "mlmodel", None) is None and program_ is not None:
        return _coreai_specs(program_, examples)
    spec = _spec_of(model)
    program = _Program(spec)
    found = []
    for index, feature in enumerate(spec.description.input):
        kind = feature.type.WhichOneof("Type")
        if kind == "imageType":  # pixels: uint8 (H, W, C), or floats for GRAYSCALE_FLOAT16
            found.append(_image_spec(feature))
            continue
        if kind != "multiArrayType":
            raise ValueError(
                f"model_inputs: input {feature.name!r} is a {kind}; only multi-array inputs are supported"
            )
        array = feature.type.multiArrayType
        dtype = _DTYPE_CODES.get(array.dataType)
        flexibility = array.WhichOneof("ShapeFlexibility")
        enumerated: tuple[tuple[int, ...], ...] = ()
        ranges: tuple[tuple[int, int], ...] = ()
        if flexibility == "enumeratedShapes":
            enumerated = tuple(
                tuple(int(d) for d in s.shape) for s in array.enumeratedShapes.shapes
            )
        elif flexibility == "shapeRange":
            ranges = tuple(
                (int(r.lowerBound), int(r.upperBound)) for r in array.shapeRange.sizeRanges
            )
        shape = tuple(int(d) for d in array.shape)
        example = examples[index] if index < len(examples) else None
        role = _role(feature.name, dtype, example)
        found.append(
            InputSpec(
                name=feature.name,
                dtype=dtype,
                shape=shape,
                role=role,
                float16=dtype == "float16" or program.casts_to_float16(feature.name),
                index_bound=program.index_bound(feature.name) if role == "integer" else None,
                enumerated_shapes=enumerated,
                shape_ranges=ranges,
                ops_read=bool(program.ops),
            )
        )
    return tuple(found)


def _image_spec(feature: Any) -> InputSpec:
    """An ``ImageType`` input as the pixels ``coreml_model`` takes: ``(H, W, C)``."""
    from .emulator.image_inputs import read_images

    image = read_images(_FeatureList(feature))[feature.name]
    c = image.channels
    enumerated = tuple((h, w, c) for h, w in image.sizes)
    ranges: tuple[tuple[int, int], ...] = ()
    if image.size_range is not None:
        (hl, hh), (wl, wh) = image.size_range
        ranges = ((hl, hh), (wl, wh), (c, c))
    return InputSpec(
        name=image.name,
        dtype="float16" if image.color_space == "GRAYSCALE_FLOAT16" else "uint8",
        shape=(image.height, image.width, c),
        role="image",
        float16=image.color_space == "GRAYSCALE_FLOAT16",
        enumerated_shapes=enumerated,
        shape_ranges=ranges,
    )


@dataclass(frozen=True)
class _FeatureList:
    """A description holding one input, for :func:`.emulator.image_inputs.read_images`."""

    feature: Any

    @property
    def input(self) -> tuple[Any, ...]:
        return (self.feature,)


def _shapes(
    spec: InputSpec, default: tuple[int, ...], vary: bool
) -> tuple[int, ...] | st.SearchStrategy[tuple[int, ...]]:
    """The input's shape, or a strategy of the shapes a flexible input allows."""
    if not vary:
        return default
    if spec.enumerated_shapes:
        others = [s for s in spec.enumerated_shapes if s != default]
        return st.sampled_from([default, *others])
    if spec.shape_ranges:
        dims = []
        for d, (lo, hi) in zip(default, spec.shape_ranges, strict=True):
            top = hi if hi > 0 else max(lo, d) * 2
            rest = [v for v in range(lo, top + 1) if v != d]
            dims.append(st.sampled_from([d, *rest]))  # default first: shrinks to it
        return st.tuples(*dims)
    return default


def _torch_dtype(example: Any, spec: InputSpec) -> Any:
    import torch

    if example is not None:
        return example.dtype
    if spec.role == "mask":
        return torch.float32 if (spec.dtype or "").startswith("float") else torch.int32
    return torch.int32 if spec.role == "integer" else torch.float32


def _from_shape(
    make: Any, shapes: tuple[int, ...] | st.SearchStrategy[tuple[int, ...]]
) -> st.SearchStrategy[Any]:
    """``make(shape)``; built once for a fixed shape (a flatmap per example costs ~40 µs)."""
    if isinstance(shapes, tuple):
        return cast("st.SearchStrategy[Any]", make(shapes))
    return shapes.flatmap(make)


def _input_strategy(
    spec: InputSpec,
    example: Any,
    *,
    vary_shapes: bool,
    allow_input_overflow: bool,
    allow_underflow: bool,
    mask_form: MaskForm,
    extreme: dict[str, Any],
) -> st.SearchStrategy[Any]:
    import torch

    dtype = _torch_dtype(example, spec)
    default = tuple(example.shape) if example is not None else spec.shape
    if spec.role == "image":  # uint8 pixels (floats for GRAYSCALE_FLOAT16), as numpy
        shapes = _shapes(spec, spec.shape, vary_shapes)
        if spec.float16:
            return _from_shape(fp16_arrays, shapes)
        return _from_shape(lambda s: quiet_map(coded_integers(s, 0, 255), _as_uint8), shapes)
    shapes = _shapes(spec, default, vary_shapes)
    name = spec.name

    def to_tensor(array: np.ndarray) -> Any:
        if spec.float16:
            label_input_overflow(array, name)
        return torch.from_numpy(np.ascontiguousarray(array)).to(dtype)

    if spec.role == "mask":
        form: MaskForm = "bool" if dtype == torch.bool else mask_form
        if form == "additive" and spec.float16 and not allow_input_overflow:
            fills = [f for f in MASK_FILLS if f == -np.inf or f >= FLOAT16_MIN]
        else:
            fills = list(MASK_FILLS)

        def mask(shape: tuple[int, ...]) -> st.SearchStrategy[Any]:
            if form != "additive":
                return attention_masks(shape, form=form, as_numpy=True)
            return st.sampled_from(fills).flatmap(
                lambda fill: attention_masks(shape, form="additive", fill=fill, as_numpy=True)
            )

        return quiet_map(_from_shape(mask, shapes), to_tensor)
    if spec.role == "integer":
        if spec.index_bound is not None:
            low, high = 0, spec.index_bound - 1
        elif not spec.ops_read and example is not None and example.numel():
            # No ops to search: stay within what the example shows (e.g. valid ids).
            low, high = min(int(example.min()), 0), max(int(example.max()), 0)
        else:
            low, high = 0, INDEX_FALLBACK_BOUND - 1
        return quiet_map(_from_shape(lambda s: coded_integers(s, low, high), shapes), to_tensor)
    if extreme or not spec.float16:
        return quiet_map(_from_shape(lambda s: extreme_arrays(s, **extreme), shapes), to_tensor)
    return quiet_map(
        _from_shape(
            lambda s: fp16_arrays(
                s, allow_input_overflow=allow_input_overflow, allow_underflow=allow_underflow
            ),
            shapes,
        ),
        to_tensor,
    )


def _as_uint8(array: np.ndarray) -> np.ndarray:
    return array.astype(np.uint8)


def _example_strategy(example: Any, extreme: dict[str, Any]) -> st.SearchStrategy[Any]:
    """For plain example inputs (no program): the shapes and dtypes of the examples."""
    import torch

    shape = tuple(example.shape)
    if example.dtype.is_floating_point:
        strategy = extreme_arrays(shape, **extreme)
    elif example.dtype == torch.bool:
        strategy = attention_masks(shape, as_numpy=True) if shape else hnp.arrays(np.bool_, shape)
    else:
        lo = int(example.min()) if example.numel() else 0
        hi = int(example.max()) if example.numel() else 0
        # Stay within what the example shows (e.g. valid indices), widened a little for values.
        strategy = coded_integers(shape, min(lo, 0), max(hi, 0))
    return quiet_map(
        strategy, lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(example.dtype)
    )


def model_inputs(
    model: Any,
    *,
    allow_input_overflow: bool = False,
    allow_underflow: bool = False,
    mask_form: MaskForm = "binary",
    vary_shapes: bool = False,
    overrides: Mapping[str, st.SearchStrategy[Any]] | None = None,
    **kwargs: Any,
) -> st.SearchStrategy[tuple[Any, ...]]:
    """A tuple of inputs for every input of ``model``: a ``coreml_model``, an ``MLModel``,
    or a sequence of example tensors.

    Read from the converted program (see :func:`input_specs`):

    * **float16 inputs** (declared float16, or cast to float16 first) draw finite
      float16 values (|x| <= 65504, :func:`~.extreme.fp16_floats`), realistic so that
      shrinking lands on an overflow *inside* the model. ``allow_input_overflow=True``
      adds values past 65504, which a float16 input stores as inf; such draws are
      labelled "input overflow" (hypothesis ``event`` and a ``note`` in the falsifying
      example). ``allow_underflow=True`` adds tiny values whose products flush to zero.
    * **float32 inputs** draw from :func:`~.extreme.extreme_tensors`. Any of its keywords
      (``max_magnitude=...``) in ``kwargs`` applies to every float input instead.
    * **integer inputs** stay in ``[0, n)`` where ``n`` is the size of the table a
      ``gather`` (an embedding) indexes with them, else in ``[0, 2**15)``; when the
      program's ops cannot be searched (Core AI), in the example's range.
    * **masks** (bool inputs, or a name containing "mask") draw
      :func:`~.structured.attention_masks`: padded left or right, some rows fully
      masked, as ``mask_form`` (``"binary"`` 1/0, or ``"additive"`` 0/fill).
    * ``overrides={"name": strategy}`` replaces the strategy of one input.
    * ``vary_shapes=True`` draws shapes a flexible input allows (enumerated shapes,
      or each dimension of a shape range, unbounded ones up to twice the default),
      independently per input; by default every input keeps the example's shape.

    With a ``coreml_model`` the tensors have the example inputs' dtypes. Fixtures are
    not available when ``@given`` is applied, so draw it inside the test::

        @given(data=st.data())
        def test_fuzz(coreml_model, data):
            inputs = data.draw(model_inputs(coreml_model), label="inputs")
            assert_parity(coreml_model, *inputs)
    """
    overrides = dict(overrides or {})
    if not hasattr(model, "mlmodel") and not hasattr(model, "get_spec"):
        examples = cast("Sequence[Any]", model)
        return st.tuples(*(_example_strategy(x, kwargs) for x in examples))
    unbound = getattr(model, "mlmodel", None) is None and getattr(model, "program", None) is None
    if hasattr(model, "example_inputs") and unbound:
        raise ValueError("model_inputs: the coreml_model is not bound yet; call it inside the test")
    specs = input_specs(model)
    unknown = set(overrides) - {s.name for s in specs}
    if unknown:
        names = ", ".join(s.name for s in specs)
        raise ValueError(
            f"model_inputs: overrides for unknown inputs {sorted(unknown)}; inputs are {names}"
        )
    examples = tuple(getattr(model, "example_inputs", ()) or ())
    strategies = []
    for index, spec in enumerate(specs):
        if spec.name in overrides:
            strategies.append(overrides[spec.name])
            continue
        strategies.append(
            _input_strategy(
                spec,
                examples[index] if index < len(examples) else None,
                vary_shapes=vary_shapes,
                allow_input_overflow=allow_input_overflow,
                allow_underflow=allow_underflow,
                mask_form=mask_form,
                extreme=kwargs,
            )
        )
    return st.tuples(*strategies)


__all__ = ["INDEX_FALLBACK_BOUND", "InputSpec", "Role", "input_specs", "model_inputs"]
