"""Convert once: a per-session memory cache over an optional disk cache that heals.

Disk entries live in ``<dir>/<key>/`` holding ``model.mlpackage``,
``meta.json`` (the torch output structure) and ``torch_scopes.json`` (the torch
module of each op, which the saved package loses; diagnosis reads it), or
``error.json`` for a model that failed to convert, so a failing conversion is
not retried by every test or every xdist worker. Every entry carries a
``manifest.json``: the cache format, the key, and each file's relative path,
size and sha256.

Entries are published atomically (built in a temporary directory, then
``os.replace``); a per-key ``fcntl`` lock makes concurrent xdist workers wait
for the one that converts instead of converting too. Loading verifies the
manifest first: a truncated, garbled, half-written (no manifest) or foreign
(another key or format) entry, or one missing a sidecar, is a miss. It is
rebuilt, and the reason is reported (``Entry.rebuilt``, ``CacheStats.rebuilt``).

What an entry holds besides ``meta.json`` (the artifact and its sidecars) is the
stack's :class:`EntryLayout` (``stacks/<name>/layout.py``): a Core ML package and its
torch scopes, or a saved Core AI program; the same manifest, lock and healing apply.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from . import messages
from .convert import CACHE_FORMAT, Structure
from .errors import CacheEntryError, ConversionError

try:  # POSIX only; without it concurrent workers may convert the same model twice.
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

#: How the model for a test was obtained; reported per test and summed in the summary.
EVENTS = ("converted", "disk", "memory", "failed")

MANIFEST = "manifest.json"
META = "meta.json"
ERROR = "error.json"


class EntryLayout(Protocol):
    """What a stack's cache entry holds besides ``meta.json``, ``error.json`` and the manifest."""

    #: The artifact's path inside the entry (a directory): ``model.mlpackage``, ``program``.
    artifact: str
    #: Files a converted entry's manifest must list (``meta.json`` included).
    required: tuple[str, ...]

    def save(self, artifact: Any, directory: Path) -> None:
        """Write ``artifact`` (and any sidecar) into the new entry ``directory``."""

    def check(self, directory: Path, where: str) -> None:
        """Raise :class:`CacheEntryError` when a sidecar in ``directory`` is unusable."""


#: ``convert()`` gives (an untyped coremltools ``MLModel``, the torch output structure).
Convert = Callable[[], tuple[Any, Structure]]
#: ``load(package)`` opens a cached package as an (untyped) ``MLModel``.
Load = Callable[[Path], Any]


@dataclass
class Entry:
    """A converted model (or the reason it failed), with the torch output structure."""

    mlmodel: Any = None  # a coremltools MLModel (untyped)
    structure: Structure | None = None
    path: Path | None = None
    error: ConversionError | None = None
    #: Why a damaged disk entry was rebuilt to produce this one, if it was.
    rebuilt: str | None = None


@dataclass
class CacheStats:
    converted: int = 0
    disk: int = 0
    memory: int = 0
    failed: int = 0
    keys: set[str] = field(default_factory=set)
    rebuilt: list[str] = field(default_factory=list)


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


