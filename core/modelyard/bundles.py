"""Helpers every builder shares: datatypes, generated sample inputs, input checking, output comparison,
validation runs, pinned requirements and deterministic zips.

Builders live in plugins, but what makes a bundle *valid* is the same for every flavor: the normalised artifact
is loaded exactly as serving will load it, run on the caller's sample (or an input generated from the signature),
and compared with the expected output. Only numpy and the standard library are imported here.
"""

from __future__ import annotations

import contextlib
import copy
import importlib.metadata
import math
import os
import re
import shutil
import stat
import zipfile
import zlib
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, NoReturn

import attrs
import numpy as np

from modelyard.datatypes import datatypes_by_kind_size, numpy_dtypes
from modelyard.errors import BuildError, InvalidInput
from modelyard.types import Signature, TensorSpec

if TYPE_CHECKING:
    from modelyard.hookspecs.builder import LoadedModel
    from modelyard.types import BuildOptions, Validation

# --------------------------------------------------------------------------------------------- datatypes
# The table itself is modelyard.datatypes (shared with the V2 codec and the records); here in native byte order.
_DTYPES: Mapping[str, np.dtype] = {name: dt.newbyteorder("=") for name, dt in numpy_dtypes().items()}
_BY_KIND_SIZE = datatypes_by_kind_size()
_TEXT_KINDS = frozenset("OSU")


def numpy_dtype(datatype: str) -> np.dtype:
    """The numpy dtype of a V2 datatype (``BYTES`` is ``object``, holding ``bytes``)."""
    try:
        return _DTYPES[datatype]
    except KeyError:
        raise ValueError(f"unknown datatype {datatype!r}; expected one of {', '.join(_DTYPES)}") from None


def datatype_of(dtype: Any) -> str:
    """The V2 datatype of a numpy dtype; object, ``bytes_`` and ``str_`` arrays are ``BYTES``."""
    dt = np.dtype(dtype)
    name = _BY_KIND_SIZE.get((dt.kind, dt.itemsize))
    if name is not None:
        return name
    if dt.kind in _TEXT_KINDS:
        return "BYTES"
    raise ValueError(f"numpy dtype {dt} has no V2 datatype")


def spec_of(name: str, array: np.ndarray, *, dynamic_batch: bool = True) -> TensorSpec:
    """A TensorSpec describing ``array``; its first axis becomes dynamic (``-1``) when ``dynamic_batch``."""
    shape = list(array.shape)
    if dynamic_batch and shape:
        shape[0] = -1
    return TensorSpec(name, datatype_of(array.dtype), tuple(shape))


def parse_specs(value: Any, *, what: str = "input_spec") -> tuple[TensorSpec, ...]:
    """Read a user-given list of tensor specs: TensorSpec objects or ``{"name", "datatype", "shape"}`` mappings,
    or a mapping ``name -> {"datatype", "shape"}``. Raises BuildError naming ``what`` on anything else."""
    try:
        if isinstance(value, Mapping):
            value = [{"name": k, **v} if isinstance(v, Mapping) else v for k, v in value.items()]
        specs = tuple(v if isinstance(v, TensorSpec) else TensorSpec.from_dict(v) for v in value)
    except (TypeError, KeyError, ValueError, AttributeError) as exc:
        raise BuildError(f"options[{what!r}]: expected a list of {{name, datatype, shape}} entries "
                         f"(datatype one of {', '.join(_DTYPES)}; -1 for dynamic dims): {exc}") from None
    if not specs:
        raise BuildError(f"options[{what!r}] is empty")
    return specs


# --------------------------------------------------------------------------------------------- generated inputs
#: The most elements one generated validation input may have (16 Mi: 64 MiB of FP32).
MAX_GENERATED_ELEMENTS = 1 << 24


