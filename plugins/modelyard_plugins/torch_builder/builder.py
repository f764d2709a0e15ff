"""Build and load torch bundles: one TorchScript archive or one ``torch.export`` program per bundle.

torch is imported inside functions only. ``torch.load`` is never called here on an upload: TorchScript archives go
through ``torch.jit.load`` and programs through ``torch.export.load``, and weights come from safetensors.
"""

from __future__ import annotations

import inspect
import shutil
import warnings
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from modelyard.bundles import (
    ArchiveLimits,
    InputAdapter,
    bounded_int,
    datatype_of,
    max_threads,
    parse_specs,
    pin,
    sample_inputs,
    sample_signature_inputs,
    spec_of,
    validate_loaded,
)
from modelyard.errors import BuildError, InvalidInput, Unavailable
from modelyard.types import BuildOptions, BuiltBundle, Signature, TensorSpec

from modelyard_plugins.torch_builder import DEVICE, factories

if TYPE_CHECKING:
    from modelyard_plugins.torch_builder import TorchConfig

TORCHSCRIPT = "torchscript"
EXPORT = "torch.export"
_NAMES = {TORCHSCRIPT: "model.pt", EXPORT: "model.pt2"}


@contextmanager
def _quiet() -> Iterator[None]:
    # torch.jit is deprecated in favour of torch.export but remains the format many users ship; don't nag them.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - the provider's requires= keeps us from getting here
        raise BuildError(f"torch is not installed: pip install 'modelyard[torch]' ({exc})") from None
    return torch


def _datatype(dtype: Any) -> str:
    torch = _torch()
    try:
        return datatype_of(torch.empty((), dtype=dtype).numpy().dtype)
    except (TypeError, ValueError, RuntimeError):
        raise BuildError(f"torch dtype {dtype} has no V2 datatype") from None


# --------------------------------------------------------------------------------------------- formats
def sniff_format(path: Path, *, limits: ArchiveLimits | None = None) -> str:
    """``torchscript`` or ``torch.export`` for a torch archive, told apart by its entries (artifacts are stored
    by digest, without their suffix). Raises BuildError for anything else, with what to upload instead.

    torch reads the archive itself, into memory, allocating what each entry's header declares; so the entry
    count and the declared sizes are held to ``limits`` (default :class:`~modelyard.bundles.ArchiveLimits`).
    """
    limits = limits or ArchiveLimits()
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
    except (zipfile.BadZipFile, OSError):
        infos = []
    if len(infos) > limits.max_entries:
        raise BuildError(f"{path.name}: the archive has {len(infos)} entries, over the limit "
                         f"(max_archive_entries = {limits.max_entries})")
    if sum(i.file_size for i in infos) > limits.max_bytes:
        raise BuildError(f"{path.name}: the archive expands to more than {limits.max_bytes} bytes, over the "
                         f"limit (max_archive_bytes = {limits.max_bytes})")
    names = [i.filename for i in infos]
    if any(n.endswith("/archive_format") or n == "archive_format" for n in names):
        return EXPORT
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        return TORCHSCRIPT
    if names and any(n.endswith("data.pkl") for n in names):
        raise BuildError(f"{path.name} looks like a torch.save pickle, which modelyard never loads (pickle runs "
                         "code); save the model with torch.export.save, torch.jit.save or as .safetensors")
    raise BuildError(f"{path.name} is not a TorchScript archive, a torch.export program (.pt2) or a "
                     ".safetensors file")


def _is_safetensors(path: Path) -> bool:
    # safetensors: an 8-byte little-endian header length, then a JSON header starting with '{'.
    try:
        with path.open("rb") as f:
            head = f.read(9)
    except OSError:
        return False
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") < (100 << 20)


