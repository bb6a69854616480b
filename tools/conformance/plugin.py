"""pytest plugin: coremltools' MIL op tests, compared through the emulator.

Load it explicitly (``-p tools.conformance.plugin``, with the repository root on
``sys.path``; ``scripts/conformance.py`` does both) when running
pytest over the installed ``coremltools/converters/mil/mil/ops/tests`` directory
(the MIL op tests) or ``coremltools/converters/mil/frontend/torch/test`` (the torch
frontend's tests, compared in its own ``convert_and_compare``).
It is never loaded by the main plugin, because it patches coremltools globally:

* ``_IS_MACOS`` (``coremltools._deps`` and every module that imported it by
  value) becomes True and ``coremltools.models.utils._macos_version`` reports a
  recent macOS, so ``compare_backend`` and the tests' macOS ``skipif`` gates run;
* ``MLModel.predict`` runs the model's own ML Program through
  :class:`~pytest_coreml_parity.emulator.Emulator` and returns outputs keyed by
  output name, as Core ML does; emulator errors other than unsupported ops are
  raised as RuntimeError, as Core ML's predict raises; ``MLModel.make_state`` returns
  the emulator's zero-filled state for the model, and ``predict(data, state=...)``
  runs with it (updating it in place), so stateful tests compare too;
* only tests parametrized with an ``mlprogram`` backend of the selected
  precision are kept (``PYMIL_TEST_TARGETS`` and ``INCLUDE_MIL_FP32_UNIT_TESTS``
  are set to match before coremltools' ``testing_reqs`` builds its backends).

``--conformance-perturb`` (or ``COREML_CONFORMANCE_PERTURB``) deliberately
corrupts every float output, to prove the run really compares something.
"""

from __future__ import annotations

import gc
import os
import sys
import weakref
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from pytest_coreml_parity.emulator import (
    FP16_EXECUTION_MODES,
    Emulator,
    UnspecifiedResultError,
    UnsupportedFeatureError,
    UnsupportedOpError,
)

from .defects import known_defect
from .results import Seen, TestResult, categorize, op_key, render_text, write_jsonl

PRECISIONS = ("fp32", "fp16", "all")
PERTURB_ENV = "COREML_CONFORMANCE_PERTURB"
#: What Core ML's RuntimeError says when an ML Program prediction fails.
COREML_PREDICT_FAILURE = "Unable to compute the prediction using ML Program"
#: The macOS version the patched ``_macos_version`` reports: new enough for every
#: iOS18 test and for the "bug fixed in macOS 14/15.2" skips to run the test.
PRETEND_MACOS = (15, 5)
#: rtol,atol for fp16-typed programs in the fp32 suite (see ``_install_compare``):
#: the tolerance this package's plugin uses for fp16, far inside coremltools' own
#: fp16 rule (atol 0.5, rtol 0.05).
FP16_TYPED_TOLERANCE = "1e-2,1e-2"


#: What the emulator raises for a program it does not run (an op type, or a feature
#: such as image inputs); either may subclass the other, so both are caught.
UNSUPPORTED: tuple[type[Exception], ...] = (UnsupportedOpError, UnsupportedFeatureError)


def unsupported_name(exc: BaseException) -> str | None:
    """The op type or feature an unsupported-program error names, or None for other errors.

    :class:`UnsupportedOpError` carries ``op_type``; :class:`UnsupportedFeatureError`
    carries ``feature`` (older versions put the feature in ``op_type``).
    """
    if not isinstance(exc, UNSUPPORTED):
        return None
    for attr in ("feature", "op_type"):
        value = getattr(exc, attr, None)
        if isinstance(value, str):
            return value
    return type(exc).__name__


@dataclass
class _Record:
    """What the emulator saw during one test."""

    predictions: int = 0
    op_types: list[str] = field(default_factory=list)
    unsupported: str | None = None
    emulator_error: str | None = None
    refused: bool = False
    #: Predictions made inside a coremltools comparison that then passed.
    checked: int = 0
    compare_failed: bool = False
    #: Set when an fp16-typed program in the fp32 suite failed coremltools' fp32
    #: tolerance and passed at fp16 resolution: how far off it was, in fp16 ulps.
    fp16_resolution: str | None = None


