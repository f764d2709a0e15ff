"""Conformance kit for the ``registry`` slot: the tests every registry provider must pass.

A registry plugin's test module subclasses :class:`RegistryConformance` and says how to open its backend; pytest
then runs every check below against it::

    # tests/test_my_registry.py
    import functools

    import pytest
    from modelyard.testing.registry import RegistryConformance

    from my_plugin.backend import MyRegistry


    class TestMyRegistry(RegistryConformance):
        @pytest.fixture
        def backend_factory(self, tmp_path):
            # a fresh, empty store for this test; every call opens another backend on it
            return functools.partial(MyRegistry.from_url, f"sqlite:///{tmp_path}/registry.db")

The one fixture to provide, ``backend_factory``, returns a **picklable zero-argument callable** (a
``functools.partial`` of an importable function or classmethod) that opens a new
:class:`~modelyard.hookspecs.registry.RegistryBackend` on **one store that is empty when the test starts** and
shared by every call during that test. The kit calls it in this process (the ``backend`` fixture, closed after
the test) and in separate OS processes started with ``multiprocessing`` *spawn* (the concurrency test), so it
must not rely on state that only exists in the test process. Nothing else is needed: the kit uses only pytest,
hypothesis and modelyard itself, and no fixture from any ``conftest.py``.

What it proves:

- every method of the Protocol: round trips of every field, pagination (``total``, ``next_offset``), filters
  (name prefix taken literally and case-sensitively — ``_`` and ``%`` are not wildcards —, tags ANDed, alias,
  flavor), ordering by code point, and the errors: :class:`~modelyard.errors.NotFound` naming what is missing,
  :class:`~modelyard.errors.Conflict`, :class:`~modelyard.errors.InvalidInput` for bad names, aliases, tags,
  numbers, pagination arguments and metadata that is not JSON-serialisable;
- "a failed call changes nothing": a rejected version leaves no gap, a rejected alias or tag change leaves the
  old state;
- a hypothesis :class:`~hypothesis.stateful.RuleBasedStateMachine` that registers versions, creates models,
  moves and deletes aliases, sets and removes tags and searches, checked step by step against an in-memory model
  (numbers 1..n without gaps, aliases, tags, search and listing results page by page);
- concurrency: :attr:`~RegistryConformance.concurrency_threads` threads sharing one backend and
  :attr:`~RegistryConformance.concurrency_processes` processes with their own, all registering versions of one
  model at once, get exactly the numbers 1..total, no duplicates, no gaps; threads released together on a
  model that does not exist yet (the "two writers create the same new model" race) all succeed; and a
  hypothesis property runs random plans of registrations (with tags and aliases) and alias moves split across
  concurrent threads, then checks numbering, that every alias ends on a version some writer pointed it at, and
  tag search.

The subclass's name must start with ``Test`` for pytest to collect it (``RegistryConformance`` itself is not
collected).

Tune the cost with the class attributes (``state_machine_settings``, ``concurrency_*``,
``versions_per_worker``); deselect a check by overriding it in the subclass with ``pytest.mark.skip`` and a
reason. The stateful test works in a fresh name space per example (model names start with a random prefix),
so the store need not be emptied between hypothesis examples.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import multiprocessing
import pickle
import queue
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ClassVar

import attrs
import hypothesis
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from modelyard.errors import Conflict, InvalidInput, ModelyardError, NotFound
from modelyard.hookspecs.registry import RegistryBackend
from modelyard.types import (
    ArtifactRef,
    AuditEvent,
    BatchingConfig,
    Deployment,
    Lineage,
    ModelRef,
    ModelVersion,
    NewVersion,
    Page,
    ServingState,
    Signature,
    TensorSpec,
)

#: What ``backend_factory`` returns: a picklable callable opening a backend on the test's store.
BackendFactory = Callable[[], RegistryBackend]


# --------------------------------------------------------------------------------------------- helpers
def fake_artifact(seed: object) -> ArtifactRef:
    """An :class:`ArtifactRef` with a real sha256 digest of ``repr(seed)`` (no blob is stored anywhere)."""
    data = repr(seed).encode()
    return ArtifactRef(digest=hashlib.sha256(data).hexdigest(), size=len(data))


def new_version(model: str, *, flavor: str = "onnx", tags: Mapping[str, str] | None = None,
                artifact: ArtifactRef | None = None, **fields: Any) -> NewVersion:
    """A :class:`NewVersion` with a fake artifact; ``fields`` sets any other field."""
    return NewVersion(model=model, flavor=flavor, artifact=artifact or fake_artifact((model, uuid.uuid4().hex)),
                      tags=dict(tags or {}), **fields)


def all_pages(fetch: Callable[[int], Any]) -> tuple[list[Any], int]:
    """Follow ``next_offset`` from offset 0; checks every page's bookkeeping; returns (items, total)."""
    items: list[Any] = []
    offset = 0
    total = None
    while True:
        page = fetch(offset)
        assert page.offset == offset, f"page.offset {page.offset} != requested {offset}"
        if total is None:
            total = page.total
        assert page.total == total, "total changed between pages"
        items.extend(page.items)
        if page.next_offset is None:
            assert len(items) == total or (not page.items and offset >= total), \
                f"last page ends at {len(items)} items, total says {total}"
            return items, total
        assert page.items, "a page with next_offset must not be empty"
        assert page.next_offset == offset + len(page.items), "next_offset must follow the page's last item"
        offset = page.next_offset


def _process_writer(factory: BackendFactory, model: str, count: int, tag: str, ready: Any, go: Any,
                    results: Any) -> None:
    """Body of a writer process in the concurrency test (module level, so spawn can import it)."""
    try:
        backend = factory()
    except BaseException:
        results.put((tag, None, traceback.format_exc()))
        ready.set()
        return
    try:
        ready.set()
        if not go.wait(300):
            raise TimeoutError("the test never said go")
        numbers = [backend.create_version(new_version(model, metadata={"writer": tag, "i": i})).number
                   for i in range(count)]
        results.put((tag, numbers, None))
    except BaseException:
        results.put((tag, None, traceback.format_exc()))
    finally:
        backend.close()


