"""Uploaded distributions: a CI job sends the sdist or wheel it built, tested before publishing.

The upload is streamed to disk under ``uploads/`` with a size cap enforced while
reading, hashed as it goes, and kept only if its name parses as an sdist or
wheel file name *and* its first bytes are those of the archive type the name
claims. Files are stored content-addressed, ``uploads/<sha256>/<filename>``, so
the same bytes uploaded twice are one file. Nothing from inside the archive is
read here: the slave opens it with ``SafeArchive`` (hostile archives are the
slave's business, on its side of the fence).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from aiohttp import BodyPartReader, web
from packaging.utils import (
    InvalidSdistFilename,
    InvalidWheelFilename,
    parse_sdist_filename,
    parse_wheel_filename,
)

from master.http.validation import ApiError, bad_request

#: Form fields besides the file, and their size cap.
FORM_FIELDS = frozenset({"priority", "callback_url", "image", "rerun"})
MAX_FIELD_BYTES = 4096
MAX_PARTS = 8
#: Multipart framing around the file: boundaries and part headers.
MULTIPART_SLACK = 64 * 1024
#: Buffer this much before one write (in a thread), so the loop is not blocked by disk I/O.
_WRITE_BATCH = 1024 * 1024

_FILENAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]{0,250}$")
_ZIP_MAGIC = b"PK\x03\x04"
_GZIP_MAGIC = b"\x1f\x8b\x08"


@dataclass(frozen=True, slots=True)
class DistName:
    """What a distribution file name says: project (normalised), version, package type."""

    project: str
    version: str
    packagetype: str  # "sdist" | "bdist_wheel"
    magic: bytes


def parse_dist_filename(filename: str) -> DistName:
    """Parse an sdist (``.tar.gz``/``.zip``) or wheel file name; 400 on anything else."""
    if not _FILENAME_RE.match(filename) or ".." in filename:
        bad_request("invalid_filename", "the file name must be a bare sdist or wheel file name")
    try:
        if filename.endswith(".whl"):
            name, version, _build, _tags = parse_wheel_filename(filename)
            return DistName(str(name), str(version), "bdist_wheel", _ZIP_MAGIC)
        if filename.endswith((".tar.gz", ".zip")):
            name, version = parse_sdist_filename(filename)
            magic = _GZIP_MAGIC if filename.endswith(".tar.gz") else _ZIP_MAGIC
            return DistName(str(name), str(version), "sdist", magic)
    except (InvalidWheelFilename, InvalidSdistFilename) as exc:
        bad_request("invalid_filename", f"not a valid distribution file name: {exc}")
    bad_request("invalid_filename", "only .whl, .tar.gz and .zip distributions are accepted")


@dataclass(frozen=True, slots=True)
class UploadedFile:
    """A stored upload."""

    filename: str
    dist: DistName
    sha256: str
    size: int
    path: Path

    def file_entry(self) -> dict[str, Any]:
        """The job's ``files`` entry; ``path`` is master-local and never leaves the master."""
        return {
            "filename": self.filename,
            "sha256": self.sha256,
            "size": self.size,
            "packagetype": self.dist.packagetype,
            "url": None,
            "path": str(self.path),
        }


@dataclass(frozen=True, slots=True)
class Upload:
    """A received multipart submission: the file and the (string) form fields."""

    file: UploadedFile
    fields: dict[str, str]


