"""The stack table: which Apple stack a test's model is converted for, by name.

A *stack* is a conversion toolchain plus the runtimes that run its artifact: Core ML
(``coreml``: coremltools, run by the emulator or the macOS runtime) and Core AI
(``coreai``: coreai-torch, run by Apple's interpreter). The word for what runs an
artifact is *runner* (:class:`~pytest_coreml_parity.backends.Backend`).

Every behaviour that differs by stack is a member of :class:`Stack`; callers ask the
stack object, never compare its name. :data:`STACKS` maps a name (the ``targets``
setting, the id prefix ``coreai-fp16``) to where its class lives, the way pytest's
entry points do: the table is data, so this module stays a cheap leaf that settings
can read, and a stack's own package (``stacks/<name>/``) is imported only when a test
uses it. Adding a stack is one folder plus :func:`register` (see docs/architecture.md).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping, Sequence
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from ..backends import Backend
    from ..cache import EntryLayout
    from ..convert import ConversionOptions
    from ..model import CoreMLModel
    from ..verdict import Gates


class Stack(Protocol):
    """One Apple stack: how a model is captured, keyed, converted, cached, run and diagnosed."""

    #: The table key: the ``targets`` value and the test-id prefix (``coreai-fp16``).
    name: str
    #: How messages name it: ``Core ML``, ``Core AI``.
    title: str
    #: How its cache entries store the artifact (``stacks/<name>/layout.py``).
    layout: EntryLayout
    #: The skip message when no runner can run it here (``{reason}``).
    unavailable: str
    #: The first line of a parity failure (``{output}``, ``{precision}``, ``{backend}``).
    parity_header: str
    #: What a failure says when only this stack's outputs hold nan/inf.
    nonfinite: str
    #: Whether a raw causal LM converts through the plugin-built KV-cache wrapper
    #: (:mod:`.decoders`: Core ML states or explicit cache I/O); else it converts as given.
    wraps_decoders: bool
    #: The settings (option / ini / marker keyword by settings name, or fixture) it does not
    #: take: a test that sets one skips (marker) or the header says so (command line, ini).
    #: A stack that does not wrap decoders ignores ``assert_generation``'s gates too.
    ignores: frozenset[str]

    def skip_reason(self, precision: str) -> str | None:
        """Why this stack cannot run ``precision`` at all (the test skips), else None."""

    def converted_options(self, options: ConversionOptions) -> ConversionOptions:
        """The options this stack converts and judges with (Core AI: ``mixed`` is fp16 + fp32 ops)."""

    def resolve_runner(self, choice: str) -> tuple[Backend | None, str | None]:
        """(runner, None) for the runner ``choice`` (``--coreml-backend``), or (None, why not)."""

    def bind(
        self,
        model: CoreMLModel,
        torch_model: Any,
        example_inputs: tuple[Any, ...],
        options: ConversionOptions,
        *,
        convert: Any,
        convert_kwargs: Mapping[str, Any] | None,
    ) -> str:
        """Capture, key, convert (through the cache) and load ``torch_model`` into ``model``;
        return how the artifact was obtained (cache.EVENTS). Raises ConversionError."""

    def describe_conversion(self, model: CoreMLModel) -> str:
        """How ``model`` was converted, for a parity failure's ``model:`` line."""

    def diagnose(
        self,
        model: Any,
        inputs: Sequence[Any],
        *,
        rtol: float | None,
        atol: float | None,
        gates: Gates | None,
    ) -> Any:
        """The diagnosis of a failed parity check on ``inputs`` (None: nothing to say)."""

    def write_report(self, diagnosis: Any, report_dir: Path, node_id: str | None) -> list[Path]:
        """Write ``diagnosis``'s report files into ``report_dir``; the paths written."""

    def header(self) -> str | None:
        """The session header's note on this stack when it is selected (versions, runner)."""


#: name -> ``module:Class`` of every stack, in the order ``--coreml-targets`` lists them.
STACKS: dict[str, str] = {
    "coreml": "pytest_coreml_parity.stacks.coreml:CoreMLStack",
    "coreai": "pytest_coreml_parity.stacks.coreai:CoreAIStack",
}
#: The stacks that run unless others are asked for (their ids carry no prefix).
DEFAULT_STACKS: tuple[str, ...] = ("coreml",)


def names() -> tuple[str, ...]:
    """Every known stack name (what settings accept and errors list)."""
    return tuple(STACKS)


def register(name: str, where: str) -> None:
    """Add stack ``name`` whose class is at ``where`` (``package.module:Class``)."""
    if ":" not in where:
        raise ValueError(f"stack {name!r}: {where!r} is not 'module:Class'")
    STACKS[name] = where
    stack.cache_clear()


def unregister(name: str) -> None:
    """Remove a registered stack (the built-in ones stay)."""
    if name in DEFAULT_STACKS or name not in STACKS:
        raise ValueError(f"stack {name!r} is not a registered extra stack")
    del STACKS[name]
    stack.cache_clear()


@cache
def stack(name: str) -> Stack:
    """The :class:`Stack` called ``name`` (one instance per name and session)."""
    try:
        where = STACKS[name]
    except KeyError:
        raise ValueError(f"unknown stack {name!r} (known: {', '.join(STACKS)})") from None
    module, _, attr = where.partition(":")
    made: Stack = getattr(importlib.import_module(module), attr)()
    return made


__all__ = ["DEFAULT_STACKS", "STACKS", "Stack", "names", "register", "stack", "unregister"]
