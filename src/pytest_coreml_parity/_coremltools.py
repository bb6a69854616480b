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


def ignore_coremltools_noise() -> None:
    """Filter the warnings coremltools and torch's capture raise that are not about the user's model.

    Call inside ``warnings.catch_warnings()``: the filters end with it. Shared by the
    quiet import below and by ``convert.quiet_conversion``.
    """
    warnings.filterwarnings("ignore", message=r".*has not been tested with coremltools")
    # Deprecations inside torch.export/coremltools internals would be errors in suites
    # run with -W error.
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)


def import_coremltools() -> ModuleType:
    """Return the ``coremltools`` module, importing it without start-up noise."""
    os.environ.setdefault("TQDM_DISABLE", "1")
    saved = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    try:
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        with warnings.catch_warnings():
            ignore_coremltools_noise()
            import coremltools

            # coremltools ships no type information: mypy sees it as Any.
            module: ModuleType = coremltools
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
    return module
