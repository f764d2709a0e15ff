"""Assembly is one pass: ``resolve`` is pure (config in, ``ResolvedConfig`` out, nothing left running),
``Platform.from_resolved`` assembles it without resolving again, and each provider receives exactly the
services it declares in ``needs`` — not a half-built Platform."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from modelyard import hookimpl
from modelyard.errors import PluginError
from modelyard.platform import Platform, resolve
from modelyard.plugins import get_plugin_manager
from modelyard.providers import MonitorProvider


class _Seen:
    contexts: list[Any] = []


class NeedsPlugin:
    """Two monitors: one asks for the registry and the loader, one asks for nothing."""

    @hookimpl
    def modelyard_monitors(self):
        def keep(cfg: Any, ctx: Any) -> object:
            _Seen.contexts.append(ctx)
            return object()

        yield MonitorProvider(name="needy", factory=keep, needs=("registry", "loader"))
        yield MonitorProvider(name="modest", factory=keep)
        yield MonitorProvider(name="confused", factory=keep, needs=("nonsense",))


def _pm() -> Any:
    pm = get_plugin_manager()
    pm.register(NeedsPlugin(), name="needs-plugin")
    return pm


def test_resolve_starts_nothing_and_from_resolved_does_not_resolve_again(tmp_path: Path, monkeypatch: Any) -> None:
    import modelyard.platform as platform_module

    config = {"platform": {"data_dir": str(tmp_path / "data"), "log_level": "warning"}}
    resolved = resolve(config)
    assert resolved.plugin_manager is not None
    assert not (tmp_path / "data").exists()  # nothing was created: resolving is pure

    def no_second_pass(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("from_resolved resolved the config again")

    monkeypatch.setattr(platform_module, "_resolve", no_second_pass)
    with Platform.from_resolved(resolved) as platform:
        assert platform.config is resolved
        assert platform.secrets is not None and platform.registry_backend is not None


def test_providers_receive_exactly_the_services_they_declare(tmp_path: Path) -> None:
    _Seen.contexts.clear()
    config = {"platform": {"data_dir": str(tmp_path / "data"), "log_level": "warning"},
              "monitors": [{"use": "needy"}, {"use": "modest"}]}
    with Platform.from_config(config, plugin_manager=_pm()) as platform:
        needy, modest = _Seen.contexts
        assert set(needy.services) == {"registry", "loader"}
        assert needy.services["registry"] is platform.registry_backend
        assert needy.services["loader"] is platform.loader
        assert needy.platform is None and modest.platform is None  # no half-built Platform
        assert modest.services == {}
        assert needy.config is platform.config  # plain data: the resolved config
        # the built-in runtime asked for the loader, the scheduler for the platform (its jobs run against it)
        assert platform.runtime.__class__.__name__ == "LocalRuntime"


def test_an_unknown_need_is_a_plugin_error(tmp_path: Path) -> None:
    config = {"platform": {"data_dir": str(tmp_path / "data"), "log_level": "warning"},
              "monitors": [{"use": "confused"}]}
    with pytest.raises(PluginError, match="unknown service 'nonsense'"):
        Platform.from_config(config, plugin_manager=_pm())


def test_from_resolved_refuses_a_hand_made_config(tmp_path: Path) -> None:
    import attrs

    resolved = attrs.evolve(resolve({"platform": {"data_dir": str(tmp_path)}}), plugin_manager=None)
    with pytest.raises(ValueError, match=r"from_resolved needs a config from modelyard\.platform\.resolve"):
        Platform.from_resolved(resolved)
