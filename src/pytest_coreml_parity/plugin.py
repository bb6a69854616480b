"""The pytest plugin: options, the ``coreml`` marker, ``coreml_model``, header and summary.

Kept thin and cheap to import: torch, coremltools and numpy load only when a
test actually uses ``coreml_model``.

How ``coreml_model`` works: ``pytest_generate_tests`` parametrizes it directly
with one :class:`~.model.CoreMLModel` per precision (ids ``fp32``/``fp16``) at
session scope, and an autouse fixture binds that object to the test's own
``torch_model`` and ``example_inputs`` through the session conversion cache.
Session scope is what lets ``@given`` tests use it without hypothesis's
function-scoped-fixture health check, and binding through the cache means no
example ever re-converts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from . import messages
from ._values import package_version
from .errors import SettingError
from .gates import GATE_TABLE
from .precisions import FP32, PRECISIONS
from .settings import (
    DEFAULT_PRECISIONS,
    DEFAULT_TARGET_STACKS,
    MARKER_KEYWORDS,
    MARKER_SIGNATURE,
    OPTIONS,
    TARGET_STACKS,
    USER_CONVERT_FIXTURE,
    USER_CONVERT_KWARGS_FIXTURE,
    Settings,
    apply_marker,
    parametrize_ids,
    parse_convert_kwargs,
    resolve_session,
)
from .settings import PRECISIONS as SETTINGS_PRECISIONS

if TYPE_CHECKING:
    from .model import Runtime

FIXTURE = "coreml_model"
SUMMARY_TITLE = "coreml-parity"
REPORT_ATTR = "coreml_parity"
HEADROOM_ATTR = "coreml_parity_headroom"
#: The id of a test whose marker is wrong (it fails at setup, naming the marker).
SETUP_FAILURE_ID = "bad-marker"


@dataclass
class PluginState:
    settings: Settings
    cache_dir: Path | None
    runtime: Runtime | None = None
    events: Counter[str] = field(default_factory=Counter)
    backends: set[str] = field(default_factory=set)
    rebuilt: list[str] = field(default_factory=list)
    headroom: list[dict[str, Any]] = field(default_factory=list)
    #: (node id, findings) of every test whose program the lint found hazards in.
    lint: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)


STATE = pytest.StashKey[PluginState]()
BIND_FAILURE = pytest.StashKey[str]()
BIND_EVENT = pytest.StashKey[dict[str, Any]]()
BOUND_MODEL = pytest.StashKey[Any]()
HEADROOM_DATA = pytest.StashKey[dict[str, Any]]()
CI_MODEL = pytest.StashKey[Any]()  # the bound model whose verdicts the CI outputs record
CHECKED_MODEL = pytest.StashKey[Any]()
LINT_OUTCOME = pytest.StashKey[Any]()
LINT_ATTR = "coreml_parity_lint"
CHECKS_ATTR = "coreml_parity_checks"

#: The precisions the help lists: Core ML's built-in ones (precisions.TABLE).
_BUILT_IN = tuple(p for p in SETTINGS_PRECISIONS if not PRECISIONS[p].user_config)
_HELP = {
    "precisions": ("LIST", f"precisions to run coreml_model at, comma-separated ({', '.join(_BUILT_IN)}). Default: {','.join(DEFAULT_PRECISIONS)}"),
    "targets": ("LIST", f"targets to convert for and run on, comma-separated ({', '.join(TARGET_STACKS)}). Default: {','.join(DEFAULT_TARGET_STACKS)}"),
    "rtol": ("RTOL", "relative tolerance for assert_parity, one number or fp16=..,fp32=... Default: per-precision preset"),
    "atol": ("ATOL", "absolute tolerance for assert_parity, one number or fp16=..,fp32=... Default: per-precision preset"),
    "target": ("TARGET", "minimum deployment target for conversion (iOS15..iOS18, macOS12..). Default: iOS16"),
    "compute_units": ("UNITS", "Core ML compute units on macOS (ALL, CPU_ONLY, CPU_AND_GPU, CPU_AND_NE). Default: ALL"),
    "input_dtypes": ("DTYPES", "float I/O dtypes: auto (coremltools' choice), fp32 or fp16. Default: auto"),
    "backend": ("NAME", "where converted models run: auto, coreml (macOS) or emulator. Default: auto"),
    "emulator_profile": ("PROFILE", "how the emulator backend runs fp16: typed, float32 or fp16-sequential (fp16 matmul accumulation, as Core AI's interpreter). Default: typed"),
    "report_dir": ("DIR", "write diagnosis reports (JSON, plots) for failures to DIR. Default: none"),
    "report": ("PATH", "write the session's JSON report (every test's verdicts, costs, diagnoses) to PATH (.json). Default: none"),
    "summary": ("PATH", "write a markdown summary (failures with op, line and fix; worst headroom) to PATH. Default: none"),
    "dump_dir": ("DIR", "write golden dumps (package, inputs, torch and emulator outputs) to DIR for replay. Default: none"),
    "dump_max_mb": ("MB", "total size bound of --coreml-dump; past it, packages become cache pointers, then dumps are skipped. Default: 200"),
    "cache_dir": ("DIR", "disk cache of converted models, or 'none'. Default: pytest's cache dir, else .coreml-parity-cache"),
    "headroom": ("M", "fail (or warn) a test whose fp16 op peaks above 65504/M on its inputs (M >= 1). Default: no gate"),
    "headroom_action": ("ACTION", "what --coreml-headroom does below the margin: fail or warn. Default: fail"),
    "shims": ("on|off", "register the converter shims (diff, new_ones, alias, __and__) where the installed coremltools lacks them, for the plugin's conversion and coreml_convert alike. Default: on"),
    "guide": ("BOOL", "inside @given, hypothesis.target() the error and the fp16 peak (emulator). Default: true"),
    "lint": ("MODE", "check each program for documented device hazards at bind: off, warn or error (fails the test). Default: warn"),
}
_HELP.update({row.name: (row.metavar, row.help) for row in GATE_TABLE})  # the gate table's help
_FLAG_HELP = {
    "export": "convert via torch.export instead of torch.jit.trace. Default: off (trace)",
    "search_fix": "on failure, search for the ops to keep in fp32 (mixed precision). Default: off",
    "headroom_report": "list the ops closest to 65504 and the most underflow in the summary. Default: off",
    "weight_report": "report weight parity (each weight vs torch) on passing tests too. Default: failures with compressed weights only",
    "profile_verdicts": "say which emulator profiles agree on passing tests near their gate too. Default: failures only",
}


def pytest_addoption(parser: pytest.Parser) -> None:
    from .applies import stacks_of
    from .stacks import names as stack_names

    group = parser.getgroup("coreml-parity", "PyTorch -> Core ML parity (pytest-coreml-parity)")
    every = stack_names()
    for name, (flag, ini, _parse) in OPTIONS.items():
        dest = f"coreml_{name}"
        only = stacks_of(name)  # which stacks it applies to, in the help as in the docs
        note = "" if len(only) == len(every) else f" [{', '.join(only)} stack only]"
        if name in _FLAG_HELP:
            text = _FLAG_HELP[name] + note
            group.addoption(flag, action="store_true", default=None, dest=dest, help=text)
            parser.addini(ini, text, type="string", default="")
        else:
            metavar, text = _HELP[name]
            group.addoption(flag, default=None, dest=dest, metavar=metavar, help=text + note)
            parser.addini(ini, text + note, type="string", default="")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", MARKER_SIGNATURE + _marker_stacks_note())
    ini_where = str(config.inipath.name) if config.inipath else "ini"
    try:
        settings = resolve_session(
            lambda name: config.getoption(f"coreml_{name}"), config.getini, ini_where
        )
        from .report.outputs import check_outputs

        check_outputs(settings)  # bad --coreml-report/-summary/-dump paths fail before the run
    except SettingError as exc:
        raise pytest.UsageError(str(exc)) from None
    state = PluginState(settings=settings, cache_dir=_cache_dir(config, settings))
    config.stash[STATE] = state
    config.pluginmanager.register(_Recorder(state), "coreml-parity-recorder")
    from .report.outputs import wanted

    if wanted(settings):  # the session's JSON report, summary and dump index
        from .report.session import Collector

        controller = not hasattr(config, "workerinput")
        collector = Collector(settings, REPORT_ATTR, controller=controller, lint_attr=LINT_ATTR, checks_attr=CHECKS_ATTR)
        config.pluginmanager.register(collector, "coreml-parity-outputs")


def _marker_stacks_note() -> str:
    """``; coreml stack only: target, ...``: the marker keywords some stack ignores."""
    from .applies import stacks_of
    from .stacks import names as stack_names

    every = len(stack_names())
    groups: dict[tuple[str, ...], list[str]] = {}
    for keyword in MARKER_KEYWORDS:
        only = stacks_of(keyword)
        if len(only) != every:
            groups.setdefault(only, []).append(keyword)
    return "".join(
        f"; {', '.join(only)} stack only: {', '.join(keywords)}" for only, keywords in groups.items()
    )


def _ci_wanted(config: pytest.Config) -> bool:
    """Whether a CI output reads each test's verdicts: JUnit XML or a session output."""
    from .report.outputs import wanted

    return bool(config.getoption("xmlpath", None)) or wanted(config.stash[STATE].settings)


