"""HTTP request bodies of ``/api/v1`` as msgspec structs — the transport's schemas, not the domain types (STYLE 14).

Litestar validates bodies against them (400 naming the field on a type error, unknown fields refused) and
documents them in the OpenAPI schema; the values' *meaning* (names, tags, version numbers) is checked by the
Platform, which answers 422.
"""

from __future__ import annotations

from typing import Any

import msgspec


class RegisterFromUri(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /api/v1/models`` with a JSON body: register a model from a URI the server can read.

    ``options`` are the flavor's build options (e.g. torch ``input_spec``); ``sample_input`` and
    ``expected_output`` map tensor names to arrays written as nested lists, for the validation run.
    """

    name: str
    flavor: str
    uri: str
    tags: dict[str, str] = {}
    lineage: dict[str, Any] = {}
    alias: str | None = None
    description: str = ""
    options: dict[str, Any] = {}
    sample_input: dict[str, Any] | None = None
    expected_output: dict[str, Any] | None = None


class SetAlias(msgspec.Struct, forbid_unknown_fields=True):
    """``PUT /api/v1/models/{name}/aliases/{alias}``: the version the alias points at."""

    version: int


class PatchTags(msgspec.Struct, forbid_unknown_fields=True):
    """``PATCH /api/v1/models/{name}/tags``: tags to set and keys to remove, on the model or one version."""

    tags: dict[str, str] = {}
    remove: list[str] = []
    version: int | None = None


class Batching(msgspec.Struct, forbid_unknown_fields=True):
    """Dynamic batching settings of a deployment."""

    max_batch_size: int = 32
    max_wait_ms: float = 2.0
    wait_when_idle: bool = False


class CreateDeployment(msgspec.Struct, forbid_unknown_fields=True):
    """``POST /api/v1/deployments``: deploy ``model`` (``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``)."""

    model: str
    name: str | None = None
    batching: Batching | None = None
    replicas: int = 1
    options: dict[str, Any] = {}
