"""The seed's example, without a model: guest code reads /network/current-ip
(served by an async host function) and draws it into a PNG in /output with a
pure-Python package from PyPI; the host receives a valid picture."""

import asyncio
import struct
import zlib

from throwaway.fs import FileSystem
from throwaway.sandbox import Sandbox

DRAW = '''
from throwaway import install
install("pypng")
import png

with open("/network/current-ip") as f:
    ip = f.read().strip()

FONT = {  # 3x5 digits
    "0": ["111", "101", "101", "101", "111"], "1": ["010", "110", "010", "010", "111"],
    "2": ["111", "001", "111", "100", "111"], "3": ["111", "001", "111", "001", "111"],
    "4": ["101", "101", "111", "001", "001"], "5": ["111", "100", "111", "001", "111"],
    "6": ["111", "100", "111", "101", "111"], "7": ["111", "001", "001", "001", "001"],
    "8": ["111", "101", "111", "101", "111"], "9": ["111", "101", "111", "001", "111"],
    ".": ["000", "000", "000", "000", "010"],
}
scale, pad = 8, 2
cols = []
for ch in ip:
    glyph = FONT[ch]
    for x in range(3):
        cols.append([glyph[y][x] == "1" for y in range(5)])
    cols.append([False] * 5)
width, height = (len(cols) + 2 * pad) * scale, (5 + 2 * pad) * scale
rows = []
for y in range(height):
    row = []
    for x in range(width):
        cx, cy = x // scale - pad, y // scale - pad
        ink = 0 <= cx < len(cols) and 0 <= cy < 5 and cols[cx][cy]
        row += (25, 118, 210) if ink else (227, 242, 253)
    rows.append(row)
with open("/output/ip_address.png", "wb") as f:
    png.Writer(width, height, greyscale=False).write(f, rows)
print(f"Picture of {ip} saved to /output/ip_address.png")
'''


def read_png(data: bytes):
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + length]
        crc = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc
        chunks[kind] = chunks.get(kind, b"") + body
        pos += 12 + length
    width, height, depth, color = struct.unpack(">IIBB", chunks[b"IHDR"][:10])
    return width, height, depth, color, zlib.decompress(chunks[b"IDAT"])


def test_picture_of_the_current_ip(tmp_path):
    fs = FileSystem()
    reads = []

    @fs.file("/network/current-ip", description="the current public IP address")
    async def current_ip():
        await asyncio.sleep(0.01)  # as a real lookup would
        reads.append(1)
        return "203.0.113.42\n"

    with Sandbox(fs=fs) as sb:
        r = sb.exec(DRAW)
        assert r.ok, r.error and r.error.traceback
        assert r.stdout == "Picture of 203.0.113.42 saved to /output/ip_address.png\n"
        assert r.files == ["/output/ip_address.png"]
        (path,) = sb.collect_output(tmp_path / "output")

    assert reads == [1]
    width, height, depth, color, pixels = read_png(path.read_bytes())
    assert (depth, color) == (8, 2)  # 8-bit RGB
    assert (width, height) == ((12 * 4 + 4) * 8, 9 * 8)  # 12 characters, 4 columns each, plus padding
    stride = 1 + width * 3
    assert len(pixels) == height * stride
    ink = bytes((25, 118, 210))
    inked = sum(pixels[y * stride + 1 :][: width * 3].count(ink) for y in range(height))
    assert inked > 100  # the digits are drawn
