"""Test configuration shared by everything run from this checkout.

* Hypothesis settings profiles, both built on Hypothesis' own defaults: ``ci``
  (derandomized, so a CI failure reproduces and a pass is not luck; no example
  database, since every CI run is a fresh clone; no deadline and no too_slow
  health check, since the shared CI cores make timings noisy; the failure blob
  printed for ``@reproduce_failure``) and ``dev`` (random exploration, the
  database in ``.hypothesis/``, no deadline). ``HYPOTHESIS_PROFILE`` picks one;
  unset, it is ``ci`` when the ``CI`` environment variable is set to a true value,
  else ``dev``. Neither raises ``max_examples``: the suite's time budget stays.
* ``pytester`` for the plugin's own tests (formerly ``-p pytester`` in addopts).
* tqdm stays quiet: coremltools' conversion passes print progress bars otherwise.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

os.environ.setdefault("TQDM_DISABLE", "1")

pytest_plugins = ["pytester"]

# Parent "default": Hypothesis loads its own "ci" profile when it sees a CI variable,
# and a profile without a parent would inherit whatever is loaded.
_DEFAULT = settings.get_profile("default")
settings.register_profile(
    "ci",
    _DEFAULT,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", _DEFAULT, deadline=None)


def _default_profile() -> str:
    ci = os.environ.get("CI", "").strip().lower()
    return "ci" if ci not in ("", "0", "false", "no", "off") else "dev"


settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE") or _default_profile())
