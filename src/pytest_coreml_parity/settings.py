"""Resolve every setting once, with one precedence: marker, command line, ini, default.

Values are compared with ``is None`` (never ``or``), so ``atol=0`` is honoured.
A bad value raises :class:`SettingError` naming where it came from; the plugin
turns it into a ``pytest.UsageError`` (command line, ini) or fails the marked
test at setup (marker), and unknown names suggest the close match. This module is cheap to import: no numpy, torch or coremltools.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import messages
from ._suggest import did_you_mean
from .errors import SettingError
from .gates import GATE_ROWS, GATE_TABLE, gate_number, tolerance_number
from .gates import GATES as GATE_NAMES
from .precisions import TABLE
from .precisions import names as precision_names
from .stacks import DEFAULT_STACKS
from .stacks import names as stack_names

#: The precisions that run unless others are asked for (precisions.TABLE, ``default``).
DEFAULT_PRECISIONS: tuple[str, ...] = tuple(p.name for p in TABLE if p.default)
#: Built on fp16 with ct.optimize.coreml (compress.py, docs/compression.md).
COMPRESSED_PRECISIONS: tuple[str, ...] = tuple(
    p.name for p in TABLE if p.compressed and not p.user_config
)
#: The user's own OptimizationConfig, given with @pytest.mark.coreml(optimization=...).
CUSTOM_PRECISION = next(p.name for p in TABLE if p.user_config)
#: The precisions Core ML runs (the ones per-precision values may name).
PRECISIONS: tuple[str, ...] = precision_names(stack=DEFAULT_STACKS[0])
#: Precisions only other stacks run (the coreml stack skips them with a reason).
COREAI_ONLY_PRECISIONS: tuple[str, ...] = tuple(p for p in precision_names() if p not in PRECISIONS)
#: Every precision the precision axis accepts (what errors list as known).
ALL_PRECISIONS: tuple[str, ...] = precision_names()
#: The target axis: which Apple stack a test's model is converted for (stacks.STACKS).
TARGET_STACKS: tuple[str, ...] = stack_names()
DEFAULT_TARGET_STACKS: tuple[str, ...] = DEFAULT_STACKS
#: Accepted values; convert.py uses these lists too (this module stays cheap to import).
TARGETS: tuple[str, ...] = (
    "iOS15", "iOS16", "iOS17", "iOS18",
    "macOS12", "macOS13", "macOS14", "macOS15",
    "watchOS8", "watchOS9", "watchOS10", "watchOS11",
    "tvOS15", "tvOS16", "tvOS17", "tvOS18",
)  # fmt: skip
COMPUTE_UNITS: tuple[str, ...] = ("ALL", "CPU_ONLY", "CPU_AND_GPU", "CPU_AND_NE")
INPUT_DTYPES: tuple[str, ...] = ("auto", "fp32", "fp16")
BACKENDS: tuple[str, ...] = ("auto", "coreml", "emulator")
#: The emulator's execution profiles (emulator.FP16_EXECUTION_MODES; docs/emulator.md).
EMULATOR_PROFILES: tuple[str, ...] = ("typed", "float32", "fp16-sequential")
#: The gates besides rtol/atol (gates.GATE_TABLE; docs/tolerances.md), parity and generation.
GATES: tuple[str, ...] = GATE_NAMES
MARKER_KEYWORDS: tuple[str, ...] = (
    "precisions", "rtol", "atol", "target", "compute_units", "input_dtypes", "export", "search_fix",
    "targets", "headroom", "headroom_action", "guide", "optimization", "emulator_profile",
    *GATES,
    "convert_kwargs", "fp32_ops", "function", "cache",
    "package", "precision", "shims", "lint", "package_inputs",
)  # fmt: skip
#: The ``coreml`` marker's line in ``pytest --markers`` (every keyword, from the table).
MARKER_SIGNATURE = messages.MARKER_SIGNATURE.format(
    keywords=", ".join(f"{keyword}=None" for keyword in MARKER_KEYWORDS)
)
#: The optional user fixture returning the test's own conversion (docs/usage.md).
USER_CONVERT_FIXTURE = "coreml_convert"
#: The optional user fixture returning extra ct.convert keywords (the marker's win).
USER_CONVERT_KWARGS_FIXTURE = "coreml_convert_kwargs"
#: ct.convert keywords a marker's convert_kwargs= may pass (the plugin sets the rest:
#: source, convert_to, compute_precision, minimum_deployment_target, compute_units).
CONVERT_KWARGS: tuple[str, ...] = ("inputs", "outputs", "states", "pass_pipeline", "classifier_config")
HEADROOM_ACTIONS: tuple[str, ...] = ("fail", "warn")
#: --coreml-lint values (lint.LINT_MODES lists the same; docs/lint.md).
LINT_MODES: tuple[str, ...] = ("off", "warn", "error")

Tolerance = float | dict[str, float] | None
Gate = float | str | dict[str, float | str] | None


@dataclass(frozen=True)
class Settings:
    """Resolved settings for a test (or, before markers, for the session)."""

    precisions: tuple[str, ...] = DEFAULT_PRECISIONS
    targets: tuple[str, ...] = DEFAULT_TARGET_STACKS
    rtol: Tolerance = None
    atol: Tolerance = None
    #: Gates by name (gates.GATE_TABLE): a number, "off", or per precision; a gate not
    #: here is the preset's.
    gates: Mapping[str, Gate] = field(default_factory=dict)
    target: str = "iOS16"
    compute_units: str = "ALL"
    input_dtypes: str = "auto"
    export: bool = False
    search_fix: bool = False
    backend: str = "auto"
    #: How the emulator backend runs fp16-typed ops (EMULATOR_PROFILES).
    emulator_profile: str = "typed"
    report_dir: Path | None = None
    #: CI outputs (report/): the session's JSON report, the markdown summary, golden dumps.
    report: Path | None = None
    summary: Path | None = None
    dump_dir: Path | None = None
    dump_max_mb: float | None = None
    cache_dir: str | None = None
    #: Fail (or warn) when an fp16 op peaks above 65504 / headroom (None: no gate).
    headroom: float | None = None
    headroom_action: str = "fail"
    headroom_report: bool = False
    guide: bool = True
    #: Register the converter shims coremltools lacks while converting (shims.py).
    shims: bool = True
    #: A user's ct.optimize.coreml OptimizationConfig (or a list of them): precision ``custom``.
    optimization: Any = field(default=None, compare=False)
    #: Extra ct.convert keywords (CONVERT_KWARGS), given with the marker's convert_kwargs=.
    convert_kwargs: Any = field(default=None, compare=False)
    #: Op names kept in float32 at fp16 (the fix --coreml-search-fix prints), pinned by marker.
    fp32_ops: tuple[str, ...] | None = None
    #: The function of a multi-function package to run (None: the package's default).
    function: str | None = None
    #: False: convert in every session (memory cache only), never from the disk cache.
    cache: bool = True
    #: A built .mlpackage to test instead of converting (marker package=; package.py).
    package: str | None = None
    #: With package=: the verdict's precision (None: read from the program).
    precision: str | None = None
    #: Lint the program at bind (LINT_MODES; docs/lint.md).
    lint: str = "warn"
    #: Weight parity on passing tests too (failures with compressed weights always get it).
    weight_report: bool = False
    #: Per-profile verdicts on passing tests near their gate too (failures always get them).
    profile_verdicts: bool = False
    #: With package=: package input name -> forward argument (None: by name, else position).
    package_inputs: dict[str, str] | None = field(default=None, compare=False)
    origins: dict[str, str] = field(default_factory=dict, compare=False)


# ------------------------------------------------------------------ parsers


def _known(values: tuple[str, ...]) -> str:
    return ", ".join(values)


def parse_precisions(value: Any, where: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(v).strip() for v in items if str(v).strip()]
    known = ALL_PRECISIONS
    if not names:
        raise SettingError(messages.EMPTY_PRECISIONS.format(where=where, known=_known(known)))
    for name in names:
        if name not in known:
            raise SettingError(
                messages.UNKNOWN_PRECISION.format(where=where, value=name, known=_known(known))
                + did_you_mean(name, known)
            )
    return tuple(dict.fromkeys(names))


def parametrize_ids(targets: tuple[str, ...], precisions: tuple[str, ...]) -> list[str]:
    """Parametrization ids, target-major: ``fp16`` alone, ``coreai-fp16`` once a
    non-default target is in play (so existing ids do not change)."""
    if targets == DEFAULT_TARGET_STACKS:
        return list(precisions)
    return [f"{target}-{precision}" for target in targets for precision in precisions]


def parse_targets(value: Any, where: str) -> tuple[str, ...]:
    """``coreml,coreai`` (or a list): the target stacks, in order, without repeats."""
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(v).strip() for v in items if str(v).strip()]
    known = stack_names()  # the live table: a registered stack counts
    if not names:
        raise SettingError(messages.EMPTY_TARGETS.format(where=where, known=_known(known)))
    for name in names:
        if name not in known:
            raise SettingError(
                messages.UNKNOWN_TARGET_STACK.format(where=where, value=name, known=_known(known))
                + did_you_mean(name, known)
            )
    return tuple(dict.fromkeys(names))


def _number(value: Any, where: str, what: str) -> float:
    number = tolerance_number(value, text=True)  # the one rule (gates.py); text may be "1e-2"
    if number is None:
        raise SettingError(messages.BAD_NUMBER.format(where=where, what=what, value=value))
    return number


def parse_tolerance(value: Any, where: str, what: str) -> float | dict[str, float]:
    """A number for every precision, or per precision: ``fp16=1e-2,fp32=1e-5`` / a dict."""
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, str) and "=" in value:
        pairs = []
        for part in value.split(","):
            key, sep, number = part.partition("=")
            if not sep:
                raise SettingError(messages.BAD_NUMBER.format(where=where, what=what, value=value))
            pairs.append((key.strip(), number.strip()))
    else:
        return _number(value, where, what)
    result = {}
    for key, number in pairs:
        if key not in PRECISIONS:
            raise SettingError(
                messages.UNKNOWN_PRECISION.format(where=where, value=key, known=_known(PRECISIONS))
                + did_you_mean(key, PRECISIONS)
            )
        result[key] = _number(number, where, what)
    return result


def _gate_number(value: Any, where: str, what: str, shown: Any) -> float | str:
    number = gate_number(value, what, text=True)  # the one rule (gates.py); text may be "1e-2"
    if number is None:
        allowed = GATE_ROWS[what].allowed()
        raise SettingError(
            messages.BAD_GATE_SETTING.format(where=where, what=what, allowed=allowed, value=shown)
        )
    return number


def parse_gate(value: Any, where: str, what: str) -> float | str | dict[str, float | str]:
    """A verdict gate: a number, ``off``, or per precision: ``fp16=30,fp32=off`` / a dict."""
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, str) and "=" in value:
        pairs = [(k.strip(), v.strip()) for k, _, v in (p.partition("=") for p in value.split(","))]
    else:
        return _gate_number(value, where, what, value)
    result: dict[str, float | str] = {}
    for key, number in pairs:
        if key not in PRECISIONS:
            raise SettingError(
                messages.UNKNOWN_PRECISION.format(where=where, value=key, known=_known(PRECISIONS))
                + did_you_mean(key, PRECISIONS)
            )
        result[key] = _gate_number(number, where, what, value)
    return result


def _gate_parser(what: str) -> Callable[[Any, str], Any]:
    return lambda value, where: parse_gate(value, where, what)


def _choice(values: tuple[str, ...], what: str) -> Callable[[Any, str], str]:
    def parse(value: Any, where: str) -> str:
        text = str(value).strip()
        if text not in values:
            raise SettingError(
                messages.UNKNOWN_CHOICE.format(where=where, what=what, value=value, known=_known(values))
                + did_you_mean(value, values)
            )
        return text

    return parse


def parse_bool(value: Any, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise SettingError(messages.BAD_BOOL.format(where=where, value=value))


def parse_margin(value: Any, where: str) -> float:
    """A headroom margin: a finite number >= 1 (1 gates at 65504 itself)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not 1.0 <= number < float("inf"):
        raise SettingError(messages.BAD_MARGIN.format(where=where, value=value))
    return number


