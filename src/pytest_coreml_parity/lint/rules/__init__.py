"""One module per lint rule, each defining ``RULE = Rule(...)`` (see ``..registry``).

Files starting with ``_`` are helpers, not rules.
"""