@dataclass
class _State:
    current: _Record = field(default_factory=_Record)
    results: list[TestResult] = field(default_factory=list)
    perturb: str = ""
    precision: str = "all"
    fp16_execution: str = "typed"


_STATE = _State()
_EMULATORS: weakref.WeakKeyDictionary[Any, Emulator] = weakref.WeakKeyDictionary()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("coreml-conformance", "coremltools op tests through the emulator")
    group.addoption(
        "--conformance-precision",
        choices=PRECISIONS,
        default="all",
        metavar="{fp32,fp16,all}",
        help="Keep only mlprogram tests of this precision. Default: all.",
    )
    group.addoption(
        "--conformance-report",
        metavar="PATH",
        default=None,
        help="Append one JSON line per test (category, op, error) to PATH. Default: none.",
    )
    group.addoption(
        "--conformance-only-ids",
        metavar="FILE",
        default=None,
        help="Keep only the test ids listed in FILE, one per line (reruns). Default: all.",
    )
    group.addoption(
        "--conformance-fp16-execution",
        choices=FP16_EXECUTION_MODES,
        default="typed",
        metavar="{typed,float32}",
        help=(
            "How fp16-typed ops execute: 'typed' rounds every fp16 op output to binary16; "
            "'float32' keeps fp16-typed intermediates in float32, as Core ML's CPU may "
            "(coremltools' tests run CPU_ONLY). Default: typed."
        ),
    )
    group.addoption(
        "--conformance-fp16-tolerance",
        metavar="RTOL,ATOL",
        default=None,
        help=(
            "Compare fp16 backends at this tolerance instead of coremltools' own "
            "(atol >= 0.5, rtol >= 0.05), to see fp16 mismatches. Default: coremltools'."
        ),
    )
    group.addoption(
        "--conformance-fp16-typed-tolerance",
        metavar="RTOL,ATOL|off",
        default=FP16_TYPED_TOLERANCE,
        help=(
            "fp32 suite only: an fp16-typed program that fails coremltools' fp32 tolerance "
            "(below one fp16 ulp) is judged again at this tolerance and, if it passes, "
            "counted as pass-fp16-typed. 'off': no second judgement. Default: "
            f"{FP16_TYPED_TOLERANCE}."
        ),
    )
    group.addoption(
        "--conformance-sample",
        type=int,
        default=1,
        metavar="K",
        help=(
            "Keep a deterministic 1-in-K sample of the selected tests (by a CRC32 of the "
            "test id, so the sample does not depend on collection order). Default: 1 (all)."
        ),
    )
    group.addoption(
        "--conformance-perturb",
        metavar="SPEC",
        default=None,
        help=(
            "Corrupt emulator float outputs to prove comparisons happen: 'sign', "
            f"'rel=1e-2' or 'abs=1'. Default: ${PERTURB_ENV} or off."
        ),
    )


def _parse_perturb(spec: str) -> str:
    if spec in ("", "sign"):
        return spec
    kind, _, value = spec.partition("=")
    if kind not in ("rel", "abs"):
        raise pytest.UsageError(
            f"--conformance-perturb / ${PERTURB_ENV}: expected 'sign', 'rel=X' or 'abs=X', got {spec!r}"
        )
    try:
        float(value)
    except ValueError:
        raise pytest.UsageError(f"--conformance-perturb: {value!r} is not a number") from None
    return spec


def _perturb(value: Any, spec: str) -> Any:
    if not spec or not isinstance(value, np.ndarray) or value.dtype.kind != "f":
        return value
    if spec == "sign":
        return -value
    kind, _, amount = spec.partition("=")
    eps = float(amount)
    wide = value.astype(np.float64)
    changed = wide * (1.0 + eps) if kind == "rel" else wide + eps
    return changed.astype(value.dtype)


