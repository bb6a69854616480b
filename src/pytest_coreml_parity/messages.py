"""User-facing message templates, shared by the code that raises them and the tests.

Tests import these instead of copying strings, so wording can change in one place.
"""

from __future__ import annotations

# Usage errors: where the bad value came from, what is allowed.
UNKNOWN_PRECISION = "{where}: unknown precision {value!r} (known: {known})"
EMPTY_PRECISIONS = "{where}: no precisions given (known: {known})"
EMPTY_TARGETS = "{where}: no targets given (known: {known})"
UNKNOWN_TARGET_STACK = "{where}: unknown target {value!r} (known: {known})"
UNKNOWN_CHOICE = "{where}: unknown {what} {value!r} (known: {known})"
BAD_NUMBER = "{where}: {what} must be a non-negative number or 'fp16=...,fp32=...', got {value!r}"
BAD_BOOL = "{where}: expected true or false, got {value!r}"
BAD_MARGIN = "{where}: headroom margin must be a finite number >= 1 (1 gates at 65504), got {value!r}"
MARKER_UNKNOWN_KEYWORD = (
    "@pytest.mark.coreml in {where}: unknown keyword {value!r} (known: {known})"
)
MARKER_POSITIONAL = (
    "@pytest.mark.coreml in {where}: takes keywords only, e.g. "
    "@pytest.mark.coreml(precisions=['fp16']); got positional {value!r}"
)
#: ``{keywords}``: ``precisions=None, rtol=None, ...`` (settings.MARKER_SIGNATURE fills it).
MARKER_SIGNATURE = (
    "coreml({keywords}): run coreml_model at "
    "these precisions (on these targets: coreml, coreai) with these conversion options and "
    "tolerances (see docs/configuration.md)"
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
FIXED_SHAPE_DECLARE = (
    ". To call it with shape {got} too, declare the shapes when converting "
    "(import coremltools as ct), e.g.\n    {enumerated}"
)
FIXED_SHAPE_RANGE = "\nor a range of sizes:\n    {ranged}"
FIXED_SHAPE_OWN = (
    "\nor convert it your own way in a coreml_convert fixture (docs/usage.md, 'Flexible shapes')"
)
FIXED_SHAPE_RANK = "; pass a tensor or array of rank {rank}"
FIXED_SHAPE_PACKAGE = (
    ". The package declares this shape only: to run shape {got}, build it with "
    "ct.EnumeratedShapes or ct.RangeDim in its ct.convert inputs"
)
FIXED_SHAPE_EXAMPLES = (
    ". This stack converts at the example inputs' shapes only: to run shape {got}, give "
    "example_inputs of that shape (a separate test or fixture)"
)
NOT_BOUND = "this CoreMLModel is not bound to a converted model yet (use it inside a test)"
NO_MLMODEL = "this CoreMLModel runs a Core AI program, which has no coremltools MLModel (see its .program)"
CONVERSION_FAILED = "{summary}"
BACKEND_UNAVAILABLE = "{reason}"

# Assertion messages.
PARITY_HEADER = "Core ML output {output} does not match PyTorch at {precision} on the {backend} backend"
REFERENCE_NONFINITE = (
    "PyTorch's own output {output} holds non-finite values, so the reference cannot judge "
    "Core ML; Core ML is not blamed. Constrain the inputs (e.g. hypothesis.assume) or fix the model."
)
COREML_NONFINITE = "Core ML produced nan/inf where PyTorch is finite"
FINITE_HEADER = "{what} holds non-finite values"

# Tolerances (verdict.py): a bad value names where it came from.
BAD_TOLERANCE = (
    "{where}: {what} must be a finite non-negative number, or a dict of them keyed by "
    "precision ({known}); got {value!r}"
)
UNKNOWN_PRESET = "no tolerance preset for precision {precision!r} (known: {known})"
ARGUMENT_TOLERANCE = "assert_parity({what}=...)"
CONFIGURED_TOLERANCE = "the configured {what} (marker, --coreml-{flag} or ini coreml_{what})"
# Verdict gates (verdict.py, settings.py): min_snr, min_psnr, min_cosine, min_top1, min_top5, scale_atol.
BAD_GATE = (
    "{where}: {what} must be {allowed}, 'off', or a dict of them keyed by precision "
    "({known}); got {value!r}"
)
BAD_GATE_SETTING = (
    "{where}: {what} must be {allowed}, 'off', or per precision 'fp16=...,fp32=off'; got {value!r}"
)
ELEMENT_RULE = (
    "element rule: |Core ML - PyTorch| <= atol + rtol*|PyTorch| + scale_atol {scale_atol:g} x "
    "rms(PyTorch) {rms:.4g} (= {allowed:.4g} + rtol*|PyTorch|)"
)
#: The failure message's metrics table (compare.py): one row per metric.
METRICS_HEADER = "metrics ({gates}):"
METRICS_ROW = "  {metric:<12} {value:>14}  {gate:>12}  {verdict}"
GATE_FAILED = "FAIL"
GATE_PASSED = "pass"
GATE_NOT_SET = "-"
GATE_NOT_JUDGED = "n/a (no finite signal)"

# Diagnosis, attached to a failed test's report as a section with this title.
DIAGNOSIS_SECTION = "coreml-parity diagnosis"
DIAGNOSIS_UNAVAILABLE = "diagnosis unavailable: {error}"
SEARCH_FIX_HINT = "hint: run with --coreml-search-fix to search for ops to keep in fp32"
REPORT_WRITTEN = "report: {paths}"
PLOT_NEEDS_MATPLOTLIB = (
    "no per-op error plot: matplotlib is not installed (pip install 'pytest-coreml-parity[plots]')"
)
#: The note a JSON report keeps when its plot was skipped.
PLOT_NOTE = "matplotlib is not installed (pip install 'pytest-coreml-parity[plots]')"
#: Image inputs given to a real Core ML runtime travel as PIL images.
IMAGES_NEED_PILLOW = (
    "image inputs on the {backend} backend are passed to Core ML as PIL images, and pillow is "
    "not installed: pip install 'pytest-coreml-parity[images]'"
)

# Diagnosis hints (diagnose/hints.py): what happened, one kind per failure.
# FP32_ADVICE is the fix for fp16-only failures; a converter mismatch never gets it.
FP32_ADVICE = (
    "Convert with compute_precision=ct.precision.FLOAT32, or use mixed precision: keep "
    "the {which} ops in float32 with compute_precision=ct.transform.FP16ComputePrecision(op_selector=...)."
)
HINT_OVERFLOW = "hint: float16 overflow: {what}, past float16's max 65504, so fp16 holds inf{where}. {advice}"
HINT_INPUT_OVERFLOW = (
    "hint: input {name!r} overflows float16 on the way in: given {value:.6g}, past 65504, "
    "stored as inf (the model's inputs are fp16). Convert with fp32 inputs: "
    "ct.TensorType(..., dtype=np.float32), or the plugin's input_dtypes='fp32'."
)
HINT_CONVERTER = (
    "hint: converter mismatch: the fp32 conversion already departs from PyTorch{at}, so no "
    "compute precision can fix it. Rewrite that torch op in simpler ops, or register your "
    "own lowering (coremltools' @register_torch_op), and report it to coremltools."
)
HINT_MASK_NAN = (
    "hint: fully masked rows: the attention mask's fill {fill} is {stored} in {precision}, "
    "and {rows}; softmax over a row of -inf is 0/0 = NaN{where}. Use a finite fill that "
    "float16 holds with room for the scores added to it, such as -3e4 (torch.finfo(torch.float16).min, "
    "-65504, holds too but turns -inf once a negative score is added to it), or clamp the masked "
    "scores before the softmax (scores.clamp(min=-3e4)), or give every row one visible key. "
    "FLOAT32 also avoids it, at the cost of fp16's speed."
)
HINT_MASK_INF_MINUS_INF = (
    "hint: the attention mask itself is NaN (inf - inf): {what}{where}; {rows}. No compute "
    "precision fixes it: coremltools 9.0 lowers triu/tril of a -inf tensor to x - band_part(x) "
    "(coremltools #2771, fixed on main). Build the mask without -inf arithmetic: "
    "torch.zeros(L, L).masked_fill(~causal, -3e4), or torch.where(causal, 0.0, -3e4)."
)
HINT_MASK_CONVERTER = (
    " The fully masked rows explain it: {rows}. For such a row torch's scaled_dot_product_attention "
    "(bool or -inf mask) returns 0, while Core ML's softmax gives uniform attention (the mean of "
    "the values). Give every row one visible key, or a finite fill (-3e4) on both sides, or "
    "compare only the unmasked rows."
)
HINT_UNDERFLOW = (
    "hint: float16 underflow: {op} holds {count} values below float16's smallest normal "
    "(6.1e-05) that fp16 flushes toward 0{where}. Rescale (multiply before dividing, fold tiny "
    "constants together), or: {advice}"
)
HINT_PRECISION = (
    "hint: float16 precision loss, no overflow (no value passes 65504): {what}. float16 keeps "
    "about 3 significant digits: loosen the tolerance if this error is acceptable, or: {advice}"
)
HINT_PRECISION_SPREAD = "no single op is beyond rel. error {tolerance:g} vs fp32; rounding adds up over many ops"
HINT_COMPRESSION = "hint: compression error: {detail}"
#: The assertion's own hint: it cannot know what happened; the diagnosis section says.
PARITY_HINT = (
    "hint: the '" + DIAGNOSIS_SECTION + "' section below names the op that departed and "
    "what happened (outside pytest: pytest_coreml_parity.diagnose.diagnose_failure)"
)

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

# The coreai target (Apple's Core AI).
COREAI_UNAVAILABLE = "the coreai target cannot run here: {reason}"
COREAI_PRECISION_UNSUPPORTED = (
    "the coreai target does not support precision {precision!r} (it runs {known}); "
    "this test runs it on the coreml target"
)
COREML_PRECISION_UNSUPPORTED = (
    "precision {precision!r} is Core AI only (coreai-opt's ignored_ops); on the coreml "
    "target use --coreml-search-fix for mixed precision"
)
COREAI_PARITY_HEADER = (
    "Core AI output {output} does not match PyTorch (fp32) at {precision} on the {backend} backend"
)
COREAI_CONVERTED = (
    "{precision} (Core AI: torch.export, coreai-opt casting, coreai-torch; ops kept in fp32: {fp32_ops})"
)
COREAI_NONFINITE = "Core AI produced nan/inf where PyTorch is finite"
COREAI_DIAGNOSIS_HEADER = "Core AI {precision} on {backend}: per-op values from the interpreter"
COREAI_FIRST_NONFINITE = (
    "first non-finite op: {name} ({op_type}, from {torch_target}): {count} of {size} "
    "values nan/inf"
)
COREAI_NO_NONFINITE = "no op produced nan/inf on these inputs; the mismatch is rounding"
COREAI_SOURCE = "  torch source: {where}"
COREAI_FIX_FOUND = (
    "mixed precision fix (verified by re-converting and the parity verdict on {sets}): "
    "keep {ops} in fp32 ({conversions} conversions)"
)
COREAI_FIX_NOT_FOUND = (
    "no mixed precision fix found within {conversions} conversions (tried fp32 ops {ops}): {why}"
)
COREAI_SEARCH_FIX_HINT = (
    "hint: run with --coreml-search-fix to search for the ops to keep in fp32 "
    "(cast_fp32_to_fp16's ignored_ops)"
)

# Headroom (headroom.py, diagnose/headroom.py): ops close to the fp16 cliff on passing tests.
HEADROOM_SECTION = "coreml-parity headroom"
HEADROOM_GATE = (
    "headroom below margin {margin:g} at {precision}: {op_type} {name} peaks at {peak:.6g} "
    "(limit 65504/{margin:g} = {limit:.6g}; margin {actual:.3g}x) on the {calls} input(s) "
    "this test ran; torch: {source}. Scale the values down, keep this op in fp32 (mixed "
    "precision), or lower --coreml-headroom"
)
HEADROOM_NO_SOURCE = "source unknown"

# Compressed precisions (compress.py, diagnose/compression.py, docs/compression.md).
BAD_OPTIMIZATION = (
    "{where}: expected a coremltools.optimize.coreml.OptimizationConfig or a list of them, got {got}"
)
CUSTOM_NEEDS_OPTIMIZATION = (
    "{where}: precision 'custom' needs @pytest.mark.coreml(optimization=OptimizationConfig(...))"
)
BAD_OPTIMIZATION_KINDS = (
    "one OptimizationConfig must hold one kind of op config (OpLinearQuantizerConfig, "
    "OpPalettizerConfig or an Op*PrunerConfig), got {kinds}; pass a list of configs to chain kinds"
)
UNKNOWN_COMPRESSION = "no compression recipe for precision {precision!r}"
TARGET_RAISED = "target {target}, raised from {configured}: {precision} needs it"
COMPRESSION_HEADER = "compression ({precision}): {recipe}"
COMPRESSION_SPLIT = (
    "  compression error (compressed vs uncompressed fp16 program, both emulated): {compression}\n"
    "  fp16 error (uncompressed fp16 program vs torch fp32): {fp16}"
)
COMPRESSION_BLAME = "  most of the error comes from {what}"
COMPRESSION_WEIGHTS = "  weights furthest from torch's (decompressed on the emulator vs the torch parameter):"
COMPRESSION_WEIGHT = "    {name} ({source}{torch}): relative error {rel:.3g}, max abs {abs:.3g}, cosine {cos:.4f}"
COMPRESSION_NOT_COMPRESSED = (
    "    {name} is stored uncompressed yet differs from torch's {torch} by a relative {rel:.3g}: "
    "the compression declined this weight but left it rescaled (see coremltools PR #2777)"
)

# ------------------------------------------------------------------ package= and flexible shapes
PACKAGE_MISSING = (
    "@pytest.mark.coreml(package={path!r}) in {where}: no such package; looked in {tried}"
)
PACKAGE_BAD_VALUE = (
    "@pytest.mark.coreml in {where}: package must be a path to an .mlpackage, got {got}"
)
PACKAGE_WITH_PRECISIONS = (
    "@pytest.mark.coreml in {where}: package= runs once, with the package's own precision; "
    "precisions={value!r} does not apply (use precision='fp32' to set the verdict's)"
)
PRECISION_WITHOUT_PACKAGE = (
    "@pytest.mark.coreml in {where}: precision= sets the verdict of a package= test; "
    "did you mean precisions=[...] (the precisions a converted model runs at)?"
)
PRECISION_NOT_A_NAME = (
    "{where}: precision= is the one verdict precision of a package= test, got {value!r}; "
    "did you mean precisions={value!r} (the precisions a converted model runs at)?"
)
PACKAGE_INPUTS_BAD_VALUE = (
    "{where}: expected a dict from package input names to forward's argument names, "
    "e.g. {{'input_1': 'x'}}, got {got}"
)
PACKAGE_INPUTS_WITHOUT_PACKAGE = (
    "@pytest.mark.coreml in {where}: package_inputs= maps a package= test's inputs; "
    "add package='path/to/Model.mlpackage'"
)
PACKAGE_INPUTS_UNKNOWN = "package_inputs names no {side} {names} (the {side}s: {known})"
PACKAGE_INPUTS_NOT_ONE_TO_ONE = (
    "package_inputs must map each package input to its own forward argument: "
    "mapped twice {twice}, forward arguments left out {params}, package inputs left out {inputs}"
)
PACKAGE_LOAD_FAILED = "package {package}: does not load: {error}"
PACKAGE_INPUT_MISMATCH = (
    "package {package} inputs do not fit torch_model {model}: {problem}; the package "
    "declares {package_inputs}, {model}.forward takes {torch_inputs}"
)
PACKAGE_OUTPUT_COUNT = (
    "package {package} has {got} outputs {names}, but torch_model {model} returns {want}"
)
PACKAGE_MODEL_LINE = "model: {model} vs package {package}, judged as {precision} ({why})"
FLEXIBLE_INPUT_SHAPE = (
    "coreml_model input {index} ({name!r}) has shape {got}, but the model allows "
    "{allowed}; Core ML rejects any other shape"
)
OUTPUT_SHAPE_MISMATCH = (
    "output {label}: shape mismatch at input shapes {inputs}: Core ML {got}, PyTorch {want}"
)

# Testing what you ship: the user's own conversion (coreml_convert), marker conversion keywords.
USER_CONVERT_FAILED = "the {fixture} fixture's function raised converting {where}: {reason}"
USER_CONVERT_BAD_RETURN = (
    "the {fixture} fixture's function returned {got} converting {where}; return a "
    "coremltools MLModel or the path of an .mlpackage"
)
CONVERT_KWARGS_NOT_MAPPING = (
    "{where}: expected a dict of ct.convert keywords, e.g. "
    "{{'outputs': [ct.TensorType(name='logits')]}}, got {got}"
)
CONVERT_KWARGS_UNKNOWN = (
    "{where}: ct.convert keyword {value!r} cannot be passed here (allowed: {known}; "
    "precision, target and compute units have their own settings, or use a coreml_convert fixture)"
)
BAD_FP32_OPS = "{where}: expected a list of op names to keep in fp32 (as --coreml-search-fix prints), got {got}"
BAD_FUNCTION = "{where}: expected the name of a function of a multi-function package, got {got}"
FUNCTION_NOT_FOUND = "{where}: the converted package has no function {name!r} (it has: {known})"
FP32_OPS_UNMATCHED = (
    "fp32_ops {missing} match no op of this program, so nothing would be kept in fp32 for "
    "them ({nearest}); stable names here (submodule path:torch op kind): {stable}"
)
COREAI_FP32_OPS_UNMATCHED = (
    "fp32_ops {missing} name no aten op of the Core AI program ({nearest}); on the coreai "
    "stack fp32_ops name aten ops ({known}); Core ML op names ('13', 'block.norm:pow') "
    "apply to the coreml stack only"
)
NOT_APPLIED = (
    "{what} applies to the {stacks} stack only (docs/configuration.md); this {stack} test "
    "would run without it, so it is skipped"
)
NOT_APPLIED_SESSION = (
    "coreml-parity: {stack} tests run without {settings} (they apply to other stacks; "
    "docs/configuration.md)"
)
FIX_PIN = "pin it in the test: @pytest.mark.coreml(fp32_ops=[{names}])\nor in your own conversion:"

# Image inputs (images.py): the preprocessing is judged before the model.
PREPROCESSING_MISMATCH = (
    "preprocessing mismatch on image input {name!r}: the tensor Core ML's program computes "
    "from the pixels (its ImageType scale/bias) is not the tensor {torch_side} gives "
    "PyTorch; this is not model drift"
)
PREPROCESSING_TORCH_USER = "your torch_preprocess fixture"
PREPROCESSING_TORCH_DECLARED = "the ImageType's declared scale and bias (per channel)"
PREPROCESSING_LIST_SCALE = (
    "the program multiplies by a {n}-value scale {scale} along its LAST axis (width, "
    "{width} pixels), not per channel: coremltools 9.0 broadcasts a list ImageType scale "
    "that way (it fails to convert unless the width is {n}). ImageType takes one scale; "
    "fold a per-channel std into the model (a first 1x1 multiply) instead"
)
PREPROCESSING_ONE_SCALE = (
    "ImageType applies one scale to every channel, so it cannot express a per-channel "
    "std (coremltools #244, #1160): divide by std inside the model, or accept the "
    "approximation with a looser tolerance"
)
PREPROCESSING_USED = "PyTorch input made by {torch_side}"

# Stateful models (model.py, compare.py): state carried across the calls of one test.
FROZEN_STATE = (
    "buffer {name!r} is updated by forward but the converted program has no state for it: "
    "coremltools froze it into a constant (its value at conversion), so every call starts "
    "from it again; this is not float16 overflow. Declare it at conversion: "
    "ct.convert(..., states=[ct.StateType(wrapped_type=ct.TensorType(shape={shape}, "
    "dtype=np.float16), name={name!r})], minimum_deployment_target=ct.target.iOS18)"
)
STATE_LINE = (
    "state: {buffers} carried across the calls of this test (step {step}); Core ML stores "
    "states as float16, also in an fp32 program"
)
STATE_FP32_HINT = (
    "hint: Core ML has no float32 states (coremltools: \"State only support fp16 dtype\"), so "
    "an fp32 program stores its state as float16 and a stateful output carries float16 "
    "rounding: judge it with fp16's element rule (assert_parity(..., rtol=1e-2, scale_atol=0.2)) or run the "
    "test at fp16 only"
)
DRIFT_HEADER = "drift over the steps of this test (first step beyond tolerance: {first}):"
DRIFT_COLUMNS = "  {step:>5} {max_abs:>14} {max_rel:>14} {ratio:>14}  {verdict}"
DRIFT_NOT_JUDGED = "not judged (coreml_model call)"
ROLLOUT_FAILED = "rollout of {n} steps: step {step} of {n} is beyond tolerance"
ROLLOUT_BAD_STEPS = (
    "assert_rollout: expected a sequence of per-step inputs (each a tensor or a tuple of "
    "tensors), got {got}"
)
STATE_UNSUPPORTED_BACKEND = (
    "the {backend} backend cannot carry a stateful program's state across calls "
    "(the emulator and the Core ML runtime can)"
)
STATEFUL_NO_DIAGNOSIS = (
    "diagnosis skipped: {model} carries state across steps, and localization replays one "
    "call from a fresh state; rerun the failing step's inputs as a test of their own to "
    "localize it"
)
USER_CONVERT_NOT_CALLABLE = (
    "the coreml_convert fixture must return a function (torch_model, example_inputs, "
    "compute_precision) -> MLModel or .mlpackage path, got a {got}"
)
TORCH_PREPROCESS_NOT_CALLABLE = (
    "the torch_preprocess fixture must return a callable (pixels uint8 tensor (1, C, H, W) "
    "-> the torch model's input tensor), got {got}"
)

# --- converter shims (shims.py) and outputs by key (outputs.py) ---------------------
SHIMS_HEADER_ON = (
    "coreml-parity: converter shims on ({ops}; each registered only where the installed "
    "coremltools lacks it; --coreml-shims=off to disable)"
)
SHIMS_HEADER_OFF = "coreml-parity: converter shims off"
CACHED_FAILURE = (
    "(served from the disk cache: this conversion failed on {date}, with the same model, "
    "options, versions and registered converter ops; to retry, delete {entry} or run with "
    "--coreml-cache-dir=none)"
)

# ------------------------------------------------------------------ CI outputs (report/)
REPORT_NOT_JSON = (
    "{where}: takes the session's JSON report file (a path ending in .json), got {value!r}; "
    "the per-failure report folder moved to --coreml-report-dir=DIR (ini coreml_report_dir)"
)
OUTPUT_IS_DIRECTORY = "{where}: {value!r} is a directory; give a file path"
OUTPUT_IS_FILE = "{where}: {value!r} is a file; give a directory"
OUTPUT_PARENT_NOT_DIRECTORY = "{where}: cannot write {value!r}: {parent!r} is not a directory"
OUTPUT_NOT_WRITABLE = "{where}: cannot write {value!r}: {error}"
SUMMARY_TITLE = "coreml-parity results"
DUMP_OVER_BUDGET = "dump skipped: {need:.1f} MB would exceed --coreml-dump-max-mb={limit:g} ({used:.1f} MB used)"
REPLAY_NOT_A_DUMP = (
    "{path}: not a pytest-coreml-parity dump (no {manifest}); "
    "make one with pytest --coreml-dump=DIR"
)
REPLAY_FOREIGN = "{path}: {manifest} is not a pytest-coreml-parity dump manifest ({why})"
REPLAY_VERSION = (
    "{path}: dump format version {got} is not supported by this replay (supports {want}); "
    "replay with the pytest-coreml-parity version that wrote it"
)
REPLAY_CORRUPT = "{path}: damaged dump: {why}"
REPLAY_EMPTY = "{path}: no dumps found (expected {index} or test folders with {manifest})"
REPLAY_POINTER_SKIPPED = (
    "{path}: not replayed: its package is a pointer into a disk cache that is not on this machine "
    "({pointer}); the dump was past --coreml-dump-max-mb when written: raise the bound for a replay job"
)

# ------------------------------------------------------------------ lint, weight parity, profiles

LINT_SECTION = "coreml-parity lint"
LINT_HEADER = "{count} documented device hazard(s) in this program (docs/lint.md; --coreml-lint=off silences):"
LINT_FAILED = "--coreml-lint=error: {count} lint finding(s)\n{text}"
LINT_UNAVAILABLE = "lint unavailable: {error}"
LINT_SUMMARY = "lint: {count} finding(s) in {tests} test(s): {rules}"
LINT_FINDING_LINE = "  [{rule}] {where} ({count} test(s), first {first})"
LINT_MORE = "  ... {count} more distinct finding(s): see each test's report section (-rA) or --coreml-lint=error"
WEIGHTS_SECTION = "coreml-parity weights"
PROFILES_SECTION = "coreml-parity profiles"

# --- optional dependencies of a precision (precisions.Precision.needs) -------------------
PRECISION_NEEDS_EXTRA = (
    "precision {precision!r} needs {distribution} ({module} is not installed): "
    "pip install 'pytest-coreml-parity[{extra}]'"
)
