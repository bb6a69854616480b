"""Load a MIL function from a model's protobuf and weight files, without coremltools.

This reads what coremltools' milproto loader
(``coremltools.converters.mil.frontend.milproto.load``) reads and builds what it
builds, as :mod:`.mil` data instead of coremltools' MIL objects, so that the plan of
a model is the same whichever loader read it (``tests/emulator/test_milproto.py``
plans every test model both ways and compares). What it mirrors, rule by rule:

* a const's value as coremltools' ``const`` op holds it: int64 values clipped to
  int32, float64 to float32, and the const's dtype and shape read from that value;
* inputs of ``const`` / ``constexpr_*`` ops given as values become consts named
  ``<op>_<input>_0``, as coremltools' builder names them;
* ``write_state`` becomes ``coreml_update_state(state=, value=)``, merged with a
  ``read_state`` of the same state that follows it;
* an input is a tuple when the op declares it a tuple input (:data:`TUPLE_INPUTS`) or
  binds more than one var;
* an op's output dtype and shape are those the program declares (coremltools infers
  them again, and refuses a program where they disagree);
* the function's opset is the deployment target of the model's specification version.

What it does not model (an immediate list or dictionary value, a docstring on the
program, an unknown specification version) raises :class:`NeedsCoremltools`, and the
caller loads the program with coremltools instead.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from .blob import SUB_BYTE, BlobFiles, unpack_bits
from .dtypes import MIL_TO_NUMPY
from .errors import ModelLoadError, UnsupportedFeatureError
from .mil import MilBlock, MilFunction, MilOp, MilVar
from .proto import mil_pb2

#: Core ML specification version -> the deployment target (opset) name coremltools
#: gives it (``ct.target(version).name``); tests/emulator/test_milproto.py checks it.
SPEC_TO_OPSET: dict[int, str] = {
    4: "iOS13",
    5: "iOS14",
    6: "iOS15",
    7: "iOS16",
    8: "iOS17",
    9: "iOS18",
    10: "iOS26",
}

#: (op type, input) pairs coremltools declares as tuple inputs (``TupleInputType``):
#: they are tuples even when they bind one var. Checked against coremltools' op
#: registry by tests/emulator/test_milproto.py.
TUPLE_INPUTS: frozenset[tuple[str, str]] = frozenset(
    {
        ("concat", "values"),
        ("einsum", "values"),
        ("make_list", "elem_shape"),
        ("reshape_like", "begins"),
        ("reshape_like", "end_masks"),
        ("reshape_like", "ends"),
        ("reshape_like", "ref_tensors"),
        ("stack", "values"),
        ("while_loop", "loop_vars"),
    }
)

#: The dtypes that coremltools reads from immediate ``bytes`` (the others from their
#: typed repeated fields).
_BYTES_TYPES = frozenset({"fp16", "int4", "int8", "uint1", "uint2", "uint3", "uint4", "uint6", "uint8", "uint32"})
_FIELD_TYPES = frozenset({"fp32", "string", "bool", "int16", "uint16", "int32", "int64"})
_INT32 = np.iinfo(np.int32)


class NeedsCoremltools(Exception):
    """The program uses something this loader does not model; coremltools' loader can."""


def _numpy(mil_type: str) -> np.dtype[Any]:
    """The numpy dtype coremltools holds a ``mil_type`` value in (``nptype_from_builtin``)."""
    if mil_type in SUB_BYTE:
        return np.dtype(np.int8 if SUB_BYTE[mil_type][1] else np.uint8)
    if mil_type == "string":
        return np.dtype(np.str_)
    return MIL_TO_NUMPY[mil_type]


class _Type:
    """A proto ``ValueType`` read: kind, element type name, dims (None: unknown)."""

    def __init__(self, value_type: Any, pb: Any) -> None:
        which = value_type.WhichOneof("type")
        self.elem = ""
        self.dims: tuple[int | None, ...] = ()
        self.wrapped: _Type | None = None
        if which == "tensorType":
            tensor = value_type.tensorType
            self.elem = _type_name(pb, tensor.dataType)
            if tensor.rank < 0:
                raise ModelLoadError("negative or dynamic ranks are not supported")
            if tensor.rank != len(tensor.dimensions):
                raise ModelLoadError("a tensor type's rank does not match its dimensions")
            if len(tensor.attributes):
                raise ModelLoadError("attributes on a tensor type are not supported")
            self.dims = tuple(_dim(d) for d in tensor.dimensions)
            self.kind = "tensor" if tensor.rank else "scalar"
        elif which == "stateType":
            self.kind = "state"
            self.wrapped = _Type(value_type.stateType.wrappedType, pb)
        elif which == "listType":
            self.kind = "list"
            self.elem_type = _Type(value_type.listType.type, pb)
        elif which == "dictionaryType":
            self.kind = "dict"
        else:
            raise NeedsCoremltools(f"value type {which}")

    @property
    def text(self) -> str:
        if self.kind == "state" and self.wrapped is not None:
            return f"state<{self.wrapped.text}>"
        if self.kind == "tensor":
            return f"tensor<{self.elem}, {list(self.dims)}>"
        return self.elem if self.kind == "scalar" else self.kind

    def var(self, name: str, op: MilOp | None = None) -> MilVar:
        """A var of this type (no value)."""
        if self.kind in ("tensor", "scalar"):
            return MilVar(name, self.kind, MIL_TO_NUMPY.get(self.elem), self.dims, op=op, sym_type=self.text)
        if self.kind == "state" and self.wrapped is not None:
            wrapped = self.wrapped
            dtype = MIL_TO_NUMPY.get(wrapped.elem) if wrapped.kind == "tensor" else None
            return MilVar(
                name, "state", op=op, sym_type=self.text, state_dtype=dtype, state_shape=wrapped.dims
            )
        return MilVar(name, self.kind, op=op, sym_type=self.text)


