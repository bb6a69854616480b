"""Op names for ``fp32_ops`` that survive edits to ``forward``.

coremltools names an op after the torch value it computes (``17``, ``input.1``, ``var``):
a debug name that shifts whenever ``forward`` gains or loses a line above it. Each op
also keeps its torch scope: the submodule names down to it and the torch op kind. A
*stable name* is the submodule path and the kind, ``0.norm:pow`` (``:mul`` for an op
of the top module's own ``forward``); it names every op of that kind in that submodule,
and survives edits anywhere else. ``fp32_ops`` accepts both kinds of name.

:class:`Fp32Selector` is the ``op_selector`` coremltools calls during conversion; it
records which pinned names matched, so a name that matches nothing is an error listing
the nearest names the program has, never a silent "3 ops kept".

``sanitize`` / ``fp32_name`` / ``is_converted``: coremltools' op-name rules between the
fp16 and fp32 programs (``diagnose.names`` re-exports them; the lint reads them here, so
a lint does not import the diagnosis package).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from . import messages
from ._suggest import close_matches

#: What coremltools' fp16 pass appends to the name of each op it converts.
FP16_SUFFIX = "_cast_fp16"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")


def sanitize(name: str) -> str:
    """coremltools' NameSanitizer rule for op names (without uniqueness suffixes)."""
    new = _INVALID.sub("_", name)
    if re.match(r"[^a-zA-Z_]", new):
        new = "op_" + new
    return new


def is_converted(name: str) -> bool:
    """True for ops the fp16 pass converted (it renames each one it converts)."""
    return name.endswith(FP16_SUFFIX)


def fp32_name(fp16_name: str) -> str:
    """The name the same op has in the fp32 conversion of the model."""
    if fp16_name.endswith(FP16_SUFFIX):
        return fp16_name[: -len(FP16_SUFFIX)]
    return fp16_name


def stable_name(types: Sequence[str], names: Sequence[str], op_type: str = "") -> str | None:
    """``0.norm:pow`` from a torch scope (module types, module names); None without one."""
    if not names:
        return None
    kind = types[-1] if types else op_type
    return f"{'.'.join(names[:-1])}:{kind}"


def _scopes(op: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    scopes = getattr(op, "scopes", None) or {}
    types: tuple[str, ...] = ()
    names: tuple[str, ...] = ()
    for source, values in scopes.items():
        label = str(source)
        if label.endswith("TORCHSCRIPT_MODULE_TYPE"):
            types = tuple(str(v) for v in values)
        elif label.endswith("TORCHSCRIPT_MODULE_NAME"):
            names = tuple(str(v) for v in values)
    return types, names


def op_names(op: Any) -> frozenset[str]:
    """Every name ``fp32_ops`` may give a coremltools op: its own, and its stable one."""
    stable = stable_name(*_scopes(op), getattr(op, "op_type", ""))
    return frozenset({op.name} if stable is None else {op.name, stable})


class Fp32Selector:
    """``FP16ComputePrecision(op_selector=Fp32Selector(keep))``: keep in fp32 every op
    named (either way) in ``keep``; remember what matched and what exists."""

    def __init__(self, keep: Iterable[str]) -> None:
        self.keep = frozenset(keep)
        self.seen: set[str] = set()
        self.matched: set[str] = set()

    def __call__(self, op: Any) -> bool:
        names = op_names(op)
        self.seen |= names
        hit = names & self.keep
        self.matched |= hit
        return not hit  # True: this op goes to fp16

    def unmatched_message(self) -> str | None:
        """The error for pinned names no op has, with the nearest names; None if all matched."""
        missing = sorted(self.keep - self.matched)
        if not missing:
            return None
        return unmatched_message(missing, self.seen)


def unmatched_message(missing: Sequence[str], known: Iterable[str]) -> str:
    names = sorted(set(known))
    nearest = {m: close_matches(m, names, n=5) for m in missing}
    shown = "; ".join(f"{m!r}: nearest {nearest[m] or 'none'}" for m in missing)
    stable = sorted(n for n in names if ":" in n)
    return messages.FP32_OPS_UNMATCHED.format(
        missing=list(missing), nearest=shown, stable=", ".join(stable[:12]) or "none"
    )


def stable_fix(
    kept: Iterable[str],
    scopes: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]],
    op_types: Mapping[str, str],
    internal: Mapping[str, Sequence[str]],
) -> tuple[str, ...]:
    """Names for the fp16-program ops ``kept``: the stable name of an op inside a submodule
    (``block.norm:pow``), else its ``internal`` (selector) names: an op of the top
    module's own ``forward`` has no submodule path to tell it from its siblings."""
    result: set[str] = set()
    for name in kept:
        types, names = scopes.get(name, ((), ()))
        stable = stable_name(types, names, op_types.get(name, ""))
        if stable is not None and not stable.startswith(":"):
            result.add(stable)
        else:
            result.update(internal[name])
    return tuple(sorted(result))
