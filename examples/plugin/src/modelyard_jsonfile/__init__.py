"""modelyard plugin ``jsonfile``: a ``secrets`` provider reading one JSON file.

Installed, it is discovered through the ``modelyard`` entry-point group (see ``pyproject.toml``) exactly like the
built-in plugins, and selected in config::

    [secrets]
    use = "jsonfile"
    path = "secrets.json"      # relative to modelyard.toml

This module stays light: it imports only the records it yields, so loading the plugin costs nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from modelyard import hookimpl
from modelyard.providers import SecretsProvider

from modelyard_jsonfile.store import JsonFileConfig, JsonFileSecretStore

__version__ = "0.1.0"


@hookimpl
def modelyard_secret_stores() -> Iterator[SecretsProvider]:
    """Offer the ``jsonfile`` secrets provider."""
    yield SecretsProvider(name="jsonfile", factory=JsonFileSecretStore.from_config, config_schema=JsonFileConfig,
                          description="secrets from one JSON file: {\"path\": {\"key\": \"value\"}}")


__all__ = ["JsonFileConfig", "JsonFileSecretStore", "modelyard_secret_stores"]
