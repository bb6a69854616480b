"""Outputs by key: a torch model's output structure, its tensor leaves and their keys.

A model may return a tensor, (nested) tuples and lists, dicts, transformers'
``ModelOutput`` (a dict) or lists of dicts (torchvision's detection models). Each
tensor leaf is named by its key path, joined with dots: ``logits``,
``last_hidden_state``, ``0.boxes``; a tuple's leaves by position (``0``, ``1``).
Core ML output names follow the keys (:func:`coreml_names`), and failures name
an output by its key.

Leaves that are not tensors are not outputs: a transformers ``Cache``
(``past_key_values`` when ``use_cache`` is on), ``None`` and Python numbers are
dropped, on the Core ML side and on PyTorch's alike, and named in the failure
message (:func:`dropped`). A model whose output needs keys is captured through
:func:`keyed_module`, which returns the tensor leaves as a flat tuple (what
``torch.jit.trace`` and coremltools take).

The structure is JSON data (it is stored in the disk cache):

* ``"t"``: a tensor;
* ``["tuple", [children]]`` / ``["list", [children]]``: a sequence of tensors and
  containers, every element kept (the form of structures before keys existed);
* ``[kind, [children], [keys], [dropped]]``: a ``dict``, or a sequence with dropped
  elements: the kept children, their keys (text), and ``[key, type name]`` of each
  dropped leaf.

Cheap to import: torch is imported by the functions that need it.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any, TypeAlias

#: See the module docstring.
Structure: TypeAlias = "str | list[Any]"

TENSOR = "t"


class OutputError(ValueError):
    """The output holds no tensor, or a key coremltools cannot name."""


def _is_tensor(value: Any) -> bool:
    import torch

    return isinstance(value, torch.Tensor)


def structure_of(value: Any) -> Structure:
    """The structure of a torch output (see the module docstring)."""
    structure = _structure(value)
    if structure is None:
        raise OutputError(
            f"the torch model returns a {type(value).__name__} holding no tensor; "
            "coreml_model compares tensors (in tuples, lists, dicts or ModelOutputs)"
        )
    return structure


def _structure(value: Any) -> Structure | None:
    """None for a dropped (non-tensor) leaf."""
    if _is_tensor(value):
        return TENSOR
    if isinstance(value, Mapping):
        kind = "dict"
        items: list[tuple[str | int, Any]] = [(str(k), v) for k, v in value.items()]
    elif isinstance(value, (tuple, list)):
        kind = "tuple" if isinstance(value, tuple) else "list"
        items = list(enumerate(value))
    else:
        return None
    children: list[Any] = []
    keys: list[str] = []
    dropped: list[list[str]] = []
    for key, item in items:
        child = _structure(item)
        if child is None:
            dropped.append([str(key), type(item).__name__])
            continue
        children.append(child)
        keys.append(str(key))
    if not children:
        return None
    if kind != "dict" and not dropped:
        return [kind, children]  # the keyless form: positions are the keys
    return [kind, children, keys, dropped]


def is_keyed(structure: Any) -> bool:
    """Whether the structure has a dict or a dropped leaf anywhere (needs :func:`keyed_module`)."""
    if structure == TENSOR:
        return False
    return len(structure) > 2 or any(is_keyed(c) for c in structure[1])


def _entries(structure: Any) -> Iterator[tuple[str, Any]]:
    """(key, child) of a container structure."""
    keys = structure[2] if len(structure) > 2 else [str(i) for i in range(len(structure[1]))]
    yield from zip(keys, structure[1], strict=True)


def paths(structure: Any) -> list[tuple[str, ...]]:
    """Each tensor leaf's key path (text keys), in output order."""
    if structure == TENSOR:
        return [()]
    out: list[tuple[str, ...]] = []
    for key, child in _entries(structure):
        out.extend((key, *rest) for rest in paths(child))
    return out


def labels(structure: Any) -> tuple[str, ...]:
    """Each tensor leaf's key, joined with dots (``logits``, ``0.boxes``); ``""`` for a bare tensor."""
    return tuple(".".join(p) for p in paths(structure))


def dropped(structure: Any, prefix: str = "") -> list[tuple[str, str]]:
    """(key, type name) of every non-tensor leaf left out of the outputs."""
    if structure == TENSOR:
        return []
    out = [(prefix + key, kind) for key, kind in (structure[3] if len(structure) > 3 else [])]
    for key, child in _entries(structure):
        out.extend(dropped(child, f"{prefix}{key}."))
    return out


def count(structure: Any) -> int:
    if structure == TENSOR:
        return 1
    return sum(count(c) for c in structure[1])