def _path(value: Any, where: str) -> Path:
    return Path(str(value)).expanduser()


#: setting -> (command-line option, ini name, parser). Flags use store_true with default None.
OPTIONS: dict[str, tuple[str, str, Callable[[Any, str], Any]]] = {
    "precisions": ("--coreml-precisions", "coreml_precisions", parse_precisions),
    "targets": ("--coreml-targets", "coreml_targets", parse_targets),
    "rtol": ("--coreml-rtol", "coreml_rtol", lambda v, w: parse_tolerance(v, w, "rtol")),
    "atol": ("--coreml-atol", "coreml_atol", lambda v, w: parse_tolerance(v, w, "atol")),
    **{
        row.name: (row.flag, row.ini, _gate_parser(row.name))
        for row in GATE_TABLE
    },
    "target": ("--coreml-target", "coreml_target", _choice(TARGETS, "deployment target")),
    "compute_units": (
        "--coreml-compute-units",
        "coreml_compute_units",
        _choice(COMPUTE_UNITS, "compute units"),
    ),
    "input_dtypes": ("--coreml-input-dtypes", "coreml_input_dtypes", _choice(INPUT_DTYPES, "input dtypes")),
    "export": ("--coreml-export", "coreml_export", parse_bool),
    "search_fix": ("--coreml-search-fix", "coreml_search_fix", parse_bool),
    "backend": ("--coreml-backend", "coreml_backend", _choice(BACKENDS, "backend")),
    "emulator_profile": (
        "--coreml-emulator-profile",
        "coreml_emulator_profile",
        _choice(EMULATOR_PROFILES, "emulator profile"),
    ),
    "report_dir": ("--coreml-report-dir", "coreml_report_dir", _path),
    "report": ("--coreml-report", "coreml_report", _path),
    "summary": ("--coreml-summary", "coreml_summary", _path),
    "dump_dir": ("--coreml-dump", "coreml_dump", _path),
    "dump_max_mb": ("--coreml-dump-max-mb", "coreml_dump_max_mb", lambda v, w: _number(v, w, "dump size (MB)")),
    "cache_dir": ("--coreml-cache-dir", "coreml_cache_dir", lambda v, w: str(v)),
    "headroom": ("--coreml-headroom", "coreml_headroom", parse_margin),
    "headroom_action": (
        "--coreml-headroom-action",
        "coreml_headroom_action",
        _choice(HEADROOM_ACTIONS, "headroom action"),
    ),
    "headroom_report": ("--coreml-headroom-report", "coreml_headroom_report", parse_bool),
    "guide": ("--coreml-guide", "coreml_guide", parse_bool),
    "shims": ("--coreml-shims", "coreml_shims", parse_bool),
    "lint": ("--coreml-lint", "coreml_lint", _choice(LINT_MODES, "lint mode")),
    "weight_report": ("--coreml-weight-report", "coreml_weight_report", parse_bool),
    "profile_verdicts": ("--coreml-profile-verdicts", "coreml_profile_verdicts", parse_bool),
}


