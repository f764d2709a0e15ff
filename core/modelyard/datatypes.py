"""The Open Inference Protocol's tensor datatypes and their numpy dtypes: the one table every module reads.

The V2 codec (:mod:`modelyard.protocol.v2`), the builders' helpers (:mod:`modelyard.bundles`) and the domain
records (:data:`modelyard.types.DATATYPES`) all take their datatypes from here. The table names the numpy type
of each datatype as a type string, so that importing this module (which ``import modelyard`` does, through the
domain records) does not import numpy; :func:`numpy_dtypes` builds the dtypes once, when a caller first needs them.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np

#: V2 datatype -> numpy type string: little-endian, as on the wire (on little-endian hosts these are the native
#: dtypes); BOOL is one byte per element; BYTES tensors are numpy ``object`` arrays holding ``bytes``.
TYPESTRS: Mapping[str, str] = MappingProxyType({
    "BOOL": "|b1",
    "UINT8": "|u1",
    "UINT16": "<u2",
    "UINT32": "<u4",
    "UINT64": "<u8",
    "INT8": "|i1",
    "INT16": "<i2",
    "INT32": "<i4",
    "INT64": "<i8",
    "FP16": "<f2",
    "FP32": "<f4",
    "FP64": "<f8",
    "BYTES": "|O",
})

#: Every V2 datatype, in the protocol's order.
DATATYPES: tuple[str, ...] = tuple(TYPESTRS)

#: The datatypes whose elements are floating point numbers.
FLOAT_DATATYPES = frozenset({"FP16", "FP32", "FP64"})


@functools.cache
def numpy_dtypes() -> Mapping[str, np.dtype]:
    """V2 datatype -> numpy dtype (little-endian, as on the wire; ``BYTES`` -> ``object``)."""
    import numpy as np

    return MappingProxyType({name: np.dtype(typestr) for name, typestr in TYPESTRS.items()})


@functools.cache
def datatypes_by_kind_size() -> Mapping[tuple[str, int], str]:
    """``(dtype.kind, dtype.itemsize)`` -> V2 datatype, for every datatype but ``BYTES``: how a numpy dtype of
    either byte order finds its datatype (``object``, ``S`` and ``U`` arrays are ``BYTES``, see callers)."""
    return MappingProxyType({(dt.kind, dt.itemsize): name for name, dt in numpy_dtypes().items() if name != "BYTES"})
