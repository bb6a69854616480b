"""Op names for ``fp32_ops`` that survive edits to ``forward``.

coremltools names an op after the torch value it computes (``17``, ``input.1``, ``var``):
a debug name that shifts whenever ``forward`` gains or loses a line above it. Each op
also keeps its torch scope: the submodule names down to it and the torch op kind. A
*stable name* is the submodule path and the kind, ``0.norm:pow`` (``:mul`` for an op
of the top module's own ``forward``); it names every op of that kind in that submodule,
and survives edits anywhere else. A *line name* adds the torch source line the op came
from, ``:mul@den = rb * rb + ib * ib``: it tells apart the ops of one ``forward`` (the top
module's, which has no submodule path) and survives edits to any other line. ``fp32_ops``
accepts all three kinds of name; line names need the ``torch.jit`` trace the program was
converted from (``Fp32Selector(keep, traced=...)``).

:class:`Fp32Selector` is the ``op_selector`` coremltools calls during conversion; it
records which pinned names matched, so a name that matches nothing is an error listing
the nearest names the program has, never a silent "3 ops kept".

``sanitize`` / ``fp32_name`` / ``is_converted``: coremltools' op-name rules between the
fp16 and fp32 programs (``diagnose.names`` re-exports them; the lint reads them here, so
a lint does not import the diagnosis package).
"""

from __future__ import annotations

import linecache
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from . import messages
from ._suggest import close_matches

#: What coremltools' fp16 pass appends to the name of each op it converts.
FP16_SUFFIX = "_cast_fp16"
_INVALID = re.compile(r"[^a-zA-Z0-9_]")
#: Between a stable name and its source line in a line name.
LINE_SEPARATOR = "@"
_FRAME = re.compile(r"^(?P<path>.*)\((?P<line>\d+)\): (?P<func>\S+)$")

#: torch debug name -> (torch op kind, the code of the user's source line it came from).
Lines = Mapping[str, tuple[str, str]]


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


def converter_graph(traced: Any) -> Any:
    """A copy of ``traced``'s graph numbered as coremltools numbers it.

    coremltools' torch frontend inlines, removes dead code and canonicalizes the
    graph (``_expand_and_optimize_ir``), which renumbers unnamed values (``%10``
    in the trace can be ``%7`` in its op scopes); we repeat those passes on a copy.
    Raises whatever torch raises for a module that is no trace.
    """
    import torch

    graph = traced.inlined_graph  # a copy, inlined
    torch._C._jit_pass_inline_fork_wait(graph)
    torch._C._jit_pass_dce(graph)
    torch._C._jit_pass_canonicalize_graph_fuser_ops(graph)
    return torch._C._jit_pass_canonicalize(graph)


def source_lines(traced: Any) -> dict[str, tuple[str, str]]:
    """torch debug name -> (op kind, code) for every node of a ``torch.jit`` trace: the
    line of the user's code that made it (the innermost frame outside torch itself), with
    its whitespace collapsed. Empty for anything that is not a trace (``torch.export``)."""
    try:
        graph = converter_graph(traced)
    except Exception:  # not a ScriptModule: no source lines to name ops by
        return {}
    import torch

    torch_dir = str(Path(torch.__file__).parent)
    result: dict[str, tuple[str, str]] = {}
    checked: set[str] = set()
    for node in graph.nodes():
        frames = [m for m in (_FRAME.match(r.strip()) for r in str(node.sourceRange()).split("\n")) if m]
        if not frames:
            continue
        frame = next((f for f in frames if not f["path"].startswith(torch_dir)), frames[0])
        if frame["path"] not in checked:  # the file as it is now, not as first read
            linecache.checkcache(frame["path"])
            checked.add(frame["path"])
        code = " ".join(linecache.getline(frame["path"], int(frame["line"])).split())
        if not code:
            continue
        kind = node.kind().split("::", 1)[-1]
        for out in node.outputs():
            result[out.debugName()] = (kind, code)
    return result


def line_name(stable: str, types: Sequence[str], names: Sequence[str], lines: Lines) -> str | None:
    """``:mul@den = rb * rb + ib * ib``: ``stable`` plus the op's source line, when the
    trace's node for the op's debug name is of the op's kind (else the numbering differs)."""
    if not names:
        return None
    found = lines.get(names[-1])
    if found is None or (types and found[0] != types[-1]):
        return None
    return f"{stable}{LINE_SEPARATOR}{found[1]}"


def op_names(op: Any, lines: Lines | None = None) -> frozenset[str]:
    """Every name ``fp32_ops`` may give a coremltools op: its own, its stable one, and
    (given the trace's ``lines``) its line name."""
    types, names = _scopes(op)
    stable = stable_name(types, names, getattr(op, "op_type", ""))
    if stable is None:
        return frozenset({op.name})
    line = line_name(stable, types, names, lines) if lines else None
    return frozenset({op.name, stable} if line is None else {op.name, stable, line})


class Fp32Selector:
    """``FP16ComputePrecision(op_selector=Fp32Selector(keep, traced=traced_model))``: keep
    in fp32 every op named (any way) in ``keep``; remember what matched and what exists.
    ``traced`` (the ``torch.jit`` trace being converted) is read only when ``keep`` holds
    line names."""

    def __init__(self, keep: Iterable[str], traced: Any = None) -> None:
        self.keep = frozenset(keep)
        self.seen: set[str] = set()
        self.matched: set[str] = set()
        wants_lines = traced is not None and any(LINE_SEPARATOR in k for k in self.keep)
        self.lines: Lines = source_lines(traced) if wants_lines else {}

    def __call__(self, op: Any) -> bool:
        names = op_names(op, self.lines)
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
    lines: Lines | None = None,
) -> tuple[str, ...]:
    """Names for the fp16-program ops ``kept``: the stable name of an op inside a submodule
    (``block.norm:pow``); for an op of the top module's own ``forward``, which has no
    submodule path to tell it from its siblings, its line name (``:mul@den = rb * rb + ib *
    ib``) from the trace's ``lines``; else its ``internal`` (selector) names."""
    result: set[str] = set()
    for name in kept:
        types, names = scopes.get(name, ((), ()))
        stable = stable_name(types, names, op_types.get(name, ""))
        if stable is not None and not stable.startswith(":"):
            result.add(stable)
            continue
        line = line_name(stable, types, names, lines) if stable is not None and lines else None
        if line is not None:
            result.add(line)
        else:
            result.update(internal[name])
    return tuple(sorted(result))
