"""Converter shims: small coremltools torch-op lowerings the installed coremltools lacks.

transformers 5 models emit a few torch ops that coremltools 9.0 cannot convert
(``diff`` in the packed-sequence mask code, ``new_ones``, torch.export's ``alias``).
coremltools main has lowerings for most of them; each shim here backports one, names
the coremltools pull request it comes from, and is registered with coremltools'
``register_torch_op`` registry only where the installed coremltools has no lowering
for that op (read from the registry at runtime, not from a version string). So a
coremltools release that ships the op makes the shim inactive by itself.

Shims are registered only for the duration of a conversion (:func:`registered`):
the plugin's own ``ct.convert`` and the test's ``coreml_convert`` alike. Opt out
with ``--coreml-shims=off`` (ini ``coreml_shims``, marker ``@pytest.mark.coreml(shims=False)``).
Which shims were registered is part of every cache key (:func:`registry_key`), as
are the converter functions the user registered. See docs/converters.md.

Importing this module is cheap: coremltools is imported by the functions that need it.
"""

from __future__ import annotations

import contextlib
import hashlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

#: A coremltools torch-frontend lowering: ``(context, node) -> None``.
Lowering = Callable[[Any, Any], None]


@dataclass(frozen=True)
class Shim:
    """One op lowering coremltools may lack."""

    #: The op name coremltools' registry looks up (sanitized: ``aten::new_ones`` -> ``new_ones``).
    op: str
    #: The coremltools pull request it backports (or why there is none).
    backports: str
    #: Which models need it.
    needed_by: str
    lower: Lowering
    #: Other registry names it takes over while registered (the previous lowering,
    #: if any, is put back afterwards).
    aliases: tuple[str, ...] = ()
    #: Whether the installed coremltools already has it, given its registry mapping and
    #: its torch ``ops`` module; default: the op has a lowering in the registry.
    present: Callable[[dict[str, Any], Any], bool] | None = None

    def installed(self, mapping: dict[str, Any], ops: Any) -> bool:
        """Whether coremltools (not this module) already lowers this op."""
        if self.present is not None:
            return self.present(mapping, ops)
        function = mapping.get(self.op)
        return function is not None and not _is_ours(function)


# --------------------------------------------------------------------- lowerings
# Each imports coremltools' builder lazily; ``context`` and ``node`` are coremltools'
# TranscriptionContext and InternalTorchIRNode (untyped).


def _ct() -> tuple[Any, Any]:
    from coremltools.converters.mil.frontend.torch.ops import _get_inputs
    from coremltools.converters.mil.mil import Builder as mb

    return mb, _get_inputs


def _given(inputs: list[Any], index: int) -> Any:
    """``inputs[index]`` when present and not None (an omitted optional argument)."""
    if index >= len(inputs) or inputs[index] is None:
        return None
    value = inputs[index]
    if getattr(value, "val", 0) is None and getattr(value, "op", None) is None:
        return None
    return value


def _const(inputs: list[Any], index: int, default: Any) -> Any:
    value = _given(inputs, index)
    return default if value is None else value.val


def lower_diff(context: Any, node: Any) -> None:
    """``torch.diff(x, n=1, dim=-1, prepend=None, append=None)``: concat the prepended and
    appended values, then ``n`` times ``x[1:] - x[:-1]`` along ``dim``."""
    mb, get_inputs = _ct()
    inputs = get_inputs(context, node)
    x = inputs[0]
    n = int(_const(inputs, 1, 1))
    dim = int(_const(inputs, 2, -1))
    parts = [p for p in (_given(inputs, 3), x, _given(inputs, 4)) if p is not None]
    if len(parts) > 1:
        x = mb.concat(values=parts, axis=dim)
    rank = x.rank
    axis = dim % rank
    for step in range(n):
        begin_hi = [0] * rank
        begin_hi[axis] = 1
        end_lo = [0] * rank
        end_lo[axis] = -1
        mask = [True] * rank
        mask[axis] = False
        high = mb.slice_by_index(x=x, begin=begin_hi, end=[0] * rank, end_mask=[True] * rank)
        low = mb.slice_by_index(x=x, begin=[0] * rank, end=end_lo, end_mask=mask)
        last = step == n - 1
        x = mb.sub(x=high, y=low, name=node.name) if last else mb.sub(x=high, y=low)
    if n == 0:
        x = mb.identity(x=x, name=node.name)
    context.add(x)


