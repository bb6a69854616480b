"""User-facing message templates, shared by the code that raises them and the tests.

Tests import these instead of copying strings, so wording can change in one place.
"""

from __future__ import annotations

# Usage errors: where the bad value came from, what is allowed.
UNKNOWN_PRECISION = "{where}: unknown precision {value!r} (known: {known})"
EMPTY_PRECISIONS = "{where}: no precisions given (known: {known})"
UNKNOWN_CHOICE = "{where}: unknown {what} {value!r} (known: {known})"
BAD_NUMBER = "{where}: {what} must be a non-negative number or 'fp16=...,fp32=...', got {value!r}"
BAD_BOOL = "{where}: expected true or false, got {value!r}"
MARKER_UNKNOWN_KEYWORD = (
    "@pytest.mark.coreml in {where}: unknown keyword {value!r} (known: {known})"
)
MARKER_POSITIONAL = (
    "@pytest.mark.coreml in {where}: takes keywords only, e.g. "
    "@pytest.mark.coreml(precisions=['fp16']); got positional {value!r}"
)
MARKER_SIGNATURE = (
    "coreml(precisions=None, rtol=None, atol=None, target=None, compute_units=None, "
    "input_dtypes=None, export=None, search_fix=None): run coreml_model at these "
    "precisions with these conversion options and tolerances (see docs/configuration.md)"
)

MISSING_FIXTURE = (
    "{nodeid} uses coreml_model, which needs a {name!r} fixture; define it in the test "
    "module or a conftest.py ({what})"
)
BAD_TORCH_MODEL = "torch_model fixture: expected a torch.nn.Module, got {type}"
BAD_EXAMPLE_INPUTS = (
    "example_inputs fixture: expected a tuple of torch tensors, got {got}"
)
WRONG_INPUT_COUNT = (
    "coreml_model got {got} inputs, but {model} was converted with {want} example "
    "inputs {signature}; pass one tensor or array per example input"
)
WRONG_INPUT_SHAPE = (
    "coreml_model input {index} ({name!r}) has shape {got}, but {model} was converted "
    "with example input shape {want}; converted models have fixed input shapes"
)
NOT_BOUND = "this CoreMLModel is not bound to a converted model yet (use it inside a test)"
CONVERSION_FAILED = "{summary}"
BACKEND_UNAVAILABLE = "{reason}"

# Assertion messages.
PARITY_HEADER = "Core ML output {output} does not match PyTorch at {precision} on the {backend} backend"
REFERENCE_NONFINITE = (
    "PyTorch's own output {output} holds non-finite values, so the reference cannot judge "
    "Core ML; Core ML is not blamed. Constrain the inputs (e.g. hypothesis.assume) or fix the model."
)
COREML_NONFINITE = "Core ML produced nan/inf where PyTorch is finite"
FP16_HINT = (
    "hint: float16 overflows past 65504 (values of 256 or more overflow when squared or "
    "multiplied). Convert with compute_precision=ct.precision.FLOAT32, or use mixed "
    "precision: keep the overflowing ops in float32 with "
    "compute_precision=ct.transform.FP16ComputePrecision(op_selector=...)."
)
FINITE_HEADER = "{what} holds non-finite values"