def unflatten(structure: Any, leaves: Iterator[Any]) -> Any:
    """Rebuild the output from flat leaves, in order: dicts (a ``ModelOutput`` becomes a
    plain dict) keyed by their kept keys, sequences without their dropped elements."""
    if structure == TENSOR:
        return next(leaves)
    kind = structure[0]
    if kind == "dict":
        return {key: unflatten(child, leaves) for key, child in _entries(structure)}
    items = [unflatten(c, leaves) for c in structure[1]]
    return tuple(items) if kind == "tuple" else items


def _get(value: Any, key: str, kind: str) -> Any:
    if kind == "dict":
        return value[key]
    return value[int(key)]


def leaves(value: Any, structure: Any) -> list[Any]:
    """The tensor leaves of an output of this structure, in order (by key, so dropped
    leaves and a ModelOutput's absent ``None`` fields are skipped)."""
    if structure == TENSOR:
        return [value]
    out: list[Any] = []
    for key, child in _entries(structure):
        out.extend(leaves(_get(value, key, structure[0]), child))
    return out


def keyed(value: Any, structure: Any) -> Any:
    """An output of this structure as :func:`unflatten` gives it (dicts, dropped leaves
    left out), with leaves unchanged."""
    return unflatten(structure, iter(leaves(value, structure)))


_NOT_NAME = re.compile(r"[^0-9A-Za-z_]")


def coreml_names(structure: Any) -> tuple[str, ...]:
    """Core ML output names that follow the keys: ``logits``, ``last_hidden_state``,
    ``out_0_boxes`` (dots and other characters become ``_``; a leading digit gets
    ``out_``); made unique with a numeric suffix."""
    names: list[str] = []
    seen: set[str] = set()
    for label in labels(structure):
        name = _NOT_NAME.sub("_", label) or "output"
        if name[0].isdigit():
            name = f"out_{name}"
        unique, n = name, 1
        while unique in seen:
            unique, n = f"{name}_{n}", n + 1
        seen.add(unique)
        names.append(unique)
    return tuple(names)


def capture_kwargs(model: Any, structure: Any) -> dict[str, Any]:
    """Keywords the capture calls ``model`` with: ``use_cache=False`` when its output
    holds a transformers ``Cache`` (``use_cache`` defaults on) and ``forward`` takes
    ``use_cache``. The cache is not an output anyway (not a tensor), and a traced
    cache is not a program coremltools converts; the logits do not change."""
    import inspect

    caches = [kind for _key, kind in dropped(structure) if kind.endswith("Cache")]
    if not caches:
        return {}
    try:
        parameters = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return {}
    return {"use_cache": False} if "use_cache" in parameters else {}


def keyed_module(model: Any, structure: Any) -> Any:
    """A ``torch.nn.Module`` calling ``model`` (with :func:`capture_kwargs`) and returning
    its tensor leaves as a flat tuple (what trace and coremltools take), for a
    structure that :func:`is_keyed`."""
    import torch

    kwargs = capture_kwargs(model, structure)

    class KeyedOutputs(torch.nn.Module):
        """``model``'s tensor outputs, flat, in key order."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *inputs: Any) -> tuple[Any, ...]:
            return tuple(leaves(self.model(*inputs, **kwargs), structure))

    return KeyedOutputs().eval()


def describe_keys(structure: Any) -> str | None:
    """``outputs compared by key: logits; not outputs: past_key_values (DynamicCache)``,
    or None for an output without keys."""
    if not is_keyed(structure):
        return None
    text = "outputs compared by key: " + ", ".join(labels(structure))
    left = dropped(structure)
    if left:
        text += "; not outputs (not tensors): " + ", ".join(f"{k} ({t})" for k, t in left)
        if any(t.endswith("Cache") for _k, t in left):
            text += "; captured with use_cache=False"
    return text


def numpy_tree(value: Any, structure: Any | None = None) -> Any:
    """A torch output with every tensor as a numpy array; with a keyed ``structure``,
    by key (dicts, dropped leaves left out) like the Core ML side."""
    from ._values import to_numpy

    if structure is not None and is_keyed(structure):
        return unflatten(structure, iter(to_numpy(t) for t in leaves(value, structure)))
    return _plain_tree(value, to_numpy)


def _plain_tree(value: Any, convert: Any) -> Any:
    if isinstance(value, tuple):
        return tuple(_plain_tree(v, convert) for v in value)
    if isinstance(value, list):
        return [_plain_tree(v, convert) for v in value]
    return convert(value)


__all__ = [
    "OutputError", "Structure", "capture_kwargs", "coreml_names", "count", "describe_keys", "dropped",
    "is_keyed", "keyed", "keyed_module", "labels", "leaves", "numpy_tree", "paths",
    "structure_of", "unflatten",
]