def _cache_dir(config: pytest.Config, settings: Settings) -> Path | None:
    raw = settings.cache_dir
    if raw is not None:
        if raw.strip().lower() in ("none", "off", "no", ""):
            return None
        path = Path(raw).expanduser()
        if not path.is_absolute():
            origin = settings.origins.get("cache_dir", "")
            base = config.inipath.parent if origin.startswith("ini") and config.inipath else Path.cwd()
            path = base / path
        return path
    cache = getattr(config, "cache", None)  # absent under -p no:cacheprovider
    if cache is not None:
        directory: Path = cache.mkdir("coreml-parity")
        return directory
    return config.rootpath / ".coreml-parity-cache"


def _installed(dist: str) -> str:
    return package_version(dist, missing="not installed")


def pytest_report_header(config: pytest.Config) -> list[str]:
    state = config.stash[STATE]
    settings = state.settings
    backend = settings.backend
    if backend == "auto":
        from .backends import auto_backend_name

        backend = f"{auto_backend_name()} (auto)"
    lines = [
        f"coreml-parity: backend {backend}, coremltools {_installed('coremltools')}, "
        f"torch {_installed('torch')}, precisions {', '.join(settings.precisions)}"
    ]
    from .convert import numpy_coremltools_warning  # stdlib-only at import: still cheap

    warning = numpy_coremltools_warning(_installed("numpy"), _installed("coremltools"))
    if warning is not None:
        lines.append(warning)
    if backend.startswith("emulator"):  # which fp16 semantics the emulator runs
        origin = settings.origins.get("emulator_profile", "default")
        lines.append(f"coreml-parity: emulator profile {settings.emulator_profile} ({origin})")
    if settings.targets != DEFAULT_TARGET_STACKS:
        lines.append(_targets_header(settings.targets))
        lines.extend(_not_applied_header(settings))
    from .shims import describe  # cheap: no coremltools

    lines.append(describe(settings.shims))
    return lines


