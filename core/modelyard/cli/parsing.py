"""Turning command-line text into values: ``k=v`` pairs and prediction inputs (JSON, ``@file.json``, ``@file.npy``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from modelyard.errors import InvalidInput


def parse_pairs(values: Iterable[str] | None, *, option: str) -> dict[str, str]:
    """``["team=growth", "stage=dev"]`` → ``{"team": "growth", "stage": "dev"}``; a later key wins."""
    out: dict[str, str] = {}
    for value in values or ():
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise InvalidInput(f"{option} {value!r}: expected KEY=VALUE", field=option.lstrip("-"))
        out[key.strip()] = val
    return out


def read_input_text(value: str) -> tuple[Any, str]:
    """Read ``--input``: inline JSON, ``@file.json``, ``@file.npy`` or ``@file.npz``.

    Returns the decoded value and a short description of where it came from (for error messages). A ``.npy``
    file gives a numpy array, a ``.npz`` file a dict of arrays, JSON gives lists and dicts.
    """
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        if not path.is_file():
            raise InvalidInput(f"--input {value!r}: no such file", field="input")
        suffix = path.suffix.lower()
        if suffix in (".npy", ".npz"):
            import numpy as np

            try:
                # allow_pickle=False: an input file must never execute code (DESIGN: nothing is unpickled).
                loaded = np.load(path, allow_pickle=False)
            except (ValueError, OSError) as exc:
                raise InvalidInput(f"--input {value!r}: not a readable numpy file: {exc}", field="input") from None
            if suffix == ".npz":
                with loaded:
                    return {k: loaded[k] for k in loaded.files}, str(path)
            return loaded, str(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"--input {value!r}: cannot read: {exc}", field="input") from None
        source = str(path)
    else:
        text, source = value, "--input"
    try:
        return json.loads(text), source
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"{source}: invalid JSON: {exc}", field="input") from None


def to_named_inputs(value: Any, input_specs: Sequence[Mapping[str, Any]], *, source: str = "--input") -> dict[str, Any]:
    """Map a decoded ``--input`` onto the model's inputs, cast to each input's datatype.

    ``input_specs`` are the signature's inputs as dicts (``{"name", "datatype", "shape"}``). A mapping is taken
    by name; a bare list or array is accepted when the model has exactly one input.
    """
    import numpy as np

    from modelyard.protocol.v2 import numpy_dtype

    names = [s["name"] for s in input_specs]
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - set(names)) if names else []
        if unknown:
            raise InvalidInput(f"{source}: unknown input(s) {', '.join(map(repr, unknown))}; the model takes "
                               f"{', '.join(map(repr, names))}", field="input")
        named = dict(value)
    elif isinstance(value, list | np.ndarray):
        if len(names) != 1:
            raise InvalidInput(f"{source}: the model takes {len(names)} inputs ({', '.join(map(repr, names))}); "
                               'give a JSON object {"input_name": [[...]], ...}', field="input")
        named = {names[0]: value}
    else:
        raise InvalidInput(f"{source}: expected a JSON object of inputs or a list, got {type(value).__name__}",
                           field="input")
    dtypes = {s["name"]: s.get("datatype") for s in input_specs}
    out: dict[str, Any] = {}
    for name, data in named.items():
        datatype = dtypes.get(name)
        try:
            out[name] = np.asarray(data, dtype=numpy_dtype(datatype) if datatype else None)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"{source}: input {name!r} cannot be read as {datatype or 'an array'}: {exc}",
                               field="input") from None
    return out


def jsonable(value: Any) -> Any:
    """numpy arrays and scalars (possibly nested in dicts and lists) → plain JSON values."""
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value
