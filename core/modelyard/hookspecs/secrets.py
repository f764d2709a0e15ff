"""The ``secrets`` slot: read a secret by path and key, for ``${secret:path#key}`` in config."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from modelyard.hookspecs.markers import hookspec
from modelyard.providers import SecretsProvider


@runtime_checkable
class SecretStore(Protocol):
    """What a secrets provider promises. Values it returns are registered for redaction from every log line."""

    def get(self, path: str, key: str) -> str:
        """The secret value; :class:`~modelyard.errors.NotFound` naming path and key (never the value)."""
        ...

    def close(self) -> None:
        """Release resources."""
        ...


@hookspec
def modelyard_secret_stores() -> Iterable[SecretsProvider]:  # type: ignore[empty-body]
    """Offer secrets providers.

    Called once per plugin manager, at assembly, before any other slot: the ``[secrets]`` section itself may use
    only ``${env:…}`` interpolation.

    Returns:
        An iterable of :class:`~modelyard.providers.SecretsProvider`; the factory returns a :class:`SecretStore`.

    All results are collected.

    Example:
        .. code-block:: python

            @hookimpl
            def modelyard_secret_stores():
                yield SecretsProvider(name="vault", factory=VaultStore.from_config, config_schema=VaultConfig,
                                      requires=("hvac",), extra="vault")
    """
