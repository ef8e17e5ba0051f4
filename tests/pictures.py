"""The seed's picture for tests: a PNG drawn with zlib and struct (no Pillow here), and its size."""

from __future__ import annotations

import struct

# The seed's picture, made without Pillow (the sandbox has no package mirror in CI):
# a PNG written by hand with zlib, the IP drawn as bars of its octets.
MAKE_PICTURE = '''
import struct, zlib

with open('/network/current-ip') as f:
    ip_address = f.read().strip()

def chunk(kind, data):
    return struct.pack('>I', len(data)) + kind + data + struct.pack('>I', zlib.crc32(kind + data))

width, height = 64, 32
octets = [int(part) for part in ip_address.split('.')]
rows = []
for y in range(height):
    row = bytearray([0])
    for x in range(width):
        bar = octets[x * len(octets) // width]
        row += bytes((30, 100, 200)) if y < height * bar // 256 else bytes((255, 255, 255))
    rows.append(bytes(row))
png = b'\\x89PNG\\r\\n\\x1a\\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', width, height, 8, 2, 0, 0, 0))
png += chunk(b'IDAT', zlib.compress(b''.join(rows))) + chunk(b'IEND', b'')
with open('/output/ip_address.png', 'wb') as f:
    f.write(png)
print("Picture saved to /output/ip_address.png")
len(png)
'''


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", data[:8]
    return struct.unpack(">II", data[16:24])
