#!/usr/bin/python3
"""PyTorch's examples/vae model and training loop on an HDF5 dataset: the reference vae_mpi is compared
with (quality) and measured against (speed). Debian's python3-torch and python3-h5py.

  /usr/bin/python3 scripts/torch_vae.py --data datasets/fashion-mnist.h5 --epochs 10 --threads 1
  /usr/bin/python3 scripts/torch_vae.py --ddp 2 --max-steps 200 --no-test      # DistributedDataParallel, gloo
  /usr/bin/python3 scripts/torch_vae.py --conv 32,64 --hidden 256 --latent 20    # the convolutional VAE

The model is examples/vae's (784-400-20-400-784, ReLU, sigmoid output, BCE summed + analytic KL, Adam
lr 1e-3, batch 128). With --conv C1,C2,.. it is vae_mpi's convolutional VAE, the module of
scripts/vae_mpi_torch.py (Conv2d K S P + ReLU per channel count, --hidden Linear widths, the mu/logvar
heads, and back through ConvTranspose2d), Bernoulli: BCE from logits summed + analytic KL. Each epoch prints one JSON line: epoch, train/test recon/KL/ELBO in nats per image,
and training samples/s (data loading excluded as far as PyTorch allows: the data is a tensor in memory).
With --ddp N, N processes each train on their own shard with a per-process batch of --batch-size, gradients
averaged by DDP (the same data-parallel job vae_mpi runs).
"""
import argparse
import json
import os
import sys
import time

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import vae_mpi_torch  # noqa: E402


class VAE(nn.Module):
    """examples/vae/main.py's model."""

    def __init__(self, d=784, h=400, l=20):
        super().__init__()
        self.fc1 = nn.Linear(d, h)
        self.fc21 = nn.Linear(h, l)
        self.fc22 = nn.Linear(h, l)
        self.fc3 = nn.Linear(l, h)
        self.fc4 = nn.Linear(h, d)

    def encode(self, x):
        h1 = F.relu(self.fc1(x))
        return self.fc21(h1), self.fc22(h1)

    def reparameterize(self, mu, logvar):
        std = torch.exp(0.5 * logvar)
        eps = torch.randn_like(std)
        return mu + eps * std

    def decode(self, z):
        h3 = F.relu(self.fc3(z))
        return torch.sigmoid(self.fc4(h3))

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = self.reparameterize(mu, logvar)
        return self.decode(z), mu, logvar


def loss_terms(recon_x, x, mu, logvar):
    bce = F.binary_cross_entropy(recon_x, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce, kld


def conv_loss_terms(logits, x, mu, logvar):
    bce = F.binary_cross_entropy_with_logits(logits, x, reduction="sum")
    kld = -0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
    return bce, kld


def make_model(args, shape):
    """(model, its loss_terms) for the flags: examples/vae's MLP, or the conv VAE with --conv."""
    if not args.conv:
        return VAE(d=int(np.prod(shape))), loss_terms
    ints = lambda s: [int(v) for v in s.split(",") if v]  # noqa: E731
    model = vae_mpi_torch.VAE(shape, ints(args.hidden), args.latent, "bernoulli", conv=ints(args.conv),
                              kernel=args.kernel, stride=args.stride, padding=args.padding)
    return model, conv_loss_terms


def load(path, dataset, conv=False):
    """(N, D) floats for the MLP, (N, C, H, W) for the conv model; and the image shape (H, W, C)."""
    if conv:
        x = vae_mpi_torch.images(path, dataset)
        return x, (x.shape[2], x.shape[3], x.shape[1])
    with h5py.File(path, "r") as f:
        a = f[dataset][...]
    shape = a.shape[1:] + (1,) * (4 - a.ndim)
    a = a.reshape(a.shape[0], -1)
    return torch.from_numpy(a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32)), shape


