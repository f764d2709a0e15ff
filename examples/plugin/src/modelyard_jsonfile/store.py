"""The ``jsonfile`` secrets store: ``${secret:db/ml#password}`` reads ``data["db/ml"]["password"]`` of a JSON file.

The file maps each secret path to an object of keys::

    {"db/ml": {"password": "…", "user": "ml"}, "api": {"token": "…"}}

It is read at each lookup, so a rotated secret is picked up without a restart. Values must be strings; every value
returned is registered for redaction, and no error message ever shows one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
from modelyard.errors import InvalidInput, NotFound
from modelyard.log import register_secret
from modelyard.providers import ProviderContext

# The built-in secrets plugin's reference check: refuses "..", absolute paths, control characters and the like.
# Reusing it keeps every store's idea of a valid reference the same.
from modelyard_plugins.secrets import check_secret_ref


@attrs.frozen(kw_only=True)
class JsonFileConfig:
    """The ``[secrets]`` section for ``use = "jsonfile"``.

    Attributes:
        path: the JSON file, relative to the config file's directory.
    """

    path: str


@attrs.define
class JsonFileSecretStore:
    """A :class:`~modelyard.hookspecs.secrets.SecretStore` over one JSON file (see the module doc)."""

    file: Path

    @classmethod
    def from_path(cls, path: str | Path, *, base_dir: Path | None = None) -> JsonFileSecretStore:
        """Open the store; InvalidInput naming the file when it does not exist."""
        file = Path(path).expanduser()
        if not file.is_absolute() and base_dir is not None:
            file = base_dir / file
        if not file.is_file():
            raise InvalidInput(f"secrets file {str(file)!r} does not exist", field="path")
        return cls(file=file)

    @classmethod
    def from_config(cls, config: JsonFileConfig, ctx: ProviderContext) -> JsonFileSecretStore:
        """The provider factory (``ctx.data_dir`` is the config file's directory while secrets are built)."""
        return cls.from_path(config.path, base_dir=Path(ctx.data_dir))

    def get(self, path: str, key: str) -> str:
        """The value of ``key`` under ``path``; NotFound naming both (never a value)."""
        check_secret_ref(path, key)
        table = self._load().get(path)
        if not isinstance(table, dict):
            raise NotFound(f"secret {path}#{key} not found: {self.file.name} has no object {path!r}")
        if key not in table:
            raise NotFound(f"secret {path}#{key} not found: {self.file.name} has no key {key!r} under {path!r}")
        value = table[key]
        if not isinstance(value, str):
            raise InvalidInput(f"secret {path}#{key} in {self.file.name} is not a string", field="key")
        register_secret(value)
        return value

    def _load(self) -> dict[str, Any]:
        try:
            data = json.loads(self.file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            # The decoder's message gives a position, never the text, so no value leaks into it.
            raise InvalidInput(f"secrets file {self.file.name} is not valid JSON: line {exc.lineno}, "
                               f"column {exc.colno}: {exc.msg}", field="path") from None
        except OSError as exc:
            raise InvalidInput(f"cannot read secrets file {self.file.name}: {exc.strerror}",
                               field="path") from None
        if not isinstance(data, dict):
            raise InvalidInput(f"secrets file {self.file.name} must hold a JSON object", field="path")
        return data

    def close(self) -> None:
        """Nothing to release (safe to call twice)."""
