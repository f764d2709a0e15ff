"""The ``env`` secrets store: ``${secret:db/ml#password}`` reads ``$MODELYARD_SECRET_DB_ML_PASSWORD``.

The variable name is ``prefix`` followed by ``<path>_<key>`` upper-cased, every character that is not an ASCII
letter or digit replaced by ``_``::

    ${secret:db/ml#password}          →  MODELYARD_SECRET_DB_ML_PASSWORD
    ${secret:team/growth#api-key}     →  MODELYARD_SECRET_TEAM_GROWTH_API_KEY

The mapping is not one-to-one (``db/ml#password``, ``db-ml#password`` and ``DB/ML#PASSWORD`` read the same
variable); pick paths that stay distinct once mapped. The environment is read at each lookup, not copied at
start-up.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping

import attrs
from modelyard.errors import InvalidInput, NotFound
from modelyard.log import register_secret
from modelyard.providers import ProviderContext

from modelyard_plugins.secrets.refs import check_secret_ref

DEFAULT_PREFIX = "MODELYARD_SECRET_"
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]")


def _prefix(_inst: object, _attr: attrs.Attribute, value: str) -> None:
    if not re.fullmatch(r"[A-Za-z0-9_]*", value):
        raise ValueError(f"prefix {value!r} may hold only ASCII letters, digits and '_'")


@attrs.frozen(kw_only=True)
class EnvSecretsConfig:
    """The ``[secrets]`` section for ``use = "env"``.

    Attributes:
        prefix: Prepended to the mapped ``<PATH>_<KEY>`` to form the environment variable's name. An empty
            prefix lets ``${secret:aws#secret_access_key}`` read ``AWS_SECRET_ACCESS_KEY``.
    """

    prefix: str = attrs.field(default=DEFAULT_PREFIX, validator=_prefix)


def env_var_name(path: str, key: str, prefix: str = DEFAULT_PREFIX) -> str:
    """The environment variable that holds ``path#key``: ``prefix + upper(path_key)``, non-alphanumerics → ``_``."""
    check_secret_ref(path, key)
    return prefix + _NOT_ALNUM.sub("_", f"{path}_{key}").upper()


@attrs.define
class EnvSecretStore:
    """:class:`~modelyard.hookspecs.secrets.SecretStore` reading environment variables (see the module doc).

    ``environ`` defaults to :data:`os.environ`, read live; pass a mapping to read another.
    """

    prefix: str = DEFAULT_PREFIX
    environ: Mapping[str, str] = attrs.field(factory=lambda: os.environ, repr=False)

    @classmethod
    def from_config(cls, config: EnvSecretsConfig, ctx: ProviderContext) -> EnvSecretStore:
        """The provider factory."""
        return cls(prefix=config.prefix)

    def get(self, path: str, key: str) -> str:
        """The value of the mapped variable; NotFound naming path, key and variable (never a value)."""
        name = env_var_name(path, key, self.prefix)
        value = self.environ.get(name)
        if value is None:
            raise NotFound(f"secret {path}#{key} not found: environment variable {name} is not set")
        if not isinstance(value, str):
            raise InvalidInput(f"secret {path}#{key}: environment variable {name} does not hold a string",
                               field="key")
        register_secret(value)
        return value

    def close(self) -> None:
        """Nothing to release."""


__all__ = ["DEFAULT_PREFIX", "EnvSecretStore", "EnvSecretsConfig", "env_var_name"]
