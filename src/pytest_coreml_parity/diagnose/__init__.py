"""Diagnose a parity failure: name the op that broke, and find a verified fp32 fix.

Public API (also usable outside pytest):

* :func:`localize` / :func:`localize_models`: record the model at fp16 and at
  fp32 on the failing inputs and name the first non-finite op, the first op
  whose error against fp32 is beyond tolerance, and the first op whose value
  departs from torch's own intermediate value.
* :func:`find_mixed_precision`: search a small set of ops to keep in float32,
  verified by re-conversion, with a paste-ready ``ct.convert`` snippet.
* :func:`choose_hint`: what happened (overflow, underflow, precision loss, a
  converter mismatch already present at fp32, an input overflowing fp16, or a
  compression error), so the advice fits.
* :func:`diagnose_failure`: what the plugin's report hook calls, once per failed
  test, on the model and inputs a :class:`~pytest_coreml_parity.compare.ParityFailure`
  carries.

Everything converts through :func:`pytest_coreml_parity.convert.convert_model`
and judges parity with :mod:`pytest_coreml_parity.verdict`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

from ..convert import ConversionOptions
from ._quiet import quiet
from .compression import CompressionAttribution, WeightFinding, attribute_compression
from .departure import Departure
from .fix import MixedPrecisionFix, search_fix
from .hints import Hint, HintKind, choose_hint, compression_hint
from .localize import Localization, OpFinding, ProfilePoint, TensorRange
from .section import Diagnosis, diagnose_failure
from .subject import ModelUnderTest, Subject, as_arrays
from .workflow import localize_models, localize_subject

__all__ = [
    "CompressionAttribution",
    "Departure",
    "Diagnosis",
    "Hint",
    "HintKind",
    "Localization",
    "MixedPrecisionFix",
    "ModelUnderTest",
    "OpFinding",
    "ProfilePoint",
    "TensorRange",
    "WeightFinding",
    "attribute_compression",
    "choose_hint",
    "compression_hint",
    "diagnose_failure",
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
    options: ConversionOptions | None = None,
) -> Localization:
    """Convert ``torch_model`` at fp16 and fp32 and localize the failure on ``inputs``.

    ``example_inputs`` are used for tracing (default: ``inputs``). Conversion goes
    through :func:`~pytest_coreml_parity.convert.convert_model` with ``options``
    (default: the plugin's defaults at ``target``: torch.jit.trace, input names from
    ``forward``'s parameters, coremltools' own I/O dtypes, which are fp16 at fp16
    from iOS16 on); the model under test is its fp16 conversion.
    """
    arrays = as_arrays(inputs)
    options = dataclasses.replace(options or ConversionOptions(target=target), precision="fp16")
    subject = Subject.from_torch(torch_model, example_inputs or inputs, options)
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
    options: ConversionOptions | None = None,
) -> MixedPrecisionFix:
    """Find and verify ops to keep in fp32 so fp16 parity holds on every input set.

    Parity is checked on each of ``failing_inputs``, each of ``counterexamples``
    and on ``example_inputs``; ``budget`` caps the conversions the search makes;
    ``use_seed=False`` turns off the fp32-range seed (bisection only). Conversion
    and tolerance: as for :func:`localize`, verified at the fp16 preset.
    """
    examples = as_arrays(example_inputs)
    options = dataclasses.replace(options or ConversionOptions(target=target), precision="fp16")
    subject = Subject.from_torch(torch_model, example_inputs, options)
    input_sets = [(f"failing inputs #{i + 1}", as_arrays(x)) for i, x in enumerate(failing_inputs)]
    input_sets += [(f"counterexample #{i + 1}", as_arrays(x)) for i, x in enumerate(counterexamples)]
    input_sets.append(("example inputs", examples))
    return search_fix(subject, input_sets, budget=budget, use_seed=use_seed)

