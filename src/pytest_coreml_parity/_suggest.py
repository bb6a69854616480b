"""Close-match suggestions for misspelled names: ``precision`` -> ``precisions``.

One rule (difflib's ratio, cutoff 0.6), used by every "unknown ..." message. A leaf:
standard library only.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


def close_matches(value: object, known: Iterable[str], n: int = 3) -> list[str]:
    """The known names closest to ``value`` (best first), case-insensitively."""
    names = list(known)
    text = str(value).strip()
    lowered = {name.lower(): name for name in names if name != text}
    if text.lower() in lowered:  # a case slip: that one name
        return [lowered[text.lower()]]
    found = difflib.get_close_matches(text.lower(), list(lowered), n=n, cutoff=0.6)
    return [lowered[name] for name in found]


def did_you_mean(value: object, known: Iterable[str]) -> str:
    """``"; did you mean 'precisions'?"`` or ``""`` when nothing is close."""
    matches = close_matches(value, known)
    if not matches:
        return ""
    return "; did you mean " + " or ".join(repr(m) for m in matches) + "?"
