"""50 training steps of vae_mpi (the real trainer, under mpirun) against the same 50 steps in PyTorch:
the same initial parameters, the same batches, the same noise, torch.optim.Adam, LambdaLR warm-up,
torch.nn.utils.clip_grad_norm_. Step by step, the per-image recon and KL, the gradient norm, the
learning rate and every parameter tensor agree within what float rounding explains.

vae_mpi runs with VAE_TRACE=PREFIX (the training step's test hook, src/train/trace.c): each rank
writes, for every step, the dataset rows of its batch, its eps, and (rank 0) the parameters before
the step, each tensor in PyTorch's layout under its checkpoint name. PyTorch replays the steps from those: for step s it builds the global batch from every
rank's rows (read with h5py from the same file), computes the mean loss
    (sum of recon + kl_weight(s) * sum of KL) / images
as DDP averages it, then clips and steps. The parameters vae_mpi had before step s + 1 are compared
with PyTorch's after step s, tensor by tensor.

"What float rounding explains" is measured, not assumed: PyTorch replays every case twice, in
float64 (the reference) and in float32 (what any float32 implementation of the same math does).
vae_mpi's difference from the float64 replay must stay within FACTOR times the float32 replay's own
difference from it (plus a floor, FLOOR relative, for steps where both are at the last bits). A
changed formula puts vae_mpi far outside; a float32 implementation that only rounds differently
stays inside.

The model is scripts/vae_mpi_torch.py's VAE (plain nn.Linear, nn.Conv2d, nn.ConvTranspose2d: the
module a checkpoint loads into), the MLP with the three decoders and the convolutional VAE."""
import json
import math
import os
import shutil
import struct
import sys
import tempfile

import h5py
import numpy as np
import torch

import hashdata
from vaetest import check, done, mpirun, write_images

sys.path.insert(0, os.path.join(os.environ.get("VAE_SOURCE_DIR", "."), "scripts"))
import vae_mpi_torch  # noqa: E402

STEPS = 50
FACTOR, FLOOR = 4.0, 2e-6
N_TRAIN, N_TEST, SIDE = 160, 32, 10
COLOUR = (12, 10, 3)  # the conv cases' images: colour, not square

# (name, ranks, data ("uint8", "float32": grey SIDE x SIDE; "colour": COLOUR), model, training flags). 16 images per rank: 10 steps an epoch at np 1,
# 5 at np 2, so the 50 steps cross several epochs (new permutations, the test ELBO in between).
CASES = [
    ("mlp_bernoulli_np1", 1, "uint8", dict(decoder="bernoulli", hidden=[32], latent=4),
     ["--lr", "3e-3"]),
    ("mlp_gaussian_np1", 1, "float32", dict(decoder="gaussian", hidden=[32], latent=4, sigma=0.4),
     ["--lr", "2e-3", "--lr-warmup-steps", "8", "--clip-grad-norm", "30"]),
    ("mlp_gaussian_learned_np1", 1, "float32",
     dict(decoder="gaussian-learned", hidden=[32, 16], latent=3, logvar_min=-2.5),
     ["--lr", "2e-3", "--beta", "0.7", "--kl-warmup-steps", "10", "--adam-eps", "1e-6"]),
    ("mlp_bernoulli_np2", 2, "uint8", dict(decoder="bernoulli", hidden=[32], latent=4),
     ["--lr", "4e-3", "--lr-warmup-steps", "5", "--kl-warmup-steps", "12", "--clip-grad-norm", "5",
      "--lr-scale", "sqrt", "--beta1", "0.85", "--beta2", "0.995"]),
    ("conv_bernoulli_np2", 2, "colour",
     dict(decoder="bernoulli", conv=[4, 6], kernel=3, stride=2, padding=1, hidden=[16], latent=3),
     ["--lr", "3e-3", "--lr-warmup-steps", "6", "--clip-grad-norm", "20"]),
    ("conv_gaussian_learned_np1", 1, "colour",
     dict(decoder="gaussian-learned", conv=[4], kernel=4, stride=2, padding=1, hidden=[16], latent=3,
          logvar_min=-3.0),
     ["--lr", "2e-3", "--kl-warmup-steps", "10"]),
]


def model_flags(m):
    f = ["--decoder", m["decoder"], "--hidden", ",".join(map(str, m["hidden"])), "--latent", str(m["latent"])]
    if "sigma" in m:
        f += ["--sigma", str(m["sigma"])]
    if "logvar_min" in m:
        f += ["--logvar-min", str(m["logvar_min"])]
    if "conv" in m:
        f += ["--conv", ",".join(map(str, m["conv"])), "--kernel", str(m["kernel"]), "--stride", str(m["stride"]),
              "--padding", str(m["padding"])]
    return f


