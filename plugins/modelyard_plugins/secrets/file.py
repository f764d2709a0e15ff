"""The ``file`` secrets store: secrets in TOML, in one file or in a directory of files.

``path`` names either

- a **directory**: ``${secret:db/ml#password}`` reads the file ``<dir>/db/ml`` (or ``<dir>/db/ml.toml`` when
  there is no file without the suffix), a TOML table of keys::

      # <dir>/db/ml
      password = "…"
      user = "ml"

- or a **single TOML file**, where the path's segments are nested tables::

      [db.ml]
      password = "…"

      [team.growth."warehouse.eu"]     # quote a segment that holds a dot
      api-key = "…"

A relative ``path`` is taken relative to the directory of the config file. Files are read at each lookup, so a
rotated secret is picked up by the next lookup. References are validated first
(:func:`~modelyard_plugins.secrets.refs.check_secret_ref`): ``..``, absolute paths and the like are refused, so
no reference reads outside ``path``. Values must be TOML strings; errors name the file, path and key, never a
value.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import attrs
from modelyard.errors import InvalidInput, NotFound
from modelyard.log import register_secret
from modelyard.providers import ProviderContext

from modelyard_plugins.secrets.refs import check_secret_ref


@attrs.frozen(kw_only=True)
class FileSecretsConfig:
    """The ``[secrets]`` section for ``use = "file"``.

    Attributes:
        path: A directory of TOML files or one TOML file (see :mod:`modelyard_plugins.secrets.file`); relative
            to the config file's directory.
    """

    path: str


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", dict: "a table", list: "an array"}.get(
        type(value), f"a {type(value).__name__}")


@attrs.define
class FileSecretStore:
    """:class:`~modelyard.hookspecs.secrets.SecretStore` reading TOML files (see the module doc)."""

    root: Path

    @classmethod
    def from_path(cls, path: str | Path, *, base_dir: Path | None = None) -> FileSecretStore:
        """Open the store at ``path`` (relative to ``base_dir``); InvalidInput if it does not exist."""
        root = Path(path).expanduser()
        if not root.is_absolute() and base_dir is not None:
            root = base_dir / root
        if not root.exists():
            raise InvalidInput(f"secrets path {str(root)!r} does not exist: expected a TOML file or a directory "
                               "of them", field="path")
        return cls(root=root)

    @classmethod
    def from_config(cls, config: FileSecretsConfig, ctx: ProviderContext) -> FileSecretStore:
        """The provider factory (``ctx.data_dir`` is the config file's directory when secrets are built)."""
        return cls.from_path(config.path, base_dir=Path(ctx.data_dir))

    def get(self, path: str, key: str) -> str:
        """The value of ``key`` in the table for ``path``; NotFound naming path and key (never a value)."""
        segments, key = check_secret_ref(path, key)
        if self.root.is_dir():
            file = self._file_for(path, key, segments)
            table = self._load(file)
            where = f"file {str(file)!r}"
        else:
            file = self.root
            table = self._load(file)
            for depth, segment in enumerate(segments):
                inner = table.get(segment)
                if not isinstance(inner, dict):
                    header = ".".join(segments[: depth + 1])
                    raise NotFound(f"secret {path}#{key} not found: file {str(file)!r} has no table [{header}]")
                table = inner
            where = f"table [{'.'.join(segments)}] of file {str(file)!r}"
        if key not in table:
            raise NotFound(f"secret {path}#{key} not found: {where} has no key {key!r}")
        value = table[key]
        if not isinstance(value, str):
            raise InvalidInput(f"secret {path}#{key} in {where} is {_kind(value)}, expected a string", field="key")
        register_secret(value)
        return value

    def _file_for(self, path: str, key: str, segments: tuple[str, ...]) -> Path:
        plain = self.root.joinpath(*segments)
        for candidate in (plain, plain.with_name(plain.name + ".toml")):
            if candidate.is_file():
                return candidate
        raise NotFound(f"secret {path}#{key} not found: no file {str(plain)!r} (nor {plain.name}.toml) in the "
                       f"secrets directory")

    @staticmethod
    def _load(file: Path) -> dict[str, Any]:
        try:
            return tomllib.loads(file.read_text(encoding="utf-8"))
        except tomllib.TOMLDecodeError as exc:
            # The decoder's message gives a position, never the text, so no value leaks into it.
            raise InvalidInput(f"secrets file {str(file)!r} is not valid TOML: {exc}", field="path") from None
        except UnicodeDecodeError:
            raise InvalidInput(f"secrets file {str(file)!r} is not UTF-8 text", field="path") from None
        except OSError as exc:
            raise InvalidInput(f"cannot read secrets file {str(file)!r}: {exc.strerror}", field="path") from None

    def close(self) -> None:
        """Nothing to release."""


__all__ = ["FileSecretStore", "FileSecretsConfig"]
