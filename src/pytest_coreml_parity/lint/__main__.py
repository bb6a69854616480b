"""``python -m pytest_coreml_parity.lint Model.mlpackage`` (see :mod:`.cli`)."""

from __future__ import annotations

from .cli import main

raise SystemExit(main())
