"""The ``torch`` builder: TorchScript and ``torch.export`` programs, or safetensors weights plus a module factory.

Nothing is ever unpickled: uploads are TorchScript archives (``torch.jit.save``), ``torch.export`` programs
(``.pt2``, ``torch.export.save``), in-memory ``ScriptModule``/``ExportedProgram``/``nn.Module`` objects, or a
``.safetensors`` state dict with ``options["module_factory"] = "pkg.module:callable"`` — a factory that
``[builders.torch] module_factories`` allows, or an installed entry point's name. ``[builders.torch]`` also picks
the device and thread count. torch is imported only when a model is built or loaded
(``pip install 'modelyard[torch]'``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import attrs
from modelyard import hookimpl
from modelyard.bundles import ArchiveLimits, int_range, max_threads
from modelyard.errors import PluginError
from modelyard.providers import BuilderProvider, ProviderContext

#: The devices a model may run on: ``cpu``, ``cuda`` or ``cuda:N``.
DEVICE = re.compile(r"^(cpu|cuda(:\d{1,3})?)$")


def _check_device(_inst: Any, _attr: Any, value: str) -> None:
    if not DEVICE.match(value):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N', got {value!r}")


@attrs.frozen(kw_only=True)
class TorchConfig:
    """Options of the ``torch`` builder (``[builders.torch]``).

    ``device`` is where models run (``"cuda"`` needs ``torch.cuda.is_available()``; loading fails clearly
    otherwise). ``threads`` sets torch's intra-op thread count, which torch keeps per process: one suits a server
    running many requests at once (at most four per CPU, and 256).

    ``module_factories`` are glob patterns over ``"module:callable"`` naming the module factories a registration
    of safetensors weights may ask for (``options["module_factory"]``); nothing else is imported, except the
    entry points installed in the ``modelyard.module_factories`` group. ``module_paths`` are folders, relative to
    the config file, that those modules are imported from.
    """

    device: str = attrs.field(default="cpu", validator=_check_device)
    threads: int = attrs.field(default=1, validator=int_range(1, max_threads))
    module_factories: list[str] = attrs.field(factory=list)
    module_paths: list[str] = attrs.field(factory=list)


def _factory(config: TorchConfig, ctx: ProviderContext) -> Any:
    from modelyard_plugins.torch_builder.builder import TorchBuilder

    base_dir = getattr(ctx.config, "base_dir", None) or Path.cwd()
    for path in config.module_paths:
        if not (base_dir / Path(path).expanduser()).is_dir():
            raise PluginError(f"[builders.torch] module_paths: {path!r} is not a directory (relative paths are "
                              f"read from the config file's folder, {str(base_dir)!r})")
    return TorchBuilder(config, base_dir=base_dir,
                        archive_limits=ArchiveLimits.from_config(getattr(ctx.config, "platform", None)))


@hookimpl
def modelyard_builders() -> Iterator[BuilderProvider]:
    """Offer the ``torch`` builder when torch is installed."""
    yield BuilderProvider(name="torch", factory=_factory, config_schema=TorchConfig, requires=("torch",),
                          extra="torch", description="TorchScript / torch.export programs and safetensors weights")


__all__ = ["DEVICE", "TorchConfig"]
