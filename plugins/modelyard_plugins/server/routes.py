"""This plugin's contribution to the app: the V2 protocol and the ``/api/v1`` controllers."""

from __future__ import annotations

from typing import Any

from modelyard_plugins.server.deployments import DeploymentsController
from modelyard_plugins.server.models import ModelsController, SearchController
from modelyard_plugins.server.system import SystemController
from modelyard_plugins.server.v2 import V2Controller


def route_handlers(platform: Any) -> list[Any]:
    """The V2 protocol and ``/api/v1`` controllers (they reach the platform through ``app.state``)."""
    return [V2Controller, ModelsController, SearchController, DeploymentsController, SystemController]
