"""The client SDK: the Platform's verbs over HTTP against a running ``modelyard serve``.

:class:`Client` (blocking) and :class:`AsyncClient` (coroutines) return the same records as the
:class:`~modelyard.platform.Platform` — :class:`~modelyard.types.ModelVersion`, :class:`~modelyard.types.Page`,
:class:`~modelyard.types.Deployment`, … read from the server's JSON with :mod:`modelyard.converter` — and a
Client keeps to :class:`modelyard.api.PlatformAPI`, so code moves between an embedded platform and a server
unchanged (``client.registry`` is the client itself, as ``platform.registry`` holds the Platform's registry
verbs). Predictions go over the Open Inference Protocol (binary tensors by default) and come back as numpy
arrays. A problem-details answer from the server is raised as the matching :mod:`modelyard.errors` exception
carrying the server's detail and HTTP status (``NotFound``, ``InvalidInput``, ``Overloaded`` with
``retry_after``, …).

Each verb is written once, as the request it makes (a :class:`_Verb`); the two clients differ only in how they
send it. The URL defaults to ``$MODELYARD_SERVER`` and the API key to ``$MODELYARD_API_KEY`` (sent as
``Authorization: Bearer …``). httpx is imported here, so ``import modelyard`` alone does not load it.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import re
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar, overload
from urllib.parse import quote

import attrs
import httpx
import numpy as np

from modelyard import errors
from modelyard.converter import from_json, to_json
from modelyard.protocol.v2 import HEADER_LENGTH_HEADER, CodecError, decode_response, encode_request
from modelyard.types import (
    AuditEvent,
    BatchingConfig,
    Deployment,
    Lineage,
    Model,
    ModelRef,
    ModelVersion,
    Page,
    ServingState,
)

__all__ = ["AsyncClient", "Client", "error_from_response"]

#: Slow operations (a registration builds and validates the model, a deploy waits until it answers) get at least
#: this many seconds to answer, whatever the client's ``timeout``.
SLOW_OPERATION_S = 600.0

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")


def _retry_after(body: Mapping[str, Any], response: httpx.Response) -> float | None:
    """Seconds to wait before retrying: the body's exact figure, else the Retry-After header, else None."""
    value = body.get("retry_after")
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    try:
        return float(response.headers["retry-after"])
    except (KeyError, ValueError):
        return None


def error_from_response(response: httpx.Response) -> errors.ModelyardError:
    """The :mod:`modelyard.errors` exception for a failed answer; its ``status`` is the HTTP status.

    The problem ``type`` picks the class (:func:`modelyard.errors.error_class`); an answer that is no problem
    (a proxy's HTML page) is classed by its status.
    """
    status = response.status_code
    body: Any = None
    if "json" in response.headers.get("content-type", ""):
        try:
            body = response.json()
        except ValueError:
            body = None
    by_status = errors.error_class_for_status(status) or errors.ModelyardError
    if not isinstance(body, dict):
        text = response.text.strip()[:300]
        message = f"the server answered {status} {response.reason_phrase}" + (f": {text}" if text else "")
        exc = _error(by_status, message, {}, response)
    else:
        detail = str(body.get("detail") or body.get("error") or response.reason_phrase)
        cls = errors.error_class(str(body.get("type", ""))) or by_status
        exc = _error(cls, detail, body, response)
    exc.status = status  # the instance's status is what the server said, whatever the class default
    return exc


def _error(cls: type[errors.ModelyardError], detail: str, body: Mapping[str, Any],
           response: httpx.Response) -> errors.ModelyardError:
    """``cls`` with what the problem body says beyond its detail: ``input``, ``field``, ``retry_after``."""
    extra = {k: body[k] for k in ("input",) if isinstance(body.get(k), str)}
    retry_after = _retry_after(body, response)
    if cls is errors.Overloaded:
        return errors.Overloaded(detail, retry_after=1.0 if retry_after is None else retry_after, **extra)
    if cls is errors.QuotaExceeded:
        return errors.QuotaExceeded(detail, retry_after=retry_after, **extra)
    if cls is errors.InvalidInput:
        field = body.get("field")
        return errors.InvalidInput(detail, field=field if isinstance(field, str) else None, **extra)
    return cls(detail, **extra)


