"""Import coremltools quietly.

coremltools logs "Failed to load _MLModelProxy" on every non-macOS import and
"Torch version ... has not been tested" on every torch import. Both are noise for
our users: we raise the coremltools logger's level only while importing, so real
errors logged later are still shown.
"""

from __future__ import annotations

import logging
import os
import warnings
from types import ModuleType

_NOISY_LOGGERS = ("coremltools",)


def import_coremltools() -> ModuleType:
    """Return the ``coremltools`` module, importing it without start-up noise."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    saved = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    try:
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*has not been tested with coremltools.*")
            warnings.filterwarnings("ignore", category=DeprecationWarning)
            warnings.filterwarnings("ignore", category=FutureWarning)
            import coremltools

            # coremltools ships no type information: mypy sees it as Any.
            module: ModuleType = coremltools
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
    return module
