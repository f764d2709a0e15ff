"""The ``torch`` builder: TorchScript and ``torch.export`` programs, or safetensors weights plus a module factory.

Nothing is ever unpickled: uploads are TorchScript archives (``torch.jit.save``), ``torch.export`` programs
(``.pt2``, ``torch.export.save``), in-memory ``ScriptModule``/``ExportedProgram``/``nn.Module`` objects, or a
``.safetensors`` state dict with ``options["module_factory"] = "pkg.module:callable"``. ``[builders.torch]`` picks
the device and thread count. torch is imported only when a model is built or loaded
(``pip install 'modelyard[torch]'``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import attrs
from modelyard import hookimpl
from modelyard.providers import BuilderProvider, ProviderContext

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?)$")


def _check_device(_inst: Any, _attr: Any, value: str) -> None:
    if not _DEVICE.match(value):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {value!r}")


@attrs.frozen(kw_only=True)
class TorchConfig:
    """Options of the ``torch`` builder (``[builders.torch]``).

    ``device`` is where models run (``"cuda"`` needs ``torch.cuda.is_available()``; loading fails clearly
    otherwise). ``threads`` sets torch's intra-op thread count, which torch keeps per process: one suits a server
    running many requests at once.
    """

    device: str = attrs.field(default="cpu", validator=_check_device)
    threads: int = attrs.field(default=1, validator=attrs.validators.ge(1))


def _factory(config: TorchConfig, ctx: ProviderContext) -> Any:
    from modelyard_plugins.torch_builder.builder import TorchBuilder

    return TorchBuilder(config)


@hookimpl
def modelyard_builders() -> Iterator[BuilderProvider]:
    """Offer the ``torch`` builder when torch is installed."""
    yield BuilderProvider(name="torch", factory=_factory, config_schema=TorchConfig, requires=("torch",),
                          extra="torch", description="TorchScript / torch.export programs and safetensors weights")


__all__ = ["TorchConfig"]
