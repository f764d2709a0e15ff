"""modelyard: a composable MLOps platform assembled from plugins chosen in one config file.

``import modelyard`` stays light (no torch, tensorflow, ray, hvac or s3fs); names are loaded on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from modelyard.hookspecs.markers import hookimpl, hookspec

__version__ = "0.1.0"

if TYPE_CHECKING:
    from modelyard.platform import Platform

_LAZY = {"Platform": "modelyard.platform"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'modelyard' has no attribute {name!r}")


__all__ = ["Platform", "__version__", "hookimpl", "hookspec"]
