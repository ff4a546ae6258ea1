"""test_checkpoint_h5py.py: checkpoints interoperate with h5py (what PyTorch users' tools write).

1. The C writer's checkpoint, read with h5py: names, shapes, dtypes, attributes, and every tensor's
   bits (checksums printed by `test_checkpoint write`).
2. Checkpoints written here with h5py from numpy arrays (h5py's default types: int64, float64,
   variable-length str; also fixed-length bytes, a float64 tensor, an empty `hidden`) load in the C
   reader (`test_checkpoint dump`) with the same bits.
3. Broken h5py files are refused by the C reader with the right words.
4. Header layouts h5py writes (v1 and v2 object headers, compact and dense attribute storage, creation
   order, foreign attribute types, a userblock, 4-byte addresses) load with the same bits; attribute
   messages byte-patched to claim more than they hold (the fuzz_checkpoint heap overflow), and
   global heap collections patched under h5py's str attributes (the fuzz_checkpoint hang), are refused
   with one `vae_mpi: error:` line and no HDF5 error stack.
Run by CTest with Debian's python3 (h5py, numpy); needs VAE_BUILD_DIR."""
import os
import shutil
import subprocess
import sys
import tempfile

import h5py
import numpy as np

EXE = os.path.join(os.environ["VAE_BUILD_DIR"], "tests", "test_checkpoint")
failures = 0
checks = 0


def check(cond, what):
    global failures, checks
    checks += 1
    if not cond:
        failures += 1
        print("FAIL:", what, file=sys.stderr)


def checksum(a):
    """Sum and index-weighted sum of the float32 bit patterns, mod 2**64 (as the C test prints)."""
    bits = np.ascontiguousarray(a, dtype="<f4").reshape(-1).view("<u4").astype(np.uint64)
    k = np.arange(1, bits.size + 1, dtype=np.uint64)
    return int(bits.sum(dtype=np.uint64)), int((bits * k).sum(dtype=np.uint64))


def tensors(in_dim, hidden, latent, decoder):
    """(name, shape) of every tensor of the model, PyTorch nn.Linear (out, in) layout."""
    out, prev = [], in_dim
    for i, h in enumerate(hidden):
        out += [(f"encoder/hidden{i}/weight", (h, prev)), (f"encoder/hidden{i}/bias", (h,))]
        prev = h
    for head in ("mu", "logvar"):
        out += [(f"encoder/{head}/weight", (latent, prev)), (f"encoder/{head}/bias", (latent,))]
    prev = latent
    for i, h in enumerate(reversed(hidden)):
        out += [(f"decoder/hidden{i}/weight", (h, prev)), (f"decoder/hidden{i}/bias", (h,))]
        prev = h
    heads = ("out", "logvar") if decoder == "gaussian-learned" else ("out",)
    for head in heads:
        out += [(f"decoder/{head}/weight", (in_dim, prev)), (f"decoder/{head}/bias", (in_dim,))]
    return out


def parse(lines):
    """`tensor NAME SHAPE SUM WSUM` lines -> {name: (shape, sum, wsum)}, plus model/state lines."""
    t, other = {}, {}
    for line in lines.splitlines():
        f = line.split()
        if f[0] == "tensor":
            shape = tuple(int(x) for x in f[2].split("x"))
            t[f[1]] = (shape, int(f[3]), int(f[4]))
        else:
            other[f[0]] = f[1:]
    return t, other


def run(*args, timeout=None):
    return subprocess.run([EXE, *args], capture_output=True, text=True, timeout=timeout)


def compare_dump(path, expect, what):
    """Runs the C reader on path; checks every tensor's bits against expect; returns other lines."""
    r = run("dump", path)
    check(r.returncode == 0, f"C reader refused an h5py {what} checkpoint: {r.stderr}")
    got, other = parse(r.stdout)
    check(got.keys() == expect.keys(), f"tensor names {sorted(got)} vs {sorted(expect)}")
    for k, v in expect.items():
        check(got.get(k) == v, f"{k}: C read {got.get(k)}, h5py wrote {v}")
    return other


