"""The ``[server]`` config section (kept free of Litestar and uvicorn imports: the CLI reads it at start-up)."""

from __future__ import annotations

from typing import Any, Literal

import attrs


@attrs.frozen(kw_only=True)
class ServerConfig:
    """The ``[server]`` section of ``modelyard.toml``.

    Attributes:
        host: interface ``modelyard serve`` listens on.
        port: TCP port ``modelyard serve`` listens on (0 picks a free one and prints it).
        dev: development mode — allows the ``anonymous`` auth provider and prints console logs.
        max_body_mb: largest request body accepted on any route but model upload (413 beyond).
        max_upload_mb: largest model upload accepted by ``POST /api/v1/models`` (413 beyond).
        workers: uvicorn worker processes; each assembles its own platform from the same config.
        reconcile_interval_s: how often each serving process polls the registry for deployment changes made
            elsewhere (another worker, another server, the embedded CLI) and converges to them; a change reaches
            every process within about this delay (plus the time to load the model).
        ready_requires: ``"all"`` — ``/v2/health/ready`` answers 200 once every recorded deployment is served
            here or has failed here (failed ones are listed, never waited for); ``"none"`` — 200 as soon as the
            server runs.
    """

    host: str = "127.0.0.1"
    port: int = attrs.field(default=8000, validator=[attrs.validators.ge(0), attrs.validators.le(65535)])
    dev: bool = False
    max_body_mb: int = attrs.field(default=64, validator=[attrs.validators.ge(1), attrs.validators.le(4096)])
    max_upload_mb: int = attrs.field(default=2048, validator=[attrs.validators.ge(1), attrs.validators.le(1 << 20)])
    workers: int = attrs.field(default=1, validator=[attrs.validators.ge(1), attrs.validators.le(64)])
    reconcile_interval_s: float = attrs.field(default=1.0, validator=[attrs.validators.ge(0.05),
                                                                      attrs.validators.le(60)])
    ready_requires: Literal["all", "none"] = attrs.field(default="all",
                                                         validator=attrs.validators.in_(("all", "none")))

    @property
    def max_body_bytes(self) -> int:
        """``max_body_mb`` in bytes."""
        return int(self.max_body_mb * 1024 * 1024)

    @property
    def max_upload_bytes(self) -> int:
        """``max_upload_mb`` in bytes."""
        return int(self.max_upload_mb * 1024 * 1024)


def server_settings(platform: Any) -> ServerConfig:
    """The platform's validated ``[server]`` section, or the defaults when the config has none."""
    sections = getattr(getattr(platform, "config", None), "sections", None) or {}
    value = sections.get("server")
    return value if isinstance(value, ServerConfig) else ServerConfig()
