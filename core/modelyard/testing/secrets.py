"""Conformance kit for the ``secrets`` slot: the tests every secrets store must pass.

The kit owns the secrets: its ``known_secrets`` fixture gives, per test, a fresh mapping of ``(path, key)`` to
value (values are unique to the test, hold spaces, ``=``, ``#``, quotes and non-ASCII letters). A secrets plugin's
test module subclasses :class:`SecretStoreConformance` and provides a ``secret_store`` fixture holding exactly
those secrets::

    # tests/test_my_secrets.py
    import pytest
    from modelyard.testing.secrets import SecretStoreConformance

    from my_plugin.store import MySecretStore


    class TestMySecrets(SecretStoreConformance):
        @pytest.fixture
        def secret_store(self, known_secrets, tmp_path):
            backend = start_a_backend(tmp_path)                  # your server, files, variables, …
            for (path, key), value in known_secrets.items():
                backend.write(path, key, value)
            store = MySecretStore.connect(backend.address)
            yield store
            store.close()

What it proves:

- every known secret reads back exactly, repeatedly;
- each value returned is registered for redaction: :func:`modelyard.log.redact` masks it, and a structlog line
  carrying it (in the event text or a field) shows ``***`` instead;
- a missing key, or a missing path, raises :class:`~modelyard.errors.NotFound` whose message names the path and
  the key and contains no secret value; so does any reference under a path the store never saw (hypothesis);
- references that try to escape — ``..`` or ``.`` segments, a leading ``/``, empty segments, backslashes,
  control characters, an empty path or key — raise :class:`~modelyard.errors.InvalidInput`, never a value;
- ``close`` can be called twice.

Deselect a check by overriding it in the subclass with ``pytest.mark.skip`` and a reason. The kit uses only
pytest, hypothesis, structlog and modelyard itself.
"""

from __future__ import annotations

import contextlib
import io
import json
import uuid
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from modelyard import log as logconf
from modelyard.errors import InvalidInput, NotFound
from modelyard.hookspecs.secrets import SecretStore

KnownSecrets = Mapping[tuple[str, str], str]

#: (path, key) references every store must refuse with InvalidInput.
BAD_REFERENCES: tuple[tuple[Any, Any], ...] = (
    ("../db/ml", "password"),
    ("db/../../etc/passwd", "password"),
    ("..", "password"),
    ("db/..", "password"),
    ("/etc/passwd", "password"),
    ("db//ml", "password"),
    ("db/./ml", "password"),
    ("db/ml/", "password"),
    ("db\\..\\ml", "password"),
    ("db/ml\x00", "password"),
    ("db/ml\n", "password"),
    ("", "password"),
    ("db/ml", ""),
    ("db/ml", "../password"),
    ("db/ml", "pass\x00word"),
    (None, "password"),
    ("db/ml", None),
)


@contextlib.contextmanager
def captured_log() -> Iterator[io.StringIO]:
    """Route structlog through :func:`modelyard.log.configure` (JSON, debug) into a buffer; restore afterwards."""
    previous = structlog.get_config()
    previous_key = logconf._configured
    buffer = io.StringIO()
    logconf.configure("debug", "json", stream=buffer)
    try:
        yield buffer
    finally:
        structlog.configure(**previous)
        logconf._configured = previous_key


def _assert_no_value_in(message: str, known: KnownSecrets) -> None:
    for value in known.values():
        assert value not in message, "an error message shows a secret value"