def resolve_session(
    get_option: Callable[[str], Any], get_ini: Callable[[str], Any], ini_where: str
) -> Settings:
    """Command line, then ini, then default, for every setting."""
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    for name, (flag, ini, parse) in OPTIONS.items():
        cli = get_option(name)
        if cli is not None:
            values[name] = parse(cli, flag)
            origins[name] = flag
            continue
        raw = get_ini(ini)
        if raw is not None and raw != "" and raw != []:
            if isinstance(raw, list):
                raw = ",".join(raw)
            values[name] = parse(raw, f"{ini_where} [{ini}]")
            origins[name] = f"ini {ini}"
    return Settings(**_gathered(values), origins=origins)


def _gathered(values: dict[str, Any], gates: Mapping[str, Gate] | None = None) -> dict[str, Any]:
    """``values`` by setting name, with the gates' (gates.GATE_TABLE) gathered into
    ``gates`` over ``gates`` (the base's): one record field for every gate."""
    taken = {name: values.pop(name) for name in list(values) if name in GATE_ROWS}
    if taken or gates is not None:
        values["gates"] = {**(gates or {}), **taken}
    return values


def apply_marker(
    base: Settings, args: tuple[Any, ...], kwargs_list: list[dict[str, Any]], where: str
) -> Settings:
    """Layer ``@pytest.mark.coreml`` keywords (closest marker first) over ``base``."""
    marker_where = f"@pytest.mark.coreml in {where}"
    if args:
        raise SettingError(messages.MARKER_POSITIONAL.format(where=where, value=args[0]))
    changes: dict[str, Any] = {}
    origins = dict(base.origins)
    for kwargs in kwargs_list:
        for key, value in kwargs.items():
            if key not in MARKER_KEYWORDS:
                raise SettingError(
                    messages.MARKER_UNKNOWN_KEYWORD.format(
                        where=where, value=key, known=_known(MARKER_KEYWORDS)
                    )
                    + did_you_mean(key, MARKER_KEYWORDS)
                )
            if key in changes or value is None:
                continue
            parse = OPTIONS[key][2] if key in OPTIONS else MARKER_ONLY[key]
            changes[key] = parse(value, f"{marker_where}: {key}")
            origins[key] = "marker"
    return _with_custom(replace(base, **_gathered(changes, base.gates), origins=origins), where)