def opts_of(flags):
    """The training options a case sets, with vae_mpi's defaults."""
    o = {"lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "adam-eps": 1e-8, "lr-warmup-steps": 0,
         "kl-warmup-steps": 0, "beta": 1.0, "clip-grad-norm": 0.0, "lr-scale": "none"}
    for k, v in zip(flags[::2], flags[1::2]):
        key = k[2:]
        o[key] = v if key == "lr-scale" else type(o[key])(float(v))
    return o


def read_trace(path):
    """[(name, shape)] of the tensors, [(step, rows, eps (n, L), params or None)] of one rank."""
    out = []
    with open(path, "rb") as f:
        check(f.read(8) == b"VAETRC02", f"{path}: not a VAE_TRACE file")
        tensors = []
        for _ in range(struct.unpack("<i", f.read(4))[0]):
            name = f.read(64).split(b"\0")[0].decode()
            ndim, *dims = struct.unpack("<5i", f.read(20))
            tensors.append((name, tuple(dims[:ndim])))
        while True:
            head = f.read(24)
            if not head:
                break
            step, n, L, P = struct.unpack("<qiiq", head)
            rows = np.frombuffer(f.read(4 * n), dtype=np.uint32).astype(np.int64)
            eps = np.frombuffer(f.read(4 * n * L), dtype=np.float32).reshape(n, L)
            params = np.frombuffer(f.read(4 * P), dtype=np.float32) if P else None
            out.append((step, rows, eps, params))
    return tensors, out


def torch_model(m, shape, tensors, dtype):
    """The PyTorch module of a case's model, its parameters as a list in the trace's tensor order."""
    model = vae_mpi_torch.VAE(shape, m["hidden"], m["latent"], m["decoder"], m.get("sigma", 1.0),
                              m.get("logvar_min", -6.0), m.get("conv", ()), m.get("kernel", 4),
                              m.get("stride", 2), m.get("padding", 1)).to(dtype)
    named = dict(model.named_parameters())
    check(sorted(named) == sorted(n.replace("/", ".") for n, _ in tensors),
          f"{m}: PyTorch's tensors {sorted(named)}, vae_mpi's {[n for n, _ in tensors]}")
    flat = [named[n.replace("/", ".")] for n, _ in tensors]
    for t, (n, dims) in zip(flat, tensors):
        check(tuple(t.shape) == dims, f"{m}: {n}: PyTorch's shape {tuple(t.shape)}, vae_mpi's {dims}")
    return model, flat


def replay(m, o, ranks, data, tensors, traces, dtype):
    """STEPS steps in PyTorch from the traces; per step: recon, kl, grad norm, lr, params after.
    data: the train images (N, C, H, W) in vae_mpi's scale."""
    model, flat = torch_model(m, (data.shape[2], data.shape[3], data.shape[1]), tensors, dtype)
    p0 = torch.from_numpy(traces[0][0][3].astype(np.float64))
    with torch.no_grad():
        i = 0
        for t in flat:
            t.copy_(p0[i:i + t.numel()].view_as(t))
            i += t.numel()
    check(i == p0.numel(), f"{m}: PyTorch has {i} parameters, vae_mpi {p0.numel()}")
    scale = {"none": 1.0, "linear": float(ranks), "sqrt": math.sqrt(ranks)}[o["lr-scale"]]
    opt = torch.optim.Adam(flat, lr=o["lr"] * scale, betas=(o["beta1"], o["beta2"]), eps=o["adam-eps"])
    W = o["lr-warmup-steps"]
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / W) if W > 0 else 1.0)
    K = o["kl-warmup-steps"]
    out = []
    for s in range(STEPS):
        rows = np.concatenate([traces[r][s][1] for r in range(ranks)])
        eps = np.concatenate([traces[r][s][2] for r in range(ranks)])
        x = torch.from_numpy(data[rows]).to(dtype)
        e = torch.from_numpy(eps.astype(np.float64)).to(dtype)
        klw = o["beta"] * (s + 1) / K if K > 0 and s < K else o["beta"]
        opt.zero_grad()
        recon, kl = model.loss_terms(x, e)
        n = len(rows)
        ((recon.sum() + klw * kl.sum()) / n).backward()
        lr = opt.param_groups[0]["lr"]
        if o["clip-grad-norm"] > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(flat, o["clip-grad-norm"]))
        else:
            norm = float(torch.linalg.vector_norm(torch.cat([t.grad.view(-1) for t in flat])))
        opt.step()
        sched.step()
        out.append(dict(recon=float(recon.sum()) / n, kl=float(kl.sum()) / n, grad_norm=norm, lr=lr,
                        params=[t.detach().double().clone() for t in flat]))
    return out, [t.numel() for t in flat]