def c_side_reads_h5py_written(tmp):
    rng = np.random.default_rng(5)

    # (a) model-only bernoulli, h5py defaults: python ints -> int64, floats -> float64, str -> vlen.
    path = os.path.join(tmp, "torch_export.h5")
    expect = {}
    with h5py.File(path, "w") as f:
        f.attrs.update(format_version=1, step=7, epoch=0, epoch_step=7, seed=42, world_size=1,
                       created_by="my_torch_exporter")
        g = f.create_group("model")
        g.attrs.update(decoder="bernoulli", sigma=1.0, logvar_min=-6.0, latent=3,
                       hidden=np.array([16]), input_shape=[8, 8, 1])
        for i, (name, shape) in enumerate(tensors(64, [16], 3, "bernoulli")):
            a = rng.standard_normal(shape).astype(np.float32)
            # one tensor stored as float64 (PyTorch double): the reader converts exactly
            g.create_dataset(name, data=a.astype(np.float64) if i == 0 else a)
            expect["model/" + name] = (shape,) + checksum(a)
    other = compare_dump(path, expect, "model-only")
    check(other.get("model") == ["64-16-3-16-64", "bernoulli", "1", "-6"], f"model line {other.get('model')}")
    check(other.get("state") == ["7", "0", "7", "42", "1", "0", "0", "0", "7"], f"state line {other.get('state')}")

    # (b) gaussian, no hidden layer (empty int64 array), fixed-length byte strings, Adam moments,
    #     /config and /data written by hand.
    path = os.path.join(tmp, "full.h5")
    expect = {}
    with h5py.File(path, "w") as f:
        f.attrs.update(format_version=np.int32(1), step=np.int64(900), epoch=np.int64(3),
                       epoch_step=np.int64(0), seed=np.uint64(2**64 - 1), world_size=np.int32(8))
        g = f.create_group("model")
        g.attrs.update(decoder=np.bytes_("gaussian"), sigma=np.float32(0.25), logvar_min=np.float32(-6),
                       latent=np.int32(2), hidden=np.array([], dtype=np.int64),
                       input_shape=np.array([4, 3, 2], dtype=np.int32))
        for grp in ("model", "optimizer/m", "optimizer/v"):
            for name, shape in tensors(24, [], 2, "gaussian"):
                a = rng.standard_normal(shape).astype(np.float32)
                if grp == "optimizer/v":
                    a = a * a
                f.create_dataset(f"{grp}/{name}", data=a)
                expect[f"{grp}/{name}"] = (shape,) + checksum(a)
        c = f.create_group("config")
        c.attrs.update(data=np.bytes_("x.h5"), dataset="train/images", test_dataset="", test_dataset_given=0,
                       out="runs/b", resume="", epochs=10, batch_size=64, lr=3e-4, beta1=0.9, beta2=0.999,
                       adam_eps=1e-8, lr_warmup_steps=0, lr_scale="linear", kl_warmup_steps=0, beta=1.0,
                       clip_grad_norm=0.0, seed=2**63 + 5, threads=0, log_every=10, checkpoint_every=0,
                       keep=0, no_images=0, max_skips=3, max_steps=0)
        d = f.create_group("data")
        d.attrs.update(file="x.h5", dataset="train/images", n=1000, shape=[1000, 4, 3, 2], dtype="float32")
    other = compare_dump(path, expect, "full")
    check(other.get("model") == ["24-2-24", "gaussian", "0.25", "-6"], f"model line {other.get('model')}")
    check(other.get("state") == ["900", "3", "0", str(2**64 - 1), "8", "1", "1", "1", "900"],
          f"state line {other.get('state')}")
    check(other.get("opts") == ["0.00029999999999999997", "10", "64", "1", "x.h5"], f"opts line {other.get('opts')}")
    check(other.get("data") == ["x.h5", "train/images", "1000", "float32", "4"], f"data line {other.get('data')}")

    header_layouts(tmp, path, expect)

    # (c) broken files: the C reader says what is wrong and exits 1.
    def broken(name, edit, words):
        p = os.path.join(tmp, name)
        with h5py.File(path, "r") as src, h5py.File(p, "w") as dst:
            for k in src.attrs:
                dst.attrs[k] = src.attrs[k]
            for k in src:
                src.copy(k, dst)
            edit(dst)
        r = run("dump", p)
        check(r.returncode == 1, f"{name}: C reader exit {r.returncode}, expected 1")
        for w in words:
            check(w in r.stderr, f"{name}: stderr {r.stderr!r} lacks {w!r}")
        check("HDF5-DIAG" not in r.stderr, f"{name}: HDF5 error stack printed")

    broken("no_latent.h5", lambda f: f["model"].attrs.__delitem__("latent"),
           ["attribute /model/latent is missing"])

    def inf_tensor(f):
        a = f["model/decoder/out/bias"][...]
        a[5] = np.inf
        f["model/decoder/out/bias"][...] = a
    broken("inf.h5", inf_tensor, ["/model/decoder/out/bias holds a non-finite value", "element 5"])
    broken("float_latent.h5", lambda f: f["model"].attrs.__setitem__("latent", 2.5),
           ["attribute /model/latent must be an integer"])
    broken("bad_lr_scale.h5", lambda f: f["config"].attrs.__setitem__("lr_scale", "cubic"),
           ["/config/lr_scale is 'cubic', expected none, linear or sqrt"])
    broken("negative_seed.h5", lambda f: f.attrs.__setitem__("seed", -3), ["attribute /seed is negative"])
    broken("adam_step_above_step.h5", lambda f: f.attrs.__setitem__("adam_step", 901), ["attribute /adam_step"])


