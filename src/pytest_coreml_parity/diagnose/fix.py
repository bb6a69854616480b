"""Drive the mixed-precision search on a real model and verify what it finds.

Parity is checked against torch with the verdict's rule (:mod:`..verdict`, the
one ``assert_parity`` uses) at the fp16 tolerance, on every input set
given (the failing inputs, hypothesis counterexamples, the example inputs),
by converting with the candidate op_selector and running the emulator.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from .. import messages
from ..emulator import Emulator
from ..errors import ConversionError
from ..op_names import source_lines, stable_fix
from ..verdict import Gates, judge, preset
from ._quiet import quiet
from .localize import FP16_MAX, feed_for
from .names import fp32_name, is_converted, scope_names, selector_names, var_correspondence
from .search import BudgetExceeded, Checker, SearchStep, search

InputSet = tuple[str, tuple[np.ndarray, ...]]


class Subject(Protocol):
    conversions: int

    def model(self, precision: str, fp32_ops: frozenset[str] | None = None) -> Any: ...
    def reference(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]: ...
    def snippet(self, names: Sequence[str]) -> str: ...
    def trace(self) -> Any: ...


@dataclass(frozen=True)
class MixedPrecisionFix:
    """The outcome of a search: the verified op_selector, or why there is none."""

    found: bool
    message: str
    fp32_ops: tuple[str, ...] = ()
    kept_ops: tuple[str, ...] = ()
    n_candidates: int = 0
    conversions: int = 0
    baseline_conversions: int = 0
    verified_on: tuple[str, ...] = ()
    snippet: str = ""
    seconds: float = 0.0
    steps: tuple[SearchStep, ...] = field(default=())

    def text(self) -> str:
        if not self.found:
            return f"mixed-precision search: {self.message}"
        return (
            f"mixed-precision fix: keep {len(self.kept_ops)} of {self.n_candidates} ops in fp32 "
            f"({', '.join(self.kept_ops)}); verified by re-conversion on "
            f"{', '.join(self.verified_on)}; {self.conversions} conversions, "
            f"{self.seconds:.1f} s\n{self.pin()}\n{self.snippet}"
        )

    def pin(self) -> str:
        """The marker form that keeps the fix in the test (the ct.convert form follows it)."""
        return messages.FIX_PIN.format(names=", ".join(repr(n) for n in self.fp32_ops))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def passes(mlmodel: Any, input_sets: Sequence[InputSet], refs: Sequence[list[np.ndarray]], gates: Gates) -> bool:
    """True when the emulated model matches torch on every input set.

    Judged by :func:`pytest_coreml_parity.verdict.judge` under ``gates``, the
    verdict ``assert_parity`` uses, so a verified fix passes the assertion too.
    """
    emulator = Emulator(mlmodel)
    for (_label, inputs), want in zip(input_sets, refs, strict=True):
        got = emulator.run(feed_for(emulator, inputs))
        outs = [got[n] for n in emulator.output_names]
        if len(outs) != len(want):
            return False
        if not all(_match(g, w, gates) for g, w in zip(outs, want, strict=True)):
            return False
    return True


def _match(got: Any, want: Any, gates: Gates) -> bool:
    try:
        return judge(got, want, gates).passed
    except ValueError:  # shapes differ
        return False


@quiet
def search_fix(
    subject: Subject,
    input_sets: Sequence[InputSet],
    *,
    budget: int = 64,
    use_seed: bool = True,
    rtol: float | None = None,
    atol: float | None = None,
) -> MixedPrecisionFix:
    """Search, verify and describe a mixed-precision fix for ``subject``.

    ``use_seed=False`` skips the range seed (pure bisection + minimization), for
    comparison; ``rtol``/``atol`` default to the fp16 preset, whose other gates
    (scale_atol, min_snr...) verify the fix as ``assert_parity`` judges.
    """
    start = time.perf_counter()
    base = preset("fp16")
    gates = replace(
        base, rtol=base.rtol if rtol is None else rtol, atol=base.atol if atol is None else atol
    )
    before = subject.conversions
    refs = [subject.reference(inputs) for _label, inputs in input_sets]
    m16 = subject.model("fp16")
    m32 = subject.model("fp32")
    baseline = subject.conversions - before

    def done(found: bool, message: str, **kw: Any) -> MixedPrecisionFix:
        return MixedPrecisionFix(
            found=found,
            message=message,
            baseline_conversions=baseline,
            conversions=subject.conversions - before - baseline,
            seconds=time.perf_counter() - start,
            **kw,
        )

    if passes(m16, input_sets, refs, gates):
        return done(False, "fp16 already matches torch on every input set; nothing to fix")
    if not passes(m32, input_sets, refs, gates):
        return done(False, "the fp32 conversion fails too, so no choice of fp32 ops can fix it")

    em16 = Emulator(m16)
    candidates = [op.name for op in em16.ops if is_converted(op.name)]
    scopes = scope_names(m16)
    names = {c: selector_names(c, scopes) for c in candidates}

    def selector(kept: frozenset[str]) -> frozenset[str]:
        return frozenset(n for c in kept for n in names[c])

    def check(kept: frozenset[str]) -> bool:
        return passes(subject.model("fp16", selector(kept)), input_sets, refs, gates)

    checker = Checker(check, budget)
    seed = range_seed(em16, Emulator(m32), candidates, input_sets) if use_seed else frozenset()
    try:
        kept = search(candidates, seed, checker)
    except BudgetExceeded:
        kept = checker.best_passing()
        if kept is None:
            return done(False, f"no passing selector within {budget} conversions", n_candidates=len(candidates), steps=tuple(checker.steps))
    if kept is None or not checker(kept):
        return done(False, "no selector passed", n_candidates=len(candidates), steps=tuple(checker.steps))
    order = {c: i for i, c in enumerate(candidates)}
    kept_ops = tuple(sorted(kept, key=order.__getitem__))
    fp32_ops = tuple(sorted(selector(kept)))
    # Printed by names that survive edits to forward (submodule path:op kind, or the top
    # forward's source line) when they pass too: they may name a few more ops than the
    # search kept (one more conversion).
    traced = subject.trace()
    lines = source_lines(traced) if traced is not None else {}
    stable = stable_fix(kept, scopes, {op.name: op.op_type for op in em16.ops}, names, lines)
    steps = list(checker.steps)
    if stable != fp32_ops:
        verified = _stable_passes(subject, stable, input_sets, refs, gates)
        steps.append(SearchStep("stable-names", len(stable), verified))  # one more conversion
        if verified:
            fp32_ops = stable
    return done(
        True,
        "verified",
        fp32_ops=fp32_ops,
        kept_ops=kept_ops,
        n_candidates=len(candidates),
        verified_on=tuple(label for label, _ in input_sets),
        snippet=subject.snippet(fp32_ops),
        steps=tuple(steps),
    )


def _stable_passes(
    subject: Subject,
    names: Sequence[str],
    input_sets: Sequence[InputSet],
    refs: Sequence[list[np.ndarray]],
    gates: Gates,
) -> bool:
    """Whether pinning ``names`` passes; a name the conversion's own trace numbers
    differently matches nothing (an error), and then the internal names are printed."""
    try:
        return passes(subject.model("fp16", frozenset(names)), input_sets, refs, gates)
    except ConversionError:
        return False


def range_seed(em16: Emulator, em32: Emulator, candidates: Sequence[str], input_sets: Sequence[InputSet]) -> frozenset[str]:
    """Converted ops that touch a value fp16 cannot hold, judged from fp32 runs.

    An op is in the seed when its fp32 output, or any input it reads (consts
    included), exceeds the fp16 range; so the consumers of an out-of-range value
    are in it too, which keeps the cast back to fp16 off that value.
    """
    out_of_range: set[str] = set()
    for _label, inputs in input_sets:
        rec = em32.record(feed_for(em32, inputs))
        for name, value in rec.values.items():
            if _beyond_fp16(value):
                out_of_range.add(name)
    consts32: dict[str, list[Any]] = {op.name: list(op.constants.values()) for op in em32.ops}
    wanted = set(candidates)
    vars32 = var_correspondence(em16.ops, em32.ops)
    seed: set[str] = set()
    for op in em16.ops:
        if op.name not in wanted:
            continue
        reads = [vars32.get(v, v) for vs in op.inputs.values() for v in vs]
        writes = [vars32.get(v, v) for v in op.outputs]
        if any(v in out_of_range for v in reads + writes) or any(_beyond_fp16(c) for c in consts32.get(fp32_name(op.name), [])):
            seed.add(op.name)
    return frozenset(seed)


def _beyond_fp16(value: Any) -> bool:
    if not isinstance(value, np.ndarray) or value.dtype.kind != "f" or value.size == 0:
        return False
    finite = value[np.isfinite(value)]
    return bool(finite.size and np.max(np.abs(finite)) > FP16_MAX)