# --------------------------------------------------------------------------------------------- loaded model
class TorchModel:
    """A torch program loaded for serving; ``predict`` runs under ``torch.inference_mode()``.

    TorchScript modules and exported programs are safe to call from many threads for inference, and torch
    releases the GIL inside its kernels.
    """

    def __init__(self, module: Any, signature: Signature, *, device: str, fmt: str,
                 output_names: Sequence[str] | None = None) -> None:
        torch = _torch()
        self.signature = signature
        self.format = fmt
        self._module = module
        self._torch = torch
        self._device = torch.device(device)
        self._on_cpu = self._device.type == "cpu"
        self._oom = torch.cuda.OutOfMemoryError
        self._adapt = InputAdapter(signature.inputs)
        names = tuple(output_names) if output_names else tuple(o.name for o in signature.outputs)
        self._output_names = names or None

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the program on named inputs; outputs are named as in the signature."""
        torch = self._torch
        tensors = []
        for array in self._adapt.ordered(inputs):
            if not (array.flags.writeable and array.flags.c_contiguous):
                array = np.ascontiguousarray(array).copy()  # read-only wire buffers; torch wants writable memory
            tensor = torch.from_numpy(array)
            tensors.append(tensor if self._on_cpu else tensor.to(self._device, non_blocking=True))
        with torch.inference_mode():
            try:
                result = self._module(*tensors)
            except self._oom:
                raise
            except (RuntimeError, AssertionError, ValueError) as exc:
                # Guards of exported programs and shape errors inside the model: the caller's input is at fault.
                raise InvalidInput(f"the model rejected the inputs: {str(exc).strip().splitlines()[0]}",
                                   field="inputs") from None
        return self._outputs(result)

    def _outputs(self, result: Any) -> dict[str, np.ndarray]:
        torch = self._torch
        if isinstance(result, torch.Tensor):
            items: list[tuple[str | None, Any]] = [(None, result)]
        elif isinstance(result, Mapping):
            items = [(str(k), v) for k, v in result.items()]
        elif isinstance(result, list | tuple):
            items = [(None, v) for v in result]
        else:
            raise InvalidInput(f"the model returned {type(result).__name__}, not tensors", field="outputs")
        names = self._output_names
        out = {}
        for i, (key, value) in enumerate(items):
            name = key if key is not None else (names[i] if names and i < len(names) else f"output_{i}")
            out[name] = (value if self._on_cpu else value.cpu()).numpy()
        return out

    def close(self) -> None:
        """Drop the module (and its device memory)."""
        self._module = None
        if not self._on_cpu and self._torch.cuda.is_available():
            self._torch.cuda.empty_cache()


def load_program(path: Path, *, device: str, threads: int, limits: ArchiveLimits | None = None
                 ) -> tuple[Any, str, Any]:
    """Load a torch artifact onto ``device``: returns (callable module, format, ExportedProgram or None)."""
    torch = _torch()
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise Unavailable(f"torch device {device!r} is not available here (torch.cuda.is_available() is False); "
                          "use device = 'cpu' in [builders.torch] or deploy where a GPU is present")
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)  # per process: the last bundle loaded decides
    fmt = sniff_format(path, limits=limits)
    with _quiet():
        if fmt == TORCHSCRIPT:
            module = torch.jit.load(str(path), map_location=device)
            module.eval()
            return module, fmt, None
        # An open file, not a path: cached artifacts are named by digest, without the ".pt2" suffix that
        # torch.export.load otherwise insists on (it warns and then loads anyway).
        with open(path, "rb") as fh:
            program = torch.export.load(fh)
        module = program.module()
        if not device.startswith("cpu"):
            module = module.to(device)
        return module, fmt, program


# --------------------------------------------------------------------------------------------- signatures
def _forward_names(module: Any, fmt: str, program: Any) -> list[str]:
    if program is not None:
        return list(program.graph_signature.user_inputs)
    if fmt == TORCHSCRIPT:
        return [a.name for a in module.forward.schema.arguments[1:]]
    params = inspect.signature(module.forward).parameters.values()
    return [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]


def _program_specs(program: Any) -> tuple[list[TensorSpec], list[tuple[str, tuple[int, ...]]]]:
    """Input specs and output (datatype, shape) from an ExportedProgram's graph; symbolic dims become -1."""
    torch = _torch()
    from torch.export.graph_signature import InputKind, OutputKind

    metas = {n.name: n.meta.get("val") for n in program.graph.nodes}

    def shape_of(val: Any) -> tuple[int, ...]:
        return tuple(int(d) if isinstance(d, int) else -1 for d in val.shape)

    inputs = []
    for spec in program.graph_signature.input_specs:
        if spec.kind != InputKind.USER_INPUT:
            continue
        val = metas.get(spec.arg.name)
        if not isinstance(val, torch.Tensor):
            raise BuildError(f"torch.export input {spec.arg.name!r} is not a tensor; modelyard serves tensor inputs")
        inputs.append(TensorSpec(spec.arg.name, _datatype(val.dtype), shape_of(val)))
    outputs = []
    for spec in program.graph_signature.output_specs:
        if spec.kind != OutputKind.USER_OUTPUT:
            continue
        val = metas.get(getattr(spec.arg, "name", ""))
        if isinstance(val, torch.Tensor):
            outputs.append((_datatype(val.dtype), shape_of(val)))
        else:
            outputs.append(("", ()))
    return inputs, outputs


