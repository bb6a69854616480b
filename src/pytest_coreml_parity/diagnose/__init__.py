"""Diagnose a parity failure: name the op that broke, and find a verified fp32 fix.

Public API (also usable outside pytest):

* :func:`localize` / :func:`localize_models`: record the model at fp16 and at
  fp32 on the failing inputs and name the first non-finite op and the first
  op whose error against fp32 is beyond tolerance.
* :func:`find_mixed_precision`: search a small set of ops to keep in float32,
  verified by re-conversion, with a paste-ready ``ct.convert`` snippet.
* :func:`failure_section`: the hook the plugin's assertions call on failure.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._quiet import quiet
from .fix import MixedPrecisionFix, search_fix
from .localize import Localization, OpFinding, ProfilePoint, TensorRange
from .section import failure_section
from .subject import PluginSubject, TorchSubject, as_arrays
from .workflow import localize_models, localize_subject

__all__ = [
    "Localization",
    "MixedPrecisionFix",
    "OpFinding",
    "ProfilePoint",
    "TensorRange",
    "failure_section",
    "find_mixed_precision",
    "localize",
    "localize_models",
]


@quiet
def localize(
    torch_model: Any,
    inputs: Sequence[Any],
    *,
    example_inputs: Sequence[Any] | None = None,
    target: str = "iOS16",
) -> Localization:
    """Convert ``torch_model`` at fp16 and fp32 and localize the failure on ``inputs``.

    ``example_inputs`` are used for tracing (default: ``inputs``).
    """
    arrays = as_arrays(inputs)
    subject = TorchSubject(torch_model, as_arrays(example_inputs) if example_inputs else arrays, target)
    return localize_subject(subject, arrays)


@quiet
def find_mixed_precision(
    torch_model: Any,
    example_inputs: Sequence[Any],
    failing_inputs: Sequence[Sequence[Any]] = (),
    *,
    counterexamples: Sequence[Sequence[Any]] = (),
    target: str = "iOS16",
    budget: int = 64,
    use_seed: bool = True,
) -> MixedPrecisionFix:
    """Find and verify ops to keep in fp32 so fp16 parity holds on every input set.

    Parity is checked on each of ``failing_inputs``, each of ``counterexamples``
    and on ``example_inputs``; ``budget`` caps the conversions the search makes;
    ``use_seed=False`` turns off the fp32-range seed (bisection only).
    """
    examples = as_arrays(example_inputs)
    subject = TorchSubject(torch_model, examples, target)
    input_sets = [(f"failing inputs #{i + 1}", as_arrays(x)) for i, x in enumerate(failing_inputs)]
    input_sets += [(f"counterexample #{i + 1}", as_arrays(x)) for i, x in enumerate(counterexamples)]
    input_sets.append(("example inputs", examples))
    return search_fix(subject, input_sets, budget=budget, use_seed=use_seed)


_ = PluginSubject  # re-exported for the plugin hook (section.py)