def parse_optimization(value: Any, where: str) -> Any:
    """An ``OptimizationConfig`` or a non-empty list of them (applied in order), as given.

    Duck-typed by class name and module, so this module stays cheap to import.
    """

    def ok(item: Any) -> bool:
        cls = type(item)
        return cls.__name__ == "OptimizationConfig" and cls.__module__.startswith("coremltools.optimize")

    items = list(value) if isinstance(value, (list, tuple)) else [value]
    if not items or not all(ok(item) for item in items):
        raise SettingError(messages.BAD_OPTIMIZATION.format(where=where, got=type(value).__name__))
    return tuple(items) if isinstance(value, (list, tuple)) else value


#: Marker keywords with no command-line or ini form (their values are Python objects).
MARKER_ONLY: dict[str, Callable[[Any, str], Any]] = {
    "optimization": parse_optimization,
    "convert_kwargs": lambda v, w: parse_convert_kwargs(v, w),
    "fp32_ops": lambda v, w: parse_fp32_ops(v, w),
    "function": lambda v, w: parse_function(v, w),
    "cache": parse_bool,
    "package": lambda v, w: parse_package(v, w),
    "precision": lambda v, w: parse_package_precision(v, w),
    "package_inputs": lambda v, w: parse_package_inputs(v, w),
}


