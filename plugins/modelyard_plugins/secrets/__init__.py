"""The embedded ``secrets`` providers: ``env`` (the default) and ``file``.

``[secrets] use = "env"`` reads ``${secret:db/ml#password}`` from ``$MODELYARD_SECRET_DB_ML_PASSWORD``
(:mod:`modelyard_plugins.secrets.env`); ``use = "file"`` with ``path = "…"`` reads TOML files
(:mod:`modelyard_plugins.secrets.file`). Every value either returns is registered with
:func:`modelyard.log.register_secret`, so no log line shows it. This plugin is essential: it cannot be disabled,
since config interpolation needs a secrets store to fall back on.
"""

from __future__ import annotations

from collections.abc import Iterator

from modelyard import hookimpl
from modelyard.providers import SecretsProvider

from modelyard_plugins.secrets.env import EnvSecretsConfig, EnvSecretStore, env_var_name
from modelyard_plugins.secrets.file import FileSecretsConfig, FileSecretStore
from modelyard_plugins.secrets.refs import check_secret_ref


@hookimpl
def modelyard_secret_stores() -> Iterator[SecretsProvider]:
    """Offer ``env`` (environment variables) and ``file`` (TOML files) secrets stores."""
    yield SecretsProvider(name="env", factory=EnvSecretStore.from_config, config_schema=EnvSecretsConfig,
                          description="secrets from environment variables (MODELYARD_SECRET_<PATH>_<KEY>)")
    yield SecretsProvider(name="file", factory=FileSecretStore.from_config, config_schema=FileSecretsConfig,
                          description="secrets from a TOML file or a directory of TOML files")


__all__ = ["EnvSecretStore", "EnvSecretsConfig", "FileSecretStore", "FileSecretsConfig", "check_secret_ref",
           "env_var_name"]