# --------------------------------------------------------------------------------------------- the suite
class RegistryConformance:
    """Subclass as ``TestSomething`` and override the :meth:`backend_factory` fixture (see the module doc)."""

    #: Settings of the stateful test; raise ``max_examples`` for a deeper run.
    state_machine_settings: ClassVar[settings] = settings(
        max_examples=20, stateful_step_count=20, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    #: Threads sharing the test's backend in the concurrency test.
    concurrency_threads: ClassVar[int] = 4
    #: OS processes (spawned), each with its own backend from ``backend_factory``; at least 2.
    concurrency_processes: ClassVar[int] = 2
    #: Versions each thread and each process registers.
    versions_per_worker: ClassVar[int] = 25
    #: Seconds a spawned process may take to import and open its backend.
    process_start_timeout: ClassVar[float] = 120.0

    @pytest.fixture
    def backend_factory(self) -> BackendFactory:
        """Override: a picklable zero-argument callable opening a backend on this test's fresh, empty store."""
        raise NotImplementedError(f"{type(self).__name__} must override the backend_factory fixture: see "
                                  "the docstring of modelyard.testing.registry")

    @pytest.fixture
    def backend(self, backend_factory: BackendFactory) -> Iterator[RegistryBackend]:
        """The backend under test, closed afterwards."""
        backend = backend_factory()
        try:
            yield backend
        finally:
            backend.close()

    # ------------------------------------------------------------------------------------------- protocol
    def test_satisfies_the_protocol(self, backend: RegistryBackend) -> None:
        """Every method of :class:`RegistryBackend` is there."""
        assert isinstance(backend, RegistryBackend)

    def test_store_starts_empty(self, backend: RegistryBackend) -> None:
        """The factory hands each test an empty store (the rest of the kit relies on it)."""
        assert backend.list_models().total == 0
        assert backend.search_versions().total == 0
        assert backend.list_deployments() == []
        assert backend.list_audit().total == 0

    def test_backends_from_the_factory_share_the_store(self, backend: RegistryBackend,
                                                       backend_factory: BackendFactory) -> None:
        """What one backend writes, another opened by the factory reads (the process test relies on it)."""
        backend.create_version(new_version("shared"))
        other = backend_factory()
        try:
            assert other.get_model("shared").latest_version == 1
            assert other.create_version(new_version("shared")).number == 2
        finally:
            other.close()
        assert backend.get_model("shared").latest_version == 2

    # ------------------------------------------------------------------------------------------- models
    def test_create_and_get_model(self, backend: RegistryBackend) -> None:
        """A new model has no versions and no aliases, and keeps its description and tags."""
        created = backend.create_model("churn", description="who leaves", tags={"team": "growth"})
        got = backend.get_model("churn")
        assert got == created
        assert (got.name, got.description, dict(got.tags)) == ("churn", "who leaves", {"team": "growth"})
        assert got.latest_version == 0 and dict(got.aliases) == {}
        assert got.created_at.tzinfo is not None and got.updated_at >= got.created_at

    def test_create_model_twice_is_a_conflict(self, backend: RegistryBackend) -> None:
        """A second create_model names the model in a Conflict and changes nothing."""
        backend.create_model("churn", description="first")
        with pytest.raises(Conflict, match="churn"):
            backend.create_model("churn", description="second")
        assert backend.get_model("churn").description == "first"

    def test_missing_model_is_not_found(self, backend: RegistryBackend) -> None:
        """Every read of a missing model raises NotFound naming it."""
        calls: list[Callable[[], Any]] = [
            lambda: backend.get_model("ghost"),
            lambda: backend.get_version("ghost", 1),
            lambda: backend.list_versions("ghost"),
            lambda: backend.resolve(ModelRef("ghost")),
            lambda: backend.resolve(ModelRef("ghost", alias="production")),
            lambda: backend.resolve(ModelRef("ghost", version=1)),
            lambda: backend.set_alias("ghost", "production", 1),
            lambda: backend.delete_alias("ghost", "production"),
            lambda: backend.set_tags("ghost", {"a": "b"}),
            lambda: backend.set_tags("ghost", {"a": "b"}, number=1),
        ]
        for call in calls:
            with pytest.raises(NotFound, match="ghost"):
                call()

    def test_invalid_arguments_are_invalid_input(self, backend: RegistryBackend) -> None:
        """Bad names, aliases, tags, numbers and pagination arguments raise InvalidInput, before any change."""
        backend.create_version(new_version("ok"))
        calls: list[Callable[[], Any]] = [
            lambda: backend.create_model("bad name"),
            lambda: backend.create_model("../etc"),
            lambda: backend.get_model("a/b"),
            lambda: backend.create_version(new_version("no spaces")),
            lambda: backend.get_version("ok", 0),
            lambda: backend.get_version("ok", -3),
            lambda: backend.set_alias("ok", "latest", 1),
            lambda: backend.set_alias("ok", "1st", 1),
            lambda: backend.set_alias("ok", "has space", 1),
            lambda: backend.set_tags("ok", {"bad key": "x"}),
            lambda: backend.set_tags("ok", {"k": "v"}, remove=["k"]),
            lambda: backend.list_versions("ok", offset=-1),
            lambda: backend.list_versions("ok", limit=0),
            lambda: backend.list_models(limit=-5),
            lambda: backend.search_versions(offset=-1),
            lambda: backend.list_audit(limit=0),
        ]
        for call in calls:
            with pytest.raises(InvalidInput):
                call()
        assert backend.get_model("ok").latest_version == 1
        assert backend.list_models().total == 1

    # ------------------------------------------------------------------------------------------- versions
    def test_create_version_round_trips_every_field(self, backend: RegistryBackend) -> None:
        """What create_version returns is what get_version, resolve and list_versions return later."""
        signature = Signature(inputs=(TensorSpec("float_input", "FP32", (-1, 20)),),
                              outputs=(TensorSpec("label", "INT64", (-1,)), TensorSpec("prob", "FP32", (-1, 2))))
        # "dataset" in extra is a trap for backends that store Lineage.to_dict() and read it with from_mapping
        lineage = Lineage(source_run="run-42", datasets=("s3://data/train.parquet",), code_ref="git:abc123",
                          parent_version=None, extra={"notebook": "train.ipynb", "dataset": "not-a-dataset"})
        new = new_version("churn", flavor="onnx", tags={"team": "growth", "stage": "candidate"},
                          artifact=fake_artifact("churn-1"), signature=signature,
                          requirements=("onnxruntime>=1.18", "numpy"), lineage=lineage,
                          metadata={"validation": {"ok": True, "max_abs_error": 1.5e-7, "outputs": ["label"]},
                                    "rows": 3, "note": None},
                          description="first cut")
        created = backend.create_version(new)
        assert created.number == 1 and created.model == "churn"
        assert created.artifact == new.artifact and created.signature == signature
        assert created.requirements == ("onnxruntime>=1.18", "numpy")
        assert created.lineage == lineage and dict(created.tags) == {"team": "growth", "stage": "candidate"}
        assert created.metadata["validation"]["max_abs_error"] == 1.5e-7 and created.metadata["note"] is None
        assert created.description == "first cut" and created.aliases == ()
        assert created.created_at.tzinfo is not None
        assert abs(created.created_at - dt.datetime.now(dt.UTC)) < dt.timedelta(minutes=5)
        assert backend.get_version("churn", 1) == created
        assert backend.resolve(ModelRef("churn", version=1)) == created
        assert backend.resolve(ModelRef("churn")) == created
        assert backend.list_versions("churn").items == (created,)
        model = backend.get_model("churn")
        assert model.latest_version == 1 and dict(model.tags) == {}  # version tags are not model tags

    def test_create_version_moves_its_aliases_in_the_same_step(self, backend: RegistryBackend) -> None:
        first = backend.create_version(new_version("aliased", aliases=("production",)))
        assert first.aliases == ("production",)
        assert backend.resolve(ModelRef("aliased", alias="production")).number == first.number
        second = backend.create_version(new_version("aliased", aliases=("production", "canary")))
        assert second.aliases == ("canary", "production")
        assert dict(backend.get_model("aliased").aliases) == {"canary": second.number, "production": second.number}
        assert backend.get_version("aliased", first.number).aliases == ()

    def test_numbers_count_from_one_per_model(self, backend: RegistryBackend) -> None:
        """Numbers are 1, 2, 3 … for each model separately; create_version creates the model."""
        numbers = [backend.create_version(new_version(m)).number for m in ("a", "b", "a", "a", "b")]
        assert numbers == [1, 1, 2, 3, 2]
        assert backend.get_model("a").latest_version == 3
        assert backend.get_model("b").latest_version == 2

    def test_create_version_on_an_empty_model(self, backend: RegistryBackend) -> None:
        """A model made by create_model gets version 1 and keeps its description and tags."""
        backend.create_model("empty", description="d", tags={"k": "v"})
        assert backend.create_version(new_version("empty")).number == 1
        model = backend.get_model("empty")
        assert (model.latest_version, model.description, dict(model.tags)) == (1, "d", {"k": "v"})

    def test_failed_create_version_leaves_no_gap(self, backend: RegistryBackend) -> None:
        """Metadata that JSON cannot store is InvalidInput, and the next version still gets the next number."""
        backend.create_version(new_version("churn"))
        with pytest.raises(InvalidInput):
            backend.create_version(new_version("churn", metadata={"model": object()}))
        with pytest.raises(InvalidInput):
            backend.create_version(new_version("other", metadata={"nan": float("nan")}))
        assert backend.create_version(new_version("churn")).number == 2
        assert [v.number for v in backend.list_versions("churn").items] == [2, 1]
        with pytest.raises(NotFound):  # the failed first version of a new model created nothing
            backend.get_model("other")

    def test_missing_version_is_not_found(self, backend: RegistryBackend) -> None:
        """NotFound names the version number and the model."""
        backend.create_version(new_version("churn"))
        for call in (lambda: backend.get_version("churn", 7), lambda: backend.resolve(ModelRef("churn", version=7)),
                     lambda: backend.set_alias("churn", "production", 7),
                     lambda: backend.set_tags("churn", {"a": "b"}, number=7)):
            with pytest.raises(NotFound, match="churn") as info:
                call()
            assert "7" in str(info.value)

    def test_resolve(self, backend: RegistryBackend) -> None:
        """By number, by alias, newest; a missing alias and a model with no versions are NotFound."""
        for _ in range(3):
            backend.create_version(new_version("churn"))
        backend.set_alias("churn", "production", 2)
        assert backend.resolve(ModelRef("churn")).number == 3
        assert backend.resolve(ModelRef("churn", version=1)).number == 1
        assert backend.resolve(ModelRef.parse("churn@production")).number == 2
        with pytest.raises(NotFound, match="staging"):
            backend.resolve(ModelRef("churn", alias="staging"))
        backend.create_model("empty")
        with pytest.raises(NotFound, match="empty"):
            backend.resolve(ModelRef("empty"))

    def test_list_versions_pages_newest_first(self, backend: RegistryBackend) -> None:
        """Newest first; total and next_offset; tags and aliases filled on every item."""
        for i in range(1, 6):
            backend.create_version(new_version("churn", tags={"i": str(i)}))
        backend.create_version(new_version("other"))
        backend.set_alias("churn", "production", 4)
        page = backend.list_versions("churn", limit=2)
        assert [v.number for v in page.items] == [5, 4]
        assert (page.total, page.offset, page.next_offset) == (5, 0, 2)
        assert page.items[1].aliases == ("production",) and page.items[0].aliases == ()
        assert [dict(v.tags) for v in page.items] == [{"i": "5"}, {"i": "4"}]
        last = backend.list_versions("churn", offset=4, limit=2)
        assert [v.number for v in last.items] == [1] and last.next_offset is None and last.total == 5
        beyond = backend.list_versions("churn", offset=10)
        assert beyond.items == () and beyond.total == 5 and beyond.next_offset is None
        items, total = all_pages(lambda o: backend.list_versions("churn", offset=o, limit=2))
        assert [v.number for v in items] == [5, 4, 3, 2, 1] and total == 5
        backend.create_model("empty")
        assert backend.list_versions("empty").total == 0

    def test_artifact_in_use(self, backend: RegistryBackend) -> None:
        """True exactly for digests some version refers to."""
        art = fake_artifact("shared-blob")
        assert not backend.artifact_in_use(art.digest)
        backend.create_version(new_version("a", artifact=art))
        backend.create_version(new_version("b", artifact=art))
        assert backend.artifact_in_use(art.digest)
        assert not backend.artifact_in_use(fake_artifact("other").digest)

    # ------------------------------------------------------------------------------------------- aliases
    def test_set_alias_moves_it(self, backend: RegistryBackend) -> None:
        """An alias points at one version at a time; moving it updates both versions and the model."""
        for _ in range(3):
            backend.create_version(new_version("churn"))
        first = backend.set_alias("churn", "production", 1)
        assert first.number == 1 and first.aliases == ("production",)
        backend.set_alias("churn", "staging", 3)
        moved = backend.set_alias("churn", "production", 2)
        assert moved.number == 2 and moved.aliases == ("production",)
        assert backend.get_version("churn", 1).aliases == ()
        assert dict(backend.get_model("churn").aliases) == {"production": 2, "staging": 3}
        backend.set_alias("churn", "staging", 2)
        assert backend.get_version("churn", 2).aliases == ("production", "staging")
        assert backend.set_alias("churn", "production", 2).number == 2  # setting it again is harmless

    def test_aliases_are_per_model(self, backend: RegistryBackend) -> None:
        """The same alias on two models points at each model's own version."""
        backend.create_version(new_version("a"))
        backend.create_version(new_version("b"))
        backend.create_version(new_version("b"))
        backend.set_alias("a", "production", 1)
        backend.set_alias("b", "production", 2)
        assert backend.resolve(ModelRef("a", alias="production")).number == 1
        assert backend.resolve(ModelRef("b", alias="production")).number == 2

    def test_set_alias_to_a_missing_version_changes_nothing(self, backend: RegistryBackend) -> None:
        """NotFound names the version; the alias keeps pointing where it did."""
        backend.create_version(new_version("churn"))
        backend.set_alias("churn", "production", 1)
        with pytest.raises(NotFound, match="2"):
            backend.set_alias("churn", "production", 2)
        assert dict(backend.get_model("churn").aliases) == {"production": 1}

    def test_delete_alias(self, backend: RegistryBackend) -> None:
        """Deleting removes it everywhere; deleting again is NotFound naming the alias."""
        backend.create_version(new_version("churn"))
        backend.set_alias("churn", "production", 1)
        backend.delete_alias("churn", "production")
        assert dict(backend.get_model("churn").aliases) == {}
        assert backend.get_version("churn", 1).aliases == ()
        with pytest.raises(NotFound, match="production"):
            backend.delete_alias("churn", "production")
        with pytest.raises(NotFound, match="production"):
            backend.resolve(ModelRef("churn", alias="production"))

    # ------------------------------------------------------------------------------------------- tags
    def test_set_tags_on_models_and_versions(self, backend: RegistryBackend) -> None:
        """Set, overwrite and remove, on the model and on one version independently."""
        backend.create_version(new_version("churn", tags={"stage": "candidate"}))
        backend.create_version(new_version("churn"))
        backend.set_tags("churn", {"team": "growth", "tier": "1"})
        backend.set_tags("churn", {"tier": "2"}, remove=["team", "never-set"])
        assert dict(backend.get_model("churn").tags) == {"tier": "2"}
        backend.set_tags("churn", {"stage": "approved", "reviewed": "yes"}, number=1)
        backend.set_tags("churn", {}, number=1, remove=["reviewed"])
        assert dict(backend.get_version("churn", 1).tags) == {"stage": "approved"}
        assert dict(backend.get_version("churn", 2).tags) == {}
        assert dict(backend.get_model("churn").tags) == {"tier": "2"}

    def test_rejected_tag_change_changes_nothing(self, backend: RegistryBackend) -> None:
        """An invalid tag in a batch rejects the whole batch."""
        backend.create_version(new_version("churn", tags={"a": "1"}))
        with pytest.raises(InvalidInput):
            backend.set_tags("churn", {"b": "2", "bad key": "3"}, number=1, remove=["a"])
        assert dict(backend.get_version("churn", 1).tags) == {"a": "1"}

    # ------------------------------------------------------------------------------------------- listing
    def test_list_models_filters_and_pages(self, backend: RegistryBackend) -> None:
        """Ordered by name; prefix, tags (all must match) and alias; items carry aliases and latest_version."""
        for name, tags in [("churn", {"team": "growth", "tier": "1"}), ("churn-eu", {"team": "growth"}),
                           ("fraud", {"team": "risk", "tier": "1"}), ("ranker", {})]:
            backend.create_model(name, tags=tags)
        backend.create_version(new_version("churn"))
        backend.create_version(new_version("churn"))
        backend.set_alias("churn", "production", 2)
        backend.create_version(new_version("fraud"))
        backend.set_alias("fraud", "staging", 1)

        def names(**kw: Any) -> list[str]:
            items, _ = all_pages(lambda o: backend.list_models(offset=o, limit=2, **kw))
            return [m.name for m in items]

        assert names() == ["churn", "churn-eu", "fraud", "ranker"]
        assert names(prefix="churn") == ["churn", "churn-eu"]
        assert names(tags={"team": "growth"}) == ["churn", "churn-eu"]
        assert names(tags={"team": "growth", "tier": "1"}) == ["churn"]
        assert names(tags={"tier": "1"}) == ["churn", "fraud"]
        assert names(tags={"team": "nobody"}) == []
        assert names(alias="production") == ["churn"]
        assert names(alias="staging", tags={"tier": "1"}) == ["fraud"]
        page = backend.list_models(limit=3)
        assert (page.total, page.next_offset, len(page.items)) == (4, 3, 3)
        churn = page.items[0]
        assert churn.latest_version == 2 and dict(churn.aliases) == {"production": 2}
        assert dict(churn.tags) == {"team": "growth", "tier": "1"}

    def test_search_versions_filters_and_pages(self, backend: RegistryBackend) -> None:
        """Ordered by (model, number desc); prefix, version tags (all), alias and flavor combine."""
        backend.create_version(new_version("churn", tags={"team": "growth", "stage": "prod"}))
        backend.create_version(new_version("churn", flavor="torch", tags={"team": "growth"}))
        backend.create_version(new_version("churn-eu", tags={"team": "risk"}))
        backend.create_version(new_version("fraud", tags={"team": "growth", "stage": "prod"}))
        backend.create_version(new_version("fraud", flavor="sklearn"))
        backend.set_alias("churn", "production", 1)
        backend.set_alias("fraud", "production", 2)

        def found(**kw: Any) -> list[tuple[str, int]]:
            items, total = all_pages(lambda o: backend.search_versions(offset=o, limit=2, **kw))
            assert total == len(items)
            return [(v.model, v.number) for v in items]

        assert found() == [("churn", 2), ("churn", 1), ("churn-eu", 1), ("fraud", 2), ("fraud", 1)]
        assert found(prefix="churn") == [("churn", 2), ("churn", 1), ("churn-eu", 1)]
        assert found(prefix="churn-") == [("churn-eu", 1)]
        assert found(tags={"team": "growth"}) == [("churn", 2), ("churn", 1), ("fraud", 1)]
        assert found(tags={"team": "growth", "stage": "prod"}) == [("churn", 1), ("fraud", 1)]
        assert found(flavor="torch") == [("churn", 2)]
        assert found(alias="production") == [("churn", 1), ("fraud", 2)]
        assert found(alias="production", tags={"stage": "prod"}) == [("churn", 1)]
        assert found(prefix="fraud", flavor="onnx") == [("fraud", 1)]
        assert found(alias="staging") == []
        hit = backend.search_versions(alias="production", limit=1).items[0]
        assert hit.aliases == ("production",) and dict(hit.tags) == {"team": "growth", "stage": "prod"}

    def test_prefix_is_literal_and_case_sensitive(self, backend: RegistryBackend) -> None:
        """``_`` and ``%`` in a prefix are characters, not wildcards; ``a`` does not match ``A``."""
        for name in ("a_b", "axb", "a.b", "A_b", "ab"):
            backend.create_version(new_version(name))

        def models(prefix: str) -> list[str]:
            return [m.name for m in backend.list_models(prefix=prefix).items]

        def versions(prefix: str) -> list[str]:
            return [v.model for v in backend.search_versions(prefix=prefix).items]

        for listing in (models, versions):
            assert listing("a_") == ["a_b"]
            assert listing("a") == ["a.b", "a_b", "ab", "axb"]
            assert listing("A") == ["A_b"]
            assert listing("%") == [] and listing("a%") == [] and listing("_") == [] and listing("a_b_") == []
            assert listing("a_b") == ["a_b"]

    def test_names_sort_by_code_point(self, backend: RegistryBackend) -> None:
        """Listings order names the way Python sorts them, whatever the database's locale."""
        names = ["ab", "a_b", "B", "a", "a-b", "0x", "a.b", "Z9"]
        for name in names:
            backend.create_model(name)
        assert [m.name for m in backend.list_models().items] == sorted(names)
        for name in names:
            backend.create_version(new_version(name))
        assert [v.model for v in backend.search_versions().items] == sorted(names)

    # ------------------------------------------------------------------------------------------- deployments
    def test_deployment_records(self, backend: RegistryBackend) -> None:
        """Put (create and replace), get, list by name, delete; NotFound when absent. Each put returns the
        record with the next generation; a replacement keeps the creation time."""
        first = Deployment(name="churn", model="churn", version=1, runtime="local", requested_ref="churn@production",
                           batching=BatchingConfig(max_batch_size=16, max_wait_ms=1.5), replicas=2,
                           options={"threads": 2, "nested": {"a": [1, 2]}}, state="ready")
        put = backend.put_deployment(first)
        assert put.generation == 1
        assert attrs.evolve(put, generation=0, updated_at=first.updated_at) == first
        assert backend.get_deployment("churn") == put
        other = Deployment(name="a-fraud", model="fraud", version=3, runtime="local")
        other = backend.put_deployment(other)
        assert [d.name for d in backend.list_deployments()] == ["a-fraud", "churn"]
        replaced = Deployment(name="churn", model="churn", version=2, runtime="local", state="failed",
                              message="boom")
        again = backend.put_deployment(replaced)
        got = backend.get_deployment("churn")
        assert got == again and got.generation == 2 and got.created_at == put.created_at
        assert got.version == 2 and got.state == "failed" and got.message == "boom"
        assert got.batching is None and dict(got.options) == {}
        backend.delete_deployment("churn")
        with pytest.raises(NotFound, match="churn"):
            backend.get_deployment("churn")
        with pytest.raises(NotFound, match="churn"):
            backend.delete_deployment("churn")
        assert backend.list_deployments() == [other]

    def test_deployment_revision_and_state(self, backend: RegistryBackend) -> None:
        """Every write to a deployment record moves the revision; a state change applies only to the
        generation it names (a newer desired state is never overwritten)."""
        seen = backend.deployments_revision()
        dep = backend.put_deployment(Deployment(name="churn", model="churn", version=1, runtime="local"))
        assert backend.deployments_revision() > seen
        seen = backend.deployments_revision()
        assert backend.set_deployment_state("churn", dep.generation, "ready") is True
        assert backend.deployments_revision() > seen
        got = backend.get_deployment("churn")
        assert got.state == "ready" and got.generation == dep.generation
        newer = backend.put_deployment(attrs.evolve(dep, version=2, state="pending"))
        assert backend.set_deployment_state("churn", dep.generation, "failed", "stale") is False
        assert backend.get_deployment("churn").state == "pending"
        assert backend.set_deployment_state("churn", newer.generation, "failed", "boom") is True
        assert backend.get_deployment("churn").message == "boom"
        seen = backend.deployments_revision()
        backend.delete_deployment("churn")
        assert backend.deployments_revision() > seen

    def test_deployment_write_and_audit_are_one(self, backend: RegistryBackend) -> None:
        """The audit entry of a deployment change is written with it; an entry that cannot be written
        (not JSON) means the change does not happen either."""
        event = AuditEvent(action="deployments:create", resource="deployments/churn", principal="alice")
        backend.put_deployment(Deployment(name="churn", model="churn", version=1, runtime="local"), audit=event)
        assert [e.action for e in backend.list_audit(resource="deployments/churn").items] == ["deployments:create"]
        bad = AuditEvent(action="deployments:create", resource="deployments/churn", details={"x": object()})
        with pytest.raises(ModelyardError):
            backend.put_deployment(Deployment(name="churn", model="churn", version=9, runtime="local"), audit=bad)
        assert backend.get_deployment("churn").version == 1
        with pytest.raises(ModelyardError):
            backend.delete_deployment("churn", audit=bad)
        assert backend.get_deployment("churn").version == 1

    def test_serving_reports(self, backend: RegistryBackend) -> None:
        """Processes report what they serve per deployment; replace, forget and heartbeat act on one process."""
        a = ServingState(process="host/1", deployment="churn", model="churn", version=1, generation=1)
        b = ServingState(process="host/2", deployment="churn", model="churn", version=2, generation=2,
                         state="failed", message="no memory")
        backend.report_serving("host/1", [a])
        backend.report_serving("host/2", [b, attrs.evolve(b, deployment="fraud", state="ready")])
        rows = backend.list_serving("churn")
        assert [(r.process, r.version, r.state, r.message) for r in rows] == [
            ("host/1", 1, "ready", ""), ("host/2", 2, "failed", "no memory")]
        before = rows[0].seen_at
        backend.touch_serving("host/1")
        assert backend.list_serving("churn")[0].seen_at >= before
        backend.report_serving("host/2", [attrs.evolve(b, state="ready", message="")], replace=True)
        assert [(r.deployment, r.state) for r in backend.list_serving() if r.process == "host/2"] == [
            ("churn", "ready")]
        backend.forget_serving("host/2")
        assert [r.process for r in backend.list_serving()] == ["host/1"]
        backend.forget_serving("host/1", "churn")
        assert backend.list_serving() == []

    # ------------------------------------------------------------------------------------------- audit
    def test_audit_log(self, backend: RegistryBackend) -> None:
        """Events come back newest first, whole, filtered by resource and paged."""
        events = [AuditEvent(action=f"models:{i}", resource="models/churn" if i % 2 else "models/fraud",
                             principal="alice", outcome="ok" if i else "denied", source="cli",
                             details={"i": i, "tags": ["x"]}) for i in range(5)]
        for event in events:
            backend.record_audit(event)
        everything = backend.list_audit()
        assert list(everything.items) == events[::-1] and everything.total == 5
        churn = backend.list_audit(resource="models/churn")
        assert [e.details["i"] for e in churn.items] == [3, 1] and churn.total == 2
        page = backend.list_audit(offset=1, limit=2)
        assert [e.details["i"] for e in page.items] == [3, 2] and page.next_offset == 3
        assert everything.items[0].at.tzinfo is not None

    # ------------------------------------------------------------------------------------------- stateful
    def test_behaves_like_the_model(self, backend: RegistryBackend) -> None:
        """Random sequences of operations agree with an in-memory registry at every step."""
        machine = type("BoundRegistryMachine", (RegistryStateMachine,), {"backend": backend})
        run_state_machine_as_test(machine, settings=self.state_machine_settings)

    # ------------------------------------------------------------------------------------------- concurrency
    def test_writers_racing_to_create_a_new_model(self, backend: RegistryBackend) -> None:
        """Threads released at once on a model that does not exist yet all succeed, numbered 1..n."""
        writers, rounds = self.concurrency_threads, 10
        start = threading.Barrier(writers)

        def writer(_: int) -> list[tuple[str, int]]:
            out = []
            try:
                for r in range(rounds):
                    start.wait(timeout=60)  # every round, all writers hit the same brand-new model together
                    out.append((f"race-{r}", backend.create_version(new_version(f"race-{r}")).number))
            except BaseException:
                start.abort()  # release the others now instead of at the barrier's timeout
                raise
            return out

        with ThreadPoolExecutor(writers) as pool:
            results = [pair for chunk in pool.map(writer, range(writers), timeout=300) for pair in chunk]
        for r in range(rounds):
            assert sorted(n for m, n in results if m == f"race-{r}") == list(range(1, writers + 1))
            assert backend.get_model(f"race-{r}").latest_version == writers

    #: Settings of the concurrent-writers property (each example runs a few threads against the backend).
    concurrent_property_settings: ClassVar[settings] = settings(
        max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                               HealthCheck.function_scoped_fixture])

    def test_property_concurrent_writers(self, backend: RegistryBackend) -> None:
        """Hypothesis: any plan of registrations (with tags and aliases) and alias moves, split across threads
        running at once, ends with numbers 1..n per model, every alias on a version some writer pointed it
        at (the last move in some serial order), and searches returning exactly the matching versions."""

        op = st.one_of(
            st.tuples(st.just("register"), st.sampled_from(("a", "b", "c")),
                      st.sampled_from(("red", "blue")), st.one_of(st.none(), st.sampled_from(("prod", "canary")))),
            st.tuples(st.just("alias"), st.sampled_from(("a", "b", "c")), st.sampled_from(("prod", "canary")),
                      st.integers(1, 4)),
        )

        @self.concurrent_property_settings
        @hypothesis.given(plans=st.lists(st.lists(op, min_size=1, max_size=6), min_size=2, max_size=4))
        def run(plans: list[list[tuple[Any, ...]]]) -> None:
            ns = f"cw{uuid.uuid4().hex[:8]}-"
            registered: list[tuple[str, int, str]] = []  # (model, number, colour)
            alias_targets: dict[tuple[str, str], set[int]] = {}
            lock = threading.Lock()
            barrier = threading.Barrier(len(plans))

            def worker(plan: list[tuple[Any, ...]]) -> None:
                barrier.wait(timeout=60)
                for step in plan:
                    model = ns + step[1]
                    if step[0] == "register":
                        _, _, colour, alias = step
                        v = backend.create_version(new_version(model, tags={"colour": colour},
                                                               aliases=(alias,) if alias else ()))
                        with lock:
                            registered.append((model, v.number, colour))
                            if alias:
                                alias_targets.setdefault((model, alias), set()).add(v.number)
                    else:
                        _, _, alias, number = step
                        try:
                            backend.set_alias(model, alias, number)
                        except NotFound:
                            continue  # that version (or model) did not exist yet: nothing may change
                        with lock:
                            alias_targets.setdefault((model, alias), set()).add(number)

            with ThreadPoolExecutor(len(plans)) as pool:
                for future in [pool.submit(worker, plan) for plan in plans]:
                    future.result(timeout=300)

            for model in {m for m, _, _ in registered}:
                numbers = sorted(n for m, n, _ in registered if m == model)
                assert numbers == list(range(1, len(numbers) + 1)), f"{model}: numbers {numbers}"
                got = backend.get_model(model)
                assert got.latest_version == len(numbers)
                for alias, number in got.aliases.items():
                    assert number in alias_targets.get((model, alias), set()), (model, alias, number)
                assert set(got.aliases) == {a for (m, a) in alias_targets if m == model}
            for colour in ("red", "blue"):
                def page(offset: int, colour: str = colour) -> Page[ModelVersion]:
                    return backend.search_versions(prefix=ns, tags={"colour": colour}, offset=offset, limit=3)

                found, _ = all_pages(page)
                assert sorted((v.model, v.number) for v in found) == sorted(
                    (m, n) for m, n, c in registered if c == colour)

        run()

    def test_concurrent_writers_get_numbers_without_gaps(self, backend: RegistryBackend,
                                                         backend_factory: BackendFactory) -> None:
        """Threads sharing one backend and spawned processes with their own register one model at once."""
        try:
            pickle.dumps(backend_factory)
        except Exception as exc:
            pytest.fail(f"backend_factory must return a picklable callable (e.g. functools.partial of an "
                        f"importable function) so spawned processes can use it: {exc}")
        assert self.concurrency_processes >= 2, "the kit promises at least two writer processes"
        model, per = "contended", self.versions_per_worker
        ctx = multiprocessing.get_context("spawn")
        go, results = ctx.Event(), ctx.Queue()
        ready = [ctx.Event() for _ in range(self.concurrency_processes)]
        processes = [ctx.Process(target=_process_writer, args=(backend_factory, model, per, f"process-{i}",
                                                               ready[i], go, results), daemon=True)
                     for i in range(self.concurrency_processes)]
        for p in processes:
            p.start()
        outcomes: dict[str, list[int]] = {}
        try:
            deadline = time.monotonic() + self.process_start_timeout
            for i, event in enumerate(ready):
                if not event.wait(max(0.0, deadline - time.monotonic())):
                    pytest.fail(f"writer process {i} did not open its backend within {self.process_start_timeout}s")
            start = threading.Barrier(self.concurrency_threads + 1)

            def thread_writer(tag: str) -> list[int]:
                start.wait(timeout=60)
                return [backend.create_version(new_version(model, metadata={"writer": tag, "i": i})).number
                        for i in range(per)]

            with ThreadPoolExecutor(self.concurrency_threads) as pool:
                futures = {f"thread-{i}": pool.submit(thread_writer, f"thread-{i}")
                           for i in range(self.concurrency_threads)}
                go.set()
                start.wait(timeout=60)
                for tag, future in futures.items():
                    outcomes[tag] = future.result(timeout=300)
            for _ in processes:
                try:
                    tag, numbers, error = results.get(timeout=300)
                except queue.Empty:
                    pytest.fail("a writer process neither reported numbers nor an error")
                if error is not None:
                    pytest.fail(f"writer {tag} failed:\n{error}")
                outcomes[tag] = numbers
        finally:
            go.set()
            for p in processes:
                p.join(timeout=60)
                if p.is_alive():
                    p.kill()
        total = (self.concurrency_threads + self.concurrency_processes) * per
        every = sorted(n for numbers in outcomes.values() for n in numbers)
        assert every == list(range(1, total + 1)), "duplicate or missing version numbers"
        for tag, numbers in outcomes.items():
            assert numbers == sorted(numbers), f"{tag}'s numbers went backwards: {numbers}"
        assert backend.get_model(model).latest_version == total
        stored, count = all_pages(lambda o: backend.list_versions(model, offset=o, limit=100))
        assert count == total and [v.number for v in stored] == list(range(total, 0, -1))
        writer_of = {v.number: v.metadata["writer"] for v in stored}
        for tag, numbers in outcomes.items():
            assert all(writer_of[n] == tag for n in numbers), f"version numbers returned to {tag} hold others' data"