# ------------------------------------------------------------------------------------------------ answers
def _json_answer(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        raise errors.ModelyardError(f"the server's answer to {response.request.method} {response.request.url.path} "
                                    "is not JSON") from None


def _read(cls: type[T], data: Any, response: httpx.Response) -> T:
    """The record in a server's answer; keys a newer server added are ignored."""
    try:
        return from_json(cls, data, extra="ignore")
    except errors.InvalidInput as exc:  # the server's fault, not the caller's input
        raise errors.ModelyardError(f"the server's answer to {response.request.method} "
                                    f"{response.request.url.path} is not what was expected: {exc}") from None


def _record(cls: type[T]) -> Callable[[httpx.Response], T]:
    return lambda response: _read(cls, _json_answer(response), response)


def _items(cls: type[T], key: str, **fill: Any) -> Callable[[httpx.Response], list[T]]:
    """The records in the list ``key`` of the answer, each with the ``fill`` fields where the answer has none."""
    def parse(response: httpx.Response) -> list[T]:
        data = _json_answer(response)
        items = data.get(key) if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise errors.ModelyardError(f"the server's answer to {response.request.url.path} has no {key!r} list")
        return [_read(cls, {**fill, **item} if isinstance(item, dict) else item, response) for item in items]

    return parse


def _none(_: httpx.Response) -> None:
    return None


def _ready(response: httpx.Response) -> bool:
    return response.status_code == 200


def _outputs(response: httpx.Response) -> dict[str, np.ndarray]:
    try:
        decoded = decode_response(response.content, header_length=response.headers.get(HEADER_LENGTH_HEADER))
    except CodecError as exc:
        raise errors.ModelyardError(f"the server's inference answer could not be decoded: {exc.detail}") from None
    # Binary outputs are read-only views of the answer's bytes; callers expect arrays they can modify.
    return {k: v if v.flags.writeable else v.copy() for k, v in decoded.outputs.items()}


# ------------------------------------------------------------------------------------------------ requests
@attrs.frozen(kw_only=True)
class _Call(Generic[R]):
    """One HTTP request and how to read its answer; shared by the sync and async clients."""

    method: str
    path: str
    parse: Callable[[httpx.Response], R]
    params: Any = None
    json: Any = None
    content: bytes | None = None
    headers: Mapping[str, str] | None = None
    #: Form fields sent as ``multipart/form-data`` with ``upload`` as the ``file`` part (a directory is zipped).
    fields: Mapping[str, str] | None = None
    upload: Path | None = None
    slow: bool = False
    ok: tuple[int, ...] = ()  # non-2xx statuses that are answers, not errors


def _finish(call: _Call[R], response: httpx.Response) -> R:
    if response.is_success or response.status_code in call.ok:
        return call.parse(response)
    raise error_from_response(response)


@contextmanager
def _files(call: _Call[Any]) -> Iterator[dict[str, Any] | None]:
    """The ``files`` of the request: the upload as an open file (a directory as a zip of itself), or None."""
    if call.upload is None:
        yield None
        return
    source = call.upload
    if not source.is_dir():
        with source.open("rb") as fh:
            yield {"file": (source.name, fh)}
        return
    from modelyard.bundles import zip_dir

    work = Path(tempfile.mkdtemp(prefix="modelyard-upload-"))
    try:
        archive = zip_dir(source, work / f"{source.name or 'model'}.zip")
        with archive.open("rb") as fh:
            yield {"file": (archive.name, fh)}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _seg(value: str) -> str:
    """A path segment, percent-encoded (names are validated server-side; this only keeps URLs well-formed)."""
    return quote(str(value), safe="")


def _page_params(**values: Any) -> list[tuple[str, Any]]:
    params: list[tuple[str, Any]] = []
    for key, value in values.items():
        if key == "tag":
            params += [("tag", f"{k}:{v}") for k, v in (value or {}).items()]
        elif value is not None:
            params.append((key, value))
    return params


def _version_path(ref: str | ModelRef) -> str:
    ref = ModelRef.parse(ref) if isinstance(ref, str) else ref
    base = f"/api/v1/models/{_seg(ref.name)}"
    if ref.alias is not None:
        return f"{base}/aliases/{_seg(ref.alias)}"
    return f"{base}/versions/{ref.version if ref.version is not None else 'latest'}"


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
    if not isinstance(value, Mapping):
        raise errors.InvalidInput(f"{field}: expected a mapping, got {type(value).__name__}", field=field)
    plain = _plain(value, field)
    try:
        json.dumps(plain, allow_nan=False)  # the server's JSON parser refuses NaN and infinities
    except (TypeError, ValueError) as exc:
        raise errors.InvalidInput(f"{field}: cannot be sent as JSON: {exc}", field=field) from None
    return plain


_BUILD_ARGS = ("options", "sample_input", "expected_output")


def _registration(name: str, flavor: str, *, tags: Mapping[str, str] | None,
                  lineage: Lineage | Mapping[str, Any] | None, alias: str | None, description: str,
                  options: Mapping[str, Any] | None, sample_input: Mapping[str, Any] | None,
                  expected_output: Mapping[str, Any] | None) -> dict[str, Any]:
    """A registration's fields as JSON data (build arguments checked before anything is sent)."""
    given = dict(zip(_BUILD_ARGS, (options, sample_input, expected_output), strict=True))
    return {"name": name, "flavor": flavor, "tags": dict(tags or {}),
            "lineage": lineage.to_dict() if isinstance(lineage, Lineage) else _plain(dict(lineage or {}), "lineage"),
            "alias": alias, "description": description,
            **{k: _json_object(v, k) for k, v in given.items() if v is not None}}


def _from_uri(uri: str, registration: dict[str, Any]) -> _Call[ModelVersion]:
    return _Call(method="POST", path="/api/v1/models", json={**registration, "uri": uri}, slow=True,
                 parse=_record(ModelVersion))


def _signature(build: Callable[..., Any]) -> inspect.Signature:
    """The verb's signature as callers see it: without ``self``, returning what the request's answer is."""
    sig = inspect.signature(build)
    ret = re.sub(r"^_Call\[(.*)\]$", r"\1", str(sig.return_annotation))
    return sig.replace(parameters=list(sig.parameters.values())[1:], return_annotation=ret)


class _Verb(Generic[P, R]):
    """A verb written once, as the :class:`_Call` it makes; read from a :class:`Client` it sends the request and
    returns the answer, read from an :class:`AsyncClient` it returns a coroutine of the answer."""

    def __init__(self, build: Callable[Concatenate[Any, P], _Call[R]]) -> None:
        self._build = build
        self._signature = _signature(build)
        functools.update_wrapper(self, build)  # type: ignore[arg-type]  # name and docstring, for help()

    @overload
    def __get__(self, client: None, owner: type | None = None) -> Self: ...
    @overload
    def __get__(self, client: Client, owner: type | None = None) -> Callable[P, R]: ...
    @overload
    def __get__(self, client: AsyncClient, owner: type | None = None) -> Callable[P, Awaitable[R]]: ...
    def __get__(self, client: Any, owner: type | None = None) -> Any:
        if client is None:
            return self
        build = self._build

        @functools.wraps(build)
        def verb(*args: Any, **kwargs: Any) -> Any:
            return client._send(build(client, *args, **kwargs))

        verb.__signature__ = self._signature  # type: ignore[attr-defined]
        return verb

    def __call__(self, client: Any, *args: Any, **kwargs: Any) -> Any:
        """``Client.get_model(client, "churn")``: the verb called through the class, as a method can be."""
        return client._send(self._build(client, *args, **kwargs))


class _Verbs:
    """Every verb of the clients, as the request it makes (see :class:`modelyard.api.PlatformAPI`)."""

    @property
    def registry(self) -> Self:
        """The registry's verbs — the client itself (``client.registry.register`` is ``client.register``), as
        ``platform.registry`` is on a Platform."""
        return self

    # --------------------------------------------------------------------------------------- registry
    @_Verb
    def register(self, name: str, source: str | os.PathLike[str], *, flavor: str,
                 tags: Mapping[str, str] | None = None, lineage: Lineage | Mapping[str, Any] | None = None,
                 alias: str | None = None, description: str = "", sample_input: Mapping[str, Any] | None = None,
                 expected_output: Mapping[str, Any] | None = None,
                 options: Mapping[str, Any] | None = None) -> _Call[ModelVersion]:
        """Register ``source`` as the next version of ``name``: a local file is uploaded (streamed; a directory is
        zipped first), a URL (``s3://…``, ``https://…``) is read by the server (:meth:`register_uri`).

        ``options`` are the flavor's build options (e.g. torch ``{"input_spec": [...]}``); ``sample_input`` and
        ``expected_output`` map tensor names to arrays for the validation run, as on
        :meth:`Platform.registry.register <modelyard.registry.ModelRegistry.register>`. They travel as JSON:
        numpy arrays go as ``.tolist()`` nested lists, so the server sees JSON's numbers (float64/int64), which
        the flavor casts to the model's input types. Raises :class:`~modelyard.errors.BuildError` (status 422)
        when the model fails to build or validate.
        """
        text = os.fspath(source)
        registration = _registration(name, flavor, tags=tags, lineage=lineage, alias=alias, description=description,
                                     options=options, sample_input=sample_input, expected_output=expected_output)
        if "://" in text and not text.startswith("file://"):
            return _from_uri(text, registration)
        path = Path(text.removeprefix("file://")).expanduser()
        if not path.exists():
            raise errors.InvalidInput(f"source {text!r} does not exist", field="source")
        # Empty tags, lineage and alias are left out of the form; the build arguments go when given.
        fields = {k: v if isinstance(v, str) else json.dumps(v, allow_nan=False)
                  for k, v in registration.items() if v or k in ("name", "flavor", "description", *_BUILD_ARGS)}
        return _Call(method="POST", path="/api/v1/models", fields=fields, upload=path, slow=True,
                     parse=_record(ModelVersion))

    @_Verb
    def register_uri(self, name: str, uri: str, *, flavor: str, tags: Mapping[str, str] | None = None,
                     lineage: Lineage | Mapping[str, Any] | None = None, alias: str | None = None,
                     description: str = "", options: Mapping[str, Any] | None = None,
                     sample_input: Mapping[str, Any] | None = None,
                     expected_output: Mapping[str, Any] | None = None) -> _Call[ModelVersion]:
        """Register a model the *server* reads from ``uri`` (``s3://…``, ``https://…``, a server-side path in
        dev mode); the other arguments as for :meth:`register`."""
        return _from_uri(uri, _registration(name, flavor, tags=tags, lineage=lineage, alias=alias,
                                            description=description, options=options, sample_input=sample_input,
                                            expected_output=expected_output))

    @_Verb
    def list_models(self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None,
                    alias: str | None = None, offset: int = 0, limit: int = 100) -> _Call[Page[Model]]:
        """A page of models, filtered by name prefix, model tags and alias."""
        return _Call(method="GET", path="/api/v1/models", parse=_record(Page[Model]),
                     params=_page_params(prefix=prefix, tag=tags, alias=alias, offset=offset, limit=limit))

    @_Verb
    def get_model(self, name: str) -> _Call[Model]:
        """One model with its tags and aliases."""
        return _Call(method="GET", path=f"/api/v1/models/{_seg(name)}", parse=_record(Model))

    @_Verb
    def list_versions(self, name: str, *, offset: int = 0, limit: int = 100) -> _Call[Page[ModelVersion]]:
        """A page of a model's versions, newest first."""
        return _Call(method="GET", path=f"/api/v1/models/{_seg(name)}/versions", parse=_record(Page[ModelVersion]),
                     params=_page_params(offset=offset, limit=limit))

    @_Verb
    def get_version(self, ref: str | ModelRef, version: int | None = None) -> _Call[ModelVersion]:
        """The version ``NAME`` (newest), ``NAME:VERSION`` or ``NAME@ALIAS`` (or ``NAME`` plus ``version``) is."""
        if version is not None:
            ref = ModelRef((ModelRef.parse(ref) if isinstance(ref, str) else ref).name, version=int(version))
        return _Call(method="GET", path=_version_path(ref), parse=_record(ModelVersion))

    @_Verb
    def set_alias(self, name: str, version: int, alias: str) -> _Call[ModelVersion]:
        """Point ``alias`` at ``version`` of ``name``; the version."""
        return _Call(method="PUT", path=f"/api/v1/models/{_seg(name)}/aliases/{_seg(alias)}",
                     json={"version": version}, parse=_record(ModelVersion))

    @_Verb
    def delete_alias(self, name: str, alias: str) -> _Call[None]:
        """Remove an alias."""
        return _Call(method="DELETE", path=f"/api/v1/models/{_seg(name)}/aliases/{_seg(alias)}", parse=_none)

    @_Verb
    def set_tags(self, name: str, tags: Mapping[str, str], *, version: int | None = None,
                 remove: Iterable[str] = ()) -> _Call[Model | ModelVersion]:
        """Set and remove tags on a model or, with ``version``, one version; the updated model or version."""
        parse: Callable[[httpx.Response], Model | ModelVersion] = (
            _record(Model) if version is None else _record(ModelVersion))
        return _Call(method="PATCH", path=f"/api/v1/models/{_seg(name)}/tags", parse=parse,
                     json={"tags": dict(tags), "remove": list(remove), "version": version})

    @_Verb
    def search(self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None, alias: str | None = None,
               flavor: str | None = None, offset: int = 0, limit: int = 100) -> _Call[Page[ModelVersion]]:
        """A page of versions across models by name prefix, version tags, alias and flavor, newest first."""
        return _Call(method="GET", path="/api/v1/search", parse=_record(Page[ModelVersion]),
                     params=_page_params(prefix=prefix, tag=tags, alias=alias, flavor=flavor, offset=offset,
                                         limit=limit))

    # --------------------------------------------------------------------------------------- deployments
    @_Verb
    def deploy(self, model_ref: str | ModelRef, *, name: str | None = None,
               batching: BatchingConfig | Mapping[str, Any] | None = None, replicas: int = 1,
               options: Mapping[str, Any] | None = None) -> _Call[Deployment]:
        """Deploy ``NAME``, ``NAME:VERSION`` or ``NAME@ALIAS``; returns once it answers predictions."""
        body: dict[str, Any] = {"model": str(model_ref), "replicas": replicas}
        if name is not None:
            body["name"] = name
        if batching is not None:
            body["batching"] = to_json(batching) if isinstance(batching, BatchingConfig) else dict(batching)
        if options:
            body["options"] = dict(options)
        return _Call(method="POST", path="/api/v1/deployments", json=body, slow=True, parse=_record(Deployment))

    @_Verb
    def undeploy(self, name: str) -> _Call[None]:
        """Take a deployment down."""
        return _Call(method="DELETE", path=f"/api/v1/deployments/{_seg(name)}", parse=_none, slow=True)

    @_Verb
    def deployments(self) -> _Call[list[Deployment]]:
        """Every deployment."""
        return _Call(method="GET", path="/api/v1/deployments", parse=_items(Deployment, "items"))

    @_Verb
    def get_deployment(self, name: str) -> _Call[Deployment]:
        """One deployment."""
        return _Call(method="GET", path=f"/api/v1/deployments/{_seg(name)}", parse=_record(Deployment))

    @_Verb
    def serving(self, name: str) -> _Call[list[ServingState]]:
        """Per live serving process: which version of deployment ``name`` it serves, of which generation, and
        its state."""
        return _Call(method="GET", path=f"/api/v1/deployments/{_seg(name)}",
                     parse=_items(ServingState, "processes", deployment=name))

    @_Verb
    def deployment_status(self, name: str) -> _Call[dict[str, Any]]:
        """A deployment's record as JSON plus ``processes``, ``ready`` and the runtime's live figures
        (``runtime_status``) on the server that answers."""
        return _Call(method="GET", path=f"/api/v1/deployments/{_seg(name)}/status", parse=_json_answer)

    @_Verb
    def model_metadata(self, deployment: str) -> _Call[dict[str, Any]]:
        """The V2 model metadata of a deployment: ``name``, ``versions``, ``platform``, ``inputs``, ``outputs``."""
        return _Call(method="GET", path=f"/v2/models/{_seg(deployment)}", parse=_json_answer)

    @_Verb
    def predict(self, deployment: str, inputs: Mapping[str, Any], *, binary: bool = True,
                version: int | None = None) -> _Call[dict[str, np.ndarray]]:
        """Predict over the Open Inference Protocol: arrays in, arrays out.

        ``binary`` sends inputs and asks for outputs as binary tensor data (compact, exact); False uses JSON.
        With ``version`` the server refuses (404) unless the deployment serves that version.
        """
        arrays = {name: np.asarray(value) for name, value in inputs.items()}
        try:
            content, headers = encode_request(arrays, binary=binary, binary_outputs=binary)
        except CodecError as exc:
            raise errors.InvalidInput(f"inputs cannot be sent as V2 tensors: {exc.detail}", field="inputs",
                                      input=exc.input) from None
        path = (f"/v2/models/{_seg(deployment)}" + (f"/versions/{int(version)}" if version is not None else "")
                + "/infer")
        return _Call(method="POST", path=path, content=content, headers=headers, parse=_outputs)

    # --------------------------------------------------------------------------------------- system
    @_Verb
    def plugins(self) -> _Call[dict[str, Any]]:
        """The server's plugins and providers (as ``modelyard plugins --json``)."""
        return _Call(method="GET", path="/api/v1/plugins", parse=_json_answer)

    @_Verb
    def audit(self, *, resource: str | None = None, offset: int = 0, limit: int = 100) -> _Call[Page[AuditEvent]]:
        """A page of audit events, newest first."""
        return _Call(method="GET", path="/api/v1/audit", parse=_record(Page[AuditEvent]),
                     params=_page_params(resource=resource, offset=offset, limit=limit))

    @_Verb
    def ready(self) -> _Call[bool]:
        """Whether the server serves every recorded deployment (``/v2/health/ready``)."""
        return _Call(method="GET", path="/v2/health/ready", parse=_ready, ok=(503,))


def _settings(url: str | None, api_key: str | None, timeout: float) -> dict[str, Any]:
    """The base URL, headers and timeouts both clients are made with."""
    url = url or os.environ.get("MODELYARD_SERVER")
    if not url:
        raise errors.InvalidInput("no server URL: pass Client(url=...) or set MODELYARD_SERVER", field="url")
    if "://" not in url:
        url = "http://" + url
    api_key = api_key if api_key is not None else os.environ.get("MODELYARD_API_KEY")
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    return {"base_url": url.rstrip("/"), "headers": headers, "timeout": timeout}


def _timeout(call: _Call[Any], timeout: float) -> httpx.Timeout | float:
    return httpx.Timeout(timeout, read=max(timeout, SLOW_OPERATION_S)) if call.slow else timeout


# ------------------------------------------------------------------------------------------------ clients
class Client(_Verbs):
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
        settings = _settings(url, api_key, timeout)
        self.url: str = settings["base_url"]
        self._timeout = timeout
        self._http = httpx.Client(transport=transport, **settings)

    def _send(self, call: _Call[R]) -> R:
        with _files(call) as files:
            response = self._http.request(call.method, call.path, params=call.params, json=call.json,
                                          content=call.content, data=call.fields, files=files, headers=call.headers,
                                          timeout=_timeout(call, self._timeout))
        return _finish(call, response)

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Verbs):
    """The same verbs as :class:`Client`, as coroutines; use ``async with`` or ``await aclose()``."""

    def __init__(self, url: str | None = None, api_key: str | None = None, *, timeout: float = 30.0,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        settings = _settings(url, api_key, timeout)
        self.url: str = settings["base_url"]
        self._timeout = timeout
        self._http = httpx.AsyncClient(transport=transport, **settings)

    async def _send(self, call: _Call[R]) -> R:
        with _files(call) as files:
            response = await self._http.request(call.method, call.path, params=call.params, json=call.json,
                                                content=call.content, data=call.fields, files=files,
                                                headers=call.headers, timeout=_timeout(call, self._timeout))
        return _finish(call, response)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    close = aclose

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
