"""Test-suite configuration shared by the plugin and emulator tests."""

from __future__ import annotations

import os

os.environ.setdefault("TQDM_DISABLE", "1")
