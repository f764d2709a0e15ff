"""The ``server`` plugin as a plugin: its ``[server]`` section, its routes hook, its ``serve`` command, and that
importing it stays light."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from modelyard import Platform
from modelyard.errors import ConfigError
from modelyard.plugins import get_plugin_manager
from modelyard_plugins.server.config import ServerConfig, server_settings
from server_models import make_platform
from typer.testing import CliRunner


def test_hooks_offer_the_section_and_the_routes(platform: Platform) -> None:
    pm = get_plugin_manager()
    sections = {s.name: s.schema for batch in pm.hook.modelyard_config_sections() for s in batch}
    assert sections["server"] is ServerConfig
    routes = [r for batch in pm.hook.modelyard_http_routes(platform=platform) for r in batch]
    assert {getattr(r, "path", None) for r in routes} >= {"/v2", "/api/v1/models", "/api/v1/deployments"}


def test_server_section_is_validated(tmp_path: Path) -> None:
    with make_platform(tmp_path / "ok", server={"host": "0.0.0.0", "port": 9000, "max_upload_mb": 10}) as plat:
        settings = server_settings(plat)
    assert settings == ServerConfig(host="0.0.0.0", port=9000, max_upload_mb=10)
    assert settings.max_upload_bytes == 10 * 1024 * 1024
    with pytest.raises(ConfigError) as info:
        make_platform(tmp_path / "bad", server={"port": "eighty", "max_body_mb": 0, "colour": "red"})
    report = str(info.value)
    assert "[server] port" in report and "colour" in report and "max_body_mb" in report


def test_defaults_without_a_server_section(platform: Platform) -> None:
    settings = server_settings(platform)
    assert (settings.host, settings.port, settings.dev, settings.max_body_mb, settings.max_upload_mb,
            settings.workers) == ("127.0.0.1", 8000, False, 64, 2048, 1)


def test_disabling_the_plugin_removes_its_routes_and_section(tmp_path: Path) -> None:
    from litestar.testing import TestClient
    from modelyard_plugins.server.app import create_app

    pm = get_plugin_manager(disable=["server"])
    with Platform.from_config({"platform": {"data_dir": str(tmp_path)}}, plugin_manager=pm) as plat:
        with TestClient(create_app(plat, dev=True, close_platform=False)) as client:
            assert client.get("/v2/health/live").status_code == 404
    with pytest.raises(ConfigError, match="unknown section"):
        Platform.from_config({"platform": {"data_dir": str(tmp_path)}, "server": {}},
                             plugin_manager=get_plugin_manager(disable=["server"]))


def test_serve_command_is_added_to_the_cli() -> None:
    from modelyard.cli.app import build_app

    result = CliRunner().invoke(build_app(get_plugin_manager()), ["serve", "--help"])
    assert result.exit_code == 0, result.output
    for option in ("--host", "--port", "--dev", "--config"):
        assert option in result.output


def test_serve_refuses_the_anonymous_provider_without_dev(tmp_path: Path) -> None:
    from modelyard.cli.app import build_app

    config = tmp_path / "modelyard.toml"
    config.write_text(f'[platform]\ndata_dir = "{tmp_path / "data"}"\n')
    result = CliRunner().invoke(build_app(get_plugin_manager()), ["serve", "-c", str(config), "--port", "0"])
    assert result.exit_code == 2
    assert "--dev" in result.output
    assert not (tmp_path / "data").exists()  # refused before assembly: no data dir, no registry.db, no migration


def test_serve_on_a_busy_port_fails_before_assembly(tmp_path: Path) -> None:
    from modelyard.cli.app import build_app

    config = tmp_path / "modelyard.toml"
    config.write_text(f'[platform]\ndata_dir = "{tmp_path / "data"}"\n')
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        held.listen()
        port = held.getsockname()[1]
        result = CliRunner().invoke(build_app(get_plugin_manager()),
                                    ["serve", "-c", str(config), "--dev", "--port", str(port)])
    assert result.exit_code == 1, result.output
    assert f"port {port} on 127.0.0.1 is already in use; pass --port" in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()


def test_listen_socket_names_what_went_wrong() -> None:
    from modelyard.errors import Conflict, Unavailable
    from modelyard_plugins.server.serve import listen_socket

    with listen_socket("127.0.0.1", 0) as sock:
        port = sock.getsockname()[1]
        sock.listen()
        with pytest.raises(Conflict, match=re.escape(f"port {port} on 127.0.0.1 is already in use")):
            listen_socket("127.0.0.1", port)
    with pytest.raises(Unavailable, match=re.escape("cannot listen on 192.0.2.1:")):  # TEST-NET-1: no such interface here
        listen_socket("192.0.2.1", 0)


def test_importing_the_plugin_stays_light() -> None:
    code = ("import sys, modelyard_plugins.server as s; "
            "print(sorted(m for m in ('litestar', 'uvicorn', 'httpx') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
