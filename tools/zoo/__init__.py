"""The model zoo: real architectures through the plugin's own default path.

Models are built in code with random weights (never downloaded) from torchvision,
timm and transformers; batch norm is calibrated on random batches. For each model,
:mod:`.run` writes a plain ``coreml_model`` test file and runs pytest on it in a
subprocess (fp32 and fp16), then :mod:`.render` writes ``docs/zoo.md`` and a JSON of
the raw results. ``python -m tools.zoo run`` does it all (``docs/zoo.md`` says how).

It is a development harness: it lives outside ``src/`` and is not installed.

Modules: :mod:`.torchvision_guard` (torchvision beside CPU torch), :mod:`.registry`
(the entries), :mod:`.builders` (the constructors), :mod:`.calibrate` (batch norm),
:mod:`.testfile` (the generated test file), :mod:`.speed` (the one-thread timing),
:mod:`.collect` (the subprocess' pytest plugin), :mod:`.results`, :mod:`.run`,
:mod:`.render`.
"""
