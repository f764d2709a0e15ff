"""Validation of the names users give things: models, aliases, tags, deployments, providers.

Names end up in URLs, file paths and SQL, so they are restricted up front (no path traversal, no surprises). Every
pattern is matched with ``re.fullmatch``: ``re.match`` with ``$`` would let a trailing newline through (``$`` also
matches before a final newline), and ``[0-9]`` and ``[A-Za-z]`` are ASCII ranges, so full-width or other Unicode
letters and digits are refused.
"""

from __future__ import annotations

import re

from modelyard.errors import InvalidInput

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,63}")
_TAG_KEY = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/:-]{0,127}")
_PROVIDER = re.compile(r"[a-z][a-z0-9_-]{0,63}")
MAX_TAG_VALUE = 1024


def check_name(value: object, *, field: str = "name") -> str:
    """Return ``value`` if it is a valid model or deployment name, else raise :class:`InvalidInput`."""
    if not isinstance(value, str) or not _NAME.fullmatch(value) or ".." in value:
        raise InvalidInput(
            f"{field} {value!r} is not a valid name: expected 1-128 characters from ASCII letters, digits, '.', "
            "'_' and '-', starting with a letter or digit, without '..'",
            field=field,
        )
    return value


def check_alias(value: object, *, field: str = "alias") -> str:
    """Return ``value`` if it is a valid alias (``production``, ``staging``, ``canary-2``)."""
    if not isinstance(value, str) or not _ALIAS.fullmatch(value) or value == "latest":
        raise InvalidInput(
            f"{field} {value!r} is not a valid alias: expected 1-64 ASCII letters, digits, '_' or '-', starting "
            "with a letter ('latest' is reserved)",
            field=field,
        )
    return value


def check_tag(key: object, value: object) -> tuple[str, str]:
    """Validate one tag; values are Unicode strings (no lone surrogates) up to 1024 characters."""
    if not isinstance(key, str) or not _TAG_KEY.fullmatch(key):
        raise InvalidInput(f"tag key {key!r} is not valid: expected 1-128 characters from ASCII letters, digits, "
                           "'.', '_', '/', ':' and '-', starting with a letter or digit", field="tags")
    if not isinstance(value, str) or len(value) > MAX_TAG_VALUE or not is_unicode(value):
        raise InvalidInput(
            f"tag {key!r}: expected a text string of at most {MAX_TAG_VALUE} characters, got {value!r:.60}",
            field="tags",
        )
    return key, value


def is_unicode(text: str) -> bool:
    """Whether ``text`` can be written as UTF-8: it holds no lone surrogate (a JSON ``"\\ud800"`` makes one)."""
    if text.isascii():
        return True
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_provider_name(value: object) -> str:
    """Provider and plugin names: lowercase identifiers (``sql``, ``fsspec``, ``ray``)."""
    if not isinstance(value, str) or not _PROVIDER.fullmatch(value):
        raise ValueError(f"provider name {value!r} must match {_PROVIDER.pattern}")
    return value
