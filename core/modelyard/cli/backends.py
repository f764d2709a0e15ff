"""The two things a CLI command can act on — an embedded :class:`~modelyard.platform.Platform` or a running
server through :class:`modelyard.client.Client` — behind one set of verbs that return the dicts of
:mod:`modelyard.serialize`. That is why both modes print the same output.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import structlog

if TYPE_CHECKING:
    from modelyard.platform import Platform

log = structlog.get_logger(__name__)


class Backend(Protocol):
    """The verbs the CLI needs; both implementations return :mod:`modelyard.serialize` dicts."""

    def register(self, name: str, path: str, *, flavor: str, tags: Mapping[str, str], alias: str | None,
                 lineage: Mapping[str, Any], description: str, options: Mapping[str, Any] | None = None,
                 sample_input: Mapping[str, Any] | None = None,
                 expected_output: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Register a new version (``options``: the flavor's build options; ``sample_input`` and
        ``expected_output``: arrays by name for the validation run); the version dict."""
        ...

    def list_models(self, *, prefix: str | None, tags: Mapping[str, str], alias: str | None, offset: int,
                    limit: int) -> dict[str, Any]:
        """A page of model dicts."""
        ...

    def get_model(self, name: str) -> dict[str, Any]:
        """One model dict."""
        ...

    def list_versions(self, name: str, *, offset: int, limit: int) -> dict[str, Any]:
        """A page of version dicts, newest first."""
        ...

    def search(self, *, prefix: str | None, tags: Mapping[str, str], alias: str | None, flavor: str | None,
               offset: int, limit: int) -> dict[str, Any]:
        """A page of version dicts across models, by name prefix, *version* tags, alias and flavor."""
        ...

    def set_model_tags(self, name: str, tags: Mapping[str, str]) -> None:
        """Set tags on the model itself (not on a version)."""
        ...

    def get_version(self, ref: str) -> dict[str, Any]:
        """The version ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS`` points at."""
        ...

    def set_alias(self, name: str, version: int, alias: str) -> dict[str, Any]:
        """Point an alias at a version; the version dict."""
        ...

    def deploy(self, ref: str, *, name: str | None, batching: Mapping[str, Any] | None,
               replicas: int) -> dict[str, Any]:
        """Deploy; the deployment dict."""
        ...

    def undeploy(self, name: str) -> None:
        """Take a deployment down."""
        ...

    def deployments(self) -> list[dict[str, Any]]:
        """Every deployment dict."""
        ...

    def deployment_inputs(self, name: str) -> list[dict[str, Any]]:
        """The input specs (``{"name", "datatype", "shape"}``) of the version a deployment serves."""
        ...

    def predict(self, name: str, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        """Outputs by name (arrays or lists)."""
        ...

    def plugins(self) -> dict[str, Any]:
        """The :func:`modelyard.serialize.plugins_json` report."""
        ...

    def close(self) -> None:
        """Release the platform or the connection."""
        ...


class EmbeddedBackend:
    """Acts on a Platform assembled in this process from the config file."""

    def __init__(self, platform: Platform) -> None:
        self.platform = platform

    @classmethod
    def from_config(cls, source: str | os.PathLike[str] | None, *, plugin_manager: Any = None) -> EmbeddedBackend:
        """Assemble the platform (raises ConfigError with every problem at once)."""
        from modelyard.platform import Platform

        return cls(Platform.from_config(source, plugin_manager=plugin_manager))

    def register(self, name: str, path: str, *, flavor: str, tags: Mapping[str, str], alias: str | None,
                 lineage: Mapping[str, Any], description: str, options: Mapping[str, Any] | None = None,
                 sample_input: Mapping[str, Any] | None = None,
                 expected_output: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """See :class:`Backend`."""
        from modelyard.serialize import version_json

        return version_json(self.platform.registry.register(
            name, path, flavor=flavor, tags=tags, alias=alias, lineage=lineage, description=description,
            options=options, sample_input=sample_input, expected_output=expected_output, actor="cli"))

    def list_models(self, *, prefix: str | None, tags: Mapping[str, str], alias: str | None, offset: int,
                    limit: int) -> dict[str, Any]:
        """See :class:`Backend`."""
        from modelyard.serialize import model_json, page_json

        page = self.platform.registry.list_models(prefix=prefix, tags=tags or None, alias=alias, offset=offset,
                                                  limit=limit)
        return page_json(page, model_json)

    def get_model(self, name: str) -> dict[str, Any]:
        """See :class:`Backend`."""
        from modelyard.serialize import model_json

        return model_json(self.platform.registry.get_model(name))

    def list_versions(self, name: str, *, offset: int, limit: int) -> dict[str, Any]:
        """See :class:`Backend`."""
        from modelyard.serialize import page_json, version_json

        return page_json(self.platform.registry.list_versions(name, offset=offset, limit=limit), version_json)

    def search(self, *, prefix: str | None, tags: Mapping[str, str], alias: str | None, flavor: str | None,
               offset: int, limit: int) -> dict[str, Any]:
        """See :class:`Backend`."""
        from modelyard.serialize import page_json, version_json

        page = self.platform.registry.search(prefix=prefix, tags=tags or None, alias=alias, flavor=flavor,
                                             offset=offset, limit=limit)
        return page_json(page, version_json)

    def set_model_tags(self, name: str, tags: Mapping[str, str]) -> None:
        """See :class:`Backend`."""
        self.platform.registry.set_tags(name, tags, actor="cli")

    def get_version(self, ref: str) -> dict[str, Any]:
        """See :class:`Backend`."""
        from modelyard.serialize import version_json

        return version_json(self.platform.registry.get_version(ref))

    def set_alias(self, name: str, version: int, alias: str) -> dict[str, Any]:
        """See :class:`Backend`."""
        from modelyard.serialize import version_json

        return version_json(self.platform.registry.set_alias(name, version=version, alias=alias, actor="cli"))

    def deploy(self, ref: str, *, name: str | None, batching: Mapping[str, Any] | None,
               replicas: int) -> dict[str, Any]:
        """See :class:`Backend`."""
        from modelyard.serialize import deployment_json

        return deployment_json(self.platform.deploy(ref, name=name, batching=batching, replicas=replicas,
                                                    actor="cli"))

    def undeploy(self, name: str) -> None:
        """See :class:`Backend`."""
        self.platform.undeploy(name, actor="cli")

    def deployments(self) -> list[dict[str, Any]]:
        """See :class:`Backend`."""
        from modelyard.serialize import deployment_json

        return [deployment_json(d) for d in self.platform.deployments()]

    def deployment_inputs(self, name: str) -> list[dict[str, Any]]:
        """See :class:`Backend`."""
        version = self._served_version(name)
        return [t.to_dict() for t in version.signature.inputs] if version.signature else []

    def _served_version(self, name: str) -> Any:
        from modelyard.types import ModelRef

        dep = self.platform.get_deployment(name)
        return self.platform.registry.get_version(ModelRef(dep.model, version=dep.version))

    def predict(self, name: str, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        """See :class:`Backend`.

        A deployment recorded by an earlier ``modelyard deploy`` lives only as a record until something serves
        it; in embedded mode this process brings that one deployment up (as ``restore_deployments`` does for
        all of them at server start), then predicts.
        """
        runtime = self.platform.runtime
        if not runtime.ready(name):
            dep = self.platform.get_deployment(name)
            runtime.deploy(dep, self.platform.bundle_source(self._served_version(name)))
            log.debug("deployment brought up for this invocation", deployment=name)
        return self.platform.predict(name, inputs, principal="cli")

    def close(self) -> None:
        """See :class:`Backend`."""
        self.platform.close()


class RemoteBackend:
    """Acts on a running server through :class:`modelyard.client.Client`."""

    def __init__(self, client: Any) -> None:
        self.client = client

    @classmethod
    def connect(cls, url: str, *, api_key: str | None = None) -> RemoteBackend:
        """A client for ``url`` (no request is made until a command runs)."""
        from modelyard.client import Client

        return cls(Client(url, api_key=api_key) if api_key else Client(url))

    def register(self, name: str, path: str, *, flavor: str, tags: Mapping[str, str], alias: str | None,
                 lineage: Mapping[str, Any], description: str, options: Mapping[str, Any] | None = None,
                 sample_input: Mapping[str, Any] | None = None,
                 expected_output: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """See :class:`Backend`: a local file is uploaded, a URL (``s3://…``) is read by the server; the build
        arguments travel as JSON (arrays as nested lists)."""
        build = {"options": options, "sample_input": sample_input, "expected_output": expected_output}
        if "://" in path and not path.startswith("file://"):
            return self.client.register_uri(name, path, flavor=flavor, tags=dict(tags), alias=alias,
                                            lineage=dict(lineage), description=description, **build)
        from modelyard.errors import InvalidInput

        local = Path(path.removeprefix("file://")).expanduser()
        if not local.exists():
            raise InvalidInput(f"source {path!r} does not exist", field="source")
        return self.client.register(name, local, flavor=flavor, tags=dict(tags), alias=alias, lineage=dict(lineage),
                                    description=description, **build)

    def list_models(self, *, prefix: str | None, tags: Mapping[str, str], alias: str | None, offset: int,
                    limit: int) -> dict[str, Any]:
        """See :class:`Backend`."""
        return self.client.list_models(prefix=prefix, tags=dict(tags) or None, alias=alias, offset=offset,
                                       limit=limit)

    def get_model(self, name: str) -> dict[str, Any]:
        """See :class:`Backend`."""
        return self.client.get_model(name)

    def list_versions(self, name: str, *, offset: int, limit: int) -> dict[str, Any]:
        """See :class:`Backend`."""
        return self.client.list_versions(name, offset=offset, limit=limit)

    def search(self, *, prefix: str | None, tags: Mapping[str, str], alias: str | None, flavor: str | None,
               offset: int, limit: int) -> dict[str, Any]:
        """See :class:`Backend`."""
        return self.client.search(prefix=prefix, tags=dict(tags) or None, alias=alias, flavor=flavor,
                                  offset=offset, limit=limit)

    def set_model_tags(self, name: str, tags: Mapping[str, str]) -> None:
        """See :class:`Backend`."""
        self.client.set_tags(name, dict(tags))

    def get_version(self, ref: str) -> dict[str, Any]:
        """See :class:`Backend`."""
        return self.client.get_version(ref)

    def set_alias(self, name: str, version: int, alias: str) -> dict[str, Any]:
        """See :class:`Backend`."""
        return self.client.set_alias(name, version=version, alias=alias)

    def deploy(self, ref: str, *, name: str | None, batching: Mapping[str, Any] | None,
               replicas: int) -> dict[str, Any]:
        """See :class:`Backend`."""
        return self.client.deploy(ref, name=name, batching=dict(batching) if batching else None, replicas=replicas)

    def undeploy(self, name: str) -> None:
        """See :class:`Backend`."""
        self.client.undeploy(name)

    def deployments(self) -> list[dict[str, Any]]:
        """See :class:`Backend`."""
        result = self.client.deployments()
        return list(result["items"] if isinstance(result, Mapping) else result)

    def deployment_inputs(self, name: str) -> list[dict[str, Any]]:
        """See :class:`Backend`: the deployment's V2 model metadata."""
        return list(self.client.model_metadata(name).get("inputs") or [])

    def predict(self, name: str, inputs: Mapping[str, Any]) -> Mapping[str, Any]:
        """See :class:`Backend`."""
        return self.client.predict(name, inputs)

    def plugins(self) -> dict[str, Any]:
        """See :class:`Backend`."""
        return self.client.plugins()

    def close(self) -> None:
        """See :class:`Backend`."""
        close = getattr(self.client, "close", None)
        if close is not None:
            close()
