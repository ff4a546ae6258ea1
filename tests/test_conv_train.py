"""The convolutional VAE end to end under mpirun, on small colour non-square images:
1. it trains (np 2) with every decoder and learns; eval (also the IW bound), sample and reconstruct
   run on its checkpoint;
2. h5py reads the checkpoint schema (docs/CHECKPOINT.md): /model attributes conv, kernel, stride,
   padding, every tensor in PyTorch's layout under the names of the PyTorch module;
3. scripts/vae_mpi_torch.py loads it into plain nn.Conv2d / nn.ConvTranspose2d / nn.Linear layers: its
   KL (deterministic) equals `vae_mpi eval`'s, its ELBO equals it within the sampling noise;
4. a run resumed mid-epoch is bitwise identical to the uninterrupted one at np 1 and np 2;
5. a mismatched --conv, --kernel or --stride on resume, and shapes that cannot work, are refused
   with one clear error line before any collective, nothing changed on disk."""
import json
import math
import os
import shutil
import sys
import tempfile

import h5py
import numpy as np
import torch

from vaetest import (SANITIZED, check, dir_state, done, expect_error, mpirun, run1, sanitizer_subset,
                     training_fields, write_images)

sys.path.insert(0, os.path.join(os.environ.get("VAE_SOURCE_DIR", "."), "scripts"))
import vae_mpi_torch  # noqa: E402

tmp = tempfile.mkdtemp(prefix="vae_conv_")
data = os.path.join(tmp, "d.h5")
write_images(data, {"train/images": 240, "test/images": 60}, shape=(12, 10, 3), seed=3)
MODEL = ["--conv", "4,8", "--kernel", "3", "--stride", "2", "--padding", "1", "--hidden", "16", "--latent", "3"]
BASE = ["train", "--data", data, "--batch-size", "20", "--seed", "5", "--no-images"] + MODEL


def train(np_, out, *extra, **kw):
    return mpirun(np_, BASE + ["--out", out, *extra], **kw)


def datasets(path):
    with h5py.File(path, "r") as f:
        got = {}
        f.visititems(lambda n, o: got.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)
    return got


def records(out):
    return [training_fields(json.loads(line)) for line in open(os.path.join(out, "metrics.jsonl"))]


def eval_json(ckpt, np_=2):
    p = mpirun(np_, ["eval", "--checkpoint", ckpt, "--data", data, "--dataset", "test/images", "--json",
                     "--iw-samples", "50"])
    check(p.returncode == 0, f"eval {ckpt}: {p.stderr[-800:]}")
    return json.loads(p.stdout.strip().splitlines()[-1]) if p.returncode == 0 else None


# ---- 1-3: every decoder trains; the checkpoint's schema; the PyTorch module ----
x = vae_mpi_torch.images(data, "test/images")
for decoder in ("bernoulli", "gaussian", "gaussian-learned"):
    out = os.path.join(tmp, decoder)
    p = train(2, out, "--epochs", "4", "--decoder", decoder, "--sigma", "0.3", "--logvar-min", "-3")
    check(p.returncode == 0, f"{decoder}: train: {p.stderr[-800:]}")
    if p.returncode != 0:
        continue
    check("12x10x3-c4-c8-16-3-16-t4-t3-12x10x3 (k3 s2 p1)" in p.stdout, f"{decoder}: model line {p.stdout[:300]}")
    recs = [r for r in records(out) if r.get("type") == "epoch"]
    check(len(recs) == 4 and recs[-1]["test_elbo"] > recs[0]["test_elbo"] + 1,
          f"{decoder}: test ELBO did not improve: {[r['test_elbo'] for r in recs]}")
    ckpt = os.path.join(out, "checkpoint.h5")
    # the schema, read with h5py, against the PyTorch module built from the attributes
    with h5py.File(ckpt, "r") as f:
        a = f["model"].attrs
        check(list(a["conv"]) == [4, 8] and a["kernel"] == 3 and a["stride"] == 2 and a["padding"] == 1
              and a["conv"].dtype == np.int32, f"{decoder}: /model attributes {dict(a)}")
    got = datasets(ckpt)
    module = vae_mpi_torch.VAE((12, 10, 3), [16], 3, decoder, 0.3, -3, [4, 8], 3, 2, 1)
    want = {"model/" + k.replace(".", "/"): tuple(v.shape) for k, v in module.state_dict().items()}
    check({k: v.shape for k, v in got.items() if k.startswith("model/")} == want,
          f"{decoder}: /model tensors differ from the PyTorch module's: {sorted(set(want) ^ set(got))}")
    for name, shape in (("encoder/conv0/weight", (4, 3, 3, 3)), ("encoder/conv1/weight", (8, 4, 3, 3)),
                        ("encoder/hidden0/weight", (16, 8 * 3 * 3)), ("decoder/project/weight", (8 * 3 * 3, 16)),
                        ("decoder/convt0/weight", (8, 4, 3, 3)), ("decoder/out/weight", (4, 3, 3, 3)),
                        ("decoder/out/bias", (3,))):
        check(got["model/" + name].shape == shape, f"{decoder}: {name} {got['model/' + name].shape} != {shape}")
    check(("model/decoder/logvar/weight" in got) == (decoder == "gaussian-learned"), f"{decoder}: logvar head")
    for g in ("optimizer/m", "optimizer/v"):
        check(all(got[g + k[5:]].shape == got[k].shape for k in got if k.startswith("model/")), f"{decoder}: {g}")
    # the PyTorch module on the test set against `vae_mpi eval`
    ev = eval_json(ckpt)
    m = vae_mpi_torch.load(ckpt)
    torch.manual_seed(7)
    with torch.no_grad():
        rec, kl = m.loss_terms(x)
        # the noise spread of a one-sample ELBO: the same images again with other noise
        rec2, _ = m.loss_terms(x)
    elbo = -(rec + kl).double()
    se = ((rec - rec2).double().std() / math.sqrt(2) / math.sqrt(len(x))).item() * math.sqrt(2)
    if ev:
        check(abs(kl.double().mean().item() - ev["kl"]) < 1e-4 * abs(ev["kl"]) + 1e-5,
              f"{decoder}: torch KL {kl.double().mean().item()} vs vae_mpi eval {ev['kl']}")
        check(abs(elbo.mean().item() - ev["elbo"]) < 4 * se + 1e-6,
              f"{decoder}: torch ELBO {elbo.mean().item():.4f} vs vae_mpi eval {ev['elbo']:.4f} (4 s.e. {4 * se:.4f})")
        check(ev["iw_log_likelihood"] >= ev["elbo"] - 4 * se, f"{decoder}: IW bound {ev['iw_log_likelihood']} < ELBO")
        print(f"{decoder}: eval ELBO {ev['elbo']:.4f}, PyTorch module {elbo.mean().item():.4f} (s.e. {se:.4f}), "
              f"IW(50) {ev['iw_log_likelihood']:.4f}")
    # sample and reconstruct read the conv checkpoint
    png = os.path.join(out, "s.png")
    p = run1(["sample", "--checkpoint", ckpt, "--out", png, "--count", "16"])
    check(p.returncode == 0 and os.path.getsize(png) > 100, f"{decoder}: sample: {p.stderr}")
    png = os.path.join(out, "r.png")
    p = run1(["reconstruct", "--checkpoint", ckpt, "--data", data, "--dataset", "test/images", "--count", "8",
              "--out", png])
    check(p.returncode == 0 and os.path.getsize(png) > 100, f"{decoder}: reconstruct: {p.stderr}")

