#!/usr/bin/python3
"""make_seeds.py VAE_MPI: (re)writes the seed corpora fuzz/corpus/{idx,data,checkpoint}/: a few small
valid and invalid inputs per reader. Checkpoints come from a real `vae_mpi train` run of a tiny model
(VAE_MPI is the binary). Deterministic apart from the checkpoint's creation times. Run by hand;
the outputs are committed."""
import gzip
import os
import shutil
import struct
import subprocess
import sys
import tempfile

import h5py
import numpy as np

here = os.path.dirname(os.path.abspath(__file__))
rng = np.random.default_rng(7)


def corpus(name):
    d = os.path.join(here, "corpus", name)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    return d


def idx_bytes(arr):
    return bytes([0, 0, 8, arr.ndim]) + b"".join(struct.pack(">I", n) for n in arr.shape) + arr.tobytes()


# ---- IDX: valid images and labels, gzip'd, and the usual breakages
d = corpus("idx")
img = rng.integers(0, 256, (3, 4, 4), dtype=np.uint8)
good = idx_bytes(img)
seeds = {
    "images_3x4x4": good,
    "labels_5": idx_bytes(np.arange(5, dtype=np.uint8)),
    "images_gz": gzip.compress(good, mtime=0),
    "truncated": good[:-5],
    "trailing": good + b"\0\0",
    "bad_magic": b"\1\0" + good[2:],
    "int32_type": bytes([0, 0, 0x0C, 1, 0, 0, 0, 2]) + b"\0" * 8,
    "ndim5": bytes([0, 0, 8, 5]) + struct.pack(">5I", 1, 1, 1, 1, 1) + b"\0",
    "huge_dims": bytes([0, 0, 8, 3]) + struct.pack(">3I", 0xFFFFFFFF, 0xFFFFFFFF, 0xFFFFFFFF),
    "gz_truncated": gzip.compress(good, mtime=0)[:-6],
}
for k, v in seeds.items():
    open(os.path.join(d, k), "wb").write(v)

# ---- HDF5 data files: dataset "x" or "train/images"
d = corpus("data")
p = lambda n: os.path.join(d, n)
with h5py.File(p("u8_contig.h5"), "w", libver="latest") as f:
    f["x"] = rng.integers(0, 256, (4, 3, 3), dtype=np.uint8)
with h5py.File(p("f32_gzip.h5"), "w", libver="latest") as f:
    f.create_dataset("train/images", data=rng.random((6, 4), dtype=np.float32), chunks=(2, 4),
                     compression="gzip", shuffle=True)
with h5py.File(p("f64_nan.h5"), "w", libver="latest") as f:
    a = rng.random((3, 2, 2, 2))
    a[1, 0, 1, 1] = np.nan
    f["x"] = a
with h5py.File(p("compact.h5"), "w", libver="latest") as f:
    dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
    dcpl.set_layout(h5py.h5d.COMPACT)
    ds = h5py.h5d.create(f.id, b"x", h5py.h5t.NATIVE_UINT8, h5py.h5s.create_simple((5, 2)), dcpl=dcpl)
    ds.write(h5py.h5s.ALL, h5py.h5s.ALL, rng.integers(0, 256, (5, 2), dtype=np.uint8))
with h5py.File(p("soft_and_ext.h5"), "w", libver="latest") as f:
    f["real"] = rng.integers(0, 256, (2, 3), dtype=np.uint8)
    f["x"] = h5py.SoftLink("/real")
    f["train/images"] = h5py.ExternalLink("other.h5", "/x")
with h5py.File(p("types.h5"), "w", libver="latest") as f:
    f["x"] = np.zeros((3, 2), np.int16)
    f["train/images"] = np.array([b"ab", b"cd"])
with h5py.File(p("unwritten_huge.h5"), "w", libver="latest") as f:
    f.create_dataset("x", shape=(2**40, 784), dtype=np.uint8, chunks=(1, 784))
with h5py.File(p("vds.h5"), "w", libver="latest") as f:
    lay = h5py.VirtualLayout(shape=(2, 2), dtype=np.uint8)
    lay[:] = h5py.VirtualSource("other.h5", "x", shape=(2, 2))
    f.create_virtual_dataset("x", lay)
blob = open(p("f32_gzip.h5"), "rb").read()
open(p("f32_gzip_truncated.h5"), "wb").write(blob[: len(blob) * 2 // 3])
open(p("not_hdf5.h5"), "wb").write(b"\x89HDF\r\n\x1a\n" + b"\0" * 40)

# ---- checkpoints from a real run of a tiny model (in 2x2, hidden 2, latent 1)
d = corpus("checkpoint")
vae = sys.argv[1]
tmp = tempfile.mkdtemp(prefix="vae_seeds_")
with h5py.File(os.path.join(tmp, "d.h5"), "w") as f:
    f["train/images"] = (rng.random((8, 2, 2)) < 0.5).astype(np.uint8) * 255
env = dict(os.environ, OMPI_ALLOW_RUN_AS_ROOT="1", OMPI_ALLOW_RUN_AS_ROOT_CONFIRM="1")
for dec in ["bernoulli", "gaussian-learned"]:
    out = os.path.join(tmp, dec)
    subprocess.run([vae, "train", "--data", os.path.join(tmp, "d.h5"), "--out", out, "--epochs", "1",
                    "--batch-size", "4", "--hidden", "2", "--latent", "1", "--decoder", dec,
                    "--no-images", "--test-dataset", ""], check=True, env=env, capture_output=True)
    shutil.copy(os.path.join(out, "checkpoint.h5"), os.path.join(d, dec + ".h5"))
ck = os.path.join(d, "bernoulli.h5")
blob = open(ck, "rb").read()
open(os.path.join(d, "truncated.h5"), "wb").write(blob[: len(blob) // 2])
shutil.copy(ck, os.path.join(d, "model_only.h5"))
with h5py.File(os.path.join(d, "model_only.h5"), "r+") as f:
    del f["optimizer"]
shutil.copy(ck, os.path.join(d, "nan_weight.h5"))
with h5py.File(os.path.join(d, "nan_weight.h5"), "r+") as f:
    f["model/decoder/out/bias"][0] = np.nan
shutil.copy(ck, os.path.join(d, "ext_link.h5"))
with h5py.File(os.path.join(d, "ext_link.h5"), "r+") as f:
    del f["optimizer"]
    f["optimizer"] = h5py.ExternalLink("other.h5", "/optimizer")
shutil.rmtree(tmp)
for name in ["idx", "data", "checkpoint"]:
    files = os.listdir(os.path.join(here, "corpus", name))
    print(f"make_seeds: {name}: {len(files)} files, {sum(os.path.getsize(os.path.join(here, 'corpus', name, f)) for f in files)} bytes")
