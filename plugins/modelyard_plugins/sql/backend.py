"""``SqlRegistry``: the registry slot on SQLite or PostgreSQL, through SQLAlchemy Core.

Writes run in one transaction each that takes the write lock first (SQLite ``BEGIN IMMEDIATE``; PostgreSQL row
locks), so a failed call changes nothing. A version number comes from the model row's ``latest_version``
counter, bumped by one ``INSERT … ON CONFLICT (name) DO UPDATE SET latest_version = latest_version + 1
RETURNING latest_version`` in the same transaction as the version's insert: two writers — threads or processes,
even two creating the same new model at once — never get the same number, and a failed insert rolls the counter
back, leaving no gap. Transactions that meet a lock or a deadlock are retried a bounded number of times.

Reads load a page of records with one query per table (versions, then their tags, then their aliases), never one
per record, and every filter is served by an index; ``benchmarks/registry.py`` checks the p99 targets.
"""

from __future__ import annotations

import random
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import attrs
import sqlalchemy as sa
import structlog
from modelyard.errors import Conflict, InvalidInput, ModelyardError, NotFound, Unavailable
from modelyard.names import check_alias, check_name
from modelyard.types import (
    MAX_INT,
    AuditEvent,
    Deployment,
    Model,
    ModelRef,
    ModelVersion,
    NewVersion,
    Page,
    ServingState,
    check_tags,
    check_version_number,
    utcnow,
)
from sqlalchemy.dialects import postgresql, sqlite

from modelyard_plugins.sql import engine as eng
from modelyard_plugins.sql import mapping
from modelyard_plugins.sql import migrate as schema
from modelyard_plugins.sql.mapping import VERSION_COLUMNS
from modelyard_plugins.sql.tables import (
    aliases,
    audit,
    deployments,
    model_tags,
    models,
    revisions,
    serving,
    version_tags,
    versions,
)

if TYPE_CHECKING:
    from modelyard.providers import ProviderContext

    from modelyard_plugins.sql.config import SqlConfig

log = structlog.get_logger(__name__)

T = TypeVar("T")

_FLAVOR = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
#: Past the last character a name can have: ``prefix <= name < prefix + _TOP`` selects exactly the names that
#: start with ``prefix``, with no LIKE wildcards to escape, on an index scan.
_TOP = "\U0010ffff"
#: The largest page a listing returns (the facade enforces the same bound).
MAX_LIMIT = 1000


