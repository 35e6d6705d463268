"""Unpack a zip's one image from its start, as it downloads, without its central directory.

A zip names its entries at its end, so `zipfile` needs the whole file. Each entry also has a
local header in front of its data, which is enough to unpack it in order: `ZipEntryReader` takes
the file's bytes as they arrive (`feed`) and hands out the image's bytes (`read`). No I/O here.

- Deflate (8) and stored (0) entries are unpacked; any other method, an encrypted entry or a
  stored entry whose length only a data descriptor gives raise `NotStreamable`, and the caller
  waits for the whole file and uses `zipfile`.
- Data descriptors (flag bit 3, what `zip` writes to a pipe): a deflate stream marks its own end;
  the descriptor after it is read with or without its signature, with 4- or 8-byte (zip64) sizes,
  whichever matches what was unpacked, and its CRC-32 is checked.
- Zip64: sizes of 0xFFFFFFFF in the local header are read from the zip64 extra field.
- One image: directories and `__MACOSX/` entries are skipped; a second file raises `ZipRefused`
  naming both. Reading ends at the central directory (or the end record).
- Damage (a bad CRC, a size that differs from the header's, bytes that are no header) raises
  `ZipDamaged`; `end_of_input` raises it when the file ended before the central directory.
"""

from __future__ import annotations

import struct
import zlib

_LOCAL = b"PK\x03\x04"
_DESCRIPTOR = b"PK\x07\x08"
_ENDS = (b"PK\x01\x02", b"PK\x05\x06", b"PK\x06\x06")  # central entry, end, zip64 end
_HEADER = struct.Struct("<4sHHHHHIIIHH")
_ZIP64_EXTRA = 0x0001
_MAX32 = 0xFFFFFFFF
_STORED, _DEFLATED = 0, 8


class ZipDamaged(ValueError):
    """The bytes are not a sound zip."""


class ZipRefused(ValueError):
    """A sound zip that does not hold exactly one image."""


class NotStreamable(ValueError):
    """The entry cannot be unpacked before the whole file is there (method, encryption...)."""


class _Entry:
    def __init__(self, name: str, flags: int, method: int, crc: int, csize: int, usize: int):
        self.name, self.flags, self.method = name, flags, method
        self.crc, self.csize, self.usize = crc, csize, usize
        self.zip64 = False
        self.skip = name.endswith("/") or name.startswith("__MACOSX/")
        self.got_crc = 0
        self.got_c = 0  # compressed bytes consumed
        self.got_u = 0  # bytes unpacked
        self.inflater = zlib.decompressobj(-15) if method == _DEFLATED else None

    @property
    def described(self) -> bool:
        return bool(self.flags & 0x08)