def _type_name(pb: Any, code: int) -> str:
    names = {
        "BOOL": "bool", "STRING": "string", "FLOAT16": "fp16", "FLOAT32": "fp32",
        "FLOAT64": "fp64", "BFLOAT16": "bf16", "INT8": "int8", "INT16": "int16",
        "INT32": "int32", "INT64": "int64", "UINT8": "uint8", "UINT16": "uint16",
        "UINT32": "uint32", "UINT64": "uint64", "INT4": "int4", "UINT1": "uint1",
        "UINT2": "uint2", "UINT3": "uint3", "UINT4": "uint4", "UINT6": "uint6",
    }  # fmt: skip
    try:
        return names[pb.DataType.Name(code)]
    except (KeyError, ValueError):
        raise UnsupportedFeatureError(f"MIL data type {code}", "this program") from None


def _dim(dim: Any) -> int | None:
    if dim.WhichOneof("dimension") == "constant":
        return int(dim.constant.size)
    if dim.unknown.variadic:  # coremltools' loader refuses them, loudly
        raise NeedsCoremltools("a variadic dimension")
    return None


def const_held(value: Any) -> Any:
    """A value as coremltools' ``const`` op holds it (``Const._get_type_val``): int64
    clipped to int32, float64 as float32."""
    if isinstance(value, str):
        return value
    if isinstance(value, (float, np.float64)):
        return np.float32(value)
    if isinstance(value, np.int64):
        return np.int32(min(max(int(value), _INT32.min), _INT32.max))
    if isinstance(value, np.ndarray):
        if value.dtype in (np.dtype(np.uint64), np.dtype(np.int64)):
            return np.clip(value, _INT32.min, _INT32.max).astype(np.int32)
        if value.dtype == np.float64:
            return value.astype(np.float32)
    return value


def const_var(name: str, value: Any) -> MilVar:
    """A ``const`` op's output var for ``value``, typed as coremltools types it."""
    op = MilOp("const", name, {}, [])
    value = const_held(value)
    if isinstance(value, str):
        var = MilVar(name, "scalar", None, (), value, op, "string")
    else:
        arr = np.asarray(value)
        dtype = _builtin_dtype(arr.dtype)
        kind = "tensor" if arr.ndim else "scalar"
        var = MilVar(name, kind, dtype, tuple(int(d) for d in arr.shape), value, op, str(arr.dtype))
    op.outputs.append(var)
    return var


def _builtin_dtype(dtype: np.dtype[Any]) -> np.dtype[Any] | None:
    """The declared dtype coremltools gives a const of numpy ``dtype`` (None: str)."""
    if dtype.kind in "US":
        return None
    return dtype if dtype in MIL_TO_NUMPY.values() else None