def sample_inputs(signature: Signature, *, batch: int = 1, seed: int = 0) -> dict[str, np.ndarray]:
    """Inputs matching ``signature``: dynamic dims become ``batch``, values suit the datatype.

    Floats are standard normal, integers small and non-negative (they are often indices), booleans random and
    BYTES short byte strings, so that most models accept them. The same seed gives the same arrays.
    """
    rng = np.random.default_rng(seed)
    out: dict[str, np.ndarray] = {}
    for spec in signature.inputs:
        shape = tuple(batch if d < 0 else d for d in spec.shape)
        if math.prod(shape) > MAX_GENERATED_ELEMENTS:
            # A graph can declare any fixed size; generating it would take the memory a request chose.
            raise BuildError(f"input {spec.name!r} has shape {_shape_text(spec.shape)}: over "
                             f"{MAX_GENERATED_ELEMENTS} elements, too large to generate a validation input; "
                             "pass a sample_input")
        dtype = numpy_dtype(spec.datatype)
        if dtype.kind == "f":
            value = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind in "iu":
            value = rng.integers(0, 2, size=shape).astype(dtype)
        elif dtype.kind == "b":
            value = rng.integers(0, 2, size=shape).astype(bool)
        else:
            value = np.full(shape, b"modelyard", dtype=object)
        out[spec.name] = value
    return out


# --------------------------------------------------------------------------------------------- input checking
def _shape_text(shape: Sequence[int]) -> str:
    return "[" + ", ".join(str(d) for d in shape) + "]"


class InputAdapter:
    """Checks and converts named inputs against a signature, on the serving hot path.

    Everything that can be is computed once here; a call does a dict lookup, a dtype comparison and a shape
    check per input. Dtypes are converted when no information is lost in kind (float64 → float32, int → float,
    int → narrower int when every value fits); anything else — a missing or unknown input name, a wrong rank or
    fixed dimension, a float for an integer input — raises :class:`InvalidInput` naming the input. Instances are
    immutable, hence thread-safe.
    """

    __slots__ = ("_names", "_specs")

    def __init__(self, inputs: Sequence[TensorSpec]) -> None:
        self._names = frozenset(s.name for s in inputs)
        self._specs = tuple(
            (s.name, numpy_dtype(s.datatype), len(s.shape), tuple((i, d) for i, d in enumerate(s.shape) if d >= 0),
             s) for s in inputs
        )

    @property
    def names(self) -> tuple[str, ...]:
        """The input names, in signature order."""
        return tuple(s[0] for s in self._specs)

    def __call__(self, inputs: Mapping[str, Any]) -> dict[str, np.ndarray]:
        """The checked inputs as a dict in signature order, converted to the signature's dtypes."""
        if len(inputs) != len(self._specs):
            self._name_error(inputs)
        feed = {}
        for name, dtype, ndim, fixed, spec in self._specs:
            try:
                value = inputs[name]
            except KeyError:
                self._name_error(inputs)
            if value.__class__ is not np.ndarray or value.dtype != dtype:
                value = self._convert(value, dtype, spec)
            if value.ndim != ndim:
                self._shape_error(value, spec)
            shape = value.shape
            for i, d in fixed:
                if shape[i] != d:
                    self._shape_error(value, spec)
            feed[name] = value
        return feed

    def ordered(self, inputs: Mapping[str, Any]) -> list[np.ndarray]:
        """Like calling the adapter, but the arrays as a list in signature order (positional frameworks)."""
        return list(self(inputs).values())

    def _name_error(self, inputs: Mapping[str, Any]) -> NoReturn:
        unknown = sorted(str(k) for k in inputs if k not in self._names)
        if unknown:
            raise InvalidInput(f"unknown input {unknown[0]!r}; the model's inputs are: "
                               f"{', '.join(s[0] for s in self._specs)}", field=f"inputs.{unknown[0]}")
        missing = [s[0] for s in self._specs if s[0] not in inputs]
        raise InvalidInput(f"missing input {missing[0]!r}; the model's inputs are: "
                           f"{', '.join(s[0] for s in self._specs)}", field=f"inputs.{missing[0]}")

    @staticmethod
    def _shape_error(value: np.ndarray, spec: TensorSpec) -> NoReturn:
        raise InvalidInput(f"input {spec.name!r}: expected shape {_shape_text(spec.shape)} (-1 = any), got "
                           f"{_shape_text(value.shape)}", field=f"inputs.{spec.name}")

    @staticmethod
    def _convert(value: Any, dtype: np.dtype, spec: TensorSpec) -> np.ndarray:
        try:
            array = np.asarray(value)
        except (TypeError, ValueError) as exc:
            raise InvalidInput(f"input {spec.name!r}: not an array: {exc}", field=f"inputs.{spec.name}") from None
        src = array.dtype
        if src == dtype:
            return array
        if dtype.kind == "O":
            if src.kind in _TEXT_KINDS:
                return array.astype(object)
        elif src.kind in "iu" and dtype.kind in "iu":
            if np.can_cast(src, dtype, "safe"):
                return array.astype(dtype)
            # Narrowing (e.g. JSON's int64 into an INT32 input) is fine when every value fits.
            info = np.iinfo(dtype)
            if array.size == 0 or (array.min() >= info.min and array.max() <= info.max):
                return array.astype(dtype)
            raise InvalidInput(f"input {spec.name!r}: values do not fit {spec.datatype}", field=f"inputs.{spec.name}")
        elif src.kind in "iuf" and dtype.kind == "f":
            # Into a narrower float (FP64 → FP32, ints → FP16): a value beyond its range would silently become
            # infinite, so it is refused; values that fit convert as usual.
            with np.errstate(over="raise"):
                try:
                    return array.astype(dtype)
                except FloatingPointError:
                    limit = float(np.finfo(dtype).max)
                    raise InvalidInput(f"input {spec.name!r}: a value is beyond the range of {spec.datatype} "
                                       f"(±{limit:.4g}); it would become infinite", field=f"inputs.{spec.name}",
                                       input=spec.name) from None
        elif (src.kind == "b" and dtype.kind in "iuf"):
            return array.astype(dtype)
        given = datatype_of(src) if src.kind in "biufOSU" else str(src)
        raise InvalidInput(f"input {spec.name!r}: expected datatype {spec.datatype}, got {given}",
                           field=f"inputs.{spec.name}")


