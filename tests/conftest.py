"""Suite-wide hygiene: logging configuration is process-global, so every test starts from structlog's defaults.

A Platform configures structlog (level, format, stream) when it is assembled — including platforms built by
module-scoped fixtures before a test starts — and one test's ``log_level = "warning"`` must not filter the log
lines another test captures.
"""

from __future__ import annotations

import pytest
import structlog

from modelyard import log as logconf


@pytest.fixture(autouse=True)
def _fresh_logging():
    """Reset structlog to its defaults before each test and forget modelyard's configuration key."""
    structlog.reset_defaults()
    logconf._configured = None
    yield
    structlog.reset_defaults()
    logconf._configured = None
