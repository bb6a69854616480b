"""The plugin tests' pytester fixtures (and their warm-up), reused for headroom."""

from __future__ import annotations

from tests.plugin.conftest import copy_example, run, shared_cache

__all__ = ["copy_example", "run", "shared_cache"]
