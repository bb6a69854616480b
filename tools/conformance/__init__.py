"""Run coremltools' own MIL op unit tests with predictions routed through our emulator.

coremltools ships its op tests in the wheel, but on Linux they compare nothing:
every numeric check is gated on macOS. :mod:`.plugin` lifts those gates and sends
``MLModel.predict`` to :func:`pytest_coreml_parity.emulate`; :mod:`.results`
classifies each test (pass, fail, unsupported, ...) and renders per-op tables.
``scripts/conformance.py`` drives both. Nothing here is imported by the main
pytest plugin: it patches coremltools globally, which only a dedicated run may do.
It is a development harness, so it lives outside ``src/`` and is not installed.
"""