# --------------------------------------------------------------------------------------------- comparison
def compare_outputs(actual: Mapping[str, np.ndarray], expected: Mapping[str, Any], *, rtol: float, atol: float
                    ) -> tuple[tuple[str, ...], float | None]:
    """Compare the outputs named in ``expected`` with ``actual`` (``|a - e| <= atol + rtol * |e|``).

    Returns the compared names and the largest absolute error over numeric outputs (None when none was
    numeric). Raises :class:`BuildError` naming the first output that is missing, has another shape (squeezed
    shapes that agree are accepted: ``(n,)`` against ``(n, 1)``) or differs, with the error found.
    """
    worst: float | None = None
    for name, want in expected.items():
        if name not in actual:
            raise BuildError(f"expected output {name!r} is not produced by the model; its outputs are: "
                             f"{', '.join(actual)}")
        got = np.asarray(actual[name])
        want = np.asarray(want)
        if got.shape != want.shape:
            if np.squeeze(got).shape != np.squeeze(want).shape:
                raise BuildError(f"output {name!r}: shape {_shape_text(got.shape)} differs from the expected "
                                 f"{_shape_text(want.shape)}")
            got, want = np.squeeze(got), np.squeeze(want)
        numeric = got.dtype.kind in "biuf" and want.dtype.kind in "biuf"
        if not numeric:
            mismatch = ~np.equal(got.astype(str), want.astype(str)) if got.size else np.zeros(got.shape, bool)
            if np.any(mismatch):
                where = tuple(int(i) for i in np.argwhere(mismatch)[0])
                raise BuildError(f"output {name!r} differs from the expected output at index {where}: "
                                 f"got {got[where]!r}, expected {want[where]!r}")
            continue
        g, w = got.astype(np.float64), want.astype(np.float64)
        # Equal values (infinities included) and NaN in the same place on both sides agree.
        same = (g == w) | (np.isnan(g) & np.isnan(w))
        with np.errstate(invalid="ignore"):
            err = np.where(same, 0.0, np.abs(g - w))
        bad = ~(same | (err <= atol + rtol * np.abs(w)))
        max_err = float(np.nanmax(err, initial=0.0)) if err.size else 0.0
        if np.any(bad):
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise BuildError(f"output {name!r} differs from the expected output: max abs error {max_err:.6g} "
                             f"(rtol={rtol:g}, atol={atol:g}); first at index {where}: got {g[where]:.6g}, "
                             f"expected {w[where]:.6g}")
        worst = max_err if worst is None else max(worst, max_err)
    return tuple(expected), worst


