"""``modelyard check`` catches what a provider can tell statically — an unsupported database URL, a storage
protocol whose package is missing — before anything is created on disk."""

from __future__ import annotations

import importlib.util

import pytest
from modelyard.errors import ConfigError
from modelyard.platform import resolve


def _report(tmp_path, text):
    path = tmp_path / "modelyard.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        resolve(path)
    return err.value


def test_unsupported_database_and_unknown_protocol_are_reported_together(tmp_path):
    err = _report(tmp_path, '[registry]\nurl = "mysql://u@h/db"\n\n[storage]\nurl = "nosuchproto://bucket/x"\n')
    by_section = {i.section: i for i in err.issues}
    assert set(by_section) == {"registry", "storage"}
    assert by_section["registry"].key == "url" and by_section["registry"].line == 2
    assert "unsupported database 'mysql'" in by_section["registry"].message
    assert by_section["storage"].line == 5 and "'nosuchproto' is not an fsspec protocol" in by_section["storage"].message
    assert list(tmp_path.iterdir()) == [tmp_path / "modelyard.toml"]  # nothing was created


def test_a_protocol_whose_package_is_missing_names_the_extra(tmp_path, monkeypatch):
    """s3fs is made unfindable here, so the test means the same whether or not it is installed."""
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "s3fs" else real(name, *a))
    err = _report(tmp_path, '[storage]\nurl = "s3://bucket/prefix"\n')
    (issue,) = err.issues
    assert "needs s3fs" in issue.message and "modelyard[s3]" in issue.message


def test_valid_urls_pass_the_checks(tmp_path):
    path = tmp_path / "modelyard.toml"
    path.write_text('[registry]\nurl = "postgresql://ml@db:5432/ml"\n\n[storage]\nurl = "memory://x"\n')
    resolved = resolve(path)
    assert resolved.one("registry").config.url == "postgresql://ml@db:5432/ml"