def _set_test_env(precision: str) -> None:
    os.environ["PYMIL_TEST_TARGETS"] = "mlprogram"
    if precision in ("fp32", "all"):
        os.environ["INCLUDE_MIL_FP32_UNIT_TESTS"] = "1"
    if "coremltools.converters.mil.testing_reqs" in sys.modules:
        raise pytest.UsageError(
            "coremltools' testing_reqs was imported before the conformance plugin configured "
            "the backends; load the plugin with -p tools.conformance.plugin"
        )


def _patch_coremltools() -> None:
    """Lift the macOS gates and route MLModel.predict to the emulator."""
    from pytest_coreml_parity._coremltools import import_coremltools

    ct = import_coremltools()
    import coremltools._deps as deps
    import coremltools.converters.mil.testing_utils  # noqa: F401
    import coremltools.models.utils as utils

    original_version = utils._macos_version

    def _macos_version() -> tuple[int, ...]:
        return PRETEND_MACOS

    deps._IS_MACOS = True
    for name, module in list(sys.modules.items()):
        if not name.startswith("coremltools") or module is None:
            continue
        if getattr(module, "_IS_MACOS", None) is False:
            module._IS_MACOS = True  # type: ignore[attr-defined]
        if getattr(module, "_macos_version", None) is original_version:
            module._macos_version = _macos_version  # type: ignore[attr-defined]
    ct.models.MLModel.predict = _predict
    ct.models.MLModel.make_state = _make_state
    _skip_full_gc_in_convert()


class _YoungGC:
    """Stands in for the ``gc`` module inside ``ct.convert``."""

    @staticmethod
    def collect(generation: int = 0) -> int:
        return gc.collect(0)


def _skip_full_gc_in_convert() -> None:
    """``ct.convert`` ends with a full ``gc.collect()``: about 0.5 s per test once torch
    is imported, three quarters of the suite's run time. A young-generation collection
    instead changes no conversion result; Python's own thresholds still run full ones."""
    import coremltools.converters._converters_entry as entry

    if getattr(entry, "gc", None) is gc:
        entry.gc = _YoungGC


class _UnplannedState:
    """Stands in for an MLState when the model cannot be planned: ``predict`` then
    plans it again and reports why (unsupported op, load error) as for any test."""


def _make_state(self: Any) -> Any:
    """``MLModel.make_state``: the emulator's state for the model (zeros, as Core ML's)."""
    try:
        return _emulator(self).make_state()
    except Exception:
        return _UnplannedState()


def _emulator(model: Any) -> Emulator:
    emulator = _EMULATORS.get(model)
    if emulator is None:
        emulator = Emulator(model, fp16_execution=_STATE.fp16_execution)
        _EMULATORS[model] = emulator
    return emulator


def _feed(model: Any, data: dict[str, Any], opset: str) -> dict[str, np.ndarray]:
    feed = {}
    for name, value in data.items():
        if hasattr(value, "getpixel"):  # a PIL image: the emulator takes tensors only
            raise UnsupportedFeatureError("image inputs", f"opset {opset}")
        if hasattr(value, "numpy"):
            value = value.numpy()
        feed[name] = np.asarray(value)
    return feed


def _predict(self: Any, data: Any, state: Any = None) -> Any:
    """``MLModel.predict`` through the emulator: outputs keyed by output name."""
    if isinstance(data, list):
        return [_predict(self, d, state) for d in data]
    record = _STATE.current
    try:
        emulator = _emulator(self)
        opset = emulator.opset
        outputs = emulator.run(_feed(self, data, opset), state=state)
    except UNSUPPORTED as exc:
        record.unsupported = unsupported_name(exc)
        raise
    except Exception as exc:  # EmulatorError, or a bug inside the emulator: both "fail"
        record.emulator_error = f"{type(exc).__name__}: {exc}"
        record.refused = isinstance(exc.__cause__, UnspecifiedResultError)
        record.op_types.extend(op.op_type for op in _planned_ops(self))
        # Core ML's predict raises RuntimeError when a prediction fails (tests of invalid
        # indices expect exactly that); keep the emulator's reason in front.
        raise RuntimeError(f"{record.emulator_error} ({COREML_PREDICT_FAILURE})") from exc
    record.predictions += 1
    record.op_types.extend(op.op_type for op in emulator.ops if op.depth == 0)
    return {name: _perturb(np.asarray(v), _STATE.perturb) for name, v in outputs.items()}