class _Loader:
    """One function's load: the var names seen so far, the weight files, name counters."""

    def __init__(self, blobs: BlobFiles, opset: str) -> None:
        self.pb = mil_pb2()
        self.blobs = blobs
        self.opset = opset
        self.vars: dict[str, MilVar] = {}
        self.counts: defaultdict[str, int] = defaultdict(int)

    def free_name(self, name: str) -> str:
        """coremltools' builder's ``_get_free_name``: ``name_<n>``, n counting from 0."""
        count = self.counts[name]
        self.counts[name] += 1
        return f"{name}_{count}"

    def var(self, name: str) -> MilVar:
        try:
            return self.vars[name]
        except KeyError:
            raise ModelLoadError(f"the program reads {name!r} before any op defines it") from None

    # ------------------------------------------------------------------ values

    def value(self, spec: Any) -> Any:
        """A ``Value`` as coremltools' ``_load_value`` returns it."""
        if spec.docString:
            raise NeedsCoremltools("a docstring on a value")
        which = spec.type.WhichOneof("type")
        if which != "tensorType":
            raise NeedsCoremltools(f"a {which} value")
        vtype = _Type(spec.type, self.pb)
        elem, shape = vtype.elem, tuple(d if d is not None else -1 for d in vtype.dims)
        if spec.WhichOneof("value") == "immediateValue":
            value = self.immediate(spec.immediateValue, elem, shape)
        else:
            blob = spec.blobFileValue
            value = self.blobs.read(blob.fileName, int(blob.offset), elem)
            if elem in _FIELD_TYPES:
                value = np.asarray(value).astype(_numpy(elem)).reshape(shape)
            else:
                value = value.reshape(shape).astype(_numpy(elem))
        if vtype.kind == "scalar" and not isinstance(value, str):
            value = _numpy(elem).type(np.asarray(value).item())
        return value

    def immediate(self, spec: Any, elem: str, shape: tuple[int, ...]) -> Any:
        if spec.WhichOneof("value") != "tensor":
            raise NeedsCoremltools(f"an immediate {spec.WhichOneof('value')} value")
        tensor = spec.tensor
        which = tensor.WhichOneof("value")
        raw: Any = getattr(tensor, which).values if which else []
        if elem in _BYTES_TYPES:
            if elem in SUB_BYTE and isinstance(raw, bytes):
                nbits, signed = SUB_BYTE[elem]
                count = int(np.prod(shape))
                return unpack_bits(np.frombuffer(raw, np.uint8), nbits, count, signed).reshape(shape)
            if isinstance(raw, bytes):
                return np.frombuffer(raw, _numpy(elem)).reshape(shape).astype(_numpy(elem))
            return np.asarray(list(raw)).astype(_numpy(elem)).reshape(shape)
        if elem == "string" and shape == ():
            return str(raw[0])
        if elem in _FIELD_TYPES:
            return np.array(list(raw)).astype(_numpy(elem)).reshape(shape)
        raise ModelLoadError(f"a {elem} tensor value is not valid in a program")

    # ------------------------------------------------------------------ ops

    def block(self, spec: Any, inputs: list[MilVar]) -> MilBlock:
        if len(spec.attributes):
            raise ModelLoadError("attributes on a block are not supported")
        block = MilBlock(inputs, [], [])
        for op_spec in spec.operations:
            self.operation(op_spec, block)
            _merge_state_ops(block)
        block.outputs = [self.var(name) for name in spec.outputs]
        return block

    def operation(self, spec: Any, block: MilBlock) -> None:
        op_type = spec.type
        if op_type == "const" or "constexpr_" in op_type:
            if len(spec.blocks):
                raise ModelLoadError(f"{op_type} op has blocks")
            if op_type == "const" and len(spec.inputs):
                raise ModelLoadError("a const op has inputs")
            self.const_op(spec, block)
            return
        attributes = list(spec.attributes)
        if any(name != "name" for name in attributes):
            raise ModelLoadError(f'{op_type}: "name" is the only attribute an operation may have')
        name = (
            str(self.value(spec.attributes["name"])) if "name" in attributes else None
        )
        inputs: dict[str, MilVar | tuple[MilVar, ...]] = {}
        for param, argument in spec.inputs.items():
            bound: list[MilVar] = []
            for binding in argument.arguments:
                which = binding.WhichOneof("binding")
                if which == "name":
                    bound.append(self.var(binding.name))
                elif which == "value":
                    if binding.value.WhichOneof("value") != "immediateValue":
                        raise ModelLoadError(f"{op_type}: an input value must be immediate")
                    if binding.value.immediateValue.WhichOneof("value") != "tensor":
                        raise NeedsCoremltools("a list value bound to an op input")
                    bound.append(self.add_const(self.free_name("const"), self.value(binding.value), block))
                else:
                    raise ModelLoadError(f"{op_type}: binding {which} is not supported")
            if op_type != "write_state" and (len(bound) != 1 or (op_type, param) in TUPLE_INPUTS):
                inputs[param] = tuple(bound)
            else:
                inputs[param] = bound[0]
        blocks = self.nested_blocks(spec, block)
        if op_type == "write_state":  # coremltools loads it as coreml_update_state
            state, value = inputs["input"], inputs["data"]
            assert isinstance(state, MilVar) and isinstance(value, MilVar)
            op = MilOp("coreml_update_state", self.free_name("coreml_update_state"), {"state": state, "value": value}, [])
            out = MilVar(op.name, value.kind, value.dtype, value.shape, op=op, sym_type=value.sym_type)
            op.outputs.append(out)
            block.operations.append(op)
            return
        op = MilOp(op_type, name or self.free_name(op_type), inputs, [], blocks)
        for out_spec in spec.outputs:
            var = _Type(out_spec.type, self.pb).var(out_spec.name, op)
            op.outputs.append(var)
            self.vars[var.name] = var
        block.operations.append(op)

    def nested_blocks(self, spec: Any, block: MilBlock) -> list[MilBlock]:
        blocks = []
        for block_spec in spec.blocks:
            inputs = []
            for named in block_spec.inputs:
                var = _Type(named.type, self.pb).var(named.name)
                self.vars[var.name] = var
                inputs.append(var)
            # coremltools makes a placeholder const (`mb.const(val=0.)`) per nested block.
            self.add_const(self.free_name("const"), np.float32(0.0), block)
            blocks.append(self.block(block_spec, inputs))
        return blocks

    def add_const(self, name: str, value: Any, block: MilBlock) -> MilVar:
        var = const_var(name, value)
        assert var.op is not None
        block.operations.append(var.op)
        return var

    def const_op(self, spec: Any, block: MilBlock) -> None:
        values = {key: self.value(value) for key, value in spec.attributes.items()}
        name = str(values.pop("name")) if "name" in values else self.free_name(spec.type)
        inputs: dict[str, Any] = dict(values)
        for param, argument in spec.inputs.items():
            bound: list[Any] = []
            for binding in argument.arguments:
                which = binding.WhichOneof("binding")
                if which == "name":
                    bound.append(self.var(binding.name))
                elif which == "value":
                    bound.append(self.value(binding.value))
                else:
                    raise ModelLoadError(f"{spec.type}: binding {which} is not supported")
            inputs[param] = bound[0] if len(bound) == 1 else bound
        if spec.type == "const":
            if len(spec.outputs) != 1 or "val" not in inputs:
                raise ModelLoadError(f"const op {name!r} needs one output and a val")
            var = self.add_const(name, inputs["val"], block)
            var.name = spec.outputs[0].name
            self.vars[var.name] = var
            return
        op = MilOp(spec.type, name, {}, [])
        for param, given in inputs.items():  # values become consts named as the builder names them
            if isinstance(given, list):
                op.inputs[param] = tuple(
                    v if isinstance(v, MilVar) else self.add_const(self.free_name(f"{name}_{param}{i}"), v, block)
                    for i, v in enumerate(given)
                )
            elif isinstance(given, MilVar):
                op.inputs[param] = given
            else:
                op.inputs[param] = self.add_const(self.free_name(f"{name}_{param}"), given, block)
        for out_spec in spec.outputs:
            var = _Type(out_spec.type, self.pb).var(out_spec.name, op)
            op.outputs.append(var)
            self.vars[var.name] = var
        block.operations.append(op)


