"""Build and load TensorFlow SavedModel bundles (one deterministic zip each).

tensorflow is imported inside functions only, after ``TF_CPP_MIN_LOG_LEVEL=2`` keeps its C++ logging quiet.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from modelyard.bundles import ArchiveLimits, InputAdapter, datatype_of, pin, unzip, validate_loaded, zip_dir
from modelyard.errors import BuildError, InvalidInput
from modelyard.types import BuildOptions, BuiltBundle, Signature, TensorSpec

ARTIFACT_NAME = "savedmodel.zip"
SIGNATURE_KEY = "serving_default"


def _tf() -> Any:
    # Must be set before the first import of tensorflow to have any effect; a user's own setting wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        import tensorflow as tf
    except ImportError as exc:  # pragma: no cover - the provider's requires= keeps us from getting here
        raise BuildError(f"tensorflow is not installed: pip install 'modelyard[tensorflow]' ({exc})") from None
    return tf


def _is_savedmodel(path: Path) -> bool:
    return (path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file()


def _savedmodel_root(tree: Path) -> Path:
    """The SavedModel inside an extracted tree: the tree itself or its single top-level directory."""
    if _is_savedmodel(tree):
        return tree
    children = [p for p in tree.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(children) == 1 and children[0].is_dir() and _is_savedmodel(children[0]):
        return children[0]
    raise BuildError("the zip holds no SavedModel (saved_model.pb at its root or in its single top-level folder)")


def _spec(name: str, spec: Any, *, kind: str) -> TensorSpec | None:
    """A TensorSpec from a tf.TensorSpec; None when the rank is unknown."""
    try:
        datatype = datatype_of(spec.dtype.as_numpy_dtype)
    except (TypeError, ValueError, AttributeError):
        raise BuildError(f"SavedModel {kind} {name!r} has dtype {getattr(spec, 'dtype', spec)!r}, which has no V2 "
                         "datatype") from None
    if spec.shape.rank is None:
        return None
    return TensorSpec(name, datatype, tuple(-1 if d is None else int(d) for d in spec.shape.as_list()))


def describe(fn: Any, *, sample: Mapping[str, Any] | None = None) -> tuple[Signature, list[str]]:
    """The signature of a concrete ``serving_default`` function, and the outputs whose rank is unknown."""
    tf = _tf()
    args, kwargs = fn.structured_input_signature
    if args:
        raise BuildError(f"the {SIGNATURE_KEY} signature takes positional inputs; signatures must name them")
    inputs = []
    # A signature's inputs and outputs are protobuf maps: no order survives saving, so sort them by name.
    for name, spec in sorted(kwargs.items()):
        if not isinstance(spec, tf.TensorSpec):
            raise BuildError(f"SavedModel input {name!r} is a {type(spec).__name__}, not a dense tensor")
        t = _spec(name, spec, kind="input")
        if t is None:
            if sample is None or name not in sample:
                raise BuildError(f"SavedModel input {name!r} has unknown rank; pass a sample_input to define it")
            t = TensorSpec(name, datatype_of(spec.dtype.as_numpy_dtype), (-1,) * np.asarray(sample[name]).ndim)
        inputs.append(t)
    outputs, unknown = [], []
    structured = fn.structured_outputs
    if not isinstance(structured, Mapping):
        raise BuildError(f"the {SIGNATURE_KEY} signature must return a dict of named tensors")
    for name, spec in sorted(structured.items()):
        if not isinstance(spec, tf.TensorSpec):
            raise BuildError(f"SavedModel output {name!r} is a {type(spec).__name__}, not a dense tensor")
        t = _spec(name, spec, kind="output")
        if t is None:
            unknown.append(name)
            t = TensorSpec(name, datatype_of(spec.dtype.as_numpy_dtype), ())
        outputs.append(t)
    return Signature(tuple(inputs), tuple(outputs)), unknown


class TensorflowModel:
    """A SavedModel's ``serving_default`` function, loaded once; ``predict`` calls it with numpy inputs.

    TensorFlow runs concrete functions from many threads at once and releases the GIL while it computes. The
    SavedModel is extracted to a private directory that :meth:`close` (or garbage collection) removes.
    """

    def __init__(self, loaded: Any, fn: Any, signature: Signature, tmpdir: Path) -> None:
        tf = _tf()
        self.signature = signature
        self._loaded = loaded  # keeps the variables the function captures alive
        self._fn = fn
        self._adapt = InputAdapter(signature.inputs)
        produced = set(fn.structured_outputs)
        self._output_names = tuple(o.name for o in signature.outputs if o.name in produced) or tuple(sorted(produced))
        self._errors = (tf.errors.InvalidArgumentError, TypeError, ValueError)
        self.directory = tmpdir
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(tmpdir), True)

    @property
    def function(self) -> Any:
        """The concrete ``serving_default`` function."""
        return self._fn

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run ``serving_default`` on named inputs; returns its named outputs as numpy arrays."""
        feed = self._adapt(inputs)
        try:
            result = self._fn(**feed)
        except self._errors as exc:
            raise InvalidInput(f"the model rejected the inputs: {str(exc).strip().splitlines()[0]}",
                               field="inputs") from None
        return {name: result[name].numpy() for name in self._output_names}

    def close(self) -> None:
        """Drop the function and remove the extracted SavedModel."""
        self._fn = self._loaded = None
        self._cleanup()