async def _read_field(part: BodyPartReader) -> str:
    data = b""
    while chunk := await part.read_chunk(1024):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            bad_request("invalid_field", f"form field {part.name} is over {MAX_FIELD_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        bad_request("invalid_field", f"form field {part.name} is not UTF-8")


def _write(fh: BinaryIO, data: bytes) -> None:
    fh.write(data)


async def _store_file(part: BodyPartReader, uploads_dir: Path, cap: int) -> UploadedFile:
    filename = part.filename or ""
    dist = parse_dist_filename(filename)
    await asyncio.to_thread(uploads_dir.mkdir, parents=True, exist_ok=True)
    partial = uploads_dir / f".incoming-{secrets.token_hex(8)}"
    digest = hashlib.sha256()
    size = 0
    head = b""
    fh = await asyncio.to_thread(partial.open, "xb")
    try:
        try:
            buffer = bytearray()
            while chunk := await part.read_chunk(256 * 1024):
                size += len(chunk)
                if size > cap:
                    raise ApiError(413, "body_too_large", f"the file is over {cap} bytes")
                if len(head) < len(dist.magic):
                    head += chunk[: len(dist.magic) - len(head)]
                    if len(head) == len(dist.magic) and head != dist.magic:
                        kind = "a zip archive" if dist.magic == _ZIP_MAGIC else "gzip data"
                        bad_request("invalid_archive", f"{filename} does not start like {kind}")
                digest.update(chunk)
                buffer += chunk
                if len(buffer) >= _WRITE_BATCH:
                    await asyncio.to_thread(_write, fh, bytes(buffer))
                    buffer.clear()
            if buffer:
                await asyncio.to_thread(_write, fh, bytes(buffer))
        finally:
            await asyncio.to_thread(fh.close)
        if size < len(dist.magic) or head != dist.magic:
            bad_request("invalid_archive", f"{filename} is too short to be a distribution")
        sha256 = digest.hexdigest()
        final_dir = uploads_dir / sha256
        final = final_dir / filename
        await asyncio.to_thread(final_dir.mkdir, exist_ok=True)
        # Same bytes under the same name: the earlier copy is identical, keep one.
        await asyncio.to_thread(os.replace, partial, final)
    except BaseException:
        # Refused, failed or cancelled: the partial file must not stay behind.
        with contextlib.suppress(OSError):
            partial.unlink()
        raise
    return UploadedFile(filename=filename, dist=dist, sha256=sha256, size=size, path=final)


async def receive_upload(request: web.Request, uploads_dir: Path, cap: int) -> Upload:
    """Read a ``multipart/form-data`` submission: one ``file`` part plus optional option fields.

    On any refusal (400/413) or cancellation no file is left in ``uploads_dir``
    except a complete, verified upload (which is harmless: content-addressed).
    """
    if request.content_length is not None and request.content_length > cap + MULTIPART_SLACK:
        raise ApiError(413, "body_too_large", f"the file is over {cap} bytes")
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, KeyError) as exc:
        bad_request("invalid_multipart", f"cannot read the multipart body: {exc}")
    fields: dict[str, str] = {}
    stored: UploadedFile | None = None
    parts = 0
    try:
        while True:
            part = await reader.next()
            if part is None:
                break
            parts += 1
            if parts > MAX_PARTS:
                bad_request("invalid_multipart", f"at most {MAX_PARTS} parts")
            if not isinstance(part, BodyPartReader):
                bad_request("invalid_multipart", "nested multipart bodies are not accepted")
            name = part.name or ""
            if name == "file":
                if stored is not None:
                    bad_request("invalid_multipart", "send exactly one file")
                stored = await _store_file(part, uploads_dir, cap)
            elif name in FORM_FIELDS:
                if name in fields:
                    bad_request("invalid_multipart", f"{name} given more than once")
                fields[name] = await _read_field(part)
            else:
                bad_request("unknown_field", f"unknown form field: {name[:40]!r}")
    except ValueError as exc:
        # aiohttp's multipart parser reports malformed framing as ValueError.
        bad_request("invalid_multipart", f"malformed multipart body: {exc}")
    if stored is None:
        bad_request("missing_field", "a multipart submission needs a 'file' part")
    return Upload(file=stored, fields=fields)


def typed_form_fields(fields: dict[str, str]) -> dict[str, Any]:
    """Form strings as the JSON types ``job_options`` checks (``priority`` int, ``rerun`` bool)."""
    typed: dict[str, Any] = dict(fields)
    if "priority" in fields:
        raw = fields["priority"].strip()
        if not raw.isascii() or not raw.lstrip("-").isdigit() or len(raw) > 8:
            bad_request("invalid_field", "priority must be an integer")
        typed["priority"] = int(raw)
    if "rerun" in fields:
        raw = fields["rerun"].strip().lower()
        if raw not in ("true", "false", "1", "0"):
            bad_request("invalid_field", "rerun must be true or false")
        typed["rerun"] = raw in ("true", "1")
    if fields.get("callback_url") == "":
        typed["callback_url"] = None
    return typed