def lower_new_ones(context: Any, node: Any) -> None:
    """``x.new_ones(size, dtype=None)``: coremltools #2668's ``new_ones`` (a ``fill`` of
    1, its float shape coerced to int32), keeping the requested dtype: transformers'
    mask code asks for ``new_ones((), dtype=torch.bool)``."""
    import numpy as np
    from coremltools.converters.mil.frontend.torch.utils import (
        NUM_TO_NUMPY_DTYPE,
        TORCH_DTYPE_TO_NUM,
    )
    from coremltools.converters.mil.mil import types

    mb, get_inputs = _ct()
    inputs = get_inputs(context, node)
    size = inputs[1]
    if isinstance(size, list):
        size = mb.concat(values=size, axis=0)
    elif types.is_float(size.dtype):
        size = mb.cast(x=size, dtype="int32")
    code = _const(inputs, 2, None)
    if code is None:  # like the input's dtype
        dtype = types.nptype_from_builtin(inputs[0].dtype)
    else:
        code = TORCH_DTYPE_TO_NUM.get(code, code)
        dtype = NUM_TO_NUMPY_DTYPE[int(code)]
    if dtype != np.bool_ and np.issubdtype(dtype, np.integer):
        dtype = np.int32  # Core ML's fill: fp16, fp32, int32, bool
    elif np.issubdtype(dtype, np.floating) and dtype != np.float16:
        dtype = np.float32
    if size.val is not None and np.size(size.val) == 0:  # a 0-d tensor
        context.add(mb.const(val=dtype(1), name=node.name))
        return
    context.add(mb.fill(shape=size, value=dtype(1), name=node.name))


def lower_alias(context: Any, node: Any) -> None:
    """``aten.alias``: a no-op (coremltools #2659 adds it to the no-op list)."""
    _mb, get_inputs = _ct()
    context.add(get_inputs(context, node)[0], torch_name=node.name)


def lower_and(context: Any, node: Any) -> None:
    """``aten.__and__`` of torch.export: a logical and when an operand is bool
    (coremltools #2668 strips the dunder after the overload suffix, so the registry
    finds ``bitwise_and``, and accepts mixed bool / non-bool operands)."""
    mb, get_inputs = _ct()
    from coremltools.converters.mil.mil import types

    x, y = get_inputs(context, node, expected=2)
    if not (types.is_bool(x.dtype) or types.is_bool(y.dtype)):
        raise NotImplementedError(
            f"__and__ supports boolean operands only, got {x.dtype} and {y.dtype}"
        )
    x = mb.cast(x=x, dtype="bool")
    y = mb.cast(x=y, dtype="bool")
    context.add(mb.logical_and(x=x, y=y, name=node.name))


#: Every shim, in the order they are listed (header, docs).
SHIMS: tuple[Shim, ...] = (
    Shim(
        "diff",
        "none yet (coremltools main has no lowering for torch.diff)",
        "transformers 5 decoders' packed-sequence mask (GPT-2, Llama, Qwen2, Mistral), traced",
        lower_diff,
    ),
    Shim(
        "new_ones",
        "coremltools #2668 (https://github.com/apple/coremltools/pull/2668)",
        "transformers 5 mask functions (BART, decoders)",
        lower_new_ones,
    ),
    Shim(
        "alias",
        "coremltools #2659 (https://github.com/apple/coremltools/pull/2659)",
        "transformers 5 decoders through torch.export",
        lower_alias,
    ),
    Shim(
        "__and__",
        "coremltools #2668 (https://github.com/apple/coremltools/pull/2668)",
        "transformers 5 decoders' causal mask through torch.export (GPT-2, Llama, Qwen2, Mistral)",
        lower_and,
        aliases=("and",),
        # #2668's shared helper for mixed-bool bitwise ops: the feature, not a version.
        present=lambda _mapping, ops: hasattr(ops, "_bitwise_as_logical_if_boolean"),
    ),
)

SHIM_OPS: tuple[str, ...] = tuple(s.op for s in SHIMS)


# --------------------------------------------------------------------- registry


def _registry() -> Any:
    from ._coremltools import import_coremltools

    import_coremltools()  # quietly, before the frontend module logs on import
    from coremltools.converters.mil.frontend.torch.torch_op_registry import _TORCH_OPS_REGISTRY

    return _TORCH_OPS_REGISTRY


