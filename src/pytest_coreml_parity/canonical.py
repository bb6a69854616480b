"""The one canonicaliser for cache keys: a value's stable text (:func:`canonical_text`),
a callable's identity (:func:`function_key`) and a tensor's bytes (:func:`hash_tensor`).

``convert.py`` keys the conversion options (``convert_kwargs``, the user's
``coreml_convert``, the converter shims' registry) and ``compress.py`` the user's
``OptimizationConfig`` with it, so two values that convert alike key alike, whichever
option carries them. A leaf: torch is imported only to read a tensor's bytes.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import inspect
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch


def _tensor_bytes(tensor: torch.Tensor) -> bytes:
    import torch

    t = tensor.detach().cpu().contiguous()
    if not t.numel():
        return b""
    return t.view(-1).view(torch.uint8).numpy().tobytes()


def hash_tensor(h: Any, name: str, tensor: torch.Tensor) -> None:
    # ``h`` is a hashlib object; hashlib's private _Hash type is not importable at runtime.
    h.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}\0".encode())
    h.update(_tensor_bytes(tensor))


#: ct's generated shape symbols (``is28``) are numbered per process; keys must not be.
_DIGITS = re.compile(r"\d+")
_ADDRESS = re.compile(r" at 0x[0-9a-fA-F]+")


#: At most this many values are visited for one key: a closure holding pytest's
#: ``request`` reaches the whole session; past the budget, values count by type only.
_KEY_BUDGET = 2000
#: Objects nest at most this deep (containers and attributes alike): deep enough for a
#: list of OptimizationConfigs (list, config, op-type dict, op config, its fields, a value).
_KEY_DEPTH = 12


class _Walk:
    """One key's traversal: the values left to visit, and the functions being keyed."""

    def __init__(self) -> None:
        self.budget = _KEY_BUDGET
        self.active: set[int] = set()


def canonical_text(value: object) -> str:
    """Stable text of a value for a cache key: primitives by repr, tensors and arrays by
    bytes, containers in order (dicts and sets sorted), enums by name, code by
    :func:`function_key`, attrs classes (coremltools' configs) by their fields, other
    objects by their type and attributes (reprs of coremltools' input types are
    unreliable). Never by ``id()``: stable across sessions, different when the value is."""
    return _canonical(value, 0, frozenset(), _Walk())


def _canonical(value: object, depth: int, seen: frozenset[int], walk: _Walk) -> str:
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes)):
        return repr(value)
    kind = type(value)
    walk.budget -= 1
    if depth > _KEY_DEPTH or walk.budget < 0 or id(value) in seen:
        return f"<{kind.__module__}.{kind.__qualname__}>"
    seen = seen | {id(value)}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = [_canonical(v, depth + 1, seen, walk) for v in value]
        if isinstance(value, (set, frozenset)):
            items.sort()
        return f"{kind.__name__}[{', '.join(items)}]"
    if isinstance(value, dict):
        pairs = sorted(
            (_canonical(k, depth + 1, seen, walk), _canonical(v, depth + 1, seen, walk))
            for k, v in value.items()
        )
        return "{" + ", ".join(f"{k}: {v}" for k, v in pairs) + "}"
    if isinstance(value, type):
        return f"class {value.__module__}.{value.__qualname__}"
    if isinstance(value, enum.Enum):
        return f"{kind.__module__}.{kind.__qualname__}.{value.name}"
    fields = getattr(kind, "__attrs_attrs__", None)
    if fields is not None:  # attrs classes (coremltools' configs, slotted: no __dict__) by field
        named = (f"{a.name}={_canonical(getattr(value, a.name), depth + 1, seen, walk)}" for a in fields)
        return f"{kind.__module__}.{kind.__qualname__}({', '.join(named)})"
    if kind.__module__.startswith("sympy"):  # a symbolic dimension, e.g. EnumeratedShapes'
        return f"symbol {_DIGITS.sub('#', str(value))}"
    if inspect.ismodule(value):
        return f"module {value.__name__}"
    if inspect.isfunction(value) or isinstance(value, functools.partial):
        return "function " + _function_key(value, walk)
    if hasattr(value, "detach") and hasattr(value, "dtype"):  # a torch tensor
        h = hashlib.sha256()
        tensor: Any = value
        hash_tensor(h, "tensor", tensor)
        return f"tensor {h.hexdigest()}"
    if kind.__module__ == "numpy" and hasattr(value, "tobytes"):
        array: Any = value
        digest = hashlib.sha256(array.tobytes()).hexdigest()
        return f"ndarray {getattr(value, 'shape', ())} {getattr(value, 'dtype', '')} {digest}"
    attributes = getattr(value, "__dict__", None)
    if isinstance(attributes, dict):
        return f"{kind.__module__}.{kind.__qualname__}{_canonical(attributes, depth + 1, seen, walk)}"
    return f"{kind.__module__}.{kind.__qualname__}:{_ADDRESS.sub('', repr(value))}"