class SecretStoreConformance:
    """Subclass as ``TestSomething`` and provide the ``secret_store`` fixture (see the module doc)."""

    #: Settings of the property test over unknown references.
    unknown_reference_settings: ClassVar[settings] = settings(max_examples=40, deadline=None,
                                                              suppress_health_check=[HealthCheck.too_slow])

    @pytest.fixture
    def known_secrets(self) -> KnownSecrets:
        """The secrets the store must hold: values unique to this test, awkward characters included."""
        token = uuid.uuid4().hex[:12]
        return {
            ("db/ml", "password"): f"pw {token} =#'\"!",
            ("db/ml", "user"): f"ml-user-{token}",
            ("api", "token"): f"tok_{token}",
            ("team/growth/warehouse", "api-key"): f"ключ-{token}-é",
        }

    @pytest.fixture
    def secret_store(self, known_secrets: KnownSecrets) -> Iterator[SecretStore]:
        """Override: a store holding exactly ``known_secrets`` (closed afterwards)."""
        raise NotImplementedError(f"{type(self).__name__} must override the secret_store fixture: see the "
                                  "docstring of modelyard.testing.secrets")

    # ------------------------------------------------------------------------------------------- reading
    def test_satisfies_the_protocol(self, secret_store: SecretStore) -> None:
        """Every method of :class:`SecretStore` is there."""
        assert isinstance(secret_store, SecretStore)

    def test_reads_every_known_secret(self, secret_store: SecretStore, known_secrets: KnownSecrets) -> None:
        """Each ``(path, key)`` reads back its exact value, and again on a second read."""
        for (path, key), value in known_secrets.items():
            assert secret_store.get(path, key) == value, f"wrong value for {path}#{key}"
        for (path, key), value in known_secrets.items():
            assert secret_store.get(path, key) == value

    # ------------------------------------------------------------------------------------------- redaction
    def test_values_are_registered_for_redaction(self, secret_store: SecretStore,
                                                 known_secrets: KnownSecrets) -> None:
        """After a read, :func:`modelyard.log.redact` masks the value wherever it appears."""
        for (path, key), _value in known_secrets.items():
            value = secret_store.get(path, key)
            assert logconf.redact(f"dsn=postgresql://ml:{value}@db/ml") == "dsn=postgresql://ml:***@db/ml"

    def test_log_lines_show_stars_instead(self, secret_store: SecretStore, known_secrets: KnownSecrets) -> None:
        """A log line that carries a secret, in its text or a field, shows ``***``."""
        value = secret_store.get("db/ml", "password")
        with captured_log() as buffer:
            logger = structlog.get_logger("modelyard.testing.secrets")
            logger.info(f"connecting with {value}", dsn=f"postgresql://ml:{value}@db:5432/ml",
                        attempt={"password": value})
        output = buffer.getvalue()
        # Look for the value as written and as JSON escapes it (quotes, non-ASCII), either way a leak.
        for form in {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}:
            assert form not in output, "a secret value reached a log line"
        line = json.loads(output.strip().splitlines()[-1])
        assert line["event"] == "connecting with ***"
        assert line["dsn"] == "postgresql://ml:***@db:5432/ml"
        assert "***" in json.dumps(line["attempt"])

    # ------------------------------------------------------------------------------------------- errors
    def test_missing_key_is_not_found(self, secret_store: SecretStore, known_secrets: KnownSecrets) -> None:
        """An unknown key under a known path: NotFound naming path and key, showing no value."""
        with pytest.raises(NotFound) as info:
            secret_store.get("db/ml", "no-such-key")
        message = str(info.value)
        assert "db/ml" in message and "no-such-key" in message
        _assert_no_value_in(message, known_secrets)

    def test_missing_path_is_not_found(self, secret_store: SecretStore, known_secrets: KnownSecrets) -> None:
        """An unknown path: NotFound naming path and key, showing no value."""
        with pytest.raises(NotFound) as info:
            secret_store.get("db/nowhere", "password")
        message = str(info.value)
        assert "db/nowhere" in message and "password" in message
        _assert_no_value_in(message, known_secrets)

    def test_unknown_references_are_not_found(self, secret_store: SecretStore, known_secrets: KnownSecrets) -> None:
        """Any reference under a path the store never saw raises NotFound (or InvalidInput), never a value."""
        segment = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_.", min_size=1, max_size=12).filter(
            lambda s: s not in (".", ".."))
        fresh = f"unknown{uuid.uuid4().hex[:8]}"

        @self.unknown_reference_settings
        @given(rest=st.lists(segment, max_size=3), key=segment)
        def lookup(rest: list[str], key: str) -> None:
            path = "/".join([fresh, *rest])
            with pytest.raises((NotFound, InvalidInput)) as info:
                secret_store.get(path, key)
            _assert_no_value_in(str(info.value), known_secrets)

        lookup()

    @pytest.mark.parametrize(("path", "key"), BAD_REFERENCES, ids=repr)
    def test_escaping_references_are_invalid(self, secret_store: SecretStore, known_secrets: KnownSecrets,
                                             path: Any, key: Any) -> None:
        """References that could climb out of the store's space are refused with InvalidInput."""
        with pytest.raises(InvalidInput) as info:
            secret_store.get(path, key)
        _assert_no_value_in(str(info.value), known_secrets)

    # ------------------------------------------------------------------------------------------- lifecycle
    def test_close_twice(self, secret_store: SecretStore) -> None:
        """``close`` is idempotent (the fixture closes the store once more afterwards)."""
        secret_store.close()
        secret_store.close()


__all__ = ["BAD_REFERENCES", "KnownSecrets", "SecretStoreConformance", "captured_log"]