def copy_checkpoint(src_path, dst, edit=None, track_order=None):
    """Every attribute, group and dataset of src_path written anew into the open h5py File dst (in
    dst's format: h5py's copy() would keep the source's object headers), then edit(dst)."""
    def fill(s, d):
        for k in s.attrs:
            d.attrs[k] = s.attrs[k]
        for k, o in s.items():
            if isinstance(o, h5py.Group):
                fill(o, d.create_group(k, track_order=track_order))
            else:
                d.create_dataset(k, data=o[...], dtype=o.dtype)

    with h5py.File(src_path, "r") as src:
        fill(src, dst)
        if edit:
            edit(dst)


def header_layouts(tmp, full, expect):
    """The attribute-message check (checkpoint/attr_check.c) reads object headers byte by byte: every
    layout h5py writes must still load with the same bits, and patched message lengths be refused."""
    def extra_attrs(f):
        c = f["config"].attrs
        c["note"] = "kept by a user"
        c["flag"] = True  # h5py: an enum of int8
        c["pair"] = np.zeros(1, dtype=[("a", "<i4"), ("b", "<f8")])  # compound
        c["grid"] = np.zeros(2, dtype=np.dtype(("<f4", (2, 3))))  # array type
        c["blob"] = np.void(b"\x01\x02\x03")  # opaque
        c["names"] = np.array([b"ab", b"cde"], dtype="S4")
        c["big"] = np.arange(4000, dtype=np.float64)  # 32 KB in one message
        f["model"].attrs["tagged"] = np.int16(3)
        f.attrs["emptyish"] = h5py.Empty("f8")  # a null dataspace
        f["config"]["t"] = np.dtype("<i8")  # a committed type, used by an attribute (shared)
        c.create("shared_type", data=7, dtype=f["config"]["t"])

    # (what, h5py.File arguments, edit, dense): dense = /config's attributes in a fractal heap ("FRHP"),
    # which HDF5 does from 9 attributes on in v2 headers; v1 headers keep them all in the header.
    variants = [
        ("v1 headers, many foreign attributes", dict(), extra_attrs, False),
        ("libver latest (v2 headers, dense /config)", dict(libver="latest"), None, True),
        ("libver latest, foreign attributes", dict(libver="latest"), extra_attrs, True),
        ("track_order (creation order in messages)", dict(track_order=True), extra_attrs, True),
        ("a 512-byte userblock", dict(userblock_size=512), None, False),
    ]
    for what, kw, edit, dense in variants:
        p = os.path.join(tmp, "layout.h5")
        with h5py.File(p, "w", **kw) as dst:
            copy_checkpoint(full, dst, edit, kw.get("track_order"))
        check((b"FRHP" in open(p, "rb").read()) == dense, f"{what}: dense attribute storage is {not dense}")
        compare_dump(p, expect, what)

    # 4-byte addresses and lengths (H5Pset_sizes), through the low-level API.
    p = os.path.join(tmp, "sizes4.h5")
    fcpl = h5py.h5p.create(h5py.h5p.FILE_CREATE)
    fcpl.set_sizes(4, 4)
    fid = h5py.h5f.create(p.encode(), h5py.h5f.ACC_TRUNC, fcpl=fcpl)
    with h5py.File(fid) as dst:
        copy_checkpoint(full, dst)
    compare_dump(p, expect, "4-byte addresses and lengths")

    # Damage: the 2-byte lengths at the start of /config/lr's attribute message (version 1: version,
    # reserved, name, datatype, dataspace lengths; then "lr\0" padded to 8), and its value's count.
    base = os.path.join(tmp, "layout_plain.h5")
    with h5py.File(base, "w") as dst:
        copy_checkpoint(full, dst)
    data = open(base, "rb").read()
    at = data.index(b"lr\x00\x00\x00\x00\x00\x00") - 8
    check(data[at:at + 4] == b"\x01\x00\x03\x00", "found /config/lr's attribute message")
    cases = [
        ("dataspace", 6, 0x2008, "its dataspace claims 8200 bytes"),  # the fuzz finding
        ("datatype", 4, 0x0400, "its datatype claims 1024 bytes"),
        ("name", 2, 0x0200, "its name claims 512 bytes"),
        ("name end", 2, 0x0002, "its name does not end where its length (2 bytes) says"),
    ]
    for what, off, value, words in cases:
        who = "attribute /config/lr" if what in ("dataspace", "datatype") else "an attribute of /config"
        p = os.path.join(tmp, f"damaged_{off}.h5")
        b = bytearray(data)
        b[at + off:at + off + 2] = value.to_bytes(2, "little")
        open(p, "wb").write(bytes(b))
        r = run("dump", p)
        check(r.returncode == 1, f"damaged lr {what}: exit {r.returncode}, expected 1")
        check(who + " is damaged (" + words in r.stderr, f"damaged lr {what}: {r.stderr!r}")
        check("HDF5-DIAG" not in r.stderr, f"damaged lr {what}: HDF5 error stack printed")
    # lr's element size (bytes 4..7 of its datatype) 8 -> 64: a 64-byte value in a message with 8 left.
    b = bytearray(data)
    dt = at + 8 + 8  # the message's prefix, then "lr" padded to 8
    check(b[dt + 4:dt + 8] == b"\x08\x00\x00\x00", "found lr's element size")
    b[dt + 4] = 64
    p = os.path.join(tmp, "damaged_size.h5")
    open(p, "wb").write(bytes(b))
    r = run("dump", p)
    check(r.returncode == 1 and "its value claims 1 values of 64 bytes, 8 bytes are left" in r.stderr,
          f"damaged lr element size: {r.stderr!r}")
    vlen_damage(tmp, data)