def _renamed(specs: Sequence[TensorSpec], names: Sequence[str] | None) -> tuple[TensorSpec, ...]:
    if not names:
        return tuple(specs)
    if len(names) != len(specs):
        raise BuildError(f"options['input_names'] names {len(names)} inputs, but the model takes {len(specs)}")
    return tuple(TensorSpec(n, s.datatype, s.shape) for n, s in zip(names, specs, strict=True))


def _input_specs(options: BuildOptions, names: list[str], *, fmt: str, program: Any) -> tuple[TensorSpec, ...]:
    opts = options.options
    given = list(opts["input_names"]) if opts.get("input_names") else None
    if program is not None:
        return _renamed(_program_specs(program)[0], given)
    if opts.get("input_spec") is not None:
        return _renamed(parse_specs(opts["input_spec"]), given)
    if options.sample_input is not None:
        order = given or (names if set(names) == set(options.sample_input) else None)
        return sample_signature_inputs(options.sample_input, order)
    raise BuildError(f"a {fmt} model carries no input dtypes or shapes: pass options['input_spec'] (a list of "
                     "{name, datatype, shape} with -1 for dynamic dims) or a sample_input")


# --------------------------------------------------------------------------------------------- conversion
def _module_from_safetensors(path: Path, factory: factories.Allowed | None, module_paths: Sequence[str]) -> Any:
    torch = _torch()
    if factory is None:
        raise BuildError("a .safetensors upload holds weights only: pass options['module_factory'] = "
                         "'pkg.module:callable' returning the nn.Module to load them into")
    try:
        from safetensors import SafetensorError
        from safetensors.torch import load_file
    except ImportError:
        raise BuildError("safetensors is not installed: pip install 'modelyard[torch]'") from None
    ref = factory.ref
    with factories.importable_from(module_paths):
        make = factories.load(factory)
        try:
            module = make()
        except Exception as exc:
            raise BuildError(f"options['module_factory'] {ref!r} failed: {type(exc).__name__}: {exc}") from exc
    if not isinstance(module, torch.nn.Module):
        raise BuildError(f"options['module_factory'] {ref!r} returned {type(module).__name__}, not a torch.nn.Module")
    try:
        state = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as exc:
        raise BuildError(f"{path.name}: not a readable safetensors file: {exc}") from None
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise BuildError(f"the safetensors weights do not fit the module from {ref!r}: "
                         f"{str(exc).strip().splitlines()[0]} {str(exc).strip().splitlines()[1:2]}") from None
    return module