def _not_applied_header(settings: Settings) -> list[str]:
    """``coreml-parity: coreai tests run without --coreml-target (coreml only)``: session
    settings a selected stack ignores, said once instead of silently."""
    from .applies import stacks_of

    lines = []
    for stack in settings.targets:
        unused = [
            origin for name, origin in settings.origins.items()
            if origin != "marker" and stack not in stacks_of(name)
        ]  # fmt: skip
        if unused:
            lines.append(messages.NOT_APPLIED_SESSION.format(stack=stack, settings=", ".join(unused)))
    return lines


def _targets_header(targets: Sequence[str]) -> str:
    """``coreml-parity: targets coreml, coreai; coreai: coreai-core 1.0.0b3, ..., backend coreai-interpreter``:
    each selected stack adds its own note (:meth:`.stacks.Stack.header`)."""
    from .stacks import stack

    notes = [note for note in (stack(name).header() for name in targets) if note is not None]
    return "; ".join([f"coreml-parity: targets {', '.join(targets)}", *notes])


def _runtime(config: pytest.Config) -> Runtime:
    state = config.stash[STATE]
    if state.runtime is None:
        from .cache import ConversionCache
        from .model import Runtime

        state.runtime = Runtime(ConversionCache(state.cache_dir), state.settings.backend)
    return state.runtime


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if FIXTURE not in metafunc.fixturenames:
        return
    from .model import CoreMLModel
    from .model_settings import ModelSettings

    config = metafunc.config
    state = config.stash[STATE]
    markers = list(metafunc.definition.iter_markers("coreml"))
    where = metafunc.definition.nodeid
    try:
        settings = apply_marker(
            state.settings,
            tuple(a for m in markers for a in m.args),
            [dict(m.kwargs) for m in markers],
            where,
        )
    except SettingError as exc:  # this test errors at setup; the session runs on
        _fail_at_setup(metafunc, str(exc))
        return
    runtime = _runtime(config)
    axis = [(name, precision) for name in settings.targets for precision in settings.precisions]
    slots = [
        CoreMLModel(ModelSettings(settings, stack=name, precision=precision), runtime)
        for name, precision in axis
    ]
    ids = parametrize_ids(settings.targets, settings.precisions)
    try:
        if settings.package is not None:  # one test against a built package: no precision axis
            slots, ids = _package_slot(metafunc, settings, slots[0])
        elif settings.precision is not None:
            raise SettingError(messages.PRECISION_WITHOUT_PACKAGE.format(where=where))
        elif settings.package_inputs is not None:
            raise SettingError(messages.PACKAGE_INPUTS_WITHOUT_PACKAGE.format(where=where))
        else:  # a marker keyword that does not apply to a slot's stack skips that id
            slots = [_unless_applies(slot, settings) for slot in slots]
    except SettingError as exc:
        _fail_at_setup(metafunc, str(exc))
        return
    metafunc.parametrize(FIXTURE, slots, ids=ids, scope="session")