class ZipEntryReader:
    def __init__(self) -> None:
        self._in = bytearray()
        self._entry: _Entry | None = None
        self._state = "header"  # header | data | descriptor | end
        self.image: str | None = None  # the image entry's name, once its header was read
        self.offset = 0  # bytes of the zip consumed

    @property
    def done(self) -> bool:
        return self._state == "end"

    def feed(self, data: bytes | memoryview) -> None:
        if self._state != "end":
            self._in += data

    def find_image(self) -> bool:
        """Parse (and skip entries) up to the image's header; False: more input is needed."""
        while self.image is None and self._state != "end":
            if self._state == "header":
                if not self._header():
                    return False
            elif self._state == "data":
                if self._data(1 << 16) is None:  # a skipped entry: its bytes are dropped
                    return False
            elif not self._descriptor():
                return False
        return True

    def read(self, n: int) -> bytes:
        """Up to `n` (> 0) bytes of the image; b"" when more input is needed or the zip ended."""
        while n > 0 and self._state != "end":
            if self._state == "header" and not self._header():
                return b""
            if self._state == "data":
                out = self._data(n)
                if out is None:
                    return b""
                if out:
                    return out
            if self._state == "descriptor" and not self._descriptor():
                return b""
        return b""

    def end_of_input(self) -> None:
        """The file ended: raise unless the zip ended properly with its one image."""
        if self._state != "end":
            raise ZipDamaged(f"the zip ends early (at byte {self.offset}, inside its entries)")

    # ---------------------------------------------------------------- parsing steps

    def _take(self, n: int) -> bytes:
        out = bytes(self._in[:n])
        del self._in[:n]
        self.offset += n
        return out

    def _header(self) -> bool:
        if len(self._in) < 4:
            return False
        sig = bytes(self._in[:4])
        if sig in _ENDS:
            if self.image is None:
                raise ZipRefused("it holds no file")
            self._state = "end"
            self._in.clear()
            return True
        if sig != _LOCAL:
            raise ZipDamaged(f"no zip entry header at byte {self.offset}")
        if len(self._in) < _HEADER.size:
            return False
        _, _, flags, method, _, _, crc, csize, usize, nlen, xlen = _HEADER.unpack_from(self._in)
        if len(self._in) < _HEADER.size + nlen + xlen:
            return False
        head = self._take(_HEADER.size + nlen + xlen)
        raw_name = head[_HEADER.size : _HEADER.size + nlen]
        name = raw_name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
        entry = _Entry(name, flags, method, crc, csize, usize)
        _zip64_sizes(entry, head[_HEADER.size + nlen :])
        if not entry.skip:
            if self.image is not None:
                raise ZipRefused(f"it holds more than one file ({self.image}, {name})")
            self.image = name
        if flags & 0x01:
            raise NotStreamable(f"{name} is encrypted")
        if method not in (_STORED, _DEFLATED):
            raise NotStreamable(f"{name} is packed with zip method {method}")
        if method == _STORED and entry.described:
            raise NotStreamable(f"{name} is stored with its length only at its end")
        self._entry = entry
        self._state = "data"
        return True

    def _data(self, n: int) -> bytes | None:
        """Image bytes (b"" for a skipped entry's, or when the entry ended); None: need input."""
        e = self._entry
        assert e is not None  # noqa: S101 - set with the "data" state
        if e.inflater is None:
            want = e.csize - e.got_c
            piece = self._take(min(n, want, len(self._in)))
            if not piece and want:
                return None
            e.got_c += len(piece)
            out = piece
        else:
            if not self._in:
                return None
            src = bytes(self._in)
            try:
                out = e.inflater.decompress(src, n)
            except zlib.error as exc:
                raise ZipDamaged(f"{e.name}: {exc}") from exc
            # What the inflater did not take (past the limit, or past its end) stays queued.
            # (At its end the leftover is in unused_data, and may be in unconsumed_tail too.)
            left = e.inflater.unused_data if e.inflater.eof else e.inflater.unconsumed_tail
            used = len(src) - len(left)
            self._take(used)
            e.got_c += used
            if not out and not used:
                return None
        e.got_u += len(out)
        e.got_crc = zlib.crc32(out, e.got_crc)
        if self._entry_ended(e):
            self._state = "descriptor" if e.described else "header"
            if not e.described:
                _check(e, e.crc, e.csize, e.usize)
        if not e.described and e.got_u > e.usize:
            raise ZipDamaged(f"{e.name} unpacks to more than the {e.usize} bytes it declares")
        return b"" if e.skip else out

    @staticmethod
    def _entry_ended(e: _Entry) -> bool:
        if e.inflater is None:
            return e.got_c >= e.csize
        return e.inflater.eof

    def _descriptor(self) -> bool:
        e = self._entry
        assert e is not None  # noqa: S101 - set with the "descriptor" state
        if len(self._in) < 24 and not any(self._in.startswith(s) for s in _ENDS):
            # 24 bytes: the longest form; the central directory always follows, so they come.
            return False
        for form in _descriptor_forms(e.zip64):
            got = form(bytes(self._in[:24]))
            if got is None:
                continue
            crc, csize, usize, length = got
            if (csize, usize) == (e.got_c, e.got_u):
                self._take(length)
                _check(e, crc, csize, usize)
                self._state = "header"
                return True
        raise ZipDamaged(f"{e.name}: its data descriptor does not match what was unpacked")


def _zip64_sizes(entry: _Entry, extra: bytes) -> None:
    pos = 0
    while pos + 4 <= len(extra):
        tag, size = struct.unpack_from("<HH", extra, pos)
        body = extra[pos + 4 : pos + 4 + size]
        pos += 4 + size
        if tag != _ZIP64_EXTRA:
            continue
        entry.zip64 = True
        fields = [struct.unpack_from("<Q", body, i)[0] for i in range(0, len(body) - 7, 8)]
        if entry.usize == _MAX32 and fields:
            entry.usize = fields.pop(0)
        if entry.csize == _MAX32 and fields:
            entry.csize = fields.pop(0)


def _descriptor_forms(zip64: bool) -> list[_DescriptorForm]:
    forms = [_DescriptorForm(sig, wide) for wide in (True, False) for sig in (True, False)]
    return forms if zip64 else forms[2:] + forms[:2]


class _DescriptorForm:
    def __init__(self, signed: bool, wide: bool) -> None:
        self.signed, self.wide = signed, wide

    def __call__(self, data: bytes) -> tuple[int, int, int, int] | None:
        pos = 0
        if self.signed:
            if not data.startswith(_DESCRIPTOR):
                return None
            pos = 4
        fmt = "<IQQ" if self.wide else "<III"
        need = pos + struct.calcsize(fmt)
        if len(data) < need:
            return None
        crc, csize, usize = struct.unpack_from(fmt, data, pos)
        return crc, csize, usize, need


def _check(e: _Entry, crc: int, csize: int, usize: int) -> None:
    if e.got_u != usize or e.got_c != csize:
        raise ZipDamaged(
            f"{e.name} unpacked to {e.got_u} bytes from {e.got_c}; it declares {usize} from {csize}"
        )
    if e.got_crc != crc:
        raise ZipDamaged(f"{e.name} fails its CRC-32 check")
