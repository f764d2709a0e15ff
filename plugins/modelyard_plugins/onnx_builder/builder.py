"""Build and load ONNX bundles; the onnxruntime loader here also serves the ``sklearn`` flavor.

onnx and onnxruntime are imported inside functions: importing this module costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np
import structlog
from modelyard.bundles import InputAdapter, bounded_int, max_threads, pin, validate_loaded
from modelyard.errors import BuildError, InvalidInput
from modelyard.types import BuildOptions, BuiltBundle, Signature, TensorSpec

if TYPE_CHECKING:
    import onnx

    from modelyard_plugins.onnx_builder import OnnxConfig

log = structlog.get_logger(__name__)

ARTIFACT_NAME = "model.onnx"

# onnx.TensorProto element types -> V2 datatypes (numbers, so onnx need not be imported to read them).
_ELEM_TYPES = {1: "FP32", 2: "UINT8", 3: "INT8", 4: "UINT16", 5: "INT16", 6: "INT32", 7: "INT64", 8: "BYTES",
               9: "BOOL", 10: "FP16", 11: "FP64", 12: "UINT32", 13: "UINT64"}  # fmt: skip
# onnxruntime's type strings, for sessions loaded without a stored signature.
_ORT_TYPES = {"tensor(float)": "FP32", "tensor(uint8)": "UINT8", "tensor(int8)": "INT8", "tensor(uint16)": "UINT16",
              "tensor(int16)": "INT16", "tensor(int32)": "INT32", "tensor(int64)": "INT64",
              "tensor(string)": "BYTES", "tensor(bool)": "BOOL", "tensor(float16)": "FP16",
              "tensor(double)": "FP64", "tensor(uint32)": "UINT32", "tensor(uint64)": "UINT64"}  # fmt: skip


@attrs.frozen(kw_only=True)
class SessionSettings:
    """How an onnxruntime session is created: thread counts and execution providers in preference order."""

    intra_op_threads: int = 1
    inter_op_threads: int = 1
    providers: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def with_options(self, options: Mapping[str, Any] | None) -> SessionSettings:
        """These settings overridden by a deployment's load options (keys other flavors use are ignored)."""
        if not options:
            return self
        changes: dict[str, Any] = {}
        for key in ("intra_op_threads", "inter_op_threads"):
            if key in options:
                # Bounded: onnxruntime starts every thread asked for (a million of them hang a deploy).
                changes[key] = bounded_int(options[key], field=key, low=0, high=max_threads())
        if "providers" in options:
            providers = options["providers"]
            if isinstance(providers, str) or not all(isinstance(p, str) for p in providers):
                raise InvalidInput(f"providers: expected a list of strings, got {providers!r}", field="providers")
            changes["providers"] = tuple(providers)
        return attrs.evolve(self, **changes)


def create_session(model: Path | bytes, settings: SessionSettings) -> Any:
    """An onnxruntime InferenceSession for ``model`` (a path or serialized bytes) with ``settings``.

    Requested providers that this onnxruntime lacks (e.g. CUDA on a CPU build) are skipped with a warning; the
    CPU provider always comes last so that every model can run.
    """
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = settings.intra_op_threads
    so.inter_op_num_threads = settings.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3  # errors only: onnxruntime's warnings are noise for served models
    available = set(ort.get_available_providers())
    providers = [p for p in settings.providers if p in available]
    skipped = [p for p in settings.providers if p not in available]
    if skipped:
        log.warning("onnxruntime providers not available, skipped", skipped=skipped, available=sorted(available))
    if "CPUExecutionProvider" not in providers:
        providers.append("CPUExecutionProvider")
    source = model if isinstance(model, bytes) else str(model)
    return ort.InferenceSession(source, sess_options=so, providers=providers)


def signature_from_session(session: Any) -> Signature:
    """A signature read from a live session (used when a version has no stored signature)."""

    def spec(arg: Any) -> TensorSpec:
        datatype = _ORT_TYPES.get(arg.type)
        if datatype is None:
            raise BuildError(f"onnx tensor {arg.name!r} has type {arg.type}, which is not a plain tensor type")
        shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or ()))
        return TensorSpec(arg.name, datatype, shape)

    return Signature(tuple(spec(i) for i in session.get_inputs()), tuple(spec(o) for o in session.get_outputs()))