@dataclass(frozen=True)
class SetupFailure:
    """What ``coreml_model`` is for a test whose marker is wrong: the test fails at
    setup with ``message``, and the rest of the session runs. ``skip``: a marker keyword
    that does not apply to this id's stack; the test skips with ``message``."""

    message: str
    skip: bool = False


def _unless_applies(slot: Any, settings: Settings) -> Any:
    """``slot``, or a skip naming the marker keywords that do not apply to its stack."""
    from .applies import stacks_of

    stack = slot.stack.name
    missing = [
        key for key, origin in settings.origins.items()
        if origin == "marker" and stack not in stacks_of(key)
    ]  # fmt: skip
    if not missing:
        return slot
    what = ", ".join(f"@pytest.mark.coreml({key}=...)" for key in missing)
    stacks = ", ".join(stacks_of(missing[0]))
    return SetupFailure(messages.NOT_APPLIED.format(what=what, stacks=stacks, stack=stack), skip=True)


def _fail_at_setup(metafunc: pytest.Metafunc, message: str) -> None:
    metafunc.parametrize(FIXTURE, [SetupFailure(message)], ids=[SETUP_FAILURE_ID], scope="session")


def _package_slot(metafunc: pytest.Metafunc, settings: Settings, like: Any) -> tuple[list[Any], list[str]]:
    """The one ``coreml_model`` of a ``package=`` test (id ``pkg:Model.mlpackage``); a
    missing package fails that test at setup, naming the marker and the places looked in."""
    from .errors import PackageError
    from .model import CoreMLModel
    from .model_settings import ModelSettings
    from .package import resolve_path

    where = metafunc.definition.nodeid
    if settings.origins.get("precisions") == "marker":
        raise SettingError(
            messages.PACKAGE_WITH_PRECISIONS.format(where=where, value=list(settings.precisions))
        )
    try:
        path = resolve_path(
            settings.package, metafunc.definition.path.parent, metafunc.config.rootpath, where
        )
    except PackageError as exc:
        raise SettingError(str(exc)) from None
    model_settings = ModelSettings(
        settings,
        stack=DEFAULT_TARGET_STACKS[0],  # a built Core ML package
        precision=settings.precision or FP32,
        package=path,
    )
    slots: list[Any] = [CoreMLModel(model_settings, like.runtime)]
    ids = [f"pkg:{path.name}"]
    from .applies import stacks_of

    for stack in settings.targets:  # package= tests a built Core ML package: say so per stack
        if stack not in stacks_of("package"):
            what = "@pytest.mark.coreml(package=...)"
            slots.append(SetupFailure(messages.NOT_APPLIED.format(
                what=what, stacks=", ".join(stacks_of("package")), stack=stack), skip=True))
            ids.append(f"{stack}-pkg:{path.name}")
    return slots, ids