def _code_text(code: Any, walk: _Walk) -> str:
    """A code object's bytecode, names and constants; nested code (lambdas, inner
    functions, comprehensions) recursively. Not its file name or line numbers."""
    consts = [
        _code_text(c, walk) if inspect.iscode(c) else _canonical(c, 0, frozenset(), walk)
        for c in code.co_consts
    ]
    return repr(
        (code.co_code.hex(), code.co_names, code.co_varnames, code.co_freevars, consts)
    )


def function_key(function: Any) -> str:
    """The identity of the user's ``coreml_convert`` callable, for the cache key.

    Covers its code (bytecode, names and constants, nested code included), its
    defaults, the values in its closure cells, the full source file of the module
    that defines it (so a helper edited in the same ``conftest.py`` counts) and a
    ``cache_key`` attribute, the escape hatch for what none of these can see
    (helpers in other modules, files it reads). See docs/usage.md.
    """
    return _function_key(function, _Walk())


def _function_key(function: Any, walk: _Walk) -> str:
    if id(function) in walk.active:  # recursion through a closure or a default
        return "recursive"
    h = hashlib.sha256()
    h.update(f"cache_key {getattr(function, 'cache_key', None)!r}\0".encode())
    walk.active.add(id(function))
    try:
        _hash_function(h, function, walk)
    finally:
        walk.active.discard(id(function))
    return h.hexdigest()[:32]


def _update(h: Any, text: str | bytes) -> None:
    h.update(text.encode() if isinstance(text, str) else text)


def _hash_function(h: Any, function: Any, walk: _Walk) -> None:
    if isinstance(function, functools.partial):
        _update(h, _canonical((function.args, function.keywords), 0, frozenset(), walk))
        function = function.func
    if not inspect.isfunction(function) and not inspect.ismethod(function):
        # A callable object: its class's __call__, and its attributes.
        _update(h, _canonical(getattr(function, "__dict__", {}), 0, frozenset(), walk))
        function = type(function).__call__
    function = inspect.unwrap(function)
    code = getattr(function, "__code__", None)
    if code is None:
        _update(h, f"callable {getattr(function, '__qualname__', repr(function))}")
        return
    _update(h, _code_text(code, walk))
    defaults = (function.__defaults__, function.__kwdefaults__)
    _update(h, _canonical(defaults, 0, frozenset(), walk))
    for cell in function.__closure__ or ():
        try:
            contents: object = cell.cell_contents
        except ValueError:  # an empty cell
            contents = "<empty cell>"
        _update(h, _canonical(contents, 0, frozenset(), walk))
    try:
        source = inspect.getsourcefile(function)
        if source is not None:
            with open(source, "rb") as file:
                _update(h, file.read())
    except (OSError, TypeError):
        _update(h, b"no source file")


__all__ = ["canonical_text", "function_key", "hash_tensor"]
