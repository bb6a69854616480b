"""Convert once: a per-session memory cache over an optional disk cache.

Disk entries live in ``<dir>/<key>/`` holding ``model.mlpackage``,
``meta.json`` (the torch output structure) and ``torch_scopes.json`` (the torch
module of each op, which the saved package loses; diagnosis reads it), or
``error.json`` for a model
that failed to convert, so a failing conversion is not retried by every test
or every xdist worker. Entries are published atomically (built in a temporary
directory, then ``os.replace``); a per-key ``fcntl`` lock makes concurrent
xdist workers wait for the one that converts instead of converting too.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .convert import ConversionError

try:  # POSIX only; without it concurrent workers may convert the same model twice.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: How the model for a test was obtained; reported per test and summed in the summary.
EVENTS = ("converted", "disk", "memory", "failed")


@dataclass
class Entry:
    """A converted model (or the reason it failed), with the torch output structure."""

    mlmodel: Any = None
    structure: Any = None
    path: Path | None = None
    error: ConversionError | None = None


@dataclass
class CacheStats:
    converted: int = 0
    disk: int = 0
    memory: int = 0
    failed: int = 0
    keys: set[str] = field(default_factory=set)


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``path`` (created if needed)."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


class ConversionCache:
    """Memory cache for the session, backed by ``directory`` when one is given."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.stats = CacheStats()
        self._memory: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def get(
        self,
        key: str,
        convert: Callable[[], tuple[Any, Any]],
        load: Callable[[Path], Any],
    ) -> tuple[Entry, str]:
        """Return (entry, event). ``convert()`` gives (mlmodel, structure); ``load(path)`` an MLModel.

        A cached failure is returned as an entry with ``error`` set.
        """
        with self._lock:
            entry = self._memory.get(key)
            if entry is not None:
                self.stats.memory += 1
                return entry, "memory"
            entry, event = self._from_disk_or_convert(key, convert, load)
            self._memory[key] = entry
            self.stats.keys.add(key)
            setattr(self.stats, event, getattr(self.stats, event) + 1)
            return entry, event

    def _from_disk_or_convert(
        self, key: str, convert: Callable[[], tuple[Any, Any]], load: Callable[[Path], Any]
    ) -> tuple[Entry, str]:
        if self.directory is None:
            return self._convert(convert, None)
        final = self.directory / key
        with file_lock(self.directory / f"{key}.lock"):
            found = self._read(final, load)
            if found is not None:
                return found, "failed" if found.error else "disk"
            entry, event = self._convert(convert, None)
            self._publish(final, entry)
            if entry.path is None and entry.error is None and (final / "model.mlpackage").is_dir():
                entry.path = final / "model.mlpackage"
            return entry, event

    @staticmethod
    def _convert(convert: Callable[[], tuple[Any, Any]], path: Path | None) -> tuple[Entry, str]:
        try:
            mlmodel, structure = convert()
        except ConversionError as exc:
            return Entry(error=exc), "failed"
        return Entry(mlmodel=mlmodel, structure=structure, path=path), "converted"

    @staticmethod
    def _read(final: Path, load: Callable[[Path], Any]) -> Entry | None:
        try:
            if (final / "error.json").is_file():
                data = json.loads((final / "error.json").read_text())
                return Entry(error=ConversionError(data["summary"], data.get("detail", "")))
            meta = final / "meta.json"
            package = final / "model.mlpackage"
            if meta.is_file() and package.is_dir():
                structure = json.loads(meta.read_text())["structure"]
                return Entry(mlmodel=load(package), structure=structure, path=package)
        except Exception:  # a corrupt entry is rebuilt, never trusted
            shutil.rmtree(final, ignore_errors=True)
        return None

    def _publish(self, final: Path, entry: Entry) -> None:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.directory))
        try:
            if entry.error is not None:
                (tmp / "error.json").write_text(
                    json.dumps({"summary": entry.error.summary, "detail": entry.error.detail})
                )
            else:
                entry.mlmodel.save(str(tmp / "model.mlpackage"))
                (tmp / "meta.json").write_text(json.dumps({"structure": entry.structure}))
                from .diagnose.names import save_scopes  # diagnosis names torch sources

                save_scopes(entry.mlmodel, tmp)
            if final.exists():
                shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
        except OSError:
            pass  # the disk cache is an optimisation; the memory entry still serves
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