def _example_inputs(module: Any, options: BuildOptions) -> tuple[tuple[TensorSpec, ...], dict[str, np.ndarray]]:
    """Specs and example arrays for converting an nn.Module; dynamic dims get size 2 in examples, as torch.export
    specialises dims of size 0 and 1."""
    names = _forward_names(module, "module", None)
    specs = _input_specs(options, names, fmt="nn.Module", program=None)
    if options.sample_input is not None:
        examples = {}
        for s in specs:
            arr = np.asarray(options.sample_input[s.name])
            if arr.ndim and s.shape and s.shape[0] == -1 and arr.shape[0] == 1:
                arr = np.concatenate([arr, arr])
            examples[s.name] = arr
    else:
        examples = sample_inputs(Signature(specs, ()), batch=2)
    return specs, examples


def convert_module(module: Any, options: BuildOptions, workdir: Path) -> tuple[Path, str]:
    """Save an nn.Module as a program: ``torch.export`` by default, TorchScript with options['convert']='script'."""
    torch = _torch()
    module.eval()
    how = options.options.get("convert", "export")
    if how not in ("export", "script"):
        raise BuildError(f"options['convert'] must be 'export' or 'script', got {how!r}")
    if how == "script":
        dest = workdir / _NAMES[TORCHSCRIPT]
        try:
            with _quiet():
                torch.jit.save(torch.jit.script(module), str(dest))
        except Exception as exc:
            raise BuildError(f"torch.jit.script failed: {str(exc).strip().splitlines()[0]}") from exc
        return dest, TORCHSCRIPT
    specs, examples = _example_inputs(module, options)
    args = tuple(torch.from_numpy(np.ascontiguousarray(examples[s.name]).copy()) for s in specs)
    dynamic = tuple({i: torch.export.Dim.AUTO for i, d in enumerate(s.shape) if d < 0} or None for s in specs)
    dest = workdir / _NAMES[EXPORT]
    try:
        with _quiet():
            program = torch.export.export(module, args, dynamic_shapes=dynamic)
            torch.export.save(program, str(dest))
    except Exception as exc:
        raise BuildError(f"torch.export failed ({type(exc).__name__}): {str(exc).strip().splitlines()[0]} — try "
                         "options['convert'] = 'script'") from exc
    return dest, EXPORT


