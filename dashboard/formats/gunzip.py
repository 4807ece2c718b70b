"""Gzip data read as far as it goes: a damaged, cut-off or trailed stream is never an exception.

`Gunzip` is a raw binary stream that decompresses another one (any number of gzip members, as
`gzip` reads them, NUL padding after a member ignored). Where the data is damaged it ends, as a
file ends, and `damage` says what is wrong: everything decompressed before that point has been
read, including the output of the zlib call that failed (zlib drops it; it is decompressed again
in small pieces). Pure: no Flask, no database.
"""
from __future__ import annotations

import io
import zlib
from typing import IO

MAGIC = b"\x1f\x8b"
_READ = 64 << 10  # compressed bytes read from the source at a time
_CUT, _TRAILED, _CORRUPT = "cut", "trailed", "corrupt"
_SALVAGE_STEP = 1024  # compressed bytes per call while salvaging a failed call's output
# zlib's words for a damaged gzip stream, in the words of the gzip format
_ZLIB_WORDS = {
    "incorrect data check": "CRC check failed",
    "incorrect length check": "length check failed",
    "incorrect header check": "not a gzip header",
    "unknown compression method": "unknown compression method",
}


class Gunzip(io.RawIOBase):
    """Decompress the gzip data of `source` (a binary stream positioned at its start)."""

    def __init__(self, source: IO[bytes]) -> None:
        super().__init__()
        self._source = source
        self._decompressor = zlib.decompressobj(31)
        self._ready = b""  # decompressed bytes not handed out yet
        self._finished = False
        # What is wrong with the data, once reading stopped at it ("CRC check failed", "it ends
        # early (cut off)", "it is followed by data that is not gzip", zlib's words); None: nothing.
        self.damage: str | None = None
        self._damage_kind = ""

    def reason(self, after_line: int) -> str:
        """The damage in words, placed after the last line read (0: none was)."""
        where = f"after line {after_line}" if after_line else "before its first line"
        if self._damage_kind == _CUT:
            return f"the gzip stream ends early {where}: the file is cut off"
        if self._damage_kind == _TRAILED:
            return f"the gzip stream is followed by data that is not gzip ({where}); that data is ignored"
        return f"the gzip stream is damaged {where}: {self.damage}; nothing after that point can be read"

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[no-untyped-def,override]
        view = memoryview(buffer).cast("B")
        while not self._ready and not self._finished:
            self._ready = self._decompress(len(view))
        count = min(len(view), len(self._ready))
        view[:count] = self._ready[:count]
        self._ready = self._ready[count:]
        return count

    def _decompress(self, size: int) -> bytes:
        """The next decompressed bytes (b"" when a call gave none yet); at the damage, the
        output salvaged before it, with `damage` set."""
        decompressor = self._decompressor
        if decompressor.eof:
            return self._next_member(size)
        data = decompressor.unconsumed_tail or self._source.read(_READ)
        if not data:
            return self._stop(_CUT, "it ends early (cut off)")
        return self._feed(data, size)

    def _feed(self, data: bytes, size: int) -> bytes:
        before = self._decompressor.copy()
        try:
            return self._decompressor.decompress(data, size)
        except zlib.error as exc:
            # Nothing of this call's output reached us: what came before the damage is
            # decompressed again, in small pieces, from the state before the call.
            return self._stop(_CORRUPT, _damage_words(exc), _salvage(before, data))

    def _next_member(self, size: int) -> bytes:
        """After a member: the next one, NUL padding (which gzip ignores), the end, or junk."""
        rest = self._decompressor.unused_data.lstrip(b"\0")
        while len(rest) < 2:
            more = self._source.read(_READ)
            if not more:
                if rest:
                    return self._stop(_TRAILED, "it is followed by data that is not gzip")
                self._finished = True
                return b""
            rest = (rest + more).lstrip(b"\0")
        if rest[:2] != MAGIC:
            return self._stop(_TRAILED, "it is followed by data that is not gzip")
        self._decompressor = zlib.decompressobj(31)
        return self._feed(rest, size)

    def _stop(self, kind: str, damage: str, salvaged: bytes = b"") -> bytes:
        self._damage_kind = kind
        self.damage = damage
        self._finished = True
        return salvaged


def _salvage(decompressor, data: bytes) -> bytes:  # type: ignore[no-untyped-def]
    """What `data` decompresses to before the point where zlib finds it damaged. Bounded: the
    call that failed asked for at most as much output, and failed before it was reached."""
    out: list[bytes] = []
    step = _SALVAGE_STEP
    position = 0
    while position < len(data) and not decompressor.eof:
        piece = data[position : position + step]
        saved = decompressor.copy()
        try:
            out.append(decompressor.decompress(piece))
        except zlib.error:
            if step == 1:
                break
            decompressor, step = saved, 1  # the damage is in this piece: byte by byte
            continue
        position += len(piece)
    return b"".join(out)


def _damage_words(exc: zlib.error) -> str:
    message = str(exc).split(": ", 1)[-1]
    return _ZLIB_WORDS.get(message, message)


def gunzip_head(data: bytes, limit: int) -> bytes:
    """At most `limit` bytes decompressed from the start of gzip `data` (a file's first bytes:
    cut off, perhaps damaged); never raises."""
    reader = io.BufferedReader(Gunzip(io.BytesIO(data)))
    return reader.read(limit)


__all__ = ["MAGIC", "Gunzip", "gunzip_head"]
