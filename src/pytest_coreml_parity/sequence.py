"""A stateful model's sequence: the buffers ``forward`` updates, the program's states,
the runner's state and the torch side's copy, and every step so far.

A :class:`~.model.CoreMLModel` holds one; binding matches the buffers with the
program's states and :meth:`StatefulSequence.reset` starts a new sequence (each test, or each
Hypothesis example that asks).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ._values import to_numpy

if TYPE_CHECKING:
    from .backends import Backend

Buffers = tuple[tuple[str, tuple[int, ...]], ...]


@dataclass(frozen=True)
class Step:
    """One call of a stateful model's sequence: its errors against torch, and the verdict.

    ``ratio`` is the worst error over the allowed error (the verdict's rule: above 1 is
    beyond tolerance); ``passed`` is None for a bare ``coreml_model(...)`` call, which
    is measured but not judged.
    """

    step: int
    max_abs: float
    max_rel: float
    ratio: float | None = None
    passed: bool | None = None


class StatefulSequence:
    """The state of one test's sequence of calls (empty for a stateless model)."""

    def __init__(self) -> None:
        #: (name, shape) of each torch buffer ``forward`` updates (a stateful model).
        self.state_buffers: Buffers = ()
        #: Those of :attr:`state_buffers` the program holds no state for (frozen).
        self.frozen_buffers: Buffers = ()
        #: The runner's state (``EmulatorState`` / ``MLState``) of this test's sequence.
        self.state: Any = None
        #: This test's deep copy of ``torch_model``, whose buffers advance with the steps.
        self.torch_model: Any = None
        #: Every step of this test's sequence so far, in order.
        self.steps: list[Step] = []
        self.program_states: tuple[str, ...] | None = None

    @property
    def stateful(self) -> bool:
        """Whether ``forward`` updates buffers, or the program declares states."""
        return bool(self.state_buffers) or self.program_states is not None

    def bind(self, updated: Buffers, description: Any) -> None:
        """Match the buffers ``forward`` updates with the states ``description`` declares."""
        declared = tuple(s.name for s in getattr(description, "state", ()))
        self.program_states = declared or None
        self.state_buffers = updated
        self.frozen_buffers = tuple(
            (name, shape) for name, shape in updated
            if name not in declared and name.replace(".", "_") not in declared
        )  # fmt: skip

    def reset(self, torch_model: Any, backend: Backend | None, mlmodel: Any) -> None:
        """Start a new sequence: the torch side a fresh deep copy of ``torch_model``, the
        runner a fresh state holding the torch buffers' initial values (zeros for any
        state no buffer matches)."""
        self.steps = []
        self.state = None
        self.torch_model = copy.deepcopy(torch_model) if self.state_buffers else None
        if not self.program_states or backend is None:
            return
        buffers = dict(torch_model.named_buffers())
        by_state = {name.replace(".", "_"): tensor for name, tensor in buffers.items()}
        initial = {}
        for name in self.program_states:
            tensor = buffers.get(name, by_state.get(name))
            if tensor is not None:
                initial[name] = to_numpy(tensor)
        self.state = backend.make_state(mlmodel, initial)


__all__ = ["StatefulSequence", "Step"]