def missing(registry: Any = None) -> tuple[Shim, ...]:
    """The shims whose op the installed coremltools has no lowering for."""
    registry = _registry() if registry is None else registry
    from coremltools.converters.mil.frontend.torch import ops

    mapping: dict[str, Any] = registry.name_to_func_mapping
    return tuple(s for s in SHIMS if not s.installed(mapping, ops))


@contextlib.contextmanager
def registered(enabled: bool = True) -> Iterator[tuple[Shim, ...]]:
    """Register the shims coremltools lacks (``enabled``) for the ``with`` body, then put
    the registry back as it was; yields the shims registered. Re-entrant: an outer
    registration stays."""
    if not enabled:
        yield ()
        return
    registry = _registry()
    mapping: dict[str, Any] = registry.name_to_func_mapping
    wanted = missing(registry)
    from coremltools.converters.mil.frontend.torch import register_torch_op

    saved: dict[str, Any] = {}
    for shim in wanted:
        if _is_ours(mapping.get(shim.op)):
            continue  # registered by an enclosing ``registered()``
        function = _named(shim)
        for name in (shim.op, *shim.aliases):
            saved[name] = mapping.get(name)
        if shim.op.endswith("_") or shim.aliases:
            # register_torch_op refuses names ending in "_" (in-place ops), dunders
            # included, and an alias taking over an existing name needs override;
            # torch.export's graph check looks ``__and__`` up unsanitized.
            for name in (shim.op, *shim.aliases):
                registry.set_func_by_name(function, name)
        else:  # registers the function under its __name__ (the op name)
            register_torch_op(function)
    try:
        yield wanted
    finally:
        for name, previous in saved.items():
            if previous is None:
                mapping.pop(name, None)
            else:
                mapping[name] = previous


def _named(shim: Shim) -> Lowering:
    def lowering(context: Any, node: Any) -> None:
        shim.lower(context, node)

    lowering.__name__ = lowering.__qualname__ = shim.op
    lowering.__module__ = __name__
    lowering.__doc__ = shim.lower.__doc__
    return lowering


def _is_ours(function: Any) -> bool:
    """Whether ``function`` is a shim lowering (registered by this module)."""
    return getattr(function, "__module__", None) == __name__


def active(enabled: bool = True) -> tuple[Shim, ...]:
    """The shims a conversion with ``enabled`` registers here (coremltools imported)."""
    return missing() if enabled else ()


def registry_key(enabled: bool, function_key: Callable[[Any], str]) -> str:
    """The cache-key text of the torch-op registry a conversion sees: the shims (every one,
    by name and code: which of them register follows from coremltools' version, already in
    the key) and every lowering registered from outside coremltools (a user's
    ``register_torch_op`` in a conftest), by name and code (``function_key``, the one the
    cache keys ``coreml_convert`` with). Imports no coremltools: with its op registry not
    imported yet, nothing can have been registered from outside, so a warm run whose every
    model comes from the disk cache keys the same without importing coremltools."""
    parts = [f"shims {','.join(SHIM_OPS) if enabled else 'off'}"]
    registry_module = sys.modules.get("coremltools.converters.mil.frontend.torch.torch_op_registry")
    registry = getattr(registry_module, "_TORCH_OPS_REGISTRY", None)
    mapping: dict[str, Any] = registry.name_to_func_mapping if registry is not None else {}
    for name, function in sorted(mapping.items()):
        module = getattr(function, "__module__", "") or ""
        if module.startswith("coremltools.") or _is_ours(function):
            continue
        parts.append(f"{name}={module}.{getattr(function, '__qualname__', '?')}:{function_key(function)}")
    for shim in SHIMS if enabled else ():  # our lowerings' code (changes without a version bump)
        parts.append(f"shim {shim.op}:{function_key(shim.lower)}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def describe(enabled: bool = True) -> str:
    """One line for the session header (no coremltools import)."""
    from . import messages

    if not enabled:
        return messages.SHIMS_HEADER_OFF
    return messages.SHIMS_HEADER_ON.format(ops=", ".join(SHIM_OPS))


__all__ = ["SHIMS", "SHIM_OPS", "Shim", "active", "describe", "missing", "registered", "registry_key"]