# ---- 4: resume mid-epoch, bitwise, at np 1 and np 2 (under the sanitizers np 2: np 1 is the same C path
# with another shard, and test_resume.py's np 1 resume runs under them) ----
for np_ in ((2,) if SANITIZED else (1, 2)):
    spe = -(-(240 // np_) // 20)
    ref = os.path.join(tmp, f"ref{np_}")
    p = train(np_, ref, "--epochs", "2", "--log-every", "2")
    check(p.returncode == 0, f"np{np_} reference: {p.stderr[-500:]}")
    out = os.path.join(tmp, f"resumed{np_}")
    stop = spe + spe // 2
    p = train(np_, out, "--epochs", "2", "--log-every", "2", "--max-steps", str(stop))
    check(p.returncode == 0 and "--max-steps" in p.stdout, f"np{np_} stop: {p.stderr[-500:]}")
    p = train(np_, out, "--epochs", "2", "--log-every", "2", "--resume", "auto")
    check(p.returncode == 0 and f"step {stop}" in p.stdout, f"np{np_} resume: {p.stdout[:300]} {p.stderr[-300:]}")
    a, b = datasets(os.path.join(ref, "checkpoint.h5")), datasets(os.path.join(out, "checkpoint.h5"))
    diff = [k for k in a if k not in b or a[k].tobytes() != b[k].tobytes()]
    check(not diff and set(a) == set(b), f"np{np_}: resumed tensors differ from the uninterrupted run: {diff[:4]}")
    check(records(out) == records(ref), f"np{np_}: metrics.jsonl differs from the uninterrupted run")

# ---- 5: refusals, nothing changed on disk ----
out = os.path.join(tmp, "ref2")
before = dir_state(out)
# Release-only (vaetest.SANITIZED): --stride's comparison is --kernel's (match.c); zero channels,
# padding and stride are vae_config_validate_flags' range checks, "zero latent" of test_robust.py runs it.
for name, extra, words in sanitizer_subset([
        ("other --conv", ["--conv", "4,16"], ["conv 4,8", "4,16", "--conv 4,8"]),
        ("no --conv", ["--conv", ""], ["conv 4,8", "(none)", "--conv 4,8"]),
        ("other --kernel", ["--kernel", "4"], ["kernel 3", "--kernel 3"]),
        ("other --stride", ["--stride", "1"], ["stride 2", "--stride 2"])], ["other --stride"], "resume refusals"):
    p = train(2, out, "--epochs", "3", "--resume", "auto", *extra, quiet=True)
    expect_error(p, words, f"resume with {name}")
check(dir_state(out) == before, "a refused resume changed files in --out")
fresh = os.path.join(tmp, "fresh")
for name, extra, words in sanitizer_subset([
        ("too many layers for the image", ["--conv", "4,4,4", "--padding", "0"], ["--conv layer 3", "2x1", "below 1x1"]),
        ("zero channels", ["--conv", "4,0"], ["--conv", "from 1"]),
        ("padding reaching the kernel", ["--padding", "3"], ["--padding", "0 to"]),
        ("zero stride", ["--stride", "0"], ["--stride"]),
        ("nine conv layers", ["--conv", "1,1,1,1,1,1,1,1,1"], ["--conv", "at most 8"]),
        ("kernel larger than the image", ["--kernel", "15", "--padding", "1"], ["--conv layer 1", "12x10"])],
        ["zero channels", "padding reaching the kernel", "zero stride"], "start refusals"):
    p = train(2, fresh, "--epochs", "1", *extra, quiet=True)
    expect_error(p, words, name)
check(not os.path.exists(os.path.join(fresh, "checkpoint.h5")), "a refused start wrote a checkpoint")

shutil.rmtree(tmp)
done("test_conv_train")