# --------------------------------------------------------------------------------------------- builder
class TorchBuilder:
    """The ``torch`` flavor."""

    flavor = "torch"

    def __init__(self, config: TorchConfig, *, base_dir: Path | None = None,
                 archive_limits: ArchiveLimits | None = None) -> None:
        self.config = config
        base = Path(base_dir) if base_dir is not None else Path.cwd()
        #: ``[builders.torch] module_paths`` made absolute against the config file's folder.
        self.module_paths = tuple(str((base / Path(p).expanduser()).resolve()) for p in config.module_paths)
        self.archive_limits = archive_limits or ArchiveLimits()

    def _materialise(self, source: Any, options: BuildOptions, workdir: Path,
                     factory: factories.Allowed | None) -> tuple[Path, str, str]:
        """Write the upload into ``workdir`` as one program file: (path, format, what the upload was)."""
        torch = _torch()
        workdir.mkdir(parents=True, exist_ok=True)
        if isinstance(source, torch.jit.ScriptModule):
            dest = workdir / _NAMES[TORCHSCRIPT]
            with _quiet():
                torch.jit.save(source, str(dest))
            return dest, TORCHSCRIPT, "ScriptModule"
        if isinstance(source, torch.export.ExportedProgram):
            dest = workdir / _NAMES[EXPORT]
            torch.export.save(source, str(dest))
            return dest, EXPORT, "ExportedProgram"
        if isinstance(source, torch.nn.Module):
            return (*convert_module(source, options, workdir), "nn.Module")
        if not isinstance(source, str | Path):
            raise BuildError(f"torch source must be a file path, a ScriptModule, an ExportedProgram or an nn.Module, "
                             f"got {type(source).__name__}")
        path = Path(source)
        if path.is_dir():
            raise BuildError(f"torch source {path.name!r} is a directory; expected one file")
        if not path.is_file():
            raise BuildError(f"torch source {path.name!r} does not exist")
        if path.suffix == ".safetensors" or _is_safetensors(path):
            module = _module_from_safetensors(path, factory, self.module_paths)
            return (*convert_module(module, options, workdir), "safetensors")
        fmt = sniff_format(path, limits=self.archive_limits)
        dest = workdir / _NAMES[fmt]
        if path.resolve() != dest.resolve():
            shutil.copyfile(path, dest)
        return dest, fmt, "file"

    def build(self, source: Path | Any, *, options: BuildOptions, workdir: Path) -> BuiltBundle:
        """Normalise ``source`` to one program file, derive its signature and validate it as serving loads it.

        A ``module_factory`` option is checked against config before anything else happens (InvalidInput, HTTP
        422, when config does not allow it): it names code to import and run.
        """
        ref = options.options.get("module_factory")
        factory = factories.authorise(ref, self.config.module_factories) if ref is not None else None
        try:
            artifact, fmt, origin = self._materialise(source, options, workdir, factory)
        except BuildError:
            raise
        except Exception as exc:  # torch.jit.save / torch.export.save of an in-memory object
            raise BuildError(f"cannot save the torch model: {type(exc).__name__}: {exc}") from exc
        try:
            module, fmt, program = load_program(artifact, device=self.config.device, threads=self.config.threads,
                                                limits=self.archive_limits)
        except (BuildError, Unavailable) as exc:
            raise BuildError(str(exc)) from None
        except Exception as exc:
            raise BuildError(f"cannot load the {fmt} program: {type(exc).__name__}: {exc}") from None
        inputs = _input_specs(options, _forward_names(module, fmt, program), fmt=fmt, program=program)
        if any(s.datatype == "BYTES" for s in inputs):
            raise BuildError("torch models take numeric tensors; a BYTES input cannot be fed to them")
        output_names = list(options.options["output_names"]) if options.options.get("output_names") else None
        provisional = TorchModel(module, Signature(inputs, ()), device=self.config.device, fmt=fmt,
                                 output_names=output_names)
        validation, outputs = validate_loaded(provisional, options, flavor=self.flavor)
        out_specs = [spec_of(name, value) for name, value in outputs.items()]
        if program is not None:
            _, graph_outputs = _program_specs(program)
            if len(graph_outputs) == len(out_specs):
                out_specs = [TensorSpec(s.name, s.datatype, shape if dt else s.shape)
                             for s, (dt, shape) in zip(out_specs, graph_outputs, strict=True)]
        signature = Signature(inputs, tuple(out_specs))
        torch = _torch()
        metadata = {"format": fmt, "source": origin, "torch_version": torch.__version__,
                    "device": self.config.device}
        return BuiltBundle(artifact=artifact, signature=signature, requirements=(pin("torch"),), metadata=metadata,
                           validation=validation)

    def load(self, artifact: Path, *, signature: Signature | None,
             options: Mapping[str, Any] | None = None) -> TorchModel:
        """Load the program for serving; ``options`` may override ``device`` and ``threads``."""
        options = dict(options or {})
        device = options.get("device", self.config.device)
        if not isinstance(device, str) or not DEVICE.match(device):
            raise InvalidInput(f"device: expected 'cpu', 'cuda' or 'cuda:N', got {device!r}", field="device")
        threads = bounded_int(options.get("threads", self.config.threads), field="threads", low=1,
                              high=max_threads())
        module, fmt, program = load_program(artifact, device=device, threads=threads, limits=self.archive_limits)
        if signature is None:
            if program is None:
                raise InvalidInput("a TorchScript bundle needs its stored signature to be served", field="signature")
            inputs, outs = _program_specs(program)
            signature = Signature(tuple(inputs), tuple(TensorSpec(f"output_{i}", dt or "FP32", shape)
                                                       for i, (dt, shape) in enumerate(outs)))
        return TorchModel(module, signature, device=device, fmt=fmt)

    def close(self) -> None:
        """Nothing to release: modules belong to the loaded models."""


__all__ = ["EXPORT", "TORCHSCRIPT", "TorchBuilder", "TorchModel", "convert_module", "load_program", "sniff_format"]