@pytest.fixture
def coreml_model(torch_model: Any, example_inputs: Any) -> Any:
    """The test's ``torch_model`` converted to Core ML, once per precision (ids fp32/fp16).

    Call it like the torch model: ``coreml_model(*inputs)`` returns numpy arrays.
    (The plugin parametrizes this name; this body only runs if that did not happen. Its
    parameters put ``torch_model`` and ``example_inputs`` in every using test's fixture
    closure, so pytest parametrizes a parametrized ``torch_model`` even when the test does
    not name it, and ``@given`` tests need not name a function-scoped fixture.)
    """
    raise pytest.UsageError("coreml_model was not parametrized; is another plugin overriding it?")


def _fixture_value(request: pytest.FixtureRequest, name: str, what: str) -> Any:
    __tracebackhide__ = True
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError as exc:
        if exc.argname != name:
            raise
    # Outside the except block, so the report shows only our message.
    pytest.fail(
        messages.MISSING_FIXTURE.format(nodeid=request.node.nodeid, name=name, what=what),
        pytrace=False,
    )


def _optional_fixture(request: pytest.FixtureRequest, name: str) -> Any:
    """The value of fixture ``name``, or None when no such fixture is defined."""
    try:
        return request.getfixturevalue(name)
    except pytest.FixtureLookupError as exc:
        if exc.argname != name:
            raise
    return None


def _skip_fixtures_not_applied(request: pytest.FixtureRequest, stack: str) -> None:
    """A ``coreml_convert`` (or ``coreml_convert_kwargs``, ``torch_preprocess``) fixture on a
    stack it does not apply to: skip naming it, never convert without it."""
    from .applies import applies

    for name in (USER_CONVERT_FIXTURE, USER_CONVERT_KWARGS_FIXTURE, "torch_preprocess"):
        if not applies(name, stack) and _optional_fixture(request, name) is not None:
            from .applies import stacks_of

            what = f"the {name} fixture"
            pytest.skip(
                messages.NOT_APPLIED.format(what=what, stacks=", ".join(stacks_of(name)), stack=stack)
            )


