#!/usr/bin/python3
"""make_data_files.py OUTDIR: writes the HDF5 files test_data_read checks, the expected values of
every good dataset (OUTDIR/NAME.bin: raw uint8, or float32 for float data), and OUTDIR/manifest.txt:
  good NAME KIND N H W C FILE DATASET EXPECTED     (KIND u8|f32; EXPECTED a .bin or "formula")
  bad NAME STAGE ROW FILE DATASET KEYWORD...       (STAGE probe|read|finite|unit; ROW or -1)
Deterministic (fixed seeds). Needs Debian's python3 with h5py and numpy. Must never write outside
OUTDIR."""
import os
import sys

import h5py
import numpy as np

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(20240611)
lines = []


def path(name):
    return os.path.join(out, name)


def good(name, fname, dset, data, formula=False):
    kind = "u8" if data.dtype == np.uint8 else "f32"
    shape = data.shape
    h, w, c = (1, shape[1], 1) if len(shape) == 2 else (shape[1], shape[2], shape[3] if len(shape) == 4 else 1)
    exp = "formula" if formula else name + ".bin"
    if not formula:
        (data if kind == "u8" else data.astype(np.float32)).tofile(path(exp))
    lines.append(f"good {name} {kind} {shape[0]} {h} {w} {c} {fname} {dset} {exp}")


def bad(name, stage, fname, dset, keyword, row=-1):
    lines.append(f"bad {name} {stage} {row} {fname} {dset} {keyword}")


# ---- good files
u8 = rng.integers(0, 256, size=(101, 28, 28), dtype=np.uint8)
with h5py.File(path("u8_contig.h5"), "w") as f:
    f.create_dataset("train/images", data=u8)  # contiguous
    f.create_dataset("train/labels", data=np.arange(101, dtype=np.uint8))
good("u8_contig", "u8_contig.h5", "train/images", u8)

u8c = rng.integers(0, 256, size=(50, 6, 5, 3), dtype=np.uint8)
with h5py.File(path("u8_chunked.h5"), "w") as f:
    f.create_dataset("images", data=u8c, chunks=(7, 6, 5, 3), compression="gzip", shuffle=True)
good("u8_chunked", "u8_chunked.h5", "/images", u8c)

f64 = rng.random((37, 12))
with h5py.File(path("f64_chunked.h5"), "w") as f:
    f.create_dataset("x", data=f64, chunks=(5, 12), compression="gzip")
good("f64_chunked", "f64_chunked.h5", "x", f64)

f32 = rng.random((20, 4, 4), dtype=np.float32)
with h5py.File(path("f32_nested.h5"), "w") as f:
    f.create_dataset("a/b/c", data=f32)
good("f32_nested", "f32_nested.h5", "/a/b/c", f32)
good("f32_nested_dots", "f32_nested.h5", "//a/./b/c/", f32)

be = rng.random((9, 3, 3, 2)).astype(">f4")
with h5py.File(path("f32_bigendian.h5"), "w") as f:
    f.create_dataset("x", data=be)
good("f32_bigendian", "f32_bigendian.h5", "x", be.astype(np.float32))

# Fewer rows than ranks at np 3 and 4: some ranks read nothing and still join every call.
tiny = rng.integers(0, 256, size=(3, 2, 2), dtype=np.uint8)
with h5py.File(path("tiny.h5"), "w") as f:
    f.create_dataset("u8", data=tiny)
    f.create_dataset("f64", data=tiny.reshape(3, 4)[:2] / 255.0, chunks=(1, 4), compression="gzip")
good("tiny_u8", "tiny.h5", "u8", tiny)
good("tiny_f64", "tiny.h5", "f64", tiny.reshape(3, 4)[:2] / 255.0)

cmp_ = rng.integers(0, 256, size=(13, 5), dtype=np.uint8)
with h5py.File(path("compact.h5"), "w") as f:
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.COMPACT)
    space = h5py.h5s.create_simple(cmp_.shape)
    ds = h5py.h5d.create(f.id, b"c", h5py.h5t.NATIVE_UINT8, space, dcpl=dcpl)
    ds.write(h5py.h5s.ALL, h5py.h5s.ALL, cmp_)
good("compact", "compact.h5", "c", cmp_)

