"""Test photos made in memory: encoded images, PNG headers that lie about their size, and seeded mutations."""

import io
import struct
import zlib

import numpy as np
from PIL import Image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size but holds almost no data (0x0 cannot be written by Pillow)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", zlib.compress(b"")) + _chunk(b"IEND", b"")


def png_bomb(width: int, height: int) -> bytes:
    """A whole, valid 1-bit black PNG: a few kilobytes that decode into width x height pixels."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then the row's bits
    packer = zlib.compressobj(9)
    data = b"".join(packer.compress(row) for _ in range(height)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def mutations(seed: int, count: int):
    """Seeded variants of valid photos: flipped bits, cut tails, spliced bytes, damaged headers, odd sizes."""
    rng = np.random.default_rng(seed)
    photo = Image.fromarray(rng.integers(0, 255, (120, 160, 3), dtype=np.uint8))
    sources = [encode(photo, "JPEG"), encode(photo, "PNG"), encode(photo, "WEBP"), encode(photo, "BMP")]
    for _ in range(count):
        data = bytearray(sources[rng.integers(len(sources))])
        kind = rng.integers(5)
        if kind == 0:
            for position in rng.integers(0, len(data), size=rng.integers(1, 20)):
                data[position] ^= 1 << int(rng.integers(8))
        elif kind == 1:
            data = data[: rng.integers(1, len(data))]
        elif kind == 2:
            at = int(rng.integers(len(data)))
            data = data[:at] + rng.bytes(int(rng.integers(1, 500))) + data[at:]
        elif kind == 3:
            data[: rng.integers(1, 64)] = rng.bytes(len(data[:64]))[: len(data[: rng.integers(1, 64)])]
        else:
            data = bytearray(png_header_only(int(rng.integers(0, 70000)), int(rng.integers(0, 70000))))
        yield bytes(data)