# --------------------------------------------------------------------------------------------- validation
def validate_loaded(model: LoadedModel, options: BuildOptions, *, flavor: str,
                    reference: Callable[[Mapping[str, np.ndarray]], Mapping[str, Any]] | None = None,
                    ) -> tuple[Validation, dict[str, np.ndarray]]:
    """Run a loaded bundle on ``options.sample_input`` (or an input generated from its signature) and compare.

    ``reference`` computes, from the same inputs, outputs the source framework itself produces (e.g. an sklearn
    estimator's predictions); they are compared like ``options.expected_output``. Returns the validation record
    and the outputs; raises :class:`BuildError` saying which input or output failed and why.
    """
    from modelyard.types import Validation

    sample = options.sample_input
    source = "sample" if sample is not None else "generated"
    inputs = dict(sample) if sample is not None else sample_inputs(model.signature)
    try:
        outputs = model.predict(inputs)
    except InvalidInput as exc:
        raise BuildError(f"{flavor} bundle: the {source} input does not fit the model's signature: {exc}") from None
    except Exception as exc:
        raise BuildError(f"{flavor} bundle failed to run on the {source} input: {type(exc).__name__}: {exc}") from exc
    missing = [s.name for s in model.signature.outputs if s.name not in outputs]
    if missing:
        raise BuildError(f"{flavor} bundle did not produce output {missing[0]!r}")
    compared: tuple[str, ...] = ()
    worst: float | None = None
    own = None
    if reference is not None:
        try:
            own = reference(inputs)
        except Exception as exc:
            raise BuildError(f"the source {flavor} model failed on the {source} input: "
                             f"{type(exc).__name__}: {exc}") from exc
    for expected in (own, options.expected_output):
        if expected:
            names, err = compare_outputs(outputs, expected, rtol=options.rtol, atol=options.atol)
            compared += tuple(n for n in names if n not in compared)
            if err is not None:
                worst = err if worst is None else max(worst, err)
    message = f"ran on the {source} input" + (f"; compared {', '.join(compared)}" if compared else "")
    return Validation(ok=True, message=message, input_source=source, compared_outputs=compared,
                      max_abs_error=worst), outputs


def sample_signature_inputs(sample: Mapping[str, Any], names: Sequence[str] | None = None
                            ) -> tuple[TensorSpec, ...]:
    """Input specs read from a sample: datatype from the dtype, shape with the batch axis dynamic.

    ``names`` orders (and must cover) the sample's keys; without it the sample's own order is used.
    """
    keys = list(names) if names is not None else list(sample)
    unknown = [k for k in sample if k not in keys]
    missing = [k for k in keys if k not in sample]
    if unknown or missing:
        raise BuildError(f"sample_input names {sorted(sample)} do not match the model's inputs {keys}")
    try:
        return tuple(spec_of(k, np.asarray(sample[k])) for k in keys)
    except ValueError as exc:
        raise BuildError(f"sample_input: {exc}") from None


# --------------------------------------------------------------------------------------------- requirements
def pin(module: str) -> str:
    """``dist==version`` for the distribution that provides ``module`` (e.g. ``tensorflow`` may come from
    ``tensorflow-cpu``), so a bundle records exactly what built and validated it."""
    try:
        return f"{module}=={importlib.metadata.version(module)}"
    except importlib.metadata.PackageNotFoundError:
        pass
    for dist in importlib.metadata.packages_distributions().get(module, ()):
        meta = importlib.metadata.distribution(dist)
        name = re.sub(r"[-_.]+", "-", meta.metadata["Name"]).lower()  # PEP 503 normal form, as pip writes it
        return f"{name}=={meta.version}"
    return module