@attrs.define(slots=False)  # no slots: tests inject failures by patching methods on an instance
class SqlRegistry:
    """A :class:`~modelyard.hookspecs.registry.RegistryBackend` on a SQL database.

    Build it with :meth:`from_config` (the provider factory) or :meth:`from_url`; both connect, and migrate the
    schema to the newest revision unless told not to. Safe to share between threads; each process opens its own.
    """

    _engine: sa.Engine = attrs.field(repr=False)
    url: str  # password hidden
    _attempts: int = 8

    # ------------------------------------------------------------------------------------------- building
    @classmethod
    def from_config(cls, config: SqlConfig, ctx: ProviderContext) -> SqlRegistry:
        """The ``sql`` provider's factory: ``config.url``, or SQLite in ``ctx.data_dir``."""
        url = config.url or eng.default_url(ctx.data_dir)
        return cls.from_url(url, pool_size=config.pool_size, echo=config.echo, migrate=config.migrate)

    @classmethod
    def from_url(cls, url: str, *, pool_size: int = 5, echo: bool = False, migrate: bool = True) -> SqlRegistry:
        """Connect to ``url`` and check (or, with ``migrate``, bring up) the schema.

        Raises :class:`~modelyard.errors.Unavailable` for a bad URL, a missing driver, an unreachable database
        or, without ``migrate``, a schema that is not current.
        """
        parsed = eng.parse_url(url)
        shown = eng.redact_url(parsed)
        engine = eng.create_engine(parsed, pool_size=pool_size, echo=echo)
        try:
            if migrate:
                before = schema.upgrade(engine)
                if before != schema.head_revision():
                    log.info("registry schema migrated", url=shown, before=before, after=schema.head_revision())
            else:
                schema.check_current(engine)
        except sa.exc.DBAPIError as exc:
            engine.dispose()
            raise eng.unavailable(exc, shown) from None
        except schema.SchemaError as exc:
            engine.dispose()
            raise Unavailable(f"registry database {shown}: {exc}") from None
        except BaseException:
            engine.dispose()
            raise
        return cls(engine=engine, url=shown)

    def close(self) -> None:
        """Close every pooled connection (idempotent)."""
        self._engine.dispose()

    @property
    def engine(self) -> sa.Engine:
        """The SQLAlchemy engine (for tests and tools; the registry's API is the methods)."""
        return self._engine

    # ------------------------------------------------------------------------------------------- models
    def create_model(self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None) -> Model:
        """Create an empty model; :class:`~modelyard.errors.Conflict` if it exists."""
        name = check_name(name, field="model")
        tags = check_tags(tags)
        description = _text(description, "description")

        def tx(conn: sa.Connection) -> Model:
            if conn.execute(sa.select(models.c.name).where(models.c.name == name)).first() is not None:
                raise Conflict(f"model {name!r} already exists")
            now = utcnow()
            conn.execute(sa.insert(models).values(name=name, description=description, latest_version=0,
                                                  created_at=now, updated_at=now))
            if tags:
                conn.execute(sa.insert(model_tags), [{"model": name, "key": k, "value": v} for k, v in tags.items()])
            return Model(name=name, description=description, tags=tags, created_at=now, updated_at=now)

        return self._run(tx, write=True, what=f"model {name!r}",
                         conflict=lambda: Conflict(f"model {name!r} already exists"))

    def get_model(self, name: str) -> Model:
        """The model with its tags, aliases and latest version number; NotFound if absent."""
        name = check_name(name, field="model")

        def tx(conn: sa.Connection) -> Model:
            row = conn.execute(sa.select(models).where(models.c.name == name)).first()
            if row is None:
                raise NotFound(f"model {name!r} does not exist")
            return mapping.model_from_row(row, self._model_tags(conn, [name])[name],
                                          self._model_aliases(conn, [name])[name])

        return self._run(tx)

    def list_models(self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None,
                    alias: str | None = None, offset: int = 0, limit: int = 100) -> Page[Model]:
        """Models ordered by name, filtered by name prefix, all of ``tags`` and having ``alias``."""
        offset, limit = _page_args(offset, limit)
        source: sa.FromClause = models
        conds = _prefix(models.c.name, prefix)
        for i, (k, v) in enumerate(check_tags(tags).items()):
            t = model_tags.alias(f"mt{i}")
            source = source.join(t, sa.and_(t.c.model == models.c.name, t.c.key == k, t.c.value == v))
        if alias is not None:
            a = aliases.alias("a")
            source = source.join(a, sa.and_(a.c.model == models.c.name, a.c.alias == check_alias(alias)))

        def tx(conn: sa.Connection) -> Page[Model]:
            total = conn.execute(sa.select(sa.func.count()).select_from(source).where(*conds)).scalar_one()
            rows = conn.execute(sa.select(models).select_from(source).where(*conds).order_by(models.c.name)
                                .offset(offset).limit(limit)).all()
            names = [r.name for r in rows]
            tags_of = self._model_tags(conn, names)
            aliases_of = self._model_aliases(conn, names)
            items = [mapping.model_from_row(r, tags_of[r.name], aliases_of[r.name]) for r in rows]
            return _page(items, total, offset)

        return self._run(tx)

    # ------------------------------------------------------------------------------------------- versions
    def create_version(self, new: NewVersion) -> ModelVersion:
        """Create the model if needed and add the next version, atomically (see the module docstring)."""
        if not isinstance(new, NewVersion):
            raise InvalidInput(f"expected a NewVersion, got {type(new).__name__}")
        name = check_name(new.model, field="model")
        if not isinstance(new.flavor, str) or not _FLAVOR.match(new.flavor):
            raise InvalidInput(f"flavor {new.flavor!r} is not valid: expected a lowercase name such as 'onnx'",
                               field="flavor")
        digest, size = new.artifact.digest, new.artifact.size
        if not isinstance(digest, str) or not _DIGEST.match(digest):
            raise InvalidInput(f"artifact digest {digest!r} is not a sha256 hex digest", field="artifact")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInput(f"artifact size {size!r} is not a non-negative integer", field="artifact")
        _text(new.description, "description")
        insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert

        def tx(conn: sa.Connection) -> ModelVersion:
            now = utcnow()
            number = conn.execute(self._bump_counter(name, now)).scalar_one()
            # after the bump on purpose: a value that fails here must roll the counter back (no gaps)
            values = mapping.version_values(new, number, now)
            conn.execute(sa.insert(versions).values(values))
            if new.tags:
                conn.execute(sa.insert(version_tags),
                             [{"model": name, "number": number, "key": k, "value": v} for k, v in new.tags.items()])
            for alias in new.aliases:  # moved in this transaction: a failure leaves neither version nor alias
                stmt = insert(aliases).values(model=name, alias=alias, number=number, updated_at=now)
                conn.execute(stmt.on_conflict_do_update(index_elements=[aliases.c.model, aliases.c.alias],
                                                        set_={"number": number, "updated_at": now}))
            # metadata as JSON stored it, so that this equals what get_version returns later
            return ModelVersion(model=name, number=number, flavor=new.flavor, artifact=new.artifact,
                                signature=new.signature, requirements=new.requirements, tags=new.tags,
                                lineage=new.lineage, metadata=values["metadata"], description=new.description,
                                aliases=tuple(sorted(new.aliases)), created_at=now)

        return self._run(tx, write=True, what=f"new version of model {name!r}")

    def _bump_counter(self, name: str, now: Any) -> sa.ReturningInsert[tuple[int]]:
        """The model row's counter, plus one; creates the model at 1. One statement, so no create race."""
        insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert
        stmt = insert(models).values(name=name, description="", latest_version=1, created_at=now, updated_at=now)
        return stmt.on_conflict_do_update(
            index_elements=[models.c.name],
            set_={"latest_version": models.c.latest_version + 1, "updated_at": now},
        ).returning(models.c.latest_version)

    def get_version(self, name: str, number: int) -> ModelVersion:
        """One version with its tags and aliases; NotFound naming the version (or the model) if absent."""
        name = check_name(name, field="model")
        number = check_version_number(number)
        return self._run(lambda conn: self._version(conn, name, number))

    def resolve(self, ref: ModelRef | str) -> ModelVersion:
        """The version a reference points at: by number, by alias, or the newest."""
        if isinstance(ref, str):
            ref = ModelRef.parse(ref)
        name = check_name(ref.name, field="model")
        if ref.version is not None:
            return self.get_version(name, ref.version)

        if ref.alias is not None:
            alias = check_alias(ref.alias)
            query = (sa.select(*VERSION_COLUMNS).join(aliases, sa.and_(aliases.c.model == versions.c.model,
                                                               aliases.c.number == versions.c.number))
                     .where(aliases.c.model == name, aliases.c.alias == alias))
            missing = f"alias {alias!r} of model {name!r} does not exist"
        else:
            query = sa.select(*VERSION_COLUMNS).where(versions.c.model == name).order_by(versions.c.number.desc()).limit(1)
            missing = f"model {name!r} has no versions yet"

        def tx(conn: sa.Connection) -> ModelVersion:
            row = conn.execute(query).first()
            if row is None:
                self._require_model(conn, name)
                raise NotFound(missing)
            return self._complete([row], conn)[0]

        return self._run(tx)

    def list_versions(self, name: str, *, offset: int = 0, limit: int = 100) -> Page[ModelVersion]:
        """Versions of one model, newest first; NotFound if the model does not exist."""
        name = check_name(name, field="model")
        offset, limit = _page_args(offset, limit)

        def tx(conn: sa.Connection) -> Page[ModelVersion]:
            # Versions are numbered 1..latest_version with no gaps and never deleted, so the counter is the
            # total: one primary-key read instead of counting thousands of index entries per page.
            total = conn.execute(sa.select(models.c.latest_version).where(models.c.name == name)).scalar()
            if total is None:
                raise NotFound(f"model {name!r} does not exist")
            rows = conn.execute(sa.select(*VERSION_COLUMNS).where(versions.c.model == name)
                                .order_by(versions.c.number.desc()).offset(offset).limit(limit)).all()
            return _page(self._complete(rows, conn), total, offset)

        return self._run(tx)

    def search_versions(self, *, prefix: str | None = None, tags: Mapping[str, str] | None = None,
                        alias: str | None = None, flavor: str | None = None, offset: int = 0,
                        limit: int = 100) -> Page[ModelVersion]:
        """Versions across models, ordered by (model, number desc), filtered by model-name prefix, all of the
        version's ``tags``, carrying ``alias``, and ``flavor``."""
        offset, limit = _page_args(offset, limit)
        source: sa.FromClause = versions
        conds = _prefix(versions.c.model, prefix)
        # One join per tag: each matches at most one row (the tag table's key is (model, number, key)), and the
        # planner can drive the query from the index on tag values when a tag is selective.
        for i, (k, v) in enumerate(check_tags(tags).items()):
            t = version_tags.alias(f"vt{i}")
            source = source.join(t, sa.and_(t.c.model == versions.c.model, t.c.number == versions.c.number,
                                            t.c.key == k, t.c.value == v))
        if alias is not None:
            a = aliases.alias("a")
            source = source.join(a, sa.and_(a.c.model == versions.c.model, a.c.number == versions.c.number,
                                            a.c.alias == check_alias(alias)))
        if flavor is not None:
            conds.append(versions.c.flavor == _text(flavor, "flavor"))

        if source is versions and flavor is None:
            # Only a name prefix: every model has exactly latest_version versions (numbered without gaps, never
            # deleted), so summing the counters of the matching models replaces counting every version.
            count = sa.select(sa.func.coalesce(sa.func.sum(models.c.latest_version), 0)).where(
                *_prefix(models.c.name, prefix))
        else:
            count = sa.select(sa.func.count()).select_from(source).where(*conds)

        def tx(conn: sa.Connection) -> Page[ModelVersion]:
            total = int(conn.execute(count).scalar_one())
            rows = conn.execute(sa.select(*VERSION_COLUMNS).select_from(source).where(*conds)
                                .order_by(versions.c.model, versions.c.number.desc())
                                .offset(offset).limit(limit)).all()
            return _page(self._complete(rows, conn), total, offset)

        return self._run(tx)

    # ------------------------------------------------------------------------------------------- aliases, tags
    def set_alias(self, name: str, alias: str, number: int) -> ModelVersion:
        """Point ``alias`` at version ``number`` (moving it if it pointed elsewhere); returns that version."""
        name = check_name(name, field="model")
        alias = check_alias(alias)
        number = check_version_number(number)
        insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert

        def tx(conn: sa.Connection) -> ModelVersion:
            self._require_version(conn, name, number)
            now = utcnow()
            stmt = insert(aliases).values(model=name, alias=alias, number=number, updated_at=now)
            conn.execute(stmt.on_conflict_do_update(index_elements=[aliases.c.model, aliases.c.alias],
                                                    set_={"number": number, "updated_at": now}))
            conn.execute(sa.update(models).where(models.c.name == name).values(updated_at=now))
            return self._version(conn, name, number)

        return self._run(tx, write=True, what=f"alias {alias!r} of model {name!r}")

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove an alias; NotFound naming it (or the model) if it does not exist."""
        name = check_name(name, field="model")
        alias = check_alias(alias)

        def tx(conn: sa.Connection) -> None:
            deleted = conn.execute(sa.delete(aliases).where(aliases.c.model == name, aliases.c.alias == alias))
            if deleted.rowcount == 0:
                self._require_model(conn, name)
                raise NotFound(f"alias {alias!r} of model {name!r} does not exist")
            conn.execute(sa.update(models).where(models.c.name == name).values(updated_at=utcnow()))

        self._run(tx, write=True, what=f"alias {alias!r} of model {name!r}")

    def set_tags(self, name: str, tags: Mapping[str, str], *, number: int | None = None,
                 remove: Iterable[str] = ()) -> None:
        """Add/overwrite tags and remove keys, on the model (``number=None``) or one version.

        Removing a key that is not there is not an error; naming a key in both ``tags`` and ``remove`` is.
        """
        name = check_name(name, field="model")
        tags = check_tags(tags)
        if isinstance(remove, str):
            remove = [remove]
        remove = [_text(k, "remove") for k in remove]
        both = sorted(set(tags) & set(remove))
        if both:
            raise InvalidInput(f"tag {both[0]!r} is both set and removed", field="tags")
        if number is not None:
            number = check_version_number(number)
        insert = postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert

        def tx(conn: sa.Connection) -> None:
            if number is None:
                self._require_model(conn, name)
                table, key = model_tags, {"model": name}
                where = [model_tags.c.model == name]
            else:
                self._require_version(conn, name, number)
                table, key = version_tags, {"model": name, "number": number}
                where = [version_tags.c.model == name, version_tags.c.number == number]
            if remove:
                conn.execute(sa.delete(table).where(*where, table.c.key.in_(remove)))
            if tags:
                stmt = insert(table)
                conn.execute(stmt.on_conflict_do_update(index_elements=[*(table.c[k] for k in key), table.c.key],
                                                        set_={"value": stmt.excluded.value}),
                             [{**key, "key": k, "value": v} for k, v in tags.items()])
            conn.execute(sa.update(models).where(models.c.name == name).values(updated_at=utcnow()))

        self._run(tx, write=True, what=f"tags of model {name!r}")

    def artifact_in_use(self, digest: str) -> bool:
        """Whether any version refers to this artifact digest."""
        digest = _text(digest, "digest")
        return bool(self._run(lambda conn: conn.execute(
            sa.select(sa.exists().where(versions.c.digest == digest))).scalar_one()))

    # ------------------------------------------------------------------------------------------- deployments
    # Deployment records are the desired state. Every write bumps the ``deployments`` revision in the same
    # transaction (serving processes poll it) and writes its audit entry there too: a change whose audit entry
    # cannot be written does not happen.
    def put_deployment(self, deployment: Deployment, *, audit: AuditEvent | None = None) -> Deployment:
        """Create or replace the deployment record of that name; returns it with its new ``generation``."""
        if not isinstance(deployment, Deployment):
            raise InvalidInput(f"expected a Deployment, got {type(deployment).__name__}")
        check_name(deployment.model, field="model")
        mapping.deployment_values(deployment)  # JSON-checks the options before the transaction
        insert = self._insert()

        def tx(conn: sa.Connection) -> Deployment:
            current = conn.execute(sa.select(deployments.c.generation, deployments.c.created_at)
                                   .where(deployments.c.name == deployment.name)).first()
            now = utcnow()
            record = attrs.evolve(deployment, generation=(current[0] if current else 0) + 1,
                                  created_at=current[1] if current else deployment.created_at, updated_at=now)
            values = mapping.deployment_values(record)
            stmt = insert(deployments).values(values)
            conn.execute(stmt.on_conflict_do_update(index_elements=[deployments.c.name],
                                                    set_={k: v for k, v in values.items() if k != "name"}))
            self._bump(conn, "deployments")
            self._audit_in(conn, audit)
            return record

        return self._run(tx, write=True, what=f"deployment {deployment.name!r}")

    def set_deployment_state(self, name: str, generation: int, state: str, message: str = "", *,
                             audit: AuditEvent | None = None) -> bool:
        """Record the outcome of converging to ``generation`` (``ready`` or ``failed`` with ``message``).

        Only when the record is still at that generation (a newer desired state is never overwritten); returns
        whether it was. The generation itself does not change: it counts desired states, not outcomes.
        """
        name = check_name(name, field="deployment")

        def tx(conn: sa.Connection) -> bool:
            changed = conn.execute(
                sa.update(deployments)
                .where(deployments.c.name == name, deployments.c.generation == generation)
                .values(state=state, message=message, updated_at=utcnow())).rowcount
            if changed:
                self._bump(conn, "deployments")
            self._audit_in(conn, audit)
            return bool(changed)

        return self._run(tx, write=True, what=f"deployment {name!r}")

    def get_deployment(self, name: str) -> Deployment:
        """One deployment record; NotFound if absent."""
        name = check_name(name, field="deployment")

        def tx(conn: sa.Connection) -> Deployment:
            row = conn.execute(sa.select(deployments).where(deployments.c.name == name)).first()
            if row is None:
                raise NotFound(f"deployment {name!r} does not exist")
            return mapping.deployment_from_row(row)

        return self._run(tx)

    def list_deployments(self) -> list[Deployment]:
        """All deployment records, by name."""
        return self._run(lambda conn: [mapping.deployment_from_row(r) for r in conn.execute(
            sa.select(deployments).order_by(deployments.c.name))])

    def delete_deployment(self, name: str, *, audit: AuditEvent | None = None) -> None:
        """Delete a deployment record; NotFound if absent."""
        name = check_name(name, field="deployment")

        def tx(conn: sa.Connection) -> None:
            if conn.execute(sa.delete(deployments).where(deployments.c.name == name)).rowcount == 0:
                raise NotFound(f"deployment {name!r} does not exist")
            self._bump(conn, "deployments")
            self._audit_in(conn, audit)

        self._run(tx, write=True, what=f"deployment {name!r}")

    def deployments_revision(self) -> int:
        """The change counter of deployment records: it grows with every write (one cheap read to poll)."""
        return int(self._run(lambda conn: conn.execute(
            sa.select(revisions.c.value).where(revisions.c.name == "deployments")).scalar() or 0))

    def report_serving(self, process: str, states: Iterable[ServingState], *, replace: bool = False) -> None:
        """Upsert what ``process`` serves (one row per deployment); ``replace`` first drops its other rows.

        With no states and ``replace``, the process's rows are removed (it stopped serving).
        """
        rows = [mapping.serving_values(attrs.evolve(s, process=process)) for s in states]
        insert = self._insert()

        def tx(conn: sa.Connection) -> None:
            if replace:
                conn.execute(sa.delete(serving).where(serving.c.process == process))
            for values in rows:
                stmt = insert(serving).values(values)
                conn.execute(stmt.on_conflict_do_update(
                    index_elements=[serving.c.process, serving.c.deployment],
                    set_={k: v for k, v in values.items() if k not in ("process", "deployment")}))

        self._run(tx, write=True, what=f"serving report of {process!r}")

    def forget_serving(self, process: str, deployment: str | None = None) -> None:
        """Remove ``process``'s rows (all, or one deployment's)."""
        conds = [serving.c.process == process]
        if deployment is not None:
            conds.append(serving.c.deployment == deployment)
        self._run(lambda conn: conn.execute(sa.delete(serving).where(*conds)), write=True,
                  what=f"serving report of {process!r}")

    def touch_serving(self, process: str) -> None:
        """The heartbeat: ``seen_at`` of every row of ``process`` becomes now."""
        self._run(lambda conn: conn.execute(sa.update(serving).where(serving.c.process == process)
                                            .values(seen_at=utcnow())), write=True, what="serving heartbeat")

    def list_serving(self, deployment: str | None = None) -> list[ServingState]:
        """Every process's report (for one deployment, or all), by deployment then process."""
        conds = [] if deployment is None else [serving.c.deployment == check_name(deployment, field="deployment")]
        return self._run(lambda conn: [mapping.serving_from_row(r) for r in conn.execute(
            sa.select(serving).where(*conds).order_by(serving.c.deployment, serving.c.process))])

    def _insert(self) -> Any:
        return postgresql.insert if self._engine.dialect.name == "postgresql" else sqlite.insert

    def _bump(self, conn: sa.Connection, name: str) -> None:
        stmt = self._insert()(revisions).values(name=name, value=1)
        conn.execute(stmt.on_conflict_do_update(index_elements=[revisions.c.name],
                                                set_={"value": revisions.c.value + 1}))

    def _audit_in(self, conn: sa.Connection, event: AuditEvent | None) -> None:
        if event is not None:
            conn.execute(sa.insert(audit).values(mapping.audit_values(event)))

    # ------------------------------------------------------------------------------------------- audit
    def record_audit(self, event: AuditEvent) -> None:
        """Append an audit event."""
        if not isinstance(event, AuditEvent):
            raise InvalidInput(f"expected an AuditEvent, got {type(event).__name__}")
        values = mapping.audit_values(event)
        self._run(lambda conn: conn.execute(sa.insert(audit).values(values)), write=True,
                  what=f"audit event {event.action!r}")

    def list_audit(self, *, resource: str | None = None, offset: int = 0, limit: int = 100) -> Page[AuditEvent]:
        """Audit events, newest first, optionally for one resource."""
        offset, limit = _page_args(offset, limit)
        conds = [] if resource is None else [audit.c.resource == _text(resource, "resource")]

        def tx(conn: sa.Connection) -> Page[AuditEvent]:
            total = conn.execute(sa.select(sa.func.count()).select_from(audit).where(*conds)).scalar_one()
            rows = conn.execute(sa.select(audit).where(*conds).order_by(audit.c.id.desc())
                                .offset(offset).limit(limit)).all()
            return _page([mapping.audit_from_row(r) for r in rows], total, offset)

        return self._run(tx)

    # ------------------------------------------------------------------------------------------- internals
    def _run(self, fn: Callable[[sa.Connection], T], *, write: bool = False, what: str = "registry record",
             conflict: Callable[[], ModelyardError] | None = None) -> T:
        """Run ``fn`` in one transaction, retrying transient failures; database errors become modelyard errors.

        A write takes the write lock up front and commits when ``fn`` returns; any exception rolls it back. A
        read's transaction gives ``fn`` one consistent snapshot and is rolled back.
        """
        delay = 0.005
        for attempt in range(1, self._attempts + 1):
            last = attempt == self._attempts
            try:
                with self._engine.connect() as conn:
                    if not write:
                        return fn(conn)
                    conn.execution_options(write=True)
                    with conn.begin():
                        return fn(conn)
            except sa.exc.IntegrityError as exc:
                raise (conflict() if conflict else Conflict(f"{what}: {_first_line(exc)}")) from None
            except sa.exc.DataError as exc:
                raise InvalidInput(f"{what}: {_first_line(exc)}") from None
            except sa.exc.DBAPIError as exc:
                if last or not eng.is_transient(exc):
                    raise eng.unavailable(exc, self.url) from None
            except sa.exc.StatementError as exc:  # raised before the database saw it: a value did not convert
                if isinstance(exc.orig, TypeError | ValueError):
                    raise InvalidInput(f"{what}: a value is not JSON serialisable ({exc.orig})") from None
                raise
            time.sleep(delay * random.uniform(0.5, 1.5))  # jitter, so that retrying writers do not collide again
            delay = min(delay * 2, 0.25)
        raise AssertionError("unreachable")  # pragma: no cover

    def _require_model(self, conn: sa.Connection, name: str) -> None:
        if conn.execute(sa.select(models.c.name).where(models.c.name == name)).first() is None:
            raise NotFound(f"model {name!r} does not exist")

    def _require_version(self, conn: sa.Connection, name: str, number: int) -> None:
        found = conn.execute(sa.select(versions.c.number)
                             .where(versions.c.model == name, versions.c.number == number)).first()
        if found is None:
            self._missing_version(conn, name, number)

    def _missing_version(self, conn: sa.Connection, name: str, number: int) -> NoReturn:
        latest = conn.execute(sa.select(models.c.latest_version).where(models.c.name == name)).scalar()
        if latest is None:
            raise NotFound(f"model {name!r} does not exist")
        raise NotFound(f"version {number} of model {name!r} does not exist (latest: {latest or 'none'})")

    def _version(self, conn: sa.Connection, name: str, number: int) -> ModelVersion:
        row = conn.execute(sa.select(*VERSION_COLUMNS)
                           .where(versions.c.model == name, versions.c.number == number)).first()
        if row is None:
            self._missing_version(conn, name, number)
        return self._complete([row], conn)[0]

    def _complete(self, rows: list[sa.Row[Any]], conn: sa.Connection) -> list[ModelVersion]:
        """Versions for rows, with tags and aliases loaded by one query each for the whole page."""
        if not rows:
            return []
        keys = [(r.model, r.number) for r in rows]
        if len({m for m, _ in keys}) == 1:
            # one model (list_versions, get_version): a range on the primary key beats a tuple IN list
            model, numbers = keys[0][0], [n for _, n in keys]
            tag_where = [version_tags.c.model == model, version_tags.c.number.between(min(numbers), max(numbers))]
            alias_where = [aliases.c.model == model, aliases.c.number.between(min(numbers), max(numbers))]
        else:
            # Not "(model, number) IN (…)": SQLite answers a row-value IN list with a full table scan. Two IN
            # lists are index probes on both databases; the few extra rows they match are dropped below.
            models_in, numbers_in = sorted({m for m, _ in keys}), sorted({n for _, n in keys})
            tag_where = [version_tags.c.model.in_(models_in), version_tags.c.number.in_(numbers_in)]
            alias_where = [aliases.c.model.in_(models_in), aliases.c.number.in_(numbers_in)]
        tags: dict[tuple[str, int], dict[str, str]] = defaultdict(dict)
        # .all(): one fetch for the whole result instead of a driver round trip per row
        for m, n, k, v in conn.execute(sa.select(version_tags.c.model, version_tags.c.number, version_tags.c.key,
                                                 version_tags.c.value).where(*tag_where)).all():
            tags[(m, n)][k] = v
        names: dict[tuple[str, int], list[str]] = defaultdict(list)
        for m, n, a in conn.execute(sa.select(aliases.c.model, aliases.c.number, aliases.c.alias)
                                    .where(*alias_where)).all():
            names[(m, n)].append(a)
        # rows of versions not on the page (matched by the IN lists above) are never looked up
        return [mapping.version_from_row(r, tags.get(k, {}), names.get(k, ()))
                for r, k in zip(rows, keys, strict=True)]

    def _model_tags(self, conn: sa.Connection, names: list[str]) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {n: {} for n in names}
        if names:
            for m, k, v in conn.execute(sa.select(model_tags.c.model, model_tags.c.key, model_tags.c.value)
                                        .where(model_tags.c.model.in_(names))).all():
                out[m][k] = v
        return out

    def _model_aliases(self, conn: sa.Connection, names: list[str]) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {n: {} for n in names}
        if names:
            for m, a, n in conn.execute(sa.select(aliases.c.model, aliases.c.alias, aliases.c.number)
                                        .where(aliases.c.model.in_(names))).all():
                out[m][a] = n
        return out


def _page_args(offset: object, limit: object) -> tuple[int, int]:
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_INT:
        raise InvalidInput(f"offset: expected a non-negative integer up to {MAX_INT}, got {offset!r}",
                           field="offset")
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidInput(f"limit: expected an integer from 1 to {MAX_LIMIT}, got {limit!r}", field="limit")
    return offset, limit


def _page(items: list[T], total: int, offset: int) -> Page[T]:
    end = offset + len(items)
    return Page(items=tuple(items), total=total, offset=offset, next_offset=end if end < total else None)


def _prefix(column: sa.ColumnElement[str], prefix: str | None) -> list[sa.ColumnElement[bool]]:
    if prefix is None or prefix == "":
        return []
    prefix = _text(prefix, "prefix")
    return [column >= prefix, column < prefix + _TOP]


def _text(value: object, field: str) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{field}: expected a string, got {type(value).__name__}", field=field)
    return value


def _first_line(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return (str(orig).strip().splitlines() or [type(orig).__name__])[0]