class OnnxModel:
    """An ONNX bundle loaded into one onnxruntime session; ``predict`` is thread-safe (onnxruntime sessions
    are) and releases the GIL while the graph runs."""

    def __init__(self, session: Any, signature: Signature) -> None:
        from onnxruntime.capi.onnxruntime_pybind11_state import InvalidArgument

        self.signature = signature
        self._session = session
        self._run = session.run
        self._adapt = InputAdapter(signature.inputs)
        self._output_names = [o.name for o in session.get_outputs()]
        self._invalid = InvalidArgument

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model on named inputs (checked and dtype-converted against the signature)."""
        feed = self._adapt(inputs)
        try:
            outputs = self._run(self._output_names, feed)
        except self._invalid as exc:  # e.g. two inputs whose batch sizes disagree
            raise InvalidInput(f"the model rejected the inputs: {exc}", field="inputs") from None
        return dict(zip(self._output_names, outputs, strict=True))

    def close(self) -> None:
        """Drop the session (onnxruntime frees it when the last reference goes)."""
        self._session = None
        self._run = _closed


def _closed(*_args: Any, **_kwargs: Any) -> Any:
    raise InvalidInput("the model has been unloaded", field="model")


def load_onnx(artifact: Path | bytes, signature: Signature | None, settings: SessionSettings) -> OnnxModel:
    """Load an ONNX artifact for serving with ``settings``; the signature is read from the model when None."""
    session = create_session(artifact, settings)
    return OnnxModel(session, signature if signature is not None else signature_from_session(session))


# --------------------------------------------------------------------------------------------- build helpers
def read_model(source: Any) -> tuple[onnx.ModelProto, bytes | None]:
    """Parse an upload: a path to an ``.onnx`` file, its bytes, or an ``onnx.ModelProto``.

    Returns the model and, when the upload is already a single self-contained file, its exact bytes (so the
    stored artifact is byte-for-byte the upload). Models with external data are loaded with it, to be saved as
    one file. Raises BuildError when the upload is not an ONNX model.
    """
    import onnx
    from google.protobuf.message import DecodeError
    from onnx.external_data_helper import uses_external_data

    path: Path | None = None
    if isinstance(source, onnx.ModelProto):
        return source, None
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
    elif isinstance(source, str | Path):
        path = Path(source)
        if path.is_dir():
            raise BuildError(f"onnx source {path.name!r} is a directory; expected one .onnx file")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BuildError(f"cannot read onnx source {path.name!r}: {exc}") from None
    else:
        raise BuildError(f"onnx source must be a path to an .onnx file, its bytes or an onnx.ModelProto, "
                         f"got {type(source).__name__}")
    try:
        model = onnx.load_model_from_string(data)
    except (DecodeError, ValueError, RuntimeError) as exc:
        raise BuildError(f"not an ONNX model (cannot parse the protobuf): {exc}") from None
    if any(uses_external_data(t) for t in model.graph.initializer):
        if path is None:
            raise BuildError("the ONNX model keeps weights in external data files; upload the .onnx file path "
                             "with its data files beside it")
        try:
            onnx.load_external_data_for_model(model, str(path.parent))
        except (OSError, ValueError, onnx.checker.ValidationError) as exc:
            raise BuildError(f"cannot load the ONNX model's external data: {exc}") from None
        return model, None
    return model, data


def _graph_spec(value: Any, *, kind: str) -> TensorSpec:
    """A TensorSpec from a graph input or output (the checker has made sure it has a shape)."""
    which = value.type.WhichOneof("value")
    if which != "tensor_type":
        hint = " (for skl2onnx classifiers convert with options={'zipmap': False})" if which == "sequence_type" else ""
        raise BuildError(f"onnx {kind} {value.name!r} is a {which or 'value of unknown type'}, not a tensor; "
                         f"modelyard serves tensor inputs and outputs only{hint}")
    tensor = value.type.tensor_type
    datatype = _ELEM_TYPES.get(tensor.elem_type)
    if datatype is None:
        import onnx

        name = onnx.TensorProto.DataType.Name(tensor.elem_type) if tensor.elem_type else "UNDEFINED"
        raise BuildError(f"onnx {kind} {value.name!r} has element type {name}, which has no V2 datatype")
    dims = tuple(d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else -1 for d in tensor.shape.dim)
    return TensorSpec(value.name, datatype, dims)


def graph_signature(model: onnx.ModelProto) -> Signature:
    """The signature from the graph's inputs (initializers excluded) and outputs; symbolic dims become -1."""
    initializers = {t.name for t in model.graph.initializer}
    # IR < 4 lists initializers among the inputs; callers never feed them.
    inputs = tuple(_graph_spec(v, kind="input") for v in model.graph.input if v.name not in initializers)
    if not inputs:
        raise BuildError("the ONNX graph has no inputs")
    return Signature(inputs, tuple(_graph_spec(v, kind="output") for v in model.graph.output))


