"""imagegen.py: image files for the import-images tests, written independently of libpng.

write_png() is a small PNG encoder (zlib + struct) for every colour type and bit depth of the PNG
specification, with optional tRNS transparency and Adam7 interlacing, which Pillow cannot write.
truth_rgba() gives, for what write_png was handed, the 8-bit RGBA pixels a correct decoder must
produce (16-bit samples scaled as round(v / 257), palettes and tRNS expanded). The composite and
luma helpers are the documented formulas of import-images, written here from their definitions."""
import struct
import zlib

import numpy as np

GREY, RGB, PALETTE, GREY_ALPHA, RGBA = 0, 2, 3, 4, 6
CHANNELS = {GREY: 1, RGB: 3, PALETTE: 1, GREY_ALPHA: 2, RGBA: 4}
# Adam7 passes: (x0, y0, dx, dy)
ADAM7 = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]


def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _pack_rows(samples, depth):
    """samples (h, w*ch) ints -> filter-0 scanlines packed at `depth` bits, MSB first."""
    out = bytearray()
    for row in samples:
        out.append(0)  # filter type None
        if depth == 16:
            out += np.asarray(row, ">u2").tobytes()
        elif depth == 8:
            out += np.asarray(row, np.uint8).tobytes()
        else:
            bits = np.unpackbits(np.asarray(row, np.uint8)[:, None], axis=1)[:, 8 - depth:]
            out += np.packbits(bits.reshape(-1)).tobytes()
    return bytes(out)


def write_png(path, samples, colour, depth, palette=None, trns=None, interlace=False):
    """samples: (h, w, channels) integer array of raw sample values (palette indices for PALETTE).
    palette: (n, 3) uint8; trns: per-index alphas (PALETTE) or the transparent sample value(s)."""
    samples = np.asarray(samples)
    h, w = samples.shape[:2]
    ch = CHANNELS[colour]
    flat = samples.reshape(h, w, ch)
    ihdr = struct.pack(">IIBBBBB", w, h, depth, colour, 0, 0, 1 if interlace else 0)
    body = _chunk(b"IHDR", ihdr)
    if palette is not None:
        body += _chunk(b"PLTE", np.asarray(palette, np.uint8).tobytes())
    if trns is not None:
        if colour == PALETTE:
            body += _chunk(b"tRNS", np.asarray(trns, np.uint8).tobytes())
        else:
            body += _chunk(b"tRNS", np.asarray(np.atleast_1d(trns), ">u2").tobytes())
    if interlace:
        raw = b""
        for x0, y0, dx, dy in ADAM7:
            sub = flat[y0::dy, x0::dx]
            if sub.shape[0] and sub.shape[1]:
                raw += _pack_rows(sub.reshape(sub.shape[0], -1), depth)
    else:
        raw = _pack_rows(flat.reshape(h, -1), depth)
    body += _chunk(b"IDAT", zlib.compress(raw, 6))
    body += _chunk(b"IEND", b"")
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + body)


def to8(v, depth):
    """A sample of `depth` bits as 8 bits: bit replication below 8 (libpng's png_set_expand, exact
    multiples of 255/(2^d-1)), round(v / 257) for 16."""
    v = np.asarray(v, np.int64)
    if depth == 16:
        return np.floor(v / 257 + 0.5).astype(np.int64)
    return (v * 255 // ((1 << depth) - 1)).astype(np.int64)


def truth_rgba(samples, colour, depth, palette=None, trns=None):
    """The 8-bit RGBA image a correct PNG decoder produces: (h, w, 4) int64."""
    s = np.asarray(samples, np.int64)
    h, w = s.shape[:2]
    s = s.reshape(h, w, CHANNELS[colour])
    a = np.full((h, w), 255, np.int64)
    if colour == PALETTE:
        pal = np.asarray(palette, np.int64)
        rgb = pal[s[..., 0]]
        if trns is not None:
            alphas = np.full(256, 255, np.int64)
            alphas[: len(trns)] = trns
            a = alphas[s[..., 0]]
        return np.dstack([rgb, a])
    if colour in (GREY, GREY_ALPHA):
        g = to8(s[..., 0], depth)
        if colour == GREY_ALPHA:
            a = to8(s[..., 1], depth)
        elif trns is not None:
            a = np.where(s[..., 0] == int(np.atleast_1d(trns)[0]), 0, 255)
        return np.dstack([g, g, g, a])
    rgb = to8(s[..., :3], depth)
    if colour == RGBA:
        a = to8(s[..., 3], depth)
    elif trns is not None:
        t = np.atleast_1d(trns)
        a = np.where((s[..., 0] == t[0]) & (s[..., 1] == t[1]) & (s[..., 2] == t[2]), 0, 255)
    return np.dstack([rgb, a])


def composite(rgba, bg):
    """round((a v + (255 - a) bg) / 255) per colour value: (h, w, 3)."""
    rgba = np.asarray(rgba, np.int64)
    a = rgba[..., 3:4]
    return (a * rgba[..., :3] + (255 - a) * bg + 127) // 255


def luma(rgb):
    """ITU-R 601: round(0.299 R + 0.587 G + 0.114 B), in exact integers."""
    rgb = np.asarray(rgb, np.int64)
    return (299 * rgb[..., 0] + 587 * rgb[..., 1] + 114 * rgb[..., 2] + 500) // 1000