def _short_op(op_type: str) -> str:
    """Row name for an unsupported "op": the emulator names unsupported input types
    with their full class repr, which we shorten to e.g. ``(input: state)``."""
    if op_type.startswith("input of type"):
        name = op_type.rstrip("'>").rsplit(".", 1)[-1]
        return f"(input: {name})"
    return op_type


def _planned_ops(model: Any) -> list[Any]:
    emulator = _EMULATORS.get(model)
    return [op for op in emulator.ops if op.depth == 0] if emulator is not None else []


def _parse_tolerance(spec: str, option: str) -> tuple[float, float]:
    try:
        rtol, atol = (float(v) for v in spec.split(","))
    except ValueError:
        raise pytest.UsageError(f"{option}: expected RTOL,ATOL such as 1e-2,1e-2, got {spec!r}") from None
    return rtol, atol


def fp16_ulps(actual: np.ndarray, expected: np.ndarray) -> float:
    """The largest |actual - expected|, in fp16 ulps at the largest |expected|.

    The scale is the tensor's largest magnitude, not each element's: an fp16-typed
    sum or recurrence is off by rounding errors of its largest terms, so an element
    that happens to land near zero would otherwise show millions of "ulps".
    """
    exp = np.asarray(expected, dtype=np.float64)
    act = np.asarray(actual, dtype=np.float64)
    finite = np.isfinite(exp) & np.isfinite(act)
    if not finite.any():
        return 0.0
    scale = np.float16(min(float(np.max(np.abs(exp[finite]))), 65504.0))
    ulp = float(np.spacing(scale))
    return float(np.max(np.abs(act[finite] - exp[finite]))) / ulp


def _is_fp16_typed(model: Any) -> bool:
    """True when any value of the model's ML Program is typed fp16: an input, a const
    (fp16 weights next to an fp32 input count), or an op output."""
    from google.protobuf import text_format

    program = model.get_spec().mlProgram
    return "dataType: FLOAT16" in text_format.MessageToString(program)


