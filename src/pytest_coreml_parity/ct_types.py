"""coremltools types described as data, built only when a conversion runs.

The plugin's own ``ct.convert`` keywords (a causal LM recipe's ``inputs``, ``outputs``
and flexible dimensions) are part of the cache key. Made as ``ct.TensorType`` /
``ct.RangeDim`` objects they would import coremltools (about 3 s, with torchao and
scikit-learn) on every bind, also when the program comes from the disk cache. A
:class:`CtType` names the class and its arguments; :func:`canonical.canonical_text` keys
it by those fields, and :func:`build` makes the real objects inside ``convert``. A leaf.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class CtType:
    """``ct.<kind>(*args, **kwargs)``, not made yet (arguments may hold CtTypes)."""

    kind: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()

    def __repr__(self) -> str:
        shown = [repr(a) for a in self.args] + [f"{k}={v!r}" for k, v in self.kwargs]
        return f"ct.{self.kind}({', '.join(shown)})"


def ct_type(kind: str, *args: Any, **kwargs: Any) -> CtType:
    """``ct_type("TensorType", name="x", shape=(1, 3))``: ``ct.TensorType(name="x", shape=(1, 3))``, unmade."""
    return CtType(kind, tuple(args), tuple(sorted(kwargs.items())))


def build(value: Any, ct: Any) -> Any:
    """``value`` with every :class:`CtType` in it (in lists, tuples and dicts, nested) made
    with the imported coremltools module ``ct``; anything else is returned as is."""
    if isinstance(value, CtType):
        args = [build(a, ct) for a in value.args]
        kwargs = {k: build(v, ct) for k, v in value.kwargs}
        return getattr(ct, value.kind)(*args, **kwargs)
    if isinstance(value, list):
        return [build(v, ct) for v in value]
    if isinstance(value, tuple):
        return tuple(build(v, ct) for v in value)
    if isinstance(value, dict):
        return {k: build(v, ct) for k, v in value.items()}
    return value


__all__ = ["CtType", "build", "ct_type"]