def run_vae(tmp, name, ranks, kind, m, flags):
    data = os.path.join(tmp, f"{kind}.h5")
    if kind == "colour" and not os.path.exists(data):
        write_images(data, {"train/images": N_TRAIN, "test/images": N_TEST}, shape=COLOUR, seed=4)
    elif not os.path.exists(data):
        hashdata.write(data, N_TRAIN, N_TEST, SIDE, kind)
    out, prefix = os.path.join(tmp, name), os.path.join(tmp, name + ".trace")
    args = ["train", "--data", data, "--out", out, "--batch-size", "16", "--epochs", "20", "--seed", "5",
            "--max-steps", str(STEPS + 1), "--log-every", "1", "--no-images", "--threads", "1",
            *model_flags(m), *flags]
    p = mpirun(ranks, args, quiet=True, env={"VAE_TRACE": prefix})
    check(p.returncode == 0, f"{name}: vae_mpi exit {p.returncode}: {p.stderr[-1500:]}")
    if p.returncode != 0:
        return None
    steps = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl")) if '"type":"step"' in l]
    read = [read_trace(f"{prefix}.{r}") for r in range(ranks)]
    tensors, traces = read[0][0], [tr for _, tr in read]
    for r, tr in enumerate(traces):
        check([t[0] for t in tr] == list(range(STEPS + 1)), f"{name}: rank {r} traced steps {[t[0] for t in tr][:5]}...")
    check([r["step"] for r in steps] == list(range(1, STEPS + 2)), f"{name}: step records {len(steps)}")
    with h5py.File(data, "r") as f:
        x = f["train/images"][...]
    x = x.astype(np.float64) / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    x = (x if x.ndim == 4 else x[..., None]).transpose(0, 3, 1, 2)  # (N, C, H, W), as torchvision's
    return steps, tensors, traces, np.ascontiguousarray(x)


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-30)


def tensor_rel(a, b):
    return float(torch.linalg.vector_norm(a - b) / max(float(torch.linalg.vector_norm(b)), 1e-30))


def compare(name, steps, traces, ref, r32, sizes):
    """vae_mpi and the float32 replay against the float64 replay, step by step."""
    worst = {}  # kind -> [vae_mpi's worst, float32 PyTorch's worst, worst error / allowance]
    fails = 0
    for s in range(STEPS):
        ours = {k: steps[s][k] for k in ("recon", "kl", "grad_norm", "lr")}
        p = torch.from_numpy(traces[0][s + 1][3].astype(np.float64)).split(sizes)
        figures = [(k, ours[k], r32[s][k], ref[s][k]) for k in ours]
        figures += [(f"tensor {i}", tensor_rel(p[i], ref[s]["params"][i].view(-1)),
                     tensor_rel(r32[s]["params"][i].view(-1), ref[s]["params"][i].view(-1)), None)
                    for i in range(len(sizes))]
        for what, a, a32, b in figures:
            e, e32 = (rel(a, b), rel(a32, b)) if b is not None else (a, a32)
            if what == "grad_norm":  # logged with 6 significant digits
                e32 = max(e32, 5e-6)
            allow = FACTOR * e32 + FLOOR
            w = worst.setdefault("params" if what.startswith("tensor") else what, [0.0, 0.0, 0.0])
            w[0], w[1], w[2] = max(w[0], e), max(w[1], e32), max(w[2], e / allow)
            ok = e <= allow
            if not ok and fails < 8:
                fails += 1
                print(f"FAIL: {name}: step {s + 1} {what}: vae_mpi {e:.2e} from float64 PyTorch, allowed "
                      f"{allow:.2e} (float32 PyTorch {e32:.2e})", file=sys.stderr)
            check(ok, f"{name}: step {s + 1} {what}")
    print(f"{name}: {STEPS} steps, {len(sizes)} tensors; worst relative difference from float64 PyTorch, "
          "vae_mpi / float32 PyTorch (worst vae_mpi error / allowance):")
    print("   " + ", ".join(f"{k} {w[0]:.1e} / {w[1]:.1e} ({w[2]:.2f})" for k, w in worst.items()))


def main():
    torch.set_num_threads(1)
    tmp = tempfile.mkdtemp(prefix="vae_torch_train_")
    try:
        for name, ranks, kind, m, flags in CASES:
            got = run_vae(tmp, name, ranks, kind, m, flags)
            if got is None:
                continue
            steps, tensors, traces, x = got
            o = opts_of(flags)
            ref, sizes = replay(m, o, ranks, x, tensors, traces, torch.float64)
            r32, _ = replay(m, o, ranks, x, tensors, traces, torch.float32)
            compare(name, steps, traces, ref, r32, sizes)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    done("test_torch_train")


if __name__ == "__main__":
    main()
