"""The Core AI stack's cache entry: ``program/`` (a saved ``CoreAIProgram``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

PROGRAM = "program"


class ProgramLayout:
    """``program/``: ``model.aimodel/`` and ``coreai.json``; loading also checks ``main.hash``."""

    artifact = PROGRAM
    required: tuple[str, ...] = (
        "meta.json",
        f"{PROGRAM}/coreai.json",
        f"{PROGRAM}/model.aimodel/main.mlirb",
        f"{PROGRAM}/model.aimodel/main.hash",
    )

    def save(self, artifact: Any, directory: Path) -> None:
        artifact.save(directory / PROGRAM)  # a CoreAIProgram

    def check(self, directory: Path, where: str) -> None:
        """Nothing beyond the manifest: ``CoreAIProgram.load`` verifies the rest."""


PROGRAM_LAYOUT = ProgramLayout()