# --------------------------------------------------------------------------------------------- state machine
_SHORT_NAMES = ("a", "a_b", "axb", "ab", "A")
_PREFIX_SUFFIXES = ("", "-", "-a", "-a_", "-ax", "-A", "-%", "-ab")
_ALIASES = ("production", "staging")
_FLAVORS = ("onnx", "torch")
_TAG_KEYS = ("team", "stage")
_tags = st.dictionaries(st.sampled_from(_TAG_KEYS), st.sampled_from(("x", "y")), max_size=2)
_removals = st.lists(st.sampled_from(_TAG_KEYS), unique=True, max_size=2)


class RegistryStateMachine(RuleBasedStateMachine):
    """Operations on a registry checked against a dict-based model. Subclass with ``backend`` set to run it.

    Every example works under a fresh random name prefix, so examples never see each other's models.
    """

    backend: ClassVar[RegistryBackend]

    def __init__(self) -> None:
        super().__init__()
        self.ns = f"sm{uuid.uuid4().hex[:12]}"
        self.flavors: dict[str, list[str]] = {}  # model -> flavor of version n at index n-1
        self.version_tags: dict[str, list[dict[str, str]]] = {}
        self.aliases: dict[str, dict[str, int]] = {}
        self.model_tags: dict[str, dict[str, str]] = {}

    def _name(self, short: str) -> str:
        return f"{self.ns}-{short}"

    def _add_model(self, name: str, tags: Mapping[str, str]) -> None:
        self.flavors[name], self.version_tags[name] = [], []
        self.aliases[name], self.model_tags[name] = {}, dict(tags)

    # ------------------------------------------------------------------------------------------- writes
    @rule(short=st.sampled_from(_SHORT_NAMES), flavor=st.sampled_from(_FLAVORS), tags=_tags)
    def register(self, short: str, flavor: str, tags: dict[str, str]) -> None:
        """create_version: the next number, the model created on first use."""
        name = self._name(short)
        version = self.backend.create_version(new_version(name, flavor=flavor, tags=tags))
        if name not in self.flavors:
            self._add_model(name, {})
        self.flavors[name].append(flavor)
        self.version_tags[name].append(dict(tags))
        assert version.number == len(self.flavors[name])
        assert dict(version.tags) == tags and version.flavor == flavor

    @rule(short=st.sampled_from(_SHORT_NAMES), tags=_tags)
    def create_model(self, short: str, tags: dict[str, str]) -> None:
        """create_model: Conflict when it exists."""
        name = self._name(short)
        if name in self.flavors:
            with pytest.raises(Conflict):
                self.backend.create_model(name, tags=tags)
            return
        model = self.backend.create_model(name, tags=tags)
        assert model.latest_version == 0
        self._add_model(name, tags)

    @rule(short=st.sampled_from(_SHORT_NAMES), alias=st.sampled_from(_ALIASES), number=st.integers(1, 5))
    def set_alias(self, short: str, alias: str, number: int) -> None:
        """set_alias: moves the alias, or NotFound for a missing model or version."""
        name = self._name(short)
        if name not in self.flavors or number > len(self.flavors[name]):
            with pytest.raises(NotFound):
                self.backend.set_alias(name, alias, number)
            return
        version = self.backend.set_alias(name, alias, number)
        self.aliases[name][alias] = number
        assert version.number == number
        assert version.aliases == tuple(sorted(a for a, n in self.aliases[name].items() if n == number))

    @rule(short=st.sampled_from(_SHORT_NAMES), alias=st.sampled_from(_ALIASES))
    def delete_alias(self, short: str, alias: str) -> None:
        """delete_alias: NotFound unless it exists."""
        name = self._name(short)
        if alias not in self.aliases.get(name, {}):
            with pytest.raises(NotFound):
                self.backend.delete_alias(name, alias)
            return
        self.backend.delete_alias(name, alias)
        del self.aliases[name][alias]

    @rule(short=st.sampled_from(_SHORT_NAMES), number=st.none() | st.integers(1, 5), tags=_tags,
          remove=_removals)
    def set_tags(self, short: str, number: int | None, tags: dict[str, str], remove: list[str]) -> None:
        """set_tags on the model or one version: NotFound when missing."""
        name = self._name(short)
        remove = [k for k in remove if k not in tags]
        if name not in self.flavors or (number is not None and number > len(self.flavors[name])):
            with pytest.raises(NotFound):
                self.backend.set_tags(name, tags, number=number, remove=remove)
            return
        self.backend.set_tags(name, tags, number=number, remove=remove)
        target = self.model_tags[name] if number is None else self.version_tags[name][number - 1]
        for key in remove:
            target.pop(key, None)
        target.update(tags)

    # ------------------------------------------------------------------------------------------- reads
    @rule(suffix=st.sampled_from(_PREFIX_SUFFIXES), tags=_tags, alias=st.none() | st.sampled_from(_ALIASES),
          flavor=st.none() | st.sampled_from(_FLAVORS), limit=st.integers(1, 4))
    def search(self, suffix: str, tags: dict[str, str], alias: str | None, flavor: str | None, limit: int) -> None:
        """search_versions, every page, against the model."""
        prefix = self.ns + suffix
        expected = sorted(
            ((name, n) for name, flavors in self.flavors.items() for n in range(1, len(flavors) + 1)
             if name.startswith(prefix)
             and tags.items() <= self.version_tags[name][n - 1].items()
             and (alias is None or self.aliases[name].get(alias) == n)
             and (flavor is None or flavors[n - 1] == flavor)),
            key=lambda key: (key[0], -key[1]))
        items, total = all_pages(lambda o: self.backend.search_versions(
            prefix=prefix, tags=tags, alias=alias, flavor=flavor, offset=o, limit=limit))
        assert [(v.model, v.number) for v in items] == expected and total == len(expected)
        for v in items:
            assert dict(v.tags) == self.version_tags[v.model][v.number - 1]
            assert v.aliases == tuple(sorted(a for a, n in self.aliases[v.model].items() if n == v.number))
            assert v.flavor == self.flavors[v.model][v.number - 1]

    @rule(suffix=st.sampled_from(_PREFIX_SUFFIXES), tags=_tags, alias=st.none() | st.sampled_from(_ALIASES),
          limit=st.integers(1, 4))
    def list_models(self, suffix: str, tags: dict[str, str], alias: str | None, limit: int) -> None:
        """list_models, every page, against the model."""
        prefix = self.ns + suffix
        expected = sorted(name for name in self.flavors if name.startswith(prefix)
                          and tags.items() <= self.model_tags[name].items()
                          and (alias is None or alias in self.aliases[name]))
        items, total = all_pages(lambda o: self.backend.list_models(prefix=prefix, tags=tags, alias=alias,
                                                                    offset=o, limit=limit))
        assert [m.name for m in items] == expected and total == len(expected)

    @rule(short=st.sampled_from(_SHORT_NAMES), limit=st.integers(1, 4))
    def list_versions(self, short: str, limit: int) -> None:
        """list_versions pages, newest first; resolve by alias and newest."""
        name = self._name(short)
        if name not in self.flavors:
            with pytest.raises(NotFound):
                self.backend.list_versions(name, limit=limit)
            return
        items, total = all_pages(lambda o: self.backend.list_versions(name, offset=o, limit=limit))
        n = len(self.flavors[name])
        assert [v.number for v in items] == list(range(n, 0, -1)) and total == n
        assert [dict(v.tags) for v in items] == self.version_tags[name][::-1]
        if n:
            assert self.backend.resolve(ModelRef(name)).number == n
        for alias, number in self.aliases[name].items():
            assert self.backend.resolve(ModelRef(name, alias=alias)).number == number

    @invariant()
    def models_match(self) -> None:
        """get_model agrees on every model: latest version, aliases and tags."""
        for name, flavors in self.flavors.items():
            model = self.backend.get_model(name)
            assert model.latest_version == len(flavors)
            assert dict(model.aliases) == self.aliases[name]
            assert dict(model.tags) == self.model_tags[name]


__all__ = ["BackendFactory", "RegistryConformance", "RegistryStateMachine", "all_pages", "fake_artifact",
           "new_version"]
