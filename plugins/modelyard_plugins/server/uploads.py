"""Streaming ``multipart/form-data`` uploads into a temp directory, never into memory.

Litestar's own form parsing would spool the whole body first; a model upload can be gigabytes, so the body is
pushed chunk by chunk through the same parser Litestar uses (``multipart``) and the file part goes straight to
disk under ``platform.tmp_dir``. The size limit is the route's ``request_max_body_size`` (Litestar raises 413 as
the bytes arrive); form fields other than the file are small by contract and capped here. A disk (or quota) that
fills while the file streams is a 503 ``unavailable`` ("insufficient storage"), and the partial file is removed.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections.abc import Collection
from pathlib import Path
from typing import Any

import attrs
from litestar import Request
from litestar.exceptions import ClientException
from litestar.exceptions.http_exceptions import RequestEntityTooLarge
from modelyard.errors import InvalidInput, Unavailable
from multipart import MultipartSegment, ParserError, ParserLimitReached, PushMultipartParser

from modelyard_plugins.server.problems import NO_SPACE

#: The largest non-file form field accepted (tags and lineage JSON included).
MAX_FIELD_BYTES = 64 * 1024
_MAX_PARTS = 32
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


@attrs.define
class Upload:
    """A received upload: the form fields as text, the file's path, and the directory to remove afterwards."""

    fields: dict[str, str]
    file: Path
    workdir: Path

    def cleanup(self) -> None:
        """Remove the upload's directory."""
        shutil.rmtree(self.workdir, ignore_errors=True)


def safe_filename(name: str | None) -> str:
    """The client's file name reduced to a harmless base name (builders may look at the suffix)."""
    base = _SAFE.sub("_", (name or "").replace("\\", "/").rsplit("/", 1)[-1]).lstrip("._")[-100:]
    return base or "upload"


async def receive_upload(request: Request[Any, Any, Any], *, tmp_dir: Path, fields: Collection[str],
                         max_bytes: int, file_field: str = "file") -> Upload:
    """Stream a multipart body: the part named ``file_field`` (with a filename) to disk, ``fields`` as text.

    Raises 400 for a malformed body, :class:`InvalidInput` (422) for an unknown, repeated or oversized field or a
    missing file, 413 when the body is larger than ``max_bytes`` (refused up front when Content-Length says
    so, else as soon as the bytes pass the limit), and :class:`Unavailable` (503) when the disk fills.
    """
    if (request.content_length or 0) > max_bytes:
        raise RequestEntityTooLarge
    _, options = request.content_type
    boundary = options.get("boundary")
    if not boundary:
        raise ClientException("multipart/form-data without a boundary in Content-Type")
    try:
        workdir = Path(tempfile.mkdtemp(prefix="upload-", dir=tmp_dir))
    except OSError as exc:
        raise _no_space(exc) or exc from None
    values: dict[str, bytearray] = {}
    path: Path | None = None
    out: Any = None
    segment: MultipartSegment | None = None
    target: bytearray | None = None
    received = 0
    try:
        with PushMultipartParser(boundary.encode("latin-1"), max_segment_count=_MAX_PARTS) as parser:
            async for chunk in request.stream():
                received += len(chunk)
                if received > max_bytes:
                    raise RequestEntityTooLarge
                for event in parser.parse(chunk):
                    if isinstance(event, MultipartSegment):
                        segment = event
                        name = event.name or ""
                        if name == file_field and event.filename is not None:
                            if path is not None:
                                raise InvalidInput(f"more than one {file_field!r} part", field=file_field)
                            path = workdir / safe_filename(event.filename)
                            # Plain writes on the loop: each is one chunk from the socket (tens of KiB) into the
                            # page cache, cheaper than a thread hop per chunk.
                            out = path.open("wb")
                            target = None
                        elif name in fields:
                            if name in values:
                                raise InvalidInput(f"form field {name!r} is given twice", field=name)
                            target = values[name] = bytearray()
                        else:
                            expected = ", ".join([file_field, *fields])
                            raise InvalidInput(f"unknown form field {name!r}; expected: {expected}", field=name)
                    elif event:
                        if target is not None:
                            target += event
                            if len(target) > MAX_FIELD_BYTES:
                                raise InvalidInput(f"form field {segment.name if segment else '?'!r} is longer "
                                                   f"than {MAX_FIELD_BYTES // 1024} KiB", field=segment and segment.name)
                        elif out is not None:
                            out.write(event)
                    else:  # end of a part
                        if out is not None:
                            out.close()
                            out = None
                        segment, target = None, None
                if parser.closed:
                    break
        if out is not None:
            out.close()  # the last buffered bytes reach the disk here: it can be full too
            out = None
    except (ParserError, ParserLimitReached) as exc:
        _discard(out, workdir)
        raise ClientException(f"invalid multipart/form-data body: {exc}") from None
    except OSError as exc:
        _discard(out, workdir)
        raise _no_space(exc) or exc from None
    except BaseException:
        _discard(out, workdir)
        raise
    if path is None:
        shutil.rmtree(workdir, ignore_errors=True)
        raise InvalidInput(f"the upload has no {file_field!r} part (a file)", field=file_field)
    try:
        text = {k: v.decode() for k, v in values.items()}
    except UnicodeDecodeError:
        shutil.rmtree(workdir, ignore_errors=True)
        raise InvalidInput("form fields must be UTF-8 text") from None
    return Upload(fields=text, file=path, workdir=workdir)


def _discard(out: Any, workdir: Path) -> None:
    if out is not None:
        try:
            out.close()
        except OSError:  # the disk is full: the file goes with its directory anyway
            pass
    shutil.rmtree(workdir, ignore_errors=True)


def _no_space(exc: OSError) -> Unavailable | None:
    if exc.errno in NO_SPACE:
        return Unavailable("insufficient storage: the upload could not be written to the server's disk; try "
                           "again later")
    return None
