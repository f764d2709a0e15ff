"""``platform.registry``: the model registry facade — build, store and record versions as one operation.

The registry *backend* (a provider in the ``registry`` slot) keeps records; this facade adds what spans slots:
a registration runs the flavor's builder, streams the bundle into storage, records the version, audits it and
fires ``modelyard_after_model_registered``. A failed registration leaves registry and storage as they were.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from modelyard.errors import BuildError, InvalidInput, Unavailable
from modelyard.events import notify
from modelyard.names import check_alias, check_name
from modelyard.types import (
    MAX_INT,
    BuildOptions,
    Lineage,
    Model,
    ModelRef,
    ModelVersion,
    NewVersion,
    Page,
    Principal,
    check_tags,
    check_version_number,
)

if TYPE_CHECKING:
    from modelyard.platform import Platform

log = structlog.get_logger(__name__)


class ModelRegistry:
    """Register, find, tag and alias model versions.

    Every verb takes ``principal`` (default: the platform's ``local_principal``) and decides through
    ``Platform.require`` before it does anything — ``models:read`` for reads, the verb's own action for writes —
    so a denied call raises :class:`~modelyard.errors.Forbidden` and changes nothing (a denied write leaves one
    ``denied`` audit entry). ``actor=`` is the deprecated way to name who acts. Reads then go straight to the
    backend.
    """

    def __init__(self, platform: Platform) -> None:
        self._platform = platform

    @property
    def backend(self) -> Any:
        """The registry provider's backend (records only)."""
        return self._platform.registry_backend

    # ------------------------------------------------------------------------------------------- writes
    def register(
        self,
        name: str,
        source: str | os.PathLike[str] | Any,
        *,
        flavor: str,
        tags: Mapping[str, str] | None = None,
        lineage: Lineage | Mapping[str, Any] | None = None,
        alias: str | None = None,
        description: str = "",
        sample_input: Mapping[str, Any] | None = None,
        expected_output: Mapping[str, Any] | None = None,
        options: Mapping[str, Any] | None = None,
        principal: Principal | None = None,
        actor: str | None = None,
    ) -> ModelVersion:
        """Build ``source`` with the ``flavor`` builder and record it as the next version of ``name``.

        ``source`` is a local path, an fsspec URL (``s3://…``, ``https://…``) or, for flavors that accept it, an
        in-memory model object. Raises :class:`~modelyard.errors.InvalidInput` for bad arguments (a URL the
        server cannot read included), :class:`~modelyard.errors.BuildError` when the bundle fails validation and
        :class:`~modelyard.errors.Unavailable` ("insufficient storage") when a disk or quota fills on the way;
        nothing is recorded then. Decided as ``models:register`` on ``models/<name>``.
        """
        principal = self._platform._acting(principal, actor)
        check_name(name)  # before deciding: an auth provider only ever sees resources made of valid names
        self._platform.require(principal, "models:register", f"models/{name}")
        try:
            with self._audited("models:register", f"models/{name}", principal, flavor=flavor) as details, \
                    _insufficient_storage():
                version, bundle = self._register(name, source, flavor=flavor, tags=tags, lineage=lineage,
                                                 alias=alias, description=description, sample_input=sample_input,
                                                 expected_output=expected_output, options=options)
                details.update(resource=f"models/{name}/versions/{version.number}",
                               digest=version.artifact.digest,
                               pickle_loaded=bool(bundle.metadata.get("pickle_loaded")))
        except Exception as exc:
            notify(self._platform.hook, "modelyard_on_registration_error", model=name, flavor=flavor, error=exc)
            raise
        log.info("model registered", model=name, version=version.number, flavor=flavor,
                 digest=version.artifact.digest)
        # Observers run after the commit, each on its own: none can turn the registration into an error.
        notify(self._platform.hook, "modelyard_after_model_registered", version=version)
        if alias is not None:
            notify(self._platform.hook, "modelyard_after_alias_set", version=version, alias=alias)
        return version

    def _register(self, name: str, source: Any, *, flavor: str, tags: Mapping[str, str] | None,
                  lineage: Lineage | Mapping[str, Any] | None, alias: str | None, description: str,
                  sample_input: Mapping[str, Any] | None, expected_output: Mapping[str, Any] | None,
                  options: Mapping[str, Any] | None) -> tuple[ModelVersion, Any]:
        check_name(name, field="name")
        tags = check_tags(tags)
        if alias is not None:
            check_alias(alias)
        lin = lineage if isinstance(lineage, Lineage) else Lineage.from_mapping(lineage)
        builder = self._platform.builder(flavor)
        work = Path(tempfile.mkdtemp(prefix="build-", dir=self._platform.tmp_dir))
        try:
            local = self._localise(source, work)
            # Within the platform's build limits: a file upload builds in a child process with a deadline.
            from modelyard.isolation import run_build

            bundle = run_build(
                self._platform, builder, local,
                options=BuildOptions(sample_input=_arrays(sample_input), expected_output=_arrays(expected_output),
                                     options=dict(options or {})),
                workdir=work,
            )
            if not bundle.validation.ok:
                raise BuildError(f"{flavor} bundle for {name!r} failed validation: {bundle.validation.message}")
            artifact = self._platform.storage.put(bundle.artifact)
            metadata = {**dict(bundle.metadata), "validation": {
                "ok": bundle.validation.ok, "input": bundle.validation.input_source,
                "compared_outputs": list(bundle.validation.compared_outputs),
                "max_abs_error": bundle.validation.max_abs_error}}
            new = NewVersion(model=name, flavor=flavor, artifact=artifact, signature=bundle.signature,
                             requirements=bundle.requirements, tags=tags, lineage=lin, metadata=metadata,
                             description=description, aliases=(alias,) if alias is not None else ())
            try:
                version = self.backend.create_version(new)  # the alias moves in the same transaction
            except BaseException:
                self._discard_orphan(artifact.digest)
                raise
            if not self._platform.storage.exists(artifact.digest):
                # A failed registration of the same bytes removed the blob between our put and our commit
                # (it saw no version using it yet): put it back from the bundle we still hold.
                self._platform.storage.put(bundle.artifact)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return version, bundle

    def set_alias(self, name: str, version: int, alias: str, *, principal: Principal | None = None,
                  actor: str | None = None) -> ModelVersion:
        """Point ``alias`` at ``version`` of ``name``, atomically moving it if it pointed elsewhere
        (``models:alias`` on ``models/<name>/aliases/<alias>``).

        The argument order follows the CLI: ``modelyard models alias NAME VERSION ALIAS``.
        """
        principal = self._platform._acting(principal, actor)
        check_name(name)
        check_alias(alias)
        number = check_version_number(version)
        resource = f"models/{name}/aliases/{alias}"
        self._platform.require(principal, "models:alias", resource)
        with self._audited("models:alias", resource, principal, version=number):
            result = self.backend.set_alias(name, alias, number)
        notify(self._platform.hook, "modelyard_after_alias_set", version=result, alias=alias)
        return result

    def delete_alias(self, name: str, alias: str, *, principal: Principal | None = None,
                     actor: str | None = None) -> None:
        """Remove an alias (``models:unalias`` on ``models/<name>/aliases/<alias>``)."""
        principal = self._platform._acting(principal, actor)
        check_name(name)
        check_alias(alias)
        resource = f"models/{name}/aliases/{alias}"
        self._platform.require(principal, "models:unalias", resource)
        with self._audited("models:unalias", resource, principal):
            self.backend.delete_alias(name, alias)

    def set_tags(self, name: str, tags: Mapping[str, str], *, version: int | None = None,
                 remove: Iterable[str] = (), principal: Principal | None = None,
                 actor: str | None = None) -> Model | ModelVersion:
        """Set and remove tags on a model or, with ``version``, on one version; the updated model or version
        (``models:tag`` on ``models/<name>`` or ``models/<name>/versions/<version>``)."""
        principal = self._platform._acting(principal, actor)
        check_name(name)
        number = check_version_number(version) if version is not None else None
        resource = f"models/{name}" + (f"/versions/{number}" if number else "")
        self._platform.require(principal, "models:tag", resource)
        with self._audited("models:tag", resource, principal):
            self.backend.set_tags(name, check_tags(tags), number=number, remove=tuple(remove))
        return self.backend.get_model(name) if number is None else self.backend.get_version(name, number)

    def create_model(self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None,
                     principal: Principal | None = None, actor: str | None = None) -> Model:
        """Create an empty model (registration creates it implicitly); ``models:create`` on ``models/<name>``."""
        principal = self._platform._acting(principal, actor)
        check_name(name)
        self._platform.require(principal, "models:create", f"models/{name}")
        with self._audited("models:create", f"models/{name}", principal):
            return self.backend.create_model(name, description=description, tags=check_tags(tags))

    # ------------------------------------------------------------------------------------------- reads
    def get_model(self, name: str, *, principal: Principal | None = None) -> Model:
        """One model with its aliases (``models:read`` on ``models/<name>``)."""
        self._read(principal, f"models/{check_name(name)}")
        return self.backend.get_model(name)

    def list_models(self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None,
                    alias: str | None = None, offset: int = 0, limit: int = 100,
                    principal: Principal | None = None) -> Page[Model]:
        """Models by name, filtered by prefix, tags and alias (``models:read`` on ``models``)."""
        self._read(principal, "models")
        return self.backend.list_models(prefix=prefix, tags=tags, alias=alias, offset=_offset(offset),
                                        limit=_limit(limit))

    def list_versions(self, name: str, *, offset: int = 0, limit: int = 100,
                      principal: Principal | None = None) -> Page[ModelVersion]:
        """Versions of ``name``, newest first (``models:read`` on ``models/<name>``)."""
        self._read(principal, f"models/{check_name(name)}")
        return self.backend.list_versions(name, offset=_offset(offset), limit=_limit(limit))

    def search(self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None, alias: str | None = None,
               flavor: str | None = None, offset: int = 0, limit: int = 100,
               principal: Principal | None = None) -> Page[ModelVersion]:
        """Versions across models by name prefix, version tags, alias and flavor (``models:read`` on
        ``models``)."""
        self._read(principal, "models")
        return self.backend.search_versions(prefix=prefix, tags=tags, alias=alias, flavor=flavor,
                                            offset=_offset(offset), limit=_limit(limit))

    def get_version(self, ref: str | ModelRef, version: int | None = None, *,
                    principal: Principal | None = None) -> ModelVersion:
        """Resolve ``name``, ``name:3``, ``name@production`` (or ``name`` plus ``version``) to a version
        (``models:read`` on ``models/<name>``)."""
        if isinstance(ref, str):
            ref = ModelRef.parse(ref)
        if version is not None:
            ref = ModelRef(ref.name, version=check_version_number(version))
        self._read(principal, f"models/{check_name(ref.name)}")
        return self.backend.resolve(ref)

    resolve = get_version

    # ------------------------------------------------------------------------------------------- helpers
    def _read(self, principal: Principal | None, resource: str) -> None:
        platform = self._platform
        platform.require(platform.local_principal if principal is None else principal, "models:read", resource)

    def _localise(self, source: Any, work: Path) -> Any:
        """A local path for ``source`` (an in-memory model as it is): a URL is downloaded into ``work`` first.

        Whatever is wrong with the source is the caller's :class:`InvalidInput` naming ``source``: a path or URL
        that does not exist, an unknown URL scheme, a scheme whose fsspec package is not installed (naming it), a
        host that cannot be reached (connecting times out after :data:`REMOTE_CONNECT_TIMEOUT_S`, a stalled
        transfer after :data:`REMOTE_READ_TIMEOUT_S`). A full disk here is not the caller's: it stays an OSError.
        """
        if isinstance(source, str) and "://" in source and not source.startswith("file://"):
            return _download(source, work)
        if isinstance(source, str | os.PathLike):
            try:
                path = Path(str(source).removeprefix("file://")).expanduser()
                exists = path.exists()
            except (OSError, ValueError, RuntimeError) as exc:  # a NUL byte, a name too long, an unknown ~user
                if isinstance(exc, OSError) and exc.errno in NO_SPACE:
                    raise
                raise InvalidInput(f"source {str(source)!r:.200} is not a usable path: {exc}", field="source") from None
            if not exists:
                raise InvalidInput(f"source {str(source)!r} does not exist", field="source")
            return path
        return source

    def _discard_orphan(self, digest: str) -> None:
        try:
            if not self.backend.artifact_in_use(digest):
                self._platform.storage.delete(digest)
        except Exception:  # the original error matters more; an orphan blob is harmless and collectable
            log.warning("could not remove orphan artifact", digest=digest, exc_info=True)

    @contextlib.contextmanager
    def _audited(self, action: str, resource: str, principal: Principal,
                 **details: Any) -> Iterator[dict[str, Any]]:
        """Audit the enclosed action with its outcome — ``ok``, or ``error`` with the error — and re-raise.

        The block may add to the yielded details (e.g. the version number once known); a ``resource`` entry
        it sets replaces the resource (``models/x`` becomes ``models/x/versions/3`` once the number exists).
        """
        try:
            yield details
        except BaseException as exc:
            resource = details.pop("resource", resource)
            self._platform.audit(action, resource, principal, outcome="error",
                                 error=f"{type(exc).__name__}: {exc}"[:500], **details)
            raise
        resource = details.pop("resource", resource)
        self._platform.audit(action, resource, principal, **details)


#: How long connecting to the host of a registration URL may take, and how long a transfer may stall (a large model
#: may take as long as it needs, as long as bytes keep coming).
REMOTE_CONNECT_TIMEOUT_S = 10.0
REMOTE_READ_TIMEOUT_S = 60.0
#: errno values meaning "no space left": the disk (ENOSPC) or the user's quota (EDQUOT).
NO_SPACE = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None)) if code is not None)
#: What to install for a URL scheme whose fsspec implementation is missing, where modelyard has an extra for it.
_EXTRAS = {"s3": "pip install 'modelyard[s3]'", "s3a": "pip install 'modelyard[s3]'"}