def build_onnx_bundle(model: onnx.ModelProto, data: bytes | None, *, options: BuildOptions, workdir: Path,
                      settings: SessionSettings, flavor: str = "onnx",
                      reference: Callable[[Mapping[str, np.ndarray]], Mapping[str, Any]] | None = None,
                      metadata: Mapping[str, Any] | None = None,
                      requirements: Sequence[str] = ()) -> BuiltBundle:
    """Check, write, describe and validate an ONNX model as a bundle (shared with flavors converted to ONNX).

    ``reference`` computes, from the validation input, the outputs the source framework produces; they are
    compared like ``options.expected_output``.
    """
    import onnx

    try:
        onnx.checker.check_model(model)
    except (onnx.checker.ValidationError, ValueError) as exc:
        raise BuildError(f"the ONNX model is invalid: {str(exc).strip().splitlines()[0]}") from None
    signature = graph_signature(model)
    workdir.mkdir(parents=True, exist_ok=True)
    artifact = workdir / ARTIFACT_NAME
    if data is None:
        try:
            data = model.SerializeToString()
        except ValueError as exc:  # over protobuf's 2 GiB limit
            raise BuildError(f"the ONNX model cannot be saved as one file: {exc}") from None
    artifact.write_bytes(data)
    try:
        loaded = load_onnx(artifact, signature, settings)
    except BuildError:
        raise
    except Exception as exc:
        raise BuildError(f"onnxruntime cannot load the model: {str(exc).strip()}") from None
    try:
        validation, _ = validate_loaded(loaded, options, flavor=flavor, reference=reference)
    finally:
        loaded.close()
    meta = {"format": "onnx", "ir_version": int(model.ir_version),
            "opsets": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
            "producer": " ".join(p for p in (model.producer_name, model.producer_version) if p),
            **dict(metadata or {})}
    return BuiltBundle(artifact=artifact, signature=signature,
                       requirements=(pin("onnxruntime"), *requirements), metadata=meta, validation=validation)


class OnnxBuilder:
    """The ``onnx`` flavor: a checked ``.onnx`` file served by onnxruntime."""

    flavor = "onnx"
    #: What build processes should start with (see :mod:`modelyard.isolation`): a warmed-up onnx and onnxruntime.
    build_preload = ("onnx", "onnxruntime", "modelyard_plugins.onnx_builder.builder",
                     "modelyard_plugins.onnx_builder.warmup")

    def __init__(self, config: OnnxConfig) -> None:
        self.config = config
        self.settings = SessionSettings(intra_op_threads=config.intra_op_threads,
                                        inter_op_threads=config.inter_op_threads,
                                        providers=tuple(config.providers))

    def build(self, source: Path | Any, *, options: BuildOptions, workdir: Path) -> BuiltBundle:
        """Check ``source`` (``.onnx`` path, bytes or ModelProto), read its signature and validate it."""
        model, data = read_model(source)
        return build_onnx_bundle(model, data, options=options, workdir=workdir, settings=self.settings)

    def load(self, artifact: Path, *, signature: Signature | None, options: Mapping[str, Any] | None = None
             ) -> OnnxModel:
        """Open an onnxruntime session on the artifact; ``options`` may override threads and providers."""
        return load_onnx(artifact, signature, self.settings.with_options(options))

    def close(self) -> None:
        """Nothing to release: sessions belong to the loaded models."""


__all__ = ["OnnxBuilder", "OnnxModel", "SessionSettings", "build_onnx_bundle", "create_session",
           "graph_signature", "load_onnx", "read_model", "signature_from_session"]