def _install_compare(
    fp16_tolerance: tuple[float, float] | None, fp16_typed_tolerance: tuple[float, float] | None
) -> None:
    """Wrap ``compare_backend`` for the two tolerance choices the harness offers.

    * ``fp16_tolerance``: compare fp16 backends at these values. coremltools widens
      fp16 to atol max(100*atol, 0.5) and rtol max(100*rtol, 0.05) inside
      ``compare_backend``; asking it to compare as "fp32" with our values skips that
      widening and changes nothing else.
    * ``fp16_typed_tolerance``: in the fp32 suite, a program whose values are fp16-typed
      (the test built it with fp16 inputs, weights or outputs) cannot meet atol 1e-4:
      one fp16 ulp is already 2.4e-4 at 0.25. Such a comparison is first made at
      coremltools' fp32 tolerance; only if that fails, it is repeated at these values
      and, if it then passes, the test is recorded as ``pass-fp16-typed`` with its
      error in fp16 ulps, never as a plain pass.
    """
    import coremltools.converters.mil.testing_utils as testing_utils

    original = testing_utils.compare_backend

    def compare_backend(mlmodel: Any, input_key_values: Any, expected_outputs: Any, *args: Any, **kwargs: Any) -> Any:
        record = _STATE.current
        before = record.predictions
        try:
            pred = compare(mlmodel, input_key_values, expected_outputs, *args, **kwargs)
        except AssertionError:
            record.compare_failed = True
            raise
        record.checked += record.predictions - before
        return pred

    def compare(mlmodel: Any, input_key_values: Any, expected_outputs: Any, *args: Any, **kwargs: Any) -> Any:
        dtype = kwargs.get("dtype", args[0] if args else "fp32")
        if dtype == "fp16" and fp16_tolerance is not None:
            rtol, atol = fp16_tolerance
            kwargs.update(dtype="fp32", rtol=rtol, atol=atol)
            return original(mlmodel, input_key_values, expected_outputs, *args, **kwargs)
        try:
            return original(mlmodel, input_key_values, expected_outputs, *args, **kwargs)
        except AssertionError:
            if dtype != "fp32" or fp16_typed_tolerance is None or not _is_fp16_typed(mlmodel):
                raise
            strict_failure = sys.exc_info()
        rtol, atol = fp16_typed_tolerance
        kwargs.update(rtol=rtol, atol=atol)
        try:
            pred = original(mlmodel, input_key_values, expected_outputs, *args, **kwargs)
        except AssertionError:
            raise strict_failure[1].with_traceback(strict_failure[2]) from None  # type: ignore[union-attr]
        ulps = max(
            (
                fp16_ulps(testing_utils._get_coreml_out_from_dict(pred, name), expected)
                for name, expected in expected_outputs.items()
                if isinstance(expected, np.ndarray)
            ),
            default=0.0,
        )
        _STATE.current.fp16_resolution = f"max {ulps:.1f} fp16 ulp (at the output's largest value) from the reference"
        return pred

    testing_utils.compare_backend = compare_backend


def pytest_configure(config: pytest.Config) -> None:
    precision = config.getoption("--conformance-precision")
    spec = config.getoption("--conformance-perturb")
    _STATE.perturb = _parse_perturb(os.environ.get(PERTURB_ENV, "") if spec is None else spec)
    _STATE.precision = precision
    _STATE.fp16_execution = config.getoption("--conformance-fp16-execution")
    _set_test_env(precision)
    _patch_coremltools()
    fp16_tolerance = config.getoption("--conformance-fp16-tolerance")
    typed_tolerance = config.getoption("--conformance-fp16-typed-tolerance")
    _install_compare(
        _parse_tolerance(fp16_tolerance, "--conformance-fp16-tolerance") if fp16_tolerance else None,
        None if typed_tolerance == "off" else _parse_tolerance(typed_tolerance, "--conformance-fp16-typed-tolerance"),
    )


def _backend_of(item: pytest.Item) -> tuple[str, str] | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    for value in callspec.params.values():
        if hasattr(value, "backend") and hasattr(value, "precision"):
            return str(value.backend), str(value.precision)
        if isinstance(value, tuple) and len(value) == 2 and value[0] in ("mlprogram", "neuralnetwork"):
            return str(value[0]), str(value[1])
    return None


def _opset_of(item: pytest.Item) -> str:
    callspec = getattr(item, "callspec", None)
    for value in getattr(callspec, "params", {}).values():
        opset = getattr(value, "opset_version", None)
        if opset is not None:
            return str(getattr(opset, "name", opset))
    return ""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    wanted = ("fp32", "fp16") if _STATE.precision == "all" else (_STATE.precision,)
    only_file = config.getoption("--conformance-only-ids")
    only = set(Path(only_file).read_text(encoding="utf-8").splitlines()) if only_file else None
    sample = config.getoption("--conformance-sample")
    if sample < 1:
        raise pytest.UsageError(f"--conformance-sample: expected K >= 1, got {sample}")
    keep, drop = [], []
    for item in items:
        backend = _backend_of(item)
        if (only is not None and item.nodeid not in only) or not in_sample(item.nodeid, sample):
            drop.append(item)
        elif backend is not None and backend[0] == "mlprogram" and backend[1] in wanted:
            keep.append(item)
        else:
            drop.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def in_sample(nodeid: str, k: int) -> bool:
    """Whether ``nodeid`` is in the deterministic 1-in-``k`` sample."""
    return k == 1 or zlib.crc32(nodeid.encode("utf-8")) % k == 0


