"""Which stacks each option, ini key and marker keyword applies to.

A suite may run both stacks (``--coreml-targets=coreml,coreai``). A setting that does not
apply to a test's stack is never silently ignored: the plugin fails or skips that test with
a message naming the setting and the stack (``plugin.py`` asks :func:`stacks_of`). The
answer is a column of the stack table: each stack's ``ignores`` (``Stack.ignores``), plus
``assert_generation``'s gates for a stack that does not wrap decoders; so a new stack is
one folder and one row. Read by the plugin, the docs test (every keyword documented once,
with its stacks) and the fixed-shape hint. Stack classes are cheap to load; this module
compares no stack name itself. Cheap to import: no numpy, torch or coremltools.
"""

from __future__ import annotations

from .gates import GENERATION
from .gates import names as gate_names
from .stacks import names, stack

#: What a stack that does not wrap causal LMs (``Stack.wraps_decoders``) ignores:
#: ``assert_generation``'s gates (gates.GATE_TABLE, check ``generation``).
_DECODER_SETTINGS: frozenset[str] = frozenset(gate_names(GENERATION))


def ignored_by(name: str) -> frozenset[str]:
    """The settings (and fixtures) stack ``name`` does not take: its ``ignores`` column."""
    of = stack(name)
    return of.ignores if of.wraps_decoders else of.ignores | _DECODER_SETTINGS


def stacks_of(name: str) -> tuple[str, ...]:
    """The stacks setting (or fixture) ``name`` applies to, in table order."""
    return tuple(stack for stack in names() if name not in ignored_by(stack))


def applies(name: str, stack: str) -> bool:
    return name not in ignored_by(stack)


def only() -> dict[str, tuple[str, ...]]:
    """setting (option / ini / marker keyword, by its settings name; or fixture) -> the
    stacks it applies to, for every setting some stack of the table ignores."""
    ignored = sorted(set().union(*(ignored_by(name) for name in names())))
    return {name: stacks_of(name) for name in ignored}


__all__ = ["applies", "ignored_by", "only", "stacks_of"]