@pytest.fixture(autouse=True)
def _coreml_parity_bind(request: pytest.FixtureRequest) -> None:
    """Bind this test's ``coreml_model`` to its ``torch_model`` and ``example_inputs``."""
    if FIXTURE not in request.fixturenames:
        return
    callspec = getattr(request.node, "callspec", None)
    slot = callspec.params.get(FIXTURE) if callspec is not None else None
    if isinstance(slot, SetupFailure):
        if slot.skip:
            pytest.skip(slot.message)
        pytest.fail(slot.message, pytrace=False)
    from .model import CoreMLModel

    if not isinstance(slot, CoreMLModel):
        return
    assert slot.runtime is not None
    unsupported = slot.skip_reason()
    if unsupported is not None:
        pytest.skip(unsupported)
    backend, reason = slot.resolve_backend()
    if backend is None:
        pytest.skip(slot.stack.unavailable.format(reason=reason))
    torch_model = _fixture_value(request, "torch_model", "an nn.Module to convert")
    example_inputs = _fixture_value(
        request, "example_inputs", "a tuple of tensors to trace and convert with"
    )
    from .convert import ConversionError
    from .errors import PackageError

    _skip_fixtures_not_applied(request, slot.stack.name)
    convert = _optional_fixture(request, USER_CONVERT_FIXTURE)
    if convert is not None and not callable(convert):
        pytest.fail(messages.USER_CONVERT_NOT_CALLABLE.format(got=type(convert).__name__), pytrace=False)
    convert_kwargs = _optional_fixture(request, USER_CONVERT_KWARGS_FIXTURE)
    if convert_kwargs is not None:
        bad = None
        try:
            convert_kwargs = parse_convert_kwargs(convert_kwargs, f"the {USER_CONVERT_KWARGS_FIXTURE} fixture")
        except SettingError as exc:
            bad = str(exc)
        if bad is not None:  # outside the except block: the report shows only our message
            pytest.fail(bad, pytrace=False)
    preprocess = _optional_fixture(request, "torch_preprocess")  # image inputs' torch side
    if preprocess is not None and not callable(preprocess):
        pytest.fail(messages.TORCH_PREPROCESS_NOT_CALLABLE.format(got=type(preprocess).__name__), pytrace=False)
    slot.torch_preprocess = preprocess
    decoder = _optional_fixture(request, "coreml_decoder")  # a causal LM's KV-cache recipe
    item = request.node
    info: dict[str, Any] = {
        "precision": slot.precision, "backend": backend.name, "model": type(torch_model).__name__,
        "stack": slot.stack.name, "profile": slot.emulator_profile if backend.records else None,
    }  # fmt: skip
    import time

    started = time.perf_counter()
    try:
        event = slot.bind(
            torch_model, example_inputs, item.nodeid, convert=convert,
            convert_kwargs=convert_kwargs, decoder=decoder,
        )  # fmt: skip
    except ConversionError as exc:
        info["seconds"] = time.perf_counter() - started
        item.stash[BIND_FAILURE] = messages.CONVERSION_FAILED.format(summary=exc.summary)
        item.stash[BIND_EVENT] = {**info, "event": slot.event or "failed"}
        if slot.runtime.last_rebuilt is not None:
            item.stash[BIND_EVENT]["rebuilt"] = slot.runtime.last_rebuilt
        return
    except (TypeError, PackageError) as exc:
        failed: str | None = str(exc)
    else:
        failed = None
    if failed is not None:  # outside the except block: the report shows only the message
        pytest.fail(failed, pytrace=False)
    item.stash[BIND_EVENT] = {
        **info, "precision": slot.precision, "event": event, "seconds": time.perf_counter() - started
    }
    if slot.runtime.last_rebuilt is not None:  # a damaged disk-cache entry was rebuilt
        item.stash[BIND_EVENT]["rebuilt"] = slot.runtime.last_rebuilt
    item.stash[CHECKED_MODEL] = slot
    _lint_at_bind(item, slot, markers_lint(item, request.config.stash[STATE].settings.lint))
    slot.headroom = None
    session = request.config.stash[STATE].settings
    slot.verdicts = None
    ci = _ci_wanted(request.config)
    if ci:
        from .verdict_log import VerdictLog

        slot.verdicts = VerdictLog(keep_arrays=session.dump_dir is not None)
        item.stash[CI_MODEL] = slot
    wanted = slot.settings.headroom is not None or session.headroom_report or slot.report_dir is not None
    wanted = wanted or session.report is not None or session.summary is not None
    if wanted and backend.records:  # headroom reads the emulator's recording
        from .headroom import HeadroomLog

        slot.headroom = HeadroomLog()
        item.stash[BOUND_MODEL] = slot