# --------------------------------------------------------------------------------------------- zips
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)


def zip_dir(src: Path, dest: Path) -> Path:
    """Zip the directory ``src`` into the file ``dest`` deterministically and return ``dest``.

    Entries are sorted, timestamps and permissions fixed and the data stored uncompressed (deflate output varies
    between zlib builds), so the same tree always gives the same bytes and therefore the same digest.
    Symbolic links are refused: a bundle must be self-contained.
    """
    src = Path(src)
    entries: list[tuple[str, Path]] = []
    for root, dirs, files in os.walk(src):
        dirs.sort()
        base = Path(root)
        for name in dirs + files:
            path = base / name
            if path.is_symlink():
                raise BuildError(f"{path.relative_to(src)} is a symbolic link; bundles must be self-contained")
            rel = path.relative_to(src).as_posix() + ("/" if path.is_dir() else "")
            entries.append((rel, path))
    entries.sort()
    dest.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_STORED) as zf:
        for rel, path in entries:
            info = zipfile.ZipInfo(rel, date_time=_ZIP_EPOCH)
            info.create_system = 3  # unix, whatever the host: keeps external_attr meaningful and stable
            if rel.endswith("/"):
                info.external_attr = (stat.S_IFDIR | 0o755) << 16 | 0x10
                zf.writestr(info, b"")
            else:
                info.external_attr = (stat.S_IFREG | 0o644) << 16
                with path.open("rb") as fin, zf.open(info, "w") as fout:
                    shutil.copyfileobj(fin, fout, 1 << 20)
    return dest


@attrs.frozen(kw_only=True)
class ArchiveLimits:
    """What one archive a builder expands may hold: bytes actually written, and entries.

    The platform's are ``[platform] max_archive_bytes`` and ``max_archive_entries``; builders take them from
    their provider context (:meth:`from_config`) and pass them to :func:`unzip`.
    """

    max_bytes: int = 4 << 30
    max_entries: int = 10_000

    @classmethod
    def from_config(cls, platform_config: Any) -> ArchiveLimits:
        """The limits of a :class:`~modelyard.config.PlatformConfig` (defaults for what it lacks)."""
        default = cls()
        return cls(max_bytes=getattr(platform_config, "max_archive_bytes", default.max_bytes),
                   max_entries=getattr(platform_config, "max_archive_entries", default.max_entries))


def _member_parts(info: zipfile.ZipInfo) -> tuple[str, ...]:
    """The path components of an entry inside the target; BuildError for one that escapes it or is a link."""
    name = info.filename.replace("\\", "/")
    parts = tuple(p for p in PurePosixPath(name).parts if p not in ("", "."))
    if name.startswith("/") or ".." in parts or (parts and ":" in parts[0]):
        raise BuildError(f"zip entry {info.filename!r} points outside the archive")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise BuildError(f"zip entry {info.filename!r} is a symbolic link")
    return parts


def _too_big(archive: str, max_bytes: int) -> BuildError:
    return BuildError(f"{archive}: the archive expands to more than {max_bytes} bytes, over the limit "
                      f"(max_archive_bytes = {max_bytes}); refused as a possible zip bomb")


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, budget: int, *, archive: str,
                    max_bytes: int) -> int:
    """Write one entry to ``target``, counting the bytes actually decompressed; returns how many."""
    # The header's file_size is the archive's own claim, and zipfile stops reading at it. Lift it, so that the
    # stream ends where its data ends (zipfile still checks the CRC there) and the count below decides.
    real = copy.copy(info)
    real.file_size = 1 << 62
    written = 0
    with zf.open(real) as src, target.open("wb") as out:
        while chunk := src.read(1 << 20):
            written += len(chunk)
            if written > budget:
                raise _too_big(archive, max_bytes)
            out.write(chunk)
    return written


