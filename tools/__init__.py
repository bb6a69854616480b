"""Development tools of this repository: not part of the installed package.

Nothing under ``tools/`` ships in the wheel or the sdist's package list; it is
importable from a source checkout only, with the repository root on ``sys.path``
(pytest's ``pythonpath = ["."]`` ini option does that for the test suite, and
the scripts in ``scripts/`` insert it themselves).
"""
