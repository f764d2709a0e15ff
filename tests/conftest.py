"""Suite-wide hygiene: logging configuration is process-global, so every test gets it back as it found it."""

from __future__ import annotations

import pytest
import structlog

from modelyard import log as logconf


@pytest.fixture(autouse=True)
def _restore_logging():
    """A Platform configures structlog (level, format, stream); don't let one test's level filter another's logs."""
    saved = structlog.get_config()
    saved = {**saved, "processors": list(saved["processors"])}
    saved_key = logconf._configured
    yield
    structlog.configure(**saved)
    logconf._configured = saved_key
