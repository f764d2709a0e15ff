"""Writing the kit's secrets as TOML, the two layouts the ``file`` store reads."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path


def toml_string(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's, as long as non-ASCII stays literal."""
    return json.dumps(value, ensure_ascii=False)


def by_path(secrets: Mapping[tuple[str, str], str]) -> dict[str, dict[str, str]]:
    """``{path: {key: value}}``."""
    grouped: dict[str, dict[str, str]] = defaultdict(dict)
    for (path, key), value in secrets.items():
        grouped[path][key] = value
    return grouped


def table_body(keys: Mapping[str, str]) -> str:
    """``"key" = "value"`` lines."""
    return "".join(f"{toml_string(k)} = {toml_string(v)}\n" for k, v in keys.items())


def write_directory(root: Path, secrets: Mapping[tuple[str, str], str]) -> Path:
    """One TOML file per path: ``<root>/<path>`` holding that path's keys."""
    for path, keys in by_path(secrets).items():
        file = root.joinpath(*path.split("/"))
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(table_body(keys), encoding="utf-8")
    return root


def write_single_file(file: Path, secrets: Mapping[tuple[str, str], str]) -> Path:
    """One TOML file with a nested table per path: ``[db.ml]`` for ``db/ml``."""
    parts = []
    for path, keys in by_path(secrets).items():
        header = ".".join(toml_string(s) for s in path.split("/"))
        parts.append(f"[{header}]\n{table_body(keys)}")
    file.write_text("\n".join(parts), encoding="utf-8")
    return file