def markers_lint(item: pytest.Item, session_mode: str) -> str:
    """The test's lint mode: the closest marker's ``lint=`` (validated at collection), else the session's."""
    for marker in item.iter_markers("coreml"):
        if marker.kwargs.get("lint") is not None:
            return str(marker.kwargs["lint"]).strip()
    return session_mode


def _lint_at_bind(item: pytest.Item, slot: Any, mode: str) -> None:
    if mode == "off":
        return
    from .check_sections import lint_bound

    assert slot.runtime is not None
    torch_source = slot.runtime.last_captured if slot.event != "package" else None
    outcome = lint_bound(slot, mode, torch_source)
    if outcome.text is not None:  # a report section and the session summary; never a Python warning
        item.stash[LINT_OUTCOME] = outcome


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_call(item: pytest.Item) -> Any:
    failure = item.stash.get(BIND_FAILURE, None)
    if failure is not None:
        pytest.fail(failure, pytrace=False)
    lint = item.stash.get(LINT_OUTCOME, None)
    if lint is not None and lint.failure is not None:
        pytest.fail(lint.failure, pytrace=False)
    if BOUND_MODEL not in item.stash:
        return (yield)
    try:
        result = yield
    except BaseException:
        _headroom(item)  # a failed test's headroom is reported too, never gated
        raise
    message = _headroom(item)
    if message is not None:  # after the body passed: the headroom gate
        if item.stash[BOUND_MODEL].settings.headroom_action == "warn":
            import warnings

            from .headroom import HeadroomWarning

            warnings.warn(HeadroomWarning(message), stacklevel=1)
        else:
            pytest.fail(message, pytrace=False)
    return result


def _headroom(item: pytest.Item) -> str | None:
    """Summarize the test's headroom into the item's stash; return the gate's message."""
    from .report_sections import headroom_outcome

    data, message = headroom_outcome(item.stash[BOUND_MODEL])
    if data is not None:
        item.stash[HEADROOM_DATA] = data
    return message


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if call.when == "call":
        headroom = item.stash.get(HEADROOM_DATA, None)
        if headroom is not None:
            setattr(report, HEADROOM_ATTR, headroom)  # rides to the xdist controller
            _write_headroom(item, headroom)
    if call.when == "setup":
        info = item.stash.get(BIND_EVENT, None)
        if info is not None:
            setattr(report, REPORT_ATTR, info)  # rides to the xdist controller with the report
    summary = None
    if call.when == "call" and report.failed and call.excinfo is not None:
        # Once per failed test: with hypothesis, this is the final (shrunk) example's failure.
        from .report_sections import attach_diagnosis, diagnose_exception

        found = diagnose_exception(call.excinfo.value, item.nodeid)
        if found is not None:
            attach_diagnosis(report, found[0])  # the failure's own text: JUnit, -rA, xdist
            summary = found[1]
    if call.when == "call" and CI_MODEL in item.stash:
        from .report.attach import attach_record

        attach_record(
            report, item, item.stash[CI_MODEL], settings=item.config.stash[STATE].settings,
            setup=item.stash.get(BIND_EVENT, None), headroom=item.stash.get(HEADROOM_DATA, None),
            diagnosis=summary,
        )  # fmt: skip
    if call.when == "call":
        _check_sections(item, call, report)
    return report


