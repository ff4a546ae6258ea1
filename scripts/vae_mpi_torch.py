#!/usr/bin/python3
"""vae_mpi_torch: a vae_mpi checkpoint as a plain PyTorch module (nn.Linear, nn.Conv2d,
nn.ConvTranspose2d), for any model vae_mpi trains (the MLP or the convolutional VAE, any decoder).

    import sys; sys.path.insert(0, "scripts")          # or copy this one file next to your code
    import vae_mpi_torch
    model = vae_mpi_torch.load("runs/fm/checkpoint.h5")  # eval mode, float32, on the CPU
    mu, logvar = model.encode(x)        # x: (N, C, H, W) floats in vae_mpi's data scale (uint8 / 255)
    out = model.decode(z)               # (N, C, H, W): logits (bernoulli) or mean (gaussian);
                                        # gaussian-learned: a pair (mean, raw log-variance)
    images = model.mean(out)            # the decoder's mean image in data space
    out, mu, logvar = model(x)          # z = mu + exp(logvar / 2) * eps, eps ~ N(0, I)
    recon, kl = model.loss_terms(x)     # per image, nats, exactly vae_mpi's (elbo = -(recon + kl))

Images are (N, C, H, W) as torchvision gives them; vae_mpi's HDF5 data is (N, H, W, C):
x = torch.from_numpy(a).permute(0, 3, 1, 2). The state dict's names are the checkpoint's: /model/
encoder/conv0/weight is model.encoder.conv0.weight (schema: docs/CHECKPOINT.md). Needs Debian's
python3-torch and python3-h5py.

Run as a script it prints the model and, given --data, the test ELBO of a checkpoint:
    /usr/bin/python3 scripts/vae_mpi_torch.py runs/fm/checkpoint.h5 [--data FILE.h5 --dataset test/images]
"""
import argparse
import math

import h5py
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DECODERS = ("bernoulli", "gaussian", "gaussian-learned")


def conv_out(n, k, s, p):
    """Output size of a Conv2d over n."""
    return (n + 2 * p - k) // s + 1


class VAE(nn.Module):
    """The module a vae_mpi checkpoint holds (docs/CHECKPOINT.md):
    encoder: Conv2d(C_{i-1}, C_i, K, S, P) + ReLU per conv channel count, flatten (C, h, w); Linear + ReLU
    per hidden width; Linear heads mu and logvar. Decoder: Linear + ReLU per hidden width reversed; for
    a conv model Linear "project" to C_last*h*w + ReLU, unflatten, ConvTranspose2d + ReLU back to C_1, and
    the ConvTranspose2d output head(s) (output_padding restoring each conv's input size); for the MLP
    the Linear output head(s). The MLP flattens images in vae_mpi's (H, W, C) order."""

    def __init__(self, input_shape, hidden, latent, decoder="bernoulli", sigma=1.0, logvar_min=-6.0, conv=(),
                 kernel=4, stride=2, padding=1):
        super().__init__()
        if decoder not in DECODERS:
            raise ValueError(f"decoder {decoder!r}, expected one of {DECODERS}")
        self.H, self.W, self.C = (int(v) for v in input_shape)
        self.hidden, self.latent, self.decoder_name = [int(h) for h in hidden], int(latent), decoder
        self.sigma, self.logvar_min = float(sigma), float(logvar_min)
        self.conv, self.k, self.s, self.p = [int(c) for c in conv], int(kernel), int(stride), int(padding)
        self.encoder, self.decoder = nn.ModuleDict(), nn.ModuleDict()
        k, s, p = self.k, self.s, self.p
        self.sizes = [(self.H, self.W)]  # the conv trunk's (h, w), image first
        chans = [self.C] + self.conv
        for i, c in enumerate(self.conv):
            self.encoder[f"conv{i}"] = nn.Conv2d(chans[i], c, k, s, p)
            h, w = self.sizes[-1]
            self.sizes.append((conv_out(h, k, s, p), conv_out(w, k, s, p)))
        flat = chans[-1] * self.sizes[-1][0] * self.sizes[-1][1]
        prev = flat
        for i, h in enumerate(self.hidden):
            self.encoder[f"hidden{i}"] = nn.Linear(prev, h)
            prev = h
        self.encoder["mu"] = nn.Linear(prev, self.latent)
        self.encoder["logvar"] = nn.Linear(prev, self.latent)
        prev = self.latent
        for i, h in enumerate(reversed(self.hidden)):
            self.decoder[f"hidden{i}"] = nn.Linear(prev, h)
            prev = h
        heads = ("out", "logvar") if decoder == "gaussian-learned" else ("out",)
        if not self.conv:
            for head in heads:
                self.decoder[head] = nn.Linear(prev, self.H * self.W * self.C)
            return
        self.decoder["project"] = nn.Linear(prev, flat)
        n = len(self.conv)
        for j, i in enumerate(range(n, 1, -1)):  # convt0 next to the latent
            self.decoder[f"convt{j}"] = nn.ConvTranspose2d(chans[i], chans[i - 1], k, s, p,
                                                           output_padding=self.out_pad(i))
        for head in heads:
            self.decoder[head] = nn.ConvTranspose2d(chans[1], self.C, k, s, p, output_padding=self.out_pad(1))

    def out_pad(self, i):
        """output_padding of the ConvTranspose2d from trunk level i back to level i - 1."""
        (bh, bw), (sh, sw) = self.sizes[i - 1], self.sizes[i]
        return tuple(big - ((small - 1) * self.s - 2 * self.p + self.k) for big, small in ((bh, sh), (bw, sw)))

    def encode(self, x):
        """x (N, C, H, W) -> mu, logvar (N, L)."""
        h = x
        if self.conv:
            for i in range(len(self.conv)):
                h = F.relu(self.encoder[f"conv{i}"](h))
            h = h.flatten(1)  # (C, h, w) order
        else:
            h = h.permute(0, 2, 3, 1).reshape(h.shape[0], -1)  # vae_mpi's MLP: (H, W, C) order
        for i in range(len(self.hidden)):
            h = F.relu(self.encoder[f"hidden{i}"](h))
        return self.encoder["mu"](h), self.encoder["logvar"](h)

    def _head(self, name, h):
        o = self.decoder[name](h)
        if self.conv:
            return o
        return o.reshape(-1, self.H, self.W, self.C).permute(0, 3, 1, 2)

    def decode(self, z):
        """z (N, L) -> the output head: (N, C, H, W) logits or mean; gaussian-learned: (mean, raw logvar)."""
        h = z
        for i in range(len(self.hidden)):
            h = F.relu(self.decoder[f"hidden{i}"](h))
        if self.conv:
            h = F.relu(self.decoder["project"](h)).reshape(-1, self.conv[-1], *self.sizes[-1])
            for j in range(len(self.conv) - 1):
                h = F.relu(self.decoder[f"convt{j}"](h))
        if self.decoder_name == "gaussian-learned":
            return self._head("out", h), self._head("logvar", h)
        return self._head("out", h)

    def forward(self, x, eps=None):
        mu, logvar = self.encode(x)
        if eps is None:
            eps = torch.randn_like(mu)
        return self.decode(mu + torch.exp(0.5 * logvar) * eps), mu, logvar

    def mean(self, out):
        """The decoder's mean image in data space."""
        if self.decoder_name == "bernoulli":
            return torch.sigmoid(out)
        return out[0] if self.decoder_name == "gaussian-learned" else out

    def log_variance(self, raw):
        """gaussian-learned's per-value log-variance from the raw head: the soft floor of vae_mpi."""
        return self.logvar_min + F.softplus(raw - self.logvar_min)

    def recon_nll(self, x, out):
        """-log p(x | z) per image, every constant included (nats), as vae_mpi's decoders."""
        if self.decoder_name == "bernoulli":
            v = F.binary_cross_entropy_with_logits(out, x, reduction="none")
        elif self.decoder_name == "gaussian":
            s2 = self.sigma ** 2
            v = (x - out) ** 2 / (2 * s2) + 0.5 * math.log(2 * math.pi * s2)
        else:
            m, lv = out[0], self.log_variance(out[1])
            v = (x - m) ** 2 / (2 * torch.exp(lv)) + 0.5 * (math.log(2 * math.pi) + lv)
        return v.flatten(1).sum(1)

    def loss_terms(self, x, eps=None):
        """Per-image recon = -log p(x | z) and analytic KL(q(z | x) || N(0, I)); ELBO = -(recon + kl)."""
        out, mu, logvar = self(x, eps)
        kl = -0.5 * (1 + logvar - mu ** 2 - torch.exp(logvar)).sum(1)
        return self.recon_nll(x, out), kl


