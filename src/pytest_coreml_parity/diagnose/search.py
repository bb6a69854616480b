"""Find a small set of ops to keep in float32 so that parity holds, and verify it.

The strategy follows Polygraphy's ``debug precision`` and onnxconverter-common's
``auto_convert_mixed_precision``, plus one thing they do not have: the fp32 run
tells us which values fp16 cannot hold.

1. **Range seed.** An op whose fp32 output, or one of whose inputs (consts
   included), lies beyond the fp16 range must run in fp32. Keeping its consumers
   in fp32 too is what makes the seed aware of cast boundaries: the fp16 pass
   casts every fp32 value back to fp16 before an fp16 consumer, so an fp32
   ``rb * rb`` of 90000 still becomes inf before the division unless the
   division is fp32 as well. One conversion checks the seed.
2. **Bisection** (when the seed is empty or not enough), over the program order
   of the ops the fp16 pass converted: the shortest prefix kept in fp32 that
   passes, then the shortest suffix of that prefix: a segment, in about
   2*log2(n) conversions.
3. **Greedy minimization**: drop ops (in chunks first when the set is large)
   while parity still holds.

Every candidate set is checked by converting with it and running the checks, so
what we recommend is what was verified.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

Check = Callable[[frozenset[str]], bool]


class BudgetExceeded(Exception):
    """The search used up its conversion budget."""


@dataclass(frozen=True)
class SearchStep:
    """One conversion the search made: which phase, how many ops kept in fp32, the verdict."""

    phase: str
    kept: int
    passed: bool


class Checker:
    """Wraps the check: memoizes verdicts, counts and logs conversions, enforces the budget."""

    def __init__(self, check: Check, budget: int) -> None:
        self._check = check
        self.budget = budget
        self.steps: list[SearchStep] = []
        self.verdicts: dict[frozenset[str], bool] = {}
        self.phase = "seed"

    def __call__(self, kept: frozenset[str]) -> bool:
        if kept in self.verdicts:
            return self.verdicts[kept]
        if len(self.steps) >= self.budget:
            raise BudgetExceeded
        verdict = bool(self._check(kept))
        self.verdicts[kept] = verdict
        self.steps.append(SearchStep(self.phase, len(kept), verdict))
        return verdict

    def best_passing(self) -> frozenset[str] | None:
        passing = [s for s, ok in self.verdicts.items() if ok]
        return min(passing, key=len) if passing else None


def search(
    candidates: Sequence[str], seed: frozenset[str], checker: Checker
) -> frozenset[str] | None:
    """A small passing set of ``candidates`` (in program order), or None if none passes.

    Assumes keeping every candidate in fp32 passes (the caller checked the fp32 model).
    """
    order = {name: i for i, name in enumerate(candidates)}
    kept: frozenset[str] | None = None
    if seed:
        checker.phase = "seed"
        if checker(seed):
            kept = seed
    if kept is None:
        kept = _segment(list(candidates), seed, checker)
    checker.phase = "minimize"
    return _minimize(sorted(kept, key=order.__getitem__), checker)


def _segment(candidates: list[str], base: frozenset[str], checker: Checker) -> frozenset[str]:
    n = len(candidates)
    checker.phase = "bisect-prefix"
    lo, hi = 0, n  # keeping candidates[:lo] fails, candidates[:hi] passes (fp32 model)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if checker(base | frozenset(candidates[:mid])):
            hi = mid
        else:
            lo = mid
    end = hi
    checker.phase = "bisect-suffix"
    lo, hi = 0, end  # candidates[lo:end] passes, candidates[hi:end] fails
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if checker(base | frozenset(candidates[mid:end])):
            lo = mid
        else:
            hi = mid
    return base | frozenset(candidates[lo:end])


def _minimize(items: list[str], checker: Checker) -> frozenset[str]:
    """Greedy removal; chunked (ddmin-style) first when the set is large."""
    chunk = max(1, len(items) // 2) if len(items) > 8 else 1
    while True:
        i = 0
        while i < len(items):
            trial = items[:i] + items[i + chunk :]
            if trial and checker(frozenset(trial)):
                items = trial
            else:
                i += chunk
        if chunk == 1:
            return frozenset(items)
        chunk = max(1, chunk // 2)
