"""Resolve every setting once, with one precedence: marker, command line, ini, default.

Values are compared with ``is None`` (never ``or``), so ``atol=0`` is honoured.
A bad value raises :class:`SettingError` naming where it came from; the plugin
turns it into a ``pytest.UsageError`` (command line, ini) or a collection
error (marker). This module is cheap to import: no numpy, torch or coremltools.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from . import messages
from .errors import SettingError

PRECISIONS: tuple[str, ...] = ("fp32", "fp16")
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
MARKER_KEYWORDS: tuple[str, ...] = (
    "precisions", "rtol", "atol", "target", "compute_units", "input_dtypes", "export", "search_fix",
)  # fmt: skip

Tolerance = float | dict[str, float] | None


@dataclass(frozen=True)
class Settings:
    """Resolved settings for a test (or, before markers, for the session)."""

    precisions: tuple[str, ...] = PRECISIONS
    rtol: Tolerance = None
    atol: Tolerance = None
    target: str = "iOS16"
    compute_units: str = "ALL"
    input_dtypes: str = "auto"
    export: bool = False
    search_fix: bool = False
    backend: str = "auto"
    report_dir: Path | None = None
    cache_dir: str | None = None
    origins: dict[str, str] = field(default_factory=dict, compare=False)


# ------------------------------------------------------------------ parsers


def _known(values: tuple[str, ...]) -> str:
    return ", ".join(values)


def parse_precisions(value: Any, where: str) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else list(value)
    names = [str(v).strip() for v in items if str(v).strip()]
    if not names:
        raise SettingError(messages.EMPTY_PRECISIONS.format(where=where, known=_known(PRECISIONS)))
    for name in names:
        if name not in PRECISIONS:
            raise SettingError(
                messages.UNKNOWN_PRECISION.format(where=where, value=name, known=_known(PRECISIONS))
            )
    return tuple(dict.fromkeys(names))


def _number(value: Any, where: str, what: str) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SettingError(messages.BAD_NUMBER.format(where=where, what=what, value=value)) from None
    if not number >= 0.0 or number == float("inf"):
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
            )
        result[key] = _number(number, where, what)
    return result


def _choice(values: tuple[str, ...], what: str) -> Callable[[Any, str], str]:
    def parse(value: Any, where: str) -> str:
        text = str(value).strip()
        if text not in values:
            raise SettingError(
                messages.UNKNOWN_CHOICE.format(where=where, what=what, value=value, known=_known(values))
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


def _path(value: Any, where: str) -> Path:
    return Path(str(value)).expanduser()


#: setting -> (command-line option, ini name, parser). Flags use store_true with default None.
OPTIONS: dict[str, tuple[str, str, Callable[[Any, str], Any]]] = {
    "precisions": ("--coreml-precisions", "coreml_precisions", parse_precisions),
    "rtol": ("--coreml-rtol", "coreml_rtol", lambda v, w: parse_tolerance(v, w, "rtol")),
    "atol": ("--coreml-atol", "coreml_atol", lambda v, w: parse_tolerance(v, w, "atol")),
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
    "report_dir": ("--coreml-report", "coreml_report", _path),
    "cache_dir": ("--coreml-cache-dir", "coreml_cache_dir", lambda v, w: str(v)),
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
    return Settings(**values, origins=origins)


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
                )
            if key in changes or value is None:
                continue
            parse = OPTIONS[key][2]
            changes[key] = parse(value, f"{marker_where}: {key}")
            origins[key] = "marker"
    return replace(base, **changes, origins=origins)
