"""The client SDK: the Platform's verbs over HTTP against a running ``modelyard serve``.

``Client`` (blocking) and ``AsyncClient`` (coroutines) offer the same methods and return the same
:mod:`modelyard.serialize` dicts the server answers with — and that the CLI prints — so code moves between an
embedded :class:`~modelyard.platform.Platform` and a server with little change. Predictions go over the Open
Inference Protocol (binary tensors by default) and come back as numpy arrays. A problem-details answer from the
server is raised as the matching :mod:`modelyard.errors` exception carrying the server's detail and HTTP status
(``NotFound``, ``InvalidInput``, ``Overloaded`` with ``retry_after``, …).

The URL defaults to ``$MODELYARD_SERVER`` and the API key to ``$MODELYARD_API_KEY`` (sent as
``Authorization: Bearer …``). httpx is imported here, so ``import modelyard`` alone does not load it.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

import attrs
import httpx
import numpy as np

from modelyard import errors
from modelyard.protocol.v2 import HEADER_LENGTH_HEADER, CodecError, decode_response, encode_request
from modelyard.types import ModelRef

__all__ = ["AsyncClient", "Client", "error_from_response"]

#: Slow operations (a registration builds and validates the model, a deploy waits until it answers) get at least
#: this many seconds to answer, whatever the client's ``timeout``.
SLOW_OPERATION_S = 600.0

_TYPE_PREFIX = "urn:modelyard:problem:"
_ERROR_CLASSES: tuple[type[errors.ModelyardError], ...] = (
    errors.InvalidInput, errors.NotFound, errors.Conflict, errors.IntegrityError, errors.BuildError,
    errors.PluginError, errors.Unavailable, errors.Overloaded, errors.Forbidden, errors.Unauthenticated,
)


def _slug(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "-", name).lower()


_BY_TYPE: dict[str, type[errors.ModelyardError]] = {_slug(c.__name__): c for c in _ERROR_CLASSES}
_BY_TYPE.update({"config-error": errors.InvalidInput, "codec-error": errors.InvalidInput})
_BY_STATUS: dict[int, type[errors.ModelyardError]] = {
    400: errors.InvalidInput, 401: errors.Unauthenticated, 403: errors.Forbidden, 404: errors.NotFound,
    405: errors.InvalidInput, 409: errors.Conflict, 413: errors.InvalidInput, 415: errors.InvalidInput,
    422: errors.InvalidInput, 429: errors.Overloaded, 503: errors.Unavailable,
}


def _retry_after(body: Mapping[str, Any], response: httpx.Response) -> float:
    value = body.get("retry_after")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return float(response.headers.get("retry-after", "1"))
    except ValueError:
        return 1.0


def error_from_response(response: httpx.Response) -> errors.ModelyardError:
    """The :mod:`modelyard.errors` exception for a failed answer; its ``status`` is the HTTP status."""
    status = response.status_code
    body: Any = None
    if "json" in response.headers.get("content-type", ""):
        try:
            body = response.json()
        except ValueError:
            body = None
    if not isinstance(body, dict):
        text = response.text.strip()[:300]
        message = f"the server answered {status} {response.reason_phrase}" + (f": {text}" if text else "")
        cls = _BY_STATUS.get(status, errors.ModelyardError)
        exc: errors.ModelyardError = (errors.Overloaded(message, retry_after=_retry_after({}, response))
                                      if cls is errors.Overloaded else cls(message))
    else:
        detail = str(body.get("detail") or body.get("error") or response.reason_phrase)
        kind = str(body.get("type", "")).removeprefix(_TYPE_PREFIX)
        cls = _BY_TYPE.get(kind) or _BY_STATUS.get(status, errors.ModelyardError)
        extra = {k: body[k] for k in ("input",) if isinstance(body.get(k), str)}
        if cls is errors.Overloaded:
            exc = errors.Overloaded(detail, retry_after=_retry_after(body, response), **extra)
        elif cls is errors.InvalidInput:
            field = body.get("field")
            exc = errors.InvalidInput(detail, field=field if isinstance(field, str) else None, **extra)
        else:
            exc = cls(detail, **extra)
    exc.status = status  # the instance's status is what the server said, whatever the class default
    return exc


# ------------------------------------------------------------------------------------------------ requests
@attrs.frozen(kw_only=True)
class _Call:
    """One HTTP request and how to read its answer; shared by the sync and async clients."""

    method: str
    path: str
    params: Any = None
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    slow: bool = False
    parse: Callable[[httpx.Response], Any] = lambda r: r.json()
    ok: tuple[int, ...] = ()  # non-2xx statuses that are answers, not errors


def _seg(value: str) -> str:
    """A path segment, percent-encoded (names are validated server-side; this only keeps URLs well-formed)."""
    return quote(str(value), safe="")


def _tag_params(tags: Mapping[str, str] | None) -> list[str]:
    return [f"{k}:{v}" for k, v in (tags or {}).items()]


def _page_params(**values: Any) -> list[tuple[str, Any]]:
    params: list[tuple[str, Any]] = []
    for key, value in values.items():
        if key == "tag":
            params += [("tag", t) for t in _tag_params(value)]
        elif value is not None:
            params.append((key, value))
    return params


def _version_path(ref: str | ModelRef) -> str:
    ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
    base = f"/api/v1/models/{_seg(ref.name)}"
    if ref.alias is not None:
        return f"{base}/aliases/{_seg(ref.alias)}"
    return f"{base}/versions/{ref.version if ref.version is not None else 'latest'}"


def _none(_: httpx.Response) -> None:
    return None


def _outputs(response: httpx.Response) -> dict[str, np.ndarray]:
    try:
        decoded = decode_response(response.content, header_length=response.headers.get(HEADER_LENGTH_HEADER))
    except CodecError as exc:
        raise errors.ModelyardError(f"the server's inference answer could not be decoded: {exc.detail}") from None
    # Binary outputs are read-only views of the answer's bytes; callers expect arrays they can modify.
    return {k: v if v.flags.writeable else v.copy() for k, v in decoded.outputs.items()}


def _predict_call(deployment: str, inputs: Mapping[str, Any], binary: bool, version: int | None) -> _Call:
    arrays = {name: np.asarray(value) for name, value in inputs.items()}
    try:
        content, headers = encode_request(arrays, binary=binary, binary_outputs=binary)
    except CodecError as exc:
        raise errors.InvalidInput(f"inputs cannot be sent as V2 tensors: {exc.detail}", field="inputs",
                                  input=exc.input) from None
    path = f"/v2/models/{_seg(deployment)}" + (f"/versions/{int(version)}" if version is not None else "") + "/infer"
    return _Call(method="POST", path=path, content=content, headers=headers, parse=_outputs)


def _ready(response: httpx.Response) -> bool:
    return response.status_code == 200


def _plain(value: Any, field: str) -> Any:
    """``value`` as JSON-ready data: numpy arrays and scalars via ``.tolist()``, byte strings as UTF-8 text."""
    if isinstance(value, np.ndarray | np.generic):
        value = value.tolist()
    if isinstance(value, Mapping):
        return {str(k): _plain(v, field) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v, field) for v in value]
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise errors.InvalidInput(f"{field}: byte strings must be UTF-8 to be sent as JSON",
                                      field=field) from None
    return value


def _json_object(value: Mapping[str, Any], field: str) -> dict[str, Any]:
    """A register argument (``options``, ``sample_input``, …) as a JSON-ready dict; InvalidInput naming ``field``
    for what JSON cannot carry, before anything is sent."""
    import json

    if not isinstance(value, Mapping):
        raise errors.InvalidInput(f"{field}: expected a mapping, got {type(value).__name__}", field=field)
    plain = _plain(value, field)
    try:
        json.dumps(plain, allow_nan=False)  # the server's JSON parser refuses NaN and infinities
    except (TypeError, ValueError) as exc:
        raise errors.InvalidInput(f"{field}: cannot be sent as JSON: {exc}", field=field) from None
    return plain


def _build_args(options: Mapping[str, Any] | None, sample_input: Mapping[str, Any] | None,
                expected_output: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """The build arguments that were given, JSON-ready, by field name."""
    given = {"options": options, "sample_input": sample_input, "expected_output": expected_output}
    return {k: _json_object(v, k) for k, v in given.items() if v is not None}


def _register_fields(name: str, flavor: str, tags: Mapping[str, str] | None, lineage: Mapping[str, Any] | None,
                     alias: str | None, description: str, *, options: Mapping[str, Any] | None = None,
                     sample_input: Mapping[str, Any] | None = None,
                     expected_output: Mapping[str, Any] | None = None) -> dict[str, str]:
    import json

    fields = {"name": name, "flavor": flavor, "description": description}
    if tags:
        fields["tags"] = json.dumps(dict(tags))
    if lineage:
        fields["lineage"] = json.dumps(dict(lineage))
    if alias:
        fields["alias"] = alias
    for key, value in _build_args(options, sample_input, expected_output).items():
        fields[key] = json.dumps(value, allow_nan=False)
    return fields


@contextmanager
def _upload_file(path: str | os.PathLike[str]) -> Iterator[tuple[str, Any]]:
    """``(filename, open file)`` for an upload; a directory (a SavedModel, say) is sent as a zip of itself."""
    source = Path(path).expanduser()
    if not source.exists():
        raise errors.InvalidInput(f"source {str(path)!r} does not exist", field="source")
    if not source.is_dir():
        with source.open("rb") as fh:
            yield source.name, fh
        return
    from modelyard.bundles import zip_dir

    work = Path(tempfile.mkdtemp(prefix="modelyard-upload-"))
    try:
        archive = zip_dir(source, work / f"{source.name or 'model'}.zip")
        with archive.open("rb") as fh:
            yield archive.name, fh
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _Verbs:
    """The request of every verb, independent of how it is sent."""

    @staticmethod
    def register_uri(name: str, uri: str, *, flavor: str, tags: Mapping[str, str] | None,
                     lineage: Mapping[str, Any] | None, alias: str | None, description: str,
                     options: Mapping[str, Any] | None = None, sample_input: Mapping[str, Any] | None = None,
                     expected_output: Mapping[str, Any] | None = None) -> _Call:
        body = {"name": name, "flavor": flavor, "uri": uri, "tags": dict(tags or {}), "lineage": dict(lineage or {}),
                "alias": alias, "description": description,
                **_build_args(options, sample_input, expected_output)}
        return _Call(method="POST", path="/api/v1/models", json=body, slow=True)

    @staticmethod
    def list_models(prefix: str | None, tags: Mapping[str, str] | None, alias: str | None, offset: int,
                    limit: int) -> _Call:
        return _Call(method="GET", path="/api/v1/models",
                     params=_page_params(prefix=prefix, tag=tags, alias=alias, offset=offset, limit=limit))

    @staticmethod
    def get_model(name: str) -> _Call:
        return _Call(method="GET", path=f"/api/v1/models/{_seg(name)}")

    @staticmethod
    def list_versions(name: str, offset: int, limit: int) -> _Call:
        return _Call(method="GET", path=f"/api/v1/models/{_seg(name)}/versions",
                     params=_page_params(offset=offset, limit=limit))

    @staticmethod
    def get_version(ref: str | ModelRef, version: int | None) -> _Call:
        if version is not None:
            ref = ModelRef((ModelRef.parse(ref) if isinstance(ref, str) else ref).name, version=int(version))
        return _Call(method="GET", path=_version_path(ref))

    @staticmethod
    def set_alias(name: str, version: int, alias: str) -> _Call:
        return _Call(method="PUT", path=f"/api/v1/models/{_seg(name)}/aliases/{_seg(alias)}",
                     json={"version": version})

    @staticmethod
    def delete_alias(name: str, alias: str) -> _Call:
        return _Call(method="DELETE", path=f"/api/v1/models/{_seg(name)}/aliases/{_seg(alias)}", parse=_none)

    @staticmethod
    def set_tags(name: str, tags: Mapping[str, str], version: int | None, remove: Iterable[str]) -> _Call:
        return _Call(method="PATCH", path=f"/api/v1/models/{_seg(name)}/tags",
                     json={"tags": dict(tags), "remove": list(remove), "version": version})

    @staticmethod
    def search(prefix: str | None, tags: Mapping[str, str] | None, alias: str | None, flavor: str | None,
               offset: int, limit: int) -> _Call:
        return _Call(method="GET", path="/api/v1/search",
                     params=_page_params(prefix=prefix, tag=tags, alias=alias, flavor=flavor, offset=offset,
                                         limit=limit))

    @staticmethod
    def deploy(model_ref: str, name: str | None, batching: Mapping[str, Any] | None, replicas: int,
               options: Mapping[str, Any] | None) -> _Call:
        body: dict[str, Any] = {"model": str(model_ref), "replicas": replicas}
        if name is not None:
            body["name"] = name
        if batching is not None:
            body["batching"] = dict(batching)
        if options:
            body["options"] = dict(options)
        return _Call(method="POST", path="/api/v1/deployments", json=body, slow=True)

    @staticmethod
    def undeploy(name: str) -> _Call:
        return _Call(method="DELETE", path=f"/api/v1/deployments/{_seg(name)}", parse=_none, slow=True)

    @staticmethod
    def deployments() -> _Call:
        return _Call(method="GET", path="/api/v1/deployments", parse=lambda r: list(r.json()["items"]))

    @staticmethod
    def get_deployment(name: str) -> _Call:
        return _Call(method="GET", path=f"/api/v1/deployments/{_seg(name)}")

    @staticmethod
    def deployment_status(name: str) -> _Call:
        return _Call(method="GET", path=f"/api/v1/deployments/{_seg(name)}/status")

    @staticmethod
    def model_metadata(deployment: str) -> _Call:
        return _Call(method="GET", path=f"/v2/models/{_seg(deployment)}")

    @staticmethod
    def plugins() -> _Call:
        return _Call(method="GET", path="/api/v1/plugins")

    @staticmethod
    def audit(resource: str | None, offset: int, limit: int) -> _Call:
        return _Call(method="GET", path="/api/v1/audit",
                     params=_page_params(resource=resource, offset=offset, limit=limit))

    @staticmethod
    def ready() -> _Call:
        return _Call(method="GET", path="/v2/health/ready", parse=_ready, ok=(503,))


def _settings(url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    url = url or os.environ.get("MODELYARD_SERVER")
    if not url:
        raise errors.InvalidInput("no server URL: pass Client(url=...) or set MODELYARD_SERVER", field="url")
    if "://" not in url:
        url = "http://" + url
    api_key = api_key if api_key is not None else os.environ.get("MODELYARD_API_KEY")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return url.rstrip("/"), headers


def _finish(call: _Call, response: httpx.Response) -> Any:
    if response.is_success or response.status_code in call.ok:
        return call.parse(response)
    raise error_from_response(response)


# ------------------------------------------------------------------------------------------------ clients
class Client:
    """A blocking client for a modelyard server; use it as a context manager or call :meth:`close`.

    Args:
        url: the server's base URL (default ``$MODELYARD_SERVER``), e.g. ``http://127.0.0.1:8000``.
        api_key: sent as ``Authorization: Bearer …`` (default ``$MODELYARD_API_KEY``; none in dev mode).
        timeout: seconds to wait on the network; registrations and deploys get at least
            :data:`SLOW_OPERATION_S` to answer, as they build or load the model first.
        transport: an httpx transport (tests).
    """

    def __init__(self, url: str | None = None, api_key: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        base, headers = _settings(url, api_key)
        self.url = base
        self._timeout = timeout
        self._slow = httpx.Timeout(timeout, read=max(timeout, SLOW_OPERATION_S))
        self._http = httpx.Client(base_url=base, headers=headers, timeout=timeout, transport=transport)

    def _send(self, call: _Call) -> Any:
        response = self._http.request(call.method, call.path, params=call.params, json=call.json,
                                      content=call.content, headers=call.headers,
                                      timeout=self._slow if call.slow else self._timeout)
        return _finish(call, response)

    # --------------------------------------------------------------------------------------- registry
    def register(self, name: str, path: str | os.PathLike[str], *, flavor: str,
                 tags: Mapping[str, str] | None = None, lineage: Mapping[str, Any] | None = None,
                 alias: str | None = None, description: str = "", options: Mapping[str, Any] | None = None,
                 sample_input: Mapping[str, Any] | None = None,
                 expected_output: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Upload a model file (streamed; a directory is zipped first) and register it; the new version.

        ``options`` are the flavor's build options (e.g. torch ``{"input_spec": [...]}``); ``sample_input`` and
        ``expected_output`` map tensor names to arrays for the validation run, as on
        :meth:`Platform.registry.register <modelyard.registry.ModelRegistry.register>`. They travel as JSON:
        numpy arrays go as ``.tolist()`` nested lists, so the server sees JSON's numbers (float64/int64), which
        the flavor casts to the model's input types. Raises :class:`~modelyard.errors.BuildError` (status 422)
        when the model fails to build or validate.
        """
        fields = _register_fields(name, flavor, tags, lineage, alias, description, options=options,
                                  sample_input=sample_input, expected_output=expected_output)
        with _upload_file(path) as (filename, fh):
            response = self._http.post("/api/v1/models", data=fields, files={"file": (filename, fh)},
                                       timeout=self._slow)
        return _finish(_Call(method="POST", path="/api/v1/models"), response)

    def register_uri(self, name: str, uri: str, *, flavor: str, tags: Mapping[str, str] | None = None,
                     lineage: Mapping[str, Any] | None = None, alias: str | None = None,
                     description: str = "", options: Mapping[str, Any] | None = None,
                     sample_input: Mapping[str, Any] | None = None,
                     expected_output: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Register a model the *server* reads from ``uri`` (``s3://…``, ``https://…``, a server-side path);
        ``options``, ``sample_input`` and ``expected_output`` as for :meth:`register`."""
        return self._send(_Verbs.register_uri(name, uri, flavor=flavor, tags=tags, lineage=lineage, alias=alias,
                                              description=description, options=options, sample_input=sample_input,
                                              expected_output=expected_output))

    def list_models(self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None,
                    alias: str | None = None, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """A page of models: ``{"items", "total", "offset", "next_offset"}``."""
        return self._send(_Verbs.list_models(prefix, tags, alias, offset, limit))

    def get_model(self, name: str) -> dict[str, Any]:
        """One model with its tags and aliases."""
        return self._send(_Verbs.get_model(name))

    def list_versions(self, name: str, *, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """A page of a model's versions, newest first."""
        return self._send(_Verbs.list_versions(name, offset, limit))

    def get_version(self, ref: str | ModelRef, version: int | None = None) -> dict[str, Any]:
        """The version ``NAME`` (newest), ``NAME:VERSION`` or ``NAME@ALIAS`` points at."""
        return self._send(_Verbs.get_version(ref, version))

    def set_alias(self, name: str, version: int, alias: str) -> dict[str, Any]:
        """Point ``alias`` at ``version`` of ``name``; the version."""
        return self._send(_Verbs.set_alias(name, version, alias))

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias."""
        return self._send(_Verbs.delete_alias(name, alias))

    def set_tags(self, name: str, tags: Mapping[str, str], *, version: int | None = None,
                 remove: Iterable[str] = ()) -> dict[str, Any]:
        """Set and remove tags on a model or, with ``version``, one version; the updated model or version."""
        return self._send(_Verbs.set_tags(name, tags, version, remove))

    def search(self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None, alias: str | None = None,
               flavor: str | None = None, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """A page of versions across models, newest first."""
        return self._send(_Verbs.search(prefix, tags, alias, flavor, offset, limit))

    # --------------------------------------------------------------------------------------- deployments
    def deploy(self, model_ref: str, *, name: str | None = None, batching: Mapping[str, Any] | None = None,
               replicas: int = 1, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Deploy ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``; returns once it answers predictions."""
        return self._send(_Verbs.deploy(model_ref, name, batching, replicas, options))

    def undeploy(self, name: str) -> None:
        """Take a deployment down."""
        return self._send(_Verbs.undeploy(name))

    def deployments(self) -> list[dict[str, Any]]:
        """Every deployment."""
        return self._send(_Verbs.deployments())

    def get_deployment(self, name: str) -> dict[str, Any]:
        """One deployment."""
        return self._send(_Verbs.get_deployment(name))

    def deployment_status(self, name: str) -> dict[str, Any]:
        """A deployment's record plus ``ready`` and the runtime's live figures (``runtime_status``)."""
        return self._send(_Verbs.deployment_status(name))

    def model_metadata(self, deployment: str) -> dict[str, Any]:
        """The V2 model metadata of a deployment: ``name``, ``versions``, ``platform``, ``inputs``, ``outputs``."""
        return self._send(_Verbs.model_metadata(deployment))

    def predict(self, deployment: str, inputs: Mapping[str, Any], *, binary: bool = True,
                version: int | None = None) -> dict[str, np.ndarray]:
        """Predict over the Open Inference Protocol: arrays in, arrays out.

        ``binary`` sends inputs and asks for outputs as binary tensor data (compact, exact); False uses JSON.
        With ``version`` the server refuses (404) unless the deployment serves that version.
        """
        return self._send(_predict_call(deployment, inputs, binary, version))

    # --------------------------------------------------------------------------------------- system
    def plugins(self) -> dict[str, Any]:
        """The server's plugins and providers (as ``modelyard plugins``)."""
        return self._send(_Verbs.plugins())

    def audit(self, *, resource: str | None = None, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """A page of audit events, newest first."""
        return self._send(_Verbs.audit(resource, offset, limit))

    def ready(self) -> bool:
        """Whether the server serves every recorded deployment (``/v2/health/ready``)."""
        return self._send(_Verbs.ready())

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient:
    """The same verbs as :class:`Client`, as coroutines; use ``async with`` or ``await aclose()``."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        base, headers = _settings(url, api_key)
        self.url = base
        self._timeout = timeout
        self._slow = httpx.Timeout(timeout, read=max(timeout, SLOW_OPERATION_S))
        self._http = httpx.AsyncClient(base_url=base, headers=headers, timeout=timeout, transport=transport)

    async def _send(self, call: _Call) -> Any:
        response = await self._http.request(call.method, call.path, params=call.params, json=call.json,
                                            content=call.content, headers=call.headers,
                                            timeout=self._slow if call.slow else self._timeout)
        return _finish(call, response)

    async def register(self, name: str, path: str | os.PathLike[str], *, flavor: str,
                       tags: Mapping[str, str] | None = None, lineage: Mapping[str, Any] | None = None,
                       alias: str | None = None, description: str = "", options: Mapping[str, Any] | None = None,
                       sample_input: Mapping[str, Any] | None = None,
                       expected_output: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """See :meth:`Client.register`."""
        fields = _register_fields(name, flavor, tags, lineage, alias, description, options=options,
                                  sample_input=sample_input, expected_output=expected_output)
        with _upload_file(path) as (filename, fh):
            response = await self._http.post("/api/v1/models", data=fields, files={"file": (filename, fh)},
                                             timeout=self._slow)
        return _finish(_Call(method="POST", path="/api/v1/models"), response)

    async def register_uri(self, name: str, uri: str, *, flavor: str, tags: Mapping[str, str] | None = None,
                           lineage: Mapping[str, Any] | None = None, alias: str | None = None,
                           description: str = "", options: Mapping[str, Any] | None = None,
                           sample_input: Mapping[str, Any] | None = None,
                           expected_output: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """See :meth:`Client.register_uri`."""
        return await self._send(_Verbs.register_uri(name, uri, flavor=flavor, tags=tags, lineage=lineage,
                                                    alias=alias, description=description, options=options,
                                                    sample_input=sample_input, expected_output=expected_output))

    async def list_models(self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None,
                          alias: str | None = None, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """See :meth:`Client.list_models`."""
        return await self._send(_Verbs.list_models(prefix, tags, alias, offset, limit))

    async def get_model(self, name: str) -> dict[str, Any]:
        """See :meth:`Client.get_model`."""
        return await self._send(_Verbs.get_model(name))

    async def list_versions(self, name: str, *, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """See :meth:`Client.list_versions`."""
        return await self._send(_Verbs.list_versions(name, offset, limit))

    async def get_version(self, ref: str | ModelRef, version: int | None = None) -> dict[str, Any]:
        """See :meth:`Client.get_version`."""
        return await self._send(_Verbs.get_version(ref, version))

    async def set_alias(self, name: str, version: int, alias: str) -> dict[str, Any]:
        """See :meth:`Client.set_alias`."""
        return await self._send(_Verbs.set_alias(name, version, alias))

    async def delete_alias(self, name: str, alias: str) -> None:
        """See :meth:`Client.delete_alias`."""
        return await self._send(_Verbs.delete_alias(name, alias))

    async def set_tags(self, name: str, tags: Mapping[str, str], *, version: int | None = None,
                       remove: Iterable[str] = ()) -> dict[str, Any]:
        """See :meth:`Client.set_tags`."""
        return await self._send(_Verbs.set_tags(name, tags, version, remove))

    async def search(self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None,
                     alias: str | None = None, flavor: str | None = None, offset: int = 0,
                     limit: int = 100) -> dict[str, Any]:
        """See :meth:`Client.search`."""
        return await self._send(_Verbs.search(prefix, tags, alias, flavor, offset, limit))

    async def deploy(self, model_ref: str, *, name: str | None = None, batching: Mapping[str, Any] | None = None,
                     replicas: int = 1, options: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """See :meth:`Client.deploy`."""
        return await self._send(_Verbs.deploy(model_ref, name, batching, replicas, options))

    async def undeploy(self, name: str) -> None:
        """See :meth:`Client.undeploy`."""
        return await self._send(_Verbs.undeploy(name))

    async def deployments(self) -> list[dict[str, Any]]:
        """See :meth:`Client.deployments`."""
        return await self._send(_Verbs.deployments())

    async def get_deployment(self, name: str) -> dict[str, Any]:
        """See :meth:`Client.get_deployment`."""
        return await self._send(_Verbs.get_deployment(name))

    async def deployment_status(self, name: str) -> dict[str, Any]:
        """See :meth:`Client.deployment_status`."""
        return await self._send(_Verbs.deployment_status(name))

    async def model_metadata(self, deployment: str) -> dict[str, Any]:
        """See :meth:`Client.model_metadata`."""
        return await self._send(_Verbs.model_metadata(deployment))

    async def predict(self, deployment: str, inputs: Mapping[str, Any], *, binary: bool = True,
                      version: int | None = None) -> dict[str, np.ndarray]:
        """See :meth:`Client.predict`."""
        return await self._send(_predict_call(deployment, inputs, binary, version))

    async def plugins(self) -> dict[str, Any]:
        """See :meth:`Client.plugins`."""
        return await self._send(_Verbs.plugins())

    async def audit(self, *, resource: str | None = None, offset: int = 0, limit: int = 100) -> dict[str, Any]:
        """See :meth:`Client.audit`."""
        return await self._send(_Verbs.audit(resource, offset, limit))

    async def ready(self) -> bool:
        """See :meth:`Client.ready`."""
        return await self._send(_Verbs.ready())

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    close = aclose

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
