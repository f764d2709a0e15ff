"""Suite-wide hygiene: logging configuration is process-global, so a test gives it back as it found it.

A Platform configures structlog (level, format, stream) when it is assembled; without this, one test's
``log_level = "warning"`` would silently filter the log lines a later test captures. Tests that capture logs
should still start from a known state themselves (``structlog.reset_defaults()``): module-scoped fixtures
configure logging before any function-scoped fixture runs.
"""

from __future__ import annotations

import os

import pytest
import structlog
from modelyard import log as logconf


@pytest.fixture(autouse=True)
def _restore_logging():
    """Put structlog's configuration and modelyard's configuration key back after each test."""
    saved = structlog.get_config()
    saved = {**saved, "processors": list(saved["processors"])}
    saved_key = logconf._configured
    yield
    structlog.configure(**saved)
    logconf._configured = saved_key


#: Skip reasons allowed under CI: marked documentation sketches that cannot run standalone.
_CI_ALLOWED_SKIPS = ("docs-test marker:",)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Under ``CI`` a skip is a failure (CI must never skip silently: a missing framework, database or tool
    means the install step is broken), except for the documentation sketches marked as such."""
    report = yield
    if os.environ.get("CI") and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        if not any(marker in reason for marker in _CI_ALLOWED_SKIPS):
            report.outcome = "failed"
            report.longrepr = f"skipped under CI, which must run everything: {reason}"
    return report
