"""Import coremltools quietly, and without the optional packages it never uses here.

coremltools logs "Failed to load _MLModelProxy" on every non-macOS import and
"Torch version ... has not been tested" on every torch import. Both are noise for
our users: we raise the coremltools logger's level only while importing, so real
errors logged later are still shown.

``coremltools/_deps/__init__.py`` imports every optional package it knows of, at
import time, only to set a ``_HAS_<name>`` flag and check a version. Here that is
seconds: torchao (4.5 s: it imports ``torch._dynamo``), scikit-learn (2.1 s) and
transformers. While coremltools imports, we hide (``sys.modules[name] = None``, so
``import name`` raises ImportError and coremltools records the package as absent)
those of them that are not imported yet and whose absence changes nothing the
plugin or the user's models need (:data:`HIDDEN`, :func:`hidden_packages`):

* ``transformers``: coremltools' library code never reads ``_HAS_HF`` (only its
  own tests do), so hiding it changes nothing;
* ``sklearn``: only when coremltools would disable it anyway (the installed version,
  read with ``importlib.metadata``, is outside the range ``_deps`` declares), so
  coremltools ends in the same state; its sklearn converters are not on our path;
* ``torchao``: coremltools needs it only to convert programs that contain torchao's
  quantization ops, and a model holding those has imported torchao before it is
  converted (torch_model is built first). The one case it changes: torchao imported
  *after* coremltools in the same process, then such a model converted. Its
  conversion error then says so (:func:`explain_hidden_torchao`): import torchao in
  ``conftest.py``. ``COREML_PARITY_HIDE_DEPS=0`` turns the hiding off.

The sentinels are removed as soon as coremltools is imported, so the user's own
``import sklearn`` / ``import torchao`` work as usual afterwards. No coremltools
module or attribute is patched: we only decide what ``import`` finds, as an
environment without those packages would.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import re
import sys
import warnings
from importlib import metadata
from types import ModuleType

#: Packages hidden from coremltools' import when :func:`hidden_packages` allows it.
HIDDEN = ("torchao", "transformers", "sklearn")
#: What coremltools' ``_deps`` imported as absent in this process (set on import).
_HIDDEN_AT_IMPORT: set[str] = set()

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
    # Its fp16 passes cast constants such as clamp's +-inf bound or a -1e9 mask fill to
    # float16 (measured: optimize_repeat_ops on a Llama); the overflow is the pass's own.
    warnings.filterwarnings(
        "ignore", message="overflow encountered in cast", category=RuntimeWarning,
        module=r"coremltools\.",
    )


def _sklearn_unsupported() -> bool:
    """Whether coremltools would disable the installed scikit-learn anyway: its version is
    outside the ``_SKLEARN_MIN_VERSION``..``_SKLEARN_MAX_VERSION`` that coremltools' ``_deps``
    declares (read from its source; False when either cannot be read)."""
    try:
        installed = metadata.version("scikit-learn")
        spec = importlib.util.find_spec("coremltools")
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        source = (os.path.join(locations[0], "_deps", "__init__.py"))
        with open(source, encoding="utf-8") as handle:
            text = handle.read()
    except (metadata.PackageNotFoundError, ImportError, ValueError, OSError, IndexError):
        return False
    bounds = [
        re.search(rf'^_SKLEARN_{which}_VERSION\s*=\s*"([0-9.]+)"', text, re.MULTILINE)
        for which in ("MIN", "MAX")
    ]
    release = re.match(r"(\d+)\.(\d+)", installed)  # coremltools compares major.minor
    if release is None or bounds[0] is None or bounds[1] is None:
        return False
    version = tuple(int(p) for p in release.groups())

    def parse(text: str) -> tuple[int, ...]:
        return tuple(int(p) for p in text.split("."))

    return bool(version < parse(bounds[0].group(1)) or version > parse(bounds[1].group(1)))


def hidden_packages() -> tuple[str, ...]:
    """The packages of :data:`HIDDEN` to hide from coremltools' import now (see the
    module docstring): installed, not imported yet, and (sklearn) disabled by
    coremltools anyway. None with ``COREML_PARITY_HIDE_DEPS=0``."""
    if os.environ.get("COREML_PARITY_HIDE_DEPS", "1") == "0":
        return ()
    hidden = []
    for name in HIDDEN:
        if name in sys.modules or importlib.util.find_spec(name) is None:
            continue
        if name == "sklearn" and not _sklearn_unsupported():
            continue
        hidden.append(name)
    return tuple(hidden)


def explain_hidden_torchao(exc: BaseException) -> str | None:
    """The hint for a conversion that failed because torchao was hidden from coremltools'
    import (torchao imported later, then a torchao-quantized model converted), else None."""
    if "torchao" not in _HIDDEN_AT_IMPORT or "orchao" not in str(exc):
        return None
    return (
        "coremltools was imported before torchao in this process (the plugin keeps torchao "
        "out of coremltools' import when nothing imported it yet, to save seconds), so "
        "coremltools cannot convert torchao's ops: import torchao in conftest.py, or set "
        "COREML_PARITY_HIDE_DEPS=0"
    )


def import_coremltools() -> ModuleType:
    """Return the ``coremltools`` module, importing it without start-up noise (and without
    the optional packages of :func:`hidden_packages`)."""
    module = sys.modules.get("coremltools")
    if module is not None and hasattr(module, "models"):
        return module
    os.environ.setdefault("TQDM_DISABLE", "1")
    saved = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    hidden = [name for name in hidden_packages() if name not in sys.modules]
    try:
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        for name in hidden:
            sys.modules[name] = None  # type: ignore[assignment]  # import raises ImportError
        with warnings.catch_warnings():
            ignore_coremltools_noise()
            import coremltools

            # coremltools ships no type information: mypy sees it as Any.
            imported: ModuleType = coremltools
            module = imported
        _HIDDEN_AT_IMPORT.update(hidden)
    finally:
        for name in hidden:
            if name in sys.modules and sys.modules[name] is None:
                del sys.modules[name]
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
    return module