@contextlib.contextmanager
def _insufficient_storage() -> Iterator[None]:
    """A full disk or quota anywhere in a registration (download, build, storage) is Unavailable, not a bug."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in NO_SPACE:
            raise
        raise Unavailable(f"insufficient storage: {exc.strerror or 'no space left'} while registering the model; "
                          "free space (or raise the quota) and try again") from exc


def _timeouts(protocol: str) -> dict[str, Any]:
    """fsspec options bounding how long a host that does not answer can hold a registration."""
    if protocol in ("http", "https"):
        try:
            import aiohttp
        except ImportError:  # fsspec's own ImportError names the package
            return {}
        return {"client_kwargs": {"timeout": aiohttp.ClientTimeout(
            total=None, sock_connect=REMOTE_CONNECT_TIMEOUT_S, sock_read=REMOTE_READ_TIMEOUT_S)}}
    if protocol in ("s3", "s3a"):
        return {"config_kwargs": {"connect_timeout": REMOTE_CONNECT_TIMEOUT_S, "read_timeout": REMOTE_READ_TIMEOUT_S,
                                  "retries": {"max_attempts": 2}}}
    return {}


def _download(source: str, work: Path) -> Path:
    """Copy the file or directory at the fsspec URL ``source`` into ``work``; InvalidInput for every way it fails
    but a full local disk."""
    import fsspec

    protocol = source.partition("://")[0].lower()
    try:
        fs, path = fsspec.core.url_to_fs(source, **_timeouts(protocol))
    except ImportError as exc:
        hint = _EXTRAS.get(protocol)
        raise InvalidInput(f"source {source!r}: reading {protocol}:// URLs needs a package that is not installed: "
                           f"{exc}" + (f" ({hint})" if hint else ""), field="source") from None
    except (ValueError, TypeError) as exc:
        if protocol not in fsspec.available_protocols():
            raise InvalidInput(f"source {source!r}: unknown URL scheme {protocol + '://'!r}; use a local file, "
                               "an upload, or a scheme fsspec knows (s3://, gs://, https://, …)",
                               field="source") from None
        raise InvalidInput(f"source {source!r} is not a valid {protocol}:// URL: {exc}", field="source") from None
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", source.rstrip("/").rpartition("/")[2]).lstrip(".") or "download"
    dest = work / "upload" / name[-100:]
    dest.parent.mkdir(parents=True)
    try:
        # http(s) has no directories worth asking for, and asking would fetch the whole body once more.
        recursive = False if protocol in ("http", "https") else fs.isdir(path)
        fs.get(path, str(dest), recursive=recursive)
    except FileNotFoundError:
        raise InvalidInput(f"source {source!r} does not exist", field="source") from None
    except OSError as exc:
        if exc.errno in NO_SPACE:
            raise
        raise InvalidInput(f"source {source!r} could not be read: {type(exc).__name__}: {exc}",
                           field="source") from None
    except MemoryError:
        raise
    except Exception as exc:  # the client library's own errors (aiohttp, botocore, …): the URL is the caller's
        raise InvalidInput(f"source {source!r} could not be read: {type(exc).__name__}: {exc}",
                           field="source") from None
    return dest


def _arrays(value: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if value is None:
        return None
    import numpy as np

    return {k: np.asarray(v) for k, v in value.items()}


def _offset(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_INT:
        raise InvalidInput(f"offset: expected a non-negative integer up to {MAX_INT}, got {value!r}",
                           field="offset")
    return value


def _limit(value: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 1000:
        raise InvalidInput(f"limit: expected an integer from 1 to 1000, got {value!r}", field="limit")
    return value