def _remove(path: Path) -> None:
    """Delete ``path``, a directory or a stray file, if it exists."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(OSError):  # missing, or not ours to delete: publish copes
            path.unlink()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def cached_failure(summary: str, created: Any, entry: Path) -> str:
    """A conversion failure read back from the disk cache: the original summary, and that
    it came from the cache, when, and how to retry (the key covers the model, options,
    versions and the registered converter ops, so a fix to any of them converts again)."""
    if not isinstance(created, str):  # entries written before the date was stored
        stamp = datetime.fromtimestamp((entry / ERROR).stat().st_mtime, UTC)
        created = stamp.isoformat(timespec="seconds")
    return summary + "\n" + messages.CACHED_FAILURE.format(date=created, entry=entry)


def write_manifest(directory: Path, key: str) -> None:
    """List every file under ``directory`` (path, size, sha256) in its ``manifest.json``."""
    files = []
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        relative = path.relative_to(directory).as_posix()
        if relative == MANIFEST:
            continue
        files.append({"path": relative, "size": path.stat().st_size, "sha256": _sha256(path)})
    manifest = {"format": CACHE_FORMAT, "key": key, "files": files}
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=1))


def verify_entry(directory: Path, key: str) -> set[str]:
    """Check ``directory`` against its manifest; return the listed relative paths.

    Raises :class:`CacheEntryError` naming the first problem: no or garbled
    manifest, another format or key, a missing file, or a file whose size or
    content changed.
    """
    where = directory.name
    try:
        raw = (directory / MANIFEST).read_text()
    except FileNotFoundError:
        raise CacheEntryError(f"half-written (no {MANIFEST})", where) from None
    except OSError as exc:
        raise CacheEntryError(f"{MANIFEST}: unreadable ({exc})", where) from None
    try:
        manifest = json.loads(raw)
        fmt, listed_key, files = manifest["format"], manifest["key"], manifest["files"]
        listed = [(str(f["path"]), int(f["size"]), str(f["sha256"])) for f in files]
    except (ValueError, TypeError, KeyError):
        raise CacheEntryError(f"{MANIFEST}: garbled", where) from None
    if fmt != CACHE_FORMAT:
        raise CacheEntryError(f"foreign (cache format {fmt} != {CACHE_FORMAT})", where)
    if listed_key != key:
        raise CacheEntryError(f"foreign (manifest key {str(listed_key)[:12]}...)", where)
    for relative, size, digest in listed:
        path = directory / relative
        name = Path(relative).name
        try:
            actual = path.stat().st_size
        except FileNotFoundError:
            raise CacheEntryError(f"{name}: missing", where) from None
        except OSError as exc:
            raise CacheEntryError(f"{name}: unreadable ({exc})", where) from None
        if actual != size:
            raise CacheEntryError(f"{name}: size {actual} != {size}", where)
        if _sha256(path) != digest:
            raise CacheEntryError(f"{name}: garbled (sha256 mismatch)", where)
    return {relative for relative, _, _ in listed}


class ConversionCache:
    """Memory cache for the session, backed by ``directory`` when one is given."""

    def __init__(self, directory: Path | None) -> None:
        self.directory = directory
        self.stats = CacheStats()
        self._memory: dict[str, Entry] = {}
        self._lock = threading.Lock()

    def get(
        self, key: str, convert: Convert, load: Load, layout: EntryLayout
    ) -> tuple[Entry, str]:
        """Return (entry, event). ``convert()`` gives (artifact, structure); ``load(path)``
        opens a stored artifact; ``layout`` (the stack's) says how the entry stores it.

        A cached failure is returned as an entry with ``error`` set. An entry that
        replaced a damaged disk entry has ``rebuilt`` set to the reason.
        """
        with self._lock:
            entry = self._memory.get(key)
            if entry is not None:
                self.stats.memory += 1
                return entry, "memory"
            entry, event = self._from_disk_or_convert(key, convert, load, layout)
            self._memory[key] = entry
            self.stats.keys.add(key)
            setattr(self.stats, event, getattr(self.stats, event) + 1)
            if entry.rebuilt is not None:
                self.stats.rebuilt.append(entry.rebuilt)
            return entry, event

    def _from_disk_or_convert(
        self, key: str, convert: Convert, load: Load, layout: EntryLayout
    ) -> tuple[Entry, str]:
        if self.directory is None:
            return self._convert(convert)
        final = self.directory / key
        with file_lock(self.directory / f"{key}.lock"):
            rebuilt = None
            try:
                found = self._read(final, key, load, layout)
            except CacheEntryError as exc:
                rebuilt = exc.reason
                _remove(final)
                found = None
            if found is not None:
                return found, "failed" if found.error else "disk"
            entry, event = self._convert(convert)
            entry.rebuilt = rebuilt
            self._publish(final, key, entry, layout)
            stored = final / layout.artifact
            if entry.path is None and entry.error is None and stored.is_dir():
                entry.path = stored
            return entry, event

    @staticmethod
    def _convert(convert: Convert) -> tuple[Entry, str]:
        try:
            mlmodel, structure = convert()
        except ConversionError as exc:
            return Entry(error=exc), "failed"
        return Entry(mlmodel=mlmodel, structure=structure), "converted"

    @staticmethod
    def _read(final: Path, key: str, load: Load, layout: EntryLayout) -> Entry | None:
        """The verified entry in ``final``, None if there is none; CacheEntryError if damaged."""
        if not final.exists():
            return None
        where = final.name
        listed = verify_entry(final, key)
        if ERROR in listed:
            try:
                data = json.loads((final / ERROR).read_text())
                summary = cached_failure(str(data["summary"]), data.get("created"), final)
                return Entry(error=ConversionError(summary, str(data.get("detail", ""))))
            except (OSError, ValueError, TypeError, KeyError):
                raise CacheEntryError(f"{ERROR}: garbled", where) from None
        for required in layout.required:
            if required not in listed:
                raise CacheEntryError(f"{Path(required).name}: not in {MANIFEST}", where)
        try:
            structure = json.loads((final / META).read_text())["structure"]
        except (OSError, ValueError, TypeError, KeyError):
            raise CacheEntryError(f"{META}: garbled", where) from None
        layout.check(final, where)
        stored = final / layout.artifact
        try:
            artifact = load(stored)
        except CacheEntryError as exc:  # the loader's own check (a Core AI program's main.hash)
            raise CacheEntryError(f"{layout.artifact}: {exc.reason}", where) from None
        except Exception as exc:  # whatever the loader raises, the entry is not usable
            raise CacheEntryError(
                f"{layout.artifact}: does not load ({type(exc).__name__})", where
            ) from exc
        return Entry(mlmodel=artifact, structure=structure, path=stored)

    def _publish(self, final: Path, key: str, entry: Entry, layout: EntryLayout) -> None:
        assert self.directory is not None
        self.directory.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=self.directory))
        try:
            if entry.error is not None:
                (tmp / ERROR).write_text(
                    json.dumps({
                        "summary": entry.error.summary,
                        "detail": entry.error.detail,
                        "created": datetime.now(UTC).isoformat(timespec="seconds"),
                    })
                )
            else:
                layout.save(entry.mlmodel, tmp)
                (tmp / META).write_text(json.dumps({"structure": entry.structure}))
            write_manifest(tmp, key)
            _remove(final)
            os.replace(tmp, final)
        except OSError:
            pass  # the disk cache is an optimisation; the memory entry still serves
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