def vlen_damage(tmp, data):
    """h5py's str attributes are variable-length: a length and a global heap ID; the bytes live in a
    global heap collection ("GCOL"), each object a 16-byte header (index 2, references 2, reserved 4,
    size 8) and its bytes padded to 8. Patched there, HDF5 1.10 loops for ever (an object 0 of 0 bytes:
    the fuzz finding), copies more than the value's buffer holds, or follows a missing index."""
    gcol = data.index(b"GCOL")
    obj = data.index(b"train/images", gcol) - 16  # /config/dataset's or /data/dataset's string
    first = gcol + 16
    check(data[obj + 8:obj + 16] == (12).to_bytes(8, "little"), "found the train/images heap object")
    cases = [
        ("object 0 of 0 bytes", first, (0).to_bytes(2, "little") + data[first + 2:first + 8] + bytes(8),
         "its string's global heap collection has an object of 0 bytes"),
        ("object size 13", obj + 8, (13).to_bytes(8, "little"), "its string claims 12 bytes, its global heap object holds 13"),
        ("object index 999", obj, (999).to_bytes(2, "little"), "which its global heap collection lacks"),
        ("collection size", gcol + 8, (1 << 40).to_bytes(8, "little"),
         "its string's global heap collection runs past the end of the file"),
    ]
    for what, at, patch, words in cases:
        b = bytearray(data)
        b[at:at + len(patch)] = patch
        p = os.path.join(tmp, "damaged_heap.h5")
        open(p, "wb").write(bytes(b))
        try:
            r = run("dump", p, timeout=30)
        except subprocess.TimeoutExpired:
            check(False, f"damaged heap, {what}: the reader hung (30 s)")
            continue
        check(r.returncode == 1 and words in r.stderr and r.stderr.count("\n") == 1
              and r.stderr.startswith("vae_mpi: error: "), f"damaged heap, {what}: {r.returncode} {r.stderr!r}")


