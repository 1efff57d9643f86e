#!/usr/bin/env python3
"""Writes the generated seed variants in Tests/Fuzz/seeds/{tiff,npy} (committed; rerun only to
change them). TIFF layouts the fixtures lack (float16 in strips, tiles and separate planes,
BigTIFF, signed, 1-bit, palette, Deflate) are written byte by byte with struct and zlib; .npy
variants (big-endian, Fortran order, format 2.0, bool, int64, float64, 4-D) by hand as well, so
no package beyond the standard library is needed."""
import os
import struct
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))


def tiff(path, width, height, spp, bps, fmt, data_planes, *, tile=None, big=False, photometric=1,
         colormap=None, compression=1, planar=1):
    """data_planes: list of bytes blocks (one per strip or tile, in file order)."""
    if compression == 8:
        data_planes = [zlib.compress(b) for b in data_planes]
    entries = []

    def tag(code, typ, values):
        entries.append((code, typ, values))

    tag(256, 4, [width])
    tag(257, 4, [height])
    tag(258, 3, [bps] * spp)
    tag(259, 3, [compression])
    tag(262, 3, [photometric])
    tag(277, 3, [spp])
    tag(284, 3, [planar])
    tag(339, 3, [fmt] * spp)
    if colormap is not None:
        tag(320, 3, colormap)
    if tile:
        tag(322, 4, [tile[0]])
        tag(323, 4, [tile[1]])
    else:
        tag(278, 4, [height])
    # Data first, then the directory (as libtiff writes it).
    header = 16 if big else 8
    offsets, counts, pos = [], [], header
    for block in data_planes:
        offsets.append(pos)
        counts.append(len(block))
        pos += len(block) + (len(block) & 1)
    off_type = 16 if big else 4
    tag(324 if tile else 273, off_type, offsets)
    tag(325 if tile else 279, off_type, counts)
    entries.sort()
    sizes = {3: 2, 4: 4, 16: 8}
    codes = {3: "H", 4: "I", 16: "Q"}
    ifd = pos
    entry_size = 20 if big else 12
    count_size = 8 if big else 2
    inline = 8 if big else 4
    extra_pos = ifd + count_size + entry_size * len(entries) + (8 if big else 4)
    body, extra = b"", b""
    for code, typ, values in entries:
        raw = struct.pack("<" + codes[typ] * len(values), *values)
        if len(raw) <= inline:
            field = raw.ljust(inline, b"\0")
        else:
            field = struct.pack("<Q" if big else "<I", extra_pos + len(extra))
            extra += raw + (b"\0" if len(raw) & 1 else b"")
        if big:
            body += struct.pack("<HHQ", code, typ, len(values)) + field
        else:
            body += struct.pack("<HHI", code, typ, len(values)) + field
    out = (b"II" + struct.pack("<HHHQ", 43, 8, 0, ifd)) if big else (b"II" + struct.pack("<HI", 42, ifd))
    for block in data_planes:
        out += block + (b"\0" if len(block) & 1 else b"")
    out += struct.pack("<Q" if big else "<H", len(entries)) + body + struct.pack("<Q" if big else "<I", 0) + extra
    with open(path, "wb") as f:
        f.write(out)


def half(x):
    return struct.pack("<e", x)


def npy(path, descr, shape, data, fortran=False, version=1):
    shape_text = "(" + ", ".join(str(s) for s in shape) + ("," if len(shape) == 1 else "") + ")"
    header = "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", shape_text)
    prefix = 10 if version == 1 else 12
    header += " " * ((64 - (prefix + len(header) + 1) % 64) % 64) + "\n"
    length = struct.pack("<H", len(header)) if version == 1 else struct.pack("<I", len(header))
    with open(path, "wb") as f:
        f.write(b"\x93NUMPY" + bytes([version, 0]) + length + header.encode() + data)


def main():
    t = os.path.join(HERE, "seeds", "tiff")
    n = os.path.join(HERE, "seeds", "npy")
    os.makedirs(t, exist_ok=True)
    os.makedirs(n, exist_ok=True)
    w, h = 16, 8
    plane16 = b"".join(half((x + y) / 8) for y in range(h) for x in range(w))
    tiff(os.path.join(t, "f16-strip.tif"), w, h, 1, 16, 3, [plane16])
    tiff(os.path.join(t, "f16-deflate.tif"), w, h, 1, 16, 3, [plane16], compression=8)
    tile = b"".join(half(x / 16) for y in range(16) for x in range(16))
    tiff(os.path.join(t, "f16-tiled.tif"), 32, 16, 1, 16, 3, [tile, tile], tile=(16, 16))
    tiff(os.path.join(t, "f16-separate.tif"), w, h, 2, 16, 3, [plane16, plane16[::-1]], planar=2)
    u16 = b"".join(struct.pack("<H", 1000 * x + y) for y in range(h) for x in range(w))
    tiff(os.path.join(t, "u16-bigtiff.tif"), w, h, 1, 16, 1, [u16], big=True)
    s16 = b"".join(struct.pack("<h", x - y * 100) for y in range(h) for x in range(w))
    tiff(os.path.join(t, "i16.tif"), w, h, 1, 16, 2, [s16])
    bits = bytes([0b10110010, 0b01001101] * h)
    tiff(os.path.join(t, "bilevel.tif"), w, h, 1, 1, 1, [bits], photometric=0)
    cmap = [i * 257 for i in range(256)] + [65535 - i * 257 for i in range(256)] + [0] * 256
    tiff(os.path.join(t, "palette8.tif"), w, h, 1, 8, 1, [bytes((x * 16 + y) & 255 for y in range(h) for x in range(w))],
         photometric=3, colormap=cmap)
    f64 = b"".join(struct.pack("<d", x * 0.5 - y) for y in range(h) for x in range(w))
    tiff(os.path.join(t, "f64.tif"), w, h, 1, 64, 3, [f64])

    npy(os.path.join(n, "f4-big-endian.npy"), ">f4", (3, 4), b"".join(struct.pack(">f", i / 3) for i in range(12)))
    npy(os.path.join(n, "u2-fortran.npy"), "<u2", (2, 3, 4), b"".join(struct.pack("<H", i) for i in range(24)), fortran=True)
    npy(os.path.join(n, "f4-v2.npy"), "<f4", (4, 4), b"".join(struct.pack("<f", i) for i in range(16)), version=2)
    npy(os.path.join(n, "bool.npy"), "|b1", (4, 4), bytes([i & 1 for i in range(16)]))
    npy(os.path.join(n, "i8-negative.npy"), "<i8", (2, 2), struct.pack("<4q", -1, 2, 3, 1 << 40))
    npy(os.path.join(n, "f8.npy"), "<f8", (2, 3), struct.pack("<6d", 0.5, -1, 1e300, 0, 2, 3))
    npy(os.path.join(n, "u1-4d.npy"), "|u1", (1, 2, 2, 2), bytes(range(8)))
    npy(os.path.join(n, "u4-labels.npy"), "<u4", (3, 3), struct.pack("<9I", *range(0, 90000, 10000)))


if __name__ == "__main__":
    main()
