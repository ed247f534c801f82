"""The `.vsa` file container: protocol messages framed for storage, sans-I/O.

Layout::

    MAGIC (8 bytes)
    record*: length (u32 big-endian) | crc32 of body (u32 big-endian) | body

Each body is one encoded protocol message, so a file holds exactly what a
live stream sends: the hello, the model once, then the frames, then bye.

The CRC lets a reader stop at the first damaged record with a clear error
while everything before it has already been handed out.
"""

from __future__ import annotations

import struct
import zlib

from .errors import ProtocolError
from .messages import MAX_MESSAGE_BYTES, Message, decode, encode

# PNG-style magic: the high byte and CR LF / LF catch text-mode transfers.
MAGIC = b"\x89VSA\r\n\x1a\n"
_RECORD_HEADER = struct.Struct(">II")


def file_header() -> bytes:
    """Bytes that start every `.vsa` file."""
    return MAGIC


def record(msg: Message) -> bytes:
    """One message framed as a container record."""
    body = encode(msg)
    return _RECORD_HEADER.pack(len(body), zlib.crc32(body)) + body


class ContainerReader:
    """Incremental `.vsa` parser: feed bytes, pull messages.

    >>> reader = ContainerReader()
    >>> reader.feed(data)
    >>> while (msg := reader.next_message()) is not None: ...
    >>> reader.close()   # raises ProtocolError if the file was truncated
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._offset = 0  # file offset of the first byte in _buffer
        self._seen_magic = False
        self._failed: ProtocolError | None = None
        self.records = 0

    def feed(self, data: bytes) -> None:
        """Append bytes read from the file."""
        self._buffer += data

    def _fail(self, text: str) -> ProtocolError:
        self._failed = ProtocolError(text)
        return self._failed

    def next_message(self) -> Message | None:
        """The next complete message, or None if more bytes are needed.

        Raises ProtocolError at the first damaged record; after that every
        call raises the same error, since nothing later can be trusted.
        """
        if self._failed is not None:
            raise self._failed
        if not self._seen_magic:
            if len(self._buffer) < len(MAGIC):
                if not MAGIC.startswith(bytes(self._buffer)):
                    raise self._fail("not a .vsa file (bad magic bytes)")
                return None
            if bytes(self._buffer[: len(MAGIC)]) != MAGIC:
                raise self._fail("not a .vsa file (bad magic bytes)")
            self._consume(len(MAGIC))
            self._seen_magic = True
        if len(self._buffer) < _RECORD_HEADER.size:
            return None
        length, crc = _RECORD_HEADER.unpack_from(self._buffer)
        if length > MAX_MESSAGE_BYTES:
            raise self._fail(
                f"record {self.records} at byte {self._offset} claims {length} bytes, "
                f"over the {MAX_MESSAGE_BYTES}-byte limit (corrupt file)"
            )
        end = _RECORD_HEADER.size + length
        if len(self._buffer) < end:
            return None
        body = bytes(self._buffer[_RECORD_HEADER.size : end])
        if zlib.crc32(body) != crc:
            raise self._fail(f"record {self.records} at byte {self._offset} fails its CRC check (corrupt file)")
        try:
            msg = decode(body)
        except ProtocolError as exc:
            raise self._fail(f"record {self.records} at byte {self._offset}: {exc}") from None
        self._consume(end)
        self.records += 1
        return msg

    def _consume(self, n: int) -> None:
        del self._buffer[:n]
        self._offset += n

    def close(self) -> None:
        """Declare end of file; raise ProtocolError if it ended mid-record."""
        if self._failed is not None:
            raise self._failed
        if not self._seen_magic:
            raise self._fail("not a .vsa file (too short for the magic bytes)")
        if self._buffer:
            raise self._fail(
                f"file truncated: {len(self._buffer)} stray bytes after record {self.records} at byte {self._offset}"
            )