# Soft links inside one file are followed: absolute, relative, and a chain of two.
real = rng.integers(0, 256, size=(11, 4, 4), dtype=np.uint8)
inner = rng.random((6, 7), dtype=np.float32)
with h5py.File(path("soft.h5"), "w") as f:
    f["real"] = real
    f["grp/inner"] = inner
    f["alias"] = h5py.SoftLink("/real")
    f["grp/rel"] = h5py.SoftLink("inner")
    f["chain"] = h5py.SoftLink("/alias")
    f["viagrp"] = h5py.SoftLink("/grp")
    f["ext_in_soft"] = h5py.ExternalLink("u8_contig.h5", "/train/images")
    f["to_ext"] = h5py.SoftLink("/ext_in_soft")
    f["dangling"] = h5py.SoftLink("/nowhere")
    f["loop1"] = h5py.SoftLink("/loop2")
    f["loop2"] = h5py.SoftLink("/loop1")
good("soft_abs", "soft.h5", "alias", real)
good("soft_chain", "soft.h5", "chain", real)
good("soft_rel", "soft.h5", "grp/rel", inner)
good("soft_group", "soft.h5", "viagrp/inner", inner)
bad("soft_to_external", "probe", "soft.h5", "to_ext", "is an external link")
bad("soft_dangling", "probe", "soft.h5", "dangling", "soft link '/dangling' points to '/nowhere'")
bad("soft_loop", "probe", "soft.h5", "loop1", "soft links")

# Fashion-MNIST sized: 60000 x 28 x 28 uint8, values from a formula the C test recomputes.
r = np.arange(60000, dtype=np.int64)[:, None]
j = np.arange(784, dtype=np.int64)[None, :]
big = ((r * 31 + j * 7 + (r >> 3)) & 255).astype(np.uint8).reshape(60000, 28, 28)
with h5py.File(path("fmnist_sized.h5"), "w") as f:
    f.create_dataset("train/images", data=big)
good("fmnist_sized", "fmnist_sized.h5", "train/images", big, formula=True)
del big

# ---- bad files: the file itself
with open(path("text.h5"), "w") as f:
    f.write("this is not an HDF5 file\n" * 20)
bad("text", "probe", "text.h5", "x", "is not an HDF5 file")
open(path("empty.h5"), "wb").close()
bad("empty", "probe", "empty.h5", "x", "is empty")
with open(path("u8_contig.h5"), "rb") as f:
    blob = f.read()
