#!/usr/bin/python3
"""make_corpus.py OUTDIR CHECKPOINT: writes the bad inputs test_robust.py feeds to `vae_mpi train`:
HDF5 data files (OUTDIR/data/*.h5, dataset train/images unless said) and broken copies of a good
checkpoint (OUTDIR/ckpt/*.h5). Each writer is small and named for the case; make(outdir, ckpt)
returns {case: path}. Deterministic. Never writes outside OUTDIR."""
import os
import shutil
import sys

import h5py
import numpy as np

DS = "train/images"
PLUGIN_FILTER_ID = 32123  # not registered with The HDF Group, built into nothing


def _h5(path, fn, **kw):
    with h5py.File(path, "w", **kw) as f:
        fn(f)


def data_files(d):
    os.makedirs(d, exist_ok=True)
    rng = np.random.default_rng(8)
    good = (rng.random((12, 8, 8)) < 0.3).astype(np.uint8) * 255
    p = lambda n: os.path.join(d, n + ".h5")
    out = {}

    def put(name, fn, **kw):
        _h5(p(name), fn, **kw)
        out[name] = p(name)

    open(p("empty"), "wb").close()
    out["empty"] = p("empty")
    put("good_copy", lambda f: f.create_dataset(DS, data=good))
    blob = open(p("good_copy"), "rb").read()
    open(p("truncated"), "wb").write(blob[: len(blob) // 2])
    out["truncated"] = p("truncated")
    open(p("truncated_tail"), "wb").write(blob[:-100])
    out["truncated_tail"] = p("truncated_tail")
    put("rank5", lambda f: f.create_dataset(DS, data=np.zeros((2, 2, 2, 2, 2), np.uint8)))
    put("scalar", lambda f: f.create_dataset(DS, data=np.float32(0.5)))
    put("zero_rows", lambda f: f.create_dataset(DS, shape=(0, 8, 8), dtype=np.uint8))
    put("two_rows", lambda f: f.create_dataset(DS, data=good[:2]))
    put("compound", lambda f: f.create_dataset(DS, data=np.zeros((4, 3), dtype=[("a", "u1"), ("b", "f4")])))
    put("vlen_strings", lambda f: f.create_dataset(DS, data=np.array(["ab", "cde"], dtype=h5py.string_dtype())))
    inf = good.astype(np.float64) / 255
    inf[9, 3, 4] = np.inf
    put("inf", lambda f: f.create_dataset(DS, data=inf))
    nan32 = good.astype(np.float32) / 255
    nan32[5, 0, 0] = np.nan
    put("nan_chunked", lambda f: f.create_dataset(DS, data=nan32, chunks=(3, 8, 8), compression="gzip"))
    neg = good.astype(np.float32) / 255
    neg[11, 7, 7] = -0.5
    put("negative", lambda f: f.create_dataset(DS, data=neg))
    for t in ["int32", "uint16", "float16", "int8"]:
        put(t, lambda f, t=t: f.create_dataset(DS, data=good.astype(t)))
    # Dimensions whose product overflows 64 bits (nothing written: HDF5 allows such a shape).
    put("dims_overflow", lambda f: f.create_dataset(DS, shape=(2**40, 2**30, 2**30), chunks=(1, 1, 1), dtype=np.uint8))
    # More values per image than an int: refused before any allocation.
    put("image_too_big", lambda f: f.create_dataset(DS, shape=(4, 2**31), chunks=(1, 1024), dtype=np.uint8))
    # A shard that cannot fit in memory: (2^40, 784) uint8, declared, nothing written ...
    put("huge_unwritten", lambda f: f.create_dataset(DS, shape=(2**40, 784), chunks=(1024, 784), dtype=np.uint8))

    # ... and with a first chunk written, so the row and memory checks must refuse them:
    # 2^40 rows (more than a rank's uint32 batch index), and 2^31 rows (840 GB: no memory holds it).
    def one_chunk(rows):
        def fn(f):
            ds = f.create_dataset(DS, shape=(rows, 784), chunks=(1024, 784), dtype=np.uint8)
            ds[0:1024] = 255
        return fn
    put("huge_rows", one_chunk(2**40))
    put("huge_memory", one_chunk(2**31))
    # Reaching outside the file.
    _h5(os.path.join(d, "target.h5"), lambda f: f.create_dataset("x", data=good))

    def ext_link(f):
        f[DS] = h5py.ExternalLink("target.h5", "/x")
    put("external_link", ext_link)

    def ext_group(f):
        f["train"] = h5py.ExternalLink("target.h5", "/")
    put("external_link_group", ext_group)
    good.tofile(os.path.join(d, "raw.bin"))
    put("external_storage", lambda f: f.create_dataset(DS, shape=good.shape, dtype=np.uint8,
                                                       external=[("raw.bin", 0, good.nbytes)]))

    def vds(f):
        lay = h5py.VirtualLayout(shape=good.shape, dtype=np.uint8)
        lay[:] = h5py.VirtualSource("target.h5", "x", shape=good.shape)
        f.create_virtual_dataset(DS, lay)
    put("virtual", vds)

    # A filter only a plugin could decode. Marked optional, so HDF5 writes it without the filter
    # present (the chunks are stored unfiltered); the pipeline still names it.
    def plugin_filter(f):
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((4, 8, 8))
        dcpl.set_filter(PLUGIN_FILTER_ID, h5py.h5z.FLAG_OPTIONAL)
        f.create_group("train")
        sp = h5py.h5s.create_simple(good.shape)
        ds = h5py.h5d.create(f["train"].id, b"images", h5py.h5t.NATIVE_UINT8, sp, dcpl=dcpl)
        ds.write(h5py.h5s.ALL, h5py.h5s.ALL, good)
    put("plugin_filter", plugin_filter)
    # Another image shape, for resuming a checkpoint trained on 8x8.
    put("shape_6x6", lambda f: f.create_dataset(DS, data=good[:, :6, :6]))
    return out


def _copy_edit(src, dst, fn):
    shutil.copy(src, dst)
    with h5py.File(dst, "r+") as f:
        fn(f)
    return dst


def checkpoints(d, good):
    os.makedirs(d, exist_ok=True)
    p = lambda n: os.path.join(d, n + ".h5")
    out = {}
    blob = open(good, "rb").read()
    for name, data in [("truncated", blob[: len(blob) // 2]), ("truncated_tail", blob[:-64]),
                       ("empty", b""), ("not_hdf5", b"checkpoint\n" * 50)]:
        open(p(name), "wb").write(data)
        out[name] = p(name)

    def nan_weight(f):
        f["model/encoder/hidden0/weight"][0, 0] = np.nan

    def inf_moment(f):
        f["optimizer/v/decoder/out/bias"][1] = np.inf

    def missing_tensor(f):
        del f["model/decoder/out/bias"]

    def missing_attr(f):
        del f.attrs["step"]

    def missing_model_attr(f):
        del f["model"].attrs["latent"]

    def wrong_shape(f):
        del f["model/encoder/mu/bias"]
        f["model/encoder/mu/bias"] = np.zeros(3, np.float32)

    def model_only(f):
        del f["optimizer"]

    def ext_link(f):
        w = f["model/encoder/hidden0/weight"][...]
        del f["model/encoder/hidden0/weight"]
        with h5py.File(os.path.join(d, "weights.h5"), "w") as g:
            g["w"] = w
        f["model/encoder/hidden0/weight"] = h5py.ExternalLink("weights.h5", "/w")

    def ext_storage(f):
        w = f["model/encoder/hidden0/weight"][...].astype(np.float32)
        del f["model/encoder/hidden0/weight"]
        w.tofile(os.path.join(d, "weights.raw"))
        f.create_dataset("model/encoder/hidden0/weight", shape=w.shape, dtype=np.float32,
                         external=[("weights.raw", 0, w.nbytes)])

    def virtual(f):
        w = f["model/encoder/hidden0/weight"][...]
        del f["model/encoder/hidden0/weight"]
        with h5py.File(os.path.join(d, "weights_vds.h5"), "w") as g:
            g["w"] = w
        lay = h5py.VirtualLayout(shape=w.shape, dtype=np.float32)
        lay[:] = h5py.VirtualSource("weights_vds.h5", "w", shape=w.shape)
        f.create_virtual_dataset("model/encoder/hidden0/weight", lay)

    def soft_link(f):
        f.move("optimizer", "opt_real")
        f["optimizer"] = h5py.SoftLink("/opt_real")

    for fn in [nan_weight, inf_moment, missing_tensor, missing_attr, missing_model_attr, wrong_shape,
               model_only, ext_link, ext_storage, virtual, soft_link]:
        out[fn.__name__] = _copy_edit(good, p(fn.__name__), fn)
    return out


def make(outdir, good_ckpt):
    return data_files(os.path.join(outdir, "data")), checkpoints(os.path.join(outdir, "ckpt"), good_ckpt)


if __name__ == "__main__":
    data, ck = make(sys.argv[1], sys.argv[2])
    print(f"make_corpus: {len(data)} data files, {len(ck)} checkpoints in {sys.argv[1]}")
