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

# Tolerances (verdict.py): a bad value names where it came from.
BAD_TOLERANCE = (
    "{where}: {what} must be a finite non-negative number, or a dict of them keyed by "
    "precision ({known}); got {value!r}"
)
UNKNOWN_PRESET = "no tolerance preset for precision {precision!r} (known: {known})"
ARGUMENT_TOLERANCE = "assert_parity({what}=...)"
CONFIGURED_TOLERANCE = "the configured {what} (marker, --coreml-{what} or ini coreml_{what})"

# Diagnosis, attached to a failed test's report as a section with this title.
DIAGNOSIS_SECTION = "coreml-parity diagnosis"
DIAGNOSIS_UNAVAILABLE = "diagnosis unavailable: {error}"
SEARCH_FIX_HINT = "hint: run with --coreml-search-fix to search for ops to keep in fp32"
REPORT_WRITTEN = "report: {paths}"

# numpy >= 2.4 with coremltools <= 9.0 (its torch frontend calls int() on 1-element arrays).
NUMPY_SCALAR_ERROR = "only 0-dimensional arrays can be converted to Python scalars"
NUMPY_TOO_NEW_HEADER = (
    "coreml-parity: WARNING numpy {numpy} with coremltools {coremltools}: coremltools' torch "
    'frontend fails on numpy >= 2.4 (ViT, Swin, ShuffleNet...); pip install "numpy<2.4"'
)
NUMPY_TOO_NEW_EXPLANATION = (
    "numpy {numpy} made int() of a 1-element array a TypeError, which coremltools <= 9.0's "
    'torch frontend relies on; fix: pip install "numpy<2.4"'
)

# Disk cache.
CACHE_REBUILT = "{count} cache {entries} rebuilt ({reasons})"