with open(path("truncated.h5"), "wb") as f:
    f.write(blob[: len(blob) // 2])
bad("truncated", "probe", "truncated.h5", "train/images", "truncated")
bad("missing_file", "probe", "no_such_file.h5", "x", "not found")
bad("directory", "probe", ".", "x", "is a directory")

# ---- bad datasets in good files
bad("missing_dataset", "probe", "u8_contig.h5", "train/nope", "train contains: images, labels")
bad("missing_top", "probe", "u8_contig.h5", "nope/images", "the top level contains: train")
bad("group", "probe", "u8_contig.h5", "train", "is a group, not a dataset")
bad("root", "probe", "u8_contig.h5", "/", "root group")
bad("through_dataset", "probe", "u8_contig.h5", "train/images/x", "is not a group")
# (name, dataset, create_dataset arguments, expected words), all in bad_types.h5
z = np.zeros
bad_types = [
    ("string", "str", dict(data=np.array([b"abc", b"def"])), "string values"),
    ("compound", "cmp", dict(data=z((4, 3), dtype=[("a", "u1"), ("b", "f4")])), "compound"),
    ("boolean", "boolean", dict(data=z((4, 3), dtype=bool)), "enum"),
    ("int16", "i16", dict(data=z((4, 3), dtype=np.int16)), "16-bit signed integers"),
    ("int8", "i8", dict(data=z((4, 3), dtype=np.int8)), "8-bit signed integers"),
    ("uint16", "u16", dict(data=z((4, 3), dtype=np.uint16)), "convert it"),
    ("float16", "f16", dict(data=z((4, 3), dtype=np.float16)), "16-bit floats"),
    ("rank1", "r1", dict(data=z(10, dtype=np.uint8)), "has 1 dimension(s)"),
    ("rank5", "r5", dict(data=z((2, 2, 2, 2, 2), dtype=np.uint8)), "has 5 dimension(s)"),
    ("scalar", "scalar", dict(data=np.float32(1.0)), "has 0 dimension(s)"),
    ("zero_rows", "zero_rows", dict(shape=(0, 10), dtype=np.uint8), "has 0 rows"),
    ("zero_dim", "zero_dim", dict(shape=(10, 0), dtype=np.uint8), "zero dimension"),
    ("unwritten", "unwritten", dict(shape=(10, 4), dtype=np.float32), "no data written"),
    ("huge", "huge", dict(shape=(2**62, 2**62), chunks=(1, 1), dtype=np.uint8), "overflows"),
]
with h5py.File(path("bad_types.h5"), "w") as f:
    for name, dset, kwargs, words in bad_types:
        f.create_dataset(dset, **kwargs)
        bad(name, "probe", "bad_types.h5", dset, words)

# ---- data outside the file
with h5py.File(path("extlink.h5"), "w") as f:
    f["ext"] = h5py.ExternalLink("u8_contig.h5", "/train/images")
    f["egrp"] = h5py.ExternalLink("u8_contig.h5", "/train")
bad("external_link", "probe", "extlink.h5", "ext", "is an external link to file 'u8_contig.h5', object '/train/images'")
bad("external_link_mid", "probe", "extlink.h5", "egrp/images", "is an external link")
raw = rng.integers(0, 256, size=(8, 4), dtype=np.uint8)
raw.tofile(path("extstore.raw"))
with h5py.File(path("extstore.h5"), "w") as f:
    f.create_dataset("e", shape=raw.shape, dtype=np.uint8, external=[("extstore.raw", 0, raw.nbytes)])
bad("external_storage", "probe", "extstore.h5", "e", "external file")
with h5py.File(path("vds.h5"), "w") as f:
    lay = h5py.VirtualLayout(shape=(101, 28, 28), dtype=np.uint8)
    lay[:] = h5py.VirtualSource("u8_contig.h5", "train/images", shape=(101, 28, 28))
    f.create_virtual_dataset("v", lay)
bad("virtual", "probe", "vds.h5", "v", "virtual dataset")
with h5py.File(path("lzf.h5"), "w") as f:
    f.create_dataset("z", data=u8[:10], chunks=(5, 28, 28), compression="lzf")
bad("lzf", "probe", "lzf.h5", "z", "filter 32000 ('lzf')")

# ---- damaged data: probe passes, the collective read fails on the rank reading the last chunk
dmg = rng.integers(0, 4, size=(40, 8, 8), dtype=np.uint8)
with h5py.File(path("corrupt.h5"), "w") as f:
    f.create_dataset("images", data=dmg, chunks=(10, 8, 8), compression="gzip")
with h5py.File(path("corrupt.h5"), "r") as f:
    info = f["images"].id.get_chunk_info(3)  # rows 30..39
assert info.chunk_offset == (30, 0, 0), info
with open(path("corrupt.h5"), "r+b") as f:
    f.seek(info.byte_offset + 2)
    f.write(b"\xff" * (info.size - 2))
bad("corrupt_chunk", "read", "corrupt.h5", "images", "failed on rank")

# ---- values: finite everywhere, and in [0, 1] for the bernoulli decoder
x = rng.random((30, 5), dtype=np.float32)
x[23, 2] = np.nan
with h5py.File(path("nan.h5"), "w") as f:
    f.create_dataset("x", data=x)
bad("nan", "finite", "nan.h5", "x", "has a NaN at value 2", 23)
x = rng.random((30, 5))
x[7, 4] = -np.inf
with h5py.File(path("inf.h5"), "w") as f:
    f.create_dataset("x", data=x, chunks=(4, 5), compression="gzip")
bad("inf", "finite", "inf.h5", "x", "infinite value (-Inf) at value 4", 7)
x = rng.random((30, 5), dtype=np.float32)
x[17, 0] = 1.5
x[29, 1] = -0.25
with h5py.File(path("range.h5"), "w") as f:
    f.create_dataset("x", data=x)
bad("range", "unit", "range.h5", "x", "value 1.5 at 0 (of 5 per image), outside [0, 1]", 17)

with open(path("manifest.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
print(f"make_data_files: {len(lines)} entries in {out}")