def unzip(archive: Path, dest: Path, *, limits: ArchiveLimits | None = None, max_bytes: int | None = None,
          max_entries: int | None = None) -> Path:
    """Extract ``archive`` into ``dest`` and return ``dest``, refusing entries that would escape it.

    Absolute paths, ``..`` components and symbolic links raise :class:`BuildError`, as does an archive over
    ``limits`` (default :class:`ArchiveLimits`; ``max_bytes`` / ``max_entries`` override it): more entries than
    ``max_entries``, or more than ``max_bytes`` bytes — declared by the headers or, whatever they declare,
    actually written while extracting. After a refusal nothing extracted is left behind.
    """
    limits = limits or ArchiveLimits()
    max_bytes = limits.max_bytes if max_bytes is None else max_bytes
    max_entries = limits.max_entries if max_entries is None else max_entries
    name = Path(archive).name
    try:
        zf = zipfile.ZipFile(archive)
    except (zipfile.BadZipFile, OSError) as exc:
        raise BuildError(f"{name}: not a readable zip file: {exc}") from None
    dest = Path(dest)
    existed = set(os.listdir(dest)) if dest.is_dir() else None
    try:
        with zf:
            infos = zf.infolist()
            if len(infos) > max_entries:
                raise BuildError(f"{name}: the archive has {len(infos)} entries, over the limit "
                                 f"(max_archive_entries = {max_entries})")
            members = [(info, _member_parts(info)) for info in infos]
            if sum(info.file_size for info in infos) > max_bytes:
                raise _too_big(name, max_bytes)
            dest.mkdir(parents=True, exist_ok=True)
            budget = max_bytes
            for info, parts in members:
                if not parts:
                    continue
                target = dest.joinpath(*parts)
                try:
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    budget -= _extract_member(zf, info, target, budget, archive=name, max_bytes=max_bytes)
                except (zipfile.BadZipFile, OSError, RuntimeError, EOFError, NotImplementedError,
                        zlib.error) as exc:
                    raise BuildError(f"{name}: cannot extract {info.filename!r}: {exc}") from None
    except BaseException:
        _remove_extracted(dest, existed)
        raise
    return dest


def _remove_extracted(dest: Path, existed: set[str] | None) -> None:
    """Undo a failed extraction: ``dest`` itself when it was created, else what was added to it."""
    if existed is None:
        shutil.rmtree(dest, ignore_errors=True)
        return
    with contextlib.suppress(OSError):
        for entry in set(os.listdir(dest)) - existed:
            path = dest / entry
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------- numeric options
def max_threads() -> int:
    """The most threads a thread-count option may ask for: four per CPU, and never more than 256."""
    return max(1, min(256, 4 * (os.cpu_count() or 1)))


def bounded_int(value: Any, *, field: str, low: int, high: int) -> int:
    """``value`` when it is an integer (not a boolean) from ``low`` to ``high``; else InvalidInput naming
    ``field`` and the range (a build or load option given by a request)."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidInput(f"{field}: expected an integer from {low} to {high}, got {value!r}", field=field)
    return value


def int_range(low: int, high: int | Callable[[], int]) -> Callable[[Any, Any, Any], None]:
    """An attrs validator for a config field: an integer from ``low`` to ``high`` (a number or a function of
    the machine, such as :func:`max_threads`). The config report names the key and the range."""

    def check(_inst: Any, attribute: Any, value: Any) -> None:
        top = high() if callable(high) else high
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= top:
            raise ValueError(f"{attribute.name}: expected an integer from {low} to {top}, got {value!r}")

    return check


__all__ = [
    "ArchiveLimits", "InputAdapter", "bounded_int", "compare_outputs", "datatype_of", "int_range", "max_threads",
    "numpy_dtype", "parse_specs", "pin", "sample_inputs", "sample_signature_inputs", "spec_of", "unzip",
    "validate_loaded", "zip_dir",
]  # fmt: skip