def _check_sections(item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport) -> None:
    """Lint findings, weight parity and per-profile verdicts as report sections (and data)."""
    from .report_sections import add_section  # a failure's text (JUnit), else a report section

    lint = item.stash.get(LINT_OUTCOME, None)
    if lint is not None and lint.text is not None:
        if lint.failure is None:  # --coreml-lint=error: the findings are the failure's message
            add_section(report, messages.LINT_SECTION, lint.text)
        setattr(report, LINT_ATTR, lint.findings)  # rides to the xdist controller
    model = item.stash.get(CHECKED_MODEL, None)
    if model is None or report.skipped:
        return
    from .check_sections import profile_section, weight_section

    settings = item.config.stash[STATE].settings
    exc = call.excinfo.value if report.failed and call.excinfo is not None else None
    data: dict[str, Any] = {}
    weights, data["weights"] = weight_section(model, exc, settings.weight_report)
    if weights is not None:
        add_section(report, messages.WEIGHTS_SECTION, weights)
    profiles, data["profiles"] = profile_section(model, exc, settings.profile_verdicts)
    if profiles is not None:
        add_section(report, messages.PROFILES_SECTION, profiles)
    if any(data.values()):
        setattr(report, CHECKS_ATTR, data)


def _write_headroom(item: pytest.Item, headroom: dict[str, Any]) -> None:
    from .report_sections import write_headroom_file

    write_headroom_file(item.stash[BOUND_MODEL], headroom, item.nodeid)


class _Recorder:
    """Counts how each test's model was obtained, from reports (so xdist workers count too)."""

    def __init__(self, state: PluginState) -> None:
        self.state = state

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        info = getattr(report, REPORT_ATTR, None)
        if info and report.when == "setup":
            self.state.events[info["event"]] += 1
            self.state.backends.add(info["backend"])
            if info.get("rebuilt"):
                self.state.rebuilt.append(str(info["rebuilt"]))
        headroom = getattr(report, HEADROOM_ATTR, None)
        if headroom and report.when == "call":
            self.state.headroom.append(headroom)
        lint = getattr(report, LINT_ATTR, None)
        if lint and report.when == "call":
            self.state.lint.append((report.nodeid, lint))


def summary_line(events: Counter[str], backends: set[str], rebuilt: Sequence[str] = ()) -> str:
    """``coreml-parity: backend emulator; 2 converted, 1 from disk cache, 5 reused, 0 failed``.

    Damaged disk-cache entries that were rebuilt are appended with their reasons:
    ``...; 1 cache entry rebuilt (weight.bin: size 12 != 8192)``.
    """
    line = (
        f"backend {', '.join(sorted(backends))}; {events['converted']} converted, "
        f"{events['disk']} from disk cache, {events['memory']} reused in session, "
        f"{events['failed']} failed to convert"
    )
    if events["package"]:  # package= tests: loaded as built, never converted
        line += f", {events['package']} built package{'s' if events['package'] > 1 else ''} tested"
    if rebuilt:
        counts = Counter(rebuilt)
        reasons = "; ".join(r if n == 1 else f"{r} (x{n})" for r, n in counts.items())
        line += "; " + messages.CACHE_REBUILT.format(
            count=len(rebuilt), entries="entry" if len(rebuilt) == 1 else "entries", reasons=reasons
        )
    return line


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if hasattr(config, "workerinput"):  # xdist worker: the controller reports
        return
    state = config.stash.get(STATE, None)
    if state is None or not state.events:
        return
    terminalreporter.write_sep("-", SUMMARY_TITLE)
    line = summary_line(state.events, state.backends, state.rebuilt)
    terminalreporter.write_line(f"{SUMMARY_TITLE}: {line}")
    if state.lint:
        from .lint.summary import finding_lines
        from .lint.summary import summary_line as lint_line

        terminalreporter.write_line(f"{SUMMARY_TITLE}: {lint_line(state.lint)}")
        for text in finding_lines(state.lint):
            terminalreporter.write_line(text)
    if state.settings.headroom_report and state.headroom:
        from .diagnose.headroom import summary_lines

        terminalreporter.write_sep("-", messages.HEADROOM_SECTION)
        for text in summary_lines(state.headroom):
            terminalreporter.write_line(text)


__all__ = ["FIXTURE", "MARKER_KEYWORDS", "STATE", "summary_line"]