def parse_package_inputs(value: Any, where: str) -> dict[str, str]:
    """``{"input_1": "x"}``: package input names to ``forward`` argument names (strings)."""
    if not isinstance(value, Mapping) or not value or not all(
        isinstance(k, str) and k and isinstance(v, str) and v for k, v in value.items()
    ):
        raise SettingError(messages.PACKAGE_INPUTS_BAD_VALUE.format(where=where, got=repr(value)))
    return dict(value)


def parse_package(value: Any, where: str) -> str:
    """A path to a built .mlpackage (resolved and checked at collection, package.py)."""
    if not isinstance(value, (str, Path)) or not str(value).strip():
        raise SettingError(messages.PACKAGE_BAD_VALUE.format(where=where, got=repr(value)))
    return str(value)


def parse_package_precision(value: Any, where: str) -> str:
    """``package=``'s verdict precision: one of PRECISIONS (not custom)."""
    if not isinstance(value, str):  # precision=["fp16"]: the precision axis was meant
        raise SettingError(messages.PRECISION_NOT_A_NAME.format(where=where, value=value))
    return _choice(tuple(p for p in PRECISIONS if p != CUSTOM_PRECISION), "precision")(value, where)


def parse_convert_kwargs(value: Any, where: str) -> dict[str, Any]:
    """A dict of extra ``ct.convert`` keywords, each one of CONVERT_KWARGS."""
    if not isinstance(value, Mapping):
        raise SettingError(
            messages.CONVERT_KWARGS_NOT_MAPPING.format(where=where, got=type(value).__name__)
        )
    for key in value:
        if key not in CONVERT_KWARGS:
            raise SettingError(
                messages.CONVERT_KWARGS_UNKNOWN.format(
                    where=where, value=key, known=_known(CONVERT_KWARGS)
                )
                + did_you_mean(key, CONVERT_KWARGS)
            )
    return dict(value)


def parse_fp32_ops(value: Any, where: str) -> tuple[str, ...]:
    """Op names (strings) to keep in float32, sorted and without repeats."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple, set, frozenset)) or not all(
        isinstance(item, str) and item for item in items
    ):
        raise SettingError(messages.BAD_FP32_OPS.format(where=where, got=repr(value)))
    return tuple(sorted(set(items)))


def parse_function(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise SettingError(messages.BAD_FUNCTION.format(where=where, got=repr(value)))
    return value.strip()


def _with_custom(settings: Settings, where: str) -> Settings:
    """``optimization=`` adds the precision ``custom``; ``custom`` without it is an error."""
    if settings.optimization is not None:
        if CUSTOM_PRECISION not in settings.precisions:
            return replace(settings, precisions=(*settings.precisions, CUSTOM_PRECISION))
    elif CUSTOM_PRECISION in settings.precisions:
        origin = settings.origins.get("precisions", "default")
        raise SettingError(messages.CUSTOM_NEEDS_OPTIMIZATION.format(where=f"{where} ({origin})"))
    return settings