def h5py_reads_c_written(tmp):
    path = os.path.join(tmp, "checkpoint.h5")
    r = run("write", path)
    check(r.returncode == 0, f"C writer failed: {r.stderr}")
    want, _ = parse(r.stdout)
    expect_names = {"model/" + n for n, _ in tensors(144, [64, 32], 5, "gaussian-learned")}
    expect_names |= {g + "/" + n[len("model/"):] for g in ("optimizer/m", "optimizer/v") for n in expect_names}
    with h5py.File(path, "r") as f:
        seen = {}
        f.visititems(lambda n, o: seen.__setitem__(n, o) if isinstance(o, h5py.Dataset) else None)
        check(set(seen) == expect_names, f"datasets {sorted(set(seen) ^ expect_names)} differ")
        check(set(seen) == set(want), "C printed other tensors than the file holds")
        for name, ds in seen.items():
            shape, s, ws = want[name]
            check(ds.dtype == np.float32, f"{name} dtype {ds.dtype}")
            check(ds.shape == shape, f"{name} shape {ds.shape}, expected {shape}")
            check(checksum(ds[...]) == (s, ws), f"{name}: bits differ from what C wrote")
        check(f["model/encoder/hidden0/weight"].shape == (64, 144), "nn.Linear (out, in) layout")
        a = f.attrs
        check(a["format_version"] == 1 and a["step"] == 4321 and a["epoch"] == 43 and a["epoch_step"] == 21,
              f"root attrs {dict(a)}")
        check(a["seed"] == np.uint64(0xFEDCBA9876543210) and a["seed"].dtype == np.uint64, f"seed {a['seed']!r}")
        check(a["world_size"] == 4 and a["created_by"] == "vae_mpi", f"world_size/created_by {dict(a)}")
        m = f["model"].attrs
        check(m["decoder"] == "gaussian-learned" and isinstance(m["decoder"], str), f"decoder {m['decoder']!r}")
        check(m["sigma"] == np.float32(0.5) and m["logvar_min"] == np.float32(-4.5), f"sigma/logvar_min {dict(m)}")
        check(m["latent"] == 5 and list(m["hidden"]) == [64, 32] and list(m["input_shape"]) == [8, 6, 3],
              f"latent/hidden/input_shape {dict(m)}")
        c = f["config"].attrs
        expect_cfg = dict(data="/data/mnist.h5", dataset="train/images", test_dataset="test/images",
                          test_dataset_given=1, out="runs/a", resume="auto", epochs=30, batch_size=128,
                          lr=1e-3, beta1=0.9, beta2=0.999, adam_eps=1e-8, lr_warmup_steps=500,
                          lr_scale="sqrt", kl_warmup_steps=10000, beta=0.75, clip_grad_norm=5.0,
                          seed=0xFEDCBA9876543210, threads=2, log_every=50, checkpoint_every=1000, keep=3,
                          no_images=1, max_skips=7, max_steps=4321)
        check(set(c) == set(expect_cfg), f"/config attributes {sorted(set(c) ^ set(expect_cfg))} differ")
        for k, v in expect_cfg.items():
            check(k in c and c[k] == v, f"/config/{k} = {c.get(k)!r}, expected {v!r}")
        d = f["data"].attrs
        check(d["file"] == "/data/mnist.h5" and d["dataset"] == "train/images" and d["n"] == 60000
              and list(d["shape"]) == [60000, 28, 28, 1] and d["dtype"] == "uint8", f"/data {dict(d)}")


work = tempfile.mkdtemp(prefix="ckpt-h5py-", dir=".")
h5py_reads_c_written(work)
c_side_reads_h5py_written(work)
if not failures:
    shutil.rmtree(work)  # kept on failure, for a look
print(f"test_checkpoint_h5py: {checks} checks, {failures} failed")
sys.exit(1 if failures or checks == 0 else 0)