def _merge_state_ops(block: MilBlock) -> None:
    """coremltools' ``_try_to_merge_state_ops``: ``coreml_update_state`` followed by a
    ``read_state`` of the same state becomes the update, named as the read."""
    if len(block.operations) < 2:
        return
    first, second = block.operations[-2], block.operations[-1]
    if first.op_type != "coreml_update_state" or second.op_type != "read_state":
        return
    if first.inputs["state"] is not second.inputs.get("input"):
        return
    first.outputs[0].name = second.outputs[0].name
    block.operations.pop()


def load_function(
    model_spec: Any, function_name: str, weights_dir: Path | None, source: str
) -> MilFunction:
    """The function ``function_name`` of ``model_spec`` (a ``Model`` message)."""
    program = model_spec.mlProgram
    if program.docString:
        raise NeedsCoremltools("a docstring on the program")
    if program.version != 1:
        raise ModelLoadError(f"{source}: invalid ML Program version {program.version}")
    if any(name != "buildInfo" for name in program.attributes):
        raise ModelLoadError(f"{source}: unknown program attributes {sorted(program.attributes)}")
    opset = SPEC_TO_OPSET.get(int(model_spec.specificationVersion))
    if opset is None:
        raise NeedsCoremltools(f"specification version {model_spec.specificationVersion}")
    spec = program.functions[function_name]
    loader = _Loader(BlobFiles(weights_dir, source), opset)
    if len(spec.attributes):
        raise ModelLoadError(f"{source}: attributes on functions are not supported")
    inputs: dict[str, MilVar] = {}
    for named in spec.inputs:
        vtype = _Type(named.type, loader.pb)
        if vtype.kind not in ("tensor", "state"):
            raise ModelLoadError(f"{source}: function input {named.name!r} of type {vtype.text} is not supported")
        var = inputs[named.name] = vtype.var(named.name)
        loader.vars[var.name] = var
    if spec.opset not in spec.block_specializations:
        raise ModelLoadError(f"{source}: missing block specialization for opset {spec.opset}")
    block = loader.block(spec.block_specializations[spec.opset], list(inputs.values()))
    return MilFunction(inputs, block.operations, block.outputs, opset)