def pytest_runtest_setup(item: pytest.Item) -> None:
    _STATE.current = _Record()
    _install_torch_frontend_compare()


#: The torch frontend's comparison (``convert_and_compare`` in its ``testing_utils``),
#: once wrapped; its module is imported by the test files, after configure.
_TORCH_TESTING_UTILS = "coremltools.converters.mil.frontend.torch.test.testing_utils"


def _install_torch_frontend_compare() -> None:
    """Track the torch frontend's own comparison like ``compare_backend``'s.

    coremltools' torch-frontend tests compare in ``convert_and_compare`` (convert,
    predict, ``np.testing.assert_allclose`` at atol 1e-4 / rtol 1e-5, widened for fp16
    to 0.5 / 0.05), not in ``compare_backend``. Wrapping it tells a numeric mismatch
    (``fail``) from a later assertion about the converted program (``error``).
    """
    module = sys.modules.get(_TORCH_TESTING_UTILS)
    original = getattr(module, "convert_and_compare", None)
    if module is None or original is None or getattr(original, "_conformance_wrapped", False):
        return

    def convert_and_compare(*args: Any, **kwargs: Any) -> Any:
        record = _STATE.current
        before = record.predictions
        try:
            result = original(*args, **kwargs)
        except AssertionError:
            if record.predictions > before:
                record.compare_failed = True
            raise
        record.checked += record.predictions - before
        return result

    convert_and_compare._conformance_wrapped = True  # type: ignore[attr-defined]
    setattr(module, "convert_and_compare", convert_and_compare)  # noqa: B010  (typed module)


def _first_lines(text: str, n: int = 4) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return " / ".join(lines[:n])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if call.when == "call" or (call.when == "setup" and report.outcome != "passed"):
        record = _STATE.current
        outcome = "skipped" if hasattr(report, "wasxfail") else report.outcome
        unsupported = record.unsupported is not None or (
            call.excinfo is not None and call.excinfo.errisinstance(UNSUPPORTED)
        )
        error = ""
        if call.excinfo is not None and outcome == "failed":
            error = _first_lines(f"{call.excinfo.typename}: {call.excinfo.value}")
        defect = known_defect(item.nodeid, error) if outcome == "failed" else None
        seen = Seen(
            predictions=record.predictions,
            unsupported=unsupported,
            emulator_error=record.emulator_error is not None,
            refused=record.refused,
            fp16_resolution=record.fp16_resolution is not None,
            outputs_all_passed=not record.compare_failed and record.checked == record.predictions,
            upstream_defect=defect is not None,
        )
        category = categorize(outcome, seen)
        if category == "unsupported":
            raised = unsupported_name(call.excinfo.value) if call.excinfo else None
            key = _short_op(record.unsupported or raised or "?")
        else:
            key = op_key(record.op_types, fallback=f"({_test_class(item)})")
        backend = _backend_of(item)
        result = TestResult(
            nodeid=item.nodeid,
            category=category,
            op=key,
            precision=backend[1] if backend else "",
            opset=_opset_of(item),
            error=error,
            detail=defect.reason if defect is not None else (record.fp16_resolution or ""),
        )
        _STATE.results.append(result)
        report.user_properties.append(("conformance", result.category))
    return report


def _test_class(item: pytest.Item) -> str:
    cls = getattr(item, "cls", None)
    return cls.__name__ if cls is not None else item.name.split("[")[0]


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    if not _STATE.results:
        return
    terminalreporter.section("coremltools op tests through the emulator")
    terminalreporter.write_line(render_text(_STATE.results))
    path = config.getoption("--conformance-report")
    if path:
        write_jsonl(_STATE.results, Path(path))
        terminalreporter.write_line(f"per-test results appended to {path}")
