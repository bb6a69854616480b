"""Helpers for rules that read the ``torch.export`` program the coreai stack converts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from ..program import is_exported


def call_nodes(source: Any, *targets: str) -> Iterator[Any]:
    """The graph's call_function nodes whose target names one of ``targets`` (``aten.floor``)."""
    if not is_exported(source):
        return
    for node in source.graph.nodes:
        if node.op == "call_function" and any(str(node.target).startswith(t + ".") or str(node.target) == t for t in targets):
            yield node


def mutated_buffers(source: Any) -> Iterator[tuple[str, tuple[int, ...]]]:
    """(name, shape) of each buffer the exported program updates (its states), and of
    each buffer named as a cache (an export that functionalized the update away)."""
    if not is_exported(source):
        return
    signature = source.graph_signature
    names = set(signature.buffers_to_mutate.values())
    names |= {b for b in signature.buffers if "cache" in b.lower()}
    for name, tensor in source.state_dict.items():
        if name in names:
            yield name, tuple(int(d) for d in tensor.shape)
    for name, tensor in getattr(source, "constants", {}).items():
        if name in names and hasattr(tensor, "shape"):
            yield name, tuple(int(d) for d in tensor.shape)
