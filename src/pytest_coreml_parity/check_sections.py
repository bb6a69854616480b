"""What the lint, weight parity and per-profile verdicts add to a test's report.

Kept out of ``plugin.py`` (options, fixtures, hooks only). The plugin calls
:func:`lint_bound` once at bind, and :func:`weight_section` / :func:`profile_section`
from its report hook; each imports its machinery lazily and never raises (the test's
own outcome must stay visible).
"""

from __future__ import annotations

import contextlib
import sys
import weakref
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import messages

if TYPE_CHECKING:
    from .model import CoreMLModel


@dataclass(frozen=True)
class LintOutcome:
    """A bound model's lint: JSON-able findings, the section text, and the failure (mode error)."""

    findings: list[dict[str, Any]] = field(default_factory=list)
    text: str | None = None
    failure: str | None = None


#: Findings per program (an MLModel or Core AI program) and settings: a program
#: reused in the session is linted once.
_DONE: weakref.WeakKeyDictionary[Any, dict[tuple[Any, ...], tuple[list[dict[str, Any]], str | None]]] = (
    weakref.WeakKeyDictionary()
)


def lint_bound(model: CoreMLModel, mode: str, torch_source: Any) -> LintOutcome:
    """Lint ``model``'s program (``torch_source``: what was captured, for torch lines)."""
    if mode == "off":
        return LintOutcome()
    program_object = model.mlmodel if model.mlmodel is not None else model.program
    if program_object is None:
        return LintOutcome()
    key = (model.stack.name, model.precision, model.options.compute_units)
    try:
        cached = _DONE.get(program_object, {}).get(key)
    except TypeError:  # not weak-referenceable
        cached = None
    if cached is None:
        try:
            cached = _lint(model, torch_source)
        except Exception as error:  # a broken rule must not hide the test
            cached = ([], messages.LINT_UNAVAILABLE.format(error=f"{type(error).__name__}: {error}"))
        with contextlib.suppress(TypeError):
            _DONE.setdefault(program_object, {})[key] = cached
    findings, text = cached
    failure = None
    if mode == "error" and findings:
        failure = messages.LINT_FAILED.format(count=len(findings), text=text)
    return LintOutcome(findings, text, failure)


def _lint(model: CoreMLModel, torch_source: Any) -> tuple[list[dict[str, Any]], str | None]:
    from .lint import LintProgram, findings_json, lint

    root = type(model.torch_model).__name__ if model.torch_model is not None else None
    if model.mlmodel is None:  # a Core AI program: its rules read the exported torch program
        program = LintProgram(
            stack=model.stack.name, precision=model.precision, compute_units=model.options.compute_units,
            torch_source=torch_source, root_class=root,
        )  # fmt: skip
    else:
        program = LintProgram.from_mlmodel(
            model.mlmodel, precision=model.precision, compute_units=model.options.compute_units,
            torch_source=torch_source, root_class=root, profile=model.emulator_profile,
            function=model.settings.function,
        )  # fmt: skip
    found = lint(program)
    if not found:
        return [], None
    text = "\n".join([messages.LINT_HEADER.format(count=len(found)), *(f.text() for f in found)])
    return findings_json(found), text


def _failure(exc: BaseException | None) -> Any:
    """The ParityFailure carried by ``exc``, or None (compare is never imported for this)."""
    if exc is None or f"{__package__}.compare" not in sys.modules:
        return None
    from .compare import ParityFailure

    return exc if isinstance(exc, ParityFailure) and exc.model is not None else None


def weight_section(model: CoreMLModel | None, exc: BaseException | None, always: bool) -> tuple[str | None, list[dict[str, Any]]]:
    """Weight parity for a failed test whose program holds compressed weights, or for
    any test when ``always`` (``--coreml-weight-report``)."""
    failure = _failure(exc)
    if failure is not None:
        model = failure.model
    if model is None or model.mlmodel is None or model.torch_model is None:
        return None, []
    if failure is None and not always:
        return None, []
    try:
        from .diagnose.weights import compressed, weight_parity, weight_text
        from .headroom import emulator_for

        ops = emulator_for(model.mlmodel, model.emulator_profile).ops
        holds = compressed(ops)
        if not holds and not always:
            return None, []
        found = weight_parity(ops, model.torch_model)
        return weight_text(found, holds_compressed=holds), [w.to_dict() for w in found]
    except Exception as error:
        return messages.DIAGNOSIS_UNAVAILABLE.format(error=f"weight parity: {type(error).__name__}: {error}"), []


def profile_section(model: CoreMLModel | None, exc: BaseException | None, near: bool) -> tuple[str | None, list[dict[str, Any]]]:
    """Which emulator profiles agree: for a failed parity check, and (``near``) for a
    passing test whose last call came within :data:`~.diagnose.profiles.NEAR_GATE` of its gate."""
    failure = _failure(exc)
    if failure is None and exc is not None:
        return None, []
    if failure is not None:
        model, inputs = failure.model, failure.inputs
        gates = failure.judgement.gates if failure.judgement is not None else None
    elif near and model is not None:
        inputs, gates = model.last_inputs, None
    else:
        return None, []
    if (
        model is None or inputs is None or model.mlmodel is None or model.backend is None
        or model.backend.name != "emulator" or model.torch_state_model is not None or model.images
    ):  # fmt: skip
        return None, []
    try:
        import numpy as np

        from ._values import flatten
        from .compare import gates_for
        from .diagnose.profiles import NEAR_GATE, profile_verdicts, profiles_text

        if gates is None:
            gates = gates_for(model.precision, {}, model=model).gates
        expected = [np.asarray(x) for x in flatten(model.reference_prepared(tuple(inputs)))]
        feed = {}
        for name, dtype, value in zip(model.input_names, model.input_dtypes, inputs, strict=True):
            with np.errstate(over="ignore"):
                feed[name] = np.asarray(value).astype(dtype) if dtype is not None else np.asarray(value)
        verdicts = profile_verdicts(
            model.mlmodel, feed, model.output_names, expected, gates, function=model.settings.function or "main"
        )
        typed = next((v for v in verdicts if v.profile == "typed"), None)
        if failure is None and (typed is None or (typed.passed and typed.ratio < NEAR_GATE and all(v.passed for v in verdicts))):
            return None, []  # passed with room to spare under every profile
        return profiles_text(verdicts, failed=failure is not None), [v.to_dict() for v in verdicts]
    except Exception as error:
        return messages.DIAGNOSIS_UNAVAILABLE.format(error=f"profiles: {type(error).__name__}: {error}"), []


__all__ = ["LintOutcome", "lint_bound", "profile_section", "weight_section"]