def _attr(a, name, default=None):
    v = a.get(name, default)
    return v.decode() if isinstance(v, bytes) else v


def load(path, device="cpu"):
    """The checkpoint at path as a VAE module (eval mode) with its weights."""
    with h5py.File(path, "r") as f:
        if "format_version" not in f.attrs or "model" not in f:
            raise ValueError(f"{path} is not a vae_mpi checkpoint (docs/CHECKPOINT.md)")
        a = f["model"].attrs
        conv = [int(c) for c in a["conv"]] if "conv" in a else []
        model = VAE(input_shape=a["input_shape"], hidden=list(a["hidden"]), latent=int(a["latent"]),
                    decoder=_attr(a, "decoder"), sigma=float(a["sigma"]), logvar_min=float(a["logvar_min"]),
                    conv=conv, kernel=int(a.get("kernel", 4)), stride=int(a.get("stride", 2)),
                    padding=int(a.get("padding", 1)))
        state = {}
        f["model"].visititems(lambda n, o: state.__setitem__(n.replace("/", "."), torch.from_numpy(
            np.asarray(o[...], dtype=np.float32))) if isinstance(o, h5py.Dataset) else None)
    model.load_state_dict(state, strict=True)  # every tensor present, nothing extra, every shape right
    return model.to(device).eval()


def images(path, dataset):
    """An HDF5 image dataset (N, H, W[, C]) as a float tensor (N, C, H, W) in vae_mpi's scale."""
    with h5py.File(path, "r") as f:
        a = f[dataset][...]
    if a.ndim == 3:
        a = a[..., None]
    x = torch.from_numpy(a.astype(np.float32) / 255.0 if a.dtype == np.uint8 else a.astype(np.float32))
    return x.permute(0, 3, 1, 2).contiguous()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("checkpoint")
    ap.add_argument("--data", help="HDF5 file: print the ELBO over --dataset")
    ap.add_argument("--dataset", default="test/images")
    ap.add_argument("--batch-size", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    model = load(args.checkpoint)
    print(model)
    if args.data:
        torch.manual_seed(args.seed)
        x = images(args.data, args.dataset)
        rec = kl = 0.0
        with torch.no_grad():
            for i in range(0, x.shape[0], args.batch_size):
                r, k = model.loss_terms(x[i:i + args.batch_size])
                rec, kl = rec + r.double().sum().item(), kl + k.double().sum().item()
        n = x.shape[0]
        print(f"ELBO {-(rec + kl) / n:.4f} nats/image (recon {rec / n:.4f}, KL {kl / n:.4f}) on {n} images")


if __name__ == "__main__":
    main()
