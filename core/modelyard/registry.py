"""``platform.registry``: the model registry facade — build, store and record versions as one operation.

The registry *backend* (a provider in the ``registry`` slot) keeps records; this facade adds what spans slots:
a registration runs the flavor's builder, streams the bundle into storage, records the version, audits it and
fires ``modelyard_after_model_registered``. A failed registration leaves registry and storage as they were.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from modelyard.errors import BuildError, InvalidInput
from modelyard.hookspecs.builder import BuildOptions
from modelyard.names import check_alias, check_name
from modelyard.types import (
    MAX_INT,
    Lineage,
    Model,
    ModelRef,
    ModelVersion,
    NewVersion,
    Page,
    check_tags,
    check_version_number,
)

if TYPE_CHECKING:
    from modelyard.platform import Platform

log = structlog.get_logger(__name__)


class ModelRegistry:
    """Register, find, tag and alias model versions. Reads go straight to the backend."""

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
        actor: str = "local",
    ) -> ModelVersion:
        """Build ``source`` with the ``flavor`` builder and record it as the next version of ``name``.

        ``source`` is a local path, an fsspec URL (``s3://…``, ``https://…``) or, for flavors that accept it, an
        in-memory model object. Raises :class:`~modelyard.errors.InvalidInput` for bad arguments and
        :class:`~modelyard.errors.BuildError` when the bundle fails validation; nothing is recorded then.
        """
        with self._audited("models:register", f"models/{name}", actor, flavor=flavor) as details:
            version, bundle = self._register(name, source, flavor=flavor, tags=tags, lineage=lineage, alias=alias,
                                             description=description, sample_input=sample_input,
                                             expected_output=expected_output, options=options)
            details.update(resource=f"models/{name}/versions/{version.number}", digest=version.artifact.digest,
                           pickle_loaded=bool(bundle.metadata.get("pickle_loaded")))
        log.info("model registered", model=name, version=version.number, flavor=flavor,
                 digest=version.artifact.digest)
        self._platform.hook.modelyard_after_model_registered(version=version)
        if alias is not None:
            self._platform.hook.modelyard_after_alias_set(version=version, alias=alias)
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
            bundle = builder.build(
                local,
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

    def set_alias(self, name: str, version: int, alias: str, *, actor: str = "local") -> ModelVersion:
        """Point ``alias`` at ``version`` of ``name``, atomically moving it if it pointed elsewhere.

        The argument order follows the CLI: ``modelyard models alias NAME VERSION ALIAS``.
        """
        check_name(name)
        check_alias(alias)
        number = check_version_number(version)
        with self._audited("models:alias", f"models/{name}/aliases/{alias}", actor, version=number):
            result = self.backend.set_alias(name, alias, number)
        self._platform.hook.modelyard_after_alias_set(version=result, alias=alias)
        return result

    def delete_alias(self, name: str, alias: str, *, actor: str = "local") -> None:
        """Remove an alias."""
        check_name(name)
        check_alias(alias)
        with self._audited("models:unalias", f"models/{name}/aliases/{alias}", actor):
            self.backend.delete_alias(name, alias)

    def set_tags(self, name: str, tags: Mapping[str, str], *, version: int | None = None,
                 remove: Iterable[str] = (), actor: str = "local") -> None:
        """Set and remove tags on a model or, with ``version``, on one version."""
        check_name(name)
        number = check_version_number(version) if version is not None else None
        with self._audited("models:tag", f"models/{name}" + (f"/versions/{number}" if number else ""), actor):
            self.backend.set_tags(name, check_tags(tags), number=number, remove=tuple(remove))

    def create_model(self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None,
                     actor: str = "local") -> Model:
        """Create an empty model (registration creates it implicitly)."""
        with self._audited("models:create", f"models/{name}", actor):
            return self.backend.create_model(check_name(name), description=description, tags=check_tags(tags))

    # ------------------------------------------------------------------------------------------- reads
    def get_model(self, name: str) -> Model:
        """One model with its aliases."""
        return self.backend.get_model(check_name(name))

    def list_models(self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None,
                    alias: str | None = None, offset: int = 0, limit: int = 100) -> Page[Model]:
        """Models by name, filtered by prefix, tags and alias."""
        return self.backend.list_models(prefix=prefix, tags=tags, alias=alias, offset=_offset(offset),
                                        limit=_limit(limit))

    def list_versions(self, name: str, *, offset: int = 0, limit: int = 100) -> Page[ModelVersion]:
        """Versions of ``name``, newest first."""
        return self.backend.list_versions(check_name(name), offset=_offset(offset), limit=_limit(limit))

    def search(self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None, alias: str | None = None,
               flavor: str | None = None, offset: int = 0, limit: int = 100) -> Page[ModelVersion]:
        """Versions across models by name prefix, version tags, alias and flavor."""
        return self.backend.search_versions(prefix=prefix, tags=tags, alias=alias, flavor=flavor,
                                            offset=_offset(offset), limit=_limit(limit))

    def get_version(self, ref: str | ModelRef, version: int | None = None) -> ModelVersion:
        """Resolve ``name``, ``name:3``, ``name@production`` (or ``name`` plus ``version``) to a version."""
        if isinstance(ref, str):
            ref = ModelRef.parse(ref)
        if version is not None:
            ref = ModelRef(ref.name, version=check_version_number(version))
        return self.backend.resolve(ref)

    resolve = get_version

    # ------------------------------------------------------------------------------------------- helpers
    def _localise(self, source: Any, work: Path) -> Any:
        if isinstance(source, str) and "://" in source and not source.startswith("file://"):
            import fsspec

            dest = work / "upload" / Path(source.rstrip("/")).name
            dest.parent.mkdir(parents=True)
            fs, path = fsspec.core.url_to_fs(source)
            try:
                fs.get(path, str(dest), recursive=fs.isdir(path))
            except FileNotFoundError:
                raise InvalidInput(f"source {source!r} does not exist", field="source") from None
            return dest
        if isinstance(source, str | os.PathLike):
            path = Path(str(source).removeprefix("file://")).expanduser()
            if not path.exists():
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
    def _audited(self, action: str, resource: str, actor: str, **details: Any) -> Iterator[dict[str, Any]]:
        """Audit the enclosed action with its outcome — ``ok``, or ``error`` with the error — and re-raise.

        The block may add to the yielded details (e.g. the version number once known); a ``resource`` entry
        it sets replaces the resource (``models/x`` becomes ``models/x/versions/3`` once the number exists).
        """
        try:
            yield details
        except BaseException as exc:
            resource = details.pop("resource", resource)
            self._platform.audit(action, resource, actor, outcome="error",
                                 error=f"{type(exc).__name__}: {exc}"[:500], **details)
            raise
        resource = details.pop("resource", resource)
        self._platform.audit(action, resource, actor, **details)


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
