"""Validation of secret references (``path#key``) shared by the ``env`` and ``file`` stores.

A path is one or more ``/``-separated segments; none may be empty, ``.`` or ``..``, and no part may hold a
backslash or a control character — so a reference can never climb out of a secrets directory, whatever store
reads it.
"""

from __future__ import annotations

from modelyard.errors import InvalidInput


def _printable(text: str) -> bool:
    return all(ch >= " " and ch != "\x7f" for ch in text)


def check_secret_ref(path: object, key: object) -> tuple[tuple[str, ...], str]:
    """Return (path segments, key) for a valid reference, else raise :class:`InvalidInput` naming the problem."""
    if not isinstance(path, str) or not path:
        raise InvalidInput(f"secret path {path!r} is not valid: expected a non-empty string such as 'db/ml'",
                           field="path")
    if not isinstance(key, str) or not key:
        raise InvalidInput(f"secret {path}#{key!r}: the key must be a non-empty string", field="key")
    segments = tuple(path.split("/"))
    if path.startswith("/") or any(s in ("", ".", "..") for s in segments) or "\\" in path \
            or not _printable(path):
        raise InvalidInput(
            f"secret path {path!r} is not valid: expected '/'-separated names, none of them empty, '.' or '..', "
            "no leading '/', backslashes or control characters", field="path")
    if "/" in key or "\\" in key or not _printable(key):
        raise InvalidInput(f"secret key {key!r} (path {path!r}) is not valid: no '/', backslashes or control "
                           "characters", field="key")
    return segments, key


__all__ = ["check_secret_ref"]
