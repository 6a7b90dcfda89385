"""sandbox.multipart (shell): read a request body and split strict multipart/form-data into parts.

The body is read in chunks through `BodyReader` (Content-Length or chunked, capped at `MAX_BODY_BYTES`);
`read_parts` streams each file part into a spooled temporary file (memory up to `SPOOL_BYTES`, then disk),
hashing it on the way, so an upload is never held twice in memory. Parts without a filename are read and
dropped. Strict means: CRLF line ends, a boundary of 1-70 characters, and the closing boundary present.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Protocol
from urllib.parse import unquote

MAX_BODY_BYTES = 256 * 1024 * 1024
SPOOL_BYTES = 1024 * 1024
CHUNK_BYTES = 64 * 1024
MAX_HEADER_BYTES = 16 * 1024

_BOUNDARY = re.compile(r"^[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]$")
_PARAM = re.compile(r';\s*([!#$%&\'*+\-.^_`|~0-9A-Za-z]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


class Readable(Protocol):
    """The request's input stream, as far as the body reader uses it."""

    def read(self, size: int, /) -> bytes: ...

    def readline(self, size: int, /) -> bytes: ...


class NotMultipart(Exception):
    """The request is not multipart/form-data at all (the server answers 415)."""


class MultipartError(Exception):
    """The body claims to be multipart/form-data but breaks the rules (the server answers 400)."""


class BodyTooLarge(Exception):
    """More than MAX_BODY_BYTES (the server answers 413)."""


class ClientGone(Exception):
    """The client closed the connection before sending the whole body: nobody is left to answer."""


@dataclass(slots=True)
class Part:
    """One multipart part that carried a filename; `file` is positioned at 0 and must be closed."""

    name: str
    filename: str
    content_type: str | None
    file: IO[bytes]
    sha256: str
    size: int


def split_header_value(value: str) -> tuple[str, dict[str, str]]:
    """`form-data; name="a"; filename*=UTF-8''b%20c` -> ("form-data", {"name": "a", "filename": "b c"})."""
    head, _, rest = value.partition(";")
    params: dict[str, str] = {}
    for key, raw in _PARAM.findall(";" + rest):
        raw = raw.strip()
        if raw.startswith('"'):
            raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
        key = key.lower()
        if key.endswith("*"):
            charset, _, encoded = raw.partition("'")
            _, _, encoded = encoded.partition("'")
            params[key[:-1]] = unquote(encoded, encoding=charset or "utf-8", errors="replace")
        else:
            params.setdefault(key, raw)
    return head.strip().lower(), params


def boundary_of(content_type: str | None) -> str:
    """The boundary of a multipart/form-data Content-Type; NotMultipart or MultipartError otherwise."""
    if not content_type:
        raise NotMultipart("no Content-Type: send multipart/form-data")
    media_type, params = split_header_value(content_type)
    if media_type != "multipart/form-data":
        raise NotMultipart(f"Content-Type {media_type!r} is not multipart/form-data")
    boundary = params.get("boundary", "")
    if not _BOUNDARY.match(boundary):
        raise MultipartError("the multipart boundary is missing, longer than 70 characters or invalid")
    return boundary


class BodyReader:
    """Reads a request body from `rfile`, by Content-Length or chunked, never past MAX_BODY_BYTES."""

    def __init__(self, rfile: Readable, *, length: int | None, chunked: bool) -> None:
        self._rfile = rfile
        self._remaining = 0 if length is None else length  # of the body, or of the current chunk
        self._chunked = chunked
        self._done = not chunked and not self._remaining
        self.consumed = 0

    def read(self, size: int = CHUNK_BYTES) -> bytes:
        """Up to `size` bytes; b"" at the end of the body. BodyTooLarge past MAX_BODY_BYTES."""
        data = self._read_raw(size)
        if self.consumed > MAX_BODY_BYTES:
            raise BodyTooLarge(f"the request body is larger than {MAX_BODY_BYTES} bytes")
        return data

    def drain(self, *, limit: int) -> bool:
        """Read and drop the rest of the body, up to `limit` bytes in all; False if it was not all read."""
        if not self._chunked and self.consumed + self._remaining > limit:
            return False
        try:
            while self.consumed <= limit and self._read_raw(CHUNK_BYTES):
                pass
        except (ClientGone, MultipartError, OSError):
            return False
        return self._done

    def _read_raw(self, size: int) -> bytes:
        if self._done:
            return b""
        if self._chunked and self._remaining == 0:
            self._next_chunk()
            if self._done:
                return b""
        data = self._rfile.read(min(size, self._remaining))
        if not data:
            raise ClientGone("the body ended early")
        self._remaining -= len(data)
        self.consumed += len(data)
        if not self._chunked and self._remaining == 0:
            self._done = True
        elif self._chunked and self._remaining == 0 and self._line() != b"":
            raise MultipartError("chunked body: chunk data not followed by CRLF")
        return data

    @property
    def done(self) -> bool:
        return self._done

    def _line(self) -> bytes:
        line = self._rfile.readline(1024)
        if not line.endswith(b"\r\n"):
            raise ClientGone("chunked body: line cut off") if not line else MultipartError("bad chunk line")
        return line[:-2]

    def _next_chunk(self) -> None:
        size_text = self._line().split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise MultipartError("chunked body: bad chunk size") from None
        if size == 0:
            while self._line():  # trailers up to the empty line
                pass
            self._done = True
        self._remaining = size


