"""The Core ML stack's cache entry: ``model.mlpackage`` and its torch scopes sidecar."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...errors import CacheEntryError
from ...scopes import SCOPES_SIDECAR, save_scopes

PACKAGE = "model.mlpackage"
#: The torch module of each op, which the saved package loses (diagnosis reads it).
SCOPES = SCOPES_SIDECAR


class PackageLayout:
    """``model.mlpackage`` plus ``torch_scopes.json`` (always written, so a missing one is damage)."""

    artifact = PACKAGE
    required: tuple[str, ...] = ("meta.json", SCOPES, f"{PACKAGE}/Manifest.json")

    def save(self, artifact: Any, directory: Path) -> None:
        artifact.save(str(directory / PACKAGE))  # a coremltools MLModel
        save_scopes(artifact, directory)
        if not (directory / SCOPES).exists():
            (directory / SCOPES).write_text("{}")

    def check(self, directory: Path, where: str) -> None:
        try:
            json.loads((directory / SCOPES).read_text())
        except (OSError, ValueError):
            raise CacheEntryError(f"{SCOPES}: garbled", where) from None


PACKAGE_LAYOUT = PackageLayout()
