"""vae_mpi's training step against torch.optim.Adam itself (not a copy of our formula).

tests/torch_adam_dump.c drives the trainer's own step (vae_train_step) under mpirun and records, for
every step, the gradient sum the allreduce produced, the number of images, and what the step did
(parameters, Adam's m and v, Adam's step count, the learning rate, the gradient norm, skipped or
not). Here PyTorch takes the same steps from the same parameters with the same gradients, as a DDP
user writes the loop, in float32:

    p.grad = gradient sum / images                                   # DDP's average
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)          # when --clip-grad-norm
    if not finite(norm): skip optimizer.step()                        # GradScaler's rule
    else: optimizer.step()                                            # torch.optim.Adam
    scheduler.step()                                                  # LambdaLR: the warm-up

with lr = --lr x (1, ranks or sqrt(ranks) for --lr-scale) x min(1, (step + 1) / warm-up). Every
tensor must agree after every step: ||ours - torch|| <= TOL ||torch||; Adam's step count (a skipped
step leaves it, as GradScaler leaves optimizer.step() uncalled) and the skip decision exactly; the
learning rate and the gradient norm within float rounding.

  test_torch_adam.py DUMP.bin [DUMP.bin ...]"""
import math
import re
import struct
import sys
import warnings

import numpy as np
import torch

from vaetest import check, done

# Both sides compute in float32 from the same inputs and differ only in the order of a few operations
# (ours multiplies by 1 / images and by 1 / sqrt(1 - beta2^t) where torch divides). Measured worst
# (this test prints it): 6e-7 for m and v, 1.0e-6 for the parameters after 25 steps at lr 1e-2 with
# the clip on every step, 1.3e-7 for the norm. A real difference is larger: before vae_mpi took
# 1 - beta from the double betas, its v was 1.3e-5 off torch's on every step.
TOL = 4e-6
# A skipped first step makes LambdaLR warn that scheduler.step() came before optimizer.step(): the
# well-known GradScaler case; the schedule is the intended one (it follows the global step).
warnings.filterwarnings("ignore", message=re.escape("Detected call of `lr_scheduler.step()` before"))


class Reader:
    def __init__(self, path):
        self.b = open(path, "rb").read()
        self.o = 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.b, self.o)
        self.o += struct.calcsize("<" + fmt)
        return v

    def floats(self, n):
        a = np.frombuffer(self.b, dtype="<f4", count=n, offset=self.o)
        self.o += 4 * n
        return torch.from_numpy(a.copy())


def rel(a, b):
    nb = float(torch.linalg.vector_norm(b.double()))
    d = float(torch.linalg.vector_norm(a.double() - b.double()))
    return d / nb if nb > 0 else d


def run_case(name, rd):
    nsteps, nt, warmup, lr_scale, ranks, *_ = rd.take("8i")
    lr, b1, b2, eps, clip, _ = rd.take("6d")
    sizes = list(rd.take(f"{nt}q"))
    P = sum(sizes)
    params = [torch.nn.Parameter(t.clone()) for t in rd.floats(P).split(sizes)]
    scale = [1.0, float(ranks), math.sqrt(ranks)][lr_scale]
    opt = torch.optim.Adam(params, lr=lr * scale, betas=(b1, b2), eps=eps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0)
    worst = {"params": 0.0, "m": 0.0, "v": 0.0, "lr": 0.0, "grad_norm": 0.0}
    skips = 0
    for s in range(nsteps):
        images, norm_ours, lr_ours, _ = rd.take("4d")
        skipped, adam_step = rd.take("2i")
        gsum = rd.floats(P).split(sizes)
        ours = {k: rd.floats(P).split(sizes) for k in ("params", "m", "v")}
        for p, g in zip(params, gsum):
            p.grad = g / images
        lr_torch = opt.param_groups[0]["lr"]
        if clip > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(params, clip))
        else:
            norm = float(torch.linalg.vector_norm(torch.cat([p.grad.view(-1) for p in params])))
        torch_skips = not math.isfinite(norm)
        if not torch_skips:
            opt.step()
        sched.step()
        skips += torch_skips
        st = opt.state[params[0]]
        torch_t = int(st["step"]) if "step" in st else 0
        where = f"{name}: step {s}"
        check(bool(skipped) == torch_skips, f"{where}: skipped {skipped}, PyTorch {torch_skips}")
        check(adam_step == torch_t, f"{where}: Adam's step count {adam_step}, torch.optim.Adam's {torch_t}")
        e = abs(lr_ours - lr_torch) / lr_torch
        worst["lr"] = max(worst["lr"], e)
        check(e <= 1e-6, f"{where}: lr {lr_ours!r}, PyTorch {lr_torch!r}")
        if not torch_skips:
            e = abs(norm_ours - norm) / norm
            worst["grad_norm"] = max(worst["grad_norm"], e)
            check(e <= TOL, f"{where}: gradient norm {norm_ours!r}, clip_grad_norm_ {norm!r}")
        for k, key in (("params", None), ("m", "exp_avg"), ("v", "exp_avg_sq")):
            for i, p in enumerate(params):
                theirs = p.detach() if key is None else opt.state[p].get(key, torch.zeros_like(p))
                e = rel(ours[k][i], theirs)
                worst[k] = max(worst[k], e)
                check(e <= TOL, f"{where}: {k} of tensor {i} ({sizes[i]} values) relative {e:.2e}")
    print(f"{name}: {nsteps} steps ({skips} skipped), {nt} tensors, {ranks} ranks; worst relative: "
          + ", ".join(f"{k} {v:.1e}" for k, v in worst.items()))


def main():
    torch.set_num_threads(1)
    for path in sys.argv[1:]:
        rd = Reader(path)
        check(rd.b[:8] == b"VAEADAM2", f"{path}: bad magic")
        rd.o = 8
        (ncases,) = rd.take("i")
        for k in range(ncases):
            run_case(f"{path.rsplit('/', 1)[-1]} case {k}", rd)
        check(rd.o == len(rd.b), f"{path}: {len(rd.b) - rd.o} trailing bytes")
    done("test_torch_adam")


if __name__ == "__main__":
    main()