def _parse_part_headers(block: bytes) -> tuple[str, str | None, str | None]:
    """(name, filename or None, content type or None) from one part's header block."""
    headers: dict[str, str] = {}
    for raw_line in block.split(b"\r\n") if block else []:
        if b"\r" in raw_line or b"\n" in raw_line or raw_line[:1] in (b" ", b"\t") or b":" not in raw_line:
            raise MultipartError("a part header is malformed (bare CR/LF, folded line or no colon)")
        try:
            line = raw_line.decode("utf-8")
        except UnicodeDecodeError:
            line = raw_line.decode("latin-1")
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    disposition, params = split_header_value(headers.get("content-disposition", ""))
    if disposition != "form-data" or "name" not in params:
        raise MultipartError('every part needs "Content-Disposition: form-data; name=..."')
    return params["name"], params.get("filename"), headers.get("content-type")


def read_parts(read: Callable[[int], bytes], boundary: str) -> list[Part]:
    """Split the body into its file parts; raises MultipartError on any breach of the format.

    On error every file already spooled is closed. The caller closes the returned parts' files.
    """
    separator = b"\r\n--" + boundary.encode("ascii")
    buffer = bytearray(b"\r\n")  # so the first delimiter looks like every other one
    parts: list[Part] = []
    eof = False

    def fill() -> None:
        nonlocal eof
        data = read(CHUNK_BYTES)
        if data:
            buffer.extend(data)
        else:
            eof = True

    def need(count: int) -> None:
        while len(buffer) < count and not eof:
            fill()
        if len(buffer) < count:
            raise MultipartError("the multipart body ends before its closing boundary")

    try:
        while (index := buffer.find(separator)) < 0:  # the preamble, dropped
            if eof:
                raise MultipartError("the multipart body does not contain its boundary")
            del buffer[: max(0, len(buffer) - len(separator))]
            fill()
        del buffer[: index + len(separator)]
        while True:
            need(2)
            if buffer[:2] == b"--":
                return parts  # closing delimiter; the epilogue is ignored
            while buffer.startswith((b" ", b"\t")):  # transport padding
                del buffer[:1]
                need(2)
            if buffer[:2] != b"\r\n":
                raise MultipartError("a boundary line must end with CRLF")
            del buffer[:2]
            need(2)
            if buffer[:2] == b"\r\n":  # a part without headers (refused below: it has no name)
                block = b""
                del buffer[:2]
            else:
                while (end := buffer.find(b"\r\n\r\n")) < 0:
                    if len(buffer) > MAX_HEADER_BYTES or eof:
                        raise MultipartError("a part's headers are too long or never end")
                    fill()
                block = bytes(buffer[:end])
                del buffer[: end + 4]
            name, filename, content_type = _parse_part_headers(block)
            sink: IO[bytes] | None = None
            digest = hashlib.sha256()
            size = 0
            if filename:  # parts without a filename (or with an empty one) are read and dropped
                sink = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115 (closed by caller)
                parts.append(Part(name, filename, content_type or None, sink, "", 0))
            while True:
                index = buffer.find(separator)
                keep = index if index >= 0 else max(0, len(buffer) - len(separator) + 1)
                if sink is not None and keep:
                    chunk = bytes(buffer[:keep])
                    sink.write(chunk)
                    digest.update(chunk)
                size += keep
                del buffer[:keep]
                if index >= 0:
                    del buffer[: len(separator)]
                    break
                if eof:
                    raise MultipartError("the multipart body ends before its closing boundary")
                fill()
            if sink is not None:
                sink.seek(0)
                parts[-1].sha256 = digest.hexdigest()
                parts[-1].size = size
    except BaseException:
        close_parts(parts)
        raise


def close_parts(parts: list[Part]) -> None:
    for part in parts:
        part.file.close()
