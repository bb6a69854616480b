"""Check the CI outputs' paths before the run, so a bad one is a usage error, not a lost report.

``--coreml-report`` and ``--coreml-summary`` are files (the report ends in ``.json``);
``--coreml-dump`` and ``--coreml-report-dir`` are directories. A missing parent is
created at write time; a parent that is a file, an existing path of the wrong kind, or
a place that cannot be written fails here, naming the option (or ini key).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from .. import messages
from ..errors import SettingError
from ..settings import OPTIONS, Settings

#: Default bound of ``--coreml-dump`` (MB over every test's folder).
DEFAULT_DUMP_MAX_MB = 200.0


def _where(settings: Settings, name: str) -> str:
    origin = settings.origins.get(name, OPTIONS[name][0])
    return origin if origin.startswith("--") else f"{origin} ({OPTIONS[name][0]})"


def _existing_ancestor(path: Path) -> Path:
    for parent in path.parents:
        if parent.exists():
            return parent
    return Path(path.anchor or ".")


def _check_writable(path: Path, where: str, *, directory: bool) -> None:
    """``path`` can be created (or written) as a file or a directory."""
    if path.exists():
        if directory and not path.is_dir():
            raise SettingError(messages.OUTPUT_IS_FILE.format(where=where, value=str(path)))
        if not directory and path.is_dir():
            raise SettingError(messages.OUTPUT_IS_DIRECTORY.format(where=where, value=str(path)))
        target = path if directory else path.parent
    else:
        target = _existing_ancestor(path)
        if not target.is_dir():
            raise SettingError(
                messages.OUTPUT_PARENT_NOT_DIRECTORY.format(where=where, value=str(path), parent=str(target))
            )
    if not os.access(target, os.W_OK | os.X_OK):
        raise SettingError(
            messages.OUTPUT_NOT_WRITABLE.format(where=where, value=str(path), error=f"{target} is not writable")
        )
    try:  # os.access says yes to root on a read-only mount or /proc: create and remove a file
        with tempfile.TemporaryFile(dir=target):
            pass
    except OSError as exc:
        error = f"{target}: {exc.strerror or exc}"
        raise SettingError(messages.OUTPUT_NOT_WRITABLE.format(where=where, value=str(path), error=error)) from None


def check_outputs(settings: Settings) -> None:
    """Raise :class:`SettingError` naming the option for any CI output path that cannot work."""
    if settings.report is not None:
        where = _where(settings, "report")
        if settings.report.suffix.lower() != ".json":
            raise SettingError(messages.REPORT_NOT_JSON.format(where=where, value=str(settings.report)))
        _check_writable(settings.report, where, directory=False)
    if settings.summary is not None:
        _check_writable(settings.summary, _where(settings, "summary"), directory=False)
    if settings.dump_dir is not None:
        _check_writable(settings.dump_dir, _where(settings, "dump_dir"), directory=True)
    if settings.report_dir is not None:
        _check_writable(settings.report_dir, _where(settings, "report_dir"), directory=True)


def wanted(settings: Settings) -> bool:
    """Whether any session-level CI output is asked for."""
    return settings.report is not None or settings.summary is not None or settings.dump_dir is not None


__all__ = ["DEFAULT_DUMP_MAX_MB", "check_outputs", "wanted"]