def load_savedmodel(artifact: Path, signature: Signature | None, *,
                    sample: Mapping[str, Any] | None = None,
                    archive_limits: ArchiveLimits | None = None) -> TensorflowModel:
    """Extract the zipped SavedModel, load it with ``tf.saved_model.load`` and pick ``serving_default``.

    Without a stored ``signature`` it is read from the function (``sample`` gives unknown input ranks). The zip
    is expanded within ``archive_limits`` (default :class:`~modelyard.bundles.ArchiveLimits`).
    """
    tf = _tf()
    tmpdir = Path(tempfile.mkdtemp(prefix="modelyard-tf-"))
    try:
        root = _savedmodel_root(unzip(Path(artifact), tmpdir, limits=archive_limits))
        try:
            loaded = tf.saved_model.load(str(root))
        except Exception as exc:
            raise BuildError(f"tf.saved_model.load failed: {type(exc).__name__}: "
                             f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None
        signatures = getattr(loaded, "signatures", {})
        if SIGNATURE_KEY not in signatures:
            raise BuildError(f"the SavedModel has no {SIGNATURE_KEY!r} signature; it has: "
                             f"{', '.join(signatures) or 'none'} (save with signatures={{'{SIGNATURE_KEY}': fn}})")
        fn = signatures[SIGNATURE_KEY]
        if signature is None:
            signature, _ = describe(fn, sample=sample)
        return TensorflowModel(loaded, fn, signature, tmpdir)
    except BaseException:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise


class TensorflowBuilder:
    """The ``tensorflow`` flavor. Zips (uploads and stored artifacts) are expanded within ``archive_limits``."""

    flavor = "tensorflow"

    def __init__(self, *, archive_limits: ArchiveLimits | None = None) -> None:
        self.archive_limits = archive_limits or ArchiveLimits()

    def _savedmodel_dir(self, source: Any, workdir: Path) -> tuple[Path, str]:
        """A SavedModel directory for ``source`` (inside ``workdir`` unless it is the upload itself)."""
        if isinstance(source, str | Path):
            path = Path(source)
            if path.is_dir():
                if not _is_savedmodel(path):
                    raise BuildError(f"{path.name!r} is not a SavedModel directory (no saved_model.pb)")
                return path, "directory"
            if not path.is_file():
                raise BuildError(f"tensorflow source {path.name!r} does not exist")
            return _savedmodel_root(unzip(path, workdir / "upload", limits=self.archive_limits)), "zip"
        tf = _tf()
        dest = workdir / "savedmodel"
        if hasattr(source, "export") and type(source).__module__.startswith(("keras", "tf_keras")):
            try:
                source.export(str(dest), verbose=False)
            except TypeError:
                source.export(str(dest))
            return dest, "keras"
        if isinstance(source, tf.Module):
            tf.saved_model.save(source, str(dest))
            return dest, "tf.Module"
        raise BuildError(f"tensorflow source must be a SavedModel directory, a .zip of one, a tf.Module or a Keras "
                         f"model, got {type(source).__name__}")

    def build(self, source: Path | Any, *, options: BuildOptions, workdir: Path) -> BuiltBundle:
        """Zip the SavedModel deterministically, read ``serving_default``'s signature and validate it."""
        workdir.mkdir(parents=True, exist_ok=True)  # an upload's zip is checked before tensorflow is imported
        try:
            directory, origin = self._savedmodel_dir(source, workdir)
        except BuildError:
            raise
        except Exception as exc:
            raise BuildError(f"cannot save the tensorflow model: {type(exc).__name__}: {exc}") from exc
        artifact = zip_dir(directory, workdir / ARTIFACT_NAME)
        model = load_savedmodel(artifact, None, sample=options.sample_input, archive_limits=self.archive_limits)
        try:
            signature, unknown = describe(model.function, sample=options.sample_input)
            validation, outputs = validate_loaded(model, options, flavor=self.flavor)
        finally:
            model.close()
        if unknown:  # rank not recorded: take it from what the model produced, every dim dynamic
            signature = Signature(signature.inputs, tuple(
                TensorSpec(s.name, s.datatype, (-1,) * np.asarray(outputs[s.name]).ndim) if s.name in unknown else s
                for s in signature.outputs))
        metadata = {"format": "savedmodel", "source": origin, "signature_key": SIGNATURE_KEY,
                    "tensorflow_version": _tf().__version__}
        return BuiltBundle(artifact=artifact, signature=signature, requirements=(pin("tensorflow"),),
                           metadata=metadata, validation=validation)

    def load(self, artifact: Path, *, signature: Signature | None,
             options: Mapping[str, Any] | None = None) -> TensorflowModel:
        """Load the zipped SavedModel once and serve its ``serving_default`` function."""
        return load_savedmodel(artifact, signature, archive_limits=self.archive_limits)

    def close(self) -> None:
        """Nothing to release: SavedModels belong to the loaded models."""


__all__ = ["TensorflowBuilder", "TensorflowModel", "describe", "load_savedmodel"]