def train(args, rank=0, world=1):
    torch.manual_seed(args.seed + rank)
    torch.set_num_threads(args.threads)
    x_train, shape = load(args.data, "train/images", bool(args.conv))
    x_test = None if args.no_test else load(args.data, "test/images", bool(args.conv))[0]
    n = x_train.shape[0]
    lo, hi = rank * n // world, (rank + 1) * n // world
    x_train = x_train[lo:hi]
    torch.manual_seed(args.seed)  # identical initial weights on every rank (DDP also broadcasts them)
    model, terms = make_model(args, shape)
    if world > 1:
        model = nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(args.seed + rank)
    torch.manual_seed(args.seed + 1000 + rank)
    steps = 0
    for epoch in range(1, args.epochs + 1):
        model.train()
        perm = torch.randperm(x_train.shape[0], generator=g)
        rec_sum = kl_sum = 0.0
        count = 0
        t_train = 0.0
        for i in range(0, x_train.shape[0], args.batch_size):
            x = x_train[perm[i:i + args.batch_size]]
            t0 = time.perf_counter()
            opt.zero_grad()
            recon, mu, logvar = model(x)
            bce, kld = terms(recon, x, mu, logvar)
            loss = bce + kld
            loss.backward()
            opt.step()
            t_train += time.perf_counter() - t0
            rec_sum += bce.item()
            kl_sum += kld.item()
            count += x.shape[0]
            steps += 1
            if args.max_steps and steps >= args.max_steps:
                break
        totals = torch.tensor([rec_sum, kl_sum, float(count), t_train], dtype=torch.float64)
        if world > 1:
            import torch.distributed as dist
            t_max = torch.tensor([t_train], dtype=torch.float64)
            dist.all_reduce(totals)
            dist.all_reduce(t_max, op=dist.ReduceOp.MAX)
            t_train = t_max.item()
        rec_sum, kl_sum, count = totals[0].item(), totals[1].item(), totals[2].item()
        out = {"epoch": epoch, "step": steps, "train_recon": rec_sum / count, "train_kl": kl_sum / count,
               "train_elbo": -(rec_sum + kl_sum) / count, "samples_per_s": count / t_train,
               "processes": world, "threads": args.threads}
        if x_test is not None and rank == 0:
            m = model.module if world > 1 else model
            m.eval()
            tr = tk = 0.0
            with torch.no_grad():
                for i in range(0, x_test.shape[0], args.batch_size):
                    x = x_test[i:i + args.batch_size]
                    recon, mu, logvar = m(x)
                    b, k = terms(recon, x, mu, logvar)
                    tr += b.item()
                    tk += k.item()
            nt = x_test.shape[0]
            out.update(test_recon=tr / nt, test_kl=tk / nt, test_elbo=-(tr + tk) / nt)
        if rank == 0:
            print(json.dumps(out), flush=True)
        if args.max_steps and steps >= args.max_steps:
            break


def ddp_worker(rank, args):
    import torch.distributed as dist
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(args.port))
    dist.init_process_group("gloo", rank=rank, world_size=args.ddp)
    train(args, rank, args.ddp)
    dist.destroy_process_group()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="datasets/fashion-mnist.h5")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--ddp", type=int, default=0, help="processes for DistributedDataParallel (gloo)")
    p.add_argument("--port", type=int, default=29517)
    p.add_argument("--max-steps", type=int, default=0, help="stop after this many steps (benchmarks)")
    p.add_argument("--no-test", action="store_true")
    p.add_argument("--conv", default="", help="C1,C2,..: vae_mpi's convolutional VAE (absent: examples/vae)")
    p.add_argument("--hidden", default="256", help="with --conv: the Linear widths ('' for none)")
    p.add_argument("--latent", type=int, default=20, help="with --conv: the latent size")
    p.add_argument("--kernel", type=int, default=4)
    p.add_argument("--stride", type=int, default=2)
    p.add_argument("--padding", type=int, default=1)
    args = p.parse_args()
    if args.ddp > 1:
        import torch.multiprocessing as mp
        mp.spawn(ddp_worker, args=(args,), nprocs=args.ddp, join=True)
    else:
        train(args)


if __name__ == "__main__":
    sys.exit(main())
